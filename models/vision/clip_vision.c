/* clip_vision.c — the CLIP ViT image encoder (see clip_vision.h). */
#include "models/vision/clip_vision.h"
#include "models/formats/weight_binder.h"
#include "kernels/ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *hf, *gguf;        /* layer names with %d */
    size_t offset;
    bool optional;
} layer_slot;

#define SLOT(h, g, f) {h, g, offsetof(clip_vision_layer, f), false}
static const layer_slot layer_slots[] = {
    SLOT("encoder.layers.%d.layer_norm1.weight", "v.blk.%d.ln1.weight", ln1_w),
    SLOT("encoder.layers.%d.layer_norm1.bias", "v.blk.%d.ln1.bias", ln1_b),
    SLOT("encoder.layers.%d.self_attn.q_proj.weight", "v.blk.%d.attn_q.weight", q_w),
    SLOT("encoder.layers.%d.self_attn.q_proj.bias", "v.blk.%d.attn_q.bias", q_b),
    SLOT("encoder.layers.%d.self_attn.k_proj.weight", "v.blk.%d.attn_k.weight", k_w),
    SLOT("encoder.layers.%d.self_attn.k_proj.bias", "v.blk.%d.attn_k.bias", k_b),
    SLOT("encoder.layers.%d.self_attn.v_proj.weight", "v.blk.%d.attn_v.weight", v_w),
    SLOT("encoder.layers.%d.self_attn.v_proj.bias", "v.blk.%d.attn_v.bias", v_b),
    SLOT("encoder.layers.%d.self_attn.out_proj.weight", "v.blk.%d.attn_out.weight", o_w),
    SLOT("encoder.layers.%d.self_attn.out_proj.bias", "v.blk.%d.attn_out.bias", o_b),
    SLOT("encoder.layers.%d.layer_norm2.weight", "v.blk.%d.ln2.weight", ln2_w),
    SLOT("encoder.layers.%d.layer_norm2.bias", "v.blk.%d.ln2.bias", ln2_b),
    SLOT("encoder.layers.%d.mlp.fc1.weight", "v.blk.%d.ffn_up.weight", fc1_w),
    SLOT("encoder.layers.%d.mlp.fc1.bias", "v.blk.%d.ffn_up.bias", fc1_b),
    SLOT("encoder.layers.%d.mlp.fc2.weight", "v.blk.%d.ffn_down.weight", fc2_w),
    SLOT("encoder.layers.%d.mlp.fc2.bias", "v.blk.%d.ffn_down.bias", fc2_b),
};
#undef SLOT

typedef struct {
    weight_binder *weights;
    const char *label, *prefix;
    clip_names names;
} finder;

/* 1 found, 0 absent (a message when required), -1 unusable. */
static int find(const finder *f, const char *hf, const char *gguf, int layer, bool required, tensor *out) {
    char fmt[256], name[256];
    memset(out, 0, sizeof *out);
    if (f->names == CLIP_NAMES_HF) snprintf(fmt, sizeof fmt, "%s%s", f->prefix ? f->prefix : "", hf);
    else snprintf(fmt, sizeof fmt, "%s", gguf);
    if (!(f->names == CLIP_NAMES_HF ? hf : gguf)[0]) return 0;   /* no such tensor in this layout */
    snprintf(name, sizeof name, fmt, layer);
    if (!weight_binder_has(f->weights, name)) return required ? ts_fail("%s: no tensor '%s'", f->label, name) : 0;
    return weight_binder_get_stored(f->weights, out, name) ? -1 : 1;
}

static int expect_shape(const finder *f, const tensor *t, const char *what, int layer, int ndim, int64_t d0, int64_t d1) {
    if (t->ndim == ndim && t->shape[0] == d0 && (ndim < 2 || t->shape[1] == d1)) return 0;
    char buf[64];
    return ts_fail("%s: %s (layer %d) has shape %s, expected [%lld%s%lld]", f->label, what, layer,
                   tensor_shape_str(t, buf, sizeof buf), (long long)d0, ndim > 1 ? ", " : "", ndim > 1 ? (long long)d1 : 0LL);
}

