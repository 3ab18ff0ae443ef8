/*
 * cuda_f32.cu — the device twins of ops.h's smaller ops, in ops.h's own layout (F32
 * activations, NCHW images): what the backend table (cuda_backend.c) needs beyond GEMM,
 * convolution, LayerNorm and attention, which it takes from the rest of this library.
 *
 * Hand-written because they are a few lines each and no NVIDIA library has them in this
 * layout without a per-shape plan (cuDNN's graph API). Math follows kernels/cpu/ line by
 * line; where the CPU sums in double (GroupNorm statistics), so do these.
 */
#include "kernels/cuda/cuda_private.h"

#include <string.h>

#define THREADS 256

#define GRID_STRIDE(i, n) \
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (int64_t)gridDim.x * blockDim.x)

/* ---- memory ---------------------------------------------------------------- */

void *cuda_malloc(cuda_context *ctx, size_t bytes) {
    void *p = NULL;
    if (cuda_check(cudaMallocAsync(&p, bytes ? bytes : 1, ctx->stream), "cudaMallocAsync") != 0) {
        ts_fail_wrap("device memory: %zu bytes", bytes);
        return NULL;
    }
    return p;
}

void cuda_free(cuda_context *ctx, void *p) {
    if (p) cudaFreeAsync(p, ctx->stream);   /* stream-ordered: queued work may still read it */
}

bool cuda_is_device_pointer(const void *p) {
    cudaPointerAttributes a;
    if (!p || cudaPointerGetAttributes(&a, p) != cudaSuccess) {
        cudaGetLastError();   /* a host pointer may leave an error behind on old drivers */
        return false;
    }
    return a.type == cudaMemoryTypeDevice || a.type == cudaMemoryTypeManaged;
}

int cuda_copy(cuda_context *ctx, void *dst, const void *src, size_t bytes) {
    if (!bytes || dst == src) return 0;
    const char *d = (const char *)dst, *s = (const char *)src;
    if (d < s + bytes && s < d + bytes) {   /* overlap: cudaMemcpy does not promise memmove */
        void *tmp = cuda_malloc(ctx, bytes);
        if (!tmp) return -1;
        int rc = cuda_check(cudaMemcpyAsync(tmp, src, bytes, cudaMemcpyDeviceToDevice, ctx->stream), "cudaMemcpyAsync") ||
                 cuda_check(cudaMemcpyAsync(dst, tmp, bytes, cudaMemcpyDeviceToDevice, ctx->stream), "cudaMemcpyAsync");
        cuda_free(ctx, tmp);
        return rc ? -1 : 0;
    }
    return cuda_check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, ctx->stream), "cudaMemcpyAsync");
}

/* ---- reductions over a row or a group: one block each ----------------------- */

/* The block's sum of v in every thread (blockDim.x a multiple of 32, at most 1024). */
template <typename T>
__device__ T block_sum(T v) {
    __shared__ T part[32];
    for (int o = 16; o > 0; o /= 2) v += __shfl_down_sync(0xffffffffu, v, o);
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    __syncthreads();   /* part may still be read by a previous call */
    if (lane == 0) part[warp] = v;
    __syncthreads();
    T total = 0;
    for (int w = 0; w < (int)(blockDim.x / 32); w++) total += part[w];
    return total;
}

__device__ float block_max(float v) {
    __shared__ float part[32];
    for (int o = 16; o > 0; o /= 2) v = fmaxf(v, __shfl_down_sync(0xffffffffu, v, o));
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    __syncthreads();
    if (lane == 0) part[warp] = v;
    __syncthreads();
    float m = part[0];
    for (int w = 1; w < (int)(blockDim.x / 32); w++) m = fmaxf(m, part[w]);
    return m;
}

