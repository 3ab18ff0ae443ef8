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
 *
 * Weights come from a weight_binder (a file, random values, or shapes only). A U-Net split
 * over T ranks (unet.h, unet_parallel.h) binds this rank's shard of each split layer and
 * runs the same table on its part (heads / T heads, conv1 channels / T), and after each
 * row-parallel layer one all-reduce on the context's comm.
 */
#include "models/diffusion/unet.h"

#include "kernels/comm.h"
#include "kernels/ops.h"
#include "kernels/piece_sum.h"
#include "models/formats/model_files.h"
#include "models/formats/weight_binder.h"
#include "models/diffusion/unet_internal.h"
#include "models/diffusion/unet_parallel.h"

#include <math.h>
#include <pthread.h>
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
    wb norm3, ff_in, ff_gate, ff_out; /* GEGLU feed-forward: ff.net.0.proj's value and gate
                                         chunks (ff_in.b: both biases, F32), ff.net.2 */
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
    weight_binder *weights;           /* the weights' source and owner (views into a file) */
    void **owned;                     /* memory of our own (GEGLU biases as F32) */
    int owned_count;
    unet_split split;                 /* how this rank shares the work (unet.h) */
    int tp, tp_rank;                  /* tensor parallelism: ranks and this one's index (1, 0: none) */
    comm *comm;                       /* the forward in progress's group (ctx's), when split */
    int comm_rc;                      /* -1 once a collective of this forward failed */
    float *gather;                    /* batch split: this rank's output rows */
    size_t gather_floats;
    float *stage;                     /* on a device with a host comm: an all-reduce's host copy */
    size_t stage_floats;
    comm *lead;                       /* rank 0 of a led group: every forward is announced on it */
    /* A split into more pieces than ranks (unet_split.pieces): this U-Net is the rank's first
     * piece, siblings the others (bound from our binder), each run on its own thread and
     * context; pieces orders every row-parallel sum. Siblings point at the first's pieces. */
    struct unet **siblings;
    ts_ctx **sibling_ctx;
    const ts_ctx *siblings_like;      /* the context sibling_ctx were made like (ts_ctx_new_like) */
    int sibling_count, piece;         /* piece: this one's index among the rank's pieces */
    piece_sum *pieces;
    bool owns_pieces;
    size_t weight_bytes;
    size_t split_bytes;               /* of them, the split layers' shards (1/tp of those layers) */
    int64_t param_count;
    ts_ctx *ctx;                      /* where the forward in progress runs (unet_forward's) */
    arena *arena;                     /* activations: host memory, or arena_ctx's device memory */
    const ts_ctx *arena_ctx;          /* NULL for a host arena */
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

/* Binding the table: every weight comes from one weight_binder (a file, random values or
 * shapes only). Under tensor parallelism (u->tp > 1) a split layer asks for this rank's shard
 * (unet_parallel.h has the plan): q/k/v, ff_in, conv1, time_emb_proj and norm2 by rows (output
 * features: views into the file), the out-projections, ff_out and conv2 by columns (input
 * features: copies); a row-parallel layer's bias and the ResNet shortcut live on rank 0 only,
 * which adds them once before the all-reduce. */
