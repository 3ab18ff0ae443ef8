/*
 * taesd.c — TAESD encoder and decoder as tables of layers (the reference's nn.Sequential),
 * run one image at a time in a few activation buffers.
 */
#include "models/diffusion/taesd.h"

#include "kernels/ops.h"
#include "models/formats/weight_binder.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TAESD_POOL_GROUPS 4
#define TAESD_MAX_LAYERS 24

typedef enum { LAYER_CONV, LAYER_CONV_S2, LAYER_RELU, LAYER_BLOCK, LAYER_UPSAMPLE, LAYER_CLAMP } layer_kind;

/* The two stacks, index = position in the reference nn.Sequential. Channel counts other
 * than 64 come from the weights (image channels 3, latent channels L). */
static const layer_kind encoder_layers[] = {
    LAYER_CONV, LAYER_BLOCK,
    LAYER_CONV_S2, LAYER_BLOCK, LAYER_BLOCK, LAYER_BLOCK,
    LAYER_CONV_S2, LAYER_BLOCK, LAYER_BLOCK, LAYER_BLOCK,
    LAYER_CONV_S2, LAYER_BLOCK, LAYER_BLOCK, LAYER_BLOCK,
    LAYER_CONV,
};
static const layer_kind decoder_layers[] = {
    LAYER_CLAMP, LAYER_CONV, LAYER_RELU,
    LAYER_BLOCK, LAYER_BLOCK, LAYER_BLOCK, LAYER_UPSAMPLE, LAYER_CONV,
    LAYER_BLOCK, LAYER_BLOCK, LAYER_BLOCK, LAYER_UPSAMPLE, LAYER_CONV,
    LAYER_BLOCK, LAYER_BLOCK, LAYER_BLOCK, LAYER_UPSAMPLE, LAYER_CONV,
    LAYER_BLOCK, LAYER_CONV,
};

typedef struct { tensor w, b; bool has_bias; int cin, cout; } taesd_conv;

typedef struct {
    layer_kind kind;
    taesd_conv conv;                 /* LAYER_CONV / LAYER_CONV_S2 */
    taesd_conv c0, c2, c4, skip;     /* LAYER_BLOCK */
    bool has_skip, has_pool;
    int width, pool_width;           /* Block channels (64 in the published weights); pool's inner width */
    tensor pool_in, pool_norm_w, pool_norm_b, pool_out;
} taesd_layer;

typedef struct {
    int count;
    taesd_layer layer[TAESD_MAX_LAYERS];
    weight_binder *file;
} taesd_stack;

struct taesd {
    taesd_stack encoder, decoder;
    bool has_encoder, has_decoder;
    int latent_channels;
};

/* ---- loading ------------------------------------------------------------------ */


static int get_conv(weight_binder *f, const char *prefix, const char *name, taesd_conv *c, bool bias_allowed) {
    char key[256];
    snprintf(key, sizeof key, "%s%s.weight", prefix, name);
    if (weight_binder_get_stored(f, &c->w, key) < 0) return -1;
    if (c->w.ndim != 4 || c->w.shape[2] != c->w.shape[3] || (c->w.shape[2] != 3 && c->w.shape[2] != 1))
        return ts_fail("%s: tensor '%s' is not a 3x3 or 1x1 conv weight", weight_binder_path(f), key);
    c->cout = (int)c->w.shape[0], c->cin = (int)c->w.shape[1];
    snprintf(key, sizeof key, "%s%s.bias", prefix, name);
    c->has_bias = bias_allowed && weight_binder_has(f, key);
    if (c->has_bias && weight_binder_get(f, &c->b, SHARD_NONE_SPEC, 1, (const int64_t[]){c->cout}, key) < 0) return -1;
    return 0;
}

static int get_shaped(weight_binder *f, const char *prefix, int index, const char *name, tensor *t,
                      int ndim, const int64_t *shape) {
    char key[256];
    snprintf(key, sizeof key, "%s%d.%s", prefix, index, name);
    return weight_binder_get(f, t, SHARD_NONE_SPEC, ndim, shape, key);
}

