/*
 * cuda_backend.c — the CUDA backend: ops.h's ops on one NVIDIA GPU, behind the same table
 * as the CPU (backend_impl.h), so a model given ts_ctx_new("cuda:N") runs there unchanged.
 *
 * Activations are F32 in device memory, images NCHW, exactly as ops.h says. By default the
 * F32 parity path: GEMMs go to cuBLASLt in plain F32 (no TF32), convolutions to cuDNN with
 * FMA math (cuda_gemm.cu, cuda_conv.cu), the rest to cuda_f32.cu and the library's LayerNorm
 * and flash attention. ts_ctx_set_compute_type(ctx, DT_F16 or DT_BF16) puts the GEMMs and
 * convolutions on the tensor cores: weights kept in that type, activations converted on the
 * way in, F32 accumulation and F32 results; everything else stays F32.
 *
 * Weights: ops take weights as host tensors (memory-mapped, any float dtype). The context
 * keeps a device F32 copy of each, made on first use and keyed by the host tensor's data
 * address, type and size, so every weight crosses the bus once per context. Like the CPU's
 * oneDNN weight cache this needs weights that stay unchanged at their address while the
 * context lives (a model's mapped file does). A tensor whose data already is device memory
 * (F32) is used as it is.
 *
 * GGUF matrices (any block type) are dequantized on the host once and kept as F32 like any
 * weight; token embeddings are dequantized a few rows at a time.
 *
 * Not here yet (the op fails with a message naming it): broadcasting add/mul, concat, causal
 * attention wider than 256 per head, weight_gemm's fill_bias.
 */
#include "kernels/backend_impl.h"
#include "kernels/cuda/cuda.h"
#include "kernels/quant.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* One weight's device copy. */
typedef struct {
    const void *host;
    dtype type;
    int64_t numel;
    dtype as;                        /* the device copy's type: F32, or the compute type */
    void *dev;
} cached_weight;

typedef struct {
    cuda_context *cu;
    cached_weight *weights;          /* open addressing on `host` */
    size_t weight_slots, weight_count;
    size_t weight_bytes;
    dtype compute;                   /* F32, or F16/BF16: GEMM and convolution inputs (ts_ctx_set_compute_type) */
    int device;
} cuda_ctx;

static cuda_ctx *cuda_of(const ts_ctx *ctx) { return (cuda_ctx *)ctx->impl; }
static cuda_context *cu(const ts_ctx *ctx) { return cuda_of(ctx)->cu; }

/* A void op's failure is recorded for ts_ctx_synchronize (ops.h). */
static void note(ts_ctx *ctx, int rc) {
    if (rc) ctx->failed = true;
}

/* ---- context and memory ------------------------------------------------------- */

static int cuda_context_init(ts_ctx *ctx, int device, int threads) {
    (void)threads;   /* a GPU context has one stream; the host threads it uses are ours */
    int count = cuda_device_count();
    if (count == 0) return ts_fail("cuda: no CUDA device is visible (no driver or no GPU)");
    if (device >= count) return ts_fail("cuda: device %d asked, %d visible", device, count);
    cuda_ctx *c = ts_calloc(1, sizeof *c);
    c->compute = DT_F32;
    c->device = device;
    c->cu = cuda_context_new(device, 0);
    if (!c->cu) {
        free(c);
        return -1;
    }
    ctx->impl = c;
    return 0;
}

static void cuda_context_free(ts_ctx *ctx) {
    cuda_ctx *c = cuda_of(ctx);
    if (!c) return;
    cuda_synchronize(c->cu);
    for (size_t i = 0; i < c->weight_slots; i++)
        if (c->weights[i].host) cuda_free(c->cu, c->weights[i].dev);
    free(c->weights);
    cuda_synchronize(c->cu);
    cuda_context_destroy(&c->cu);
    free(c);
    ctx->impl = NULL;
}

static int cuda_threads(const ts_ctx *ctx) { (void)ctx; return 1; }
static void *cuda_device_stream(const ts_ctx *ctx, int *device) {
    if (device) *device = cuda_of(ctx)->device;
    return cuda_context_stream(cu(ctx));
}
static int cuda_sync(ts_ctx *ctx) { return cuda_synchronize(cu(ctx)); }
static void *cuda_alloc(ts_ctx *ctx, size_t bytes) { return cuda_malloc(cu(ctx), bytes); }
static void cuda_release(ts_ctx *ctx, void *p) { cuda_free(cu(ctx), p); }
static int cuda_up(ts_ctx *ctx, void *dst, const void *src, size_t bytes) { return cuda_upload(cu(ctx), dst, src, bytes); }
static int cuda_down(ts_ctx *ctx, void *dst, const void *src, size_t bytes) {
    return cuda_download(cu(ctx), dst, src, bytes);
}

/* ---- weights: host tensors to device F32, once ---------------------------------- */

static size_t slot_of(const void *p, size_t slots) {
    uint64_t h = (uint64_t)(uintptr_t)p * 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 17) & (slots - 1);
}

