/*
 * norm.c — group, layer and RMS normalisation.
 *
 * Statistics are accumulated in double over two passes (mean, then the squared
 * deviations), so large offsets do not cancel the variance away as a one-pass float
 * sum of squares would. The mean is subtracted as a float pair (hi + lo) before scaling,
 * since x * scale - mean * scale cancels badly when the mean is large against the spread.
 * All allow out == x.
 */
#include "kernels/cpu/cpu.h"

#include <math.h>

int cpu_group_norm(ts_ctx *ctx, float *out, const float *x, int N, int C, int64_t HW, int groups,
               const tensor *gamma, const tensor *beta, float eps) {
    if (groups <= 0 || C % groups != 0)
        return ts_fail("group_norm: %d channels do not split into %d groups", C, groups);
    if (check_weight(gamma, C, "group_norm", "gamma") || check_weight(beta, C, "group_norm", "beta")) return -1;
    const float *g = weight_f32(ctx, gamma, 0), *b = weight_f32(ctx, beta, 1);
    int per_group = C / groups;
    int64_t group_size = (int64_t)per_group * HW;
    #pragma omp parallel for num_threads(cpu_threads(ctx)) schedule(dynamic, 1) if ((int64_t)N * C * HW >= PARALLEL_MIN_WORK)
    for (int64_t ng = 0; ng < (int64_t)N * groups; ng++) {
        const float *xs = x + ng * group_size;
        float *os = out + ng * group_size;
        double sum = 0, sq = 0;
        #pragma omp simd reduction(+:sum)
        for (int64_t i = 0; i < group_size; i++) sum += xs[i];
        double mean = sum / (double)group_size;
        #pragma omp simd reduction(+:sq)
        for (int64_t i = 0; i < group_size; i++) { double d = xs[i] - mean; sq += d * d; }
        float rstd = (float)(1.0 / sqrt(sq / (double)group_size + eps));
        float m_hi = (float)mean, m_lo = (float)(mean - m_hi);
        int c0 = (int)(ng % groups) * per_group;
        for (int c = 0; c < per_group; c++) {
            float scale = rstd * (g ? g[c0 + c] : 1.0f);
            float shift = b ? b[c0 + c] : 0.0f;
            const float *xc = xs + c * HW;
            float *oc = os + c * HW;
            for (int64_t i = 0; i < HW; i++) oc[i] = ((xc[i] - m_hi) - m_lo) * scale + shift;
        }
    }
    return 0;
}

int cpu_layer_norm(ts_ctx *ctx, float *out, const float *x, int64_t rows, int dim,
               const tensor *gamma, const tensor *beta, float eps) {
    if (dim <= 0) return ts_fail("layer_norm: dim %d", dim);
    if (check_weight(gamma, dim, "layer_norm", "gamma") || check_weight(beta, dim, "layer_norm", "beta")) return -1;
    const float *g = weight_f32(ctx, gamma, 0), *b = weight_f32(ctx, beta, 1);
    #pragma omp parallel for num_threads(cpu_threads(ctx)) schedule(static) if (rows * dim >= PARALLEL_MIN_WORK)
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * dim;
        float *orow = out + r * dim;
        double sum = 0, sq = 0;
        #pragma omp simd reduction(+:sum)
        for (int i = 0; i < dim; i++) sum += xr[i];
        double mean = sum / dim;
        #pragma omp simd reduction(+:sq)
        for (int i = 0; i < dim; i++) { double d = xr[i] - mean; sq += d * d; }
        float rstd = (float)(1.0 / sqrt(sq / dim + eps));
        float m_hi = (float)mean, m_lo = (float)(mean - m_hi);
        for (int i = 0; i < dim; i++) {
            float v = ((xr[i] - m_hi) - m_lo) * rstd;
            orow[i] = (g ? v * g[i] : v) + (b ? b[i] : 0.0f);
        }
    }
    return 0;
}

int cpu_rms_norm(ts_ctx *ctx, float *out, const float *x, int64_t rows, int dim, const tensor *weight, float eps) {
    if (dim <= 0) return ts_fail("rms_norm: dim %d", dim);
    if (check_weight(weight, dim, "rms_norm", "weight")) return -1;
    const float *w = weight_f32(ctx, weight, 0);
    #pragma omp parallel for num_threads(cpu_threads(ctx)) schedule(static) if (rows * dim >= PARALLEL_MIN_WORK)
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * dim;
        float *orow = out + r * dim;
        double sq = 0;
        #pragma omp simd reduction(+:sq)
        for (int i = 0; i < dim; i++) sq += (double)xr[i] * xr[i];
        float rs = (float)(1.0 / sqrt(sq / dim + eps));
        for (int i = 0; i < dim; i++) orow[i] = w ? xr[i] * rs * w[i] : xr[i] * rs;
    }
    return 0;
}