int clip_vision_load(clip_vision_config *cfg, clip_vision_weights *w, clip_names names, const char *prefix,
                     weight_binder *weights, const char *label) {
    memset(w, 0, sizeof *w);
    finder f = {weights, label, prefix, names};
    if (find(&f, "embeddings.patch_embedding.weight", "v.patch_embd.weight", 0, true, &w->patch_w) <= 0 ||
        find(&f, "embeddings.class_embedding", "v.class_embd", 0, true, &w->class_embd) <= 0 ||
        find(&f, "embeddings.position_embedding.weight", "v.position_embd.weight", 0, true, &w->pos_embd) <= 0 ||
        find(&f, "", "v.patch_embd.bias", 0, false, &w->patch_b) < 0 ||
        find(&f, "pre_layrnorm.weight", "v.pre_ln.weight", 0, false, &w->pre_ln_w) < 0 ||
        find(&f, "pre_layrnorm.bias", "v.pre_ln.bias", 0, false, &w->pre_ln_b) < 0)
        return -1;
    const tensor *pw = &w->patch_w;
    if (pw->ndim != 4 || pw->shape[1] != 3 || pw->shape[2] != pw->shape[3])
        return ts_fail("%s: patch embedding has shape %s, expected [hidden, 3, p, p]", label, tensor_shape_str(pw, (char[64]){0}, 64));
    cfg->hidden = (int)pw->shape[0];
    cfg->patch_size = (int)pw->shape[2];
    if (w->class_embd.ndim != 1 || w->class_embd.shape[0] != cfg->hidden)
        return ts_fail("%s: class embedding has %lld values, expected %d", label, (long long)w->class_embd.shape[0], cfg->hidden);
    if (w->pos_embd.ndim != 2 || w->pos_embd.shape[1] != cfg->hidden)
        return ts_fail("%s: position embedding is not [positions, %d]", label, cfg->hidden);
    int64_t patches = w->pos_embd.shape[0] - 1;
    int side = 0;
    while ((int64_t)(side + 1) * (side + 1) <= patches) side++;
    if (patches < 1 || (int64_t)side * side != patches)
        return ts_fail("%s: %lld position embeddings is not 1 + a square number of patches", label, (long long)patches + 1);
    cfg->image_size = side * cfg->patch_size;
    /* count the layers present */
    int n = 0;
    for (;; n++) {
        tensor t;
        int rc = find(&f, layer_slots[0].hf, layer_slots[0].gguf, n, false, &t);
        if (rc < 0) return -1;
        if (rc == 0) break;
    }
    if (n == 0) return ts_fail("%s: no transformer layers", label);
    cfg->n_layers = n;
    if (cfg->n_heads <= 0 || cfg->hidden % cfg->n_heads)
        return ts_fail("%s: %d attention heads do not divide the hidden size %d", label, cfg->n_heads, cfg->hidden);
    w->layers = ts_calloc((size_t)n, sizeof *w->layers);
    for (int l = 0; l < n; l++)
        for (size_t s = 0; s < sizeof layer_slots / sizeof layer_slots[0]; s++)
            if (find(&f, layer_slots[s].hf, layer_slots[s].gguf, l, true, (tensor *)((char *)&w->layers[l] + layer_slots[s].offset)) <= 0)
                goto fail;
    /* llama.cpp's legacy converter wrote fc1 as ffn_down and fc2 as ffn_up (clip.cpp swaps
     * them back the same way): fc1 is the one that reads the hidden width */
    for (int l = 0; names == CLIP_NAMES_GGUF && l < n; l++) {
        clip_vision_layer *L = &w->layers[l];
        if (L->fc1_w.ndim == 2 && L->fc2_w.ndim == 2 && L->fc1_w.shape[1] != cfg->hidden && L->fc2_w.shape[1] == cfg->hidden) {
            tensor t = L->fc1_w; L->fc1_w = L->fc2_w; L->fc2_w = t;
            t = L->fc1_b; L->fc1_b = L->fc2_b; L->fc2_b = t;
        }
    }
    cfg->intermediate = (int)w->layers[0].fc1_w.shape[0];
    int D = cfg->hidden, I = cfg->intermediate;
    for (int l = 0; l < n; l++) {
        const clip_vision_layer *L = &w->layers[l];
        if (expect_shape(&f, &L->q_w, "q_proj", l, 2, D, D) || expect_shape(&f, &L->k_w, "k_proj", l, 2, D, D) ||
            expect_shape(&f, &L->v_w, "v_proj", l, 2, D, D) || expect_shape(&f, &L->o_w, "out_proj", l, 2, D, D) ||
            expect_shape(&f, &L->fc1_w, "fc1", l, 2, I, D) || expect_shape(&f, &L->fc2_w, "fc2", l, 2, D, I) ||
            expect_shape(&f, &L->q_b, "q bias", l, 1, D, 0) || expect_shape(&f, &L->k_b, "k bias", l, 1, D, 0) ||
            expect_shape(&f, &L->v_b, "v bias", l, 1, D, 0) || expect_shape(&f, &L->o_b, "out bias", l, 1, D, 0) ||
            expect_shape(&f, &L->fc1_b, "fc1 bias", l, 1, I, 0) || expect_shape(&f, &L->fc2_b, "fc2 bias", l, 1, D, 0) ||
            expect_shape(&f, &L->ln1_w, "layer_norm1", l, 1, D, 0) || expect_shape(&f, &L->ln2_w, "layer_norm2", l, 1, D, 0))
            goto fail;
    }
    return 0;
fail:
    clip_vision_weights_free(w);
    return -1;
}

