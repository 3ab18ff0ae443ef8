/*
 * vae.c — AutoencoderKL (SD's KL-f8 VAE): weights in either layout, decoder, encoder,
 * and diffusers-compatible tiled decoding.
 *
 * One forward pass works on one image at a time in three activation buffers sized for the
 * largest level, so a 512x512 decode needs ~3 x 128 MB; tiled decoding bounds that by the
 * tile size whatever the image size.
 */
#include "models/diffusion/vae.h"

#include "kernels/ops.h"
#include "models/formats/model_files.h"
#include "models/formats/weight_binder.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VAE_EPS 1e-6f

typedef struct {
    int cin, cout;
    tensor norm1_w, norm1_b, conv1_w, conv1_b, norm2_w, norm2_b, conv2_w, conv2_b;
    bool has_shortcut;
    tensor short_w, short_b;
} vae_resnet;

typedef struct {
    int channels;
    tensor norm_w, norm_b, q_w, q_b, k_w, k_b, v_w, v_b, out_w, out_b;
} vae_attention;

typedef struct {
    int cin, cout;                 /* cin of the first ResNet, cout of all */
    int count;
    vae_resnet *resnets;
    bool has_sampler;              /* downsample (encoder) or upsample (decoder) conv */
    tensor sampler_w, sampler_b;
    tensor phase_w[4];             /* decoder: the upsample conv as four 2x2 convs, see upsample_conv */
} vae_level;

typedef struct {
    tensor conv_in_w, conv_in_b;
    vae_resnet mid_resnets[2];
    vae_attention mid_attention;
    vae_level level[VAE_MAX_LEVELS];
    tensor norm_out_w, norm_out_b, conv_out_w, conv_out_b;
} vae_coder;

struct vae {
    vae_config config;
    vae_coder decoder, encoder;
    tensor quant_w, quant_b, post_quant_w, post_quant_b;
    weight_binder *weights;        /* the tensors above point into it */
    tensor *owned;                 /* derived weights (phase_w) */
    int owned_count, owned_cap;
};

/* ---- weight names in the two layouts ----------------------------------------- */

typedef enum { LAYOUT_DIFFUSERS, LAYOUT_COMPVIS } vae_layout;

/* Where the weights come from (a file, names checked against the shapes the config implies,
 * or random weights for benchmarks), and how they are named. */
typedef struct {
    vae *owner;
    weight_binder *w;
    const char *prefix;            /* "first_stage_model." or "" */
    vae_layout layout;
} weight_source;

static int resnet_name(char *out, size_t size, const weight_source *src, const char *side,
                       int level, int index, int levels) {
    if (src->layout == LAYOUT_DIFFUSERS)
        return snprintf(out, size, "%s%s.%s.%d.resnets.%d", src->prefix, side,
                        side[0] == 'e' ? "down_blocks" : "up_blocks", level, index);
    /* CompVis numbers decoder levels by resolution: diffusers' up_blocks.0 is up.{n-1} */
    int l = side[0] == 'e' ? level : levels - 1 - level;
    return snprintf(out, size, "%s%s.%s.%d.block.%d", src->prefix, side,
                    side[0] == 'e' ? "down" : "up", l, index);
}

/* A float32 tensor owned by the VAE (random weights, derived weights). */
static tensor *own_new_f32(vae *v, int ndim, const int64_t *shape) {
    if (v->owned_count == v->owned_cap) {
        v->owned_cap = v->owned_cap ? 2 * v->owned_cap : 256;
        v->owned = ts_realloc(v->owned, (size_t)v->owned_cap * sizeof(tensor));
    }
    v->owned[v->owned_count] = tensor_new(DT_F32, ndim, shape);
    return &v->owned[v->owned_count++];
}

/* Fetch NAME with the given shape (a [C, C, 1, 1] weight is accepted where [C, C] is asked:
 * CompVis attention uses 1x1 convolutions). */
static int fetch(weight_source *src, const char *name, tensor *out, int ndim, const int64_t *shape) {
    return weight_binder_get(src->w, out, SHARD_NONE_SPEC, ndim, shape, name);
}

#define SHAPE(...) ((const int64_t[]){__VA_ARGS__})

static int fetch_conv(weight_source *src, const char *base, tensor *w, tensor *b, int cout, int cin, int k, bool bias) {
    char name[256];
    snprintf(name, sizeof name, "%s.weight", base);
    if (fetch(src, name, w, 4, SHAPE(cout, cin, k, k)) < 0) return -1;
    if (!bias) return 0;
    snprintf(name, sizeof name, "%s.bias", base);
    return fetch(src, name, b, 1, SHAPE(cout));
}

static int fetch_norm(weight_source *src, const char *base, tensor *w, tensor *b, int c) {
    char name[256];
    snprintf(name, sizeof name, "%s.weight", base);
    if (fetch(src, name, w, 1, SHAPE(c)) < 0) return -1;
    snprintf(name, sizeof name, "%s.bias", base);
    return fetch(src, name, b, 1, SHAPE(c));
}

