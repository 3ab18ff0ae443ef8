/*
 * ops.h — the math the models need, free of any model knowledge, on any backend.
 *
 * Every op takes a context (backend.h) first: it says where the op runs (the CPU's threads,
 * a GPU's stream), whose scratch memory and caches it uses, and in which group of ranks.
 * Models call only these; kernels/cpu/ implements them on the CPU, and a device backend
 * implements the ones it has (backend_impl.h).
 *
 * Conventions:
 *   - Activations are contiguous float32, row-major, outermost dimension first.
 *     Images are NCHW. Token sequences are [rows, dim].
 *   - Weights come as `const tensor *` of any dtype (F32/F16/BF16), so they can stay
 *     in the memory-mapped file and be widened on the fly.
 *   - `out` may alias `x` only where the comment says "in place allowed".
 *   - Functions that can fail (bad shapes) return int and call ts_fail; pure
 *     element-wise math returns void.
 * On the CPU, GEMM and convolution go through OpenBLAS and oneDNN (kernels/cpu/gemm.c, conv.c).
 */
#ifndef TESSERA_OPS_H
#define TESSERA_OPS_H

#include "kernels/backend.h"

/* ---- GEMM -------------------------------------------------------------- */

/* C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C, row-major, with leading dims.
 * The result never depends on the thread count or on what else runs in the process (gemm.c):
 * call it anywhere, also inside an OpenMP region of your own (it then runs on that thread). */
void gemm(ts_ctx *ctx, bool trans_a, bool trans_b, int M, int N, int K, float alpha,
          const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc);

/* count independent GEMMs; each operand advances by its stride (elements) per batch. */
void gemm_batched(ts_ctx *ctx, int count, bool trans_a, bool trans_b, int M, int N, int K, float alpha,
                  const float *A, int lda, int64_t stride_a,
                  const float *B, int ldb, int64_t stride_b, float beta,
                  float *C, int ldc, int64_t stride_c);

/* y[rows, out] = x[rows, in] * W^T + b, with W [out, in] of any dtype; b may be NULL. */
int linear(ts_ctx *ctx, float *y, const float *x, int64_t rows, const tensor *W, const tensor *b);

/*
 * Products with a weight of any dtype, over `count` images, as the U-Net needs them:
 *   weight_left:  C_i = W op(X_i)        (W [rows, K]; C_i [rows, other], NCHW-friendly)
 *   else:         C_i = op(X_i) W^T      (C_i [other, rows], token rows)
 * with C_i = X + i * x_stride etc., and C scaled by beta first (1: accumulate). fill_bias
 * (weight_left only, beta 1) starts row o of every C_i at fill_bias[o].
 * F32 weights are used in place; F16/BF16 ones are widened block by block into the context's
 * scratch and multiplied while in cache, so no F32 copy of a model's weights is ever made.
 * Blocks and tiles have fixed sizes: results never depend on the thread count.
 */
typedef struct {
    bool weight_left;
    bool trans_x;
    int other;               /* N when weight_left, else M: the side the weight does not set */
    int K;
    const float *X;
    int ldx;
    int64_t x_stride;        /* per image */
    float *C;
    int ldc;
    int64_t c_stride;        /* per image */
    int count;               /* images */
    float beta;
    const float *fill_bias;
    double *widen_seconds;   /* NULL, or += the seconds thread 0 spent widening (profiles) */
} weight_gemm_params;
int weight_gemm(ts_ctx *ctx, const tensor *W, const weight_gemm_params *p);

/*
 * y[n, W.rows] = x[n, W.cols] * W^T on a matrix of block-quantized (or F32/F16/BF16) rows
 * (kernels/quant.h), equal to float rounding to x . dequantize(W). On the CPU: small n, each
 * thread dequantizes one weight row into cache and dots it with the activation rows; large n
 * (prefill), a slab of rows is dequantized and handed to gemm.
 */
struct qmatrix;
void qmatmul(ts_ctx *ctx, float *y, const float *x, int64_t n, const struct qmatrix *W);
/* out[i, :] = dequantized row rows[i] of W, for i < n (token embeddings of a GGUF model). */
void qmatrix_gather(ts_ctx *ctx, float *out, const struct qmatrix *W, const int *rows, int n);