static void cache_insert(cuda_ctx *c, cached_weight w) {
    if ((c->weight_count + 1) * 2 > c->weight_slots) {   /* keep the table at most half full */
        size_t slots = c->weight_slots ? c->weight_slots * 2 : 1024;
        cached_weight *old = c->weights, *grown = ts_calloc(slots, sizeof *grown);
        for (size_t i = 0; i < c->weight_slots; i++) {
            if (!old[i].host) continue;
            size_t s = slot_of(old[i].host, slots);
            while (grown[s].host) s = (s + 1) & (slots - 1);
            grown[s] = old[i];
        }
        free(old);
        c->weights = grown;
        c->weight_slots = slots;
    }
    size_t s = slot_of(w.host, c->weight_slots);
    while (c->weights[s].host) s = (s + 1) & (c->weight_slots - 1);
    c->weights[s] = w;
    c->weight_count++;
    c->weight_bytes += (size_t)w.numel * dtype_size(w.as);
}

static void *cache_find(const cuda_ctx *c, const void *host, dtype type, int64_t numel, dtype as) {
    for (size_t s = c->weight_slots ? slot_of(host, c->weight_slots) : 0; c->weight_slots && c->weights[s].host;
         s = (s + 1) & (c->weight_slots - 1)) {
        const cached_weight *w = &c->weights[s];
        if (w->host == host && w->type == type && w->numel == numel && w->as == as) return w->dev;
    }
    return NULL;
}

/* dev32 (numel F32 values, freed here) as a new device array of type `as`; F32 stays as is. */
static void *narrowed(cuda_ctx *c, float *dev32, int64_t numel, dtype as) {
    if (!dev32 || as == DT_F32) return dev32;
    void *d = cuda_malloc(c->cu, (size_t)numel * dtype_size(as));
    if (d && cuda_convert(c->cu, d, as, dev32, DT_F32, numel)) {
        cuda_free(c->cu, d);
        d = NULL;
    }
    cuda_free(c->cu, dev32);
    return d;
}

/* The device values of weight t in type `as` (F32, or the compute type for GEMM and
 * convolution inputs); NULL with ts_fail on a type the GPU path lacks. */
static const void *weight_as(ts_ctx *ctx, const tensor *t, const char *op, dtype as) {
    if (!t || !t->data) return NULL;
    cuda_ctx *c = cuda_of(ctx);
    int64_t numel = tensor_numel(t);
    void *found = cache_find(c, t->data, t->type, numel, as);   /* the common case, first */
    if (found) return found;
    if (cuda_is_device_pointer(t->data)) {   /* an activation used as a bias: F32, never cached */
        if (t->type == DT_F32 && tensor_is_contiguous(t) && as == DT_F32) return t->data;
        ts_fail("%s: a device tensor of %s as a %s weight", op, dtype_name(t->type), dtype_name(as));
        return NULL;
    }
    if (t->type != DT_F32 && t->type != DT_F16 && t->type != DT_BF16) {
        ts_fail("%s: cuda has no %s weights yet (F32, F16, BF16)", op, dtype_name(t->type));
        return NULL;
    }
    float *dev = cuda_malloc(c->cu, (size_t)numel * sizeof(float));
    if (!dev) return NULL;
    int rc;
    if (!tensor_is_contiguous(t)) {
        /* a strided view (a column shard): made contiguous F32 on the host first */
        float *host = ts_malloc((size_t)numel * sizeof(float));
        tensor_copy_to_f32(host, t);
        rc = cuda_upload(c->cu, dev, host, (size_t)numel * sizeof(float));
        free(host);
    } else if (t->type == DT_F32) {
        rc = cuda_upload(c->cu, dev, t->data, (size_t)numel * sizeof(float));
    } else {
        /* the file's 2-byte values cross the bus and are widened there */
        void *raw = cuda_malloc(c->cu, (size_t)numel * 2);
        rc = !raw || cuda_upload(c->cu, raw, t->data, (size_t)numel * 2) ||
             cuda_convert(c->cu, dev, DT_F32, raw, t->type, numel);
        cuda_free(c->cu, raw);
    }
    void *kept = rc ? NULL : narrowed(c, dev, numel, as);
    if (!kept) {
        if (rc) cuda_free(c->cu, dev);
        ts_fail_wrap("%s: uploading a %s weight of %lld values", op, dtype_name(t->type), (long long)numel);
        return NULL;
    }
    cache_insert(c, (cached_weight){t->data, t->type, numel, as, kept});
    return kept;
}

static const float *weight_dev(ts_ctx *ctx, const tensor *t, const char *op) { return weight_as(ctx, t, op, DT_F32); }

/* A GGUF matrix (any block type, or F32/F16/BF16 rows) as a device [rows, cols] of type `as`:
 * dequantized on the host once (kernels/quant.c, the formats' one home), kept like any weight. */
