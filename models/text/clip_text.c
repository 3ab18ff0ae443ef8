/*
 * clip_text.c — the CLIP text transformer: token + position embeddings, pre-norm layers
 * (causal self-attention, MLP with quick_gelu or gelu), final layer norm, EOS pooling and
 * text_projection. Both checkpoint namings map onto one weights struct.
 */
#include "models/text/clip_text.h"

#include "kernels/ops.h"
#include "models/formats/model_files.h"
#include "models/formats/weight_binder.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    tensor ln1_w, ln1_b, q_w, q_b, k_w, k_b, v_w, v_b, out_w, out_b;
    tensor ln2_w, ln2_b, fc1_w, fc1_b, fc2_w, fc2_b;
} clip_layer;

struct clip_text_model {
    clip_text_config config;
    weight_binder *weights;      /* the tensors below point into it */
    tensor token_embedding;      /* [vocab, hidden] */
    tensor position_embedding;   /* [positions, hidden] */
    clip_layer *layers;
    tensor final_ln_w, final_ln_b;
    tensor projection;           /* [projection_dim, hidden] as linear(ctx, ) wants it */
    tensor projection_owned;     /* OpenCLIP's x @ P, transposed into place at load */
};

const clip_text_config *clip_text_get_config(const clip_text_model *self) { return &self->config; }

void clip_text_destroy(clip_text_model **self) {
    if (!self || !*self) return;
    clip_text_model *m = *self;
    tensor_free(&m->projection_owned);
    free(m->layers);
    weight_binder_destroy(&m->weights);
    free(m);
    *self = NULL;
}

static int json_int(const cJSON *root, const char *key, int fallback) {
    const cJSON *v = cJSON_GetObjectItem(root, key);
    return cJSON_IsNumber(v) ? (int)v->valuedouble : fallback;
}

int clip_text_config_read(const char *config_json, clip_text_config *out) {
    char *text = read_text_file(config_json, NULL);
    if (!text) return -1;
    cJSON *root = json_parse_config(text, config_json);
    free(text);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return ts_fail("%s: not a JSON object", config_json);
    }
    clip_text_config c = {0};
    c.vocab_size = json_int(root, "vocab_size", 49408);
    c.hidden = json_int(root, "hidden_size", 512);
    c.heads = json_int(root, "num_attention_heads", 8);
    c.layers = json_int(root, "num_hidden_layers", 12);
    c.intermediate = json_int(root, "intermediate_size", 2048);
    c.max_positions = json_int(root, "max_position_embeddings", 77);
    c.eos_token_id = json_int(root, "eos_token_id", 2);
    const cJSON *arch = cJSON_GetArrayItem(cJSON_GetObjectItem(root, "architectures"), 0);
    bool with_projection = cJSON_IsString(arch) && strstr(arch->valuestring, "WithProjection");
    c.projection_dim = with_projection ? json_int(root, "projection_dim", 512) : 0;
    const cJSON *act = cJSON_GetObjectItem(root, "hidden_act");
    const char *act_name = cJSON_IsString(act) ? act->valuestring : "quick_gelu";
    const cJSON *eps = cJSON_GetObjectItem(root, "layer_norm_eps");
    c.eps = cJSON_IsNumber(eps) ? (float)eps->valuedouble : 1e-5f;
    int rc = 0;
    if (strcmp(act_name, "quick_gelu") == 0) c.quick_gelu = true;
    else if (strcmp(act_name, "gelu") == 0) c.quick_gelu = false;
    else rc = ts_fail("%s: hidden_act '%s' is not quick_gelu or gelu", config_json, act_name);
    if (rc == 0 && (c.hidden <= 0 || c.heads <= 0 || c.hidden % c.heads || c.layers <= 0 || c.intermediate <= 0 ||
                    c.max_positions <= 0 || c.vocab_size <= 0))
        rc = ts_fail("%s: inconsistent sizes (hidden %d, heads %d, layers %d)", config_json, c.hidden, c.heads, c.layers);
    cJSON_Delete(root);
    if (rc == 0) *out = c;
    return rc;
}

/* ---- loading ----------------------------------------------------------- */

typedef struct {
    weight_binder *w;
    const char *prefix;
    int failed;
} loader;

