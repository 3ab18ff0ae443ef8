/*
 * unet.c — the U-Net as a table of blocks, its weights in either file layout, and the one
 * forward function that walks the table. See unet.h for the API.
 *
 * The table, for levels l = 0..L-1 with lpb ResNets each:
 *   conv_in                                              push
 *   per level: lpb x (ResNet [+ Transformer2D])          push after each
 *              Downsample (not after the last level)     push
 *   mid: ResNet, Transformer2D, ResNet
 *   per level from the deepest out: (lpb+1) x (pop+concat, ResNet [+ Transformer2D])
 *              Upsample (not after level 0)
 *   conv_norm_out, SiLU, conv_out
 * Block names exist in two spellings, diffusers (down_blocks.1.resnets.0) and CompVis
 * (input_blocks.4.0); the table records both and the loader picks the file's.
 *
 * Activations are NCHW float32 in the arena. Inside a transformer the tokens are
 * [B*HW, C] rows; proj_in/proj_out are GEMMs that read and write NCHW directly, so no
 * layout switch is ever materialised.
 */
#include "models/diffusion/unet.h"

#include "kernels/ops.h"
#include "models/formats/model_files.h"
#include "models/diffusion/unet_internal.h"

#include <math.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    tensor w, b;                      /* b.data NULL when the layer has no bias */
} wb;

typedef enum { BLK_CONV_IN, BLK_RESNET, BLK_TRANSFORMER, BLK_DOWNSAMPLE, BLK_UPSAMPLE, BLK_OUT } block_kind;

typedef struct {                      /* one BasicTransformerBlock */
    wb norm1, q1, k1, v1, out1;       /* self-attention */
    wb norm2, q2, k2, v2, out2;       /* cross-attention: k, v read the text context */
    wb norm3, ff_in, ff_out;          /* GEGLU feed-forward */
} transformer_layer;

typedef struct {
    block_kind kind;
    int in_ch, out_ch;                /* in_ch includes a concatenated skip */
    int skip_ch;                      /* > 0: pop a skip of this many channels, concat after h */
    bool push;                        /* push the output as a skip */
    int heads, depth;                 /* transformer */
    char name[2][64];                 /* diffusers / CompVis prefix */
    /* ResNet: norm1 conv1 time_proj norm2 conv2 [shortcut]. Transformer: norm1 = norm,
     * conv1 = proj_in, conv2 = proj_out. Convs and the output block: norm1, conv1. */
    wb norm1, conv1, time_proj, norm2, conv2, shortcut;
    transformer_layer *layers;
} block;

enum { LAYOUT_DIFFUSERS = 0, LAYOUT_COMPVIS = 1 };


struct unet {
    unet_config cfg;
    int time_dim;                     /* 4 * block_out_channels[0] */
    wb time_1, time_2, add_1, add_2;  /* time embedding and SDXL's added embedding */
    block *blocks;
    int block_count, max_skips;
    safetensors *file;                /* weights map into it; NULL for random weights */
    void **owned;                     /* random weights */
    int owned_count;
    size_t weight_bytes;
    int64_t param_count;
    int64_t max_row_len;              /* longest weight row (elements), for the widening scratch */
    float *scratch;                   /* per thread: a block of weight rows widened to F32 (weight_gemm) */
    size_t scratch_per_thread;
    int scratch_threads;
    arena *arena;
    size_t arena_capacity;
    bool profiling;
    unet_profile prof;
    int force_split;                  /* tests only: see unet_debug_force_split */
};

/* ---- the table ---------------------------------------------------------- */

static block *add_block(unet *u, block_kind kind, int in_ch, int out_ch) {
    u->blocks = ts_realloc(u->blocks, (size_t)(u->block_count + 1) * sizeof *u->blocks);
    block *b = &u->blocks[u->block_count++];
    memset(b, 0, sizeof *b);
    b->kind = kind;
    b->in_ch = in_ch;
    b->out_ch = out_ch;
    return b;
}

static void block_names(block *b, const char *diffusers, const char *compvis) {
    snprintf(b->name[LAYOUT_DIFFUSERS], sizeof b->name[0], "%s", diffusers);
    snprintf(b->name[LAYOUT_COMPVIS], sizeof b->name[1], "%s", compvis);
}

static void build_table(unet *u) {
    const unet_config *c = &u->cfg;
    int L = c->levels, lpb = c->layers_per_block;
    char dn[64], cn[64];
    int skips[UNET_MAX_LEVELS * 8 + 2], nskips = 0;   /* channel count of each pushed skip */

    block *b = add_block(u, BLK_CONV_IN, c->in_channels, c->block_out_channels[0]);
    block_names(b, "conv_in", "input_blocks.0.0");
    b->push = true;
    skips[nskips++] = b->out_ch;

    int ch = c->block_out_channels[0], k = 1;
    for (int l = 0; l < L; l++) {
        int out = c->block_out_channels[l];
        for (int j = 0; j < lpb; j++, k++) {
            b = add_block(u, BLK_RESNET, ch, out);
            snprintf(dn, sizeof dn, "down_blocks.%d.resnets.%d", l, j);
            snprintf(cn, sizeof cn, "input_blocks.%d.0", k);
            block_names(b, dn, cn);
            ch = out;
            if (c->down_attention[l]) {
                b = add_block(u, BLK_TRANSFORMER, ch, ch);
                snprintf(dn, sizeof dn, "down_blocks.%d.attentions.%d", l, j);
                snprintf(cn, sizeof cn, "input_blocks.%d.1", k);
                block_names(b, dn, cn);
                b->heads = c->heads[l];
                b->depth = c->transformer_depth[l];
            }
            b->push = true;
            skips[nskips++] = ch;
        }
        if (l < L - 1) {
            b = add_block(u, BLK_DOWNSAMPLE, ch, ch);
            snprintf(dn, sizeof dn, "down_blocks.%d.downsamplers.0.conv", l);
            snprintf(cn, sizeof cn, "input_blocks.%d.0.op", k++);
            block_names(b, dn, cn);
            b->push = true;
            skips[nskips++] = ch;
        }
    }
    u->max_skips = nskips;

    b = add_block(u, BLK_RESNET, ch, ch);
    block_names(b, "mid_block.resnets.0", "middle_block.0");
    b = add_block(u, BLK_TRANSFORMER, ch, ch);
    block_names(b, "mid_block.attentions.0", "middle_block.1");
    b->heads = c->heads[L - 1];
    b->depth = c->transformer_depth[L - 1];
    b = add_block(u, BLK_RESNET, ch, ch);
    block_names(b, "mid_block.resnets.1", "middle_block.2");

    k = 0;
    for (int i = 0; i < L; i++) {
        int l = L - 1 - i, out = c->block_out_channels[l];
        for (int j = 0; j <= lpb; j++, k++) {
            int skip = skips[--nskips];
            b = add_block(u, BLK_RESNET, ch + skip, out);
            b->skip_ch = skip;
            snprintf(dn, sizeof dn, "up_blocks.%d.resnets.%d", i, j);
            snprintf(cn, sizeof cn, "output_blocks.%d.0", k);
            block_names(b, dn, cn);
            ch = out;
            if (c->up_attention[l]) {
                b = add_block(u, BLK_TRANSFORMER, ch, ch);
                snprintf(dn, sizeof dn, "up_blocks.%d.attentions.%d", i, j);
                snprintf(cn, sizeof cn, "output_blocks.%d.1", k);
                block_names(b, dn, cn);
                b->heads = c->heads[l];
                b->depth = c->transformer_depth[l];
            }
        }
        if (l > 0) {
            b = add_block(u, BLK_UPSAMPLE, ch, ch);
            snprintf(dn, sizeof dn, "up_blocks.%d.upsamplers.0.conv", i);
            snprintf(cn, sizeof cn, "output_blocks.%d.%d.conv", k - 1, c->up_attention[l] ? 2 : 1);
            block_names(b, dn, cn);
        }
    }
    b = add_block(u, BLK_OUT, ch, c->out_channels);
    block_names(b, "conv_norm_out", "out.0");
}

