/* llm.c — the Llama-family decoder: loading from GGUF and Hugging Face folders, the KV
 * cache, and the batched forward pass (see llm.h). llama2.c checkpoints: llama2c.c. */
#include "models/llm/llm.h"
#include "models/formats/gguf.h"
#include "models/formats/llama2c.h"
#include "models/formats/model_files.h"
#include "models/formats/safetensors.h"
#include "models/formats/weight_binder.h"
#include "kernels/ops.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct llm {
    llm_config config;
    llm_weights weights;
    void *owner;
    void (*release)(void *);
    const gguf *gguf_file;
    const char *folder;
    char weight_type[128];        /* "Q8_0", or "Q5_0+Q8_0+Q4_K+Q6_K" for a mixed file */
};

/* The matrices' types in order of first use: a Q4_K_M file is not all Q4_K (rows that are not
 * a multiple of 256 fall back to Q5_0 / Q8_0), and the log should say so. */
static void describe_weight_types(char *out, size_t size, const llm_weights *w, int n_layers) {
    bool seen[DT_COUNT] = {false};
    size_t k = 0;
    out[0] = 0;
    for (int l = 0; l <= n_layers; l++) {   /* the blocks, then the embedding and output */
        const llm_layer *L = l < n_layers ? &w->layers[l] : NULL;
        const qmatrix *ms[7] = {&w->token_embd, &w->output};
        int n = 2;
        if (L) { const qmatrix *lm[7] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down}; memcpy(ms, lm, sizeof lm); n = 7; }
        for (int i = 0; i < n; i++) {
            dtype t = ms[i]->type;
            if ((unsigned)t >= DT_COUNT || seen[t]) continue;
            seen[t] = true;
            int wrote = snprintf(out + k, size - k, "%s%s", k ? "+" : "", dtype_name(t));
            if (wrote < 0 || (size_t)wrote >= size - k) return;   /* 15 names fit in 128 */
            k += (size_t)wrote;
        }
    }
}

/* ---- construction ------------------------------------------------------ */

llm *llm_new(const llm_config *config, const llm_weights *weights, void *owner, void (*release)(void *)) {
    llm *m = ts_calloc(1, sizeof *m);
    m->config = *config;
    m->weights = *weights;
    m->owner = owner;
    m->release = release;
    describe_weight_types(m->weight_type, sizeof m->weight_type, weights, config->n_layers);
    return m;
}

void llm_destroy(llm **self) {
    llm *m = *self;
    if (!m) return;
    if (m->release) m->release(m->owner);
    free(m->weights.layers);
    free(m->weights.rope_inv_freq);
    free(m);
    *self = NULL;
}

const llm_config *llm_get_config(const llm *self) { return &self->config; }
const llm_weights *llm_get_weights(const llm *self) { return &self->weights; }
const char *llm_weight_type(const llm *self) { return self->weight_type; }
const struct gguf *llm_gguf(const llm *self) { return self->gguf_file; }
const char *llm_folder(const llm *self) { return self->folder; }

int64_t llm_parameter_count(const llm *self) {
    const llm_config *c = &self->config;
    int64_t q = (int64_t)c->n_heads * c->head_dim, kv = (int64_t)c->n_kv_heads * c->head_dim;
    int64_t layer = 2 * c->dim + c->dim * (q + 2 * kv) + q * c->dim + 3 * (int64_t)c->dim * c->hidden_dim;
    if (c->qkv_bias) layer += q + 2 * kv;
    return (int64_t)c->vocab_size * c->dim * (c->tied_output ? 1 : 2) + c->dim + c->n_layers * layer;
}

float *llm_rope_frequencies(int head_dim, float theta) {
    float *f = ts_malloc((size_t)(head_dim / 2) * sizeof(float));
    for (int i = 0; i < head_dim / 2; i++) f[i] = 1.0f / powf(theta, (float)(2 * i) / (float)head_dim);
    return f;
}

void llm_rope_llama3_scaling(float *inv_freq, int head_dim, float factor, float low_freq_factor,
                             float high_freq_factor, float original_max_position) {
    float low_wavelen = original_max_position / low_freq_factor;
    float high_wavelen = original_max_position / high_freq_factor;
    for (int i = 0; i < head_dim / 2; i++) {
        float f = inv_freq[i];
        float wavelen = 2.0f * (float)M_PI / f;
        if (wavelen > low_wavelen) inv_freq[i] = f / factor;
        else if (wavelen >= high_wavelen) {
            float smooth = (original_max_position / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor);
            inv_freq[i] = (1.0f - smooth) * f / factor + smooth * f;
        }
    }
}