static int load_resnet(weight_source *src, const char *base, vae_resnet *r, int cin, int cout) {
    char n[256];
    r->cin = cin, r->cout = cout, r->has_shortcut = cin != cout;
    snprintf(n, sizeof n, "%s.norm1", base);
    if (fetch_norm(src, n, &r->norm1_w, &r->norm1_b, cin) < 0) return -1;
    snprintf(n, sizeof n, "%s.conv1", base);
    if (fetch_conv(src, n, &r->conv1_w, &r->conv1_b, cout, cin, 3, true) < 0) return -1;
    snprintf(n, sizeof n, "%s.norm2", base);
    if (fetch_norm(src, n, &r->norm2_w, &r->norm2_b, cout) < 0) return -1;
    snprintf(n, sizeof n, "%s.conv2", base);
    if (fetch_conv(src, n, &r->conv2_w, &r->conv2_b, cout, cout, 3, true) < 0) return -1;
    if (r->has_shortcut) {
        snprintf(n, sizeof n, "%s.%s", base, src->layout == LAYOUT_DIFFUSERS ? "conv_shortcut" : "nin_shortcut");
        if (fetch_conv(src, n, &r->short_w, &r->short_b, cout, cin, 1, true) < 0) return -1;
    }
    return 0;
}

static int load_attention(weight_source *src, const char *side, vae_attention *a, int c) {
    /* diffusers (current), diffusers (before 0.14), CompVis */
    static const char *names[3][5] = {
        {"mid_block.attentions.0", "group_norm", "to_q", "to_k", "to_v"},
        {"mid_block.attentions.0", "group_norm", "query", "key", "value"},
        {"mid.attn_1", "norm", "q", "k", "v"},
    };
    static const char *out_names[3] = {"to_out.0", "proj_attn", "proj_out"};
    int v = src->layout == LAYOUT_COMPVIS ? 2 : 0;
    char probe[256];
    snprintf(probe, sizeof probe, "%s%s.mid_block.attentions.0.query.weight", src->prefix, side);
    if (v == 0 && weight_binder_has(src->w, probe)) v = 1;
    char base[200], n[256];
    snprintf(base, sizeof base, "%s%s.%s", src->prefix, side, names[v][0]);
    a->channels = c;
    snprintf(n, sizeof n, "%s.%s", base, names[v][1]);
    if (fetch_norm(src, n, &a->norm_w, &a->norm_b, c) < 0) return -1;
    tensor *w[4] = {&a->q_w, &a->k_w, &a->v_w, &a->out_w}, *b[4] = {&a->q_b, &a->k_b, &a->v_b, &a->out_b};
    for (int i = 0; i < 4; i++) {
        const char *part = i < 3 ? names[v][2 + i] : out_names[v];
        snprintf(n, sizeof n, "%s.%s.weight", base, part);
        if (fetch(src, n, w[i], 2, SHAPE(c, c)) < 0) return -1;
        snprintf(n, sizeof n, "%s.%s.bias", base, part);
        if (fetch(src, n, b[i], 1, SHAPE(c)) < 0) return -1;
    }
    return 0;
}

static int load_mid(weight_source *src, const char *side, vae_coder *coder, int c) {
    char base[200];
    for (int i = 0; i < 2; i++) {
        if (src->layout == LAYOUT_DIFFUSERS)
            snprintf(base, sizeof base, "%s%s.mid_block.resnets.%d", src->prefix, side, i);
        else
            snprintf(base, sizeof base, "%s%s.mid.block_%d", src->prefix, side, i + 1);
        if (load_resnet(src, base, &coder->mid_resnets[i], c, c) < 0) return -1;
    }
    return load_attention(src, side, &coder->mid_attention, c);
}

/*
 * Nearest 2x upsampling followed by a 3x3 convolution (padding 1) is, for each of the four
 * output phases (a, b) = (row, column) parity, a 2x2 convolution of the low-resolution input
 * with the 3x3 taps summed: even rows see input rows (i-1, i) through taps (k0, k1+k2), odd
 * rows see (i, i+1) through (k0+k1, k2); the same for columns. Four 2x2 convolutions cost
 * 16/36 of the 3x3 one at double resolution, and the upsampled tensor is never built.
 */
static void make_phase_weights(vae *v, vae_level *L) {
    int64_t oc = L->sampler_w.shape[0], ic = L->sampler_w.shape[1];
    float *w3 = ts_malloc((size_t)(oc * ic * 9) * sizeof(float));
    tensor_copy_to_f32(w3, &L->sampler_w);
    static const float taps[2][2][3] = {{{1, 0, 0}, {0, 1, 1}}, {{1, 1, 0}, {0, 0, 1}}};   /* [phase][r][k] */
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 2; b++) {
            tensor *t = own_new_f32(v, 4, (const int64_t[]){oc, ic, 2, 2});
            L->phase_w[a * 2 + b] = *t;
            float *w2 = t->data;
            for (int64_t o = 0; o < oc * ic; o++)
                for (int r = 0; r < 2; r++)
                    for (int c = 0; c < 2; c++) {
                        float sum = 0;
                        for (int kh = 0; kh < 3; kh++)
                            for (int kw = 0; kw < 3; kw++)
                                if (taps[a][r][kh] != 0 && taps[b][c][kw] != 0) sum += w3[o * 9 + kh * 3 + kw];
                        w2[o * 4 + r * 2 + c] = sum;
                    }
        }
    free(w3);
}