/* Block (n, g): mean and variance of the group's C/groups planes in F64, then the affine map. */
__global__ void group_norm_nchw_kernel(float *out, const float *x, int C, int64_t HW, int groups, const float *gamma,
                                       const float *beta, float eps) {
    int n = blockIdx.x / groups, g = blockIdx.x % groups, cg = C / groups;
    int64_t count = (int64_t)cg * HW, base = ((int64_t)n * C + (int64_t)g * cg) * HW;
    double s = 0, s2 = 0;
    for (int64_t i = threadIdx.x; i < count; i += blockDim.x) {
        double v = x[base + i];
        s += v;
        s2 += v * v;
    }
    s = block_sum(s);
    s2 = block_sum(s2);
    double mean = s / (double)count, var = s2 / (double)count - mean * mean;
    if (var < 0) var = 0;
    float m = (float)mean, inv = (float)(1.0 / sqrt(var + (double)eps));
    for (int64_t i = threadIdx.x; i < count; i += blockDim.x) {
        int c = g * cg + (int)(i / HW);
        float y = (x[base + i] - m) * inv;
        if (gamma) y *= gamma[c];
        if (beta) y += beta[c];
        out[base + i] = y;
    }
}

int cuda_group_norm_nchw(cuda_context *ctx, float *out, const float *x, int N, int C, int64_t HW, int groups,
                         const float *gamma, const float *beta, float eps) {
    if (groups <= 0 || C % groups)
        return ts_fail("cuda_group_norm_nchw: %d channels do not split into %d groups", C, groups);
    if (N <= 0 || HW <= 0) return 0;
    group_norm_nchw_kernel<<<(unsigned)(N * groups), 512, 0, ctx->stream>>>(out, x, C, HW, groups, gamma, beta, eps);
    return cuda_check_launch("cuda_group_norm_nchw");
}

__global__ void rms_norm_kernel(float *out, const float *x, int dim, const float *w, float eps) {
    const float *xr = x + (int64_t)blockIdx.x * dim;
    float *yr = out + (int64_t)blockIdx.x * dim;
    double s = 0;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) s += (double)xr[i] * xr[i];
    s = block_sum(s);
    float inv = 1.0f / sqrtf((float)(s / dim) + eps);
    for (int i = threadIdx.x; i < dim; i += blockDim.x) yr[i] = xr[i] * inv * w[i];
}

int cuda_rms_norm(cuda_context *ctx, float *out, const float *x, int64_t rows, int dim, const float *w, float eps) {
    if (rows <= 0) return 0;
    rms_norm_kernel<<<(unsigned)rows, 256, 0, ctx->stream>>>(out, x, dim, w, eps);
    return cuda_check_launch("cuda_rms_norm");
}

__global__ void softmax_rows_kernel(float *x, int n) {
    float *r = x + (int64_t)blockIdx.x * n;
    float m = -INFINITY;
    for (int i = threadIdx.x; i < n; i += blockDim.x) m = fmaxf(m, r[i]);
    m = block_max(m);
    float s = 0;
    for (int i = threadIdx.x; i < n; i += blockDim.x) s += expf(r[i] - m);
    s = block_sum(s);
    float inv = 1.0f / s;
    for (int i = threadIdx.x; i < n; i += blockDim.x) r[i] = expf(r[i] - m) * inv;
}

int cuda_softmax_rows(cuda_context *ctx, float *x, int64_t rows, int n) {
    if (rows <= 0 || n <= 0) return 0;
    softmax_rows_kernel<<<(unsigned)rows, 256, 0, ctx->stream>>>(x, n);
    return cuda_check_launch("cuda_softmax_rows");
}

/* ---- element-wise ------------------------------------------------------------ */

__global__ void map_kernel(cuda_map f, float *out, const float *x, int64_t n, float a, float b) {
    GRID_STRIDE(i, n) {
        float v = f == CUDA_MAP_FILL ? a : x[i], y;
        switch (f) {
        case CUDA_MAP_SILU: y = v / (1.0f + expf(-v)); break;
        case CUDA_MAP_GELU_ERF: y = 0.5f * v * (1.0f + erff(v * 0.70710678118654752f)); break;
        case CUDA_MAP_GELU_TANH: y = 0.5f * v * (1.0f + tanhf(0.79788456080286536f * (v + 0.044715f * v * v * v))); break;
        case CUDA_MAP_QUICK_GELU: y = v / (1.0f + expf(-1.702f * v)); break;
        case CUDA_MAP_RELU: y = v > 0 ? v : 0; break;
        case CUDA_MAP_CLAMP: y = fminf(fmaxf(v, a), b); break;
        case CUDA_MAP_SCALED_TANH: y = tanhf(v / a) * a; break;
        case CUDA_MAP_AFFINE: y = v * a + b; break;
        default: y = v; break;
        }
        out[i] = y;
    }
}