/* name = prefix + printf(fmt, ...), checked against the shape (d1 = 0: 1-D). */
static tensor load_tensor(loader *L, int64_t d0, int64_t d1, const char *fmt, ...) TS_PRINTF(4, 5);
static tensor load_tensor(loader *L, int64_t d0, int64_t d1, const char *fmt, ...) {
    tensor t = {0};
    if (L->failed) return t;
    char name[512];
    int n = snprintf(name, sizeof name, "%s", L->prefix);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name + n, sizeof name - (size_t)n, fmt, ap);
    va_end(ap);
    int64_t shape[2] = {d0, d1};
    if (weight_binder_get(L->w, &t, SHARD_NONE_SPEC, d1 ? 2 : 1, shape, name) != 0) L->failed = 1;
    return t;
}

static bool has_tensor(const weight_binder *f, const char *prefix, const char *fmt, int i) {
    char name[512];
    int n = snprintf(name, sizeof name, "%s", prefix);
    snprintf(name + n, sizeof name - (size_t)n, fmt, i);
    return weight_binder_has(f, name);
}

/* The stored shape of a tensor (dims of at least 2 for the matrices asked about here). */
static int stored(const weight_binder *f, const char *name, int64_t shape[TENSOR_MAX_DIMS], int *ndim) {
    return weight_binder_shape(f, name, ndim, shape);
}

/* Shapes -> config, for files without a config.json. For HF names, prefix reaches the text
 * model and base the projection. */
static int infer_config(const weight_binder *f, const char *prefix, const char *base, clip_names names,
                        clip_text_config *c) {
    char name[512];
    int64_t emb[TENSOR_MAX_DIMS], fc1[TENSOR_MAX_DIMS], pos[TENSOR_MAX_DIMS], proj[TENSOR_MAX_DIMS];
    int nd;
    const char *emb_name = names == CLIP_NAMES_HF ? "embeddings.token_embedding.weight" : "token_embedding.weight";
    snprintf(name, sizeof name, "%s%s", prefix, emb_name);
    if (stored(f, name, emb, &nd) != 0) return -1;
    if (nd != 2) return ts_fail("%s: '%s' is not 2-D", weight_binder_path(f), name);
    memset(c, 0, sizeof *c);
    c->vocab_size = (int)emb[0];
    c->hidden = (int)emb[1];
    c->heads = c->hidden / 64 > 0 ? c->hidden / 64 : 1;
    c->eps = 1e-5f;
    c->eos_token_id = 2;
    c->quick_gelu = names == CLIP_NAMES_HF;
    const char *layer_fmt = names == CLIP_NAMES_HF ? "encoder.layers.%d.mlp.fc1.weight"
                                                   : "transformer.resblocks.%d.mlp.c_fc.weight";
    while (has_tensor(f, prefix, layer_fmt, c->layers)) c->layers++;
    if (c->layers == 0) return ts_fail("%s: no text transformer layers under '%s'", weight_binder_path(f), prefix);
    int n = snprintf(name, sizeof name, "%s", prefix);
    snprintf(name + n, sizeof name - (size_t)n, layer_fmt, 0);
    if (stored(f, name, fc1, &nd) != 0) return -1;
    c->intermediate = (int)fc1[0];
    snprintf(name, sizeof name, "%s%s", prefix,
             names == CLIP_NAMES_HF ? "embeddings.position_embedding.weight" : "positional_embedding");
    if (stored(f, name, pos, &nd) != 0) return -1;
    c->max_positions = (int)pos[0];
    snprintf(name, sizeof name, "%s%s", names == CLIP_NAMES_HF ? base : prefix,
             names == CLIP_NAMES_HF ? "text_projection.weight" : "text_projection");
    if (weight_binder_has(f, name) && stored(f, name, proj, &nd) == 0 && nd == 2)
        c->projection_dim = (int)(names == CLIP_NAMES_HF ? proj[0] : proj[1]);
    return 0;
}

/* L's prefix reaches the text model (".../text_model." or, for files without that level,
 * the prefix itself); base reaches text_projection. */