static int load_block(weight_binder *f, const char *prefix, int i, taesd_layer *L) {
    char name[64];
    taesd_conv *convs[3] = {&L->c0, &L->c2, &L->c4};
    for (int k = 0; k < 3; k++) {
        snprintf(name, sizeof name, "%d.conv.%d", i, 2 * k);
        if (get_conv(f, prefix, name, convs[k], true) < 0) return -1;
    }
    int c = L->width = L->c0.cin;
    if (L->c0.cout != c || L->c2.cin != c || L->c2.cout != c || L->c4.cin != c || L->c4.cout != c)
        return ts_fail("%s: Block %d is not %d -> %d channels throughout", weight_binder_path(f), i, c, c);
    char key[256];
    snprintf(key, sizeof key, "%s%d.skip.weight", prefix, i);
    L->has_skip = weight_binder_has(f, key);
    if (L->has_skip) {
        snprintf(name, sizeof name, "%d.skip", i);
        if (get_conv(f, prefix, name, &L->skip, false) < 0) return -1;
    }
    snprintf(key, sizeof key, "%s%d.pool.0.weight", prefix, i);
    L->has_pool = weight_binder_has(f, key);
    if (L->has_pool) {
        snprintf(key, sizeof key, "%s%d.pool.1.weight", prefix, i);
        tensor norm;
        if (weight_binder_get_stored(f, &norm, key) < 0) return -1;
        const int64_t P = L->pool_width = (int)norm.shape[0], C = c;
        if (P % TAESD_POOL_GROUPS) return ts_fail("%s: pool width %lld is not a multiple of %d", key, (long long)P, TAESD_POOL_GROUPS);
        if (get_shaped(f, prefix, i, "pool.0.weight", &L->pool_in, 4, (const int64_t[]){P, C, 1, 1}) < 0 ||
            get_shaped(f, prefix, i, "pool.1.weight", &L->pool_norm_w, 1, (const int64_t[]){P}) < 0 ||
            get_shaped(f, prefix, i, "pool.1.bias", &L->pool_norm_b, 1, (const int64_t[]){P}) < 0 ||
            get_shaped(f, prefix, i, "pool.3.weight", &L->pool_out, 4, (const int64_t[]){C, P, 1, 1}) < 0)
            return -1;
    }
    return 0;
}

/* Where the layers are: madebyollin's files (no prefix, or under "encoder."/"decoder.")
 * number them as taesd.py's nn.Sequential; diffusers' AutoencoderTiny ("decoder.layers.")
 * leaves the decoder's Clamp out of the Sequential, so its decoder indices are one less. */
static const char *find_prefix(weight_binder *f, bool decoder, int *offset) {
    static const struct { const char *prefix; int offset; } enc[] = {{"encoder.layers.", 0}, {"encoder.", 0}, {"", 0}},
                                                           dec[] = {{"decoder.layers.", -1}, {"decoder.", 0}, {"", 0}};
    for (int i = 0; i < 3; i++) {
        char key[128];
        const char *prefix = decoder ? dec[i].prefix : enc[i].prefix;
        *offset = decoder ? dec[i].offset : enc[i].offset;
        snprintf(key, sizeof key, "%s%d.weight", prefix, (decoder ? 1 : 0) + *offset);   /* the first conv */
        if (weight_binder_has(f, key)) return prefix;
    }
    return NULL;
}

static int load_stack(taesd_stack *s, const char *path, bool decoder, int *latent_channels) {
    s->file = weight_binder_open(path);
    if (!s->file) return -1;
    const layer_kind *kinds = decoder ? decoder_layers : encoder_layers;
    s->count = decoder ? (int)(sizeof decoder_layers / sizeof *kinds) : (int)(sizeof encoder_layers / sizeof *kinds);
    int offset;
    const char *prefix = find_prefix(s->file, decoder, &offset);
    if (!prefix)
        return ts_fail("%s: no TAESD %s weights (no '%s' under 'encoder.layers.', 'encoder.' or no prefix)", path,
                       decoder ? "decoder" : "encoder", decoder ? "1.weight" : "0.weight");
    int prev = decoder ? -1 : 3;
    for (int i = 0; i < s->count; i++) {
        taesd_layer *L = &s->layer[i];
        L->kind = kinds[i];
        char name[32];
        snprintf(name, sizeof name, "%d", i + offset);
        if (L->kind == LAYER_CONV || L->kind == LAYER_CONV_S2) {
            if (get_conv(s->file, prefix, name, &L->conv, true) < 0) return -1;
            if (prev > 0 && L->conv.cin != prev)
                return ts_fail("%s: layer %d takes %d channels, the previous layer gives %d", path, i, L->conv.cin, prev);
            prev = L->conv.cout;
        } else if (L->kind == LAYER_BLOCK) {
            if (load_block(s->file, prefix, i + offset, L) < 0) return -1;
            if (prev != L->width) return ts_fail("%s: Block %d follows a %d-channel layer", path, i + offset, prev);
        }
    }
    int latent = decoder ? s->layer[1].conv.cin : s->layer[s->count - 1].conv.cout;
    if (decoder && s->layer[s->count - 1].conv.cout != 3)
        return ts_fail("%s: TAESD decoder ends in %d channels, not 3", path, s->layer[s->count - 1].conv.cout);
    if (*latent_channels && *latent_channels != latent)
        return ts_fail("%s: %d latent channels, but the other half has %d", path, latent, *latent_channels);
    *latent_channels = latent;
    return 0;
}

