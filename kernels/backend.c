/*
 * backend.c — contexts and buffers (backend.h) on top of the backends' tables
 * (backend_impl.h): which backends this build has, and the parts every backend shares.
 */
#include "kernels/backend_impl.h"
#include "kernels/comm.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const ts_backend *const backends[] = {
#ifdef TESSERA_HAVE_CPU_BACKEND
    &ts_backend_cpu,
    &ts_backend_check,
#endif
#ifdef TESSERA_HAVE_CUDA
    &ts_backend_cuda,
#endif
};
enum { BACKEND_COUNT = sizeof backends / sizeof backends[0] };

static const char *names[BACKEND_COUNT + 1];
static pthread_once_t names_once = PTHREAD_ONCE_INIT;
static void list_names(void) {
    for (int i = 0; i < BACKEND_COUNT; i++) names[i] = backends[i]->name;
}

const char *const *ts_backend_names(void) {
    pthread_once(&names_once, list_names);   /* filled once: callers on any thread read it */
    return names;
}

ts_ctx *ts_ctx_new(const char *device, int threads) {
    if (!device || !*device) device = "cpu";
    char name[32];
    int index = 0;
    const char *colon = strchr(device, ':');
    size_t len = colon ? (size_t)(colon - device) : strlen(device);
    if (len >= sizeof name) len = sizeof name - 1;
    memcpy(name, device, len);
    name[len] = 0;
    if (colon) {
        char *end;
        long v = strtol(colon + 1, &end, 10);
        if (end == colon + 1 || *end || v < 0 || v > 1024) {
            ts_fail("device '%s': expected NAME or NAME:INDEX, e.g. cuda:0", device);
            return NULL;
        }
        index = (int)v;
    }
    const ts_backend *be = NULL;
    for (int i = 0; i < BACKEND_COUNT && !be; i++)
        if (strcmp(backends[i]->name, name) == 0) be = backends[i];
    if (!be) {
        char have[128] = "";
        for (int i = 0; i < BACKEND_COUNT; i++)
            snprintf(have + strlen(have), sizeof have - strlen(have), "%s%s", i ? ", " : "", backends[i]->name);
        ts_fail("device '%s': no such backend in this build (have: %s)", device, have);
        return NULL;
    }
    ts_ctx *ctx = ts_calloc(1, sizeof *ctx);
    ctx->backend = be;
    ctx->device = index;
    ctx->compute = DT_F32;
    if (be->context_init(ctx, index, threads)) {
        free(ctx);
        ts_fail_wrap("device '%s'", device);
        return NULL;
    }
    ctx->own_comm = comm_new_single();
    ctx->comm = ctx->own_comm;
    return ctx;
}

void ts_ctx_destroy(ts_ctx **self) {
    if (!self || !*self) return;
    ts_ctx *ctx = *self;
    ctx->backend->context_free(ctx);
    comm_destroy(&ctx->own_comm);
    free(ctx);
    *self = NULL;
}

const char *ts_ctx_backend_name(const ts_ctx *self) { return self->backend->name; }
bool ts_ctx_host_memory(const ts_ctx *self) { return self->backend->host_memory; }
int ts_ctx_threads(const ts_ctx *self) { return self->backend->threads(self); }
void *ts_ctx_device_stream(const ts_ctx *self, int *device) {
    if (device) *device = -1;
    return self->backend->device_stream ? self->backend->device_stream(self, device) : NULL;
}
int ts_ctx_set_compute_type(ts_ctx *self, dtype t) {
    int rc = self->backend->set_compute_type ? self->backend->set_compute_type(self, t)
             : t == DT_F32 ? 0
                           : ts_fail("backend '%s' computes in F32 only (asked %s)", self->backend->name, dtype_name(t));
    if (rc == 0) self->compute = t;
    return rc;
}

ts_ctx *ts_ctx_new_like(const ts_ctx *other) {
    char device[48];
    snprintf(device, sizeof device, "%s:%d", other->backend->name, other->device);
    ts_ctx *ctx = ts_ctx_new(device, ts_ctx_threads(other));
    if (ctx && ts_ctx_set_compute_type(ctx, other->compute)) ts_ctx_destroy(&ctx);
    return ctx;
}

int ts_compute_type_parse(const char *name, dtype *out) {
    static const struct { const char *name; dtype t; } types[] = {{"f32", DT_F32}, {"f16", DT_F16}, {"bf16", DT_BF16}};
    for (size_t i = 0; name && i < sizeof types / sizeof types[0]; i++)
        if (strcmp(name, types[i].name) == 0) return *out = types[i].t, 0;
    return ts_fail("compute type '%s': f32, f16 or bf16", name ? name : "");
}

void ts_ctx_set_comm(ts_ctx *self, comm *c) { self->comm = c ? c : self->own_comm; }
comm *ts_ctx_comm(const ts_ctx *self) { return self->comm; }
bool ts_ctx_comm_set(const ts_ctx *self) { return self->comm != self->own_comm; }
int ts_ctx_synchronize(ts_ctx *self) {
    int rc = self->backend->synchronize(self);
    if (self->failed) {
        self->failed = false;
        return ts_fail_wrap("an op on %s failed", self->backend->name);
    }
    return rc;
}

