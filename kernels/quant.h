/*
 * quant.h — block-quantized weight formats (ggml's layouts) and the matmul on them.
 *
 * A weight matrix [rows, cols] is stored row by row; each row is a run of blocks:
 *   F32, F16, BF16   1 value per "block"
 *   Q8_0  32 values: f16 d, int8 q[32]                    x = d * q
 *   Q4_0  32 values: f16 d, u8 q[16] (low nibbles first)  x = d * (q - 8)
 *   Q4_1  32 values: f16 d, f16 m, u8 q[16]               x = d * q + m
 *   Q5_0  32 values: f16 d, u8 qh[4] (bit 4 of each q), u8 q[16]   x = d * (q - 16)
 *   Q5_1  32 values: f16 d, f16 m, u8 qh[4], u8 q[16]     x = d * q + m
 *   Q2_K 256 values: u8 scales[16] (4-bit scale | 4-bit min), u8 q[64] (2 bits), f16 d, f16 dmin
 *                    16 sub-blocks of 16: x = d*sc*q - dmin*m
 *   Q3_K 256 values: u8 hmask[32], u8 q[64] (2 low bits), u8 scales[12] (16 x 6 bits), f16 d
 *                    x = d*(sc - 32)*(q - (high bit ? 0 : 4))
 *   Q4_K 256 values: f16 d, f16 dmin, u8 scales[12], u8 q[128]
 *                    8 sub-blocks of 32 with 6-bit scale/min: x = d*sc*q - dmin*m
 *   Q5_K 256 values: f16 d, f16 dmin, u8 scales[12], u8 qh[32], u8 q[128]   as Q4_K, q of 5 bits
 *   Q6_K 256 values: u8 ql[128], u8 qh[64], i8 scales[16], f16 d   x = d*sc*(q - 32)
 *   IQ4_NL 32 values: f16 d, u8 q[16]                     x = d * kvalues[q] (a fixed non-linear grid)
 *   IQ4_XS 256 values: f16 d, u16 scales_h, u8 scales_l[4], u8 q[128]   8 sub-blocks of 32:
 *                    x = d*(sc - 32)*kvalues[q]
 * These are the types llama.cpp's quantize presets Q2_K ... Q8_0 (and IQ4_NL/IQ4_XS) write;
 * a Q4_K_M file, for example, holds Q4_K, Q6_K and, for rows not a multiple of 256, Q5_0/Q8_0.
 *
 * Decision: activations stay float32 and are multiplied against the dequantized
 * block values (dequantized a block or a row at a time, in cache, never the whole
 * matrix). llama.cpp instead quantizes the activation to Q8 and uses integer dot
 * products; that is faster but not exact against the reference dequantization, and
 * our parity tests compare against the `gguf` package's dequantized weights in fp32.
 * So a result here equals (to float rounding) x . dequantize(W).
 */
#ifndef TESSERA_QUANT_H
#define TESSERA_QUANT_H

#include "kernels/tensor.h"

#include <string.h>
#ifdef __F16C__
#include <immintrin.h>
#endif

/* The formats are dtypes (tensor.h: DT_Q8_0 ... DT_IQ4_XS, with F32/F16/BF16 rows as one-value
 * "blocks"); dtype_block_values / dtype_block_bytes / dtype_row_bytes give their sizes. */

/* The F16 scale at p, any alignment: rows of a GGUF tensor are only aligned at its start,
 * and a Q8_0 block is 34 bytes, so scales land on odd addresses (read through memcpy). */
static inline float quant_f16_at(const void *p) {
    uint16_t h;
    memcpy(&h, p, 2);
#ifdef __F16C__
    return _cvtsh_ss(h);   /* exact, like f16_to_f32, without the call */
#else
    return f16_to_f32(h);
#endif
}

/* dst[0..n) = the values of one row (n a multiple of the block size). */
void dequantize_row(dtype t, const void *src, float *dst, int64_t n);
/* sum_i row[i] * x[i] over one quantized row of n values. */
float quant_dot(dtype t, const void *row, const float *x, int64_t n);
/* sum_i a[i] * b[i], vectorised. */
float dot_f32(const float *a, const float *b, int64_t n);

/* A matrix [rows, cols] of quantized rows; a view (does not own data). */
typedef struct qmatrix {
    dtype type;
    int64_t rows, cols;
    const void *data;
    size_t row_bytes;
} qmatrix;

/* Makes a view; -1 with a message naming `what` if cols does not fit the block size. */
int qmatrix_view(qmatrix *out, dtype t, int64_t rows, int64_t cols, const void *data, const char *what);
size_t qmatrix_nbytes(const qmatrix *m);
/* One row dequantized into dst[cols] (embedding lookup). */
void qmatrix_row(const qmatrix *m, int64_t r, float *dst);

/* The product y = x W^T on such a matrix is an op: qmatmul in ops.h. At and above this many
 * activation rows the CPU's qmatmul takes the gemm path: dequantizing a slab costs about as much
 * as a row pass, and BLAS beats row dots once enough rows share it. */
#define QMATMUL_GEMM_MIN_ROWS 32

#endif