static int load_coder(weight_source *src, vae *v, bool decoder) {
    const vae_config *c = &v->config;
    vae_coder *coder = decoder ? &v->decoder : &v->encoder;
    const char *side = decoder ? "decoder" : "encoder";
    int n = c->levels, top = c->block_out[n - 1];
    char base[200], name[256];
    snprintf(base, sizeof base, "%s%s.conv_in", src->prefix, side);
    if (decoder) {
        if (fetch_conv(src, base, &coder->conv_in_w, &coder->conv_in_b, top, c->latent_channels, 3, true) < 0) return -1;
        if (load_mid(src, side, coder, top) < 0) return -1;
    } else if (fetch_conv(src, base, &coder->conv_in_w, &coder->conv_in_b, c->block_out[0], c->in_channels, 3, true) < 0)
        return -1;
    int prev = decoder ? top : c->block_out[0];
    for (int i = 0; i < n; i++) {
        vae_level *L = &coder->level[i];
        L->cin = prev;
        L->cout = decoder ? c->block_out[n - 1 - i] : c->block_out[i];
        L->count = decoder ? c->layers_per_block + 1 : c->layers_per_block;
        L->resnets = ts_calloc((size_t)L->count, sizeof(vae_resnet));
        for (int j = 0; j < L->count; j++) {
            resnet_name(name, sizeof name, src, side, i, j, n);
            if (load_resnet(src, name, &L->resnets[j], j == 0 ? L->cin : L->cout, L->cout) < 0) return -1;
        }
        L->has_sampler = i < n - 1;
        if (L->has_sampler) {
            int l = decoder && src->layout == LAYOUT_COMPVIS ? n - 1 - i : i;
            if (src->layout == LAYOUT_DIFFUSERS)
                snprintf(name, sizeof name, "%s%s.%s.%d.%s.0.conv", src->prefix, side,
                         decoder ? "up_blocks" : "down_blocks", l, decoder ? "upsamplers" : "downsamplers");
            else
                snprintf(name, sizeof name, "%s%s.%s.%d.%s.conv", src->prefix, side,
                         decoder ? "up" : "down", l, decoder ? "upsample" : "downsample");
            if (fetch_conv(src, name, &L->sampler_w, &L->sampler_b, L->cout, L->cout, 3, true) < 0) return -1;
            if (decoder) make_phase_weights(v, L);
        }
        prev = L->cout;
    }
    if (!decoder && load_mid(src, side, coder, top) < 0) return -1;
    snprintf(base, sizeof base, "%s%s.%s", src->prefix, side,
             src->layout == LAYOUT_DIFFUSERS ? "conv_norm_out" : "norm_out");
    int last = decoder ? c->block_out[0] : top;
    if (fetch_norm(src, base, &coder->norm_out_w, &coder->norm_out_b, last) < 0) return -1;
    snprintf(base, sizeof base, "%s%s.conv_out", src->prefix, side);
    int out = decoder ? c->out_channels : 2 * c->latent_channels;
    return fetch_conv(src, base, &coder->conv_out_w, &coder->conv_out_b, out, last, 3, true);
}

static int load_all(weight_source *src, vae *v) {
    vae_config *c = &v->config;
    char name[256];
    if (load_coder(src, v, true) < 0) return -1;
    if (c->has_encoder && load_coder(src, v, false) < 0) return -1;
    if (c->quant_conv) {
        snprintf(name, sizeof name, "%squant_conv", src->prefix);
        int l2 = 2 * c->latent_channels;
        if (fetch_conv(src, name, &v->quant_w, &v->quant_b, l2, l2, 1, true) < 0) return -1;
    }
    if (c->post_quant_conv) {
        snprintf(name, sizeof name, "%spost_quant_conv", src->prefix);
        int l = c->latent_channels;
        if (fetch_conv(src, name, &v->post_quant_w, &v->post_quant_b, l, l, 1, true) < 0) return -1;
    }
    return 0;
}

/* ---- architecture from the weights ------------------------------------------- */

static bool has(const weight_source *src, const char *fmt, ...) TS_PRINTF(2, 3);
static bool has(const weight_source *src, const char *fmt, ...) {
    char name[256];
    int n = snprintf(name, sizeof name, "%s", src->prefix);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name + n, sizeof name - (size_t)n, fmt, ap);
    va_end(ap);
    return weight_binder_has(src->w, name);
}

static int shape_of(const weight_source *src, const char *suffix, int dim, int64_t *out) {
    char name[256];
    snprintf(name, sizeof name, "%s%s", src->prefix, suffix);
    int ndim;
    int64_t shape[TENSOR_MAX_DIMS];
    if (weight_binder_shape(src->w, name, &ndim, shape) < 0) return -1;
    if (dim >= ndim) return ts_fail("%s: tensor '%s' has too few dimensions", weight_binder_path(src->w), name);
    *out = shape[dim];
    return 0;
}