static void load_hf(loader *L, loader *base, clip_text_model *m) {
    const clip_text_config *c = &m->config;
    int64_t D = c->hidden, I = c->intermediate;
    m->token_embedding = load_tensor(L, c->vocab_size, D, "embeddings.token_embedding.weight");
    m->position_embedding = load_tensor(L, c->max_positions, D, "embeddings.position_embedding.weight");
    for (int i = 0; i < c->layers; i++) {
        clip_layer *l = &m->layers[i];
#define P "encoder.layers.%d."
        l->ln1_w = load_tensor(L, D, 0, P "layer_norm1.weight", i);
        l->ln1_b = load_tensor(L, D, 0, P "layer_norm1.bias", i);
        l->q_w = load_tensor(L, D, D, P "self_attn.q_proj.weight", i);
        l->q_b = load_tensor(L, D, 0, P "self_attn.q_proj.bias", i);
        l->k_w = load_tensor(L, D, D, P "self_attn.k_proj.weight", i);
        l->k_b = load_tensor(L, D, 0, P "self_attn.k_proj.bias", i);
        l->v_w = load_tensor(L, D, D, P "self_attn.v_proj.weight", i);
        l->v_b = load_tensor(L, D, 0, P "self_attn.v_proj.bias", i);
        l->out_w = load_tensor(L, D, D, P "self_attn.out_proj.weight", i);
        l->out_b = load_tensor(L, D, 0, P "self_attn.out_proj.bias", i);
        l->ln2_w = load_tensor(L, D, 0, P "layer_norm2.weight", i);
        l->ln2_b = load_tensor(L, D, 0, P "layer_norm2.bias", i);
        l->fc1_w = load_tensor(L, I, D, P "mlp.fc1.weight", i);
        l->fc1_b = load_tensor(L, I, 0, P "mlp.fc1.bias", i);
        l->fc2_w = load_tensor(L, D, I, P "mlp.fc2.weight", i);
        l->fc2_b = load_tensor(L, D, 0, P "mlp.fc2.bias", i);
#undef P
    }
    m->final_ln_w = load_tensor(L, D, 0, "final_layer_norm.weight");
    m->final_ln_b = load_tensor(L, D, 0, "final_layer_norm.bias");
    if (c->projection_dim) m->projection = load_tensor(base, c->projection_dim, D, "text_projection.weight");
    if (base->failed) L->failed = 1;
}

/* Rows [part*D, (part+1)*D) of a fused [3D, ...] in_proj tensor. */
static tensor third(loader *L, const tensor *fused, int part, int64_t D) {
    tensor t = {0};
    if (!L->failed && tensor_slice(&t, fused, 0, part * D, D) != 0) L->failed = 1;
    return t;
}

static void load_openclip(loader *L, clip_text_model *m) {
    const clip_text_config *c = &m->config;
    int64_t D = c->hidden, I = c->intermediate;
    m->token_embedding = load_tensor(L, c->vocab_size, D, "token_embedding.weight");
    m->position_embedding = load_tensor(L, c->max_positions, D, "positional_embedding");
    for (int i = 0; i < c->layers; i++) {
        clip_layer *l = &m->layers[i];
#define P "transformer.resblocks.%d."
        l->ln1_w = load_tensor(L, D, 0, P "ln_1.weight", i);
        l->ln1_b = load_tensor(L, D, 0, P "ln_1.bias", i);
        tensor in_w = load_tensor(L, 3 * D, D, P "attn.in_proj_weight", i);
        tensor in_b = load_tensor(L, 3 * D, 0, P "attn.in_proj_bias", i);
        l->q_w = third(L, &in_w, 0, D), l->k_w = third(L, &in_w, 1, D), l->v_w = third(L, &in_w, 2, D);
        l->q_b = third(L, &in_b, 0, D), l->k_b = third(L, &in_b, 1, D), l->v_b = third(L, &in_b, 2, D);
        l->out_w = load_tensor(L, D, D, P "attn.out_proj.weight", i);
        l->out_b = load_tensor(L, D, 0, P "attn.out_proj.bias", i);
        l->ln2_w = load_tensor(L, D, 0, P "ln_2.weight", i);
        l->ln2_b = load_tensor(L, D, 0, P "ln_2.bias", i);
        l->fc1_w = load_tensor(L, I, D, P "mlp.c_fc.weight", i);
        l->fc1_b = load_tensor(L, I, 0, P "mlp.c_fc.bias", i);
        l->fc2_w = load_tensor(L, D, I, P "mlp.c_proj.weight", i);
        l->fc2_b = load_tensor(L, D, 0, P "mlp.c_proj.bias", i);
#undef P
    }
    m->final_ln_w = load_tensor(L, D, 0, "ln_final.weight");
    m->final_ln_b = load_tensor(L, D, 0, "ln_final.bias");
    if (c->projection_dim) {
        tensor p = load_tensor(L, D, c->projection_dim, "text_projection");
        tensor pt;
        if (!L->failed && tensor_transpose(&pt, &p, 0, 1) == 0) {
            int64_t shape[2] = {c->projection_dim, D};
            m->projection_owned = tensor_new(DT_F32, 2, shape);
            if (tensor_copy(&m->projection_owned, &pt) != 0) L->failed = 1;
            m->projection = m->projection_owned;
            m->projection.owns_data = false;
        }
    }
}