/* ---- the weight table: one row per tensor, named in both conventions ---- */

typedef enum { D_NONE, D_DIM, D_Q, D_KV, D_HIDDEN, D_VOCAB } dim_kind;

typedef struct {
    const char *gguf_name, *hf_name;   /* with %d for the layer */
    size_t offset;                     /* in llm_layer */
    bool matrix, optional;
    dim_kind rows, cols;               /* cols D_NONE: a vector of `rows` */
} weight_slot;

#define SLOT(g, h, field, mat, opt, r, c) {g, h, offsetof(llm_layer, field), mat, opt, r, c}
static const weight_slot layer_slots[] = {
    SLOT("blk.%d.attn_norm.weight", "model.layers.%d.input_layernorm.weight", attn_norm, false, false, D_DIM, D_NONE),
    SLOT("blk.%d.attn_q.weight", "model.layers.%d.self_attn.q_proj.weight", wq, true, false, D_Q, D_DIM),
    SLOT("blk.%d.attn_k.weight", "model.layers.%d.self_attn.k_proj.weight", wk, true, false, D_KV, D_DIM),
    SLOT("blk.%d.attn_v.weight", "model.layers.%d.self_attn.v_proj.weight", wv, true, false, D_KV, D_DIM),
    SLOT("blk.%d.attn_q.bias", "model.layers.%d.self_attn.q_proj.bias", bq, false, true, D_Q, D_NONE),
    SLOT("blk.%d.attn_k.bias", "model.layers.%d.self_attn.k_proj.bias", bk, false, true, D_KV, D_NONE),
    SLOT("blk.%d.attn_v.bias", "model.layers.%d.self_attn.v_proj.bias", bv, false, true, D_KV, D_NONE),
    SLOT("blk.%d.attn_output.weight", "model.layers.%d.self_attn.o_proj.weight", wo, true, false, D_DIM, D_Q),
    SLOT("blk.%d.ffn_norm.weight", "model.layers.%d.post_attention_layernorm.weight", ffn_norm, false, false, D_DIM, D_NONE),
    SLOT("blk.%d.ffn_gate.weight", "model.layers.%d.mlp.gate_proj.weight", w_gate, true, false, D_HIDDEN, D_DIM),
    SLOT("blk.%d.ffn_up.weight", "model.layers.%d.mlp.up_proj.weight", w_up, true, false, D_HIDDEN, D_DIM),
    SLOT("blk.%d.ffn_down.weight", "model.layers.%d.mlp.down_proj.weight", w_down, true, false, D_DIM, D_HIDDEN),
};
#undef SLOT

static int64_t dim_size(const llm_config *c, dim_kind k) {
    switch (k) {
    case D_DIM: return c->dim;
    case D_Q: return (int64_t)c->n_heads * c->head_dim;
    case D_KV: return (int64_t)c->n_kv_heads * c->head_dim;
    case D_HIDDEN: return c->hidden_dim;
    case D_VOCAB: return c->vocab_size;
    default: return 0;
    }
}

/* Where tensors come from (a GGUF file or a folder of safetensors shards, through the one
 * weight binder), and how a LLaVA folder renames them. */
typedef struct {
    const char *label;
    weight_binder *b;
    int llava_names;   /* LLaVA folder: 1 "language_model." + name (transformers < 4.52),
                          2 "model." -> "model.language_model." (later) */
} weight_source;

/* The name a Hugging Face LLM tensor has inside a LlavaForConditionalGeneration folder. */
static const char *llava_tensor_name(const weight_source *src, const char *name, char *buf, size_t size) {
    if (src->llava_names == 1) snprintf(buf, size, "language_model.%s", name);
    else if (src->llava_names == 2 && strncmp(name, "model.", 6) == 0) snprintf(buf, size, "model.language_model.%s", name + 6);
    else return name;
    return buf;
}

static bool source_has(const weight_source *src, const char *name) {
    char renamed[256];
    return weight_binder_has(src->b, llava_tensor_name(src, name, renamed, sizeof renamed));
}

/* Matrices may be block-quantized (GGUF); they are used through qmatrix views by qmatmul. */
static int load_matrix(const weight_source *src, const char *name, int64_t rows, int64_t cols, qmatrix *out) {
    char renamed[256];
    const char *stored = llava_tensor_name(src, name, renamed, sizeof renamed);
    tensor t;
    if (weight_binder_get_quantized(src->b, &t, SHARD_NONE_SPEC, 2, (const int64_t[]){rows, cols}, stored)) return -1;
    return qmatrix_view(out, t.type, rows, cols, t.data, name);
}

