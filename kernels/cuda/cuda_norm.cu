/*
 * cuda_norm.cu — GroupNorm (NHWC, SiLU fused) and LayerNorm, statistics in F32.
 *
 * Hand-written: cuDNN has no NHWC GroupNorm outside its graph API's per-shape plans, and
 * the fused SiLU would need a second pass there. Statistics use Welford partials merged
 * with Chan's formula, so large groups (a 512x512 VAE feature map has a million values
 * per group) keep their precision, and a group's values are spread over many blocks.
 */
#include "kernels/cuda/cuda_private.h"

struct moments { float n, mean, m2; };

__device__ __forceinline__ moments merge(moments a, moments b) {
    float n = a.n + b.n;
    if (n == 0) return a;
    float d = b.mean - a.mean, fb = b.n / n;
    moments r = {n, a.mean + d * fb, a.m2 + b.m2 + d * d * a.n * fb};
    return r;
}

__device__ __forceinline__ moments warp_merge(moments m) {
    for (int o = 16; o > 0; o /= 2) {
        moments other = {__shfl_down_sync(0xffffffffu, m.n, o), __shfl_down_sync(0xffffffffu, m.mean, o),
                         __shfl_down_sync(0xffffffffu, m.m2, o)};
        m = merge(m, other);
    }
    return m;
}

/* The block's moments in thread 0 (blockDim.x a multiple of 32, at most 1024). */
__device__ moments block_merge(moments m) {
    __shared__ moments part[32];
    m = warp_merge(m);
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    if (lane == 0) part[warp] = m;
    __syncthreads();
    if (warp == 0) {
        moments z = {0, 0, 0};
        m = lane < (int)(blockDim.x / 32) ? part[lane] : z;
        m = warp_merge(m);
    }
    __syncthreads();
    return m;
}

/* Grid (N*groups, chunks): each block folds one chunk of one group into partial moments. */
template <typename T>
__global__ void group_stats_kernel(moments *partial, const T *x, int64_t HW, int C, int groups, int64_t chunk) {
    int ng = blockIdx.x, n = ng / groups, g = ng % groups, cg = C / groups;
    int64_t count = HW * cg;
    int64_t begin = (int64_t)blockIdx.y * chunk, end = begin + chunk < count ? begin + chunk : count;
    const T *base = x + (int64_t)n * HW * C + (int64_t)g * cg;
    moments m = {0, 0, 0};
    for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
        float v = ld(base, (i / cg) * C + i % cg);
        m.n += 1;
        float d = v - m.mean;
        m.mean += d / m.n;
        m.m2 += d * (v - m.mean);
    }
    m = block_merge(m);
    if (threadIdx.x == 0) partial[(int64_t)ng * gridDim.y + blockIdx.y] = m;
}

/* One thread per (n, group): merges the chunks into mean and 1/std. */
__global__ void group_finish_kernel(float2 *stats, const moments *partial, int count, int chunks, float eps) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= count) return;
    moments m = {0, 0, 0};
    for (int c = 0; c < chunks; c++) m = merge(m, partial[(int64_t)i * chunks + c]);
    float var = m.n > 0 ? m.m2 / m.n : 0;
    stats[i] = make_float2(m.mean, rsqrtf(var + eps));
}

template <typename T>
__global__ void group_apply_kernel(T *out, const T *x, const float2 *stats, const float *gamma, const float *beta,
                                   int64_t HW, int C, int groups, bool silu, int64_t n) {
    int cg = C / groups;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int c = (int)(i % C);
        int64_t b = i / (HW * C);
        float2 s = stats[b * groups + c / cg];
        float v = (ld(x, i) - s.x) * s.y;
        if (gamma) v *= gamma[c];
        if (beta) v += beta[c];
        if (silu) v = v / (1.0f + __expf(-v));
        st(out, i, v);
    }
}