static const void *qmatrix_dev(ts_ctx *ctx, const qmatrix *W, dtype as) {
    cuda_ctx *c = cuda_of(ctx);
    int64_t numel = W->rows * W->cols;
    void *found = cache_find(c, W->data, W->type, numel, as);
    if (found) return found;
    float *dev = cuda_malloc(c->cu, (size_t)numel * sizeof(float));
    if (!dev) return NULL;
    int64_t slab = ((int64_t)1 << 22) / W->cols;   /* rows per 16 MB of host F32 */
    if (slab < 1) slab = 1;
    float *host = ts_malloc((size_t)(slab < W->rows ? slab : W->rows) * (size_t)W->cols * sizeof(float));
    int rc = 0;
    for (int64_t r0 = 0; r0 < W->rows && rc == 0; r0 += slab) {
        int64_t nr = W->rows - r0 < slab ? W->rows - r0 : slab;
        for (int64_t r = 0; r < nr; r++) qmatrix_row(W, r0 + r, host + r * W->cols);
        rc = cuda_upload(c->cu, dev + r0 * W->cols, host, (size_t)(nr * W->cols) * sizeof(float));
    }
    free(host);
    void *kept = rc ? NULL : narrowed(c, dev, numel, as);
    if (!kept) {
        if (rc) cuda_free(c->cu, dev);
        ts_fail_wrap("qmatmul: uploading a %s matrix [%lld, %lld]", dtype_name(W->type), (long long)W->rows,
                     (long long)W->cols);
        return NULL;
    }
    cache_insert(c, (cached_weight){W->data, W->type, numel, as, kept});
    return kept;
}

/* n F32 activation values as a fresh device array of the compute type (cuda_free it after the
 * op that reads it is queued); the F32 pointer itself when the context computes in F32. */
static const void *activation_as(ts_ctx *ctx, const float *x, int64_t n) {
    cuda_ctx *c = cuda_of(ctx);
    if (c->compute == DT_F32) return x;
    void *d = cuda_malloc(c->cu, (size_t)n * dtype_size(c->compute));
    if (d && cuda_convert(c->cu, d, c->compute, x, DT_F32, n)) {
        cuda_free(c->cu, d);
        return NULL;
    }
    return d;
}

static void activation_done(ts_ctx *ctx, const float *x, const void *converted) {
    if ((const void *)x != converted) cuda_free(cu(ctx), (void *)converted);
}

/* Host values (timesteps, token ids) copied to stream-ordered device memory, freed by the
 * caller with cuda_free after the op is queued. */
static void *host_to_device(ts_ctx *ctx, const void *src, size_t bytes) {
    void *d = cuda_malloc(cu(ctx), bytes);
    if (d && cuda_upload(cu(ctx), d, src, bytes)) {
        cuda_free(cu(ctx), d);
        return NULL;
    }
    return d;
}

/* ---- GEMM ----------------------------------------------------------------------- */

/* C (F32) = alpha op(A) op(B) + beta C (+ bias), A and B of type ab (F32 or the compute type:
 * F32 accumulation either way). */
static int gemm_typed(ts_ctx *ctx, dtype ab, int count, bool ta, bool tb, int M, int N, int K, float alpha, const void *A,
                      int lda, int64_t sa, const void *B, int ldb, int64_t sb, float beta, float *C, int ldc, int64_t sc,
                      const float *bias) {
    cuda_gemm_params p = {.trans_a = ta, .trans_b = tb, .M = M, .N = N, .K = K, .alpha = alpha, .beta = beta,
                          .A = A, .lda = lda, .stride_a = sa, .B = B, .ldb = ldb, .stride_b = sb,
                          .C = C, .ldc = ldc, .stride_c = sc, .ab_type = ab, .c_type = DT_F32, .count = count,
                          .epilogue = bias ? CUDA_EPILOGUE_BIAS : CUDA_EPILOGUE_NONE, .bias = bias};
    return cuda_gemm(cu(ctx), &p);
}

static int gemm_f32(ts_ctx *ctx, int count, bool ta, bool tb, int M, int N, int K, float alpha, const float *A, int lda,
                    int64_t sa, const float *B, int ldb, int64_t sb, float beta, float *C, int ldc, int64_t sc,
                    const float *bias) {
    return gemm_typed(ctx, DT_F32, count, ta, tb, M, N, K, alpha, A, lda, sa, B, ldb, sb, beta, C, ldc, sc, bias);
}

static void cuda_op_gemm(ts_ctx *ctx, bool ta, bool tb, int M, int N, int K, float alpha, const float *A, int lda,
                         const float *B, int ldb, float beta, float *C, int ldc) {
    note(ctx, gemm_f32(ctx, 1, ta, tb, M, N, K, alpha, A, lda, 0, B, ldb, 0, beta, C, ldc, 0, NULL));
}