/* ---- convolution ------------------------------------------------------- */

typedef struct {
    int stride_h, stride_w;
    int pad_h, pad_w;
    int groups;            /* 0 or 1: ordinary convolution */
} conv2d_params;

/* out[N, OC, OH, OW] = conv(x[N, C, H, W], W [OC, C/groups, KH, KW]) + b.
 * OH = (H + 2*pad_h - KH) / stride_h + 1. b may be NULL. */
int conv2d(ts_ctx *ctx, float *out, const float *x, int N, int C, int H, int W,
           const tensor *weight, const tensor *bias, conv2d_params p);
void conv2d_out_size(int H, int W, const tensor *weight, conv2d_params p, int *OH, int *OW);

/* How a CPU context computes convolutions. AUTO, the default, is chosen by measurement
 * (kernels/cpu/conv.c): Winograd F(2x2, 3x3) for 3x3 stride-1 pad-1 convolutions with 256+
 * channels in and out at 128+ positions; else oneDNN at many positions per weight, except 1x1
 * and few-input-channel convolutions (sgemm); im2col over the batch and blocked weight products
 * (weight_gemm) at few positions per weight. WINOGRAD takes Winograd wherever the shape allows
 * it and AUTO's choice elsewhere. The setting belongs to the context; other backends ignore it. */
typedef enum { CONV_BACKEND_AUTO = 0, CONV_BACKEND_IM2COL, CONV_BACKEND_ONEDNN, CONV_BACKEND_WINOGRAD } conv2d_backend;
void conv2d_set_backend(ts_ctx *ctx, conv2d_backend b);
conv2d_backend conv2d_get_backend(const ts_ctx *ctx);   /* never AUTO: the main one in use */
bool conv2d_backend_available(conv2d_backend b);
const char *conv2d_backend_name(conv2d_backend b);
/* Opt-in (oneDNN): the context keeps up to max_bytes of weights in the library's layout,
 * keyed by the weight's address, saving the per-call reorder (~30 ms for 1280x1280x3x3). Only
 * for weights that stay unchanged at their address (e.g. memory-mapped) until _clear(). */
void conv2d_weight_cache(ts_ctx *ctx, size_t max_bytes);
void conv2d_weight_cache_clear(ts_ctx *ctx);
/* Tests only: make weight_gemm share out by weight rows (1) or by positions (2) in small
 * blocks whatever the shape, conv2d take the blocked path (Winograd where that is forced, in
 * small blocks: chunks of tiles outside (1) or blocks of channels outside (2)); 0: normal. */
void cpu_debug_force_split(ts_ctx *ctx, int mode);

/* ---- normalisation ----------------------------------------------------- */

/* x [N, C, HW]; statistics per (n, group); gamma/beta [C] may be NULL. In place allowed. */
int group_norm(ts_ctx *ctx, float *out, const float *x, int N, int C, int64_t HW, int groups,
               const tensor *gamma, const tensor *beta, float eps);
/* x [rows, dim]; gamma/beta [dim] may be NULL. In place allowed. */
int layer_norm(ts_ctx *ctx, float *out, const float *x, int64_t rows, int dim,
               const tensor *gamma, const tensor *beta, float eps);
/* y = x / sqrt(mean(x^2) + eps) * w. In place allowed. */
int rms_norm(ts_ctx *ctx, float *out, const float *x, int64_t rows, int dim, const tensor *weight, float eps);

/* ---- activations (in place allowed) ------------------------------------ */

typedef enum { UNARY_SILU, UNARY_GELU_ERF, UNARY_GELU_TANH, UNARY_QUICK_GELU, UNARY_RELU } unary_op;

