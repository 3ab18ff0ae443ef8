/*
 * cpu.h — the CPU backend's insides, shared by its op files (not part of the public API):
 * the context's state (threads, per-thread scratch, the convolution choice and weight
 * cache), the cpu_ ops the backend table (cpu_backend.c) points at, widening weights of any
 * dtype to float32, and vectorisable exp/erf.
 */
#ifndef TESSERA_CPU_H
#define TESSERA_CPU_H

#include "kernels/backend_impl.h"

#ifdef __clang__
/* clang at -O1 (the sanitizer build) skips vectorisation and would warn at every `omp simd`. */
#pragma clang diagnostic ignored "-Wpass-failed"
#endif

/* Scratch slots: one op can hold several at once. Slot 5: oneDNN scratchpads (conv_dnnl.c);
 * 6, 7: widened weight blocks (weight_gemm.c). */
#define SCRATCH_SLOTS 8

typedef struct { float *data; size_t capacity; } cpu_scratch_slot;
typedef struct cpu_weight_cache cpu_weight_cache;   /* conv_dnnl.c */
typedef struct check_memory check_memory;           /* check_backend.c */

/* ts_ctx->impl of a CPU context. */
typedef struct {
    int threads;                         /* every parallel region of this context's ops */
    int scratch_threads;                 /* rows of scratch: threads, or more if a caller's region is wider */
    cpu_scratch_slot *scratch;           /* [scratch_threads][SCRATCH_SLOTS] */
    conv2d_backend conv_backend;         /* AUTO unless set */
    cpu_weight_cache *conv_weights;      /* conv2d_weight_cache; NULL when off */
    int force_split;                     /* tests: weight_gemm's two ways of sharing out (cpu_debug_force_split) */
    check_memory *check;                 /* the `check` backend's allocations (check_backend.c); NULL on cpu */
} cpu_ctx;

static inline cpu_ctx *cpu_of(const ts_ctx *ctx) { return (cpu_ctx *)ctx->impl; }
static inline int cpu_threads(const ts_ctx *ctx) { return cpu_of(ctx)->threads; }

/* The calling thread's growable, 64-byte aligned scratch in the context: a row per thread of
 * the context's parallel regions (the thread number in the outermost active region), so two
 * threads never share one and two contexts never do. Contents are undefined on return. */
float *cpu_scratch(ts_ctx *ctx, int slot, size_t count);

/* The float32 data of a weight vector/matrix of any dtype: the tensor's own memory when
 * it is contiguous F32, else a widened copy in scratch slot `slot`. NULL if t is NULL. */
const float *weight_f32(ts_ctx *ctx, const tensor *t, int slot);

/* Number of elements a weight must have, checked with a clear message. */
int check_weight(const tensor *t, int64_t numel, const char *op, const char *what);

/* The convolution backends, on float32 weights already widened (conv.c, conv_dnnl.c). */
int conv2d_im2col(ts_ctx *ctx, float *out, const float *x, int N, int C, int H, int W,
                  const float *w, const float *bias, int OC, int KH, int KW, conv2d_params p);
int conv2d_dnnl(ts_ctx *ctx, float *out, const float *x, int N, int C, int H, int W,
                const tensor *weight, const float *bias, int OC, int KH, int KW, conv2d_params p);
/* 3x3 stride-1 pad-1 ungrouped convolutions by Winograd F(2x2, 3x3) (conv_winograd.c); the
 * weight contiguous, of any dtype conv2d takes. */
int conv2d_winograd(ts_ctx *ctx, float *out, const float *x, int N, int C, int H, int W, const tensor *w,
                    const float *bias, int OC);
/* The U-Net's path for few positions per weight: im2col over the whole batch, then blocked
 * weight products (conv.c). */
int conv2d_blocked(ts_ctx *ctx, float *out, const float *x, int B, int C, int H, int W, const tensor *weight,
                   const tensor *bias, int stride, int pad);
void cpu_weight_cache_free(cpu_weight_cache **self);

