/*
 * activation.c — softmax over rows and the element-wise activations (SiLU, GELU in its
 * erf and tanh forms, QuickGELU, GEGLU, SwiGLU). All allow out == x.
 */
#include "kernels/cpu/cpu.h"

#include <math.h>

void cpu_softmax_rows(ts_ctx *ctx, float *x, int64_t rows, int n) {
    #pragma omp parallel for num_threads(cpu_threads(ctx)) schedule(static) if (rows * n >= PARALLEL_MIN_WORK)
    for (int64_t r = 0; r < rows; r++) {
        float *row = x + r * n;
        float max = -INFINITY;
        #pragma omp simd reduction(max:max)
        for (int i = 0; i < n; i++) max = row[i] > max ? row[i] : max;
        if (max == -INFINITY) {          /* every entry masked: torch gives NaN; we give 0 */
            for (int i = 0; i < n; i++) row[i] = 0.0f;
            continue;
        }
        float sum = 0;
        #pragma omp simd reduction(+:sum)
        for (int i = 0; i < n; i++) {
            row[i] = ts_expf_nonpositive(row[i] - max);
            sum += row[i];
        }
        float inv = (float)(1.0 / sum);
        for (int i = 0; i < n; i++) row[i] *= inv;
    }
}

#define ELEMENTWISE(out, x, n, expr)                                                  \
    _Pragma("omp parallel for simd num_threads(cpu_threads(ctx)) schedule(static) if (n >= PARALLEL_MIN_WORK)")     \
    for (int64_t i = 0; i < n; i++) {                                                 \
        float v = x[i];                                                               \
        out[i] = (expr);                                                              \
    }

static void silu_f32(ts_ctx *ctx, float *out, const float *x, int64_t n) { ELEMENTWISE(out, x, n, v / (1.0f + ts_expf(-v))) }

static void gelu_erf_f32(ts_ctx *ctx, float *out, const float *x, int64_t n) {
    ELEMENTWISE(out, x, n, 0.5f * v * (1.0f + ts_erff(v * 0.70710678118654752f)))
}

static void gelu_tanh_f32(ts_ctx *ctx, float *out, const float *x, int64_t n) {
    /* 1 + tanh(u) = 2 - 2 / (exp(2u) + 1) */
    const float k2 = 2.0f * 0.79788456080286536f; /* 2 sqrt(2/pi) */
    ELEMENTWISE(out, x, n, v - v / (ts_expf(k2 * (v + 0.044715f * v * v * v)) + 1.0f))
}

static void quick_gelu_f32(ts_ctx *ctx, float *out, const float *x, int64_t n) {
    ELEMENTWISE(out, x, n, v / (1.0f + ts_expf(-1.702f * v)))
}

static void relu_f32(ts_ctx *ctx, float *out, const float *x, int64_t n) { ELEMENTWISE(out, x, n, v > 0 ? v : 0) }

void cpu_clamp(ts_ctx *ctx, float *out, const float *x, int64_t n, float lo, float hi) {
    ELEMENTWISE(out, x, n, v < lo ? lo : v > hi ? hi : v)
}

void cpu_scaled_tanh(ts_ctx *ctx, float *out, const float *x, int64_t n, float s) {
    ELEMENTWISE(out, x, n, tanhf(v / s) * s)
}

void cpu_unary(ts_ctx *ctx, unary_op op, float *out, const float *x, int64_t n) {
    switch (op) {
    case UNARY_SILU: silu_f32(ctx, out, x, n); break;
    case UNARY_GELU_ERF: gelu_erf_f32(ctx, out, x, n); break;
    case UNARY_GELU_TANH: gelu_tanh_f32(ctx, out, x, n); break;
    case UNARY_QUICK_GELU: quick_gelu_f32(ctx, out, x, n); break;
    case UNARY_RELU: relu_f32(ctx, out, x, n); break;
    }
}

void cpu_geglu(ts_ctx *ctx, float *out, const float *x, int64_t rows, int dim) {
    #pragma omp parallel for num_threads(cpu_threads(ctx)) schedule(static) if (rows * dim >= PARALLEL_MIN_WORK)
    for (int64_t r = 0; r < rows; r++) {
        const float *a = x + r * 2 * dim, *g = a + dim;
        float *o = out + r * dim;
        for (int i = 0; i < dim; i++) o[i] = a[i] * (0.5f * g[i] * (1.0f + ts_erff(g[i] * 0.70710678118654752f)));
    }
}

void cpu_swiglu(ts_ctx *ctx, float *out, const float *gate, const float *up, int64_t rows, int dim) {
    int64_t n = rows * dim;
    #pragma omp parallel for simd num_threads(cpu_threads(ctx)) schedule(static) if (n >= PARALLEL_MIN_WORK)
    for (int64_t i = 0; i < n; i++) out[i] = gate[i] / (1.0f + ts_expf(-gate[i])) * up[i];
}
