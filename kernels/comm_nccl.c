/*
 * comm_nccl.c — the comm over NCCL on device buffers (see comm_nccl.h): a comm_impl table
 * (comm_impl.h) whose collectives are NCCL's, enqueued on the caller's CUDA stream, and
 * whose checks and bootstrap go over a private copy of a host comm (MPI or single rank).
 */
#include "kernels/comm_nccl.h"

#include "kernels/comm_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef TESSERA_HAVE_NCCL

bool comm_have_nccl(void) { return false; }

int comm_nccl_device(comm *host) {
    (void)host;
    return ts_fail("comm nccl: this tessera was built without NCCL (CMake found no nccl.h and libnccl, "
                   "or no CUDA library)");
}

comm *comm_new_nccl(comm *host, int device, void *stream) {
    (void)host, (void)device, (void)stream;
    comm_nccl_device(NULL);
    return NULL;
}

#else

#include <cuda_runtime_api.h>
#include <nccl.h>

bool comm_have_nccl(void) { return true; }

typedef struct {
    ncclComm_t nccl;
    cudaStream_t stream;
    comm *host;   /* our own copy, unchecked: the agreement and the bootstrap */
    int device;
} nccl_state;

static int nccl_fail(const char *call, ncclResult_t r, ncclComm_t c) {
    const char *detail = c ? ncclGetLastError(c) : NULL;
    return ts_fail("%s: %s%s%s", call, ncclGetErrorString(r), detail && *detail ? ": " : "", detail ? detail : "");
}

static int cuda_fail(const char *call, cudaError_t e) {
    return ts_fail("%s: %s", call, cudaGetErrorString(e));
}

/* A failure NCCL met asynchronously in earlier work (a peer gone, a network error). */
static int nccl_async_ok(nccl_state *s) {
    ncclResult_t async = ncclSuccess;
    ncclResult_t r = ncclCommGetAsyncError(s->nccl, &async);
    if (r != ncclSuccess) return nccl_fail("ncclCommGetAsyncError", r, s->nccl);
    return async == ncclSuccess || async == ncclInProgress ? 0 : nccl_fail("NCCL (earlier work)", async, s->nccl);
}

static bool nccl_type(dtype type, ncclDataType_t *out) {
    switch (type) {
    case DT_F32: *out = ncclFloat32; return true;
    case DT_F16: *out = ncclFloat16; return true;
    case DT_BF16: *out = ncclBfloat16; return true;
    default: return false;
    }
}

static bool nccl_supports_sum(dtype type) {
    ncclDataType_t t;
    return nccl_type(type, &t);
}

/* NCCL calls take the device of the calling thread: make it ours. */
static int on_device(nccl_state *s) {
    cudaError_t e = cudaSetDevice(s->device);
    return e == cudaSuccess ? 0 : cuda_fail("cudaSetDevice", e);
}

static int nccl_all_reduce_sum(void *state, const void *send, void *recv, size_t count, dtype type) {
    nccl_state *s = state;
    ncclDataType_t t = ncclFloat32;
    nccl_type(type, &t);
    if (on_device(s) || nccl_async_ok(s)) return -1;
    ncclResult_t r = ncclAllReduce(send, recv, count, t, ncclSum, s->nccl, s->stream);
    return r == ncclSuccess ? 0 : nccl_fail("ncclAllReduce", r, s->nccl);
}

static int nccl_all_gather(void *state, const void *send, void *recv, size_t bytes) {
    nccl_state *s = state;
    if (on_device(s) || nccl_async_ok(s)) return -1;
    ncclResult_t r = ncclAllGather(send, recv, bytes, ncclUint8, s->nccl, s->stream);
    return r == ncclSuccess ? 0 : nccl_fail("ncclAllGather", r, s->nccl);
}

static int nccl_broadcast(void *state, void *data, size_t bytes, int root) {
    nccl_state *s = state;
    if (on_device(s) || nccl_async_ok(s)) return -1;
    ncclResult_t r = ncclBroadcast(data, data, bytes, ncclUint8, root, s->nccl, s->stream);
    return r == ncclSuccess ? 0 : nccl_fail("ncclBroadcast", r, s->nccl);
}

/* NCCL has no barrier: this rank's queued work first, then every rank over the host comm. */
static int nccl_barrier(void *state) {
    nccl_state *s = state;
    if (on_device(s)) return -1;
    cudaError_t e = cudaStreamSynchronize(s->stream);
    if (e != cudaSuccess) return cuda_fail("cudaStreamSynchronize", e);
    if (nccl_async_ok(s)) return -1;
    return comm_barrier(s->host);
}

static int nccl_agree(void *state, const int64_t *mine, int64_t *all, int n) {
    return comm_all_gather(((nccl_state *)state)->host, mine, all, (size_t)n * sizeof *mine);
}

/* Every rank's ok, over the host comm: 0 when all are ok, else -1 (with ts_fail naming the first
 * rank that failed; a rank keeps its own reason). */
static int all_ok(comm *host, bool ok, const char *what) {
    int size = comm_size(host);
    int32_t mine = ok, *every = ts_malloc((size_t)size * sizeof mine);
    int rc = comm_all_gather(host, &mine, every, sizeof mine);
    int failed = -1;
    for (int r = 0; rc == 0 && r < size && failed < 0; r++)
        if (!every[r]) failed = r;
    free(every);
    if (rc != 0) return ts_fail_wrap("comm nccl: %s", what);
    if (failed < 0) return 0;
    if (ok) return ts_fail("comm nccl: %s: rank %d failed (its error says why)", what, failed);
    return ts_fail_wrap("comm nccl: %s", what);
}