/* Vectors (norm weights, biases) are used through `const tensor *` by ops.h. */
static int load_vector(const weight_source *src, const char *name, int64_t n, bool optional, tensor *out) {
    memset(out, 0, sizeof *out);
    if (!source_has(src, name)) return optional ? 0 : ts_fail("%s: no tensor '%s'", src->label, name);
    char renamed[256];
    return weight_binder_get(src->b, out, SHARD_NONE_SPEC, 1, (const int64_t[]){n},
                             llava_tensor_name(src, name, renamed, sizeof renamed));
}

static int check_config(const llm_config *c, const char *label) {
    if (c->dim <= 0 || c->hidden_dim <= 0 || c->n_layers <= 0 || c->n_heads <= 0 || c->n_kv_heads <= 0 ||
        c->head_dim <= 0 || c->vocab_size <= 0 || c->head_dim % 2 || c->n_heads % c->n_kv_heads ||
        c->n_layers > 4096 || c->dim > (1 << 20) || c->hidden_dim > (1 << 22) || c->n_heads > 4096)
        return ts_fail("%s: bad model config: dim %d, hidden %d, layers %d, heads %d, kv heads %d, head dim %d, vocab %d",
                       label, c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads, c->head_dim, c->vocab_size);
    if (!(c->norm_eps > 0) || !(c->rope_theta > 0)) return ts_fail("%s: bad norm eps %g or rope theta %g", label, c->norm_eps, c->rope_theta);
    return 0;
}

/* Fills the weights from a source, given the config (vocab size already known). */
static int load_weights(const weight_source *src, llm_config *c, bool hf, llm_weights *w) {
    memset(w, 0, sizeof *w);
    const char *embd = hf ? "model.embed_tokens.weight" : "token_embd.weight";
    if (load_matrix(src, embd, c->vocab_size, c->dim, &w->token_embd)) return -1;
    if (load_vector(src, hf ? "model.norm.weight" : "output_norm.weight", c->dim, false, &w->out_norm)) return -1;
    const char *out_name = hf ? "lm_head.weight" : "output.weight";
    if (source_has(src, out_name) && !c->tied_output) {
        if (load_matrix(src, out_name, c->vocab_size, c->dim, &w->output)) return -1;
    } else {
        c->tied_output = true;
        w->output = w->token_embd;
    }
    w->layers = ts_calloc((size_t)c->n_layers, sizeof(llm_layer));
    c->qkv_bias = false;
    for (int l = 0; l < c->n_layers; l++)
        for (size_t i = 0; i < sizeof layer_slots / sizeof layer_slots[0]; i++) {
            const weight_slot *s = &layer_slots[i];
            char name[128];
            snprintf(name, sizeof name, hf ? s->hf_name : s->gguf_name, l);
            void *field = (char *)&w->layers[l] + s->offset;
            int rc = s->matrix ? load_matrix(src, name, dim_size(c, s->rows), dim_size(c, s->cols), field)
                               : load_vector(src, name, dim_size(c, s->rows), s->optional, field);
            if (rc) { free(w->layers); w->layers = NULL; return -1; }
            if (s->optional && ((tensor *)field)->data) c->qkv_bias = true;
        }
    return 0;
}

/* ---- GGUF -------------------------------------------------------------- */

static void release_binder(void *p) { weight_binder *b = p; weight_binder_destroy(&b); }

/* Per architecture: the RoPE pairing. llama.cpp's converter permutes the q/k rows of
 * "llama" models so that adjacent pairs rotate; other families keep HF's halves. */
static const struct { const char *arch; rope_style rope; } gguf_archs[] = {
    {"llama", ROPE_INTERLEAVED}, {"mistral", ROPE_INTERLEAVED}, {"qwen2", ROPE_NEOX},
};