static int infer_config(weight_source *src, vae_config *c) {
    const char *path = weight_binder_path(src->w);
    bool diffusers = src->layout == LAYOUT_DIFFUSERS;
    int n = 0;
    while (n < VAE_MAX_LEVELS &&
           (diffusers ? has(src, "decoder.up_blocks.%d.resnets.0.conv2.weight", n)
                      : has(src, "decoder.up.%d.block.0.conv2.weight", n)))
        n++;
    if (n == 0) return ts_fail("%s: no VAE decoder levels found", path);
    c->levels = n;
    char name[128];
    for (int i = 0; i < n; i++) {
        int64_t ch = 0;
        if (diffusers) snprintf(name, sizeof name, "decoder.up_blocks.%d.resnets.0.conv2.weight", n - 1 - i);
        else snprintf(name, sizeof name, "decoder.up.%d.block.0.conv2.weight", i);
        if (shape_of(src, name, 0, &ch) < 0) return -1;
        c->block_out[i] = (int)ch;
    }
    int per = 0;
    while (diffusers ? has(src, "decoder.up_blocks.0.resnets.%d.conv1.weight", per)
                     : has(src, "decoder.up.%d.block.%d.conv1.weight", n - 1, per))
        per++;
    c->layers_per_block = per - 1;
    if (c->layers_per_block < 1) return ts_fail("%s: VAE decoder level 0 has %d ResNets", path, per);
    int64_t v = 0;
    if (shape_of(src, "decoder.conv_in.weight", 1, &v) < 0) return -1;
    c->latent_channels = (int)v;
    if (shape_of(src, "decoder.conv_out.weight", 0, &v) < 0) return -1;
    c->out_channels = (int)v;
    c->has_encoder = has(src, "encoder.conv_in.weight");
    c->in_channels = 3;
    if (c->has_encoder) {
        if (shape_of(src, "encoder.conv_in.weight", 1, &v) < 0) return -1;
        c->in_channels = (int)v;
    }
    c->quant_conv = c->has_encoder && has(src, "quant_conv.weight");
    c->post_quant_conv = has(src, "post_quant_conv.weight");
    return 0;
}

/* scaling_factor, norm_num_groups and sample_size from vae/config.json, when present. */
static int read_config_json(const char *model, vae_config *c) {
    char path[4096];
    if (model_component_file(model, "vae", "config.json", path, sizeof path) < 0) return 0;
    char *text = read_text_file(path, NULL);
    if (!text) return -1;
    cJSON *j = json_parse_config(text, path);
    free(text);
    if (!j) return -1;
    const cJSON *it;
    if (cJSON_IsNumber(it = cJSON_GetObjectItem(j, "scaling_factor"))) c->scaling_factor = (float)it->valuedouble;
    if (cJSON_IsNumber(it = cJSON_GetObjectItem(j, "norm_num_groups"))) c->norm_groups = it->valueint;
    it = cJSON_GetObjectItem(j, "sample_size");
    if (cJSON_IsArray(it)) it = cJSON_GetArrayItem(it, 0);
    if (cJSON_IsNumber(it)) c->sample_size = it->valueint;
    cJSON_Delete(j);
    return 0;
}

static int check_config(const vae_config *c, const char *what) {
    if (c->norm_groups <= 0) return ts_fail("%s: norm_num_groups %d", what, c->norm_groups);
    for (int i = 0; i < c->levels; i++)
        if (c->block_out[i] <= 0 || c->block_out[i] % c->norm_groups)
            return ts_fail("%s: block_out_channels[%d] = %d is not a multiple of norm_num_groups %d", what, i,
                           c->block_out[i], c->norm_groups);
    return 0;
}

vae *vae_load(const char *model, float default_scaling) {
    char path[4096];
    if (model_component_weights(model, "vae", path, sizeof path) < 0) return NULL;
    vae *v = ts_calloc(1, sizeof *v);
    v->config = (vae_config){.norm_groups = 32, .scaling_factor = default_scaling, .sample_size = 512};
    v->weights = weight_binder_open(path);
    if (!v->weights) goto fail;
    weight_source src = {.owner = v, .w = v->weights};
    static const char *prefixes[] = {"first_stage_model.", "vae.", ""};
    bool found = false;
    for (int i = 0; i < 3 && !found; i++) {
        src.prefix = prefixes[i];
        if (has(&src, "decoder.mid.block_1.norm1.weight")) src.layout = LAYOUT_COMPVIS, found = true;
        else if (has(&src, "decoder.mid_block.resnets.0.norm1.weight")) src.layout = LAYOUT_DIFFUSERS, found = true;
    }
    if (!found) { ts_fail("%s: no VAE weights (no first_stage_model.decoder.* or decoder.*)", path); goto fail; }
    if (infer_config(&src, &v->config) < 0 || read_config_json(model, &v->config) < 0 ||
        check_config(&v->config, path) < 0 || load_all(&src, v) < 0)
        goto fail;
    log_debug("vae: %s layout, %d levels, latent %d, scaling %g", src.layout == LAYOUT_COMPVIS ? "CompVis" : "diffusers",
              v->config.levels, v->config.latent_channels, (double)v->config.scaling_factor);
    return v;
fail:
    ts_fail_wrap("loading VAE");
    vae_destroy(&v);
    return NULL;
}