void softmax_rows(ts_ctx *ctx, float *x, int64_t rows, int n);         /* in place, per row */
void silu(ts_ctx *ctx, float *out, const float *x, int64_t n);
void gelu_erf(ts_ctx *ctx, float *out, const float *x, int64_t n);     /* torch gelu(approximate='none') */
void gelu_tanh(ts_ctx *ctx, float *out, const float *x, int64_t n);    /* torch gelu(approximate='tanh') */
void quick_gelu(ts_ctx *ctx, float *out, const float *x, int64_t n);   /* x * sigmoid(1.702 x) (CLIP) */
void relu(ts_ctx *ctx, float *out, const float *x, int64_t n);
/* out = min(max(x, lo), hi) */
void clamp(ts_ctx *ctx, float *out, const float *x, int64_t n, float lo, float hi);
/* out = tanh(x / s) * s (TAESD's soft clamp) */
void scaled_tanh(ts_ctx *ctx, float *out, const float *x, int64_t n, float s);
/* x [rows, 2*dim] -> out [rows, dim]: out = x[:, :dim] * gelu_erf(x[:, dim:]) (diffusers GEGLU) */
void geglu(ts_ctx *ctx, float *out, const float *x, int64_t rows, int dim);
/* out[rows, dim] = silu(gate) * up, gate and up [rows, dim] (Llama SwiGLU). */
void swiglu(ts_ctx *ctx, float *out, const float *gate, const float *up, int64_t rows, int dim);

/* ---- element-wise with broadcasting ------------------------------------ */

/* out = a + b / a * b for views with numpy broadcasting (shapes aligned at the right).
 * out must be contiguous F32 with the broadcast shape. */
int tensor_add(ts_ctx *ctx, tensor *out, const tensor *a, const tensor *b);
int tensor_mul(ts_ctx *ctx, tensor *out, const tensor *a, const tensor *b);
void add_inplace(ts_ctx *ctx, float *x, const float *y, int64_t n);     /* x += y */
void scale_inplace(ts_ctx *ctx, float *x, float s, int64_t n);          /* x *= s */
void affine(ts_ctx *ctx, float *x, int64_t n, float scale, float shift);  /* x = x * scale + shift */
/* x[rows, dim] += b[dim] (any dtype) */
void add_row_bias(ts_ctx *ctx, float *x, int64_t rows, int dim, const tensor *b);
/* x[N, C, HW] += b per channel: b [C] (any dtype; a conv's bias, the same for every image)
 * or [N, C] (one per image: a time embedding into ResNet features). */
int add_channel_bias(ts_ctx *ctx, float *x, int N, int C, int64_t HW, const tensor *b);
/* x[n] = v for n values. */
void fill(ts_ctx *ctx, float *x, float v, int64_t n);

/* ---- layout ------------------------------------------------------------ */

/* x [N, C, H, W] -> out [N, C, 2H, 2W], nearest neighbour. */
void upsample_nearest2x(ts_ctx *ctx, float *out, const float *x, int N, int C, int H, int W);
/* Concatenate contiguous views along dim; all other dims equal. out contiguous F32. */
int tensor_concat(ts_ctx *ctx, tensor *out, const tensor *parts, int count, int dim);
/* dst[i*ds[0] + j*ds[1] + k*ds[2]] = src[i*ss[0] + j*ss[1] + k*ss[2]] over shape[3] (element
 * strides): crops, pads, tiles, phase interleaving. The two must not overlap. */
void copy_strided(ts_ctx *ctx, float *dst, const int64_t ds[3], const float *src, const int64_t ss[3],
                  const int64_t shape[3]);
/* The common case: dst[r * ld_dst + c] = src[r * ld_src + c] for rows x cols floats (skip
 * concatenation per image, KV-cache writes). */
void copy_2d(ts_ctx *ctx, float *dst, int64_t ld_dst, const float *src, int64_t ld_src, int64_t rows, int64_t cols);
/* Cross-fades b towards a over the first `extent` rows (along_rows) or columns of b:
 * b = a * (1 - t) + b * t, t = position / extent, over `planes` planes of rows x cols
 * (a_plane, a_row, b_plane, b_row: element strides; a points at its first blended element).
 * diffusers' blend_v / blend_h of tiled VAE decoding. */
void crossfade(ts_ctx *ctx, float *b, int64_t b_plane, int64_t b_row, const float *a, int64_t a_plane,
               int64_t a_row, int planes, int rows, int cols, int extent, bool along_rows);
/* rgb[p*3 + k] = round(255 * clamp(image[k][p] * scale + offset, 0, 1)) for the planes
 * k < 3 of image [C, hw] (the last plane repeated when C < 3): float images to 8-bit RGB. */