/* ---- weights ------------------------------------------------------------ */

typedef struct {
    unet *u;
    int layout;
    const char *prefix;               /* prepended to every name ("model.diffusion_model.") */
    dtype random_type;                /* for random weights (u->file NULL) */
    uint64_t rng;
    bool count_only;                  /* shapes only, no memory (unet_config_param_count) */
} loader;

/* ResNet sub-layer names differ between the layouts; everything else inside a block is the same. */
static const char *resnet_part(const char *part, int layout) {
    static const char *map[][2] = {{"norm1", "in_layers.0"}, {"conv1", "in_layers.2"}, {"time_emb_proj", "emb_layers.1"},
                                   {"norm2", "out_layers.0"}, {"conv2", "out_layers.3"}, {"conv_shortcut", "skip_connection"}};
    if (layout == LAYOUT_DIFFUSERS) return part;
    for (size_t i = 0; i < sizeof map / sizeof *map; i++)
        if (strcmp(map[i][0], part) == 0) return map[i][1];
    return part;
}

static uint64_t next_random(uint64_t *s) {
    *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
    return *s;
}

/* Random values of the layer's scale (uniform, variance 1/fan_in; norms 1, biases small).
 * A 64K-value block is drawn and repeated: these weights only serve timings. */
static int random_tensor(loader *L, tensor *t, int ndim, const int64_t *shape, int kind) {
    unet *u = L->u;
    if (L->count_only) {
        *t = tensor_view(NULL, L->random_type, ndim, shape);
        return 0;
    }
    *t = tensor_new(L->random_type, ndim, shape);
    t->owns_data = false;   /* freed through u->owned */
    u->owned = ts_realloc(u->owned, (size_t)(u->owned_count + 1) * sizeof *u->owned);
    u->owned[u->owned_count++] = t->data;
    int64_t n = tensor_numel(t), fan_in = ndim > 1 ? n / shape[0] : 1;
    float block[4096];
    float scale = kind == 0 ? sqrtf(3.0f / (float)fan_in) : 0.02f, base = kind == 1 ? 1.0f : 0.0f;
    for (int i = 0; i < 4096; i++)
        block[i] = base + scale * (2.0f * (float)(next_random(&L->rng) >> 40) / (float)(1 << 24) - 1.0f);
    size_t es = dtype_size(t->type);
    char *dst = t->data;
    for (int64_t i = 0; i < n; i += 4096) {
        int64_t m = n - i < 4096 ? n - i : 4096;
        convert_from_f32(dst + (size_t)i * es, t->type, block, (size_t)m);
    }
    return 0;
}

/* Finds NAME.weight (and NAME.bias) with the expected shape. */
static int bind(loader *L, wb *dst, const char *name, bool bias, int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3) {
    unet *u = L->u;
    int64_t shape[4] = {d0, d1, d2, d3};
    char full[320];
    snprintf(full, sizeof full, "%s%s.weight", L->prefix, name);
    bool is_norm = ndim == 1;
    if (u->file) {
        if (safetensors_get_shaped(u->file, full, &dst->w, ndim, shape)) return -1;
    } else if (random_tensor(L, &dst->w, ndim, shape, is_norm ? 1 : 0)) return -1;
    if (dst->w.type != DT_F32 && dst->w.type != DT_F16 && dst->w.type != DT_BF16)
        return ts_fail("%s: tensor '%s' is %s; U-Net weights must be F32, F16 or BF16",
                       safetensors_path(u->file), full, dtype_name(dst->w.type));
    u->weight_bytes += tensor_nbytes(&dst->w);
    u->param_count += tensor_numel(&dst->w);
    int64_t row_len = tensor_numel(&dst->w) / dst->w.shape[0];
    if (row_len > u->max_row_len) u->max_row_len = row_len;
    if (!bias) return 0;
    snprintf(full, sizeof full, "%s%s.bias", L->prefix, name);
    if (u->file) {
        if (safetensors_get_shaped(u->file, full, &dst->b, 1, shape)) return -1;
    } else if (random_tensor(L, &dst->b, 1, shape, 2)) return -1;
    if (dst->b.type != DT_F32 && dst->b.type != DT_F16 && dst->b.type != DT_BF16)
        return ts_fail("%s: tensor '%s' is %s; U-Net weights must be F32, F16 or BF16",
                       safetensors_path(u->file), full, dtype_name(dst->b.type));
    u->weight_bytes += tensor_nbytes(&dst->b);
    u->param_count += tensor_numel(&dst->b);
    return 0;
}

static int bind_part(loader *L, const block *b, wb *dst, const char *part, bool bias, int ndim,
                     int64_t d0, int64_t d1, int64_t d2, int64_t d3) {
    char name[192];
    const char *p = b->kind == BLK_RESNET ? resnet_part(part, L->layout) : part;
    snprintf(name, sizeof name, "%s%s%s", b->name[L->layout], *p ? "." : "", p);
    return bind(L, dst, name, bias, ndim, d0, d1, d2, d3);
}

/* 1x1 conv weights [C, C, 1, 1] are used as [C, C] matrices. */
static void as_matrix(wb *x) {
    x->w.ndim = 2;
    x->w.stride[0] = x->w.shape[1];
    x->w.stride[1] = 1;
}

static int bind_attention(loader *L, const block *b, const char *attn, wb *q, wb *k, wb *v, wb *o, int C, int kv_dim) {
    char p[64];
    snprintf(p, sizeof p, "%s.to_q", attn);
    if (bind_part(L, b, q, p, false, 2, C, C, 0, 0)) return -1;
    snprintf(p, sizeof p, "%s.to_k", attn);
    if (bind_part(L, b, k, p, false, 2, C, kv_dim, 0, 0)) return -1;
    snprintf(p, sizeof p, "%s.to_v", attn);
    if (bind_part(L, b, v, p, false, 2, C, kv_dim, 0, 0)) return -1;
    snprintf(p, sizeof p, "%s.to_out.0", attn);
    return bind_part(L, b, o, p, true, 2, C, C, 0, 0);
}