clip_text_model *clip_text_load(const char *weights_path, const char *prefix, clip_names names,
                                const clip_text_config *config) {
    weight_binder *f = weight_binder_open(weights_path);
    if (!f) return NULL;
    clip_text_model *m = ts_calloc(1, sizeof *m);
    m->weights = f;
    /* HF names come with "text_model." (transformers 4, diffusers, CompVis files) or without
     * (transformers 5's CLIPTextModel, some early SD 1 checkpoints): take what the file has. */
    char inner[512];
    snprintf(inner, sizeof inner, "%s%s", prefix, names == CLIP_NAMES_HF ? "text_model." : "");
    char probe[600];
    snprintf(probe, sizeof probe, "%sembeddings.token_embedding.weight", inner);
    if (names == CLIP_NAMES_HF && !weight_binder_has(f, probe)) snprintf(inner, sizeof inner, "%s", prefix);
    if (config) m->config = *config;
    else if (infer_config(f, inner, prefix, names, &m->config) != 0) goto fail;
    const clip_text_config *c = &m->config;
    if (c->hidden % c->heads != 0) {
        ts_fail("%s: hidden size %d is not a multiple of %d heads", weights_path, c->hidden, c->heads);
        goto fail;
    }
    m->layers = ts_calloc((size_t)c->layers, sizeof *m->layers);
    loader L = {f, inner, 0}, base = {f, prefix, 0};
    if (names == CLIP_NAMES_HF) load_hf(&L, &base, m);
    else load_openclip(&L, m);
    if (L.failed) goto fail;
    log_debug("%s: CLIP text encoder '%s': %d layers, width %d, %d heads, mlp %d, %s%s", weights_path, prefix,
              c->layers, c->hidden, c->heads, c->intermediate, c->quick_gelu ? "quick_gelu" : "gelu",
              c->projection_dim ? ", with projection" : "");
    return m;
fail:
    ts_fail_wrap("loading the CLIP text encoder from %s", weights_path);
    clip_text_destroy(&m);
    return NULL;
}

/* ---- forward ----------------------------------------------------------- */

/* x [n, D] += self_attention(layer_norm1(x)) ; x += mlp(layer_norm2(x)). */
static int layer_forward(ts_ctx *ctx, const clip_text_model *m, const clip_layer *l, float *x, int n, float *h,
                         float *q, float *k, float *v, float *a, float *mlp) {
    const clip_text_config *c = &m->config;
    int D = c->hidden;
    if (layer_norm(ctx, h, x, n, D, &l->ln1_w, &l->ln1_b, c->eps) || linear(ctx, q, h, n, &l->q_w, &l->q_b) ||
        linear(ctx, k, h, n, &l->k_w, &l->k_b) || linear(ctx, v, h, n, &l->v_w, &l->v_b))
        return -1;
    attention_params p = {.batch = 1, .heads = c->heads, .head_dim = D / c->heads, .n_q = n, .n_kv = n,
                          .scale = 0.0f, .causal = true};
    attention(ctx, a, q, k, v, p);
    if (linear(ctx, h, a, n, &l->out_w, &l->out_b)) return -1;
    add_inplace(ctx, x, h, (int64_t)n * D);
    if (layer_norm(ctx, h, x, n, D, &l->ln2_w, &l->ln2_b, c->eps) || linear(ctx, mlp, h, n, &l->fc1_w, &l->fc1_b)) return -1;
    if (c->quick_gelu) quick_gelu(ctx, mlp, mlp, (int64_t)n * c->intermediate);
    else gelu_erf(ctx, mlp, mlp, (int64_t)n * c->intermediate);
    if (linear(ctx, h, mlp, n, &l->fc2_w, &l->fc2_b)) return -1;
    add_inplace(ctx, x, h, (int64_t)n * D);
    return 0;
}

