/*
 * activation.c — softmax over rows and the element-wise activations (SiLU, GELU in its
 * erf and tanh forms, QuickGELU, GEGLU, SwiGLU). All allow out == x.
 */
#include "kernels/ops_private.h"

#include <math.h>

void softmax_rows(float *x, int64_t rows, int n) {
    #pragma omp parallel for schedule(static) if (rows * n >= PARALLEL_MIN_WORK)
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
            row[i] = ts_expf(row[i] - max);
            sum += row[i];
        }
        float inv = (float)(1.0 / sum);
        for (int i = 0; i < n; i++) row[i] *= inv;
    }
}

#define ELEMENTWISE(out, x, n, expr)                                                  \
    _Pragma("omp parallel for simd schedule(static) if (n >= PARALLEL_MIN_WORK)")     \
    for (int64_t i = 0; i < n; i++) {                                                 \
        float v = x[i];                                                               \
        out[i] = (expr);                                                              \
    }

void silu(float *out, const float *x, int64_t n) { ELEMENTWISE(out, x, n, v / (1.0f + ts_expf(-v))) }

void gelu_erf(float *out, const float *x, int64_t n) {
    ELEMENTWISE(out, x, n, 0.5f * v * (1.0f + ts_erff(v * 0.70710678118654752f)))
}

void gelu_tanh(float *out, const float *x, int64_t n) {
    /* 1 + tanh(u) = 2 - 2 / (exp(2u) + 1) */
    const float k2 = 2.0f * 0.79788456080286536f; /* 2 sqrt(2/pi) */
    ELEMENTWISE(out, x, n, v - v / (ts_expf(k2 * (v + 0.044715f * v * v * v)) + 1.0f))
}

void quick_gelu(float *out, const float *x, int64_t n) {
    ELEMENTWISE(out, x, n, v / (1.0f + ts_expf(-1.702f * v)))
}

void geglu(float *out, const float *x, int64_t rows, int dim) {
    #pragma omp parallel for schedule(static) if (rows * dim >= PARALLEL_MIN_WORK)
    for (int64_t r = 0; r < rows; r++) {
        const float *a = x + r * 2 * dim, *g = a + dim;
        float *o = out + r * dim;
        for (int i = 0; i < dim; i++) o[i] = a[i] * (0.5f * g[i] * (1.0f + ts_erff(g[i] * 0.70710678118654752f)));
    }
}

void swiglu(float *out, const float *gate, const float *up, int64_t rows, int dim) {
    int64_t n = rows * dim;
    #pragma omp parallel for simd schedule(static) if (n >= PARALLEL_MIN_WORK)
    for (int64_t i = 0; i < n; i++) out[i] = gate[i] / (1.0f + ts_expf(-gate[i])) * up[i];
}