static int bind_block(loader *L, block *b) {
    const unet_config *c = &L->u->cfg;
    int in = b->in_ch, out = b->out_ch;
    switch (b->kind) {
    case BLK_CONV_IN:
        return bind_part(L, b, &b->conv1, "", true, 4, out, in, c->conv_in_kernel, c->conv_in_kernel);
    case BLK_DOWNSAMPLE:
    case BLK_UPSAMPLE:
        return bind_part(L, b, &b->conv1, "", true, 4, out, in, 3, 3);
    case BLK_OUT: {
        char cn[64];
        if (bind_part(L, b, &b->norm1, "", true, 1, in, 0, 0, 0)) return -1;
        snprintf(cn, sizeof cn, "%s", L->layout == LAYOUT_DIFFUSERS ? "conv_out" : "out.2");
        return bind(L, &b->conv1, cn, true, 4, out, in, c->conv_out_kernel, c->conv_out_kernel);
    }
    case BLK_RESNET:
        if (bind_part(L, b, &b->norm1, "norm1", true, 1, in, 0, 0, 0) ||
            bind_part(L, b, &b->conv1, "conv1", true, 4, out, in, 3, 3) ||
            bind_part(L, b, &b->time_proj, "time_emb_proj", true, 2, out, L->u->time_dim, 0, 0) ||
            bind_part(L, b, &b->norm2, "norm2", true, 1, out, 0, 0, 0) ||
            bind_part(L, b, &b->conv2, "conv2", true, 4, out, out, 3, 3))
            return -1;
        if (in != out) {
            if (bind_part(L, b, &b->shortcut, "conv_shortcut", true, 4, out, in, 1, 1)) return -1;
            as_matrix(&b->shortcut);
        }
        return 0;
    case BLK_TRANSFORMER: {
        int C = in, inner = 4 * C;
        int pndim = c->use_linear_projection ? 2 : 4;
        if (bind_part(L, b, &b->norm1, "norm", true, 1, C, 0, 0, 0) ||
            bind_part(L, b, &b->conv1, "proj_in", true, pndim, C, C, 1, 1) ||
            bind_part(L, b, &b->conv2, "proj_out", true, pndim, C, C, 1, 1))
            return -1;
        as_matrix(&b->conv1);
        as_matrix(&b->conv2);
        b->layers = ts_calloc((size_t)b->depth, sizeof *b->layers);
        for (int d = 0; d < b->depth; d++) {
            transformer_layer *t = &b->layers[d];
            char p[64], q[64];
            snprintf(p, sizeof p, "transformer_blocks.%d", d);
#define PART(field, suffix, bias, nd, a0, a1)                        \
    (snprintf(q, sizeof q, "%s.%s", p, suffix), bind_part(L, b, &t->field, q, bias, nd, a0, a1, 0, 0))
            char a1[64], a2[64];
            snprintf(a1, sizeof a1, "%s.attn1", p);
            snprintf(a2, sizeof a2, "%s.attn2", p);
            if (PART(norm1, "norm1", true, 1, C, 0) || PART(norm2, "norm2", true, 1, C, 0) ||
                PART(norm3, "norm3", true, 1, C, 0) ||
                bind_attention(L, b, a1, &t->q1, &t->k1, &t->v1, &t->out1, C, C) ||
                bind_attention(L, b, a2, &t->q2, &t->k2, &t->v2, &t->out2, C, c->cross_attention_dim) ||
                PART(ff_in, "ff.net.0.proj", true, 2, 2 * inner, C) || PART(ff_out, "ff.net.2", true, 2, C, inner))
                return -1;
#undef PART
        }
        return 0;
    }
    }
    return 0;
}

static int bind_all(loader *L) {
    unet *u = L->u;
    const unet_config *c = &u->cfg;
    bool d = L->layout == LAYOUT_DIFFUSERS;
    int c0 = c->block_out_channels[0];
    if (bind(L, &u->time_1, d ? "time_embedding.linear_1" : "time_embed.0", true, 2, u->time_dim, c0, 0, 0) ||
        bind(L, &u->time_2, d ? "time_embedding.linear_2" : "time_embed.2", true, 2, u->time_dim, u->time_dim, 0, 0))
        return -1;
    if (c->text_time &&
        (bind(L, &u->add_1, d ? "add_embedding.linear_1" : "label_emb.0.0", true, 2, u->time_dim,
              c->projection_class_embeddings_input_dim, 0, 0) ||
         bind(L, &u->add_2, d ? "add_embedding.linear_2" : "label_emb.0.2", true, 2, u->time_dim, u->time_dim, 0, 0)))
        return -1;
    for (int i = 0; i < u->block_count; i++)
        if (bind_block(L, &u->blocks[i])) return -1;
    return 0;
}

static unet *unet_create(const unet_config *cfg) {
    if (unet_config_check(cfg, "U-Net config")) return NULL;
    unet *u = ts_calloc(1, sizeof *u);
    u->cfg = *cfg;
    u->time_dim = 4 * cfg->block_out_channels[0];
    build_table(u);
    return u;
}

static unet *finish(unet *u, loader *L) {
    if (bind_all(L)) {
        unet_destroy(&u);
        return NULL;
    }
    return u;
}

unet *unet_new_random(const unet_config *config, dtype wtype, uint64_t seed) {
    unet *u = unet_create(config);
    if (!u) return NULL;
    loader L = {.u = u, .layout = LAYOUT_DIFFUSERS, .prefix = "", .random_type = wtype, .rng = seed * 2654435761u + 1};
    return finish(u, &L);
}

int64_t unet_config_param_count(const unet_config *config) {
    unet *u = unet_create(config);
    if (!u) return -1;
    loader L = {.u = u, .layout = LAYOUT_DIFFUSERS, .prefix = "", .random_type = DT_F32, .count_only = true};
    int64_t n = bind_all(&L) ? -1 : u->param_count;
    unet_destroy(&u);
    return n;
}

static char *dir_of(const char *path) {
    char *d = ts_strdup(path);
    char *slash = strrchr(d, '/');
    if (slash) *slash = 0;
    else strcpy(d, ".");
    return d;
}

unet *unet_load_files(const char *weights_path, const char *config_json_path) {
    safetensors *st = safetensors_open(weights_path);
    if (!st) return NULL;
    /* Which names does the file use? */
    static const struct { const char *probe, *prefix; int layout; } layouts[] = {
        {"conv_in.weight", "", LAYOUT_DIFFUSERS},
        {"model.diffusion_model.input_blocks.0.0.weight", "model.diffusion_model.", LAYOUT_COMPVIS},
        {"input_blocks.0.0.weight", "", LAYOUT_COMPVIS},
    };
    int which = -1;
    for (int i = 0; i < 3 && which < 0; i++)
        if (safetensors_has(st, layouts[i].probe)) which = i;
    if (which < 0) {
        ts_fail("%s: no U-Net in this file (looked for conv_in.weight and model.diffusion_model.input_blocks.0.0.weight)",
                weights_path);
        safetensors_close(&st);
        return NULL;
    }
    unet_config cfg;
    int rc;
    char sibling[4096];
    if (!config_json_path && layouts[which].layout == LAYOUT_DIFFUSERS) {
        /* A diffusers weight file given alone: its config.json sits beside it. */
        char *dir = dir_of(weights_path);
        snprintf(sibling, sizeof sibling, "%s/config.json", dir);
        free(dir);
        config_json_path = sibling;
    }
    if (config_json_path) {
        char *json = read_text_file(config_json_path, NULL);
        rc = json ? unet_config_parse_json(json, config_json_path, &cfg) : -1;
        free(json);
    } else {
        rc = unet_config_infer(st, layouts[which].prefix, &cfg);
    }
    unet *u = rc ? NULL : unet_create(&cfg);
    if (!u) {
        safetensors_close(&st);
        ts_fail_wrap("loading the U-Net from %s", weights_path);
        return NULL;
    }
    u->file = st;
    loader L = {.u = u, .layout = layouts[which].layout, .prefix = layouts[which].prefix};
    u = finish(u, &L);
    if (!u) ts_fail_wrap("loading the U-Net");
    return u;
}

