/* quant.c — ggml block formats: dequantize, dot products and the matmul on quantized rows.
 * Layouts follow ggml-quants.c (dequantize_row_*); see quant.h for the decision to
 * keep activations in float32. Hand-written because no packaged library reads ggml's
 * block formats. */
#include "kernels/quant.h"
#include "kernels/cpu/cpu.h"

#include <stdlib.h>
#include <string.h>
#ifdef __AVX2__
#include <immintrin.h>
#endif

/* ---- the formats ------------------------------------------------------- */

typedef struct { uint16_t d; int8_t qs[32]; } block_q8_0;
typedef struct { uint16_t d; uint8_t qs[16]; } block_q4_0;
typedef struct { uint16_t d, dmin; uint8_t scales[12]; uint8_t qs[128]; } block_q4_k;
typedef struct { uint8_t ql[128]; uint8_t qh[64]; int8_t scales[16]; uint16_t d; } block_q6_k;

_Static_assert(sizeof(block_q8_0) == 34, "Q8_0 block is 34 bytes");
_Static_assert(sizeof(block_q4_0) == 18, "Q4_0 block is 18 bytes");
_Static_assert(sizeof(block_q4_k) == 144, "Q4_K block is 144 bytes");
_Static_assert(sizeof(block_q6_k) == 210, "Q6_K block is 210 bytes");
/* The other formats are read at byte offsets (see quant.h for their layouts). */
enum { Q4_1_BYTES = 20, Q5_0_BYTES = 22, Q5_1_BYTES = 24, Q2_K_BYTES = 84, Q3_K_BYTES = 110,
       Q5_K_BYTES = 176, IQ4_NL_BYTES = 18, IQ4_XS_BYTES = 136 };

_Static_assert(Q4_1_BYTES == 20 && Q5_0_BYTES == 22 && Q5_1_BYTES == 24 && Q2_K_BYTES == 84 && Q3_K_BYTES == 110 &&
               Q5_K_BYTES == 176 && IQ4_NL_BYTES == 18 && IQ4_XS_BYTES == 136, "block sizes as in tensor.c's dtype table");

/* Block values are read through memcpy'd structs: rows in a GGUF file are only
 * guaranteed to be aligned to 32 bytes at the tensor start, and a row of Q8_0 blocks
 * is 34 bytes per block, so the f16 scales land on odd addresses. */
static inline float half(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
#ifdef __F16C__
    return _cvtsh_ss(h);   /* exact, like f16_to_f32, without the call */
#else
    return f16_to_f32(h);
#endif
}