int cuda_map_f32(cuda_context *ctx, cuda_map f, float *out, const float *x, int64_t n, float a, float b) {
    if (n <= 0) return 0;
    map_kernel<<<cuda_blocks_for(ctx, n, THREADS), THREADS, 0, ctx->stream>>>(f, out, x, n, a, b);
    return cuda_check_launch("cuda_map_f32");
}

__global__ void swiglu_kernel(float *out, const float *gate, const float *up, int64_t n) {
    GRID_STRIDE(i, n) {
        float g = gate[i];
        out[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

int cuda_swiglu(cuda_context *ctx, float *out, const float *gate, const float *up, int64_t n) {
    if (n <= 0) return 0;
    swiglu_kernel<<<cuda_blocks_for(ctx, n, THREADS), THREADS, 0, ctx->stream>>>(out, gate, up, n);
    return cuda_check_launch("cuda_swiglu");
}

__global__ void channel_bias_kernel(float *x, int N, int C, int64_t HW, const float *b, bool per_image) {
    int64_t n_all = (int64_t)N * C * HW;
    GRID_STRIDE(i, n_all) {
        int64_t nc = i / HW;
        x[i] += per_image ? b[nc] : b[nc % C];
    }
}

int cuda_add_channel_bias_nchw(cuda_context *ctx, float *x, int N, int C, int64_t HW, const float *b, bool per_image) {
    int64_t n = (int64_t)N * C * HW;
    if (n <= 0) return 0;
    channel_bias_kernel<<<cuda_blocks_for(ctx, n, THREADS), THREADS, 0, ctx->stream>>>(x, N, C, HW, b, per_image);
    return cuda_check_launch("cuda_add_channel_bias_nchw");
}

/* ---- layout -------------------------------------------------------------------- */

__global__ void upsample_nchw_kernel(float *out, const float *x, int H, int W, int64_t n) {
    GRID_STRIDE(i, n) {
        int64_t ow = i % (2 * W), oh = (i / (2 * W)) % (2 * H), plane = i / ((int64_t)4 * H * W);
        out[i] = x[plane * H * W + (oh / 2) * W + ow / 2];
    }
}

int cuda_upsample_nearest2x_nchw(cuda_context *ctx, float *out, const float *x, int N, int C, int H, int W) {
    int64_t n = (int64_t)N * C * H * W * 4;
    if (n <= 0) return 0;
    upsample_nchw_kernel<<<cuda_blocks_for(ctx, n, THREADS), THREADS, 0, ctx->stream>>>(out, x, H, W, n);
    return cuda_check_launch("cuda_upsample_nearest2x_nchw");
}

struct strides3 { int64_t d[3], s[3], shape[3]; };

__global__ void copy_strided_kernel(float *dst, const float *src, strides3 g, int64_t n) {
    GRID_STRIDE(idx, n) {
        int64_t k = idx % g.shape[2], j = (idx / g.shape[2]) % g.shape[1], i = idx / (g.shape[2] * g.shape[1]);
        dst[i * g.d[0] + j * g.d[1] + k * g.d[2]] = src[i * g.s[0] + j * g.s[1] + k * g.s[2]];
    }
}

int cuda_copy_strided(cuda_context *ctx, float *dst, const int64_t ds[3], const float *src, const int64_t ss[3],
                      const int64_t shape[3]) {
    int64_t n = shape[0] * shape[1] * shape[2];
    if (n <= 0) return 0;
    strides3 g;
    memcpy(g.d, ds, sizeof g.d);
    memcpy(g.s, ss, sizeof g.s);
    memcpy(g.shape, shape, sizeof g.shape);
    copy_strided_kernel<<<cuda_blocks_for(ctx, n, THREADS), THREADS, 0, ctx->stream>>>(dst, src, g, n);
    return cuda_check_launch("cuda_copy_strided");
}

/* the CPU's crossfade (cpu_backend.c), the same weights computed the same way */
__global__ void crossfade_kernel(float *b, int64_t b_plane, int64_t b_row, const float *a, int64_t a_plane, int64_t a_row,
                                 int rows, int cols, int extent, bool along_rows, int64_t n) {
    GRID_STRIDE(idx, n) {
        int c = (int)(idx % cols), r = (int)((idx / cols) % rows);
        int64_t p = idx / ((int64_t)cols * rows);
        int pos = along_rows ? r : c;
        float wb = (float)((double)pos / extent), wa = (float)(1.0 - (double)pos / extent);
        float *bp = b + p * b_plane + (int64_t)r * b_row + c;
        *bp = a[p * a_plane + (int64_t)r * a_row + c] * wa + *bp * wb;
    }
}

int cuda_crossfade(cuda_context *ctx, float *b, int64_t b_plane, int64_t b_row, const float *a, int64_t a_plane,
                   int64_t a_row, int planes, int rows, int cols, int extent, bool along_rows) {
    int64_t n = (int64_t)planes * rows * cols;
    if (n <= 0 || extent <= 0) return 0;
    crossfade_kernel<<<cuda_blocks_for(ctx, n, THREADS), THREADS, 0, ctx->stream>>>(b, b_plane, b_row, a, a_plane, a_row,
                                                                                    rows, cols, extent, along_rows, n);
    return cuda_check_launch("cuda_crossfade");
}

__global__ void rgb8_kernel(uint8_t *rgb, const float *image, int C, int64_t hw, float scale, float offset) {
    GRID_STRIDE(i, hw * 3) {
        int64_t p = i / 3;
        int k = (int)(i % 3);
        float v = image[(int64_t)(k < C ? k : C - 1) * hw + p] * scale + offset;
        v = fminf(fmaxf(v, 0.0f), 1.0f);
        rgb[i] = (uint8_t)lrintf(v * 255.0f);
    }
}

int cuda_rgb8_from_planes(cuda_context *ctx, uint8_t *rgb, const float *image, int C, int64_t hw, float scale, float offset) {
    if (hw <= 0 || C <= 0) return 0;
    rgb8_kernel<<<cuda_blocks_for(ctx, hw * 3, THREADS), THREADS, 0, ctx->stream>>>(rgb, image, C, hw, scale, offset);
    return cuda_check_launch("cuda_rgb8_from_planes");
}

__global__ void gather_rows_kernel(float *out, const float *table, int D, const int32_t *rows, int64_t n) {
    GRID_STRIDE(i, n) {
        int64_t r = i / D;
        out[i] = table[(int64_t)(rows ? rows[r] : r) * D + i % D];
    }
}

int cuda_gather_rows(cuda_context *ctx, float *out, const float *table, int64_t V, int D, const int32_t *rows, int n) {
    (void)V;   /* rows were checked against V on the host */
    int64_t total = (int64_t)n * D;
    if (total <= 0) return 0;
    gather_rows_kernel<<<cuda_blocks_for(ctx, total, THREADS), THREADS, 0, ctx->stream>>>(out, table, D, rows, total);
    return cuda_check_launch("cuda_gather_rows");
}

/* diffusers' get_timestep_embedding in float32 (kernels/cpu/ has the same steps) */
__global__ void timestep_embedding_kernel(float *out, const float *t, int dim, bool flip, float shift, int64_t n) {
    int half = dim / 2;
    GRID_STRIDE(i, n) {
        int64_t row = i / dim;
        int j = (int)(i % dim);
        float v = 0;
        if (j < 2 * half) {
            int k = j < half ? j : j - half;
            float e = (-9.21034049987792969f * (float)k) / ((float)half - shift);   /* -ln(10000) k / (half - shift) */
            float arg = t[row] * expf(e);
            bool sin_half = flip ? j >= half : j < half;
            v = sin_half ? sinf(arg) : cosf(arg);
        }
        out[i] = v;
    }
}

int cuda_timestep_embedding(cuda_context *ctx, float *out, const float *t, int n, int dim, bool flip, float shift) {
    int64_t total = (int64_t)n * dim;
    if (total <= 0) return 0;
    timestep_embedding_kernel<<<cuda_blocks_for(ctx, total, THREADS), THREADS, 0, ctx->stream>>>(out, t, dim, flip, shift,
                                                                                                 total);
    return cuda_check_launch("cuda_timestep_embedding");
}

/* ---- the LLM's ops ------------------------------------------------------------------ */

/* ops.h's rope: one thread per (row, head, pair); pos and inv_freq in device memory */
__global__ void rope_kernel(float *x, int64_t ld, int rows, int heads, int hd, const int *pos, const float *inv_freq,
                            bool neox) {
    int half = hd / 2;
    GRID_STRIDE(idx, (int64_t)rows * heads * half) {
        int i = (int)(idx % half), h = (int)((idx / half) % heads), r = (int)(idx / ((int64_t)half * heads));
        float a = (float)pos[r] * inv_freq[i], cr = cosf(a), sr = sinf(a);
        float *v = x + r * ld + (int64_t)h * hd;
        int i0 = neox ? i : 2 * i, i1 = neox ? i + half : 2 * i + 1;
        float a0 = v[i0], a1 = v[i1];
        v[i0] = a0 * cr - a1 * sr;
        v[i1] = a0 * sr + a1 * cr;
    }
}

int cuda_rope(cuda_context *ctx, float *x, int64_t ld, int rows, int heads, int head_dim, const int *pos,
              const float *inv_freq, bool neox) {
    int64_t n = (int64_t)rows * heads * (head_dim / 2);
    if (n <= 0) return 0;
    rope_kernel<<<cuda_blocks_for(ctx, n, THREADS), THREADS, 0, ctx->stream>>>(x, ld, rows, heads, head_dim, pos, inv_freq,
                                                                               neox);
    return cuda_check_launch("cuda_rope");
}

/* ops.h's attention_kv: block (row i, head h) scores its T = pos[i] + 1 keys into shared
 * memory (max_ctx floats), takes the exact softmax, then sums the values; seqs and pos in
 * device memory. */
__global__ void attention_kv_kernel(float *out, const float *q, const float *k_cache, const float *v_cache, int heads,
                                    int group, int hd, const int *seqs, const int *pos, int64_t seq_stride,
                                    int64_t row_stride, float scale) {
    extern __shared__ float sc[];
    int i = blockIdx.x / heads, h = blockIdx.x % heads, kvh = h / group, T = pos[i] + 1;
    const float *qi = q + ((int64_t)i * heads + h) * hd;
    int64_t base = (int64_t)seqs[i] * seq_stride + (int64_t)kvh * hd;
    for (int t = threadIdx.x; t < T; t += blockDim.x) {
        const float *kt = k_cache + base + (int64_t)t * row_stride;
        float d = 0;
        for (int e = 0; e < hd; e++) d += qi[e] * kt[e];
        sc[t] = d * scale;
    }
    __syncthreads();
    float m = -INFINITY;
    for (int t = threadIdx.x; t < T; t += blockDim.x) m = fmaxf(m, sc[t]);
    m = block_max(m);
    float s = 0;
    for (int t = threadIdx.x; t < T; t += blockDim.x) {
        sc[t] = expf(sc[t] - m);
        s += sc[t];
    }
    s = block_sum(s);
    __syncthreads();
    float inv = 1.0f / s;
    float *o = out + ((int64_t)i * heads + h) * hd;
    for (int e = threadIdx.x; e < hd; e += blockDim.x) {
        float acc = 0;
        for (int t = 0; t < T; t++) acc += sc[t] * v_cache[base + (int64_t)t * row_stride + e];
        o[e] = acc * inv;
    }
}

int cuda_attention_kv(cuda_context *ctx, float *out, const float *q, const float *k_cache, const float *v_cache, int n,
                      int heads, int kv_heads, int head_dim, const int *seqs, const int *pos, int64_t seq_stride,
                      int64_t row_stride, int max_ctx, float scale) {
    if (n <= 0) return 0;
    int group = heads / (kv_heads > 0 ? kv_heads : heads);
    size_t shared = (size_t)max_ctx * sizeof(float);
    if (shared > 48 * 1024 &&
        cuda_check(cudaFuncSetAttribute(attention_kv_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)shared),
                   "cuda_attention_kv: shared memory for the scores"))
        return -1;
    attention_kv_kernel<<<(unsigned)(n * heads), 128, shared, ctx->stream>>>(
        out, q, k_cache, v_cache, heads, group, head_dim, seqs, pos, seq_stride, row_stride,
        scale != 0 ? scale : 1.0f / sqrtf((float)head_dim));
    return cuda_check_launch("cuda_attention_kv");
}
