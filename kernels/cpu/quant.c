/* quant.c — the CPU's products with ggml block-quantized rows: dot products and the matmul
 * (the formats themselves are kernels/quant.c); see quant.h for the decision to keep
 * activations in float32. Hand-written because no packaged library reads ggml's block
 * formats. */
#include "kernels/quant.h"
#include "kernels/cpu/cpu.h"

#include <stdlib.h>
#include <string.h>
#ifdef __AVX2__
#include <immintrin.h>
#endif

/* ---- dot products ------------------------------------------------------ */

#ifdef __AVX2__
static inline float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
#endif

float dot_f32(const float *a, const float *b, int64_t n) {
    int64_t i = 0;
    float sum = 0.0f;
#if defined(__AVX512F__)
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    for (; i + 32 <= n; i += 32) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
    }
    for (; i + 16 <= n; i += 16) s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
    sum = _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
#elif defined(__AVX2__) && defined(__FMA__)
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    }
    sum = hsum256(_mm256_add_ps(s0, s1));
#endif
    for (; i < n; i++) sum += a[i] * b[i];
    return sum;
}

/* out[j] = w . x_j for four rows x_j = x + j*ldx: each w vector is loaded once for four
 * FMAs, which is what makes small-batch decoding cheaper per token than batch 1. */
static void dot_f32_x4(const float *w, const float *x, int64_t ldx, int64_t n, float out[4]) {
    const float *x0 = x, *x1 = x + ldx, *x2 = x + 2 * ldx, *x3 = x + 3 * ldx;
    int64_t i = 0;
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
#if defined(__AVX512F__)
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps(), a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
    for (; i + 16 <= n; i += 16) {
        __m512 wv = _mm512_loadu_ps(w + i);
        a0 = _mm512_fmadd_ps(wv, _mm512_loadu_ps(x0 + i), a0);
        a1 = _mm512_fmadd_ps(wv, _mm512_loadu_ps(x1 + i), a1);
        a2 = _mm512_fmadd_ps(wv, _mm512_loadu_ps(x2 + i), a2);
        a3 = _mm512_fmadd_ps(wv, _mm512_loadu_ps(x3 + i), a3);
    }
    s0 = _mm512_reduce_add_ps(a0); s1 = _mm512_reduce_add_ps(a1);
    s2 = _mm512_reduce_add_ps(a2); s3 = _mm512_reduce_add_ps(a3);
#elif defined(__AVX2__) && defined(__FMA__)
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
    for (; i + 8 <= n; i += 8) {
        __m256 wv = _mm256_loadu_ps(w + i);
        a0 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x0 + i), a0);
        a1 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x1 + i), a1);
        a2 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x2 + i), a2);
        a3 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x3 + i), a3);
    }
    s0 = hsum256(a0); s1 = hsum256(a1); s2 = hsum256(a2); s3 = hsum256(a3);
#endif
    for (; i < n; i++) { s0 += w[i] * x0[i]; s1 += w[i] * x1[i]; s2 += w[i] * x2[i]; s3 += w[i] * x3[i]; }
    out[0] = s0; out[1] = s1; out[2] = s2; out[3] = s3;
}

/* Q8_0 fused: the int8 values widen to float in registers, no row buffer. */
static float dot_q8_0(const uint8_t *p, const float *x, int64_t n) {
#if defined(__AVX512F__) && defined(__AVX512BW__)
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    for (int64_t i = 0; i < n; i += 32, p += 34) {
        __m256i q = _mm256_loadu_si256((const __m256i *)(p + 2));
        __m512 q0 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_castsi256_si128(q)));
        __m512 q1 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_extracti128_si256(q, 1)));
        __m512 s = _mm512_fmadd_ps(q1, _mm512_loadu_ps(x + i + 16), _mm512_mul_ps(q0, _mm512_loadu_ps(x + i)));
        /* two accumulators break the dependency chain between blocks */
        if ((i & 32) == 0) acc0 = _mm512_fmadd_ps(_mm512_set1_ps(quant_f16_at(p)), s, acc0);
        else acc1 = _mm512_fmadd_ps(_mm512_set1_ps(quant_f16_at(p)), s, acc1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
#elif defined(__AVX2__) && defined(__FMA__)
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n; i += 32, p += 34) {
        __m256 d = _mm256_set1_ps(quant_f16_at(p));
        const int8_t *q = (const int8_t *)(p + 2);
        __m256 s = _mm256_setzero_ps();
        for (int k = 0; k < 32; k += 8) {
            __m128i q8 = _mm_loadl_epi64((const __m128i *)(q + k));
            __m256 qf = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q8));
            s = _mm256_fmadd_ps(qf, _mm256_loadu_ps(x + i + k), s);
        }
        acc = _mm256_fmadd_ps(d, s, acc);
    }
    return hsum256(acc);