unet *unet_load(const char *model) {
    char weights[4096], config[4096];
    if (!model_is_folder(model)) return unet_load_files(model, NULL);
    if (model_component_weights(model, "unet", weights, sizeof weights)) return NULL;
    if (model_component_file(model, "unet", "config.json", config, sizeof config)) {
        ts_fail("%s: no unet/config.json", model);
        return NULL;
    }
    return unet_load_files(weights, config);
}

void unet_destroy(unet **self) {
    if (!self || !*self) return;
    unet *u = *self;
    for (int i = 0; i < u->block_count; i++) free(u->blocks[i].layers);
    free(u->blocks);
    for (int i = 0; i < u->owned_count; i++) free(u->owned[i]);
    free(u->owned);
    free(u->scratch);
    safetensors_close(&u->file);
    arena_destroy(&u->arena);
    free(u);
    *self = NULL;
}

const unet_config *unet_get_config(const unet *self) { return &self->cfg; }
int unet_in_channels(const unet *self) { return self->cfg.in_channels; }
int unet_out_channels(const unet *self) { return self->cfg.out_channels; }
int unet_sample_size(const unet *self) { return self->cfg.sample_size; }
int unet_cross_attention_dim(const unet *self) { return self->cfg.cross_attention_dim; }
int unet_text_embeds_dim(const unet *self) {
    return self->cfg.text_time ? self->cfg.projection_class_embeddings_input_dim - 6 * self->cfg.addition_time_embed_dim : 0;
}
size_t unet_weight_bytes(const unet *self) { return self->weight_bytes; }

/* ---- profiling ---------------------------------------------------------- */

const char *unet_op_name(unet_op op) {
    static const char *names[UNET_OP_COUNT] = {"conv 3x3", "conv 1x1 / linear", "attention", "norms", "widen weights", "other"};
    return (unsigned)op < UNET_OP_COUNT ? names[op] : "?";
}

void unet_profile_enable(unet *self, bool on) {
    self->profiling = on;
    memset(&self->prof, 0, sizeof self->prof);
}

const unet_profile *unet_get_profile(const unet *self) { return &self->prof; }

void unet_debug_force_split(unet *self, int mode) { self->force_split = mode; }

/* Runs STMT, charging its time and FLOPs to OP while profiling. */
#define TIMED(U_, OP_, FLOPS_, ...)                                \
    do {                                                           \
        double t0_ = (U_)->profiling ? ts_now() : 0;               \
        __VA_ARGS__;                                               \
        if ((U_)->profiling) {                                     \
            (U_)->prof.seconds[OP_] += ts_now() - t0_;             \
            (U_)->prof.flops[OP_] += (FLOPS_);                     \
        }                                                          \
    } while (0)

/* ---- the math of one layer ------------------------------------------------ */

/*
 * Every product with a weight goes through weight_gemm: one OpenMP region per layer, in
 * which each thread takes its share of the weight's rows (output channels) and, block by
 * block, widens them from F16/BF16 into its own scratch of about WIDEN_BLOCK_BYTES and runs
 * a single-threaded GEMM on them while they are still in cache. So the F32 copy never makes
 * a round trip through memory (SD 1.5's weights are 3.4 GB as F32), the widening is
 * spread over the threads, and there is no barrier per block: on a shared machine each
 * barrier can wait a whole time slice for a preempted thread. F32 weights are used in place.
 */
enum { WIDEN_BLOCK_BYTES = 4 << 20, WIDEN_MIN_ROWS = 32 };

typedef struct {
    bool weight_left;        /* C[o0:o0+ob, :] = Wb op(X)  (else C[:, o0:o0+ob] = op(X) Wb^T) */
    bool trans_x;
    int other;               /* N when weight_left, else M: the side the weight does not set */
    int K;
    const float *X;
    int ldx;
    int64_t x_stride;        /* per image */
    float *C;
    int ldc;
    int64_t c_stride;        /* per image */
    int count;               /* images */
    float beta;
    const float *fill_bias;  /* weight_left only: C rows start as the bias (then beta must be 1) */
} weight_product;

static size_t scratch_floats_per_thread(int64_t max_row_len) {
    size_t block = WIDEN_BLOCK_BYTES / sizeof(float), min_rows = (size_t)WIDEN_MIN_ROWS * (size_t)max_row_len;
    return block > min_rows ? block : min_rows;
}

static void ensure_scratch(unet *u) {
    int threads = ts_get_threads();
    if (threads <= u->scratch_threads) return;
    free(u->scratch);
    u->scratch_per_thread = scratch_floats_per_thread(u->max_row_len);
    u->scratch = ts_aligned_alloc((size_t)threads * u->scratch_per_thread * sizeof(float));
    u->scratch_threads = threads;
}

/* Weight rows [o0, o0 + ob) (as Wb) against columns [s0, s1) of the other side, every image. */
static void weight_block(const weight_product *p, const float *Wb, int64_t o0, int64_t ob, int64_t s0, int64_t s1) {
    int n = (int)(s1 - s0);
    if (n <= 0 || ob <= 0) return;
    for (int i = 0; i < p->count; i++) {
        const float *X = p->X + i * p->x_stride;
        float *C = p->C + i * p->c_stride;
        if (p->weight_left) {
            float *Co = C + o0 * p->ldc + s0;
            if (p->fill_bias)
                for (int64_t r = 0; r < ob; r++)
                    for (int j = 0; j < n; j++) Co[r * p->ldc + j] = p->fill_bias[o0 + r];
            gemm(false, p->trans_x, (int)ob, n, p->K, 1.0f, Wb, p->K, X + (p->trans_x ? s0 * p->ldx : s0), p->ldx,
                 p->beta, Co, p->ldc);
        } else {
            gemm(p->trans_x, true, n, (int)ob, p->K, 1.0f, X + (p->trans_x ? s0 : s0 * p->ldx), p->ldx, Wb, p->K,
                 p->beta, C + s0 * p->ldc + o0, p->ldc);
        }
    }
}

/*
 * Two ways to share a product out. When the weight is the smaller operand (deep levels: few
 * positions, many channels) each thread takes whole weight blocks and widens them alone.
 * When the activations are the larger one (outer levels), splitting the weight rows would
 * make every thread pack all of the activations again for each block, so instead the
 * threads widen each weight block together and share its tiles of positions (one barrier
 * per block, a few per layer at those sizes).
 * Blocks and tiles have fixed sizes whatever the thread count, so every GEMM call, and so
 * every number, is the same on 1 thread or 64 (kernels/gemm.c says why that matters).
 */