/* Makes the NCCL communicator of host's ranks (host: our own copy, owned from here). */
static nccl_state *state_new(comm *host, int device, cudaStream_t stream) {
    nccl_state *s = ts_calloc(1, sizeof *s);
    s->host = host, s->device = device, s->stream = stream;
    cudaError_t e = cudaSetDevice(device);
    bool ok = e == cudaSuccess || cuda_fail("cudaSetDevice", e) == 0;
    struct {
        ncclUniqueId id;
        int32_t ok;
    } boot;
    memset(&boot, 0, sizeof boot);
    if (comm_rank(host) == 0) {
        ncclResult_t r = ok ? ncclGetUniqueId(&boot.id) : ncclSuccess;
        if (r != ncclSuccess) ok = nccl_fail("ncclGetUniqueId", r, NULL) == 0;
        boot.ok = ok;
    }
    if (all_ok(host, ok, "choosing the device") != 0 || comm_broadcast(host, &boot, sizeof boot, 0) != 0 || !boot.ok) {
        comm_destroy(&s->host);
        free(s);
        return NULL;
    }
    ncclResult_t r = ncclCommInitRank(&s->nccl, comm_size(host), boot.id, comm_rank(host));
    ok = r == ncclSuccess || nccl_fail("ncclCommInitRank", r, NULL) == 0;
    if (all_ok(host, ok, "making the communicator") != 0) {
        if (ok) ncclCommDestroy(s->nccl);
        comm_destroy(&s->host);
        free(s);
        return NULL;
    }
    return s;
}

static void nccl_destroy(void *state) {
    nccl_state *s = state;
    if (on_device(s) == 0) {
        ncclCommFinalize(s->nccl); /* waits for its work in flight */
        ncclCommDestroy(s->nccl);
    }
    comm_destroy(&s->host);
    free(s);
}

static void *nccl_split(void *state, int color, int key, int *rank, int *size) {
    nccl_state *s = state;
    comm *host = comm_split(s->host, color, key);
    if (!host) return NULL;
    nccl_state *child = ts_calloc(1, sizeof *child);
    child->host = host, child->device = s->device, child->stream = s->stream;
    ncclResult_t r = on_device(s) == 0 ? ncclCommSplit(s->nccl, color, key, &child->nccl, NULL) : ncclInvalidUsage;
    bool ok = r == ncclSuccess || nccl_fail("ncclCommSplit", r, s->nccl) == 0;
    if (all_ok(host, ok, "split") != 0) {
        if (ok) ncclCommDestroy(child->nccl);
        comm_destroy(&child->host);
        free(child);
        return NULL;
    }
    *rank = comm_rank(host);
    *size = comm_size(host);
    return child;
}

static const comm_impl nccl_impl = {
    .name = "nccl",
    .device_buffers = true,
    .all_reduce_sum = nccl_all_reduce_sum,
    .supports_sum = nccl_supports_sum,
    .all_gather = nccl_all_gather,
    .broadcast = nccl_broadcast,
    .barrier = nccl_barrier,
    .agree = nccl_agree,
    .split = nccl_split,
    .destroy = nccl_destroy,
};

int comm_nccl_device(comm *host) {
    int size = comm_size(host), rank = comm_rank(host);
    char mine[64] = "";
    gethostname(mine, sizeof mine - 1);
    char *names = ts_malloc((size_t)size * sizeof mine);
    if (comm_all_gather(host, mine, names, sizeof mine) != 0) {
        free(names);
        return ts_fail_wrap("comm nccl: gathering host names");
    }
    int local = 0, on_host = 0;
    for (int r = 0; r < size; r++) {
        if (strncmp(names + (size_t)r * sizeof mine, mine, sizeof mine)) continue;
        if (r < rank) local++;
        on_host++;
    }
    free(names);
    int devices = 0;
    cudaError_t e = cudaGetDeviceCount(&devices);
    if (e != cudaSuccess) devices = 0;
    bool ok = local < devices;
    if (!ok)
        ts_fail("comm nccl: %d ranks on %s, which has %d GPU%s: NCCL needs one GPU per rank (rank %d would be the "
                "%d%s there)", on_host, mine, devices, devices == 1 ? "" : "s", rank, local + 1,
                local == 0 ? "st" : local == 1 ? "nd" : local == 2 ? "rd" : "th");
    if (all_ok(host, ok, "choosing each rank's GPU") != 0) return -1;
    return local;
}

comm *comm_new_nccl(comm *host, int device, void *stream) {
    /* our own copy of the host comm: unchecked (comm.c's agreement runs over it), and alive as
     * long as the NCCL communicator whatever the caller does with theirs */
    comm *copy = comm_split(host, 0, comm_rank(host));
    if (!copy) {
        ts_fail_wrap("comm nccl: copying the host comm");
        return NULL;
    }
    comm_set_checked(copy, false);
    nccl_state *s = state_new(copy, device, (cudaStream_t)stream);
    if (!s) return NULL;
    return comm_wrap(&nccl_impl, s, comm_rank(copy), comm_size(copy));
}

#endif
