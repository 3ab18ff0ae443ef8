/*
 * cuda_elementwise.cu — the memory-bound ops: dtype conversion, add, bias, GEGLU, nearest 2x
 * upsampling, channel concat, NCHW<->NHWC. Grid-stride loops, math in F32. These are
 * hand-written because no NVIDIA library offers them for our layouts (cuDNN's pointwise
 * ops need its graph API per shape, a heavier price than these few lines).
 */
#include "kernels/cuda/cuda_private.h"

#define THREADS 256

#define GRID_STRIDE(i, n) \
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (int64_t)gridDim.x * blockDim.x)

template <typename D, typename S>
__global__ void convert_kernel(D *dst, const S *src, int64_t n) {
    GRID_STRIDE(i, n) st(dst, i, ld(src, i));
}

int cuda_convert(cuda_context *ctx, void *dst, dtype dst_type, const void *src, dtype src_type, int64_t n) {
    if (cuda_check_float_type(dst_type, "cuda_convert") || cuda_check_float_type(src_type, "cuda_convert")) return -1;
    if (n <= 0) return 0;
    unsigned blocks = cuda_blocks_for(ctx, n, THREADS);
    CUDA_DISPATCH_FLOAT(dst_type, D, CUDA_DISPATCH_FLOAT(src_type, S,
        convert_kernel<D, S><<<blocks, THREADS, 0, ctx->stream>>>((D *)dst, (const S *)src, n)));
    return cuda_check_launch("cuda_convert");
}

template <typename T>
__global__ void add_kernel(T *out, const T *a, const T *b, int64_t n) {
    GRID_STRIDE(i, n) st(out, i, ld(a, i) + ld(b, i));
}

int cuda_add(cuda_context *ctx, void *out, const void *a, const void *b, dtype t, int64_t n) {
    if (cuda_check_float_type(t, "cuda_add")) return -1;
    if (n <= 0) return 0;
    unsigned blocks = cuda_blocks_for(ctx, n, THREADS);
    CUDA_DISPATCH_FLOAT(t, T, add_kernel<T><<<blocks, THREADS, 0, ctx->stream>>>((T *)out, (const T *)a, (const T *)b, n));
    return cuda_check_launch("cuda_add");
}

template <typename T>
__global__ void add_bias_kernel(T *x, const T *bias, int64_t rows, int C, int64_t n) {
    GRID_STRIDE(i, n) {
        int64_t c = i % C, b = i / ((int64_t)C * rows);
        st(x, i, ld(x, i) + ld(bias, b * C + c));
    }
}

int cuda_add_bias(cuda_context *ctx, void *x, const void *bias, dtype t, int batches, int64_t rows, int C) {
    if (cuda_check_float_type(t, "cuda_add_bias")) return -1;
    int64_t n = (int64_t)batches * rows * C;
    if (n <= 0) return 0;
    unsigned blocks = cuda_blocks_for(ctx, n, THREADS);
    CUDA_DISPATCH_FLOAT(t, T, add_bias_kernel<T><<<blocks, THREADS, 0, ctx->stream>>>((T *)x, (const T *)bias, rows, C, n));
    return cuda_check_launch("cuda_add_bias");
}

template <typename T>
__global__ void geglu_kernel(T *out, const T *x, int dim, int64_t n) {
    GRID_STRIDE(i, n) {
        int64_t r = i / dim, c = i % dim;
        float a = ld(x, r * 2 * dim + c), g = ld(x, r * 2 * dim + dim + c);
        st(out, i, a * 0.5f * g * (1.0f + erff(g * 0.70710678118654752f)));
    }
}

int cuda_geglu(cuda_context *ctx, void *out, const void *x, dtype t, int64_t rows, int dim) {
    if (cuda_check_float_type(t, "cuda_geglu")) return -1;
    int64_t n = rows * dim;
    if (n <= 0) return 0;
    if (out == x) return ts_fail("cuda_geglu: out must not alias x");
    unsigned blocks = cuda_blocks_for(ctx, n, THREADS);
    CUDA_DISPATCH_FLOAT(t, T, geglu_kernel<T><<<blocks, THREADS, 0, ctx->stream>>>((T *)out, (const T *)x, dim, n));
    return cuda_check_launch("cuda_geglu");
}

