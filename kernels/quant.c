/* quant.c — ggml's block formats: their layouts, dequantization and quantized matrix views.
 * Portable C with no backend in it, so every backend reads the formats from one place (the
 * CPU's dot products and matmul are kernels/cpu/quant.c; the CUDA backend dequantizes a
 * matrix here once and multiplies in F32). Layouts follow ggml-quants.c
 * (dequantize_row_*). Hand-written because no packaged library reads ggml's block formats. */
#include "kernels/quant.h"

#include <stdlib.h>
#include <string.h>

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

/* Block values are read through memcpy'd structs and quant_f16_at (quant.h): rows of a
 * GGUF tensor are not aligned beyond its start. */

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
    float d = quant_f16_at(b);
    const int8_t *q = (const int8_t *)(b + 2);
    for (int i = 0; i < 32; i++) y[i] = d * (float)q[i];
}

static void dequant_q4_0(const uint8_t *b, float *y) {
    float d = quant_f16_at(b);
    const uint8_t *q = b + 2;
    for (int i = 0; i < 16; i++) {
        y[i] = d * (float)((q[i] & 0xF) - 8);
        y[i + 16] = d * (float)((q[i] >> 4) - 8);
    }
}

static void dequant_q4_k(const uint8_t *b, float *y) {
    float d = quant_f16_at(b), dmin = quant_f16_at(b + 2);
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
    float d = quant_f16_at(b + 208);
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
    float d = quant_f16_at(b), m = quant_f16_at(b + 2);
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
    float d = quant_f16_at(b);
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
    float d = quant_f16_at(b), m = quant_f16_at(b + 2);
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
    float d = quant_f16_at(b + 80), dmin = quant_f16_at(b + 82);
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
    float d = quant_f16_at(b + 108);
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
    float d = quant_f16_at(b), dmin = quant_f16_at(b + 2);
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
    float d = quant_f16_at(b);
    const uint8_t *q = b + 2;
    for (int i = 0; i < 16; i++) {
        y[i] = d * (float)iq4_grid[q[i] & 0xF];
        y[i + 16] = d * (float)iq4_grid[q[i] >> 4];
    }
}

static void dequant_iq4_xs(const uint8_t *b, float *y) {
    float d = quant_f16_at(b);
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