/* ---- the ops (ops.h's, on this backend) ---- */
void cpu_gemm(ts_ctx *ctx, bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc);
void cpu_gemm_batched(ts_ctx *ctx, int count, bool trans_a, bool trans_b, int M, int N, int K, float alpha,
                      const float *A, int lda, int64_t stride_a, const float *B, int ldb, int64_t stride_b, float beta,
                      float *C, int ldc, int64_t stride_c);
int cpu_linear(ts_ctx *ctx, float *y, const float *x, int64_t rows, const tensor *W, const tensor *b);
int cpu_weight_gemm(ts_ctx *ctx, const tensor *W, const weight_gemm_params *p);
void cpu_qmatmul(ts_ctx *ctx, float *y, const float *x, int64_t n, const struct qmatrix *W);
void cpu_qmatrix_gather(ts_ctx *ctx, float *out, const struct qmatrix *W, const int *rows, int n);
int cpu_conv2d(ts_ctx *ctx, float *out, const float *x, int N, int C, int H, int W, const tensor *weight,
               const tensor *bias, conv2d_params p);
int cpu_group_norm(ts_ctx *ctx, float *out, const float *x, int N, int C, int64_t HW, int groups, const tensor *gamma,
                   const tensor *beta, float eps);
int cpu_layer_norm(ts_ctx *ctx, float *out, const float *x, int64_t rows, int dim, const tensor *gamma,
                   const tensor *beta, float eps);
int cpu_rms_norm(ts_ctx *ctx, float *out, const float *x, int64_t rows, int dim, const tensor *weight, float eps);
void cpu_softmax_rows(ts_ctx *ctx, float *x, int64_t rows, int n);
void cpu_unary(ts_ctx *ctx, unary_op op, float *out, const float *x, int64_t n);
void cpu_clamp(ts_ctx *ctx, float *out, const float *x, int64_t n, float lo, float hi);
void cpu_scaled_tanh(ts_ctx *ctx, float *out, const float *x, int64_t n, float s);
void cpu_geglu(ts_ctx *ctx, float *out, const float *x, int64_t rows, int dim);
void cpu_swiglu(ts_ctx *ctx, float *out, const float *gate, const float *up, int64_t rows, int dim);
int cpu_binary(ts_ctx *ctx, bool multiply, tensor *out, const tensor *a, const tensor *b);
void cpu_add_inplace(ts_ctx *ctx, float *x, const float *y, int64_t n);
void cpu_scale_inplace(ts_ctx *ctx, float *x, float s, int64_t n);
void cpu_affine(ts_ctx *ctx, float *x, int64_t n, float scale, float shift);
void cpu_add_row_bias(ts_ctx *ctx, float *x, int64_t rows, int dim, const tensor *b);
int cpu_add_channel_bias(ts_ctx *ctx, float *x, int N, int C, int64_t HW, const tensor *b);
void cpu_upsample_nearest2x(ts_ctx *ctx, float *out, const float *x, int N, int C, int H, int W);
int cpu_concat(ts_ctx *ctx, tensor *out, const tensor *parts, int count, int dim);
void cpu_nchw_to_nhwc(ts_ctx *ctx, float *out, const float *x, int N, int C, int64_t HW);
void cpu_nhwc_to_nchw(ts_ctx *ctx, float *out, const float *x, int N, int C, int64_t HW);
void cpu_copy_strided(ts_ctx *ctx, float *dst, const int64_t *ds, const float *src, const int64_t *ss, const int64_t *shape);
void cpu_crossfade(ts_ctx *ctx, float *b, int64_t b_plane, int64_t b_row, const float *a, int64_t a_plane, int64_t a_row,
                   int planes, int rows, int cols, int extent, bool along_rows);
