/*
 * cuda.h — the CUDA library: one device context, device buffers, and the ops the networks
 * need, on NVIDIA GPUs (sm_80 and sm_90). Plain C; it knows no model.
 *
 * Conventions (the GPU twin of ops.h):
 *   - Every op is asynchronous on its context's stream and returns 0, or -1 with ts_fail
 *     (a bad argument, a library status, a launch error). cuda_synchronize() waits for the
 *     stream and reports an error that happened inside a kernel.
 *   - Pointers given to ops are device pointers (from a cuda_buffer, the arena, or any
 *     cudaMalloc); element types are kernels/tensor.h's dtype: DT_F32, DT_F16, DT_BF16.
 *     Math inside every op is F32 (accumulators, statistics, softmax).
 *   - Images are NHWC ([N, H, W, C], channels fastest): cuDNN's fast layout for F16/BF16.
 *     Token sequences are [rows, dim], row-major, as in ops.h.
 *   - Norm scales/shifts (gamma, beta) are F32 vectors on the device.
 *
 * The context owns: the stream, the cuBLASLt and cuDNN handles, a workspace for both, a
 * bump arena for activations (cuda_arena_alloc / mark / reset, stream-ordered), and a pinned
 * host staging buffer through which uploads and downloads go.
 */
#ifndef TESSERA_CUDA_H
#define TESSERA_CUDA_H