#else
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i += 32, p += 34) {
        float d = quant_f16_at(p), s = 0.0f;
        const int8_t *q = (const int8_t *)(p + 2);
        for (int k = 0; k < 32; k++) s += (float)q[k] * x[i + k];
        sum += d * s;
    }
    return sum;
#endif
}

/* Other block formats: one block at a time into a stack buffer, then dot_f32. */
float quant_dot(dtype t, const void *row, const float *x, int64_t n) {
    if (t == DT_F32) return dot_f32(row, x, n);
    if (t == DT_Q8_0) return dot_q8_0(row, x, n);
    float buf[256];
    int bv = t == DT_F16 || t == DT_BF16 ? 256 : dtype_block_values(t);
    size_t step = t == DT_F16 || t == DT_BF16 ? 512 : dtype_block_bytes(t);
    const uint8_t *p = row;
    float sum = 0.0f;
    int64_t i = 0;
    for (; i + bv <= n; i += bv, p += step) {
        dequantize_row(t, p, buf, bv);
        sum += dot_f32(buf, x + i, bv);
    }
    if (i < n) { /* F16/BF16 tail shorter than 256 */
        dequantize_row(t, p, buf, n - i);
        sum += dot_f32(buf, x + i, n - i);
    }
    return sum;
}

/* Weight rows per slab on the gemm path (slab = rows x cols floats, a few MB). */
#define QMATMUL_SLAB_FLOATS (1 << 20)

/* Multiply-adds below which a matmul stays on one thread: a parallel region costs
 * microseconds, and far more when the cores are shared and a thread is descheduled. */
#define QMATMUL_PARALLEL_MIN_WORK (1 << 18)

void cpu_qmatmul(ts_ctx *ctx, float *y, const float *x, int64_t n, const qmatrix *W) {
    const int64_t R = W->rows, C = W->cols;
    const uint8_t *base = W->data;
    if (n >= QMATMUL_GEMM_MIN_ROWS) {
        if (W->type == DT_F32) {
            cpu_gemm(ctx, false, true, (int)n, (int)R, (int)C, 1.0f, x, (int)C, W->data, (int)C, 0.0f, y, (int)R);
            return;
        }
        int64_t slab_rows = QMATMUL_SLAB_FLOATS / C;
        if (slab_rows < 1) slab_rows = 1;
        if (slab_rows > R) slab_rows = R;
        float *slab = ts_aligned_alloc((size_t)slab_rows * (size_t)C * sizeof(float));
        for (int64_t r0 = 0; r0 < R; r0 += slab_rows) {
            int64_t nr = R - r0 < slab_rows ? R - r0 : slab_rows;
            #pragma omp parallel for num_threads(cpu_threads(ctx)) schedule(static) if (nr * C >= QMATMUL_PARALLEL_MIN_WORK)
            for (int64_t r = 0; r < nr; r++)
                dequantize_row(W->type, base + (size_t)(r0 + r) * W->row_bytes, slab + r * C, C);
            cpu_gemm(ctx, false, true, (int)n, (int)nr, (int)C, 1.0f, x, (int)C, slab, (int)C, 0.0f, y + r0, (int)R);
        }
        free(slab);
        return;
    }
    if (n == 1) {
        #pragma omp parallel for num_threads(cpu_threads(ctx)) schedule(static) if (R * C >= QMATMUL_PARALLEL_MIN_WORK)
        for (int64_t r = 0; r < R; r++) y[r] = quant_dot(W->type, base + (size_t)r * W->row_bytes, x, C);
        return;
    }
    #pragma omp parallel num_threads(cpu_threads(ctx)) if (R * C * n >= QMATMUL_PARALLEL_MIN_WORK)
    {
        float *row = W->type == DT_F32 ? NULL : ts_aligned_alloc((size_t)C * sizeof(float));
        #pragma omp for schedule(static)
        for (int64_t r = 0; r < R; r++) {
            const float *w = (const float *)(base + (size_t)r * W->row_bytes);
            if (row) { dequantize_row(W->type, w, row, C); w = row; }
            int64_t j = 0;
            for (float d4[4]; j + 4 <= n; j += 4) {
                dot_f32_x4(w, x + j * C, C, C, d4);
                for (int k = 0; k < 4; k++) y[(j + k) * R + r] = d4[k];
            }
            for (; j < n; j++) y[j * R + r] = dot_f32(w, x + j * C, C);
        }
        free(row);
    }
}

void cpu_qmatrix_gather(ts_ctx *ctx, float *out, const qmatrix *W, const int *rows, int n) {
    (void)ctx;
    for (int i = 0; i < n; i++) qmatrix_row(W, rows[i], out + (size_t)i * W->cols);
}