void cpu_rgb8_from_planes(ts_ctx *ctx, uint8_t *rgb, const float *image, int C, int64_t hw, float scale, float offset);
void cpu_copy(ts_ctx *ctx, float *dst, const float *src, int64_t n);
int cpu_gather_rows(ts_ctx *ctx, float *out, const tensor *table, const int32_t *rows, int n);
void cpu_fill(ts_ctx *ctx, float *x, float v, int64_t n);
void cpu_timestep_embedding(ts_ctx *ctx, float *out, const float *t, int n, int dim, bool flip, float shift);
void cpu_attention(ts_ctx *ctx, float *out, const float *q, const float *k, const float *v, attention_params p);
void cpu_attention_kv(ts_ctx *ctx, float *out, const float *q, const float *k_cache, const float *v_cache,
                      kv_attention_params p);
void cpu_rope(ts_ctx *ctx, float *x, int64_t ld, int rows, int heads, int head_dim, const int *pos, const float *inv_freq,
              bool neox);
/* The backend AUTO resolves to when oneDNN is present, chosen by measurement (conv_dnnl.c). */
#define CONV_BACKEND_DEFAULT CONV_BACKEND_ONEDNN

/*
 * exp and erf that the compiler can vectorise. Hand-written because glibc's vector expf /
 * erff are only used under -ffast-math; these are a few lines each and accurate to a few
 * ulp (checked against torch in tests/unit/test_ops.c).
 *   ts_expf: 2^n * exp(r), n = round(x / ln 2), degree-7 Taylor on |r| <= ln2/2;
 *            0 below -87, inf above 88, NaN passes through.
 *   ts_expf_nonpositive: the same for x <= 0 (a softmax row less its max) with one clamp
 *            instead of two: a third fewer instructions in attention's exps.
 *   ts_erff: the rational approximation Eigen and XLA use on [-4, 4] (|erf| = 1 beyond).
 */
static inline float ts_expf_in_range(float xc) {            /* -87 <= xc <= 88 */
    float t = xc * 1.44269504088896341f + 12582912.0f;        /* 1.5 * 2^23 rounds to an integer */
    float n = t - 12582912.0f;
    uint32_t tb;
    __builtin_memcpy(&tb, &t, 4);
    uint32_t sb = (tb - 0x4B400000u + 127u) << 23;              /* 2^n as float bits */
    float r = (xc - n * 0.693145751953125f) - n * 1.428606765330187045e-06f;
    float p = 1.0f / 5040;
    p = p * r + 1.0f / 720;
    p = p * r + 1.0f / 120;
    p = p * r + 1.0f / 24;
    p = p * r + 1.0f / 6;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    float s;
    __builtin_memcpy(&s, &sb, 4);
    return p * s;
}

static inline float ts_expf(float x) {
    float y = ts_expf_in_range(x < -87.0f ? -87.0f : x > 88.0f ? 88.0f : x);
    return x < -87.0f ? 0.0f : x > 88.0f ? __builtin_inff() : y;
}

static inline float ts_expf_nonpositive(float x) {
    float y = ts_expf_in_range(x < -87.0f ? -87.0f : x);
    return x < -87.0f ? 0.0f : y;
}

static inline float ts_erff(float x) {
    float xc = x < -4.0f ? -4.0f : x > 4.0f ? 4.0f : x;
    float x2 = xc * xc;
    float p = x2 * -2.72614225801306e-10f + 2.77068142495902e-08f;
    p = p * x2 + -2.10102402082508e-06f;
    p = p * x2 + -5.69250639462346e-05f;
    p = p * x2 + -7.34990630326855e-04f;
    p = p * x2 + -2.95459980854025e-03f;
    p = p * x2 + -1.60960333262415e-02f;
    p = p * xc;
    float q = x2 * -1.45660718464996e-05f + -2.13374055278905e-04f;
    q = q * x2 + -1.68282697438203e-03f;
    q = q * x2 + -7.37332916720468e-03f;
    q = q * x2 + -1.42647390514189e-02f;
    return p / q;
}

/* Run a loop in parallel only when it is worth waking the threads. */
#define PARALLEL_MIN_WORK 32768

#endif
