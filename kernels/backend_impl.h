/*
 * backend_impl.h — what a backend implements: the table behind ts_ctx (backend.h) and the
 * ops (ops.h). Only backends include this; models and callers never do.
 *
 * Learned from ggml's ggml-backend-impl.h (buffer types, set/get tensor, synchronize), kept
 * eager: there is no graph, each op of ops.h is one entry here with the same arguments, and
 * ops.c forwards a call to ctx->backend->ops.<name>. An entry left NULL is an op the backend
 * does not have: the call fails with "op 'x' is not implemented by backend 'y'".
 *
 * To add a backend: fill a ts_backend (name, context and memory functions, the ops you
 * have), and list it in backend.c's `backends` table under its build option.
 */
#ifndef TESSERA_BACKEND_IMPL_H
#define TESSERA_BACKEND_IMPL_H

#include "kernels/backend.h"
#include "kernels/ops.h"

typedef struct {
    /* GEMM */
    void (*gemm)(ts_ctx *, bool, bool, int, int, int, float, const float *, int, const float *, int, float, float *, int);
    void (*gemm_batched)(ts_ctx *, int, bool, bool, int, int, int, float, const float *, int, int64_t, const float *,
                         int, int64_t, float, float *, int, int64_t);
    int (*linear)(ts_ctx *, float *, const float *, int64_t, const tensor *, const tensor *);
    int (*weight_gemm)(ts_ctx *, const tensor *, const weight_gemm_params *);
    void (*qmatmul)(ts_ctx *, float *, const float *, int64_t, const struct qmatrix *);
    void (*qmatrix_gather)(ts_ctx *, float *, const struct qmatrix *, const int *, int);
    /* convolution */
    int (*conv2d)(ts_ctx *, float *, const float *, int, int, int, int, const tensor *, const tensor *, conv2d_params);
    /* normalisation */
    int (*group_norm)(ts_ctx *, float *, const float *, int, int, int64_t, int, const tensor *, const tensor *, float);
    int (*layer_norm)(ts_ctx *, float *, const float *, int64_t, int, const tensor *, const tensor *, float);
    int (*rms_norm)(ts_ctx *, float *, const float *, int64_t, int, const tensor *, float);
    /* activations */
    void (*softmax_rows)(ts_ctx *, float *, int64_t, int);
    void (*unary)(ts_ctx *, unary_op, float *, const float *, int64_t);
    void (*clamp)(ts_ctx *, float *, const float *, int64_t, float, float);
    void (*scaled_tanh)(ts_ctx *, float *, const float *, int64_t, float);
    void (*geglu)(ts_ctx *, float *, const float *, int64_t, int);
    void (*swiglu)(ts_ctx *, float *, const float *, const float *, int64_t, int);
    /* element-wise */
    int (*binary)(ts_ctx *, bool multiply, tensor *, const tensor *, const tensor *);
    void (*add_inplace)(ts_ctx *, float *, const float *, int64_t);
    void (*scale_inplace)(ts_ctx *, float *, float, int64_t);
    void (*affine)(ts_ctx *, float *, int64_t, float, float);
    void (*add_row_bias)(ts_ctx *, float *, int64_t, int, const tensor *);
    int (*add_channel_bias)(ts_ctx *, float *, int, int, int64_t, const tensor *);
    /* layout */
    void (*upsample_nearest2x)(ts_ctx *, float *, const float *, int, int, int, int);
    int (*concat)(ts_ctx *, tensor *, const tensor *, int, int);
    void (*nchw_to_nhwc)(ts_ctx *, float *, const float *, int, int, int64_t);
    void (*nhwc_to_nchw)(ts_ctx *, float *, const float *, int, int, int64_t);
    void (*copy_strided)(ts_ctx *, float *, const int64_t *, const float *, const int64_t *, const int64_t *);
    void (*crossfade)(ts_ctx *, float *, int64_t, int64_t, const float *, int64_t, int64_t, int, int, int, int, bool);
    void (*rgb8_from_planes)(ts_ctx *, uint8_t *, const float *, int, int64_t, float, float);
    void (*copy)(ts_ctx *, float *, const float *, int64_t);
    int (*gather_rows)(ts_ctx *, float *, const tensor *, const int32_t *, int);
    void (*fill)(ts_ctx *, float *, float, int64_t);
    void (*timestep_embedding)(ts_ctx *, float *, const float *, int, int, bool, float);
    /* attention */
    void (*attention)(ts_ctx *, float *, const float *, const float *, const float *, attention_params);
    void (*attention_kv)(ts_ctx *, float *, const float *, const float *, const float *, kv_attention_params);
    void (*rope)(ts_ctx *, float *, int64_t, int, int, int, const int *, const float *, bool);
} ts_ops;

typedef struct ts_backend {
    const char *name;                    /* "cpu", "cuda": what ts_ctx_new's device names */
    bool host_memory;                    /* ops take host pointers */
    /* Sets ctx->impl (the backend's own state: threads, stream, scratch, caches). device is
     * the N of "name:N" (0 when absent). */
    int (*context_init)(ts_ctx *ctx, int device, int threads);
    void (*context_free)(ts_ctx *ctx);
    int (*threads)(const ts_ctx *ctx);
    int (*synchronize)(ts_ctx *ctx);
    /* memory in the backend's space; upload/download are host <-> that memory */
    void *(*alloc)(ts_ctx *ctx, size_t bytes);
    void (*free)(ts_ctx *ctx, void *p);
    int (*upload)(ts_ctx *ctx, void *dst, const void *src, size_t bytes);
    int (*download)(ts_ctx *ctx, void *dst, const void *src, size_t bytes);
    /* The type GEMMs and convolutions compute in (F16/BF16 on tensor cores); NULL: F32 only. */
    int (*set_compute_type)(ts_ctx *ctx, dtype t);
    /* The device's stream that ops are queued on, and the device's index; NULL: none (host). */
    void *(*device_stream)(const ts_ctx *ctx, int *device);
    ts_ops ops;
} ts_backend;

struct ts_ctx {
    const ts_backend *backend;
    void *impl;                          /* the backend's state */
    struct comm *comm;                   /* borrowed, or own_comm */
    struct comm *own_comm;
    int device;                          /* the N of "name:N" */
    dtype compute;                       /* ts_ctx_set_compute_type's, once it succeeded */
    bool failed;                         /* a void op failed: ts_ctx_synchronize reports it */
};

/* The backends (backend.c lists them; each lives in its own folder). */
extern const ts_backend ts_backend_cpu;    /* kernels/cpu/ */
extern const ts_backend ts_backend_check;  /* kernels/cpu/check_backend.c: the CPU under a device's rules (tests) */
extern const ts_backend ts_backend_cuda;   /* kernels/cuda/cuda_backend.c, where the build has CUDA */

#endif