typedef struct {
    unet *u;
    weight_binder *w;
    int layout;
    const char *prefix;               /* prepended to every name ("model.diffusion_model.") */
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

/* How a layer is split: whole, column-parallel (rows: output features), row-parallel
 * (columns: input features; bias on rank 0), or only on rank 0 (the ResNet shortcut). */
typedef enum { SPLIT_NONE, SPLIT_OUT, SPLIT_IN, SPLIT_RANK0 } split_kind;

static shard_spec shard_of(const unet *u, split_kind k) {
    if (u->tp == 1 || k == SPLIT_NONE || k == SPLIT_RANK0) return SHARD_NONE_SPEC;
    return (shard_spec){k == SPLIT_OUT ? SHARD_ROWS : SHARD_COLS, u->tp_rank, u->tp};
}

/* NAME.weight (and NAME.bias) with the full shape checked, as this rank's part. */
static int bind(loader *L, wb *dst, const char *name, split_kind split, bool bias, int ndim, int64_t d0, int64_t d1,
                int64_t d2, int64_t d3) {
    unet *u = L->u;
    memset(dst, 0, sizeof *dst);
    if (split == SPLIT_RANK0 && u->tp_rank != 0) return 0;
    int64_t shape[4] = {d0, d1, d2, d3};
    char full[320];
    snprintf(full, sizeof full, "%s%s.weight", L->prefix, name);
    if (weight_binder_get(L->w, &dst->w, shard_of(u, split), ndim, shape, full)) return -1;
    if (split == SPLIT_OUT || split == SPLIT_IN) u->split_bytes += tensor_nbytes(&dst->w);
    if (!bias || (split == SPLIT_IN && u->tp_rank != 0)) return 0;
    snprintf(full, sizeof full, "%s%s.bias", L->prefix, name);
    if (weight_binder_get(L->w, &dst->b, split == SPLIT_OUT ? shard_of(u, split) : SHARD_NONE_SPEC, 1, shape, full))
        return -1;
    if (split == SPLIT_OUT) u->split_bytes += tensor_nbytes(&dst->b);
    return 0;
}

static int bind_part(loader *L, const block *b, wb *dst, const char *part, split_kind split, bool bias, int ndim,
                     int64_t d0, int64_t d1, int64_t d2, int64_t d3) {
    char name[192];
    const char *p = b->kind == BLK_RESNET ? resnet_part(part, L->layout) : part;
    snprintf(name, sizeof name, "%s%s%s", b->name[L->layout], *p ? "." : "", p);
    return bind(L, dst, name, split, bias, ndim, d0, d1, d2, d3);
}

static int bind_attention(loader *L, const block *b, const char *attn, wb *q, wb *k, wb *v, wb *o, int C, int kv_dim) {
    char p[64];
    snprintf(p, sizeof p, "%s.to_q", attn);
    if (bind_part(L, b, q, p, SPLIT_OUT, false, 2, C, C, 0, 0)) return -1;
    snprintf(p, sizeof p, "%s.to_k", attn);
    if (bind_part(L, b, k, p, SPLIT_OUT, false, 2, C, kv_dim, 0, 0)) return -1;
    snprintf(p, sizeof p, "%s.to_v", attn);
    if (bind_part(L, b, v, p, SPLIT_OUT, false, 2, C, kv_dim, 0, 0)) return -1;
    snprintf(p, sizeof p, "%s.to_out.0", attn);
    return bind_part(L, b, o, p, SPLIT_IN, true, 2, C, C, 0, 0);
}

/* GEGLU's ff.net.0.proj [2 * inner, C] is two chunks, value then gate: this rank takes part
 * `rank` of each (parts rank and tp + rank of 2 tp row parts: views, no copy) and the two
 * bias parts as one F32 [2 * inner / tp] (the product fills value | gate columns of a row). */
static int bind_geglu(loader *L, const block *b, transformer_layer *t, const char *layer, int C) {
    unet *u = L->u;
    int inner = 4 * C, part = inner / u->tp;
    char name[256];
    snprintf(name, sizeof name, "%s%s.%s.ff.net.0.proj.weight", L->prefix, b->name[L->layout], layer);
    int64_t wshape[2] = {2 * (int64_t)inner, C}, bshape[1] = {2 * (int64_t)inner};
    shard_spec value = {SHARD_ROWS, u->tp_rank, 2 * u->tp}, gate = {SHARD_ROWS, u->tp + u->tp_rank, 2 * u->tp};
    if (weight_binder_get(L->w, &t->ff_in.w, value, 2, wshape, name) ||
        weight_binder_get(L->w, &t->ff_gate.w, gate, 2, wshape, name))
        return -1;
    snprintf(name, sizeof name, "%s%s.%s.ff.net.0.proj.bias", L->prefix, b->name[L->layout], layer);
    tensor bv, bg;
    if (weight_binder_get(L->w, &bv, value, 1, bshape, name) || weight_binder_get(L->w, &bg, gate, 1, bshape, name))
        return -1;
    u->split_bytes += tensor_nbytes(&t->ff_in.w) + tensor_nbytes(&t->ff_gate.w) + tensor_nbytes(&bv) + tensor_nbytes(&bg);
    if (!bv.data) return 0;   /* counting shapes only */
    float *bias = ts_malloc((size_t)2 * part * sizeof(float));
    convert_to_f32(bias, bv.data, bv.type, (size_t)part);
    convert_to_f32(bias + part, bg.data, bg.type, (size_t)part);
    u->owned = ts_realloc(u->owned, (size_t)(u->owned_count + 1) * sizeof *u->owned);
    u->owned[u->owned_count++] = bias;
    t->ff_in.b = tensor_f32(bias, 2 * part, 0, 0, 0);
    return 0;
}

static int bind_block(loader *L, block *b) {
    const unet_config *c = &L->u->cfg;
    int in = b->in_ch, out = b->out_ch;
    switch (b->kind) {
    case BLK_CONV_IN:
        return bind_part(L, b, &b->conv1, "", SPLIT_NONE, true, 4, out, in, c->conv_in_kernel, c->conv_in_kernel);
    case BLK_DOWNSAMPLE:
    case BLK_UPSAMPLE:
        return bind_part(L, b, &b->conv1, "", SPLIT_NONE, true, 4, out, in, 3, 3);
    case BLK_OUT: {
        char cn[64];
        if (bind_part(L, b, &b->norm1, "", SPLIT_NONE, true, 1, in, 0, 0, 0)) return -1;
        snprintf(cn, sizeof cn, "%s", L->layout == LAYOUT_DIFFUSERS ? "conv_out" : "out.2");
        return bind(L, &b->conv1, cn, SPLIT_NONE, true, 4, out, in, c->conv_out_kernel, c->conv_out_kernel);
    }
    case BLK_RESNET:
        if (bind_part(L, b, &b->norm1, "norm1", SPLIT_NONE, true, 1, in, 0, 0, 0) ||
            bind_part(L, b, &b->conv1, "conv1", SPLIT_OUT, true, 4, out, in, 3, 3) ||
            bind_part(L, b, &b->time_proj, "time_emb_proj", SPLIT_OUT, true, 2, out, L->u->time_dim, 0, 0) ||
            bind_part(L, b, &b->norm2, "norm2", SPLIT_OUT, true, 1, out, 0, 0, 0) ||
            bind_part(L, b, &b->conv2, "conv2", SPLIT_IN, true, 4, out, out, 3, 3))
            return -1;
        /* the 1x1 shortcut, used as a [out, in] matrix */
        if (in != out && bind_part(L, b, &b->shortcut, "conv_shortcut", SPLIT_RANK0, true, 2, out, in, 0, 0)) return -1;
        return 0;
    case BLK_TRANSFORMER: {
        int C = in, inner = 4 * C;
        if (bind_part(L, b, &b->norm1, "norm", SPLIT_NONE, true, 1, C, 0, 0, 0) ||
            bind_part(L, b, &b->conv1, "proj_in", SPLIT_NONE, true, 2, C, C, 0, 0) ||
            bind_part(L, b, &b->conv2, "proj_out", SPLIT_NONE, true, 2, C, C, 0, 0))
            return -1;
        b->layers = ts_calloc((size_t)b->depth, sizeof *b->layers);
        for (int d = 0; d < b->depth; d++) {
            transformer_layer *t = &b->layers[d];
            char p[64], q[64];
            snprintf(p, sizeof p, "transformer_blocks.%d", d);
#define PART(field, suffix, split, bias, nd, a0, a1)                 \
    (snprintf(q, sizeof q, "%s.%s", p, suffix), bind_part(L, b, &t->field, q, split, bias, nd, a0, a1, 0, 0))
            char a1[64], a2[64];
            snprintf(a1, sizeof a1, "%s.attn1", p);
            snprintf(a2, sizeof a2, "%s.attn2", p);
            if (PART(norm1, "norm1", SPLIT_NONE, true, 1, C, 0) || PART(norm2, "norm2", SPLIT_NONE, true, 1, C, 0) ||
                PART(norm3, "norm3", SPLIT_NONE, true, 1, C, 0) ||
                bind_attention(L, b, a1, &t->q1, &t->k1, &t->v1, &t->out1, C, C) ||
                bind_attention(L, b, a2, &t->q2, &t->k2, &t->v2, &t->out2, C, c->cross_attention_dim) ||
                bind_geglu(L, b, t, p, C) || PART(ff_out, "ff.net.2", SPLIT_IN, true, 2, C, inner))
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
    if (bind(L, &u->time_1, d ? "time_embedding.linear_1" : "time_embed.0", SPLIT_NONE, true, 2, u->time_dim, c0, 0, 0) ||
        bind(L, &u->time_2, d ? "time_embedding.linear_2" : "time_embed.2", SPLIT_NONE, true, 2, u->time_dim, u->time_dim, 0, 0))
        return -1;
    if (c->text_time &&
        (bind(L, &u->add_1, d ? "add_embedding.linear_1" : "label_emb.0.0", SPLIT_NONE, true, 2, u->time_dim,
              c->projection_class_embeddings_input_dim, 0, 0) ||
         bind(L, &u->add_2, d ? "add_embedding.linear_2" : "label_emb.0.2", SPLIT_NONE, true, 2, u->time_dim, u->time_dim, 0, 0)))
        return -1;
    for (int i = 0; i < u->block_count; i++)
        if (bind_block(L, &u->blocks[i])) return -1;
    u->weight_bytes = weight_binder_bytes(L->w);
    u->param_count = weight_binder_params(L->w);
    return 0;
}

/* A U-Net with its table and no weights; split checked against the config (refused by name). */
static unet *unet_create(const unet_config *cfg, unet_split split) {
    if (unet_config_check(cfg, "U-Net config")) return NULL;
    if (split.ranks < 1 || split.rank < 0 || split.rank >= split.ranks) {
        ts_fail("U-Net split: rank %d of %d", split.rank, split.ranks);
        return NULL;
    }
    if (split.mode == UNET_PARALLEL_NONE && split.ranks > 1) {
        ts_fail("U-Net split: %d ranks but no parallel mode", split.ranks);
        return NULL;
    }
    if (split.pieces < 0 || (split.pieces && (split.mode != UNET_PARALLEL_TP || split.pieces % split.ranks))) {
        ts_fail("U-Net split: %d pieces over %d ranks (tensor parallelism, a multiple of the ranks)", split.pieces,
                split.ranks);
        return NULL;
    }
    int pieces = split.pieces ? split.pieces : split.ranks, local = pieces / split.ranks;
    if (split.mode == UNET_PARALLEL_TP && unet_tp_check(cfg, pieces)) return NULL;
    unet *u = ts_calloc(1, sizeof *u);
    u->cfg = *cfg;
    u->split = split;
    u->tp = split.mode == UNET_PARALLEL_TP ? pieces : 1;
    u->tp_rank = split.mode == UNET_PARALLEL_TP ? split.rank * local : 0;
    u->time_dim = 4 * cfg->block_out_channels[0];
    build_table(u);
    return u;
}

/* Binds u's weights from w (which u then owns), and those of the rank's other pieces when the
 * split has more pieces than ranks; NULL, u destroyed, on failure. */
static unet *finish(unet *u, weight_binder *w, int layout, const char *prefix) {
    u->weights = w;
    loader L = {.u = u, .w = w, .layout = layout, .prefix = prefix};
    if (bind_all(&L)) {
        unet_destroy(&u);
        return NULL;
    }
    if (!u->split.pieces) return u;
    int local = u->split.pieces / u->split.ranks;
    u->pieces = piece_sum_new(local, u->split.pieces);
    if (!u->pieces) {
        unet_destroy(&u);
        return NULL;
    }
    u->owns_pieces = true;
    u->siblings = ts_calloc((size_t)local, sizeof *u->siblings);
    u->sibling_ctx = ts_calloc((size_t)local, sizeof *u->sibling_ctx);
    for (int j = 1; j < local; j++) {
        unet *s = ts_calloc(1, sizeof *s);
        *s = (unet){.cfg = u->cfg, .split = u->split, .tp = u->tp, .tp_rank = u->tp_rank + j, .time_dim = u->time_dim,
                    .piece = j, .pieces = u->pieces};
        build_table(s);
        u->siblings[u->sibling_count++] = s;
        L.u = s;
        if (bind_all(&L)) {
            unet_destroy(&u);
            return NULL;
        }
    }
    /* the rank holds the replicated layers once (views into one file) and every piece's shards */
    for (int j = 0; j < u->sibling_count; j++) u->weight_bytes += u->siblings[j]->split_bytes;
    return u;
}

unet *unet_new_random_split(const unet_config *config, dtype wtype, uint64_t seed, unet_split split) {
    unet *u = unet_create(config, split);
    if (!u) return NULL;
    weight_binder *w = weight_binder_random(wtype, seed * 2654435761u + 1);
    if (!w) {
        unet_destroy(&u);
        return NULL;
    }
    return finish(u, w, LAYOUT_DIFFUSERS, "");
}

unet *unet_new_random(const unet_config *config, dtype wtype, uint64_t seed) {
    return unet_new_random_split(config, wtype, seed, UNET_SPLIT_NONE);
}

int64_t unet_config_param_count(const unet_config *config) {
    unet *u = unet_create(config, UNET_SPLIT_NONE);
    if (!u) return -1;
    u = finish(u, weight_binder_counting(), LAYOUT_DIFFUSERS, "");
    int64_t n = u ? u->param_count : -1;
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

unet *unet_load_files_split(const char *weights_path, const char *config_json_path, unet_split split) {
    weight_binder *w = weight_binder_open(weights_path);
    if (!w) return NULL;
    /* Which names does the file use? */
    static const struct { const char *probe, *prefix; int layout; } layouts[] = {
        {"conv_in.weight", "", LAYOUT_DIFFUSERS},
        {"model.diffusion_model.input_blocks.0.0.weight", "model.diffusion_model.", LAYOUT_COMPVIS},
        {"input_blocks.0.0.weight", "", LAYOUT_COMPVIS},
    };
    int which = -1;
    for (int i = 0; i < 3 && which < 0; i++)
        if (weight_binder_has(w, layouts[i].probe)) which = i;
    if (which < 0) {
        ts_fail("%s: no U-Net in this file (looked for conv_in.weight and model.diffusion_model.input_blocks.0.0.weight)",
                weights_path);
        weight_binder_destroy(&w);
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
        /* the shapes of a single file (read through its own small mapping) */
        safetensors *st = safetensors_open(weights_path);
        rc = st ? unet_config_infer(st, layouts[which].prefix, &cfg) : -1;
        safetensors_close(&st);
    }
    unet *u = rc ? NULL : unet_create(&cfg, split);
    if (!u) {
        weight_binder_destroy(&w);
        ts_fail_wrap("loading the U-Net from %s", weights_path);
        return NULL;
    }
    u = finish(u, w, layouts[which].layout, layouts[which].prefix);
    if (!u) ts_fail_wrap("loading the U-Net");
    else if (split.ranks > 1)
        log_info("U-Net: rank %d of %d (%s) holds %.1f MB of weights, %.1f MB of them its part of the split layers",
                 split.rank, split.ranks, unet_parallel_name(split.mode), u->weight_bytes / 1e6, u->split_bytes / 1e6);
    return u;
}

unet *unet_load_files(const char *weights_path, const char *config_json_path) {
    return unet_load_files_split(weights_path, config_json_path, UNET_SPLIT_NONE);
}

unet *unet_load_split(const char *model, unet_split split) {
    char weights[4096], config[4096];
    if (!model_is_folder(model)) return unet_load_files_split(model, NULL, split);
    if (model_component_weights(model, "unet", weights, sizeof weights)) return NULL;
    if (model_component_file(model, "unet", "config.json", config, sizeof config)) {
        ts_fail("%s: no unet/config.json", model);
        return NULL;
    }
    return unet_load_files_split(weights, config, split);
}

unet *unet_load(const char *model) { return unet_load_split(model, UNET_SPLIT_NONE); }

int unet_config_load(const char *model, unet_config *out) {
    char config[4096];
    if (model_is_folder(model)) {
        if (model_component_file(model, "unet", "config.json", config, sizeof config))
            return ts_fail("%s: no unet/config.json", model);
        char *json = read_text_file(config, NULL);
        int rc = json ? unet_config_parse_json(json, config, out) : -1;
        free(json);
        return rc;
    }
    /* a single file: its shapes, as unet_load_files reads them (or a config.json beside it) */
    unet *u = unet_load_files_split(model, NULL, (unet_split){UNET_PARALLEL_NONE, 0, 1, 0});
    if (!u) return -1;
    *out = u->cfg;
    unet_destroy(&u);
    return 0;
}

void unet_destroy(unet **self) {
    if (!self || !*self) return;
    unet *u = *self;
    for (int i = 0; i < u->block_count; i++) free(u->blocks[i].layers);
    free(u->blocks);
    for (int i = 0; i < u->owned_count; i++) free(u->owned[i]);
    free(u->owned);
    if (u->lead) unet_lead_stop(u);
    for (int j = 0; j < u->sibling_count; j++) unet_destroy(&u->siblings[j]);   /* before the binder they view */
    for (int j = 0; j < u->sibling_count + 1 && u->sibling_ctx; j++) ts_ctx_destroy(&u->sibling_ctx[j]);
    free(u->siblings);
    free(u->sibling_ctx);
    if (u->owns_pieces) piece_sum_destroy(&u->pieces);
    weight_binder_destroy(&u->weights);
    arena_destroy(&u->arena);
    free(u->gather);
    free(u->stage);
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
int64_t unet_param_count(const unet *self) { return self->param_count; }
size_t unet_split_weight_bytes(const unet *self) {
    size_t n = self->split_bytes;
    for (int j = 0; j < self->sibling_count; j++) n += self->siblings[j]->split_bytes;
    return n;
}
unet_split unet_get_split(const unet *self) { return self->split; }

/* ---- profiling ---------------------------------------------------------- */

const char *unet_op_name(unet_op op) {
    static const char *names[UNET_OP_COUNT] = {"conv 3x3", "conv 1x1 / linear", "attention", "norms", "widen weights", "other",
                                               "all-reduce / gather"};
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

/* y[rows, ldc] columns [0, out) = x[rows, in] W^T, with W [out, in], no bias (one chunk of a
 * product whose row holds several). */
static void dense_cols(unet *u, float *y, int ldc, const float *x, int64_t rows, const tensor *w) {
    int in = (int)w->shape[1];
    product(u, w, (weight_gemm_params){.weight_left = false, .other = (int)rows, .K = in, .X = x, .ldx = in, .C = y,
                                       .ldc = ldc, .count = 1, .beta = 0.0f},
            UNET_OP_LINEAR);
}

/* x[n] = the sum of every tensor-parallel rank's x[n] (a row-parallel layer's output). A
 * failure is kept in u->comm_rc and ends the forward after the block. */
static void all_reduce(unet *u, float *x, int64_t n) {
    /* no split layers, no sum; but a one-rank group's still runs (a copy), as a T > 1 one would */
    if (u->comm_rc || u->split.mode == UNET_PARALLEL_BATCH || (u->tp == 1 && !u->comm)) return;
    double t0 = u->profiling ? ts_now() : 0;
    /* activations on a device, a comm on host memory (MPI): through a host copy */
    bool stage = !ts_ctx_host_memory(u->ctx) && (u->pieces || !comm_device_buffers(u->comm));
    float *h = x;
    size_t bytes = (size_t)n * sizeof(float);
    if (stage) {
        if (u->stage_floats < (size_t)n) {
            free(u->stage);
            u->stage = ts_malloc(bytes);
            u->stage_floats = (size_t)n;
        }
        h = u->stage;
    }
    if ((stage && ts_ctx_download(u->ctx, h, x, bytes)) ||
        (u->pieces ? piece_sum_add(u->pieces, u->piece, u->comm, h, (size_t)n)
                   : comm_all_reduce_sum(u->comm, h, h, (size_t)n, DT_F32)) ||
        (stage && ts_ctx_upload(u->ctx, x, h, bytes)))
        u->comm_rc = -1;
    if (u->profiling) {
        u->prof.seconds[UNET_OP_COMM] += ts_now() - t0;
        u->prof.comm_bytes += (double)n * sizeof(float);
        u->prof.comm_calls++;
    }
}

/* y[rows, out] += x[rows, in_part] W_part^T + b: a row-parallel layer (the attention
 * out-projections, ff_out) whose partial products are summed over the ranks. Rank 0 adds its
 * part and the bias to y; the others write their part alone; the all-reduce then gives every
 * rank y + bias + the sum of the parts. */
static void dense_row_parallel(unet *u, float *y, const float *x, int64_t rows, const wb *l) {
    dense(u, y, x, rows, l, u->tp_rank == 0);
    all_reduce(u, y, rows * l->w.shape[0]);
}

/* out[B, OC, OH, OW] = conv(x) + bias: the conv2d op, which picks oneDNN at the outer levels
 * and blocked weight products at the deep ones (kernels/cpu/conv.c). */
static void conv(unet *u, float *out, const float *x, int B, int C, int H, int W, const wb *l, int stride, int pad) {
    int OC = (int)l->w.shape[0], KH = (int)l->w.shape[2], KW = (int)l->w.shape[3];
    int OH = (H + 2 * pad - KH) / stride + 1, OW = (W + 2 * pad - KW) / stride + 1;
    unet_op op = KH == 1 && KW == 1 ? UNET_OP_LINEAR : UNET_OP_CONV3X3;
    conv2d_params p = {.stride_h = stride, .stride_w = stride, .pad_h = pad, .pad_w = pad, .groups = 1};
    int rc = 0;
    TIMED(u, op, 2.0 * OC * (double)C * KH * KW * B * OH * OW, rc = conv2d(u->ctx, out, x, B, C, H, W, &l->w, l->b.data ? &l->b : NULL, p));
    if (rc) log_error("U-Net conv: %s", ts_last_error());   /* shapes were checked at load: a bug */
}

static void group_norm_silu(unet *u, float *out, const float *x, int B, int C, int64_t HW, const wb *n, int groups, float eps,
                            bool act) {
    TIMED(u, UNET_OP_NORM, 0, group_norm(u->ctx, out, x, B, C, HW, groups, &n->w, &n->b, eps));
    if (act) TIMED(u, UNET_OP_OTHER, 0, silu(u->ctx, out, out, (int64_t)B * C * HW));
}

/* out [B, C, HW] = ResNet(x [B, Cin, HW]); semb [B, time_dim] is silu(time embedding). */
static void resnet_forward(unet *u, const block *b, float *out, const float *x, int B, int H, int W, const float *semb) {
    arena *a = u->arena;
    size_t mark = arena_mark(a);
    int64_t HW = (int64_t)H * W;
    int Cin = b->in_ch, C = b->out_ch, Cp = C / u->tp;   /* Cp: this rank's conv1 channels */
    float *t = arena_floats(a, (size_t)B * Cin * HW);
    group_norm_silu(u, t, x, B, Cin, HW, &b->norm1, u->cfg.norm_num_groups, u->cfg.norm_eps, true);
    float *h = arena_floats(a, (size_t)B * Cp * HW);
    conv(u, h, t, B, Cin, H, W, &b->conv1, 1, 1);
    float *e = arena_floats(a, (size_t)B * Cp);
    dense(u, e, semb, B, &b->time_proj, false);
    tensor e_per_image = tensor_f32(e, B, Cp, 0, 0);
    TIMED(u, UNET_OP_OTHER, 0, add_channel_bias(u->ctx, h, B, Cp, HW, &e_per_image));
    /* norm2's groups are whole on each rank: its channels are groups / tp whole groups */
    group_norm_silu(u, h, h, B, Cp, HW, &b->norm2, u->cfg.norm_num_groups / u->tp, u->cfg.norm_eps, true);
    conv(u, out, h, B, Cp, H, W, &b->conv2, 1, 1);   /* split by input channels: a partial sum, bias on rank 0 */
    /* the shortcut or residual: rank 0's to add, once (tp > 1: the all-reduce sums the parts) */
    if (u->tp_rank == 0 && b->shortcut.w.data) {
        /* out[b] += W [C, Cin] x[b] [Cin, HW] + bias: the 1x1 shortcut as GEMMs straight from NCHW */
        product(u, &b->shortcut.w,
                (weight_gemm_params){.weight_left = true, .other = (int)HW, .K = Cin, .X = x, .ldx = (int)HW,
                                     .x_stride = (int64_t)Cin * HW, .C = out, .ldc = (int)HW,
                                     .c_stride = (int64_t)C * HW, .count = B, .beta = 1.0f},
                UNET_OP_LINEAR);
        TIMED(u, UNET_OP_OTHER, 0, add_channel_bias(u->ctx, out, B, C, HW, &b->shortcut.b));
    } else if (u->tp_rank == 0) {
        TIMED(u, UNET_OP_OTHER, 0, add_inplace(u->ctx, out, x, (int64_t)B * C * HW));
    }
    all_reduce(u, out, (int64_t)B * C * HW);
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
    int C = b->in_ch, Cp = C / u->tp, heads = b->heads / u->tp, inner = 4 * C / u->tp;   /* this rank's part */
    int64_t HW = (int64_t)H * W, rows = (int64_t)B * HW;
    float *g = arena_floats(a, (size_t)B * C * HW);
    group_norm_silu(u, g, x, B, C, HW, &b->norm1, u->cfg.norm_num_groups, 1e-6f, false);
    /* proj_in: hs[b] [HW, C] = g[b]^T W^T, reading NCHW directly */
    float *hs = arena_floats(a, (size_t)rows * C);
    product(u, &b->conv1.w,
            (weight_gemm_params){.weight_left = false, .trans_x = true, .other = (int)HW, .K = C, .X = g, .ldx = (int)HW,
                                 .x_stride = (int64_t)C * HW, .C = hs, .ldc = C, .c_stride = HW * C, .count = B},
            UNET_OP_LINEAR);
    TIMED(u, UNET_OP_LINEAR, 0, add_row_bias(u->ctx, hs, rows, C, &b->conv1.b));

    float *nrm = arena_floats(a, (size_t)rows * C), *q = arena_floats(a, (size_t)rows * Cp);
    int64_t kv_rows = rows > (int64_t)B * T ? rows : (int64_t)B * T;   /* self- or cross-attention keys */
    float *k = arena_floats(a, (size_t)kv_rows * Cp), *v = arena_floats(a, (size_t)kv_rows * Cp);
    float *att = arena_floats(a, (size_t)rows * Cp);
    float *ff = arena_floats(a, (size_t)rows * 2 * inner), *gated = arena_floats(a, (size_t)rows * inner);
    for (int d = 0; d < b->depth; d++) {
        const transformer_layer *t = &b->layers[d];
        layer_norm_rows(u, nrm, hs, rows, C, &t->norm1);
        dense(u, q, nrm, rows, &t->q1, false);
        dense(u, k, nrm, rows, &t->k1, false);
        dense(u, v, nrm, rows, &t->v1, false);
        attend(u, att, q, k, v, B, heads, Cp, HW, HW);
        dense_row_parallel(u, hs, att, rows, &t->out1);

        layer_norm_rows(u, nrm, hs, rows, C, &t->norm2);
        dense(u, q, nrm, rows, &t->q2, false);
        dense(u, k, ctx, (int64_t)B * T, &t->k2, false);
        dense(u, v, ctx, (int64_t)B * T, &t->v2, false);
        attend(u, att, q, k, v, B, heads, Cp, HW, T);
        dense_row_parallel(u, hs, att, rows, &t->out2);

        layer_norm_rows(u, nrm, hs, rows, C, &t->norm3);
        /* ff rows: [value | gate] of this rank's GEGLU columns */
        dense_cols(u, ff, 2 * inner, nrm, rows, &t->ff_in.w);
        dense_cols(u, ff + inner, 2 * inner, nrm, rows, &t->ff_gate.w);
        TIMED(u, UNET_OP_LINEAR, 0, add_row_bias(u->ctx, ff, rows, 2 * inner, &t->ff_in.b));
        TIMED(u, UNET_OP_OTHER, 0, geglu(u->ctx, gated, ff, rows, inner));
        dense_row_parallel(u, hs, gated, rows, &t->ff_out);
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

/* The forward of the whole table on this rank's share of the work (arguments checked). */
/* u->arena big enough for a forward of this size on ctx (with room for the staged inputs and
 * output on a device). */
static int ensure_arena(unet *u, ts_ctx *ctx, int B, int H, int W, int T, bool text) {
    const unet_config *c = &u->cfg;
    bool device = !ts_ctx_host_memory(ctx);
    size_t hw_in = (size_t)H * W, n_x = (size_t)B * c->in_channels * hw_in, n_ctx = (size_t)B * T * c->cross_attention_dim;
    size_t n_text = text ? (size_t)B * unet_text_embeds_dim(u) : 0, n_out = (size_t)B * c->out_channels * hw_in;
    size_t need = arena_bytes_needed(u, B, H, W, T) + (device ? (n_x + n_ctx + n_text + n_out) * sizeof(float) + 1024 : 0);
    /* host arenas serve any host context; a device arena only the context that made it */
    if (need > u->arena_capacity || ((device || u->arena_ctx) && u->arena_ctx != ctx)) {
        arena_destroy(&u->arena);
        u->arena_capacity = 0;
        u->arena = ts_arena_new(ctx, need);
        if (!u->arena) return ts_fail_wrap("unet_forward: activations of %zu MB on %s", need >> 20, ts_ctx_backend_name(ctx));
        u->arena_capacity = need;
        u->arena_ctx = device ? ctx : NULL;
    }
    return 0;
}

static int forward(unet *u, ts_ctx *ctx, const float *x, int B, int H, int W, const float *timesteps, const float *context,
                   int T, const float *text_embeds, const float *time_ids, float *out) {
    const unet_config *c = &u->cfg;
    /* On a device the inputs and the output live in the arena too (the caller's are host) */
    bool device = !ts_ctx_host_memory(ctx);
    size_t hw_in = (size_t)H * W, text_dim = (size_t)unet_text_embeds_dim(u);
    size_t n_x = (size_t)B * c->in_channels * hw_in, n_ctx = (size_t)B * T * c->cross_attention_dim;
    size_t n_text = text_embeds ? (size_t)B * text_dim : 0, n_out = (size_t)B * c->out_channels * hw_in;
    if (ensure_arena(u, ctx, B, H, W, T, text_embeds != NULL)) return -1;
    arena *a = u->arena;
    arena_reset(a, 0);
    float *host_out = out;
    if (device) {
        float *dx = arena_floats(a, n_x), *dctx = arena_floats(a, n_ctx), *dtext = n_text ? arena_floats(a, n_text) : NULL;
        if (ts_ctx_upload(ctx, dx, x, n_x * sizeof(float)) || ts_ctx_upload(ctx, dctx, context, n_ctx * sizeof(float)) ||
            (n_text && ts_ctx_upload(ctx, dtext, text_embeds, n_text * sizeof(float))))
            return ts_fail_wrap("unet_forward: the inputs to %s", ts_ctx_backend_name(ctx));
        x = dx, context = dctx, text_embeds = dtext;
        out = arena_floats(a, n_out);
    }
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
            group_norm_silu(u, t, in, B, b->in_ch, hw, &b->norm1, c->norm_num_groups, c->norm_eps, true);
            conv(u, out, t, B, b->in_ch, h, w, &b->conv1, 1, c->conv_out_kernel / 2);
            arena_reset(a, mark);
            o = out;
            break;
        }
        default:
            return ts_fail("unet_forward: bad block kind %d", (int)b->kind);
        }
        if (u->comm_rc) {
            u->ctx = NULL;
            return ts_fail_wrap("unet_forward: %s, rank %d of %d", b->name[LAYOUT_DIFFUSERS], u->tp_rank, u->tp);
        }
        if (b->push) skip_data[nskips++] = o;
        cur = o;
    }
    u->ctx = NULL;
    if (device && (ts_ctx_download(ctx, host_out, out, n_out * sizeof(float)) || ts_ctx_synchronize(ctx)))
        return ts_fail_wrap("unet_forward on %s", ts_ctx_backend_name(ctx));
    return 0;
}

/* ---- more pieces than ranks: the rank's pieces on threads of their own ---- */

typedef struct {
    unet *u;
    ts_ctx *ctx;
    const float *x, *timesteps, *context, *text_embeds, *time_ids;
    int B, H, W, T, rc;
    float *out;
    char error[256];                  /* the piece's thread's error (errors are per thread) */
} piece_call;

static void *run_piece(void *arg) {
    piece_call *p = arg;
    p->rc = forward(p->u, p->ctx, p->x, p->B, p->H, p->W, p->timesteps, p->context, p->T, p->text_embeds, p->time_ids, p->out);
    if (p->rc) snprintf(p->error, sizeof p->error, "%s", ts_last_error());
    return NULL;
}

/* forward() of each of the rank's pieces at once (the first here, the siblings on threads),
 * meeting at every row-parallel sum; every piece ends with the same output, the first's is
 * out. Everything that can fail before the first meeting is done here first, so that no piece
 * waits for one that has already returned. */
static int forward_pieces(unet *u, ts_ctx *ctx, const float *x, int B, int H, int W, const float *timesteps,
                          const float *context, int T, const float *text_embeds, const float *time_ids, float *out) {
    int n = u->sibling_count;
    size_t n_out = (size_t)B * u->cfg.out_channels * H * W;
    piece_call call[64];
    if (n + 1 > 64) return ts_fail("unet_forward: %d pieces on one rank (64 at most)", n + 1);
    if (u->siblings_like != ctx)   /* a call on another context: the siblings' follow it */
        for (int j = 1; j <= n; j++) {
            unet *s = u->siblings[j - 1];
            arena_destroy(&s->arena);   /* made in the context going away */
            s->arena_capacity = 0;
            s->arena_ctx = NULL;
            ts_ctx_destroy(&u->sibling_ctx[j]);
        }
    u->siblings_like = ctx;
    for (int j = 0; j <= n; j++) {
        unet *p = j ? u->siblings[j - 1] : u;
        if (j && !u->sibling_ctx[j] && !(u->sibling_ctx[j] = ts_ctx_new_like(ctx)))
            return ts_fail_wrap("unet_forward: a context for piece %d", p->tp_rank);
        if (j && p->gather_floats < n_out) {
            free(p->gather);
            p->gather = ts_malloc(n_out * sizeof(float));
            p->gather_floats = n_out;
        }
        ts_ctx *pc = j ? u->sibling_ctx[j] : ctx;
        if (ensure_arena(p, pc, B, H, W, T, text_embeds != NULL)) return -1;
        p->comm_rc = 0;
        call[j] = (piece_call){.u = p, .ctx = pc, .x = x, .timesteps = timesteps, .context = context,
                               .text_embeds = text_embeds, .time_ids = time_ids, .B = B, .H = H, .W = W, .T = T,
                               .out = j ? p->gather : out};
    }
    pthread_t th[64];
    for (int j = 1; j <= n; j++)
        if (pthread_create(&th[j], NULL, run_piece, &call[j])) {
            /* the pieces started would wait at their first sum for this one: give up on the process */
            log_error("unet_forward: no thread for piece %d", u->tp_rank + j);
            abort();
        }
    run_piece(&call[0]);
    int rc = call[0].rc;
    for (int j = 1; j <= n; j++) {
        pthread_join(th[j], NULL);
        if (call[j].rc && !rc) rc = ts_fail("unet_forward: piece %d: %s", u->tp_rank + j, call[j].error);
    }
    return rc;
}

/* unet_forward once the leader (if any) has announced the call: every rank of a split. */
static int forward_split(unet *u, ts_ctx *ctx, const float *x, int B, int H, int W, const float *timesteps,
                         const float *context, int T, const float *text_embeds, const float *time_ids, float *out) {
    const unet_config *c = &u->cfg;
    int down = 1 << (c->levels - 1);
    if (!x || !timesteps || !context || !out) return ts_fail("unet_forward: x, timesteps, context and out are required");
    if (B <= 0 || H <= 0 || W <= 0 || T <= 0) return ts_fail("unet_forward: batch %d, size %dx%d, %d tokens must be positive", B, H, W, T);
    if (H % down || W % down)
        return ts_fail("unet_forward: latent size %dx%d is not a multiple of %d (the U-Net halves it %d times)", H, W, down, c->levels - 1);
    if (c->text_time && (!text_embeds || !time_ids))
        return ts_fail("unet_forward: this U-Net (addition_embed_type text_time, SDXL) needs text_embeds and time_ids");
    u->comm = NULL;
    u->comm_rc = 0;
    unet_split sp = u->split;
    comm *group = ts_ctx_comm(ctx);
    if (sp.mode == UNET_PARALLEL_BATCH && sp.ranks > 1 && group && comm_device_buffers(group))
        return ts_fail("unet_forward: the batch split gathers host memory; the context's comm is %s (device "
                       "buffers): give it the host group", comm_kind(group));
    /* a one-rank group set on the context: its collectives run too (not the default single rank) */
    if (sp.ranks == 1 && ts_ctx_comm_set(ctx) && comm_size(group) == 1 && !u->pieces) u->comm = group;
    if (sp.ranks > 1) {
        comm *g = ts_ctx_comm(ctx);
        int size = g ? comm_size(g) : 1, rank = g ? comm_rank(g) : 0;
        if (size != sp.ranks || rank != sp.rank)
            return ts_fail("unet_forward: this U-Net is rank %d of a %d-rank split, the context's group is rank %d of %d "
                           "(ts_ctx_set_comm)", sp.rank, sp.ranks, rank, size);
        u->comm = g;
    }
    if (u->pieces) return forward_pieces(u, ctx, x, B, H, W, timesteps, context, T, text_embeds, time_ids, out);
    if (sp.mode != UNET_PARALLEL_BATCH || sp.ranks == 1 || B % sp.ranks)
        return forward(u, ctx, x, B, H, W, timesteps, context, T, text_embeds, time_ids, out);

    /* Batch split: rank r computes rows [r Bp, (r+1) Bp), an all-gather joins them. */
    int Bp = B / sp.ranks, r = sp.rank, tdim = unet_text_embeds_dim(u);
    size_t hw = (size_t)H * W, part = (size_t)Bp * c->out_channels * hw;
    if (u->gather_floats < part) {
        free(u->gather);
        u->gather = ts_malloc(part * sizeof(float));
        u->gather_floats = part;
    }
    size_t o = (size_t)r * Bp;
    if (forward(u, ctx, x + o * c->in_channels * hw, Bp, H, W, timesteps + o, context + o * T * c->cross_attention_dim, T,
                text_embeds ? text_embeds + o * tdim : NULL, time_ids ? time_ids + o * 6 : NULL, u->gather))
        return -1;
    double t0 = u->profiling ? ts_now() : 0;
    if (comm_all_gather(u->comm, u->gather, out, part * sizeof(float)) && (u->comm_rc = -1))
        return ts_fail_wrap("unet_forward: gathering the batch's outputs, rank %d of %d", r, sp.ranks);
    if (u->profiling) {
        u->prof.seconds[UNET_OP_COMM] += ts_now() - t0;
        u->prof.comm_bytes += (double)part * sizeof(float);
        u->prof.comm_calls++;
    }
    return 0;
}

/* ---- led groups: rank 0 runs the pipeline, the others serve its U-Net calls ---- */

/* What the leader announces before each call (op 0: stop). */
typedef struct {
    int32_t op, B, H, W, T, added;
} call_header;

/* The call's inputs from the leader (root 0) to the group, in place on the leader. */
static int share_inputs(comm *g, const unet_config *c, int tdim, const call_header *h, float *x, float *t, float *ctx,
                        float *text, float *ids) {
    size_t B = (size_t)h->B;
    if (comm_broadcast(g, x, B * c->in_channels * h->H * h->W * sizeof(float), 0) ||
        comm_broadcast(g, t, B * sizeof(float), 0) ||
        comm_broadcast(g, ctx, B * h->T * c->cross_attention_dim * sizeof(float), 0))
        return -1;
    if (h->added && (comm_broadcast(g, text, B * tdim * sizeof(float), 0) || comm_broadcast(g, ids, B * 6 * sizeof(float), 0)))
        return -1;
    return 0;
}

int unet_lead(unet *self, comm *group) {
    if (!group) {   /* stop leading without telling anyone (the group is gone) */
        self->lead = NULL;
        return 0;
    }
    if (comm_size(group) != self->split.ranks || comm_rank(group) != 0 || self->split.rank != 0)
        return ts_fail("unet_lead: the leader is rank 0 of the U-Net's %d-rank group (this is rank %d of %d)",
                       self->split.ranks, comm_rank(group), comm_size(group));
    self->lead = group;
    return 0;
}

int unet_lead_stop(unet *self) {
    if (!self->lead) return 0;
    call_header h = {0};
    comm *g = self->lead;
    self->lead = NULL;
    return comm_broadcast(g, &h, sizeof h, 0);
}

int unet_follow(unet *self, ts_ctx *ctx, comm *group) {
    unet *u = self;
    comm *g = group, *cg = ts_ctx_comm(ctx);
    if (!g || comm_device_buffers(g) || comm_size(g) != u->split.ranks || comm_rank(g) != u->split.rank ||
        u->split.rank == 0 || !cg || comm_size(cg) != comm_size(g) || comm_rank(cg) != comm_rank(g))
        return ts_fail("unet_follow: needs the U-Net's group (a host comm) and the context's comm over the same ranks, "
                       "on a rank other than 0");
    const unet_config *c = &u->cfg;
    int tdim = unet_text_embeds_dim(u), rc = 0, calls = 0;
    float *buf = NULL;
    size_t cap = 0;
    for (;;) {
        call_header h;
        if (comm_broadcast(g, &h, sizeof h, 0)) { rc = ts_fail_wrap("unet_follow: waiting for the leader"); break; }
        if (h.op == 0) break;
        size_t B = (size_t)h.B, hw = (size_t)h.H * h.W;
        size_t nx = B * c->in_channels * hw, nc = B * h.T * c->cross_attention_dim, no = B * c->out_channels * hw;
        size_t need = nx + B + nc + B * tdim + B * 6 + no;
        if (need > cap) {
            free(buf);
            buf = ts_malloc(need * sizeof(float));
            cap = need;
        }
        float *x = buf, *t = x + nx, *cx = t + B, *text = cx + nc, *ids = text + B * tdim, *out = ids + B * 6;
        if (share_inputs(g, c, tdim, &h, x, t, cx, text, ids)) { rc = ts_fail_wrap("unet_follow: call %d's inputs", calls); break; }
        if (forward_split(u, ctx, x, h.B, h.H, h.W, t, cx, h.T, h.added ? text : NULL, h.added ? ids : NULL, out)) {
            /* a refused call is refused on the leader too, before any collective: serve the next */
            if (u->comm_rc) { rc = -1; break; }
            log_warn("unet_follow: %s", ts_last_error());
        }
        calls++;
    }
    free(buf);
    return rc;
}

int unet_forward(unet *self, ts_ctx *ctx, const float *x, int B, int H, int W, const float *timesteps, const float *context, int T,
                 const float *text_embeds, const float *time_ids, float *out) {
    unet *u = self;
    if (u->lead && x && timesteps && context && out && B > 0 && H > 0 && W > 0 && T > 0) {
        /* announce the call: the followers run it with us (the inputs are only read) */
        call_header h = {1, B, H, W, T, text_embeds && time_ids};
        if (comm_broadcast(u->lead, &h, sizeof h, 0) ||
            share_inputs(u->lead, &u->cfg, unet_text_embeds_dim(u), &h, (float *)x, (float *)timesteps, (float *)context,
                         (float *)text_embeds, (float *)time_ids))
            return ts_fail_wrap("unet_forward: announcing the call to the group");
    }
    return forward_split(u, ctx, x, B, H, W, timesteps, context, T, text_embeds, time_ids, out);
}

/* The table's FLOPs and tensor-parallel traffic per block (unet_parallel.h). */
static unet_plan_row *plan_rows(const unet *u, int B, int H, int W, int T) {
    unet_plan_row *rows = ts_calloc((size_t)u->block_count, sizeof *rows);
    int h = H, w = W;
    for (int i = 0; i < u->block_count; i++) {
        const block *b = &u->blocks[i];
        unet_plan_row *r = &rows[i];
        snprintf(r->name, sizeof r->name, "%s", b->name[LAYOUT_DIFFUSERS]);
        double hw = (double)h * w, Cin = b->in_ch, C = b->out_ch;
        switch (b->kind) {
        case BLK_CONV_IN:
            r->kind = "conv_in";
            r->flops_replicated = 2.0 * B * hw * C * Cin * u->cfg.conv_in_kernel * u->cfg.conv_in_kernel;
            break;
        case BLK_OUT:
            r->kind = "conv_out";
            r->flops_replicated = 2.0 * B * hw * C * Cin * u->cfg.conv_out_kernel * u->cfg.conv_out_kernel;
            break;
        case BLK_DOWNSAMPLE:
            h /= 2, w /= 2;
            r->kind = "downsample";
            r->flops_replicated = 2.0 * B * h * w * C * Cin * 9;
            break;
        case BLK_UPSAMPLE:
            h *= 2, w *= 2;
            r->kind = "upsample";
            r->flops_replicated = 2.0 * B * h * w * C * Cin * 9;
            break;
        case BLK_RESNET:
            r->kind = "resnet";
            r->flops_split = 2.0 * B * hw * 9 * (C * Cin + C * C);
            if (Cin != C) r->flops_replicated = 2.0 * B * hw * C * Cin;   /* the shortcut, on rank 0 */
            r->all_reduces = 1;
            r->reduce_floats = B * C * hw;
            break;
        case BLK_TRANSFORMER: {
            double rows_ = B * hw, D = u->cfg.cross_attention_dim;
            r->kind = "transformer";
            r->flops_replicated = 2 * 2.0 * rows_ * C * C;                  /* proj_in, proj_out */
            r->flops_split = b->depth * (2.0 * rows_ * C * C * 4 + 2.0 * rows_ * C * C * 2 + 2.0 * B * T * D * C * 2 /* q k v out, q out, k v */
                                         + 2.0 * rows_ * C * 8 * C + 2.0 * rows_ * 4 * C * C                       /* GEGLU FF */
                                         + 4.0 * B * hw * hw * C + 4.0 * B * hw * T * C);                        /* attention */
            r->all_reduces = 3 * b->depth;
            r->reduce_floats = rows_ * C;
            break;
        }
        }
    }
    return rows;
}

double unet_forward_flops(const unet *self, int B, int H, int W, int T) {
    unet_plan_row *rows = plan_rows(self, B, H, W, T);
    unet_plan_total t = unet_plan_sum(rows, self->block_count);
    free(rows);
    return t.flops_split + t.flops_replicated;
}

unet_plan_row *unet_plan(const unet_config *c, int B, int H, int W, int tokens, int *count) {
    unet *u = unet_create(c, UNET_SPLIT_NONE);
    if (!u) return NULL;
    unet_plan_row *rows = plan_rows(u, B, H, W, tokens);
    *count = u->block_count;
    unet_destroy(&u);
    return rows;
}