enum { POSITION_TILE = 512 };

static void weight_gemm(unet *u, const tensor *w, const weight_product *p, unet_op op) {
    int64_t rows = w->shape[0], row_len = tensor_numel(w) / rows;
    double flops = 2.0 * (double)rows * row_len * p->other * p->count;
    double t0 = u->profiling ? ts_now() : 0, widen_s = 0;
    int threads = ts_get_threads();
    if (flops < 2e6 && !u->force_split) threads = 1;
    size_t es = dtype_size(w->type);
    bool f32 = w->type == DT_F32;
    bool split_positions = u->force_split ? u->force_split == 2 : p->other >= rows;
    int64_t block = f32 ? rows : (int64_t)(u->scratch_per_thread / (size_t)row_len);
    if (u->force_split) block = WIDEN_MIN_ROWS / 2;   /* tests: many blocks */
    #pragma omp parallel num_threads(threads) reduction(+:widen_s)
    {
        int t = 0;
#ifdef _OPENMP
        t = omp_get_thread_num();
#endif
        if (split_positions) {
            for (int64_t o0 = 0; o0 < rows; o0 += block) {
                int64_t ob = rows - o0 < block ? rows - o0 : block;
                const float *Wb = (const float *)w->data + o0 * row_len;
                if (!f32) {
                    enum { CHUNK = 1 << 15 };
                    int64_t n = ob * row_len, chunks = (n + CHUNK - 1) / CHUNK;
                    double w0 = t == 0 && u->profiling ? ts_now() : 0;
                    #pragma omp for schedule(static)
                    for (int64_t c = 0; c < chunks; c++) {
                        int64_t at = c * CHUNK, m = n - at < CHUNK ? n - at : CHUNK;
                        convert_to_f32(u->scratch + at, (const char *)w->data + (size_t)(o0 * row_len + at) * es, w->type, (size_t)m);
                    }   /* implicit barrier: the block is whole before anyone reads it */
                    if (t == 0 && u->profiling) widen_s += ts_now() - w0;
                    Wb = u->scratch;
                }
                #pragma omp for schedule(static)
                for (int64_t s0 = 0; s0 < p->other; s0 += POSITION_TILE) {
                    int64_t s1 = p->other - s0 < POSITION_TILE ? p->other : s0 + POSITION_TILE;
                    weight_block(p, Wb, o0, ob, s0, s1);
                }   /* implicit barrier: nobody widens the next block over this one early */
            }
        } else {
            float *scratch = u->scratch + (size_t)t * u->scratch_per_thread;
            #pragma omp for schedule(dynamic, 1)
            for (int64_t o0 = 0; o0 < rows; o0 += block) {
                int64_t ob = rows - o0 < block ? rows - o0 : block;
                const float *Wb = (const float *)w->data + o0 * row_len;
                if (!f32) {
                    double w0 = t == 0 && u->profiling ? ts_now() : 0;
                    convert_to_f32(scratch, (const char *)w->data + (size_t)(o0 * row_len) * es, w->type, (size_t)(ob * row_len));
                    if (t == 0 && u->profiling) widen_s += ts_now() - w0;
                    Wb = scratch;
                }
                weight_block(p, Wb, o0, ob, 0, p->other);
            }
        }
    }
    if (u->profiling) {
        double total = ts_now() - t0;
        u->prof.seconds[UNET_OP_WIDEN] += widen_s;   /* as seen by thread 0 */
        u->prof.seconds[op] += total - widen_s;
        u->prof.flops[op] += flops;
    }
}

/* y[rows, out] (=|+=) x[rows, in] W^T + b, with W [out, in]. */
static void dense(unet *u, float *y, const float *x, int64_t rows, const wb *l, bool accumulate) {
    int out = (int)l->w.shape[0], in = (int)l->w.shape[1];
    weight_product p = {.weight_left = false, .other = (int)rows, .K = in, .X = x, .ldx = in, .C = y, .ldc = out,
                        .count = 1, .beta = accumulate ? 1.0f : 0.0f};
    weight_gemm(u, &l->w, &p, UNET_OP_LINEAR);
    if (l->b.data) TIMED(u, UNET_OP_LINEAR, 0, add_row_bias(y, rows, out, &l->b));
}

/* col[r][b * ld_img + oh * OW + ow] = x[b][c][oh*s - p + kh][ow*s - p + kw], r = (c*KH + kh)*KW + kw:
 * the receptive fields of all B images side by side, so one GEMM can cover the batch.
 * Hand-written: the kernels' im2col is private to their conv2d, which takes whole weights. */
static void im2col_batch(float *col, const float *x, int B, int C, int H, int W, int KH, int KW, int OH, int OW,
                         int stride, int pad) {
    int64_t rows = (int64_t)C * KH * KW, ohw = (int64_t)OH * OW, ld = (int64_t)B * ohw;
    #pragma omp parallel for schedule(static) collapse(2)
    for (int b = 0; b < B; b++)
        for (int64_t r = 0; r < rows; r++) {
            int c = (int)(r / (KH * KW)), kh = (int)(r / KW % KH), kw = (int)(r % KW);
            const float *xc = x + ((int64_t)b * C + c) * H * W;
            float *dst = col + r * ld + b * ohw;
            for (int oh = 0; oh < OH; oh++) {
                int ih = oh * stride - pad + kh;
                float *d = dst + (int64_t)oh * OW;
                if (ih < 0 || ih >= H) { memset(d, 0, (size_t)OW * sizeof(float)); continue; }
                const float *src = xc + (int64_t)ih * W;
                if (stride == 1) {
                    int lo = pad - kw, hi = W + pad - kw;   /* valid ow: 0 <= ow - pad + kw < W */
                    if (lo < 0) lo = 0;
                    if (hi > OW) hi = OW;
                    if (hi < lo) hi = lo;
                    for (int ow = 0; ow < lo; ow++) d[ow] = 0.0f;
                    if (hi > lo) memcpy(d + lo, src + lo - pad + kw, (size_t)(hi - lo) * sizeof(float));
                    for (int ow = hi; ow < OW; ow++) d[ow] = 0.0f;
                } else {
                    for (int ow = 0; ow < OW; ow++) {
                        int iw = ow * stride - pad + kw;
                        d[ow] = iw >= 0 && iw < W ? src[iw] : 0.0f;
                    }
                }
            }
        }
}

/* out[B, OC, OH, OW] = conv(x) + bias. Outer levels: the kernels' conv2d. Deeper ones: im2col
 * over the batch, then weight_gemm over blocks of widened output-channel rows; large images
 * get one GEMM per image straight into the NCHW output, small ones one GEMM over the whole
 * batch and a scatter. */