vae *vae_new_random(const vae_config *config, uint64_t seed) {
    vae *v = ts_calloc(1, sizeof *v);
    v->config = *config;
    if (v->config.levels < 1 || v->config.levels > VAE_MAX_LEVELS) {
        ts_fail("vae: %d levels", v->config.levels);
        vae_destroy(&v);
        return NULL;
    }
    v->weights = weight_binder_random(DT_F32, seed);
    weight_source src = {.owner = v, .w = v->weights, .prefix = "", .layout = LAYOUT_DIFFUSERS};
    if (check_config(&v->config, "vae") < 0 || load_all(&src, v) < 0) vae_destroy(&v);
    return v;
}

static void free_coder(vae_coder *c) {
    for (int i = 0; i < VAE_MAX_LEVELS; i++) free(c->level[i].resnets);
}

void vae_destroy(vae **self) {
    if (!*self) return;
    vae *v = *self;
    free_coder(&v->decoder);
    free_coder(&v->encoder);
    for (int i = 0; i < v->owned_count; i++) tensor_free(&v->owned[i]);
    free(v->owned);
    weight_binder_destroy(&v->weights);
    free(v);
    *self = NULL;
}

const vae_config *vae_get_config(const vae *self) { return &self->config; }
float vae_scaling_factor(const vae *self) { return self->config.scaling_factor; }
int vae_downscale(const vae *self) { return 1 << (self->config.levels - 1); }

/* ---- forward ------------------------------------------------------------------ */

static const conv2d_params SAME3 = {1, 1, 1, 1, 1}, POINT = {1, 1, 0, 0, 1};

/* x [cin, H, W] -> x [cout, H, W], in place; t1, t2 scratch of the same capacity. */
static int resnet_forward(ts_ctx *ctx, const vae_resnet *r, float *x, float *t1, float *t2, int H, int W, int groups) {
    int64_t hw = (int64_t)H * W;
    if (group_norm(ctx, t1, x, 1, r->cin, hw, groups, &r->norm1_w, &r->norm1_b, VAE_EPS) < 0) return -1;
    silu(ctx, t1, t1, r->cin * hw);
    if (conv2d(ctx, t2, t1, 1, r->cin, H, W, &r->conv1_w, &r->conv1_b, SAME3) < 0) return -1;
    if (group_norm(ctx, t2, t2, 1, r->cout, hw, groups, &r->norm2_w, &r->norm2_b, VAE_EPS) < 0) return -1;
    silu(ctx, t2, t2, r->cout * hw);
    if (conv2d(ctx, t1, t2, 1, r->cout, H, W, &r->conv2_w, &r->conv2_b, SAME3) < 0) return -1;
    if (r->has_shortcut) {
        if (conv2d(ctx, t2, x, 1, r->cin, H, W, &r->short_w, &r->short_b, POINT) < 0) return -1;
        copy_floats(ctx, x, t2, r->cout * hw);   /* x = shortcut + h */
        add_inplace(ctx, x, t1, r->cout * hw);
    } else {
        add_inplace(ctx, x, t1, r->cout * hw);
    }
    return 0;
}

/* Single-head self-attention over the H*W positions, residual added into x [C, H*W]. */
static int attention_forward(ts_ctx *ctx, const vae_attention *a, float *x, int64_t hw, int groups) {
    int c = a->channels;
    size_t n = (size_t)c * (size_t)hw;
    float *buf = ts_ctx_alloc(ctx, 5 * n * sizeof(float));
    if (!buf) return -1;
    float *h = buf, *t = h + n, *q = t + n, *k = q + n, *v = k + n;
    int rc = -1;
    if (group_norm(ctx, h, x, 1, c, hw, groups, &a->norm_w, &a->norm_b, VAE_EPS) < 0) goto done;
    nchw_to_nhwc(ctx, t, h, 1, c, hw);
    if (linear(ctx, q, t, hw, &a->q_w, &a->q_b) < 0 || linear(ctx, k, t, hw, &a->k_w, &a->k_b) < 0 ||
        linear(ctx, v, t, hw, &a->v_w, &a->v_b) < 0)
        goto done;
    attention(ctx, h, q, k, v, (attention_params){.batch = 1, .heads = 1, .head_dim = c, .n_q = hw, .n_kv = hw,
                                              .scale = 1.0f / sqrtf((float)c)});
    if (linear(ctx, t, h, hw, &a->out_w, &a->out_b) < 0) goto done;
    nhwc_to_nchw(ctx, h, t, 1, c, hw);
    add_inplace(ctx, x, h, (int64_t)n);
    rc = 0;
done:
    ts_ctx_free(ctx, buf);
    return rc;
}

static int mid_forward(ts_ctx *ctx, const vae_coder *c, float *x, float *t1, float *t2, int H, int W, int groups) {
    if (resnet_forward(ctx, &c->mid_resnets[0], x, t1, t2, H, W, groups) < 0) return -1;
    if (attention_forward(ctx, &c->mid_attention, x, (int64_t)H * W, groups) < 0) return -1;
    return resnet_forward(ctx, &c->mid_resnets[1], x, t1, t2, H, W, groups);
}

