/*
 * cuda_attention.cu — flash-style scaled-dot-product attention: the [n_q, n_kv] score
 * matrix never exists; keys and values are visited in tiles of 32 with an online softmax.
 *
 * Hand-written because cuBLASLt has no attention and cuDNN's fused SDPA needs a graph
 * built per shape (and its F32 path is missing), while the models need F32 for parity.
 *
 * A block of 4 warps owns 16 query rows of one (batch, head); each warp owns 4 of them.
 * Per key tile, lane j scores key j against the warp's 4 queries (Q pre-scaled by
 * scale*log2(e), so exp2 gives the softmax), the running max and sum are updated with warp
 * shuffles, and for P·V each lane owns the output columns d = lane + 32c (c < DC), so every
 * register index is a compile-time constant. K and V rows are padded by one float in shared
 * memory so that lane j reading row j hits 32 different banks. Math is F32 on CUDA cores;
 * a tensor-core (mma) version is the next step for speed.
 */
#include "kernels/cuda/cuda_private.h"

#include <math.h>

#define WARPS 4
#define ROWS_PER_WARP 4
#define BLOCK_Q (WARPS * ROWS_PER_WARP)
#define BLOCK_K 32

struct attn_args {
    int heads, group, D;                 /* group: query heads per key/value head */
    int64_t nq, nk, qs, ks, vs;
    float qscale;                        /* scale * log2(e) */
    bool causal;
};

__device__ __forceinline__ float warp_max(float x) {
    for (int o = 16; o > 0; o /= 2) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
    return x;
}

__device__ __forceinline__ float warp_sum(float x) {
    for (int o = 16; o > 0; o /= 2) x += __shfl_xor_sync(0xffffffffu, x, o);
    return x;
}

template <typename T, int DC>
__global__ void __launch_bounds__(WARPS * 32) flash_kernel(T *out, const T *q, const T *k, const T *v, attn_args a) {
    extern __shared__ float smem[];
    const int D = a.D, DP = a.D + 1;
    float *qsm = smem;                          /* [BLOCK_Q][D] */
    float *ksm = qsm + BLOCK_Q * D;             /* [BLOCK_K][D+1] */
    float *vsm = ksm + BLOCK_K * DP;            /* [BLOCK_K][D+1] */
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    const int b = blockIdx.z, h = blockIdx.y, kvh = h / a.group;
    const int64_t q0 = (int64_t)blockIdx.x * BLOCK_Q;
    const T *qb = q + (int64_t)b * a.nq * a.qs + (int64_t)h * D;
    const T *kb = k + (int64_t)b * a.nk * a.ks + (int64_t)kvh * D;
    const T *vb = v + (int64_t)b * a.nk * a.vs + (int64_t)kvh * D;
    const int64_t shift = a.nk - a.nq;          /* causal: query i sees keys j <= i + shift */

    for (int i = tid; i < BLOCK_Q * D; i += blockDim.x) {
        int r = i / D, d = i % D;
        int64_t qi = q0 + r;
        qsm[i] = qi < a.nq ? ld(qb, qi * a.qs + d) * a.qscale : 0.0f;
    }

    int64_t kend = a.nk;
    if (a.causal) {
        int64_t last = (q0 + BLOCK_Q < a.nq ? q0 + BLOCK_Q : a.nq) - 1;
        kend = last + shift + 1;
        if (kend > a.nk) kend = a.nk;
        if (kend < 0) kend = 0;
    }

    const int r0 = warp * ROWS_PER_WARP;
    float m[ROWS_PER_WARP], l[ROWS_PER_WARP], acc[ROWS_PER_WARP][DC];
#pragma unroll
    for (int r = 0; r < ROWS_PER_WARP; r++) {
        m[r] = -INFINITY;
        l[r] = 0;
#pragma unroll
        for (int c = 0; c < DC; c++) acc[r][c] = 0;
    }

    for (int64_t k0 = 0; k0 < kend; k0 += BLOCK_K) {
        __syncthreads();   /* the previous tile is consumed (and Q is stored, the first time) */
        for (int i = tid; i < BLOCK_K * D; i += blockDim.x) {
            int j = i / D, d = i % D;
            int64_t kj = k0 + j;
            ksm[j * DP + d] = kj < a.nk ? ld(kb, kj * a.ks + d) : 0.0f;
            vsm[j * DP + d] = kj < a.nk ? ld(vb, kj * a.vs + d) : 0.0f;
        }
        __syncthreads();

        float s[ROWS_PER_WARP];
#pragma unroll
        for (int r = 0; r < ROWS_PER_WARP; r++) s[r] = 0;
        const float *krow = ksm + lane * DP;
        for (int d = 0; d < D; d++) {
            float kv = krow[d];
#pragma unroll
            for (int r = 0; r < ROWS_PER_WARP; r++) s[r] += qsm[(r0 + r) * D + d] * kv;
        }
        const int64_t kj = k0 + lane;
#pragma unroll
        for (int r = 0; r < ROWS_PER_WARP; r++) {
            int64_t qi = q0 + r0 + r;
            bool valid = kj < a.nk && qi < a.nq && (!a.causal || kj <= qi + shift);
            float sr = valid ? s[r] : -INFINITY;
            float mnew = fmaxf(m[r], warp_max(sr));
            float p = 0, corr = 1;
            if (mnew != -INFINITY) {
                p = valid ? exp2f(sr - mnew) : 0.0f;
                corr = exp2f(m[r] - mnew);     /* exp2(-inf) = 0 on the first tile */
            }
            l[r] = l[r] * corr + warp_sum(p);
            m[r] = mnew;
            s[r] = p;
#pragma unroll
            for (int c = 0; c < DC; c++) acc[r][c] *= corr;
        }
        for (int j = 0; j < BLOCK_K; j++) {
            float pj[ROWS_PER_WARP];
#pragma unroll
            for (int r = 0; r < ROWS_PER_WARP; r++) pj[r] = __shfl_sync(0xffffffffu, s[r], j);
            const float *vrow = vsm + j * DP;
#pragma unroll
            for (int c = 0; c < DC; c++) {
                int d = lane + 32 * c;
                float vv = d < D ? vrow[d] : 0.0f;
#pragma unroll
                for (int r = 0; r < ROWS_PER_WARP; r++) acc[r][c] += pj[r] * vv;
            }
        }
    }

#pragma unroll
    for (int r = 0; r < ROWS_PER_WARP; r++) {
        int64_t qi = q0 + r0 + r;
        if (qi >= a.nq) continue;
        float inv = l[r] > 0 ? 1.0f / l[r] : 0.0f;
        T *orow = out + (((int64_t)b * a.nq + qi) * a.heads + h) * D;
#pragma unroll
        for (int c = 0; c < DC; c++) {
            int d = lane + 32 * c;
            if (d < D) st(orow, d, acc[r][c] * inv);
        }
    }
}