taesd *taesd_load(const char *encoder_path, const char *decoder_path) {
    taesd *t = ts_calloc(1, sizeof *t);
    if (!encoder_path && !decoder_path) {
        ts_fail("taesd: no weight files given");
        goto fail;
    }
    if (encoder_path) {
        if (load_stack(&t->encoder, encoder_path, false, &t->latent_channels) < 0) goto fail;
        t->has_encoder = true;
    }
    if (decoder_path) {
        if (load_stack(&t->decoder, decoder_path, true, &t->latent_channels) < 0) goto fail;
        t->has_decoder = true;
    }
    return t;
fail:
    ts_fail_wrap("loading TAESD");
    taesd_destroy(&t);
    return NULL;
}

void taesd_destroy(taesd **self) {
    if (!*self) return;
    weight_binder_destroy(&(*self)->encoder.file);
    weight_binder_destroy(&(*self)->decoder.file);
    free(*self);
    *self = NULL;
}

int taesd_latent_channels(const taesd *self) { return self->latent_channels; }
bool taesd_has_encoder(const taesd *self) { return self->has_encoder; }
bool taesd_has_decoder(const taesd *self) { return self->has_decoder; }

/* ---- forward ------------------------------------------------------------------ */

static int run_conv(ts_ctx *ctx, const taesd_conv *c, float *out, const float *x, int *H, int *W, int stride) {
    int pad = (int)c->w.shape[2] / 2;
    conv2d_params p = {stride, stride, pad, pad, 1};
    int OH, OW;
    conv2d_out_size(*H, *W, &c->w, p, &OH, &OW);
    if (conv2d(ctx, out, x, 1, c->cin, *H, *W, &c->w, c->has_bias ? &c->b : NULL, p) < 0) return -1;
    *H = OH, *W = OW;
    return 0;
}

/* x [64, H, W] in place; t1, t2 scratch. */
static int run_block(ts_ctx *ctx, const taesd_layer *L, float *x, float *t1, float *t2, int H, int W) {
    int64_t hw = (int64_t)H * W, n = L->width * hw;
    int h = H, w = W;
    if (L->has_pool) {   /* x += conv(relu(groupnorm(conv(x)))) */
        conv2d_params one = {1, 1, 0, 0, 1};
        if (conv2d(ctx, t1, x, 1, L->width, H, W, &L->pool_in, NULL, one) < 0) return -1;
        if (group_norm(ctx, t1, t1, 1, L->pool_width, hw, TAESD_POOL_GROUPS, &L->pool_norm_w, &L->pool_norm_b, 1e-5f) < 0)
            return -1;
        relu(ctx, t1, t1, L->pool_width * hw);
        if (conv2d(ctx, t2, t1, 1, L->pool_width, H, W, &L->pool_out, NULL, one) < 0) return -1;
        add_inplace(ctx, x, t2, n);
    }
    if (run_conv(ctx, &L->c0, t1, x, &h, &w, 1) < 0) return -1;
    relu(ctx, t1, t1, n);
    if (run_conv(ctx, &L->c2, t2, t1, &h, &w, 1) < 0) return -1;
    relu(ctx, t2, t2, n);
    if (run_conv(ctx, &L->c4, t1, t2, &h, &w, 1) < 0) return -1;
    if (L->has_skip) {
        if (run_conv(ctx, &L->skip, t2, x, &h, &w, 1) < 0) return -1;
        copy_floats(ctx, x, t1, n);   /* x = t1 + t2 */
        add_inplace(ctx, x, t2, n);
    } else {
        add_inplace(ctx, x, t1, n);
    }
    relu(ctx, x, x, n);
    return 0;
}

/* Runs the stack on one input [C, H, W]; the result (channels *C, size *H x *W) is
 * copied into out. Buffers hold the largest activation, found by walking the shapes. */