int cuda_group_norm(cuda_context *ctx, void *out, const void *x, dtype t, int N, int64_t HW, int C,
                    int groups, const float *gamma, const float *beta, float eps, bool silu) {
    if (cuda_check_float_type(t, "cuda_group_norm")) return -1;
    if (groups <= 0 || C % groups != 0)
        return ts_fail("cuda_group_norm: %d channels do not split into %d groups", C, groups);
    if (N <= 0 || HW <= 0) return 0;
    int64_t count = HW * (C / groups);
    /* enough chunks to give every multiprocessor a few blocks, none smaller than 4096 values */
    int64_t want = (int64_t)ctx->sm_count * 4 / ((int64_t)N * groups) + 1;
    int64_t chunks = (count + 4095) / 4096;
    if (chunks > want) chunks = want;
    if (chunks > 65535) chunks = 65535;
    if (chunks < 1) chunks = 1;
    int64_t chunk = (count + chunks - 1) / chunks;
    size_t mark = cuda_arena_mark(ctx);
    moments *partial = NULL;
    float2 *stats = NULL;
    /* statistics live in the arena when there is one, else in the workspace */
    size_t part_bytes = (size_t)N * groups * chunks * sizeof(moments), stat_bytes = (size_t)N * groups * sizeof(float2);
    if (ctx->arena_bytes - ctx->arena_used >= part_bytes + stat_bytes + 512) {
        partial = (moments *)cuda_arena_alloc(ctx, part_bytes);
        stats = (float2 *)cuda_arena_alloc(ctx, stat_bytes);
    } else {
        if (cuda_workspace_reserve(ctx, part_bytes + stat_bytes + 256) != 0) return -1;
        partial = (moments *)ctx->workspace;
        stats = (float2 *)((char *)ctx->workspace + (part_bytes + 255) / 256 * 256);
    }
    int ng = N * groups;
    dim3 grid((unsigned)ng, (unsigned)chunks);
    CUDA_DISPATCH_FLOAT(t, T, group_stats_kernel<T><<<grid, 256, 0, ctx->stream>>>(partial, (const T *)x, HW, C, groups, chunk));
    if (cuda_check_launch("cuda_group_norm statistics")) goto fail;
    group_finish_kernel<<<(ng + 127) / 128, 128, 0, ctx->stream>>>(stats, partial, ng, (int)chunks, eps);
    if (cuda_check_launch("cuda_group_norm statistics")) goto fail;
    {
        int64_t n = (int64_t)N * HW * C;
        unsigned blocks = cuda_blocks_for(ctx, n, 256);
        CUDA_DISPATCH_FLOAT(t, T, group_apply_kernel<T><<<blocks, 256, 0, ctx->stream>>>(
            (T *)out, (const T *)x, stats, gamma, beta, HW, C, groups, silu, n));
        if (cuda_check_launch("cuda_group_norm")) goto fail;
    }
    cuda_arena_reset(ctx, mark);
    return 0;
fail:
    cuda_arena_reset(ctx, mark);
    return -1;
}

/* One block per row: Welford over the row, then normalise (the row is re-read from cache). */
template <typename T>
__global__ void layer_norm_kernel(T *out, const T *x, int dim, const float *gamma, const float *beta, float eps) {
    __shared__ float2 row_stats;
    const T *xr = x + (int64_t)blockIdx.x * dim;
    T *yr = out + (int64_t)blockIdx.x * dim;
    moments m = {0, 0, 0};
    for (int i = threadIdx.x; i < dim; i += blockDim.x) {
        float v = ld(xr, i);
        m.n += 1;
        float d = v - m.mean;
        m.mean += d / m.n;
        m.m2 += d * (v - m.mean);
    }
    m = block_merge(m);
    if (threadIdx.x == 0) row_stats = make_float2(m.mean, rsqrtf(m.m2 / m.n + eps));
    __syncthreads();
    float2 s = row_stats;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) {
        float v = (ld(xr, i) - s.x) * s.y;
        if (gamma) v *= gamma[i];
        if (beta) v += beta[i];
        st(yr, i, v);
    }
}

int cuda_layer_norm(cuda_context *ctx, void *out, const void *x, dtype t, int64_t rows, int dim,
                    const float *gamma, const float *beta, float eps) {
    if (cuda_check_float_type(t, "cuda_layer_norm")) return -1;
    if (rows <= 0 || dim <= 0) return 0;
    if (rows > 0x7fffffff) return ts_fail("cuda_layer_norm: %lld rows is too many for one launch", (long long)rows);
    int threads = dim >= 1024 ? 256 : dim >= 256 ? 128 : 64;
    CUDA_DISPATCH_FLOAT(t, T, layer_norm_kernel<T><<<(unsigned)rows, threads, 0, ctx->stream>>>(
        (T *)out, (const T *)x, dim, gamma, beta, eps));
    return cuda_check_launch("cuda_layer_norm");
}
