/*
 * ops.h — the CPU math the models need, free of any model knowledge.
 *
 * Conventions:
 *   - Activations are contiguous float32, row-major, outermost dimension first.
 *     Images are NCHW. Token sequences are [rows, dim].
 *   - Weights come as `const tensor *` of any dtype (F32/F16/BF16), so they can stay
 *     in the memory-mapped file and be widened on the fly.
 *   - `out` may alias `x` only where the comment says "in place allowed".
 *   - Functions that can fail (bad shapes) return int and call ts_fail; pure
 *     element-wise math returns void.
 * GEMM and convolution go through the library chosen at build time (see gemm.c).
 */
#ifndef TESSERA_OPS_H
#define TESSERA_OPS_H

#include "tensor.h"

/* ---- GEMM -------------------------------------------------------------- */

/* C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C, row-major, with leading dims.
 * The result never depends on the thread count or on what else runs in the process (gemm.c):
 * call it anywhere, also inside an OpenMP region of your own (it then runs on that thread). */
void gemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha,
          const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc);

/* count independent GEMMs; each operand advances by its stride (elements) per batch. */
void gemm_batched(int count, bool trans_a, bool trans_b, int M, int N, int K, float alpha,
                  const float *A, int lda, int64_t stride_a,
                  const float *B, int ldb, int64_t stride_b, float beta,
                  float *C, int ldc, int64_t stride_c);

/* y[rows, out] = x[rows, in] * W^T + b, with W [out, in] of any dtype; b may be NULL. */
int linear(float *y, const float *x, int64_t rows, const tensor *W, const tensor *b);

/* ---- convolution ------------------------------------------------------- */

typedef struct {
    int stride_h, stride_w;
    int pad_h, pad_w;
    int groups;            /* 0 or 1: ordinary convolution */
} conv2d_params;

/* out[N, OC, OH, OW] = conv(x[N, C, H, W], W [OC, C/groups, KH, KW]) + b.
 * OH = (H + 2*pad_h - KH) / stride_h + 1. b may be NULL. */
int conv2d(float *out, const float *x, int N, int C, int H, int W,
           const tensor *weight, const tensor *bias, conv2d_params p);
void conv2d_out_size(int H, int W, const tensor *weight, conv2d_params p, int *OH, int *OW);

/* Which implementation conv2d uses (process-wide). AUTO, the default, is chosen by
 * measurement (conv.c): oneDNN, except 1x1 and few-input-channel convolutions (sgemm). */
typedef enum { CONV_BACKEND_AUTO = 0, CONV_BACKEND_IM2COL, CONV_BACKEND_ONEDNN } conv2d_backend;
void conv2d_set_backend(conv2d_backend b);
conv2d_backend conv2d_get_backend(void);          /* never AUTO: the main one in use */
bool conv2d_backend_available(conv2d_backend b);
const char *conv2d_backend_name(conv2d_backend b);
/* Opt-in (oneDNN): keep up to max_bytes of weights in the backend's layout, keyed by the
 * weight's address, saving the per-call reorder (~30 ms for 1280x1280x3x3). Only for
 * weights that stay unchanged at their address (e.g. memory-mapped) until _clear(). */
void conv2d_weight_cache(size_t max_bytes);
void conv2d_weight_cache_clear(void);

/* ---- normalisation ----------------------------------------------------- */

/* x [N, C, HW]; statistics per (n, group); gamma/beta [C] may be NULL. In place allowed. */
int group_norm(float *out, const float *x, int N, int C, int64_t HW, int groups,
               const tensor *gamma, const tensor *beta, float eps);
/* x [rows, dim]; gamma/beta [dim] may be NULL. In place allowed. */
int layer_norm(float *out, const float *x, int64_t rows, int dim,
               const tensor *gamma, const tensor *beta, float eps);
/* y = x / sqrt(mean(x^2) + eps) * w. In place allowed. */
int rms_norm(float *out, const float *x, int64_t rows, int dim, const tensor *weight, float eps);

/* ---- activations (in place allowed) ------------------------------------ */

void softmax_rows(float *x, int64_t rows, int n);         /* in place, per row */
void silu(float *out, const float *x, int64_t n);
void gelu_erf(float *out, const float *x, int64_t n);     /* torch gelu(approximate='none') */
void gelu_tanh(float *out, const float *x, int64_t n);    /* torch gelu(approximate='tanh') */
void quick_gelu(float *out, const float *x, int64_t n);   /* x * sigmoid(1.702 x) (CLIP) */
/* x [rows, 2*dim] -> out [rows, dim]: out = x[:, :dim] * gelu_erf(x[:, dim:]) (diffusers GEGLU) */
void geglu(float *out, const float *x, int64_t rows, int dim);
/* out[rows, dim] = silu(gate) * up, gate and up [rows, dim] (Llama SwiGLU). */
void swiglu(float *out, const float *gate, const float *up, int64_t rows, int dim);

/* ---- element-wise with broadcasting ------------------------------------ */

/* out = a + b / a * b for views with numpy broadcasting (shapes aligned at the right).
 * out must be contiguous F32 with the broadcast shape. */
int tensor_add(tensor *out, const tensor *a, const tensor *b);
int tensor_mul(tensor *out, const tensor *a, const tensor *b);
void add_inplace(float *x, const float *y, int64_t n);     /* x += y */
void scale_inplace(float *x, float s, int64_t n);          /* x *= s */
/* x[rows, dim] += b[dim] (any dtype) */
void add_row_bias(float *x, int64_t rows, int dim, const tensor *b);
/* x[N, C, HW] += b[N, C] per channel (time embedding into ResNet features) */
void add_channel_bias(float *x, int N, int C, int64_t HW, const float *b);

/* ---- layout ------------------------------------------------------------ */

/* x [N, C, H, W] -> out [N, C, 2H, 2W], nearest neighbour. */
void upsample_nearest2x(float *out, const float *x, int N, int C, int H, int W);
/* Concatenate contiguous views along dim; all other dims equal. out contiguous F32. */
int tensor_concat(tensor *out, const tensor *parts, int count, int dim);
/* [N, C, HW] <-> [N, HW, C] (the layout switch around transformer blocks). */
void nchw_to_nhwc(float *out, const float *x, int N, int C, int64_t HW);
void nhwc_to_nchw(float *out, const float *x, int N, int C, int64_t HW);

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

void attention(float *out, const float *q, const float *k, const float *v, attention_params p);

#endif