static void cuda_op_gemm_batched(ts_ctx *ctx, int count, bool ta, bool tb, int M, int N, int K, float alpha, const float *A,
                                 int lda, int64_t sa, const float *B, int ldb, int64_t sb, float beta, float *C, int ldc,
                                 int64_t sc) {
    note(ctx, gemm_f32(ctx, count, ta, tb, M, N, K, alpha, A, lda, sa, B, ldb, sb, beta, C, ldc, sc, NULL));
}

static int cuda_op_linear(ts_ctx *ctx, float *y, const float *x, int64_t rows, const tensor *W, const tensor *b) {
    if (!W || W->ndim != 2) return ts_fail("linear: W must be 2-D");
    int out = (int)W->shape[0], in = (int)W->shape[1];
    if (b && b->data && tensor_numel(b) != out) return ts_fail("linear: bias has %lld values for %d outputs",
                                                                (long long)tensor_numel(b), out);
    dtype ab = cuda_of(ctx)->compute;
    const void *w = weight_as(ctx, W, "linear", ab);
    const float *bias = b && b->data ? weight_dev(ctx, b, "linear") : NULL;
    if (!w || (b && b->data && !bias)) return -1;
    const void *xa = activation_as(ctx, x, rows * in);
    if (!xa) return -1;
    int rc = gemm_typed(ctx, ab, 1, false, true, (int)rows, out, in, 1, xa, in, 0, w, in, 0, 0, y, out, 0, bias);
    activation_done(ctx, x, xa);
    return rc;
}

static int cuda_op_weight_gemm(ts_ctx *ctx, const tensor *W, const weight_gemm_params *p) {
    if (!W || W->ndim < 2) return ts_fail("weight_gemm: W must be at least 2-D");
    if (p->fill_bias) return ts_fail("weight_gemm: fill_bias is not implemented by backend 'cuda'");
    int rows = (int)W->shape[0];
    if (tensor_numel(W) != (int64_t)rows * p->K)
        return ts_fail("weight_gemm: W has %lld values, not %d x %d", (long long)tensor_numel(W), rows, p->K);
    dtype ab = cuda_of(ctx)->compute;
    const void *w = weight_as(ctx, W, "weight_gemm", ab);
    if (!w) return -1;
    /* the X of every image, converted to the compute type as one span (gaps included) */
    int count = p->count > 0 ? p->count : 1;
    bool x_rows_k = p->weight_left != p->trans_x;   /* X_i stored [K, other] (else [other, K]) */
    int64_t span = (int64_t)((x_rows_k ? p->K : p->other) - 1) * p->ldx + (x_rows_k ? p->other : p->K);
    span += (int64_t)(count - 1) * p->x_stride;
    const void *xa = activation_as(ctx, p->X, span);
    if (!xa) return -1;
    size_t es = dtype_size(ab);
    /* one product per image: the weight is shared, and a batch stride of 0 is not something
     * to count on from cuBLASLt */
    int rc = 0;
    for (int i = 0; i < count && rc == 0; i++) {
        const void *X = (const char *)xa + (size_t)i * (size_t)p->x_stride * es;
        float *C = p->C + (int64_t)i * p->c_stride;
        if (p->weight_left)   /* C_i [rows, other] = W [rows, K] op(X_i) */
            rc = gemm_typed(ctx, ab, 1, false, p->trans_x, rows, p->other, p->K, 1, w, p->K, 0, X, p->ldx, 0, p->beta, C,
                            p->ldc, 0, NULL);
        else                  /* C_i [other, rows] = op(X_i) [other, K] W^T */
            rc = gemm_typed(ctx, ab, 1, p->trans_x, true, p->other, rows, p->K, 1, X, p->ldx, 0, w, p->K, 0, p->beta, C,
                            p->ldc, 0, NULL);
    }
    activation_done(ctx, p->X, xa);
    return rc;
}

static void cuda_op_qmatmul(ts_ctx *ctx, float *y, const float *x, int64_t n, const qmatrix *W) {
    dtype ab = cuda_of(ctx)->compute;
    const void *w = qmatrix_dev(ctx, W, ab), *xa = w ? activation_as(ctx, x, n * W->cols) : NULL;
    note(ctx, !xa || gemm_typed(ctx, ab, 1, false, true, (int)n, (int)W->rows, (int)W->cols, 1, xa, (int)W->cols, 0, w,
                                (int)W->cols, 0, 0, y, (int)W->rows, 0, NULL));
    if (xa) activation_done(ctx, x, xa);
}

static void cuda_op_qmatrix_gather(ts_ctx *ctx, float *out, const qmatrix *W, const int *rows, int n) {
    /* a few rows (the tokens of a step): dequantized on the host, not the whole table */
    float *host = ts_malloc((size_t)n * (size_t)W->cols * sizeof(float));
    for (int i = 0; i < n; i++) qmatrix_row(W, rows[i], host + (size_t)i * W->cols);
    note(ctx, cuda_upload(cu(ctx), out, host, (size_t)n * (size_t)W->cols * sizeof(float)));
    free(host);
}