static void conv(unet *u, float *out, const float *x, int B, int C, int H, int W, const wb *l, int stride, int pad) {
    arena *a = u->arena;
    size_t mark = arena_mark(a);
    int OC = (int)l->w.shape[0], KH = (int)l->w.shape[2], KW = (int)l->w.shape[3];
    int OH = (H + 2 * pad - KH) / stride + 1, OW = (W + 2 * pad - KW) / stride + 1;
    int64_t K = (int64_t)C * KH * KW, ohw = (int64_t)OH * OW, n_all = (int64_t)B * ohw;
    unet_op op = KH == 1 && KW == 1 ? UNET_OP_LINEAR : UNET_OP_CONV3X3;
    if (!u->force_split && n_all >= OC / 2) {
        /* Many positions per weight (outer levels): the kernels' direct convolution (oneDNN)
         * beat im2col + sgemm by 20-35% per CPU-second at 320/640 channels, 16x16 to 64x64,
         * and widening the whole (small) weight costs little there. Deeper levels, where the
         * weights are large and the positions few, stay on the blocked path below. */
        conv2d_params p = {.stride_h = stride, .stride_w = stride, .pad_h = pad, .pad_w = pad, .groups = 1};
        int rc = 0;
        TIMED(u, op, 2.0 * (double)OC * K * n_all, rc = conv2d(out, x, B, C, H, W, &l->w, &l->b, p));
        if (rc) log_error("U-Net conv: %s", ts_last_error());   /* shapes were checked at load: a bug */
        return;
    }
    float *col = arena_floats(a, (size_t)(K * n_all));
    TIMED(u, op, 0, im2col_batch(col, x, B, C, H, W, KH, KW, OH, OW, stride, pad));
    float *bias = arena_floats(a, (size_t)OC);
    tensor_copy_to_f32(bias, &l->b);
    bool per_image = ohw >= 1024 || B == 1;
    float *tmp = per_image ? NULL : arena_floats(a, (size_t)(OC * n_all));
    weight_product prod = {.weight_left = true, .other = (int)(per_image ? ohw : n_all), .K = (int)K, .X = col,
                           .ldx = (int)n_all, .x_stride = ohw, .C = per_image ? out : tmp,
                           .ldc = (int)(per_image ? ohw : n_all), .c_stride = (int64_t)OC * ohw,
                           .count = per_image ? B : 1, .beta = per_image ? 1.0f : 0.0f, .fill_bias = per_image ? bias : NULL};
    weight_gemm(u, &l->w, &prod, op);
    if (!per_image)
        TIMED(u, UNET_OP_OTHER, 0,
              for (int b = 0; b < B; b++)
                  for (int o = 0; o < OC; o++) {
                      const float *src = tmp + (int64_t)o * n_all + b * ohw;
                      float *dst = out + ((int64_t)b * OC + o) * ohw;
                      for (int64_t j = 0; j < ohw; j++) dst[j] = src[j] + bias[o];
                  });
    arena_reset(a, mark);
}

static void group_norm_silu(unet *u, float *out, const float *x, int B, int C, int64_t HW, const wb *n, float eps, bool act) {
    TIMED(u, UNET_OP_NORM, 0, group_norm(out, x, B, C, HW, u->cfg.norm_num_groups, &n->w, &n->b, eps));
    if (act) TIMED(u, UNET_OP_OTHER, 0, silu(out, out, (int64_t)B * C * HW));
}

/* Sinusoidal embedding of n values as diffusers' get_timestep_embedding computes it (float32). */
static void timestep_embedding(float *out, const float *t, int n, int dim, bool flip, float shift) {
    int half = dim / 2;
    for (int i = 0; i < n; i++) {
        float *o = out + (size_t)i * dim;
        for (int j = 0; j < half; j++) {
            float e = (-9.21034049987792969f * (float)j) / ((float)half - shift); /* -ln(10000) j / (half - shift) */
            float arg = t[i] * expf(e);
            o[flip ? half + j : j] = sinf(arg);
            o[flip ? j : half + j] = cosf(arg);
        }
        if (dim % 2) o[dim - 1] = 0;
    }
}

/* out [B, C, HW] = ResNet(x [B, Cin, HW]); semb [B, time_dim] is silu(time embedding). */
static void resnet_forward(unet *u, const block *b, float *out, const float *x, int B, int H, int W, const float *semb) {
    arena *a = u->arena;
    size_t mark = arena_mark(a);
    int64_t HW = (int64_t)H * W;
    int Cin = b->in_ch, C = b->out_ch;
    float *t = arena_floats(a, (size_t)B * Cin * HW);
    group_norm_silu(u, t, x, B, Cin, HW, &b->norm1, u->cfg.norm_eps, true);
    float *h = arena_floats(a, (size_t)B * C * HW);
    conv(u, h, t, B, Cin, H, W, &b->conv1, 1, 1);
    float *e = arena_floats(a, (size_t)B * C);
    dense(u, e, semb, B, &b->time_proj, false);
    TIMED(u, UNET_OP_OTHER, 0, add_channel_bias(h, B, C, HW, e));
    group_norm_silu(u, h, h, B, C, HW, &b->norm2, u->cfg.norm_eps, true);
    conv(u, out, h, B, C, H, W, &b->conv2, 1, 1);
    if (b->shortcut.w.data) {
        /* out[b] += W [C, Cin] x[b] [Cin, HW] + bias: the 1x1 shortcut as GEMMs straight from NCHW */
        weight_product p = {.weight_left = true, .other = (int)HW, .K = Cin, .X = x, .ldx = (int)HW,
                            .x_stride = (int64_t)Cin * HW, .C = out, .ldc = (int)HW, .c_stride = (int64_t)C * HW,
                            .count = B, .beta = 1.0f};
        weight_gemm(u, &b->shortcut.w, &p, UNET_OP_LINEAR);
        float *bias = arena_floats(a, (size_t)B * C);
        for (int n = 0; n < B; n++) tensor_copy_to_f32(bias + (size_t)n * C, &b->shortcut.b);
        TIMED(u, UNET_OP_OTHER, 0, add_channel_bias(out, B, C, HW, bias));
    } else {
        TIMED(u, UNET_OP_OTHER, 0, add_inplace(out, x, (int64_t)B * C * HW));
    }
    arena_reset(a, mark);
}

/* Scaled-dot-product attention over [B, N, heads * d] rows: the kernels' tiled attention
 * (it beat a hand-written exact-softmax-per-query-block version here by 10-15%, measured
 * single-threaded at SD shapes). */
static void attend(unet *u, float *out, const float *q, const float *k, const float *v, int B, int heads, int C,
                   int64_t nq, int64_t nkv) {
    attention_params p = {.batch = B, .heads = heads, .head_dim = C / heads, .n_q = nq, .n_kv = nkv,
                          .scale = 1.0f / sqrtf((float)(C / heads))};
    TIMED(u, UNET_OP_ATTENTION, 4.0 * B * (double)nq * nkv * C, attention(out, q, k, v, p));
}

static void layer_norm_rows(unet *u, float *out, const float *x, int64_t rows, int C, const wb *n) {
    TIMED(u, UNET_OP_NORM, 0, layer_norm(out, x, rows, C, &n->w, &n->b, 1e-5f));
}

