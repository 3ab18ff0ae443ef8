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
    ts_ctx *ctx;                      /* where the forward in progress runs (unet_forward's) */
    arena *arena;
    size_t arena_capacity;
    bool profiling;
    unet_profile prof;
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

/* Every product with a weight goes through the weight_gemm op (F16/BF16 weights widened a
 * block at a time, never as a whole F32 copy), charged to OP while profiling. */
static void product(unet *u, const tensor *w, weight_gemm_params p, unet_op op) {
    double t0 = u->profiling ? ts_now() : 0, widen_s = 0;
    if (u->profiling) p.widen_seconds = &widen_s;
    if (weight_gemm(u->ctx, w, &p)) log_error("U-Net: %s", ts_last_error());   /* shapes were checked at load: a bug */
    if (u->profiling) {
        int64_t rows = w->shape[0], row_len = tensor_numel(w) / rows;
        u->prof.seconds[UNET_OP_WIDEN] += widen_s;
        u->prof.seconds[op] += ts_now() - t0 - widen_s;
        u->prof.flops[op] += 2.0 * (double)rows * row_len * p.other * p.count;
    }
}

/* y[rows, out] (=|+=) x[rows, in] W^T + b, with W [out, in]. */
static void dense(unet *u, float *y, const float *x, int64_t rows, const wb *l, bool accumulate) {
    int out = (int)l->w.shape[0], in = (int)l->w.shape[1];
    product(u, &l->w, (weight_gemm_params){.weight_left = false, .other = (int)rows, .K = in, .X = x, .ldx = in, .C = y,
                                           .ldc = out, .count = 1, .beta = accumulate ? 1.0f : 0.0f},
            UNET_OP_LINEAR);
    if (l->b.data) TIMED(u, UNET_OP_LINEAR, 0, add_row_bias(u->ctx, y, rows, out, &l->b));
}

/* out[B, OC, OH, OW] = conv(x) + bias: the conv2d op, which picks oneDNN at the outer levels
 * and blocked weight products at the deep ones (kernels/cpu/conv.c). */
static void conv(unet *u, float *out, const float *x, int B, int C, int H, int W, const wb *l, int stride, int pad) {
    int OC = (int)l->w.shape[0], KH = (int)l->w.shape[2], KW = (int)l->w.shape[3];
    int OH = (H + 2 * pad - KH) / stride + 1, OW = (W + 2 * pad - KW) / stride + 1;
    unet_op op = KH == 1 && KW == 1 ? UNET_OP_LINEAR : UNET_OP_CONV3X3;
    conv2d_params p = {.stride_h = stride, .stride_w = stride, .pad_h = pad, .pad_w = pad, .groups = 1};
    int rc = 0;
    TIMED(u, op, 2.0 * OC * (double)C * KH * KW * B * OH * OW, rc = conv2d(u->ctx, out, x, B, C, H, W, &l->w, &l->b, p));
    if (rc) log_error("U-Net conv: %s", ts_last_error());   /* shapes were checked at load: a bug */
}

