/*
 * cuda_context.cu — devices, the context (stream, cuBLASLt and cuDNN handles, workspace,
 * activation arena, pinned staging), buffers, and host<->device copies.
 */
#include "kernels/cuda/cuda_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Pinned staging: two halves, so filling one overlaps the copy out of the other. */
#define STAGING_BYTES ((size_t)64 << 20)
#define WORKSPACE_BYTES ((size_t)32 << 20)
#define ARENA_ALIGN 256

int cuda_check(cudaError_t e, const char *what) {
    if (e == cudaSuccess) return 0;
    return ts_fail("%s: CUDA error %d (%s): %s", what, (int)e, cudaGetErrorName(e), cudaGetErrorString(e));
}

/* cublasGetStatusString lives in libcublas, which we do not otherwise need. */
static const char *lt_status_name(cublasStatus_t s) {
    switch (s) {
    case CUBLAS_STATUS_NOT_INITIALIZED: return "not initialized";
    case CUBLAS_STATUS_ALLOC_FAILED: return "allocation failed";
    case CUBLAS_STATUS_INVALID_VALUE: return "invalid value";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "not supported by this GPU";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "execution failed";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "internal error";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "not supported";
    default: return "unknown";
    }
}

int cuda_check_lt(cublasStatus_t s, const char *what) {
    if (s == CUBLAS_STATUS_SUCCESS) return 0;
    return ts_fail("%s: cuBLASLt status %d (%s)", what, (int)s, lt_status_name(s));
}

int cuda_check_dnn(cudnnStatus_t s, const char *what) {
    if (s == CUDNN_STATUS_SUCCESS) return 0;
    char detail[256] = "";
    cudnnGetLastErrorString(detail, sizeof detail);
    return ts_fail("%s: cuDNN status %d (%s)%s%s", what, (int)s, cudnnGetErrorString(s),
                   detail[0] ? ": " : "", detail);
}

int cuda_check_launch(const char *what) { return cuda_check(cudaGetLastError(), what); }

int cuda_check_float_type(dtype t, const char *op) {
    if (t == DT_F32 || t == DT_F16 || t == DT_BF16) return 0;
    return ts_fail("%s: element type %s is not supported on CUDA (F32, F16, BF16)", op, dtype_name(t));
}

int cuda_device_count(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError();   /* no driver or no device: clear the sticky status, say none */
        return 0;
    }
    return n;
}