static llm *open_gguf(const char *path) {
    weight_binder *b = weight_binder_open(path);
    gguf *g = b ? weight_binder_gguf(b) : NULL;
    if (!g) {
        if (b) ts_fail("%s: not a GGUF file", path);
        weight_binder_destroy(&b);
        return NULL;
    }
    llm_config c = {0};
    llm_weights w;
    gguf_str arch;
    char key[128];
    int64_t v;
    double f;
    bool known = false;
    if (gguf_get_string(g, "general.architecture", &arch)) goto fail;
    snprintf(c.arch, sizeof c.arch, "%.*s", (int)(arch.len < 31 ? arch.len : 31), arch.ptr);
    for (size_t i = 0; i < sizeof gguf_archs / sizeof gguf_archs[0]; i++)
        if (strcmp(c.arch, gguf_archs[i].arch) == 0) { c.rope = gguf_archs[i].rope; known = true; }
    if (!known) { ts_fail("%s: architecture '%s' is not supported (llama, mistral, qwen2)", path, c.arch); goto fail; }
#define GET_INT(suffix, field) \
    do { snprintf(key, sizeof key, "%s." suffix, c.arch); if (gguf_get_int(g, key, &v)) goto fail; c.field = (int)v; } while (0)
#define GET_INT_OR(suffix, field, dflt) \
    do { snprintf(key, sizeof key, "%s." suffix, c.arch); if (gguf_get_int_or(g, key, dflt, &v)) goto fail; c.field = (int)v; } while (0)
    GET_INT("embedding_length", dim);
    GET_INT("feed_forward_length", hidden_dim);
    GET_INT("block_count", n_layers);
    GET_INT("attention.head_count", n_heads);
    GET_INT_OR("attention.head_count_kv", n_kv_heads, c.n_heads);
    GET_INT_OR("context_length", max_seq_len, 4096);
    GET_INT_OR("attention.key_length", head_dim, c.n_heads > 0 ? c.dim / c.n_heads : 0);
#undef GET_INT
#undef GET_INT_OR
    snprintf(key, sizeof key, "%s.attention.layer_norm_rms_epsilon", c.arch);
    if (gguf_get_float_or(g, key, 1e-5, &f)) goto fail;
    c.norm_eps = (float)f;
    snprintf(key, sizeof key, "%s.rope.freq_base", c.arch);
    if (gguf_get_float_or(g, key, 10000.0, &f)) goto fail;
    c.rope_theta = (float)f;
    if (gguf_get_int_or(g, "tokenizer.ggml.bos_token_id", -1, &v)) goto fail;
    c.bos_id = (int)v;
    if (gguf_get_int_or(g, "tokenizer.ggml.eos_token_id", -1, &v)) goto fail;
    c.eos_id = (int)v;
    const gguf_tensor *embd = gguf_find_tensor(g, "token_embd.weight");
    if (!embd || embd->ndim != 2) { ts_fail("%s: no 2-D tensor 'token_embd.weight'", path); goto fail; }
    c.vocab_size = (int)embd->shape[0];
    if (check_config(&c, path)) goto fail;
    weight_source src = {path, b, 0};
    if (load_weights(&src, &c, false, &w)) goto fail;
    w.rope_inv_freq = llm_rope_frequencies(c.head_dim, c.rope_theta);
    /* Llama 3 frequency scaling travels as per-frequency divisors (llama.cpp). */
    const gguf_tensor *rf = gguf_find_tensor(g, "rope_freqs.weight");
    if (rf) {
        if (rf->ggml_type != GGML_F32 || rf->ndim != 1 || rf->shape[0] != c.head_dim / 2) {
            ts_fail("%s: tensor 'rope_freqs.weight' must be F32 [%d]", path, c.head_dim / 2);
            free(w.layers); free(w.rope_inv_freq); goto fail;
        }
        for (int i = 0; i < c.head_dim / 2; i++) {
            float d;
            memcpy(&d, (const float *)rf->data + i, 4);
            w.rope_inv_freq[i] /= d;
        }
    }
    llm *m = llm_new(&c, &w, b, release_binder);
    m->gguf_file = g;
    return m;
fail:
    weight_binder_destroy(&b);
    return NULL;
}

/* ---- Hugging Face folder ----------------------------------------------- */

typedef struct {
    weight_binder *b;
    char *folder;
} hf_files;

static void release_hf(void *p) {
    hf_files *h = p;
    weight_binder_destroy(&h->b);
    free(h->folder);
    free(h);
}

static double json_num(const cJSON *obj, const char *key, double dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}


/* LlavaForConditionalGeneration (models/vision/llava.h): the LLM is its text_config, where
 * transformers writes only what differs from the family's defaults; this puts the text
 * config, completed with LlamaConfig's / Qwen2Config's / MistralConfig's defaults, in
 * place of *cfg. Returns whether it was a LLaVA config. */