/* norm_out, SiLU, conv_out: x [C, H, W] -> out [C_out, H, W]. */
static int output_forward(ts_ctx *ctx, const vae_coder *c, int ch, float *x, float *t1, float *out, int H, int W, int groups) {
    int64_t hw = (int64_t)H * W;
    if (group_norm(ctx, t1, x, 1, ch, hw, groups, &c->norm_out_w, &c->norm_out_b, VAE_EPS) < 0) return -1;
    silu(ctx, t1, t1, ch * hw);
    return conv2d(ctx, out, t1, 1, ch, H, W, &c->conv_out_w, &c->conv_out_b, SAME3);
}

/* Floats of the largest activation of a pass whose full resolution is H x W: at level i
 * (resolution H >> i) live the channels of levels i-1, i and i+1 (down- and upsampling
 * carry them across), with one extra row and column for the encoder's asymmetric padding. */
static size_t buffer_floats(const vae_config *c, int H, int W) {
    size_t most = (size_t)(c->in_channels > c->out_channels ? c->in_channels : c->out_channels) * (size_t)H * W;
    for (int i = 0; i < c->levels; i++) {
        int ch = c->block_out[i];
        if (i > 0 && c->block_out[i - 1] > ch) ch = c->block_out[i - 1];
        if (i + 1 < c->levels && c->block_out[i + 1] > ch) ch = c->block_out[i + 1];
        if (i == c->levels - 1 && 2 * c->latent_channels > ch) ch = 2 * c->latent_channels;
        size_t need = (size_t)ch * (size_t)((H >> i) + 1) * (size_t)((W >> i) + 1);
        if (need > most) most = need;
    }
    return most;
}

/* out [C, 2h, 2w] = conv3x3(upsample_nearest2x(x [C, h, w])), as four 2x2 convolutions
 * (make_phase_weights); t [C, h+1, w+1] scratch. */
static int upsample_conv(ts_ctx *ctx, const vae_level *L, const float *x, float *t, float *out, int C, int h, int w) {
    const conv2d_params pad1 = {1, 1, 1, 1, 1};
    int ph = h + 1, pw = w + 1;
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 2; b++) {
            if (conv2d(ctx, t, x, 1, C, h, w, &L->phase_w[a * 2 + b], &L->sampler_b, pad1) < 0) return -1;
            /* phase (a, b): output (2i+a, 2j+b) is conv output (i+a, j+b) */
            copy_strided(ctx, out + (int64_t)a * 2 * w + b, (const int64_t[3]){(int64_t)4 * h * w, 4 * w, 2},
                         t + (int64_t)a * pw + b, (const int64_t[3]){(int64_t)ph * pw, pw, 1},
                         (const int64_t[3]){C, h, w});
        }
    return 0;
}

/* One latent [L, h, w] -> image [out, h*f, w*f]. */
static int decode_one(ts_ctx *ctx, vae *self, const float *z, int h, int w, float *image) {
    const vae_config *c = &self->config;
    const vae_coder *d = &self->decoder;
    int f = vae_downscale(self), H = h * f, W = w * f, g = c->norm_groups;
    size_t cap = buffer_floats(c, H, W);
    float *buf = ts_ctx_alloc(ctx, 3 * cap * sizeof(float));
    if (!buf) return -1;
    float *x = buf, *t1 = x + cap, *t2 = t1 + cap;
    int rc = -1;
    const float *in = z;
    if (c->post_quant_conv) {
        if (conv2d(ctx, t2, z, 1, c->latent_channels, h, w, &self->post_quant_w, &self->post_quant_b, POINT) < 0) goto done;
        in = t2;
    }
    if (conv2d(ctx, x, in, 1, c->latent_channels, h, w, &d->conv_in_w, &d->conv_in_b, SAME3) < 0) goto done;
    if (mid_forward(ctx, d, x, t1, t2, h, w, g) < 0) goto done;
    int ch = c->block_out[c->levels - 1];
    for (int i = 0; i < c->levels; i++) {
        const vae_level *L = &d->level[i];
        for (int j = 0; j < L->count; j++)
            if (resnet_forward(ctx, &L->resnets[j], x, t1, t2, h, w, g) < 0) goto done;
        ch = L->cout;
        if (L->has_sampler) {
            if (upsample_conv(ctx, L, x, t1, t2, ch, h, w) < 0) goto done;
            float *up = t2;
            t2 = x, x = up;
            h *= 2, w *= 2;
        }
    }
    rc = output_forward(ctx, d, ch, x, t1, image, h, w, g);
done:
    ts_ctx_free(ctx, buf);
    return rc;
}