static int run_stack(ts_ctx *ctx, const taesd_stack *s, const float *in, int C, int H, int W, float *out) {
    size_t cap = (size_t)C * H * W;
    int c = C, h = H, w = W;
    for (int i = 0; i < s->count; i++) {
        const taesd_layer *L = &s->layer[i];
        if (L->kind == LAYER_CONV) c = L->conv.cout;
        if (L->kind == LAYER_CONV_S2) c = L->conv.cout, h = (h - 1) / 2 + 1, w = (w - 1) / 2 + 1;
        if (L->kind == LAYER_UPSAMPLE) h *= 2, w *= 2;
        size_t need = (size_t)(L->kind == LAYER_BLOCK && L->has_pool && L->pool_width > c ? L->pool_width : c) * h * w;
        if (need > cap) cap = need;
    }
    float *buf = ts_ctx_alloc(ctx, 3 * cap * sizeof(float));
    if (!buf) return -1;
    float *x = buf, *t1 = x + cap, *t2 = t1 + cap;   /* x and t1 swap roles as layers go */
    copy_floats(ctx, x, in, (int64_t)C * H * W);
    int rc = -1;
    c = C, h = H, w = W;
    for (int i = 0; i < s->count; i++) {
        const taesd_layer *L = &s->layer[i];
        int64_t n = (int64_t)c * h * w;
        switch (L->kind) {
        case LAYER_CLAMP:
            scaled_tanh(ctx, x, x, n, 3.0f);
            break;
        case LAYER_RELU: relu(ctx, x, x, n); break;
        case LAYER_CONV: case LAYER_CONV_S2:
            if (run_conv(ctx, &L->conv, t1, x, &h, &w, L->kind == LAYER_CONV_S2 ? 2 : 1) < 0) goto done;
            c = L->conv.cout;
            { float *tmp = x; x = t1; t1 = tmp; }
            break;
        case LAYER_UPSAMPLE:
            upsample_nearest2x(ctx, t1, x, 1, c, h, w);
            h *= 2, w *= 2;
            { float *tmp = x; x = t1; t1 = tmp; }
            break;
        case LAYER_BLOCK:
            if (run_block(ctx, L, x, t1, t2, h, w) < 0) goto done;
            break;
        }
    }
    copy_floats(ctx, out, x, (int64_t)c * h * w);
    rc = 0;
done:
    ts_ctx_free(ctx, buf);
    return rc;
}

int taesd_encode(taesd *self, ts_ctx *ctx, const float *image, int N, int H, int W, float *latent) {
    if (!self->has_encoder) return ts_fail("TAESD encode: no encoder weights loaded");
    if (N < 1 || H < 8 || W < 8 || H % 8 || W % 8)
        return ts_fail("TAESD encode: image size %dx%d is not a positive multiple of 8", W, H);
    size_t xs = (size_t)3 * H * W, zs = (size_t)self->latent_channels * (H / 8) * (W / 8);
    for (int n = 0; n < N; n++) {
        const float *x = ts_stage_in(ctx, image + n * xs, xs * sizeof(float));
        float *z = x ? ts_stage_out(ctx, latent + n * zs, zs * sizeof(float)) : NULL;
        int rc = z ? run_stack(ctx, &self->encoder, x, 3, H, W, z) : -1;
        ts_stage_release(ctx, image + n * xs, x);
        if (rc == 0) rc = ts_stage_finish(ctx, latent + n * zs, z, zs * sizeof(float)) | ts_ctx_synchronize(ctx);
        else if (z) ts_stage_release(ctx, latent + n * zs, z);
        if (rc) return ts_fail_wrap("TAESD encode on %s", ts_ctx_backend_name(ctx));
    }
    return 0;
}

int taesd_decode(taesd *self, ts_ctx *ctx, const float *latent, int N, int h, int w, float *image) {
    if (!self->has_decoder) return ts_fail("TAESD decode: no decoder weights loaded");
    if (N < 1 || h < 1 || w < 1) return ts_fail("TAESD decode: bad latent size %dx%d", w, h);
    size_t zs = (size_t)self->latent_channels * h * w, xs = (size_t)3 * 64 * h * w;
    for (int n = 0; n < N; n++) {
        const float *z = ts_stage_in(ctx, latent + n * zs, zs * sizeof(float));
        float *out = z ? ts_stage_out(ctx, image + n * xs, xs * sizeof(float)) : NULL;
        int rc = out ? run_stack(ctx, &self->decoder, z, self->latent_channels, h, w, out) : -1;
        if (rc == 0) clamp(ctx, out, out, (int64_t)xs, 0.0f, 1.0f);
        ts_stage_release(ctx, latent + n * zs, z);
        if (rc == 0) rc = ts_stage_finish(ctx, image + n * xs, out, xs * sizeof(float)) | ts_ctx_synchronize(ctx);
        else if (out) ts_stage_release(ctx, image + n * xs, out);
        if (rc) return ts_fail_wrap("TAESD decode on %s", ts_ctx_backend_name(ctx));
    }
    return 0;
}