/* out [B, C, HW] = x + Transformer2D(x); ctx [B, T, D]. */
static void transformer_forward(unet *u, const block *b, float *out, const float *x, int B, int H, int W,
                                const float *ctx, int T) {
    arena *a = u->arena;
    size_t mark = arena_mark(a);
    int C = b->in_ch, inner = 4 * C;
    int64_t HW = (int64_t)H * W, rows = (int64_t)B * HW;
    float *g = arena_floats(a, (size_t)B * C * HW);
    group_norm_silu(u, g, x, B, C, HW, &b->norm1, 1e-6f, false);
    /* proj_in: hs[b] [HW, C] = g[b]^T W^T, reading NCHW directly */
    float *hs = arena_floats(a, (size_t)rows * C);
    weight_product pin = {.weight_left = false, .trans_x = true, .other = (int)HW, .K = C, .X = g, .ldx = (int)HW,
                          .x_stride = (int64_t)C * HW, .C = hs, .ldc = C, .c_stride = HW * C, .count = B, .beta = 0.0f};
    weight_gemm(u, &b->conv1.w, &pin, UNET_OP_LINEAR);
    TIMED(u, UNET_OP_LINEAR, 0, add_row_bias(hs, rows, C, &b->conv1.b));

    float *nrm = arena_floats(a, (size_t)rows * C), *q = arena_floats(a, (size_t)rows * C);
    int64_t kv_rows = rows > (int64_t)B * T ? rows : (int64_t)B * T;   /* self- or cross-attention keys */
    float *k = arena_floats(a, (size_t)kv_rows * C), *v = arena_floats(a, (size_t)kv_rows * C);
    float *att = arena_floats(a, (size_t)rows * C);
    float *ff = arena_floats(a, (size_t)rows * 2 * inner), *gated = arena_floats(a, (size_t)rows * inner);
    for (int d = 0; d < b->depth; d++) {
        const transformer_layer *t = &b->layers[d];
        layer_norm_rows(u, nrm, hs, rows, C, &t->norm1);
        dense(u, q, nrm, rows, &t->q1, false);
        dense(u, k, nrm, rows, &t->k1, false);
        dense(u, v, nrm, rows, &t->v1, false);
        attend(u, att, q, k, v, B, b->heads, C, HW, HW);
        dense(u, hs, att, rows, &t->out1, true);

        layer_norm_rows(u, nrm, hs, rows, C, &t->norm2);
        dense(u, q, nrm, rows, &t->q2, false);
        dense(u, k, ctx, (int64_t)B * T, &t->k2, false);
        dense(u, v, ctx, (int64_t)B * T, &t->v2, false);
        attend(u, att, q, k, v, B, b->heads, C, HW, T);
        dense(u, hs, att, rows, &t->out2, true);

        layer_norm_rows(u, nrm, hs, rows, C, &t->norm3);
        dense(u, ff, nrm, rows, &t->ff_in, false);
        TIMED(u, UNET_OP_OTHER, 0, geglu(gated, ff, rows, inner));
        dense(u, hs, gated, rows, &t->ff_out, true);
    }
    /* proj_out: out[b] [C, HW] = x[b] + W hs[b]^T + bias, written back as NCHW */
    memcpy(out, x, (size_t)B * C * HW * sizeof(float));
    weight_product pout = {.weight_left = true, .trans_x = true, .other = (int)HW, .K = C, .X = hs, .ldx = C,
                           .x_stride = HW * C, .C = out, .ldc = (int)HW, .c_stride = (int64_t)C * HW, .count = B, .beta = 1.0f};
    weight_gemm(u, &b->conv2.w, &pout, UNET_OP_LINEAR);
    float *bias = arena_floats(a, (size_t)B * C);
    for (int n = 0; n < B; n++) tensor_copy_to_f32(bias + (size_t)n * C, &b->conv2.b);
    TIMED(u, UNET_OP_OTHER, 0, add_channel_bias(out, B, C, HW, bias));
    arena_reset(a, mark);
}

/* ---- the forward pass ------------------------------------------------------ */

/* Upper bound of the arena bytes one forward needs: every block output and concat stays
 * until the end (skips need that anyway), plus the largest block's temporaries. */
static size_t arena_bytes_needed(const unet *u, int B, int H, int W, int T) {
    size_t keep = 0, temp = 0;
    int h = H, w = W;
    for (int i = 0; i < u->block_count; i++) {
        const block *b = &u->blocks[i];
        if (b->kind == BLK_DOWNSAMPLE) h = (h + 1) / 2, w = (w + 1) / 2;
        size_t hw = (size_t)h * w, t = 0;
        if (b->kind == BLK_UPSAMPLE) h *= 2, w *= 2, t = (size_t)B * b->in_ch * h * w;
        keep += (size_t)B * (b->out_ch + b->skip_ch + b->in_ch) * ((size_t)h * w) * sizeof(float) + 256;
        if (b->kind == BLK_RESNET) t = (size_t)B * (b->in_ch + b->out_ch) * hw + 4 * (size_t)B * b->out_ch;
        if (b->kind == BLK_TRANSFORMER)
            t = (size_t)B * hw * b->in_ch * 19 + (size_t)B * b->in_ch * 2 + (size_t)B * T * b->in_ch * 2;
        if (b->kind == BLK_OUT) t = (size_t)B * b->in_ch * hw;
        /* im2col columns (k x k, at the block's largest resolution) and scores and bias */
        size_t kk = (size_t)(b->kind == BLK_CONV_IN ? u->cfg.conv_in_kernel * u->cfg.conv_in_kernel
                             : b->kind == BLK_OUT ? u->cfg.conv_out_kernel * u->cfg.conv_out_kernel : 9);
        size_t max_ch = (size_t)(b->in_ch > b->out_ch ? b->in_ch : b->out_ch);
        t += kk * max_ch * B * (size_t)h * w + (size_t)B * b->out_ch * (size_t)h * w + 2 * max_ch + 4096;
        if (t * sizeof(float) > temp) temp = t * sizeof(float);
    }
    size_t emb = (size_t)B * (u->time_dim * 4 + u->cfg.block_out_channels[0] + u->cfg.projection_class_embeddings_input_dim +
                              6 * u->cfg.addition_time_embed_dim) * sizeof(float);
    return keep + temp + emb + (1u << 20) + (size_t)u->block_count * 1024;
}