/* ---- buffers ---------------------------------------------------------------- */

struct ts_buffer {
    ts_ctx *ctx;
    void *data;
    size_t size;
};

ts_buffer *ts_buffer_new(ts_ctx *ctx, size_t bytes) {
    void *data = ctx->backend->alloc(ctx, bytes);
    if (!data) {
        ts_fail("%s: cannot allocate a buffer of %zu bytes", ctx->backend->name, bytes);
        return NULL;
    }
    ts_buffer *b = ts_calloc(1, sizeof *b);
    *b = (ts_buffer){ctx, data, bytes};
    return b;
}

void ts_buffer_destroy(ts_buffer **self) {
    if (!self || !*self) return;
    ts_buffer *b = *self;
    b->ctx->backend->free(b->ctx, b->data);
    free(b);
    *self = NULL;
}

void *ts_buffer_data(const ts_buffer *self) { return self->data; }
size_t ts_buffer_size(const ts_buffer *self) { return self->size; }

static int check_range(const ts_buffer *b, size_t offset, size_t bytes, const char *what) {
    if (offset > b->size || bytes > b->size - offset)
        return ts_fail("%s: bytes [%zu, %zu) outside a buffer of %zu", what, offset, offset + bytes, b->size);
    return 0;
}

int ts_buffer_set(ts_buffer *self, size_t offset, const void *src, size_t bytes) {
    if (check_range(self, offset, bytes, "ts_buffer_set")) return -1;
    return self->ctx->backend->upload(self->ctx, (char *)self->data + offset, src, bytes);
}

int ts_buffer_get(const ts_buffer *self, size_t offset, void *dst, size_t bytes) {
    if (check_range(self, offset, bytes, "ts_buffer_get")) return -1;
    return self->ctx->backend->download(self->ctx, dst, (const char *)self->data + offset, bytes);
}

int ts_ctx_upload(ts_ctx *ctx, void *dst, const void *src, size_t bytes) {
    return bytes ? ctx->backend->upload(ctx, dst, src, bytes) : 0;
}

int ts_ctx_download(ts_ctx *ctx, void *dst, const void *src, size_t bytes) {
    return bytes ? ctx->backend->download(ctx, dst, src, bytes) : 0;
}

void *ts_ctx_alloc(ts_ctx *ctx, size_t bytes) {
    void *p = ctx->backend->alloc(ctx, bytes);
    if (!p) ts_fail("%s: cannot allocate %zu bytes", ctx->backend->name, bytes);
    return p;
}

void ts_ctx_free(ts_ctx *ctx, void *p) {
    if (p) ctx->backend->free(ctx, p);
}

const void *ts_stage_in(ts_ctx *ctx, const void *host, size_t bytes) {
    if (ctx->backend->host_memory || !host) return host;
    void *d = ts_ctx_alloc(ctx, bytes);
    if (d && ts_ctx_upload(ctx, d, host, bytes)) {
        ts_ctx_free(ctx, d);
        return NULL;
    }
    return d;
}

void *ts_stage_out(ts_ctx *ctx, void *host, size_t bytes) {
    return ctx->backend->host_memory || !host ? host : ts_ctx_alloc(ctx, bytes);
}

int ts_stage_finish(ts_ctx *ctx, void *host, void *staged, size_t bytes) {
    if (staged == host) return 0;
    int rc = ts_ctx_download(ctx, host, staged, bytes);
    ts_ctx_free(ctx, staged);
    return rc;
}

void ts_stage_release(ts_ctx *ctx, const void *host, const void *staged) {
    if (staged != host) ts_ctx_free(ctx, (void *)staged);
}

static void release_buffer(void *owner) {
    ts_buffer *b = owner;
    ts_buffer_destroy(&b);
}

arena *ts_arena_new(ts_ctx *ctx, size_t bytes) {
    if (ctx->backend->host_memory) return arena_new(bytes);
    ts_buffer *b = ts_buffer_new(ctx, bytes);
    return b ? arena_over(b->data, bytes, release_buffer, b) : NULL;
}

int tensor_to_backend(ts_ctx *ctx, const tensor *host, tensor *out, ts_buffer **buffer) {
    *buffer = NULL;
    if (ctx->backend->host_memory) {
        *out = *host;
        out->owns_data = false;
        return 0;
    }
    if (!tensor_is_contiguous(host)) return ts_fail("tensor_to_backend: the host tensor must be contiguous");
    ts_buffer *b = ts_buffer_new(ctx, tensor_nbytes(host));
    if (!b) return -1;
    if (ts_buffer_set(b, 0, host->data, tensor_nbytes(host))) {
        ts_buffer_destroy(&b);
        return -1;
    }
    *out = tensor_view(b->data, host->type, host->ndim, host->shape);
    out->buffer = b;
    *buffer = b;
    return 0;
}