static void group_norm_silu(unet *u, float *out, const float *x, int B, int C, int64_t HW, const wb *n, float eps, bool act) {
    TIMED(u, UNET_OP_NORM, 0, group_norm(u->ctx, out, x, B, C, HW, u->cfg.norm_num_groups, &n->w, &n->b, eps));
    if (act) TIMED(u, UNET_OP_OTHER, 0, silu(u->ctx, out, out, (int64_t)B * C * HW));
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
    tensor e_per_image = tensor_f32(e, B, C, 0, 0);
    TIMED(u, UNET_OP_OTHER, 0, add_channel_bias(u->ctx, h, B, C, HW, &e_per_image));
    group_norm_silu(u, h, h, B, C, HW, &b->norm2, u->cfg.norm_eps, true);
    conv(u, out, h, B, C, H, W, &b->conv2, 1, 1);
    if (b->shortcut.w.data) {
        /* out[b] += W [C, Cin] x[b] [Cin, HW] + bias: the 1x1 shortcut as GEMMs straight from NCHW */
        product(u, &b->shortcut.w,
                (weight_gemm_params){.weight_left = true, .other = (int)HW, .K = Cin, .X = x, .ldx = (int)HW,
                                     .x_stride = (int64_t)Cin * HW, .C = out, .ldc = (int)HW,
                                     .c_stride = (int64_t)C * HW, .count = B, .beta = 1.0f},
                UNET_OP_LINEAR);
        TIMED(u, UNET_OP_OTHER, 0, add_channel_bias(u->ctx, out, B, C, HW, &b->shortcut.b));
    } else {
        TIMED(u, UNET_OP_OTHER, 0, add_inplace(u->ctx, out, x, (int64_t)B * C * HW));
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
    TIMED(u, UNET_OP_ATTENTION, 4.0 * B * (double)nq * nkv * C, attention(u->ctx, out, q, k, v, p));
}

static void layer_norm_rows(unet *u, float *out, const float *x, int64_t rows, int C, const wb *n) {
    TIMED(u, UNET_OP_NORM, 0, layer_norm(u->ctx, out, x, rows, C, &n->w, &n->b, 1e-5f));
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
    product(u, &b->conv1.w,
            (weight_gemm_params){.weight_left = false, .trans_x = true, .other = (int)HW, .K = C, .X = g, .ldx = (int)HW,
                                 .x_stride = (int64_t)C * HW, .C = hs, .ldc = C, .c_stride = HW * C, .count = B},
            UNET_OP_LINEAR);
    TIMED(u, UNET_OP_LINEAR, 0, add_row_bias(u->ctx, hs, rows, C, &b->conv1.b));

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
        TIMED(u, UNET_OP_OTHER, 0, geglu(u->ctx, gated, ff, rows, inner));
        dense(u, hs, gated, rows, &t->ff_out, true);
    }
    /* proj_out: out[b] [C, HW] = x[b] + W hs[b]^T + bias, written back as NCHW */
    copy_floats(u->ctx, out, x, (int64_t)B * C * HW);
    product(u, &b->conv2.w,
            (weight_gemm_params){.weight_left = true, .trans_x = true, .other = (int)HW, .K = C, .X = hs, .ldx = C,
                                 .x_stride = HW * C, .C = out, .ldc = (int)HW, .c_stride = (int64_t)C * HW, .count = B,
                                 .beta = 1.0f},
            UNET_OP_LINEAR);
    TIMED(u, UNET_OP_OTHER, 0, add_channel_bias(u->ctx, out, B, C, HW, &b->conv2.b));
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

int unet_forward(unet *self, ts_ctx *ctx, const float *x, int B, int H, int W, const float *timesteps, const float *context, int T,
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
    u->ctx = ctx;

    /* Time embedding, plus SDXL's pooled text and size/crop ids; resnets use silu of it. */
    int c0 = c->block_out_channels[0], td = u->time_dim;
    float *sin_t = arena_floats(a, (size_t)B * c0), *emb1 = arena_floats(a, (size_t)B * td);
    float *emb = arena_floats(a, (size_t)B * td);
    timestep_embedding(ctx, sin_t, timesteps, B, c0, c->flip_sin_to_cos, c->freq_shift);
    dense(u, emb1, sin_t, B, &u->time_1, false);
    silu(ctx, emb1, emb1, (int64_t)B * td);
    dense(u, emb, emb1, B, &u->time_2, false);
    if (c->text_time) {
        int tdim = unet_text_embeds_dim(u), ad = c->addition_time_embed_dim, pin = c->projection_class_embeddings_input_dim;
        float *add_in = arena_floats(a, (size_t)B * pin), *ids = arena_floats(a, (size_t)B * 6 * ad);
        timestep_embedding(ctx, ids, time_ids, B * 6, ad, c->flip_sin_to_cos, c->freq_shift);
        /* add_in[n] = [text_embeds[n], ids[n]] */
        copy_2d(ctx, add_in, pin, text_embeds, tdim, B, tdim);
        copy_2d(ctx, add_in + tdim, pin, ids, 6 * ad, B, 6 * ad);
        dense(u, emb1, add_in, B, &u->add_1, false);
        silu(ctx, emb1, emb1, (int64_t)B * td);
        dense(u, emb, emb1, B, &u->add_2, true);
    }
    float *semb = arena_floats(a, (size_t)B * td);
    silu(ctx, semb, emb, (int64_t)B * td);

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
            TIMED(u, UNET_OP_OTHER, 0, copy_2d(ctx, cat, (int64_t)b->in_ch * hw, cur, (int64_t)c1 * hw, B, (int64_t)c1 * hw);
                  copy_2d(ctx, cat + (int64_t)c1 * hw, (int64_t)b->in_ch * hw, skip, (int64_t)c2 * hw, B, (int64_t)c2 * hw));
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
            TIMED(u, UNET_OP_OTHER, 0, upsample_nearest2x(ctx, up, in, B, b->in_ch, h, w));
            h *= 2, w *= 2;
            float *res = arena_floats(a, (size_t)B * b->out_ch * h * w);
            conv(u, res, up, B, b->in_ch, h, w, &b->conv1, 1, 1);
            /* keep only the result: move it down over the upsampled copy */
            arena_reset(a, mark);
            o = arena_floats(a, (size_t)B * b->out_ch * h * w);
            copy_floats(ctx, o, res, (int64_t)B * b->out_ch * h * w);
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
    u->ctx = NULL;
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