/* ---- convolution and normalisation -------------------------------------------------- */

static int cuda_op_conv2d(ts_ctx *ctx, float *out, const float *x, int N, int C, int H, int W, const tensor *weight,
                          const tensor *bias, conv2d_params p) {
    if (!weight || weight->ndim != 4) return ts_fail("conv2d: weight must be 4-D [OC, C/groups, KH, KW]");
    int sh = p.stride_h > 0 ? p.stride_h : 1, sw = p.stride_w > 0 ? p.stride_w : 1;
    if (sh != sw || p.pad_h != p.pad_w)
        return ts_fail("conv2d: cuda takes one stride and one padding for both axes (%dx%d, %dx%d)", sh, sw, p.pad_h, p.pad_w);
    int groups = p.groups > 1 ? p.groups : 1;
    if ((int64_t)weight->shape[1] * groups != C)
        return ts_fail("conv2d: weight has %lld input channels per group, input %d channels in %d groups",
                       (long long)weight->shape[1], C, groups);
    dtype ab = cuda_of(ctx)->compute;
    const void *w = weight_as(ctx, weight, "conv2d", ab);
    const float *b = bias && bias->data ? weight_dev(ctx, bias, "conv2d") : NULL;
    if (!w || (bias && bias->data && !b)) return -1;
    cuda_conv_params cp = {.N = N, .H = H, .W = W, .C = C, .OC = (int)weight->shape[0], .KH = (int)weight->shape[2],
                           .KW = (int)weight->shape[3], .stride = sh, .pad = p.pad_h, .groups = groups, .type = ab,
                           .nchw = true};
    if (ab == DT_F32) return cuda_conv2d(cu(ctx), out, x, w, b, &cp);
    /* reduced precision: input and output in the compute type around cuDNN (F32
     * accumulation inside), then back to F32 with the bias added there */
    int OH, OW;
    cuda_conv2d_out_size(&cp, &OH, &OW);
    int64_t n_out = (int64_t)N * cp.OC * OH * OW;
    const void *xa = activation_as(ctx, x, (int64_t)N * C * H * W);
    void *ya = xa ? cuda_malloc(cu(ctx), (size_t)n_out * dtype_size(ab)) : NULL;
    int rc = !ya || cuda_conv2d(cu(ctx), ya, xa, w, NULL, &cp) || cuda_convert(cu(ctx), out, DT_F32, ya, ab, n_out) ||
             (b && cuda_add_channel_bias_nchw(cu(ctx), out, N, cp.OC, (int64_t)OH * OW, b, false));
    cuda_free(cu(ctx), ya);
    if (xa) activation_done(ctx, x, xa);
    return rc ? -1 : 0;
}

static int cuda_op_group_norm(ts_ctx *ctx, float *out, const float *x, int N, int C, int64_t HW, int groups,
                              const tensor *gamma, const tensor *beta, float eps) {
    const float *g = gamma && gamma->data ? weight_dev(ctx, gamma, "group_norm") : NULL;
    const float *b = beta && beta->data ? weight_dev(ctx, beta, "group_norm") : NULL;
    if ((gamma && gamma->data && !g) || (beta && beta->data && !b)) return -1;
    return cuda_group_norm_nchw(cu(ctx), out, x, N, C, HW, groups, g, b, eps);
}

static int cuda_op_layer_norm(ts_ctx *ctx, float *out, const float *x, int64_t rows, int dim, const tensor *gamma,
                              const tensor *beta, float eps) {
    const float *g = gamma && gamma->data ? weight_dev(ctx, gamma, "layer_norm") : NULL;
    const float *b = beta && beta->data ? weight_dev(ctx, beta, "layer_norm") : NULL;
    if ((gamma && gamma->data && !g) || (beta && beta->data && !b)) return -1;
    return cuda_layer_norm(cu(ctx), out, x, DT_F32, rows, dim, g, b, eps);
}

static int cuda_op_rms_norm(ts_ctx *ctx, float *out, const float *x, int64_t rows, int dim, const tensor *weight, float eps) {
    const float *w = weight_dev(ctx, weight, "rms_norm");
    if (!w) return ts_fail_wrap("rms_norm: a weight is required");
    return cuda_rms_norm(cu(ctx), out, x, rows, dim, w, eps);
}

/* ---- activations and element-wise ------------------------------------------------------ */

static void cuda_op_softmax_rows(ts_ctx *ctx, float *x, int64_t rows, int n) { note(ctx, cuda_softmax_rows(cu(ctx), x, rows, n)); }

static void cuda_op_unary(ts_ctx *ctx, unary_op op, float *out, const float *x, int64_t n) {
    static const cuda_map maps[] = {[UNARY_SILU] = CUDA_MAP_SILU, [UNARY_GELU_ERF] = CUDA_MAP_GELU_ERF,
                                    [UNARY_GELU_TANH] = CUDA_MAP_GELU_TANH, [UNARY_QUICK_GELU] = CUDA_MAP_QUICK_GELU,
                                    [UNARY_RELU] = CUDA_MAP_RELU};
    note(ctx, cuda_map_f32(cu(ctx), maps[op], out, x, n, 0, 0));
}