static bool llava_text_config(cJSON **cfg) {
    const cJSON *archs = cJSON_GetObjectItemCaseSensitive(*cfg, "architectures");
    const cJSON *a0 = cJSON_IsArray(archs) ? cJSON_GetArrayItem(archs, 0) : NULL;
    if (!cJSON_IsString(a0) || strcmp(a0->valuestring, "LlavaForConditionalGeneration") != 0) return false;
    cJSON *text = cJSON_DetachItemFromObjectCaseSensitive(*cfg, "text_config");
    cJSON_Delete(*cfg);
    *cfg = text = cJSON_IsObject(text) ? text : (cJSON_Delete(text), cJSON_CreateObject());
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(text, "model_type");
    const char *type = cJSON_IsString(mt) ? mt->valuestring : "llama";
    bool qwen2 = strcmp(type, "qwen2") == 0, mistral = strcmp(type, "mistral") == 0;
    const char *arch = qwen2 ? "Qwen2ForCausalLM" : mistral ? "MistralForCausalLM" : strcmp(type, "llama") == 0 ? "LlamaForCausalLM" : type;
    if (!cJSON_GetObjectItemCaseSensitive(text, "architectures")) {
        cJSON *a = cJSON_AddArrayToObject(text, "architectures");
        cJSON_AddItemToArray(a, cJSON_CreateString(arch));
    }
    const char *keys[] = {"vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                          "max_position_embeddings", "rms_norm_eps", "rope_theta", "bos_token_id", "eos_token_id"};
    double llama[] = {32000, 4096, 11008, 32, 32, 2048, 1e-6, 10000, 1, 2};
    double qwen[] = {151936, 4096, 22016, 32, 32, 32768, 1e-6, 10000, -1, -1};
    double mistr[] = {32000, 4096, 14336, 32, 32, 131072, 1e-6, 10000, 1, 2};
    const double *d = qwen2 ? qwen : mistral ? mistr : llama;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (!cJSON_GetObjectItemCaseSensitive(text, keys[i]) && d[i] >= 0) cJSON_AddNumberToObject(text, keys[i], d[i]);
    if (mistral && !cJSON_GetObjectItemCaseSensitive(text, "num_key_value_heads")) cJSON_AddNumberToObject(text, "num_key_value_heads", 8);
    return true;
}

static llm *open_hf(const char *folder) {
    char path[4096];
    size_t size;
    snprintf(path, sizeof path, "%s/config.json", folder);
    char *text = read_text_file(path, &size);
    if (!text) return NULL;
    cJSON *cfg = cJSON_Parse(text);
    free(text);
    if (!cfg) { ts_fail("%s: not valid JSON", path); return NULL; }
    llm_config c = {0};
    llm_weights w;
    hf_files *h = ts_calloc(1, sizeof *h);
    h->folder = ts_strdup(folder);
    bool llava = llava_text_config(&cfg);
    const cJSON *archs = cJSON_GetObjectItemCaseSensitive(cfg, "architectures");
    const cJSON *a0 = cJSON_IsArray(archs) ? cJSON_GetArrayItem(archs, 0) : NULL;
    const char *arch = cJSON_IsString(a0) ? a0->valuestring : "";
    if (strcmp(arch, "LlamaForCausalLM") == 0 || strcmp(arch, "MistralForCausalLM") == 0) snprintf(c.arch, sizeof c.arch, "llama");
    else if (strcmp(arch, "Qwen2ForCausalLM") == 0) snprintf(c.arch, sizeof c.arch, "qwen2");
    else { ts_fail("%s: architecture '%s' is not supported (LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM)", path, arch); goto fail; }
    c.rope = ROPE_NEOX; /* HF checkpoints use rotate_half */
    c.dim = (int)json_num(cfg, "hidden_size", 0);
    c.hidden_dim = (int)json_num(cfg, "intermediate_size", 0);
    c.n_layers = (int)json_num(cfg, "num_hidden_layers", 0);
    c.n_heads = (int)json_num(cfg, "num_attention_heads", 0);
    c.n_kv_heads = (int)json_num(cfg, "num_key_value_heads", c.n_heads);
    c.head_dim = (int)json_num(cfg, "head_dim", c.n_heads > 0 ? c.dim / c.n_heads : 0);
    c.vocab_size = (int)json_num(cfg, "vocab_size", 0);
    c.max_seq_len = (int)json_num(cfg, "max_position_embeddings", 4096);
    c.norm_eps = (float)json_num(cfg, "rms_norm_eps", 1e-6);
    const cJSON *tie = cJSON_GetObjectItemCaseSensitive(cfg, "tie_word_embeddings");
    c.tied_output = cJSON_IsBool(tie) ? cJSON_IsTrue(tie) : false;
    c.bos_id = (int)json_num(cfg, "bos_token_id", -1);
    const cJSON *eos = cJSON_GetObjectItemCaseSensitive(cfg, "eos_token_id");
    c.eos_id = cJSON_IsNumber(eos) ? eos->valueint
             : cJSON_IsArray(eos) && cJSON_IsNumber(cJSON_GetArrayItem(eos, 0)) ? cJSON_GetArrayItem(eos, 0)->valueint : -1;
    /* RoPE settings: transformers 4 writes rope_theta + rope_scaling, 5 writes rope_parameters. */
    const cJSON *rp = cJSON_GetObjectItemCaseSensitive(cfg, "rope_parameters");
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(cfg, "rope_scaling");
    c.rope_theta = (float)json_num(cfg, "rope_theta", json_num(rp, "rope_theta", 10000.0));
    const cJSON *scaling = cJSON_IsObject(rs) ? rs : rp;
    const cJSON *rtype = cJSON_GetObjectItemCaseSensitive(scaling, "rope_type");
    if (!cJSON_IsString(rtype)) rtype = cJSON_GetObjectItemCaseSensitive(scaling, "type");
    const char *rope_type = cJSON_IsString(rtype) ? rtype->valuestring : "default";
    if (strcmp(rope_type, "default") != 0 && strcmp(rope_type, "llama3") != 0) {
        ts_fail("%s: rope type '%s' is not supported (default, llama3)", path, rope_type);
        goto fail;
    }
    if (check_config(&c, path) || !(h->b = weight_binder_open(folder))) goto fail;
    weight_source src = {folder, h->b, 0};
    if (llava) src.llava_names = weight_binder_has(h->b, "language_model.model.embed_tokens.weight") ? 1 : 2;
    if (load_weights(&src, &c, true, &w)) goto fail;
    w.rope_inv_freq = llm_rope_frequencies(c.head_dim, c.rope_theta);
    if (strcmp(rope_type, "llama3") == 0)
        llm_rope_llama3_scaling(w.rope_inv_freq, c.head_dim, (float)json_num(scaling, "factor", 8.0),
                                (float)json_num(scaling, "low_freq_factor", 1.0), (float)json_num(scaling, "high_freq_factor", 4.0),
                                (float)json_num(scaling, "original_max_position_embeddings", 8192.0));
    cJSON_Delete(cfg);
    llm *m = llm_new(&c, &w, h, release_hf);
    m->folder = h->folder;
    return m;
fail:
    cJSON_Delete(cfg);
    release_hf(h);
    return NULL;
}

llm *llm_open(const char *path) {
    llm *m = NULL;
    size_t n = strlen(path);
    if (model_is_folder(path)) m = open_hf(path);
    else if (n > 5 && strcmp(path + n - 5, ".gguf") == 0) m = open_gguf(path);
    else {
        FILE *f = fopen(path, "rb");
        if (!f) { ts_fail("%s: cannot open", path); return NULL; }
        char magic[4] = {0};
        size_t got = fread(magic, 1, 4, f);
        fclose(f);
        m = got == 4 && memcmp(magic, "GGUF", 4) == 0 ? open_gguf(path) : llama2c_open(path);
    }
    if (m) log_info("%s: %s, %d layers, dim %d, %d heads (%d kv), vocab %d, weights %s", path, m->config.arch,
                    m->config.n_layers, m->config.dim, m->config.n_heads, m->config.n_kv_heads, m->config.vocab_size,
                    m->weight_type);
    return m;
}

/* ---- run state --------------------------------------------------------- */

struct llm_state {
    ts_ctx *ctx;                /* where the forward passes run; borrowed */
    int max_seqs, max_ctx, max_batch;
    int kv_dim, n_layers;
    float *k_cache, *v_cache;   /* [layer][seq][pos][kv_dim] */
    float *x, *xb, *q, *k, *v, *att, *hb, *hb2;
    float *embeddings, *logits; /* a device's copies of the caller's (NULL on a host context) */
};

llm_state *llm_state_new(const llm *m, ts_ctx *ctx, int max_seqs, int max_ctx, int max_batch) {
    const llm_config *c = &m->config;
    if (max_ctx <= 0) max_ctx = c->max_seq_len;
    if (max_seqs <= 0 || max_batch <= 0 || max_ctx <= 0) { ts_fail("llm_state_new: bad sizes"); return NULL; }
    if (!ctx) { ts_fail("llm_state_new: no context to compute in"); return NULL; }
    llm_state *s = ts_calloc(1, sizeof *s);
    s->ctx = ctx;
    s->max_seqs = max_seqs;
    s->max_ctx = max_ctx;
    s->max_batch = max_batch;
    s->kv_dim = c->n_kv_heads * c->head_dim;
    s->n_layers = c->n_layers;
    /* the KV cache and activations live in the context's memory (a device's, on a GPU) */
    size_t cache = (size_t)c->n_layers * (size_t)max_seqs * (size_t)max_ctx * (size_t)s->kv_dim;
    size_t B = (size_t)max_batch, qd = (size_t)c->n_heads * (size_t)c->head_dim;
    size_t wide = (size_t)(c->dim > (int)qd ? c->dim : (int)qd), vocab = (size_t)c->vocab_size;
    size_t sizes[] = {cache, cache, B * (size_t)c->dim, B * wide, B * qd, B * (size_t)s->kv_dim, B * (size_t)s->kv_dim,
                      B * qd, B * (size_t)c->hidden_dim, B * (size_t)c->hidden_dim, B * (size_t)c->dim, B * vocab};
    float **bufs[] = {&s->k_cache, &s->v_cache, &s->x, &s->xb, &s->q, &s->k, &s->v, &s->att, &s->hb, &s->hb2,
                      &s->embeddings, &s->logits};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) {
        /* a host context reads embeddings and writes logits where the caller says */
        if (ts_ctx_host_memory(ctx) && (bufs[i] == &s->embeddings || bufs[i] == &s->logits)) continue;
        *bufs[i] = ts_ctx_alloc(ctx, sizes[i] * sizeof(float));
        if (!*bufs[i]) {
            ts_fail_wrap("llm_state_new: %zu MB of %s memory", sizes[i] * sizeof(float) >> 20, ts_ctx_backend_name(ctx));
            llm_state_destroy(&s);
            return NULL;
        }
    }
    return s;
}