void rgb8_from_planes(ts_ctx *ctx, uint8_t *rgb, const float *image, int C, int64_t hw, float scale, float offset);
/* out[i, :] = table[rows[i], :] widened to float32 (table [V, D], F32/F16/BF16), for i < n;
 * rows NULL means rows 0..n-1 (position embeddings). Embedding lookups. -1 on a row outside
 * the table. */
int gather_rows(ts_ctx *ctx, float *out, const tensor *table, const int32_t *rows, int n);
/* dst[0..n) = src[0..n); the ranges may overlap. */
void copy_floats(ts_ctx *ctx, float *dst, const float *src, int64_t n);
/* Sinusoidal embedding of n values (diffusion timesteps, size ids), as diffusers'
 * get_timestep_embedding computes it in float32: out [n, dim]; half = dim/2,
 * e_j = exp(-ln(10000) j / (half - shift)), sin then cos (cos first when flip); odd dim
 * ends in a 0. t is host memory. */
void timestep_embedding(ts_ctx *ctx, float *out, const float *t, int n, int dim, bool flip, float shift);
/* [N, C, HW] <-> [N, HW, C] (the layout switch around transformer blocks). */
void nchw_to_nhwc(ts_ctx *ctx, float *out, const float *x, int N, int C, int64_t HW);
void nhwc_to_nchw(ts_ctx *ctx, float *out, const float *x, int N, int C, int64_t HW);

/* ---- attention --------------------------------------------------------- */

/*
 * Scaled-dot-product attention with heads, memory-lean: keys are processed in tiles
 * with an online softmax, so no [Nq, Nk] matrix is ever materialised.
 *   q   [batch, Nq, heads * head_dim]  (row stride q_stride elements, >= heads*head_dim)
 *   k,v [batch, Nk, heads * head_dim]  (row strides k_stride, v_stride)
 *   out [batch, Nq, heads * head_dim]  contiguous
 * scale is usually 1/sqrt(head_dim); 0 means exactly that. mask: NULL, or additive [Nq, Nk].
 * A query whose keys are all masked gets a zero output row.
 * The strides let q, k, v point into one fused QKV projection without copies.
 */
typedef struct {
    int batch, heads, head_dim;
    int64_t n_q, n_kv;
    int64_t q_stride, k_stride, v_stride;  /* 0 means heads*head_dim */
    float scale;
    const float *mask;                     /* optional additive [n_q, n_kv] */
    bool causal;                           /* key j > query i masked (aligned at the end) */
    int kv_heads;                          /* 0: heads. Fewer (grouped-query attention): query
                                              head h reads k/v head h / (heads / kv_heads), and
                                              k, v rows are kv_heads * head_dim wide */
} attention_params;

void attention(ts_ctx *ctx, float *out, const float *q, const float *k, const float *v, attention_params p);

/*
 * Attention of a batch of single tokens of different sequences against a KV cache (LLM
 * decoding and prefill, continuous batching): row i's query heads attend to keys 0..pos[i] of
 * sequence seqs[i]'s cache, with grouped-query heads (query head h reads kv head
 * h / (heads / kv_heads)). Exact softmax per row.
 *   q   [n, heads * head_dim];  out [n, heads * head_dim]
 *   k_cache, v_cache: sequence s, position t at (s * seq_stride + t * row_stride) elements,
 *   kv_heads * head_dim values each.
 */
typedef struct {
    int n, heads, kv_heads, head_dim;
    const int *seqs, *pos;
    int64_t seq_stride, row_stride;
    int max_ctx;                           /* positions per sequence (scratch size) */
    float scale;                           /* 0: 1/sqrt(head_dim) */
} kv_attention_params;
void attention_kv(ts_ctx *ctx, float *out, const float *q, const float *k_cache, const float *v_cache,
                  kv_attention_params p);

/* Rotary position embedding in place: each of the `heads` heads of row i of x [rows, heads *
 * head_dim] (row stride ld) turned by the angles pos[i] * inv_freq[j], j < head_dim / 2.
 * neox: pairs (j, j + head_dim/2) (Hugging Face rotate_half); else (2j, 2j+1) (Meta Llama). */
void rope(ts_ctx *ctx, float *x, int64_t ld, int rows, int heads, int head_dim, const int *pos, const float *inv_freq,
          bool neox);

#endif