/* One image [C, H, W] -> latent mean [L, H/f, W/f]. */
static int encode_one(ts_ctx *ctx, vae *self, const float *image, int H, int W, float *mean) {
    const vae_config *c = &self->config;
    const vae_coder *e = &self->encoder;
    int g = c->norm_groups, h = H, w = W;
    size_t cap = buffer_floats(c, H, W);
    float *buf = ts_ctx_alloc(ctx, 3 * cap * sizeof(float));
    if (!buf) return -1;
    float *x = buf, *t1 = x + cap, *t2 = t1 + cap;
    int rc = -1;
    if (conv2d(ctx, x, image, 1, c->in_channels, h, w, &e->conv_in_w, &e->conv_in_b, SAME3) < 0) goto done;
    int ch = c->block_out[0];
    for (int i = 0; i < c->levels; i++) {
        const vae_level *L = &e->level[i];
        for (int j = 0; j < L->count; j++)
            if (resnet_forward(ctx, &L->resnets[j], x, t1, t2, h, w, g) < 0) goto done;
        ch = L->cout;
        if (L->has_sampler) {
            /* diffusers' Downsample2D pads (0, 1, 0, 1) then convolves with stride 2, no padding */
            int ph = h + 1, pw = w + 1;
            fill(ctx, t1, 0.0f, (int64_t)ch * ph * pw);
            copy_strided(ctx, t1, (const int64_t[3]){(int64_t)ph * pw, pw, 1}, x, (const int64_t[3]){(int64_t)h * w, w, 1},
                         (const int64_t[3]){ch, h, w});
            if (conv2d(ctx, x, t1, 1, ch, ph, pw, &L->sampler_w, &L->sampler_b, (conv2d_params){2, 2, 0, 0, 1}) < 0)
                goto done;
            h /= 2, w /= 2;
        }
    }
    if (mid_forward(ctx, e, x, t1, t2, h, w, g) < 0) goto done;
    int l2 = 2 * c->latent_channels;
    if (output_forward(ctx, e, ch, x, t1, t2, h, w, g) < 0) goto done;
    const float *moments = t2;
    if (c->quant_conv) {
        if (conv2d(ctx, t1, t2, 1, l2, h, w, &self->quant_w, &self->quant_b, POINT) < 0) goto done;
        moments = t1;
    }
    copy_floats(ctx, mean, moments, (int64_t)c->latent_channels * h * w);   /* mean, then logvar */
    rc = 0;
done:
    ts_ctx_free(ctx, buf);
    return rc;
}

/* ---- tiled decode (diffusers AutoencoderKL.tiled_decode, sample by sample) ------- */

typedef struct { float *data; int h, w; } tile_image;

/* Tile b fades in from its neighbour a above (blend_v) or to the left (blend_h), as diffusers'
 * blend_v / blend_h: over the first `extent` rows or columns of b. */
static void blend_v(ts_ctx *ctx, const tile_image *a, tile_image *b, int C, int extent) {
    if (a->h < extent) extent = a->h;
    if (b->h < extent) extent = b->h;
    int n = a->w < b->w ? a->w : b->w;
    crossfade(ctx, b->data, (int64_t)b->h * b->w, b->w, a->data + (int64_t)(a->h - extent) * a->w, (int64_t)a->h * a->w,
              a->w, C, extent, n, extent, true);
}

static void blend_h(ts_ctx *ctx, const tile_image *a, tile_image *b, int C, int extent) {
    if (a->w < extent) extent = a->w;
    if (b->w < extent) extent = b->w;
    int rows = a->h < b->h ? a->h : b->h;
    crossfade(ctx, b->data, (int64_t)b->h * b->w, b->w, a->data + (a->w - extent), (int64_t)a->h * a->w, a->w, C, rows,
              extent, extent, false);
}

static int decode_tiled_one(ts_ctx *ctx, vae *self, const float *z, int h, int w, float *image, int tile, float overlap) {
    const vae_config *c = &self->config;
    int L = c->latent_channels, C = c->out_channels, f = vae_downscale(self);
    int stride = (int)(tile * (1 - overlap)), tile_px = tile * f;
    int extent = (int)(tile_px * overlap), limit = tile_px - extent;
    if (stride < 1) return ts_fail("vae tiling: tile of %d latents with overlap %g leaves no stride", tile, (double)overlap);
    int rows = (h + stride - 1) / stride, cols = (w + stride - 1) / stride;
    tile_image *tiles = ts_calloc((size_t)rows * cols, sizeof(tile_image));
    float *zt = ts_ctx_alloc(ctx, (size_t)L * tile * tile * sizeof(float));
    int rc = -1;
    if (!zt) goto done;
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++) {
            int y0 = i * stride, x0 = j * stride;
            int th = h - y0 < tile ? h - y0 : tile, tw = w - x0 < tile ? w - x0 : tile;
            copy_strided(ctx, zt, (const int64_t[3]){(int64_t)th * tw, tw, 1}, z + (int64_t)y0 * w + x0,
                         (const int64_t[3]){(int64_t)h * w, w, 1}, (const int64_t[3]){L, th, tw});
            tile_image *t = &tiles[i * cols + j];
            t->h = th * f, t->w = tw * f;
            t->data = ts_ctx_alloc(ctx, (size_t)C * t->h * t->w * sizeof(float));
            if (!t->data || decode_one(ctx, self, zt, th, tw, t->data) < 0) goto done;
        }
    int H = h * f, W = w * f;
    fill(ctx, image, 0.0f, (int64_t)C * H * W);
    /* each tile keeps its top-left limit x limit corner, placed after the previous ones */
    for (int i = 0, oy = 0; i < rows; i++) {
        int kh = 0;
        for (int j = 0, ox = 0; j < cols; j++) {
            tile_image *t = &tiles[i * cols + j];
            if (i > 0) blend_v(ctx, &tiles[(i - 1) * cols + j], t, C, extent);
            if (j > 0) blend_h(ctx, &tiles[i * cols + j - 1], t, C, extent);
            kh = t->h < limit ? t->h : limit;
            int kw = t->w < limit ? t->w : limit, ch = kh, cw = kw;
            if (oy + ch > H) ch = H - oy;
            if (ox + cw > W) cw = W - ox;
            if (ch > 0 && cw > 0)
                copy_strided(ctx, image + (int64_t)oy * W + ox, (const int64_t[3]){(int64_t)H * W, W, 1}, t->data,
                             (const int64_t[3]){(int64_t)t->h * t->w, t->w, 1}, (const int64_t[3]){C, ch, cw});
            ox += kw;
        }
        oy += kh;
    }
    rc = 0;