/* Q4_K packs eight 6-bit (scale, min) pairs in 12 bytes (ggml get_scale_min_k4). */
static inline void scale_min_k4(int j, const uint8_t *q, int *sc, int *m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

static void dequant_q8_0(const uint8_t *b, float *y) {
    float d = half(b);
    const int8_t *q = (const int8_t *)(b + 2);
    for (int i = 0; i < 32; i++) y[i] = d * (float)q[i];
}

static void dequant_q4_0(const uint8_t *b, float *y) {
    float d = half(b);
    const uint8_t *q = b + 2;
    for (int i = 0; i < 16; i++) {
        y[i] = d * (float)((q[i] & 0xF) - 8);
        y[i + 16] = d * (float)((q[i] >> 4) - 8);
    }
}

static void dequant_q4_k(const uint8_t *b, float *y) {
    float d = half(b), dmin = half(b + 2);
    const uint8_t *scales = b + 4, *q = b + 16;
    for (int j = 0, is = 0; j < 256; j += 64, is += 2, q += 32) {
        int sc, m;
        scale_min_k4(is, scales, &sc, &m);
        float d1 = d * (float)sc, m1 = dmin * (float)m;
        scale_min_k4(is + 1, scales, &sc, &m);
        float d2 = d * (float)sc, m2 = dmin * (float)m;
        for (int l = 0; l < 32; l++) y[j + l] = d1 * (float)(q[l] & 0xF) - m1;
        for (int l = 0; l < 32; l++) y[j + 32 + l] = d2 * (float)(q[l] >> 4) - m2;
    }
}

static void dequant_q6_k(const uint8_t *b, float *y) {
    const uint8_t *ql = b, *qh = b + 128;
    const int8_t *sc = (const int8_t *)(b + 192);
    float d = half(b + 208);
    for (int n = 0; n < 256; n += 128, ql += 64, qh += 32, sc += 8) {
        for (int l = 0; l < 32; l++) {
            int is = l / 16;
            int q1 = (int)((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
            int q2 = (int)((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
            int q3 = (int)((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            int q4 = (int)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            y[n + l] = d * (float)sc[is] * (float)q1;
            y[n + l + 32] = d * (float)sc[is + 2] * (float)q2;
            y[n + l + 64] = d * (float)sc[is + 4] * (float)q3;
            y[n + l + 96] = d * (float)sc[is + 6] * (float)q4;
        }
    }
}

/* Each value is computed with the same float operations in the same order as ggml's
 * dequantize_row_* and the gguf package (products, then the offset), and the build
 * does not contract them into FMAs (ISO C17: -ffp-contract=off), so the values are
 * bit-identical to gguf.quants.dequantize. */

static void dequant_q4_1(const uint8_t *b, float *y) {
    float d = half(b), m = half(b + 2);
    const uint8_t *q = b + 4;
    for (int i = 0; i < 16; i++) {
        y[i] = d * (float)(q[i] & 0xF) + m;
        y[i + 16] = d * (float)(q[i] >> 4) + m;
    }
}

/* Q5_0/Q5_1: the fifth bit of value i is bit i of a little-endian u32. */
static inline uint32_t high_bits(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void dequant_q5_0(const uint8_t *b, float *y) {
    float d = half(b);
    uint32_t qh = high_bits(b + 2);
    const uint8_t *q = b + 6;
    for (int i = 0; i < 16; i++) {
        int lo = (q[i] & 0xF) | (int)((qh >> i) & 1) << 4;
        int hi = (q[i] >> 4) | (int)((qh >> (i + 16)) & 1) << 4;
        y[i] = d * (float)(lo - 16);
        y[i + 16] = d * (float)(hi - 16);
    }
}

static void dequant_q5_1(const uint8_t *b, float *y) {
    float d = half(b), m = half(b + 2);
    uint32_t qh = high_bits(b + 4);
    const uint8_t *q = b + 8;
    for (int i = 0; i < 16; i++) {
        int lo = (q[i] & 0xF) | (int)((qh >> i) & 1) << 4;
        int hi = (q[i] >> 4) | (int)((qh >> (i + 16)) & 1) << 4;
        y[i] = d * (float)lo + m;
        y[i + 16] = d * (float)hi + m;
    }
}

/* Q2_K: sub-block s (16 values) takes 2 bits at shift 2*(s/2 % 4) of q[32*(s/8) + 16*(s%2) + l]. */
static void dequant_q2_k(const uint8_t *b, float *y) {
    const uint8_t *scales = b, *q = b + 16;
    float d = half(b + 80), dmin = half(b + 82);
    for (int s = 0; s < 16; s++) {
        float dl = d * (float)(scales[s] & 0xF), ml = dmin * (float)(scales[s] >> 4);
        const uint8_t *qq = q + 32 * (s / 8) + 16 * (s % 2);
        int shift = 2 * ((s / 2) % 4);
        for (int l = 0; l < 16; l++) y[16 * s + l] = dl * (float)((qq[l] >> shift) & 3) - ml;
    }
}

/* Q3_K: sixteen 6-bit scales, low 4 bits in bytes 0..7 (two per byte), high 2 bits in 8..11. */
static void dequant_q3_k(const uint8_t *b, float *y) {
    const uint8_t *hmask = b, *q = b + 32, *sc = b + 96;
    float d = half(b + 108);
    for (int s = 0; s < 16; s++) {
        int low = (sc[s % 8] >> (4 * (s / 8))) & 0xF;
        int high = (sc[8 + s % 4] >> (2 * (s / 4))) & 3;
        float dl = d * (float)((low | high << 4) - 32);
        const uint8_t *qq = q + 32 * (s / 8) + 16 * (s % 2);
        const uint8_t *hm = hmask + 16 * (s % 2);
        int shift = 2 * ((s / 2) % 4), bit = s / 2;   /* hmask bit: one per 32-value group */
        for (int l = 0; l < 16; l++) {
            int v = (int)((qq[l] >> shift) & 3) - ((hm[l] >> bit) & 1 ? 0 : 4);
            y[16 * s + l] = dl * (float)v;
        }
    }
}

static void dequant_q5_k(const uint8_t *b, float *y) {
    float d = half(b), dmin = half(b + 2);
    const uint8_t *scales = b + 4, *qh = b + 16, *q = b + 48;
    for (int j = 0, is = 0; j < 256; j += 64, is += 2, q += 32) {
        int sc, m;
        scale_min_k4(is, scales, &sc, &m);
        float d1 = d * (float)sc, m1 = dmin * (float)m;
        scale_min_k4(is + 1, scales, &sc, &m);
        float d2 = d * (float)sc, m2 = dmin * (float)m;
        for (int l = 0; l < 32; l++) y[j + l] = d1 * (float)((q[l] & 0xF) | ((qh[l] >> is) & 1) << 4) - m1;
        for (int l = 0; l < 32; l++) y[j + 32 + l] = d2 * (float)((q[l] >> 4) | ((qh[l] >> (is + 1)) & 1) << 4) - m2;
    }
}

/* IQ4_NL / IQ4_XS: 4-bit indices into ggml's fixed grid (kvalues_iq4nl). */
static const int8_t iq4_grid[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

static void dequant_iq4_nl(const uint8_t *b, float *y) {
    float d = half(b);
    const uint8_t *q = b + 2;
    for (int i = 0; i < 16; i++) {
        y[i] = d * (float)iq4_grid[q[i] & 0xF];
        y[i + 16] = d * (float)iq4_grid[q[i] >> 4];
    }
}

static void dequant_iq4_xs(const uint8_t *b, float *y) {
    float d = half(b);
    unsigned scales_h = (unsigned)b[2] | (unsigned)b[3] << 8;
    const uint8_t *scales_l = b + 4, *q = b + 8;
    for (int s = 0; s < 8; s++, q += 16, y += 32) {
        int ls = ((scales_l[s / 2] >> (4 * (s % 2))) & 0xF) | (int)((scales_h >> (2 * s)) & 3) << 4;
        float dl = d * (float)(ls - 32);
        for (int i = 0; i < 16; i++) {
            y[i] = dl * (float)iq4_grid[q[i] & 0xF];
            y[i + 16] = dl * (float)iq4_grid[q[i] >> 4];
        }
    }
}

void dequantize_row(dtype t, const void *src, float *dst, int64_t n) {
    const uint8_t *p = src;
    switch (t) {
    case DT_F32: memcpy(dst, src, (size_t)n * 4); return;
    case DT_F16: convert_to_f32(dst, src, DT_F16, (size_t)n); return;
    case DT_BF16: convert_to_f32(dst, src, DT_BF16, (size_t)n); return;
    case DT_Q8_0: for (int64_t i = 0; i < n; i += 32, p += 34) dequant_q8_0(p, dst + i); return;
    case DT_Q4_0: for (int64_t i = 0; i < n; i += 32, p += 18) dequant_q4_0(p, dst + i); return;
    case DT_Q4_K: for (int64_t i = 0; i < n; i += 256, p += 144) dequant_q4_k(p, dst + i); return;
    case DT_Q6_K: for (int64_t i = 0; i < n; i += 256, p += 210) dequant_q6_k(p, dst + i); return;
    case DT_Q4_1: for (int64_t i = 0; i < n; i += 32, p += Q4_1_BYTES) dequant_q4_1(p, dst + i); return;
    case DT_Q5_0: for (int64_t i = 0; i < n; i += 32, p += Q5_0_BYTES) dequant_q5_0(p, dst + i); return;
    case DT_Q5_1: for (int64_t i = 0; i < n; i += 32, p += Q5_1_BYTES) dequant_q5_1(p, dst + i); return;
    case DT_Q2_K: for (int64_t i = 0; i < n; i += 256, p += Q2_K_BYTES) dequant_q2_k(p, dst + i); return;
    case DT_Q3_K: for (int64_t i = 0; i < n; i += 256, p += Q3_K_BYTES) dequant_q3_k(p, dst + i); return;
    case DT_Q5_K: for (int64_t i = 0; i < n; i += 256, p += Q5_K_BYTES) dequant_q5_k(p, dst + i); return;
    case DT_IQ4_NL: for (int64_t i = 0; i < n; i += 32, p += IQ4_NL_BYTES) dequant_iq4_nl(p, dst + i); return;
    case DT_IQ4_XS: for (int64_t i = 0; i < n; i += 256, p += IQ4_XS_BYTES) dequant_iq4_xs(p, dst + i); return;
    default: memset(dst, 0, (size_t)n * 4); return;
    }
}

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
        if ((i & 32) == 0) acc0 = _mm512_fmadd_ps(_mm512_set1_ps(half(p)), s, acc0);
        else acc1 = _mm512_fmadd_ps(_mm512_set1_ps(half(p)), s, acc1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
#elif defined(__AVX2__) && defined(__FMA__)
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n; i += 32, p += 34) {
        __m256 d = _mm256_set1_ps(half(p));
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
        float d = half(p), s = 0.0f;
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

/* ---- matrices ---------------------------------------------------------- */

int qmatrix_view(qmatrix *out, dtype t, int64_t rows, int64_t cols, const void *data, const char *what) {
    size_t rb = dtype_row_bytes(t, cols);
    if (rows <= 0 || rb == 0)
        return ts_fail("%s: %s matrix [%lld, %lld]: rows must be > 0 and columns a multiple of %d",
                       what, dtype_name(t), (long long)rows, (long long)cols, dtype_block_values(t));
    *out = (qmatrix){t, rows, cols, data, rb};
    return 0;
}

size_t qmatrix_nbytes(const qmatrix *m) { return (size_t)m->rows * m->row_bytes; }

void qmatrix_row(const qmatrix *m, int64_t r, float *dst) {
    dequantize_row(m->type, (const uint8_t *)m->data + (size_t)r * m->row_bytes, dst, m->cols);
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
