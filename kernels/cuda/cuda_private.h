/*
 * cuda_private.h — what the .cu files of kernels/cuda share: the context's insides, the
 * status checks that turn CUDA/cuBLASLt/cuDNN errors into ts_fail, element load/store for
 * the three dtypes, and launch geometry.
 */
#ifndef TESSERA_CUDA_PRIVATE_H
#define TESSERA_CUDA_PRIVATE_H

#include "kernels/cuda/cuda.h"

#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <cudnn.h>

/* A convolution's algorithm, chosen once per shape (cuDNN's heuristics cost more than a
 * small convolution itself: asking on every call made a 64x64x320 conv 50x slower than torch). */
typedef struct {
    cuda_conv_params key;
    int algo, math_type;
    size_t workspace;
} cuda_conv_plan;
enum { CUDA_CONV_PLANS = 256 };

struct cuda_context {
    int device;
    int sm_count;
    cudaStream_t stream;
    cublasLtHandle_t lt;
    cudnnHandle_t dnn;
    void *workspace;               /* cuBLASLt and cuDNN scratch, grown on demand */
    size_t workspace_bytes;
    char *arena;                   /* activations: bump allocation */
    size_t arena_bytes, arena_used, arena_peak;
    void *staging;                 /* pinned host memory for uploads and downloads */
    size_t staging_bytes;
    cudaEvent_t staging_free[2];   /* each half of the staging buffer is free again */
    cuda_conv_plan conv_plans[CUDA_CONV_PLANS];   /* per context: nothing shared between contexts */
    int conv_plan_count;
};

struct cuda_buffer {
    cuda_context *ctx;
    void *data;
    size_t bytes;
};

/* Status checks: record "what: library message" with ts_fail and return -1. */
int cuda_check(cudaError_t e, const char *what);
int cuda_check_lt(cublasStatus_t s, const char *what);
int cuda_check_dnn(cudnnStatus_t s, const char *what);
/* After a launch: a bad configuration shows up here, a fault inside the kernel later. */
int cuda_check_launch(const char *what);

/* Makes ctx->workspace at least `bytes`; -1 with ts_fail if it cannot. */
int cuda_workspace_reserve(cuda_context *ctx, size_t bytes);

/* Only F32/F16/BF16 reach the kernels; -1 with ts_fail naming the op otherwise. */
int cuda_check_float_type(dtype t, const char *op);

/* Element access in any of the three float types, math in F32. */
template <typename T> __device__ __forceinline__ float ld(const T *p, int64_t i);
template <> __device__ __forceinline__ float ld<float>(const float *p, int64_t i) { return p[i]; }
template <> __device__ __forceinline__ float ld<__half>(const __half *p, int64_t i) { return __half2float(p[i]); }
template <> __device__ __forceinline__ float ld<__nv_bfloat16>(const __nv_bfloat16 *p, int64_t i) { return __bfloat162float(p[i]); }

template <typename T> __device__ __forceinline__ void st(T *p, int64_t i, float v);
template <> __device__ __forceinline__ void st<float>(float *p, int64_t i, float v) { p[i] = v; }
template <> __device__ __forceinline__ void st<__half>(__half *p, int64_t i, float v) { p[i] = __float2half_rn(v); }
template <> __device__ __forceinline__ void st<__nv_bfloat16>(__nv_bfloat16 *p, int64_t i, float v) { p[i] = __float2bfloat16_rn(v); }

/* Calls f.template operator()<T>() with T the C type of `t` (F32/F16/BF16). */
#define CUDA_DISPATCH_FLOAT(t, T, ...)                                   \
    do {                                                                \
        switch (t) {                                                    \
        case DT_F32: { typedef float T; __VA_ARGS__; } break;           \
        case DT_F16: { typedef __half T; __VA_ARGS__; } break;          \
        case DT_BF16: { typedef __nv_bfloat16 T; __VA_ARGS__; } break;  \
        default: break;                                                 \
        }                                                               \
    } while (0)

/* Blocks for a grid-stride element-wise kernel over n elements. */
static inline unsigned cuda_blocks_for(const cuda_context *ctx, int64_t n, int threads) {
    int64_t b = (n + threads - 1) / threads;
    int64_t cap = (int64_t)ctx->sm_count * 32;
    if (b > cap) b = cap;
    return (unsigned)(b < 1 ? 1 : b);
}

#endif