int unet_forward(unet *self, const float *x, int B, int H, int W, const float *timesteps, const float *context, int T,
                 const float *text_embeds, const float *time_ids, float *out) {
    unet *u = self;
    const unet_config *c = &u->cfg;
    int down = 1 << (c->levels - 1);
    if (!x || !timesteps || !context || !out) return ts_fail("unet_forward: x, timesteps, context and out are required");
    if (B <= 0 || H <= 0 || W <= 0 || T <= 0) return ts_fail("unet_forward: batch %d, size %dx%d, %d tokens must be positive", B, H, W, T);
    if (H % down || W % down)
        return ts_fail("unet_forward: latent size %dx%d is not a multiple of %d (the U-Net halves it %d times)", H, W, down, c->levels - 1);
    if (c->text_time && (!text_embeds || !time_ids))
        return ts_fail("unet_forward: this U-Net (addition_embed_type text_time, SDXL) needs text_embeds and time_ids");

    size_t need = arena_bytes_needed(u, B, H, W, T);
    if (need > u->arena_capacity) {
        arena_destroy(&u->arena);
        u->arena = arena_new(need);
        if (!u->arena) return -1;
        u->arena_capacity = need;
    }
    arena *a = u->arena;
    arena_reset(a, 0);
    ensure_scratch(u);

    /* Time embedding, plus SDXL's pooled text and size/crop ids; resnets use silu of it. */
    int c0 = c->block_out_channels[0], td = u->time_dim;
    float *sin_t = arena_floats(a, (size_t)B * c0), *emb1 = arena_floats(a, (size_t)B * td);
    float *emb = arena_floats(a, (size_t)B * td);
    timestep_embedding(sin_t, timesteps, B, c0, c->flip_sin_to_cos, c->freq_shift);
    dense(u, emb1, sin_t, B, &u->time_1, false);
    silu(emb1, emb1, (int64_t)B * td);
    dense(u, emb, emb1, B, &u->time_2, false);
    if (c->text_time) {
        int tdim = unet_text_embeds_dim(u), ad = c->addition_time_embed_dim, pin = c->projection_class_embeddings_input_dim;
        float *add_in = arena_floats(a, (size_t)B * pin), *ids = arena_floats(a, (size_t)B * 6 * ad);
        timestep_embedding(ids, time_ids, B * 6, ad, c->flip_sin_to_cos, c->freq_shift);
        for (int n = 0; n < B; n++) {
            memcpy(add_in + (size_t)n * pin, text_embeds + (size_t)n * tdim, (size_t)tdim * sizeof(float));
            memcpy(add_in + (size_t)n * pin + tdim, ids + (size_t)n * 6 * ad, (size_t)6 * ad * sizeof(float));
        }
        dense(u, emb1, add_in, B, &u->add_1, false);
        silu(emb1, emb1, (int64_t)B * td);
        dense(u, emb, emb1, B, &u->add_2, true);
    }
    float *semb = arena_floats(a, (size_t)B * td);
    silu(semb, emb, (int64_t)B * td);

    const float *skip_data[UNET_MAX_LEVELS * 8 + 2];
    int nskips = 0, h = H, w = W;
    const float *cur = x;
    for (int i = 0; i < u->block_count; i++) {
        const block *b = &u->blocks[i];
        int64_t hw = (int64_t)h * w;
        const float *in = cur;
        if (b->skip_ch) {
            /* torch.cat([h, skip], dim=1) */
            const float *skip = skip_data[--nskips];
            int c1 = b->in_ch - b->skip_ch, c2 = b->skip_ch;
            float *cat = arena_floats(a, (size_t)B * b->in_ch * hw);
            TIMED(u, UNET_OP_OTHER, 0,
                  for (int n = 0; n < B; n++) {
                      memcpy(cat + (size_t)n * b->in_ch * hw, cur + (size_t)n * c1 * hw, (size_t)c1 * hw * sizeof(float));
                      memcpy(cat + ((size_t)n * b->in_ch + c1) * hw, skip + (size_t)n * c2 * hw, (size_t)c2 * hw * sizeof(float));
                  });
            in = cat;
        }
        float *o;
        switch (b->kind) {
        case BLK_CONV_IN:
            o = arena_floats(a, (size_t)B * b->out_ch * hw);
            conv(u, o, in, B, b->in_ch, h, w, &b->conv1, 1, c->conv_in_kernel / 2);
            break;
        case BLK_RESNET:
            o = arena_floats(a, (size_t)B * b->out_ch * hw);
            resnet_forward(u, b, o, in, B, h, w, semb);
            break;
        case BLK_TRANSFORMER:
            o = arena_floats(a, (size_t)B * b->out_ch * hw);
            transformer_forward(u, b, o, in, B, h, w, context, T);
            break;
        case BLK_DOWNSAMPLE: {
            int oh = (h + 2 * c->downsample_padding - 3) / 2 + 1, ow = (w + 2 * c->downsample_padding - 3) / 2 + 1;
            o = arena_floats(a, (size_t)B * b->out_ch * oh * ow);
            conv(u, o, in, B, b->in_ch, h, w, &b->conv1, 2, c->downsample_padding);
            h = oh, w = ow;
            break;
        }
        case BLK_UPSAMPLE: {
            size_t mark = arena_mark(a);
            float *up = arena_floats(a, (size_t)B * b->in_ch * hw * 4);
            TIMED(u, UNET_OP_OTHER, 0, upsample_nearest2x(up, in, B, b->in_ch, h, w));
            h *= 2, w *= 2;
            float *res = arena_floats(a, (size_t)B * b->out_ch * h * w);
            conv(u, res, up, B, b->in_ch, h, w, &b->conv1, 1, 1);
            /* keep only the result: move it down over the upsampled copy */
            arena_reset(a, mark);
            o = arena_floats(a, (size_t)B * b->out_ch * h * w);
            memmove(o, res, (size_t)B * b->out_ch * h * w * sizeof(float));
            break;
        }
        case BLK_OUT: {
            size_t mark = arena_mark(a);
            float *t = arena_floats(a, (size_t)B * b->in_ch * hw);
            group_norm_silu(u, t, in, B, b->in_ch, hw, &b->norm1, c->norm_eps, true);
            conv(u, out, t, B, b->in_ch, h, w, &b->conv1, 1, c->conv_out_kernel / 2);
            arena_reset(a, mark);
            o = out;
            break;
        }
        default:
            return ts_fail("unet_forward: bad block kind %d", (int)b->kind);
        }
        if (b->push) skip_data[nskips++] = o;
        cur = o;
    }
    return 0;
}

double unet_forward_flops(const unet *self, int B, int H, int W, int T) {
    const unet *u = self;
    double f = 0;
    int h = H, w = W;
    for (int i = 0; i < u->block_count; i++) {
        const block *b = &u->blocks[i];
        double hw = (double)h * w, Cin = b->in_ch, C = b->out_ch;
        switch (b->kind) {
        case BLK_CONV_IN: f += 2.0 * B * hw * C * Cin * u->cfg.conv_in_kernel * u->cfg.conv_in_kernel; break;
        case BLK_OUT: f += 2.0 * B * hw * C * Cin * u->cfg.conv_out_kernel * u->cfg.conv_out_kernel; break;
        case BLK_DOWNSAMPLE: h /= 2, w /= 2; f += 2.0 * B * h * w * C * Cin * 9; break;
        case BLK_UPSAMPLE: h *= 2, w *= 2; f += 2.0 * B * h * w * C * Cin * 9; break;
        case BLK_RESNET:
            f += 2.0 * B * hw * 9 * (C * Cin + C * C);
            if (Cin != C) f += 2.0 * B * hw * C * Cin;
            break;
        case BLK_TRANSFORMER: {
            double rows = B * hw, D = u->cfg.cross_attention_dim;
            f += 2 * 2.0 * rows * C * C;                               /* proj_in, proj_out */
            f += b->depth * (2.0 * rows * C * C * 4 + 2.0 * rows * C * C * 2 + 2.0 * B * T * D * C * 2 /* q k v out, q out, k v */
                             + 2.0 * rows * C * 8 * C + 2.0 * rows * 4 * C * C                       /* GEGLU FF */
                             + 4.0 * B * hw * hw * C + 4.0 * B * hw * T * C);                        /* attention */
            break;
        }
        }
    }
    return f;
}