void llm_state_destroy(llm_state **self) {
    llm_state *s = *self;
    if (!s) return;
    float *bufs[] = {s->k_cache, s->v_cache, s->x, s->xb, s->q, s->k, s->v, s->att, s->hb, s->hb2, s->embeddings, s->logits};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) ts_ctx_free(s->ctx, bufs[i]);
    free(s);
    *self = NULL;
}

int llm_state_max_seqs(const llm_state *self) { return self->max_seqs; }
int llm_state_max_ctx(const llm_state *self) { return self->max_ctx; }
int llm_state_max_batch(const llm_state *self) { return self->max_batch; }
ts_ctx *llm_state_context(const llm_state *self) { return self->ctx; }

/* ---- the forward pass -------------------------------------------------- */

static inline size_t cache_at(const llm_state *s, int layer, int seq, int pos) {
    return (((size_t)layer * (size_t)s->max_seqs + (size_t)seq) * (size_t)s->max_ctx + (size_t)pos) * (size_t)s->kv_dim;
}

int llm_forward(const llm *m, llm_state *s, int n, const int *tokens, const int *seqs, const int *pos,
                int n_out, const int *out_rows, float *logits) {
    return llm_forward_embeddings(m, s, n, tokens, NULL, seqs, pos, n_out, out_rows, logits);
}