static void cuda_op_clamp(ts_ctx *ctx, float *out, const float *x, int64_t n, float lo, float hi) {
    note(ctx, cuda_map_f32(cu(ctx), CUDA_MAP_CLAMP, out, x, n, lo, hi));
}
static void cuda_op_scaled_tanh(ts_ctx *ctx, float *out, const float *x, int64_t n, float s) {
    note(ctx, cuda_map_f32(cu(ctx), CUDA_MAP_SCALED_TANH, out, x, n, s, 0));
}
static void cuda_op_geglu(ts_ctx *ctx, float *out, const float *x, int64_t rows, int dim) {
    note(ctx, cuda_geglu(cu(ctx), out, x, DT_F32, rows, dim));
}
static void cuda_op_swiglu(ts_ctx *ctx, float *out, const float *gate, const float *up, int64_t rows, int dim) {
    note(ctx, cuda_swiglu(cu(ctx), out, gate, up, rows * dim));
}
static void cuda_op_add_inplace(ts_ctx *ctx, float *x, const float *y, int64_t n) {
    note(ctx, cuda_add(cu(ctx), x, x, y, DT_F32, n));
}
static void cuda_op_scale_inplace(ts_ctx *ctx, float *x, float s, int64_t n) {
    note(ctx, cuda_map_f32(cu(ctx), CUDA_MAP_AFFINE, x, x, n, s, 0));
}
static void cuda_op_affine(ts_ctx *ctx, float *x, int64_t n, float scale, float shift) {
    note(ctx, cuda_map_f32(cu(ctx), CUDA_MAP_AFFINE, x, x, n, scale, shift));
}
static void cuda_op_fill(ts_ctx *ctx, float *x, float v, int64_t n) {
    note(ctx, cuda_map_f32(cu(ctx), CUDA_MAP_FILL, x, x, n, v, 0));
}

static void cuda_op_add_row_bias(ts_ctx *ctx, float *x, int64_t rows, int dim, const tensor *b) {
    if (!b || !b->data) return;
    const float *bias = weight_dev(ctx, b, "add_row_bias");
    note(ctx, !bias || cuda_add_bias(cu(ctx), x, bias, DT_F32, 1, rows, dim));
}

static int cuda_op_add_channel_bias(ts_ctx *ctx, float *x, int N, int C, int64_t HW, const tensor *b) {
    bool per_image = b && b->ndim == 2;
    if (!b || !((b->ndim == 1 && b->shape[0] == C) || (per_image && b->shape[0] == N && b->shape[1] == C)))
        return ts_fail("add_channel_bias: bias is neither [%d] nor [%d, %d]", C, N, C);
    /* a per-image bias is usually an activation (a time embedding) already on the device */
    const float *dev = weight_dev(ctx, b, "add_channel_bias");
    if (!dev) return -1;
    return cuda_add_channel_bias_nchw(cu(ctx), x, N, C, HW, dev, per_image);
}

/* ---- layout -------------------------------------------------------------------------------- */

static void cuda_op_upsample(ts_ctx *ctx, float *out, const float *x, int N, int C, int H, int W) {
    note(ctx, cuda_upsample_nearest2x_nchw(cu(ctx), out, x, N, C, H, W));
}
static void cuda_op_nchw_to_nhwc(ts_ctx *ctx, float *out, const float *x, int N, int C, int64_t HW) {
    note(ctx, cuda_nchw_to_nhwc(cu(ctx), out, x, DT_F32, N, C, HW));
}
static void cuda_op_nhwc_to_nchw(ts_ctx *ctx, float *out, const float *x, int N, int C, int64_t HW) {
    note(ctx, cuda_nhwc_to_nchw(cu(ctx), out, x, DT_F32, N, C, HW));
}
static void cuda_op_copy_strided(ts_ctx *ctx, float *dst, const int64_t *ds, const float *src, const int64_t *ss,
                                 const int64_t *shape) {
    note(ctx, cuda_copy_strided(cu(ctx), dst, ds, src, ss, shape));
}
static void cuda_op_crossfade(ts_ctx *ctx, float *b, int64_t b_plane, int64_t b_row, const float *a, int64_t a_plane,
                              int64_t a_row, int planes, int rows, int cols, int extent, bool along_rows) {
    note(ctx, cuda_crossfade(cu(ctx), b, b_plane, b_row, a, a_plane, a_row, planes, rows, cols, extent, along_rows));
}
static void cuda_op_rgb8(ts_ctx *ctx, uint8_t *rgb, const float *image, int C, int64_t hw, float scale, float offset) {
    note(ctx, cuda_rgb8_from_planes(cu(ctx), rgb, image, C, hw, scale, offset));
}
static void cuda_op_copy(ts_ctx *ctx, float *dst, const float *src, int64_t n) {
    if (n > 0) note(ctx, cuda_copy(cu(ctx), dst, src, (size_t)n * sizeof(float)));
}