int cuda_device_describe(int device, char *buf, size_t n) {
    cudaDeviceProp prop;
    if (cuda_check(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties") != 0)
        return ts_fail_wrap("CUDA device %d", device);
    snprintf(buf, n, "%s (sm_%d%d, %d SMs, %.1f GiB)", prop.name, prop.major, prop.minor,
             prop.multiProcessorCount, (double)prop.totalGlobalMem / (1 << 30));
    return 0;
}

cuda_context *cuda_context_new(int device, size_t arena_bytes) {
    int count = cuda_device_count();
    if (device < 0 || device >= count) {
        ts_fail("CUDA device %d: the driver sees %d device%s", device, count, count == 1 ? "" : "s");
        return NULL;
    }
    cuda_context *self = (cuda_context *)ts_calloc(1, sizeof *self);
    self->device = device;
    if (cuda_check(cudaSetDevice(device), "cudaSetDevice") != 0) goto fail;
    if (cuda_check(cudaDeviceGetAttribute(&self->sm_count, cudaDevAttrMultiProcessorCount, device),
                   "reading the multiprocessor count") != 0) goto fail;
    if (cuda_check(cudaStreamCreateWithFlags(&self->stream, cudaStreamNonBlocking), "cudaStreamCreate") != 0) goto fail;
    if (cuda_check_lt(cublasLtCreate(&self->lt), "cublasLtCreate") != 0) goto fail;
    if (cuda_check_dnn(cudnnCreate(&self->dnn), "cudnnCreate") != 0) goto fail;
    if (cuda_check_dnn(cudnnSetStream(self->dnn, self->stream), "cudnnSetStream") != 0) goto fail;
    if (cuda_workspace_reserve(self, WORKSPACE_BYTES) != 0) goto fail;
    if (arena_bytes) {
        if (cuda_check(cudaMalloc((void **)&self->arena, arena_bytes), "allocating the activation arena") != 0)
            goto fail;
        self->arena_bytes = arena_bytes;
    }
    if (cuda_check(cudaMallocHost(&self->staging, STAGING_BYTES), "allocating pinned staging memory") != 0) goto fail;
    self->staging_bytes = STAGING_BYTES;
    for (int i = 0; i < 2; i++)
        if (cuda_check(cudaEventCreateWithFlags(&self->staging_free[i], cudaEventDisableTiming), "cudaEventCreate") != 0)
            goto fail;
    return self;
fail:
    ts_fail_wrap("creating a CUDA context on device %d", device);
    cuda_context_destroy(&self);
    return NULL;
}

void cuda_context_destroy(cuda_context **pself) {
    cuda_context *self = *pself;
    if (!self) return;
    if (self->stream) cudaStreamSynchronize(self->stream);
    for (int i = 0; i < 2; i++)
        if (self->staging_free[i]) cudaEventDestroy(self->staging_free[i]);
    if (self->staging) cudaFreeHost(self->staging);
    if (self->arena) cudaFree(self->arena);
    if (self->workspace) cudaFree(self->workspace);
    if (self->dnn) cudnnDestroy(self->dnn);
    if (self->lt) cublasLtDestroy(self->lt);
    if (self->stream) cudaStreamDestroy(self->stream);
    free(self);
    *pself = NULL;
}

int cuda_synchronize(cuda_context *self) {
    return cuda_check(cudaStreamSynchronize(self->stream), "waiting for the CUDA stream");
}

void *cuda_context_stream(cuda_context *self) { return (void *)self->stream; }

int cuda_workspace_reserve(cuda_context *ctx, size_t bytes) {
    if (bytes <= ctx->workspace_bytes) return 0;
    if (ctx->workspace) {
        /* queued work may still use the old workspace */
        if (cuda_synchronize(ctx) != 0) return -1;
        cudaFree(ctx->workspace);
        ctx->workspace = NULL;
        ctx->workspace_bytes = 0;
    }
    if (cuda_check(cudaMalloc(&ctx->workspace, bytes), "allocating the CUDA workspace") != 0)
        return ts_fail_wrap("%zu bytes", bytes);
    ctx->workspace_bytes = bytes;
    return 0;
}

/* ---- buffers ------------------------------------------------------------- */

cuda_buffer *cuda_buffer_new(cuda_context *ctx, size_t bytes) {
    cuda_buffer *self = (cuda_buffer *)ts_calloc(1, sizeof *self);
    self->ctx = ctx;
    self->bytes = bytes;
    if (bytes && cuda_check(cudaMalloc(&self->data, bytes), "cudaMalloc") != 0) {
        ts_fail_wrap("a device buffer of %zu bytes", bytes);
        free(self);
        return NULL;
    }
    return self;
}

void cuda_buffer_destroy(cuda_buffer **pself) {
    cuda_buffer *self = *pself;
    if (!self) return;
    if (self->data) {
        cudaStreamSynchronize(self->ctx->stream);   /* queued work may still read it */
        cudaFree(self->data);
    }
    free(self);
    *pself = NULL;
}

void *cuda_buffer_data(const cuda_buffer *self) { return self->data; }
size_t cuda_buffer_size(const cuda_buffer *self) { return self->bytes; }

int cuda_upload(cuda_context *ctx, void *dst, const void *src, size_t bytes) {
    size_t half = ctx->staging_bytes / 2;
    for (size_t done = 0, i = 0; done < bytes; i++) {
        size_t n = bytes - done < half ? bytes - done : half;
        int slot = (int)(i % 2);
        char *stage = (char *)ctx->staging + slot * half;
        /* the previous copy out of this half must be finished before we overwrite it */
        if (cuda_check(cudaEventSynchronize(ctx->staging_free[slot]), "waiting for staging memory") != 0) return -1;
        memcpy(stage, (const char *)src + done, n);
        if (cuda_check(cudaMemcpyAsync((char *)dst + done, stage, n, cudaMemcpyHostToDevice, ctx->stream),
                       "uploading to the device") != 0) return -1;
        if (cuda_check(cudaEventRecord(ctx->staging_free[slot], ctx->stream), "cudaEventRecord") != 0) return -1;
        done += n;
    }
    return 0;
}

int cuda_download(cuda_context *ctx, void *dst, const void *src, size_t bytes) {
    size_t chunk = ctx->staging_bytes;
    for (size_t done = 0; done < bytes; done += chunk) {
        size_t n = bytes - done < chunk ? bytes - done : chunk;
        /* uploads may still be reading the staging buffer */
        for (int i = 0; i < 2; i++)
            if (cuda_check(cudaEventSynchronize(ctx->staging_free[i]), "waiting for staging memory") != 0) return -1;
        if (cuda_check(cudaMemcpyAsync(ctx->staging, (const char *)src + done, n, cudaMemcpyDeviceToHost, ctx->stream),
                       "downloading from the device") != 0) return -1;
        if (cuda_synchronize(ctx) != 0) return -1;
        memcpy((char *)dst + done, ctx->staging, n);
    }
    return 0;
}

int cuda_zero(cuda_context *ctx, void *dst, size_t bytes) {
    return cuda_check(cudaMemsetAsync(dst, 0, bytes, ctx->stream), "cudaMemsetAsync");
}

/* ---- arena --------------------------------------------------------------- */

void *cuda_arena_alloc(cuda_context *ctx, size_t bytes) {
    size_t at = (ctx->arena_used + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
    if (at + bytes > ctx->arena_bytes) {
        ts_fail("CUDA activation arena: %zu bytes asked, %zu of %zu in use", bytes, ctx->arena_used, ctx->arena_bytes);
        return NULL;
    }
    ctx->arena_used = at + bytes;
    if (ctx->arena_used > ctx->arena_peak) ctx->arena_peak = ctx->arena_used;
    return ctx->arena + at;
}

size_t cuda_arena_mark(const cuda_context *ctx) { return ctx->arena_used; }
void cuda_arena_reset(cuda_context *ctx, size_t mark) { if (mark <= ctx->arena_used) ctx->arena_used = mark; }
size_t cuda_arena_peak(const cuda_context *ctx) { return ctx->arena_peak; }