int llm_forward_embeddings(const llm *m, llm_state *s, int n, const int *tokens, const float *embeddings,
                           const int *seqs, const int *pos, int n_out, const int *out_rows, float *logits) {
    const llm_config *c = &m->config;
    const llm_weights *w = &m->weights;
    const int D = c->dim, qd = c->n_heads * c->head_dim, kvd = s->kv_dim;
    ts_ctx *ctx = s->ctx;
    if (n <= 0 || n > s->max_batch) return ts_fail("llm_forward: batch of %d tokens (1 to %d allowed)", n, s->max_batch);
    for (int i = 0; i < n; i++) {
        bool embedded = tokens[i] == LLM_EMBEDDING_ROW && embeddings;
        if (!embedded && (tokens[i] < 0 || tokens[i] >= c->vocab_size))
            return ts_fail("llm_forward: token id %d at batch row %d is outside the vocabulary (%d)", tokens[i], i, c->vocab_size);
        if (seqs[i] < 0 || seqs[i] >= s->max_seqs)
            return ts_fail("llm_forward: sequence %d at batch row %d (state holds %d)", seqs[i], i, s->max_seqs);
        if (pos[i] < 0 || pos[i] >= s->max_ctx)
            return ts_fail("llm_forward: position %d at batch row %d is past the context (%d)", pos[i], i, s->max_ctx);
    }
    if (embeddings && s->embeddings) {   /* the caller's host rows, to the device */
        if (ts_ctx_upload(ctx, s->embeddings, embeddings, (size_t)n * D * sizeof(float)))
            return ts_fail_wrap("llm_forward: embeddings to %s", ts_ctx_backend_name(ctx));
        embeddings = s->embeddings;
    }
    for (int i = 0; i < n; i++) {
        if (tokens[i] == LLM_EMBEDDING_ROW) copy_floats(ctx, s->x + (size_t)i * D, embeddings + (size_t)i * D, D);
        else qmatrix_gather(ctx, s->x + (size_t)i * D, &w->token_embd, &tokens[i], 1);
    }
    kv_attention_params kv = {.n = n, .heads = c->n_heads, .kv_heads = c->n_kv_heads, .head_dim = c->head_dim,
                              .seqs = seqs, .pos = pos, .seq_stride = (int64_t)s->max_ctx * kvd, .row_stride = kvd,
                              .max_ctx = s->max_ctx};

    for (int l = 0; l < c->n_layers; l++) {
        const llm_layer *L = &w->layers[l];
        /* attention */
        if (rms_norm(ctx, s->xb, s->x, n, D, &L->attn_norm, c->norm_eps)) return -1;
        qmatmul(ctx, s->q, s->xb, n, &L->wq);
        qmatmul(ctx, s->k, s->xb, n, &L->wk);
        qmatmul(ctx, s->v, s->xb, n, &L->wv);
        if (L->bq.data) add_row_bias(ctx, s->q, n, qd, &L->bq);
        if (L->bk.data) add_row_bias(ctx, s->k, n, kvd, &L->bk);
        if (L->bv.data) add_row_bias(ctx, s->v, n, kvd, &L->bv);
        rope(ctx, s->q, qd, n, c->n_heads, c->head_dim, pos, w->rope_inv_freq, c->rope == ROPE_NEOX);
        rope(ctx, s->k, kvd, n, c->n_kv_heads, c->head_dim, pos, w->rope_inv_freq, c->rope == ROPE_NEOX);
        for (int i = 0; i < n; i++) {   /* each row's keys and values into its sequence's cache */
            size_t at = cache_at(s, l, seqs[i], pos[i]);
            copy_floats(ctx, s->k_cache + at, s->k + (size_t)i * kvd, kvd);
            copy_floats(ctx, s->v_cache + at, s->v + (size_t)i * kvd, kvd);
        }
        size_t layer_cache = cache_at(s, l, 0, 0);
        attention_kv(ctx, s->att, s->q, s->k_cache + layer_cache, s->v_cache + layer_cache, kv);
        qmatmul(ctx, s->xb, s->att, n, &L->wo);
        add_inplace(ctx, s->x, s->xb, (int64_t)n * D);
        /* feed-forward: down(silu(ctx, gate(x)) * up(x)) */
        if (rms_norm(ctx, s->xb, s->x, n, D, &L->ffn_norm, c->norm_eps)) return -1;
        qmatmul(ctx, s->hb, s->xb, n, &L->w_gate);
        qmatmul(ctx, s->hb2, s->xb, n, &L->w_up);
        swiglu(ctx, s->hb, s->hb, s->hb2, n, c->hidden_dim);
        qmatmul(ctx, s->xb, s->hb, n, &L->w_down);
        add_inplace(ctx, s->x, s->xb, (int64_t)n * D);
    }

    /* final norm and the output projection, only for the rows asked for */
    if (!out_rows) n_out = n;
    if (n_out <= 0) return 0;
    for (int j = 0; j < n_out; j++) {
        int r = out_rows ? out_rows[j] : j;
        if (r < 0 || r >= n) return ts_fail("llm_forward: output row %d is outside the batch of %d", r, n);
        copy_floats(ctx, s->xb + (size_t)j * D, s->x + (size_t)r * D, D);
    }
    if (rms_norm(ctx, s->xb, s->xb, n_out, D, &w->out_norm, c->norm_eps)) return -1;
    float *out = s->logits ? s->logits : logits;   /* logits are the caller's host memory */
    qmatmul(ctx, out, s->xb, n_out, &w->output);
    if ((out != logits && ts_ctx_download(ctx, logits, out, (size_t)n_out * c->vocab_size * sizeof(float))) ||
        ts_ctx_synchronize(ctx))
        return ts_fail_wrap("llm_forward on %s", ts_ctx_backend_name(ctx));
    return 0;
}