/* One thread per output element; the input pixel is read four times, from cache. */
template <typename T>
__global__ void upsample2x_kernel(T *out, const T *x, int H, int W, int C, int64_t n) {
    GRID_STRIDE(i, n) {
        int64_t c = i % C, p = i / C;
        int64_t ox = p % (2 * W), t = p / (2 * W);
        int64_t oy = t % (2 * H), b = t / (2 * H);
        out[i] = x[((b * H + oy / 2) * W + ox / 2) * C + c];
    }
}

int cuda_upsample_nearest2x(cuda_context *ctx, void *out, const void *x, dtype t, int N, int H, int W, int C) {
    if (cuda_check_float_type(t, "cuda_upsample_nearest2x")) return -1;
    int64_t n = (int64_t)N * 4 * H * W * C;
    if (n <= 0) return 0;
    unsigned blocks = cuda_blocks_for(ctx, n, THREADS);
    CUDA_DISPATCH_FLOAT(t, T, upsample2x_kernel<T><<<blocks, THREADS, 0, ctx->stream>>>((T *)out, (const T *)x, H, W, C, n));
    return cuda_check_launch("cuda_upsample_nearest2x");
}

template <typename T>
__global__ void concat_kernel(T *out, const T *a, int ca, const T *b, int cb, int64_t n) {
    int co = ca + cb;
    GRID_STRIDE(i, n) {
        int64_t r = i / co, c = i % co;
        out[i] = c < ca ? a[r * ca + c] : b[r * cb + (c - ca)];
    }
}

int cuda_concat_channels(cuda_context *ctx, void *out, const void *a, int ca, const void *b, int cb,
                         dtype t, int64_t rows) {
    if (cuda_check_float_type(t, "cuda_concat_channels")) return -1;
    int64_t n = rows * (ca + cb);
    if (n <= 0) return 0;
    unsigned blocks = cuda_blocks_for(ctx, n, THREADS);
    CUDA_DISPATCH_FLOAT(t, T, concat_kernel<T><<<blocks, THREADS, 0, ctx->stream>>>((T *)out, (const T *)a, ca, (const T *)b, cb, n));
    return cuda_check_launch("cuda_concat_channels");
}

/* Transposes each [rows, cols] plane through a 32x32 shared tile, so that both the reads
 * and the writes are coalesced. */
template <typename T>
__global__ void transpose_kernel(T *out, const T *x, int64_t rows, int64_t cols) {
    __shared__ T tile[32][33];
    int64_t plane = blockIdx.z;
    const T *src = x + plane * rows * cols;
    T *dst = out + plane * rows * cols;
    int64_t c0 = (int64_t)blockIdx.x * 32, r0 = (int64_t)blockIdx.y * 32;
    for (int k = threadIdx.y; k < 32; k += blockDim.y) {
        int64_t r = r0 + k, c = c0 + threadIdx.x;
        if (r < rows && c < cols) tile[k][threadIdx.x] = src[r * cols + c];
    }
    __syncthreads();
    for (int k = threadIdx.y; k < 32; k += blockDim.y) {
        int64_t c = c0 + k, r = r0 + threadIdx.x;
        if (r < rows && c < cols) dst[c * rows + r] = tile[threadIdx.x][k];
    }
}

static int transpose_planes(cuda_context *ctx, void *out, const void *x, dtype t, int planes,
                            int64_t rows, int64_t cols, const char *op) {
    if (cuda_check_float_type(t, op)) return -1;
    if (planes <= 0 || rows <= 0 || cols <= 0) return 0;
    if (out == x) return ts_fail("%s: out must not alias x", op);
    if ((cols + 31) / 32 > 0x7fffffff || (rows + 31) / 32 > 65535 || planes > 65535)
        return ts_fail("%s: %d x %lld x %lld is too large for one launch", op, planes, (long long)rows, (long long)cols);
    dim3 grid((unsigned)((cols + 31) / 32), (unsigned)((rows + 31) / 32), (unsigned)planes), block(32, 8);
    CUDA_DISPATCH_FLOAT(t, T, transpose_kernel<T><<<grid, block, 0, ctx->stream>>>((T *)out, (const T *)x, rows, cols));
    return cuda_check_launch(op);
}

int cuda_nchw_to_nhwc(cuda_context *ctx, void *out, const void *x, dtype t, int N, int C, int64_t HW) {
    return transpose_planes(ctx, out, x, t, N, C, HW, "cuda_nchw_to_nhwc");
}

int cuda_nhwc_to_nchw(cuda_context *ctx, void *out, const void *x, dtype t, int N, int C, int64_t HW) {
    return transpose_planes(ctx, out, x, t, N, HW, C, "cuda_nhwc_to_nchw");
}