#ifdef __cplusplus
extern "C" {
#endif

#include "kernels/tensor.h"

/* ---- devices and the context ------------------------------------------- */

/* Devices the CUDA driver sees; 0 when there is no driver or no GPU (never fails). */
int cuda_device_count(void);
/* "NVIDIA H100 80GB HBM3 (sm_90, 132 SMs, 79.1 GiB)"; -1 with ts_fail on a bad device. */
int cuda_device_describe(int device, char *buf, size_t n);

typedef struct cuda_context cuda_context;

/* A context on `device` with an activation arena of arena_bytes (0: none). NULL on failure. */
cuda_context *cuda_context_new(int device, size_t arena_bytes);
void cuda_context_destroy(cuda_context **self);
/* Waits for all work queued on the context's stream; reports a kernel's failure. */
int cuda_synchronize(cuda_context *self);
/* The cudaStream_t, for callers that launch their own work or capture graphs. */
void *cuda_context_stream(cuda_context *self);

/* ---- memory -------------------------------------------------------------- */

typedef struct cuda_buffer cuda_buffer;

/* Device memory of `bytes`, uninitialised. NULL on failure (out of device memory). */
cuda_buffer *cuda_buffer_new(cuda_context *ctx, size_t bytes);
void cuda_buffer_destroy(cuda_buffer **self);
void *cuda_buffer_data(const cuda_buffer *self);
size_t cuda_buffer_size(const cuda_buffer *self);

/* Host -> device through the pinned staging buffer: `src` may be reused as soon as this
 * returns; the copy completes in stream order. dst is any device pointer. */
int cuda_upload(cuda_context *ctx, void *dst, const void *src, size_t bytes);
/* Device -> host: waits for the stream up to the copy, so `dst` holds the data on return. */
int cuda_download(cuda_context *ctx, void *dst, const void *src, size_t bytes);
/* Device memset to zero bytes, stream-ordered. */
int cuda_zero(cuda_context *ctx, void *dst, size_t bytes);

/* Arena for activations: 256-byte aligned bump allocation, NULL with ts_fail when full.
 * Memory handed out is reused after cuda_arena_reset; since all work is on one stream, work
 * queued before the reset finishes before work queued after it touches the memory. */
void *cuda_arena_alloc(cuda_context *ctx, size_t bytes);
size_t cuda_arena_mark(const cuda_context *ctx);
void cuda_arena_reset(cuda_context *ctx, size_t mark);
size_t cuda_arena_peak(const cuda_context *ctx);

/* ---- conversion and layout ----------------------------------------------- */

/* dst[n] (dst_type) = src[n] (src_type), round to nearest even. */
int cuda_convert(cuda_context *ctx, void *dst, dtype dst_type, const void *src, dtype src_type, int64_t n);
/* [N, C, HW] <-> [N, HW, C]. Also turns an OIHW conv weight into OHWI (N=out, HW=kh*kw). */
int cuda_nchw_to_nhwc(cuda_context *ctx, void *out, const void *x, dtype t, int N, int C, int64_t HW);
int cuda_nhwc_to_nchw(cuda_context *ctx, void *out, const void *x, dtype t, int N, int C, int64_t HW);

/* ---- GEMM (cuBLASLt) ----------------------------------------------------- */

typedef enum {
    CUDA_EPILOGUE_NONE = 0,
    CUDA_EPILOGUE_BIAS,            /* + bias[N] */
    CUDA_EPILOGUE_GELU_TANH,       /* gelu(approximate='tanh'): cuBLASLt's GELU is this one */
    CUDA_EPILOGUE_BIAS_GELU_TANH
} cuda_epilogue;

/*
 * C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C (+ bias[N]) (then GELU), row-major with
 * leading dimensions, `count` times with element strides between batches (count 0 or 1:
 * one product). A and B share ab_type; C has c_type, which is F32 or ab_type; bias has c_type.
 * F32 inputs compute in full F32 (no TF32); F16/BF16 inputs accumulate in F32.
 */
typedef struct {
    bool trans_a, trans_b;
    int M, N, K;
    float alpha, beta;
    const void *A; int lda; int64_t stride_a;
    const void *B; int ldb; int64_t stride_b;
    void *C; int ldc; int64_t stride_c;
    dtype ab_type, c_type;
    int count;
    cuda_epilogue epilogue;
    const void *bias;
} cuda_gemm_params;

int cuda_gemm(cuda_context *ctx, const cuda_gemm_params *p);

/* ---- convolution (cuDNN) ------------------------------------------------- */

/*
 * out[N, OH, OW, OC] = conv(x[N, H, W, C], w[OC, KH, KW, C/groups]) + bias[OC], all of one
 * dtype (F32 computes in F32 without TF32; F16/BF16 accumulate in F32). bias may be NULL.
 * With p->nchw: out[N, OC, OH, OW] = conv(x[N, C, H, W], w[OC, C/groups, KH, KW]) + bias.
 * OH = (H + 2*pad - KH) / stride + 1.
 */
typedef struct {
    int N, H, W, C;
    int OC, KH, KW;
    int stride, pad, groups;       /* groups 0 or 1: ordinary convolution */
    dtype type;
    bool nchw;                     /* x and out NCHW, w OIHW (ops.h's layout) instead of NHWC/OHWI */
} cuda_conv_params;

int cuda_conv2d(cuda_context *ctx, void *out, const void *x, const void *w, const void *bias,
                const cuda_conv_params *p);
void cuda_conv2d_out_size(const cuda_conv_params *p, int *OH, int *OW);

/* ---- normalisation and element-wise ------------------------------------- */

/* x [N, HW, C] (NHWC); statistics per (n, group) in F32; gamma/beta F32 [C] or NULL;
 * then SiLU when silu is true. In place allowed. */
int cuda_group_norm(cuda_context *ctx, void *out, const void *x, dtype t, int N, int64_t HW, int C,
                    int groups, const float *gamma, const float *beta, float eps, bool silu);
/* x [rows, dim]; gamma/beta F32 [dim] or NULL. In place allowed. */
int cuda_layer_norm(cuda_context *ctx, void *out, const void *x, dtype t, int64_t rows, int dim,
                    const float *gamma, const float *beta, float eps);
/* x [rows, 2*dim] -> out [rows, dim] = x[:, :dim] * gelu_erf(x[:, dim:]) (diffusers GEGLU). */
int cuda_geglu(cuda_context *ctx, void *out, const void *x, dtype t, int64_t rows, int dim);
/* x [N, H, W, C] -> out [N, 2H, 2W, C], nearest neighbour. */
int cuda_upsample_nearest2x(cuda_context *ctx, void *out, const void *x, dtype t, int N, int H, int W, int C);
/* a [rows, ca], b [rows, cb] -> out [rows, ca + cb] (channel concat of NHWC images). */
int cuda_concat_channels(cuda_context *ctx, void *out, const void *a, int ca, const void *b, int cb,
                         dtype t, int64_t rows);
/* out[n] = a[n] + b[n]. In place allowed (out == a or b). */
int cuda_add(cuda_context *ctx, void *out, const void *a, const void *b, dtype t, int64_t n);
/* x[b, r, c] += bias[b, c] for r < rows, c < C (a time embedding per batch; batches 1 for
 * a plain row bias). bias has x's dtype. */
int cuda_add_bias(cuda_context *ctx, void *x, const void *bias, dtype t, int batches, int64_t rows, int C);

/* ---- attention ----------------------------------------------------------- */

/*
 * Scaled-dot-product attention, never materialising the [n_q, n_kv] scores: keys are
 * visited in tiles with an online softmax (flash attention), math in F32.
 *   q   [batch, n_q, heads * head_dim]      (row stride q_stride elements)
 *   k,v [batch, n_kv, kv_heads * head_dim]  (row strides k_stride, v_stride)
 *   out [batch, n_q, heads * head_dim]      contiguous
 * All of one dtype. head_dim <= 256. scale 0 means 1/sqrt(head_dim). causal: key j > query i
 * masked, aligned at the end (i + n_kv - n_q). kv_heads 0 means heads (grouped-query
 * attention otherwise). A query whose keys are all masked gets a zero row.
 */
typedef struct {
    int batch, heads, kv_heads, head_dim;
    int64_t n_q, n_kv;
    int64_t q_stride, k_stride, v_stride;  /* 0: the packed width */
    float scale;
    bool causal;
    dtype type;
} cuda_attention_params;

int cuda_attention(cuda_context *ctx, void *out, const void *q, const void *k, const void *v,
                   const cuda_attention_params *p);

/* ---- ops.h's F32 twins (cuda_f32.cu): what the backend table needs ---------
 * Activations F32, images NCHW, as in kernels/ops.h; each is that op's math on the device. */

/* Device memory outside the arena (cudaMallocAsync on the stream); NULL with ts_fail. */
void *cuda_malloc(cuda_context *ctx, size_t bytes);
void cuda_free(cuda_context *ctx, void *p);
/* dst = src, device to device, ranges may overlap (through a temporary when they do). */
int cuda_copy(cuda_context *ctx, void *dst, const void *src, size_t bytes);
/* True when p is device memory (cudaMalloc, cudaMallocAsync, managed): ops take it as is. */
bool cuda_is_device_pointer(const void *p);

/* x [N, C, HW]; statistics per (n, group), accumulated in F64; gamma/beta F32 [C] or NULL. */
int cuda_group_norm_nchw(cuda_context *ctx, float *out, const float *x, int N, int C, int64_t HW, int groups,
                         const float *gamma, const float *beta, float eps);
/* x [rows, dim]: x / sqrt(mean(x^2) + eps) * w (w F32 [dim]). In place allowed. */
int cuda_rms_norm(cuda_context *ctx, float *out, const float *x, int64_t rows, int dim, const float *w, float eps);
/* In place softmax of each row of x [rows, n]. */
int cuda_softmax_rows(cuda_context *ctx, float *x, int64_t rows, int n);

/* out[i] = f(x[i]); the f of ops.h's activations and affine maps. In place allowed. */
typedef enum {
    CUDA_MAP_SILU, CUDA_MAP_GELU_ERF, CUDA_MAP_GELU_TANH, CUDA_MAP_QUICK_GELU, CUDA_MAP_RELU,
    CUDA_MAP_CLAMP,        /* min(max(x, a), b) */
    CUDA_MAP_SCALED_TANH,  /* tanh(x / a) * a */
    CUDA_MAP_AFFINE,       /* x * a + b */
    CUDA_MAP_FILL          /* a */
} cuda_map;
int cuda_map_f32(cuda_context *ctx, cuda_map f, float *out, const float *x, int64_t n, float a, float b);
/* out = silu(gate) * up, n values. */
int cuda_swiglu(cuda_context *ctx, float *out, const float *gate, const float *up, int64_t n);
/* x[n, c, :] += b[c] (per_image false) or b[n, c] (true), x [N, C, HW]. */
int cuda_add_channel_bias_nchw(cuda_context *ctx, float *x, int N, int C, int64_t HW, const float *b, bool per_image);
/* x [N, C, H, W] -> out [N, C, 2H, 2W], nearest. */
int cuda_upsample_nearest2x_nchw(cuda_context *ctx, float *out, const float *x, int N, int C, int H, int W);
/* dst[i*ds[0] + j*ds[1] + k*ds[2]] = src[i*ss[0] + j*ss[1] + k*ss[2]] over shape[3]. */
int cuda_copy_strided(cuda_context *ctx, float *dst, const int64_t ds[3], const float *src, const int64_t ss[3],
                      const int64_t shape[3]);
/* ops.h's crossfade (tiled VAE blending). */
int cuda_crossfade(cuda_context *ctx, float *b, int64_t b_plane, int64_t b_row, const float *a, int64_t a_plane,
                   int64_t a_row, int planes, int rows, int cols, int extent, bool along_rows);
/* ops.h's rgb8_from_planes; rgb is device memory. */
int cuda_rgb8_from_planes(cuda_context *ctx, uint8_t *rgb, const float *image, int C, int64_t hw, float scale, float offset);
/* out[i, :] = table[rows[i], :] (table F32 [V, D] on the device; rows device int32 or NULL: i). */
int cuda_gather_rows(cuda_context *ctx, float *out, const float *table, int64_t V, int D, const int32_t *rows, int n);
/* ops.h's timestep_embedding with t in device memory. */
int cuda_timestep_embedding(cuda_context *ctx, float *out, const float *t, int n, int dim, bool flip, float shift);
/* ops.h's rope and attention_kv, with pos, inv_freq and seqs in device memory. The scores of
 * one row take max_ctx floats of shared memory (up to ~56 K positions on sm_90). */
int cuda_rope(cuda_context *ctx, float *x, int64_t ld, int rows, int heads, int head_dim, const int *pos,
              const float *inv_freq, bool neox);
int cuda_attention_kv(cuda_context *ctx, float *out, const float *q, const float *k_cache, const float *v_cache, int n,
                      int heads, int kv_heads, int head_dim, const int *seqs, const int *pos, int64_t seq_stride,
                      int64_t row_stride, int max_ctx, float scale);

#ifdef __cplusplus
}
#endif

#endif