template <typename T, int DC>
static int launch(cuda_context *ctx, void *out, const void *q, const void *k, const void *v, const attn_args &a,
                  int batch) {
    size_t smem = (size_t)(BLOCK_Q * a.D + 2 * BLOCK_K * (a.D + 1)) * sizeof(float);
    if (smem > 48 * 1024 &&
        cuda_check(cudaFuncSetAttribute(flash_kernel<T, DC>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem),
                   "raising the attention kernel's shared memory"))
        return -1;
    dim3 grid((unsigned)((a.nq + BLOCK_Q - 1) / BLOCK_Q), (unsigned)a.heads, (unsigned)batch);
    flash_kernel<T, DC><<<grid, WARPS * 32, smem, ctx->stream>>>((T *)out, (const T *)q, (const T *)k, (const T *)v, a);
    return cuda_check_launch("cuda_attention");
}

template <typename T>
static int launch_for_width(cuda_context *ctx, void *out, const void *q, const void *k, const void *v,
                            const attn_args &a, int batch) {
    switch ((a.D + 31) / 32) {
    case 1: return launch<T, 1>(ctx, out, q, k, v, a, batch);
    case 2: return launch<T, 2>(ctx, out, q, k, v, a, batch);
    case 3: return launch<T, 3>(ctx, out, q, k, v, a, batch);
    case 4: return launch<T, 4>(ctx, out, q, k, v, a, batch);
    case 5: return launch<T, 5>(ctx, out, q, k, v, a, batch);
    case 6: return launch<T, 6>(ctx, out, q, k, v, a, batch);
    case 7: return launch<T, 7>(ctx, out, q, k, v, a, batch);
    default: return launch<T, 8>(ctx, out, q, k, v, a, batch);
    }
}

int cuda_attention(cuda_context *ctx, void *out, const void *q, const void *k, const void *v,
                   const cuda_attention_params *p) {
    if (cuda_check_float_type(p->type, "cuda_attention")) return -1;
    int kv_heads = p->kv_heads > 0 ? p->kv_heads : p->heads;
    if (p->heads <= 0 || p->head_dim <= 0 || p->head_dim > 256 || p->heads % kv_heads)
        return ts_fail("cuda_attention: %d heads over %d key/value heads of width %d (width 1..256, heads a multiple)",
                       p->heads, kv_heads, p->head_dim);
    if (p->batch <= 0 || p->n_q <= 0) return 0;
    if (p->n_kv < 0) return ts_fail("cuda_attention: %lld keys", (long long)p->n_kv);
    if (p->heads > 65535 || p->batch > 65535)
        return ts_fail("cuda_attention: %d heads x batch %d is too large for one launch", p->heads, p->batch);
    attn_args a;
    a.heads = p->heads;
    a.group = p->heads / kv_heads;
    a.D = p->head_dim;
    a.nq = p->n_q;
    a.nk = p->n_kv;
    a.qs = p->q_stride ? p->q_stride : (int64_t)p->heads * p->head_dim;
    a.ks = p->k_stride ? p->k_stride : (int64_t)kv_heads * p->head_dim;
    a.vs = p->v_stride ? p->v_stride : (int64_t)kv_heads * p->head_dim;
    float scale = p->scale != 0 ? p->scale : 1.0f / sqrtf((float)p->head_dim);
    a.qscale = scale * 1.4426950408889634f;
    a.causal = p->causal;
    int rc = -1;
    CUDA_DISPATCH_FLOAT(p->type, T, rc = launch_for_width<T>(ctx, out, q, k, v, a, p->batch));
    return rc;
}