static int cuda_op_gather_rows(ts_ctx *ctx, float *out, const tensor *table, const int32_t *rows, int n) {
    if (!table || table->ndim != 2) return ts_fail("gather_rows: the table must be 2-D");
    int64_t V = table->shape[0];
    int D = (int)table->shape[1];
    if (rows)
        for (int i = 0; i < n; i++)
            if (rows[i] < 0 || rows[i] >= V) return ts_fail("gather_rows: row %d at %d is outside a table of %lld", rows[i], i, (long long)V);
    if (!rows && n > V) return ts_fail("gather_rows: %d rows of a table of %lld", n, (long long)V);
    const float *t = weight_dev(ctx, table, "gather_rows");
    if (!t) return -1;
    int32_t *d_rows = rows ? host_to_device(ctx, rows, (size_t)n * sizeof *rows) : NULL;
    if (rows && !d_rows) return -1;
    int rc = cuda_gather_rows(cu(ctx), out, t, V, D, d_rows, n);
    cuda_free(cu(ctx), d_rows);
    return rc;
}

static void cuda_op_timestep_embedding(ts_ctx *ctx, float *out, const float *t, int n, int dim, bool flip, float shift) {
    float *d_t = host_to_device(ctx, t, (size_t)n * sizeof *t);   /* t is host memory (ops.h) */
    note(ctx, !d_t || cuda_timestep_embedding(cu(ctx), out, d_t, n, dim, flip, shift));
    cuda_free(cu(ctx), d_t);
}

/* ---- attention ------------------------------------------------------------------------------- */

/* Attention the flash kernel does not take (head_dim > 256, as the VAE's single 512-wide
 * head; an additive mask): scores materialised a block of queries at a time, S = scale Q K^T
 * (+ mask), softmax by rows, O = S V, per batch and head, as two GEMMs. */
static int attention_by_gemm(ts_ctx *ctx, float *out, const float *q, const float *k, const float *v, attention_params p) {
    if (p.causal) return ts_fail("attention: causal with head_dim %d (> 256) is not implemented by backend 'cuda'", p.head_dim);
    int heads = p.heads, kvh = p.kv_heads > 0 ? p.kv_heads : heads, d = p.head_dim;
    int64_t qs = p.q_stride ? p.q_stride : (int64_t)heads * d, ks = p.k_stride ? p.k_stride : (int64_t)kvh * d;
    int64_t vs = p.v_stride ? p.v_stride : (int64_t)kvh * d, os = (int64_t)heads * d;
    float scale = p.scale != 0 ? p.scale : 1.0f / sqrtf((float)d);
    /* at most 4 M scores at once (16 MB): never the whole [n_q, n_kv] matrix at 512x512 and up */
    int64_t block = ((int64_t)1 << 22) / (p.n_kv > 0 ? p.n_kv : 1);
    if (block < 1) block = 1;
    if (block > p.n_q) block = p.n_q;
    float *scores = cuda_malloc(cu(ctx), (size_t)block * (size_t)p.n_kv * sizeof(float));
    if (!scores) return -1;
    int rc = 0;
    for (int b = 0; b < p.batch && rc == 0; b++)
        for (int h = 0; h < heads && rc == 0; h++) {
            int g = h / (heads / kvh);
            const float *qb = q + (int64_t)b * p.n_q * qs + (int64_t)h * d;
            const float *kb = k + (int64_t)b * p.n_kv * ks + (int64_t)g * d;
            const float *vb = v + (int64_t)b * p.n_kv * vs + (int64_t)g * d;
            float *ob = out + (int64_t)b * p.n_q * os + (int64_t)h * d;
            for (int64_t q0 = 0; q0 < p.n_q && rc == 0; q0 += block) {
                int rows = (int)(p.n_q - q0 < block ? p.n_q - q0 : block);
                rc = gemm_f32(ctx, 1, false, true, rows, (int)p.n_kv, d, scale, qb + q0 * qs, (int)qs, 0, kb, (int)ks, 0, 0,
                              scores, (int)p.n_kv, 0, NULL);
                if (rc == 0 && p.mask)
                    rc = cuda_add(cu(ctx), scores, scores, p.mask + q0 * p.n_kv, DT_F32, (int64_t)rows * p.n_kv);
                if (rc == 0) rc = cuda_softmax_rows(cu(ctx), scores, rows, (int)p.n_kv);
                if (rc == 0)
                    rc = gemm_f32(ctx, 1, false, false, rows, d, (int)p.n_kv, 1, scores, (int)p.n_kv, 0, vb, (int)vs, 0, 0,
                                  ob + q0 * os, (int)os, 0, NULL);
            }
        }
    cuda_free(cu(ctx), scores);
    return rc;
}

