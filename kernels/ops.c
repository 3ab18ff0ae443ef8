/*
 * ops.c — every op of ops.h, forwarded to the backend of its context (backend_impl.h).
 * An op the backend does not have fails with a message naming both; one that returns void
 * records the failure, which the caller then sees from ts_ctx_synchronize.
 */
#include "kernels/backend_impl.h"

static int missing(ts_ctx *ctx, const char *op) {
    ctx->failed = true;
    return ts_fail("op '%s' is not implemented by backend '%s'", op, ctx->backend->name);
}

/* Calls ctx's op NAME with the arguments, or fails (int ops) / records the failure (void ops). */
#define CALL_INT(NAME, ...) \
    return ctx->backend->ops.NAME ? ctx->backend->ops.NAME(ctx, __VA_ARGS__) : missing(ctx, #NAME)
#define CALL_VOID(NAME, ...)                                            \
    do {                                                                \
        if (ctx->backend->ops.NAME) ctx->backend->ops.NAME(ctx, __VA_ARGS__); \
        else missing(ctx, #NAME);                                       \
    } while (0)

void gemm(ts_ctx *ctx, bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A, int lda,
          const float *B, int ldb, float beta, float *C, int ldc) {
    CALL_VOID(gemm, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void gemm_batched(ts_ctx *ctx, int count, bool trans_a, bool trans_b, int M, int N, int K, float alpha,
                  const float *A, int lda, int64_t stride_a, const float *B, int ldb, int64_t stride_b, float beta,
                  float *C, int ldc, int64_t stride_c) {
    CALL_VOID(gemm_batched, count, trans_a, trans_b, M, N, K, alpha, A, lda, stride_a, B, ldb, stride_b, beta, C, ldc,
              stride_c);
}

int linear(ts_ctx *ctx, float *y, const float *x, int64_t rows, const tensor *W, const tensor *b) {
    CALL_INT(linear, y, x, rows, W, b);
}

int weight_gemm(ts_ctx *ctx, const tensor *W, const weight_gemm_params *p) { CALL_INT(weight_gemm, W, p); }
void qmatmul(ts_ctx *ctx, float *y, const float *x, int64_t n, const struct qmatrix *W) { CALL_VOID(qmatmul, y, x, n, W); }

int conv2d(ts_ctx *ctx, float *out, const float *x, int N, int C, int H, int W, const tensor *weight,
           const tensor *bias, conv2d_params p) {
    CALL_INT(conv2d, out, x, N, C, H, W, weight, bias, p);
}

void conv2d_out_size(int H, int W, const tensor *weight, conv2d_params p, int *OH, int *OW) {
    int KH = (int)weight->shape[2], KW = (int)weight->shape[3];
    int sh = p.stride_h > 0 ? p.stride_h : 1, sw = p.stride_w > 0 ? p.stride_w : 1;
    *OH = (H + 2 * p.pad_h - KH) / sh + 1;
    *OW = (W + 2 * p.pad_w - KW) / sw + 1;
}

int group_norm(ts_ctx *ctx, float *out, const float *x, int N, int C, int64_t HW, int groups, const tensor *gamma,
               const tensor *beta, float eps) {
    CALL_INT(group_norm, out, x, N, C, HW, groups, gamma, beta, eps);
}

int layer_norm(ts_ctx *ctx, float *out, const float *x, int64_t rows, int dim, const tensor *gamma, const tensor *beta,
               float eps) {
    CALL_INT(layer_norm, out, x, rows, dim, gamma, beta, eps);
}

int rms_norm(ts_ctx *ctx, float *out, const float *x, int64_t rows, int dim, const tensor *weight, float eps) {
    CALL_INT(rms_norm, out, x, rows, dim, weight, eps);
}

void softmax_rows(ts_ctx *ctx, float *x, int64_t rows, int n) { CALL_VOID(softmax_rows, x, rows, n); }
void silu(ts_ctx *ctx, float *out, const float *x, int64_t n) { CALL_VOID(unary, UNARY_SILU, out, x, n); }
void gelu_erf(ts_ctx *ctx, float *out, const float *x, int64_t n) { CALL_VOID(unary, UNARY_GELU_ERF, out, x, n); }
void gelu_tanh(ts_ctx *ctx, float *out, const float *x, int64_t n) { CALL_VOID(unary, UNARY_GELU_TANH, out, x, n); }
void quick_gelu(ts_ctx *ctx, float *out, const float *x, int64_t n) { CALL_VOID(unary, UNARY_QUICK_GELU, out, x, n); }
void relu(ts_ctx *ctx, float *out, const float *x, int64_t n) { CALL_VOID(unary, UNARY_RELU, out, x, n); }
void clamp(ts_ctx *ctx, float *out, const float *x, int64_t n, float lo, float hi) { CALL_VOID(clamp, out, x, n, lo, hi); }
void scaled_tanh(ts_ctx *ctx, float *out, const float *x, int64_t n, float s) { CALL_VOID(scaled_tanh, out, x, n, s); }
void geglu(ts_ctx *ctx, float *out, const float *x, int64_t rows, int dim) { CALL_VOID(geglu, out, x, rows, dim); }
void swiglu(ts_ctx *ctx, float *out, const float *gate, const float *up, int64_t rows, int dim) {
    CALL_VOID(swiglu, out, gate, up, rows, dim);
}

int tensor_add(ts_ctx *ctx, tensor *out, const tensor *a, const tensor *b) { CALL_INT(binary, false, out, a, b); }
int tensor_mul(ts_ctx *ctx, tensor *out, const tensor *a, const tensor *b) { CALL_INT(binary, true, out, a, b); }
void add_inplace(ts_ctx *ctx, float *x, const float *y, int64_t n) { CALL_VOID(add_inplace, x, y, n); }
void scale_inplace(ts_ctx *ctx, float *x, float s, int64_t n) { CALL_VOID(scale_inplace, x, s, n); }
void affine(ts_ctx *ctx, float *x, int64_t n, float scale, float shift) { CALL_VOID(affine, x, n, scale, shift); }
void add_row_bias(ts_ctx *ctx, float *x, int64_t rows, int dim, const tensor *b) {
    CALL_VOID(add_row_bias, x, rows, dim, b);
}
int add_channel_bias(ts_ctx *ctx, float *x, int N, int C, int64_t HW, const tensor *b) {
    CALL_INT(add_channel_bias, x, N, C, HW, b);
}
void fill(ts_ctx *ctx, float *x, float v, int64_t n) { CALL_VOID(fill, x, v, n); }

void upsample_nearest2x(ts_ctx *ctx, float *out, const float *x, int N, int C, int H, int W) {
    CALL_VOID(upsample_nearest2x, out, x, N, C, H, W);
}
int tensor_concat(ts_ctx *ctx, tensor *out, const tensor *parts, int count, int dim) {
    CALL_INT(concat, out, parts, count, dim);
}
void nchw_to_nhwc(ts_ctx *ctx, float *out, const float *x, int N, int C, int64_t HW) {
    CALL_VOID(nchw_to_nhwc, out, x, N, C, HW);
}
void nhwc_to_nchw(ts_ctx *ctx, float *out, const float *x, int N, int C, int64_t HW) {
    CALL_VOID(nhwc_to_nchw, out, x, N, C, HW);
}
void copy_strided(ts_ctx *ctx, float *dst, const int64_t ds[3], const float *src, const int64_t ss[3],
                  const int64_t shape[3]) {
    CALL_VOID(copy_strided, dst, ds, src, ss, shape);
}
void copy_2d(ts_ctx *ctx, float *dst, int64_t ld_dst, const float *src, int64_t ld_src, int64_t rows, int64_t cols) {
    copy_strided(ctx, dst, (const int64_t[3]){0, ld_dst, 1}, src, (const int64_t[3]){0, ld_src, 1},
                 (const int64_t[3]){1, rows, cols});
}
void crossfade(ts_ctx *ctx, float *b, int64_t b_plane, int64_t b_row, const float *a, int64_t a_plane, int64_t a_row,
               int planes, int rows, int cols, int extent, bool along_rows) {
    CALL_VOID(crossfade, b, b_plane, b_row, a, a_plane, a_row, planes, rows, cols, extent, along_rows);
}
void rgb8_from_planes(ts_ctx *ctx, uint8_t *rgb, const float *image, int C, int64_t hw, float scale, float offset) {
    CALL_VOID(rgb8_from_planes, rgb, image, C, hw, scale, offset);
}
int gather_rows(ts_ctx *ctx, float *out, const tensor *table, const int32_t *rows, int n) {
    CALL_INT(gather_rows, out, table, rows, n);
}
void copy_floats(ts_ctx *ctx, float *dst, const float *src, int64_t n) { CALL_VOID(copy, dst, src, n); }
void timestep_embedding(ts_ctx *ctx, float *out, const float *t, int n, int dim, bool flip, float shift) {
    CALL_VOID(timestep_embedding, out, t, n, dim, flip, shift);
}

void attention(ts_ctx *ctx, float *out, const float *q, const float *k, const float *v, attention_params p) {
    CALL_VOID(attention, out, q, k, v, p);
}
void attention_kv(ts_ctx *ctx, float *out, const float *q, const float *k_cache, const float *v_cache,
                  kv_attention_params p) {
    CALL_VOID(attention_kv, out, q, k_cache, v_cache, p);
}
void rope(ts_ctx *ctx, float *x, int64_t ld, int rows, int heads, int head_dim, const int *pos, const float *inv_freq,
          bool neox) {
    CALL_VOID(rope, x, ld, rows, heads, head_dim, pos, inv_freq, neox);
}
void qmatrix_gather(ts_ctx *ctx, float *out, const struct qmatrix *W, const int *rows, int n) {
    CALL_VOID(qmatrix_gather, out, W, rows, n);
}