/* Where transformers pools: argmax(ids) for the legacy eos_token_id 2, else the first EOS. */
static int pool_position(const clip_text_config *c, const int32_t *ids, int n) {
    int at = 0;
    for (int i = 0; i < n; i++) {
        if (c->eos_token_id == 2 ? ids[i] > ids[at] : ids[i] == c->eos_token_id) {
            at = i;
            if (c->eos_token_id != 2) break;
        }
    }
    return at;
}

int clip_text_forward(const clip_text_model *self, ts_ctx *ctx, const int32_t *ids, int n, int skip, bool final_norm,
                      float *hidden, float *pooled) {
    const clip_text_config *c = &self->config;
    int D = c->hidden;
    if (n <= 0 || n > c->max_positions) return ts_fail("CLIP text encoder: %d tokens (1..%d allowed)", n, c->max_positions);
    if (skip < 0 || skip > c->layers) return ts_fail("CLIP text encoder: cannot skip %d of %d layers", skip, c->layers);
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= c->vocab_size)
            return ts_fail("CLIP text encoder: token %d at position %d is outside the vocabulary (%d)", ids[i], i, c->vocab_size);
    size_t nd = (size_t)n * D, pooled_n = (size_t)(c->projection_dim ? c->projection_dim : D);
    /* activations in the context's memory; on a device the outputs too, copied back at the end */
    float *buf = ts_ctx_alloc(ctx, sizeof(float) * (nd * 7 + (size_t)n * c->intermediate));
    float *out_hidden = ts_stage_out(ctx, hidden, nd * sizeof(float));
    float *out_pooled = ts_stage_out(ctx, pooled, pooled_n * sizeof(float));
    int rc = -1;
    if (!buf || (hidden && !out_hidden) || (pooled && !out_pooled)) goto done;
    float *x = buf, *h = x + nd, *q = h + nd, *k = q + nd, *v = k + nd, *a = v + nd, *pos = a + nd, *mlp = pos + nd;
    /* Embeddings: token row + position row, widened from the file's dtype. */
    rc = gather_rows(ctx, x, &self->token_embedding, ids, n);
    if (rc == 0) rc = gather_rows(ctx, pos, &self->position_embedding, NULL, n);
    if (rc) goto done;
    add_inplace(ctx, x, pos, (int64_t)nd);
    int want = c->layers - skip, last = pooled ? c->layers : want;
    if (hidden && want == 0) copy_floats(ctx, out_hidden, x, (int64_t)nd);
    for (int l = 0; l < last && rc == 0; l++) {
        rc = layer_forward(ctx, self, &self->layers[l], x, n, h, q, k, v, a, mlp);
        if (hidden && l + 1 == want) copy_floats(ctx, out_hidden, x, (int64_t)nd);
    }
    if (rc == 0 && hidden && final_norm)
        rc = layer_norm(ctx, out_hidden, out_hidden, n, D, &self->final_ln_w, &self->final_ln_b, c->eps);
    if (rc == 0 && pooled) {
        int at = pool_position(c, ids, n);
        rc = layer_norm(ctx, h, x + (size_t)at * D, 1, D, &self->final_ln_w, &self->final_ln_b, c->eps);
        if (rc == 0 && c->projection_dim) rc = linear(ctx, out_pooled, h, 1, &self->projection, NULL);
        else if (rc == 0) copy_floats(ctx, out_pooled, h, D);
    }
done:
    if (rc == 0) {
        int bad = (hidden && ts_stage_finish(ctx, hidden, out_hidden, nd * sizeof(float))) |
                  (pooled && ts_stage_finish(ctx, pooled, out_pooled, pooled_n * sizeof(float)));
        if (bad || ts_ctx_synchronize(ctx)) rc = ts_fail_wrap("CLIP text encoder on %s", ts_ctx_backend_name(ctx));
    } else {
        ts_stage_release(ctx, hidden, out_hidden);
        ts_stage_release(ctx, pooled, out_pooled);
    }
    ts_ctx_free(ctx, buf);
    return rc;
}