done:
    for (int i = 0; i < rows * cols; i++) ts_ctx_free(ctx, tiles[i].data);
    free(tiles);
    ts_ctx_free(ctx, zt);
    return rc;
}

int vae_decode(vae *self, ts_ctx *ctx, const float *latent, int N, int h, int w, float *image, const vae_tiling *tiling) {
    const vae_config *c = &self->config;
    int f = vae_downscale(self);
    if (N < 1 || h < 1 || w < 1) return ts_fail("vae_decode: bad latent size %dx%dx%d", N, h, w);
    int tile = 0;
    float overlap = 0.25f;
    if (tiling && tiling->enabled) {
        tile = tiling->tile_latent > 0 ? tiling->tile_latent : c->sample_size / f;
        if (tiling->overlap > 0) overlap = tiling->overlap;
        if (tile < 1) return ts_fail("vae tiling: tile of %d latents", tile);
    }
    size_t zs = (size_t)c->latent_channels * h * w, xs = (size_t)c->out_channels * h * f * w * f;
    for (int n = 0; n < N; n++) {
        const float *z = ts_stage_in(ctx, latent + n * zs, zs * sizeof(float));
        float *x = z ? ts_stage_out(ctx, image + n * xs, xs * sizeof(float)) : NULL;
        int rc = !x ? -1
                 : tile && (h > tile || w > tile) ? decode_tiled_one(ctx, self, z, h, w, x, tile, overlap)
                                                  : decode_one(ctx, self, z, h, w, x);
        ts_stage_release(ctx, latent + n * zs, z);
        if (rc == 0) rc = ts_stage_finish(ctx, image + n * xs, x, xs * sizeof(float)) | ts_ctx_synchronize(ctx);
        else if (x) ts_stage_release(ctx, image + n * xs, x);
        if (rc) return ts_fail_wrap("VAE decode on %s", ts_ctx_backend_name(ctx));
    }
    return 0;
}

int vae_encode_mean(vae *self, ts_ctx *ctx, const float *image, int N, int H, int W, float *latent) {
    const vae_config *c = &self->config;
    int f = vae_downscale(self);
    if (!c->has_encoder) return ts_fail("VAE encode: this checkpoint has no encoder weights");
    if (N < 1 || H < f || W < f || H % f || W % f)
        return ts_fail("VAE encode: image size %dx%d is not a positive multiple of %d", W, H, f);
    size_t xs = (size_t)c->in_channels * H * W, zs = (size_t)c->latent_channels * (H / f) * (W / f);
    for (int n = 0; n < N; n++) {
        const float *x = ts_stage_in(ctx, image + n * xs, xs * sizeof(float));
        float *z = x ? ts_stage_out(ctx, latent + n * zs, zs * sizeof(float)) : NULL;
        int rc = z ? encode_one(ctx, self, x, H, W, z) : -1;
        ts_stage_release(ctx, image + n * xs, x);
        if (rc == 0) rc = ts_stage_finish(ctx, latent + n * zs, z, zs * sizeof(float)) | ts_ctx_synchronize(ctx);
        else if (z) ts_stage_release(ctx, latent + n * zs, z);
        if (rc) return ts_fail_wrap("VAE encode on %s", ts_ctx_backend_name(ctx));
    }
    return 0;
}

int vae_image_to_rgb8(ts_ctx *ctx, const float *image, int C, int H, int W, uint8_t *rgb) {
    /* image and rgb are host memory (what vae_decode gives and PNG writers take) */
    size_t hw = (size_t)H * W;
    const float *x = ts_stage_in(ctx, image, (size_t)C * hw * sizeof(float));
    uint8_t *out = x ? ts_stage_out(ctx, rgb, hw * 3) : NULL;
    if (out) rgb8_from_planes(ctx, out, x, C, (int64_t)hw, 0.5f, 0.5f);   /* [-1, 1] -> [0, 1] */
    int rc = out ? ts_stage_finish(ctx, rgb, out, hw * 3) | ts_ctx_synchronize(ctx) : -1;
    ts_stage_release(ctx, image, x);
    return rc ? ts_fail_wrap("vae_image_to_rgb8 on %s", ts_ctx_backend_name(ctx)) : 0;
}