static void cuda_op_attention(ts_ctx *ctx, float *out, const float *q, const float *k, const float *v, attention_params p) {
    if (p.mask || p.head_dim > 256) {
        note(ctx, attention_by_gemm(ctx, out, q, k, v, p));
        return;
    }
    cuda_attention_params a = {.batch = p.batch, .heads = p.heads, .kv_heads = p.kv_heads, .head_dim = p.head_dim,
                               .n_q = p.n_q, .n_kv = p.n_kv, .q_stride = p.q_stride, .k_stride = p.k_stride,
                               .v_stride = p.v_stride, .scale = p.scale, .causal = p.causal, .type = DT_F32};
    note(ctx, cuda_attention(cu(ctx), out, q, k, v, &a));
}

static void cuda_op_rope(ts_ctx *ctx, float *x, int64_t ld, int rows, int heads, int head_dim, const int *pos,
                         const float *inv_freq, bool neox) {
    int *d_pos = host_to_device(ctx, pos, (size_t)rows * sizeof *pos);   /* host values (ops.h) */
    float *d_freq = host_to_device(ctx, inv_freq, (size_t)(head_dim / 2) * sizeof *inv_freq);
    note(ctx, !d_pos || !d_freq || cuda_rope(cu(ctx), x, ld, rows, heads, head_dim, d_pos, d_freq, neox));
    cuda_free(cu(ctx), d_pos);
    cuda_free(cu(ctx), d_freq);
}

static void cuda_op_attention_kv(ts_ctx *ctx, float *out, const float *q, const float *k_cache, const float *v_cache,
                                 kv_attention_params p) {
    int *d_seqs = host_to_device(ctx, p.seqs, (size_t)p.n * sizeof(int));   /* host values (ops.h) */
    int *d_pos = host_to_device(ctx, p.pos, (size_t)p.n * sizeof(int));
    note(ctx, !d_seqs || !d_pos ||
                  cuda_attention_kv(cu(ctx), out, q, k_cache, v_cache, p.n, p.heads, p.kv_heads, p.head_dim, d_seqs, d_pos,
                                    p.seq_stride, p.row_stride, p.max_ctx, p.scale));
    cuda_free(cu(ctx), d_seqs);
    cuda_free(cu(ctx), d_pos);
}

static int cuda_set_compute_type(ts_ctx *ctx, dtype t) {
    if (t != DT_F32 && t != DT_F16 && t != DT_BF16)
        return ts_fail("cuda: compute type %s (F32, F16 or BF16)", dtype_name(t));
    cuda_of(ctx)->compute = t;
    return 0;
}

/* ---- the table ----------------------------------------------------------------------------------- */

const ts_backend ts_backend_cuda = {
    .name = "cuda",
    .host_memory = false,
    .context_init = cuda_context_init,
    .context_free = cuda_context_free,
    .threads = cuda_threads,
    .synchronize = cuda_sync,
    .alloc = cuda_alloc,
    .free = cuda_release,
    .upload = cuda_up,
    .download = cuda_down,
    .set_compute_type = cuda_set_compute_type,
    .device_stream = cuda_device_stream,
    .ops = {
        .gemm = cuda_op_gemm,
        .gemm_batched = cuda_op_gemm_batched,
        .linear = cuda_op_linear,
        .weight_gemm = cuda_op_weight_gemm,
        .qmatmul = cuda_op_qmatmul,
        .qmatrix_gather = cuda_op_qmatrix_gather,
        .conv2d = cuda_op_conv2d,
        .group_norm = cuda_op_group_norm,
        .layer_norm = cuda_op_layer_norm,
        .rms_norm = cuda_op_rms_norm,
        .softmax_rows = cuda_op_softmax_rows,
        .unary = cuda_op_unary,
        .clamp = cuda_op_clamp,
        .scaled_tanh = cuda_op_scaled_tanh,
        .geglu = cuda_op_geglu,
        .swiglu = cuda_op_swiglu,
        .add_inplace = cuda_op_add_inplace,
        .scale_inplace = cuda_op_scale_inplace,
        .affine = cuda_op_affine,
        .add_row_bias = cuda_op_add_row_bias,
        .add_channel_bias = cuda_op_add_channel_bias,
        .upsample_nearest2x = cuda_op_upsample,
        .nchw_to_nhwc = cuda_op_nchw_to_nhwc,
        .nhwc_to_nchw = cuda_op_nhwc_to_nchw,
        .copy_strided = cuda_op_copy_strided,
        .crossfade = cuda_op_crossfade,
        .rgb8_from_planes = cuda_op_rgb8,
        .copy = cuda_op_copy,
        .gather_rows = cuda_op_gather_rows,
        .fill = cuda_op_fill,
        .timestep_embedding = cuda_op_timestep_embedding,
        .attention = cuda_op_attention,
        .attention_kv = cuda_op_attention_kv,
        .rope = cuda_op_rope,
    },
};