void clip_vision_weights_free(clip_vision_weights *w) {
    free(w->layers);
    w->layers = NULL;
}

int clip_vision_tokens(const clip_vision_config *cfg) {
    int side = cfg->image_size / cfg->patch_size;
    return side * side;
}

int clip_vision_forward(ts_ctx *ctx, const clip_vision_config *cfg, const clip_vision_weights *w, const float *pixels,
                        int n_images, int run_layers, float *hidden) {
    const int D = cfg->hidden, I = cfg->intermediate, S = cfg->image_size, P = cfg->patch_size;
    const int side = S / P, patches = side * side, T = patches + 1;
    if (run_layers < 0 || run_layers > cfg->n_layers)
        return ts_fail("vision tower: %d layers asked for, the model has %d", run_layers, cfg->n_layers);
    const size_t rows = (size_t)n_images * T, rd = rows * D;
    float *buf = ts_ctx_alloc(ctx, ((size_t)n_images * D * patches + 5 * rd + rows * (size_t)I) * sizeof(float));
    if (!buf) return -1;
    float *patch_out = buf, *xb = patch_out + (size_t)n_images * D * patches, *q = xb + rd, *k = q + rd, *v = k + rd;
    float *att = v + rd, *h = att + rd;
    int rc = -1;
    /* embeddings: [class, patches] + positions */
    conv2d_params cp = {.stride_h = P, .stride_w = P};
    if (conv2d(ctx, patch_out, pixels, n_images, 3, S, S, &w->patch_w, w->patch_b.data ? &w->patch_b : NULL, cp)) goto done;
    float *x = hidden;
    tensor class_row = w->class_embd;   /* [D] as a table of one row */
    if (tensor_reshape(&class_row, &w->class_embd, 2, (const int64_t[]){1, D})) goto done;
    for (int b = 0; b < n_images; b++) {
        float *xi = x + (size_t)b * T * D;
        if (gather_rows(ctx, xi, &class_row, NULL, 1)) goto done;
        nchw_to_nhwc(ctx, xi + D, patch_out + (size_t)b * D * patches, 1, D, patches);
        if (gather_rows(ctx, xb, &w->pos_embd, NULL, T)) goto done;
        add_inplace(ctx, xi, xb, (int64_t)T * D);
    }
    if (w->pre_ln_w.data && layer_norm(ctx, x, x, (int64_t)rows, D, &w->pre_ln_w, w->pre_ln_b.data ? &w->pre_ln_b : NULL, cfg->eps))
        goto done;
    attention_params ap = {.batch = n_images, .heads = cfg->n_heads, .head_dim = D / cfg->n_heads, .n_q = T, .n_kv = T};
    for (int l = 0; l < run_layers; l++) {
        const clip_vision_layer *L = &w->layers[l];
        if (layer_norm(ctx, xb, x, (int64_t)rows, D, &L->ln1_w, &L->ln1_b, cfg->eps) ||
            linear(ctx, q, xb, (int64_t)rows, &L->q_w, &L->q_b) || linear(ctx, k, xb, (int64_t)rows, &L->k_w, &L->k_b) ||
            linear(ctx, v, xb, (int64_t)rows, &L->v_w, &L->v_b))
            goto done;
        attention(ctx, att, q, k, v, ap);
        if (linear(ctx, xb, att, (int64_t)rows, &L->o_w, &L->o_b)) goto done;
        add_inplace(ctx, x, xb, (int64_t)rows * D);
        if (layer_norm(ctx, xb, x, (int64_t)rows, D, &L->ln2_w, &L->ln2_b, cfg->eps) ||
            linear(ctx, h, xb, (int64_t)rows, &L->fc1_w, &L->fc1_b))
            goto done;
        if (cfg->act == CLIP_ACT_QUICK_GELU) quick_gelu(ctx, h, h, (int64_t)rows * I);
        else gelu_erf(ctx, h, h, (int64_t)rows * I);
        if (linear(ctx, xb, h, (int64_t)rows, &L->fc2_w, &L->fc2_b)) goto done;
        add_inplace(ctx, x, xb, (int64_t)rows * D);
    }
    rc = 0;
done:
    ts_ctx_free(ctx, buf);
    return rc;
}
