/*
 * backend.h — where ops run: the context every op takes, and memory a backend owns.
 *
 * A context (ts_ctx) is one place to compute: a backend (the CPU today, a CUDA device
 * behind the same table), its threads or stream, its scratch memory and caches, and the
 * communicator of the group it computes in. Every op in ops.h takes one as its first
 * argument; a model's forward function takes one and passes it on, so the model never
 * knows which device it runs on or how many threads it has.
 *
 *   ts_ctx *ctx = ts_ctx_new("cpu", 4);              // or "cuda:0"
 *   ... unet_forward(u, ctx, ...) ... silu(ctx, y, x, n) ...
 *   ts_ctx_destroy(&ctx);
 *
 * Rules:
 *   - A context is used by one thread at a time (like a cuBLAS handle). Two pipelines in
 *     one process make two contexts; they then share no scratch memory, caches or thread
 *     settings. What contexts do share is made for sharing and safe under concurrent use:
 *     oneDNN's immutable convolution plans (behind a lock) and OpenBLAS, which is set to one
 *     thread once for the process and never changed (kernels/cpu/gemm.c says why).
 *   - Pointers given to ops live in the context's memory: host memory for the CPU backend
 *     (any malloc, arena or memory-mapped file), device memory for a device backend (a
 *     ts_buffer). ts_buffer_set / ts_buffer_get copy between host and a buffer.
 *   - Ops are queued in order on the context. On the CPU they finish before returning; on a
 *     device they may not, and ts_ctx_synchronize waits for them and reports an error that
 *     happened inside one (an op that returns void records its error there).
 *
 * A new backend fills the table in backend_impl.h; the README's "How to add a backend" names
 * the functions.
 */
#ifndef TESSERA_KERNELS_BACKEND_H
#define TESSERA_KERNELS_BACKEND_H

#include "kernels/tensor.h"

struct comm;
typedef struct ts_ctx ts_ctx;
typedef struct ts_buffer ts_buffer;

/* device: NULL or "cpu", or "cuda" / "cuda:N" where the build has the CUDA backend.
 * threads: the CPU threads of this context's ops (<= 0: all cores). NULL on failure,
 * with the reason ("no backend 'rocm' in this build (have: cpu)"). */
ts_ctx *ts_ctx_new(const char *device, int threads);
void ts_ctx_destroy(ts_ctx **self);

const char *ts_ctx_backend_name(const ts_ctx *self);   /* "cpu", "cuda" */
bool ts_ctx_host_memory(const ts_ctx *self);           /* ops read and write host pointers */
int ts_ctx_threads(const ts_ctx *self);
/* The group this context computes in (tensor-parallel collectives). Borrowed, not owned;
 * NULL restores the default, a single rank. */
void ts_ctx_set_comm(ts_ctx *self, struct comm *c);
struct comm *ts_ctx_comm(const ts_ctx *self);
/* True when a comm was set (ts_ctx_set_comm), false for the default single rank. */
bool ts_ctx_comm_set(const ts_ctx *self);
/* The type the context's GEMMs and convolutions compute in: DT_F32 (every backend, the
 * default), DT_F16 or DT_BF16 where the backend has it (CUDA: tensor cores, F32 accumulation,
 * activations still F32 between ops). -1 naming the backend otherwise. */
int ts_ctx_set_compute_type(ts_ctx *self, dtype t);
/* A new context on other's device, with its threads and compute type (not its comm or caches):
 * a second thread's context for the same work. NULL with ts_fail. */
ts_ctx *ts_ctx_new_like(const ts_ctx *other);
/* "f32", "f16", "bf16" -> the dtype; -1 with ts_fail on anything else. */
int ts_compute_type_parse(const char *name, dtype *out);

/* The stream (a cudaStream_t) the context queues its ops on, and its device's index, for a
 * library that must queue on the same stream (NCCL: comm_new_nccl); NULL on host backends. */
void *ts_ctx_device_stream(const ts_ctx *self, int *device);
/* Waits until every op queued on the context is done; -1 if one failed (with its message). */
int ts_ctx_synchronize(ts_ctx *self);

/* The backends this build has, one name per entry ("cpu", "cuda"), NULL-terminated. */
const char *const *ts_backend_names(void);

/* ---- buffers: memory owned by the context's backend ------------------------ */

/* bytes of uninitialised memory in the context's memory space. NULL on failure. */
ts_buffer *ts_buffer_new(ts_ctx *ctx, size_t bytes);
void ts_buffer_destroy(ts_buffer **self);
void *ts_buffer_data(const ts_buffer *self);           /* a pointer ops of ctx accept */
size_t ts_buffer_size(const ts_buffer *self);
/* host -> buffer and buffer -> host, bytes at offset. _get waits for the queued ops first. */
int ts_buffer_set(ts_buffer *self, size_t offset, const void *src, size_t bytes);
int ts_buffer_get(const ts_buffer *self, size_t offset, void *dst, size_t bytes);

/* Copies between host memory and any pointer in the context's memory (a buffer's data, an
 * arena of ts_arena_new): like ts_buffer_set / _get without the buffer. */
int ts_ctx_upload(ts_ctx *ctx, void *dst, const void *src, size_t bytes);
int ts_ctx_download(ts_ctx *ctx, void *dst, const void *src, size_t bytes);

/* Scratch in the context's memory for a model's activations (an aligned malloc on the CPU).
 * NULL with ts_fail when the memory is full. */
void *ts_ctx_alloc(ts_ctx *ctx, size_t bytes);
void ts_ctx_free(ts_ctx *ctx, void *p);

/*
 * A model's entry points take and give host memory; these move it to where ops run. On a
 * host backend they hand back the caller's own pointer (no copy); on a device:
 *   ts_stage_in:  a copy of bytes of host input in ctx's memory (NULL on failure)
 *   ts_stage_out: where to write an output of bytes (fresh ctx memory)
 *   ts_stage_finish: copies an output back to host and frees it (-1 on failure)
 *   ts_stage_release: frees a staged input (or a staged output not wanted after a failure)
 */
const void *ts_stage_in(ts_ctx *ctx, const void *host, size_t bytes);
void *ts_stage_out(ts_ctx *ctx, void *host, size_t bytes);
int ts_stage_finish(ts_ctx *ctx, void *host, void *staged, size_t bytes);
void ts_stage_release(ts_ctx *ctx, const void *host, const void *staged);

/* An arena (tensor.h) of `bytes` in the context's memory, for a model's activations: the
 * host's lazily backed arena_new on the CPU, one device buffer on a GPU. NULL on failure. */
arena *ts_arena_new(ts_ctx *ctx, size_t bytes);

/* A tensor in the context's memory with the host tensor's shape and dtype: on a host
 * backend a view of the same memory (no copy, *buffer NULL); on a device a contiguous copy in
 * a new buffer the caller destroys. */
int tensor_to_backend(ts_ctx *ctx, const tensor *host, tensor *out, ts_buffer **buffer);

#endif
