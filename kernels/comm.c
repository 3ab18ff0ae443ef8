/*
 * comm.c — the comm object: argument checks, the ranks' agreement on each call, dispatch to
 * the implementation's table (comm_impl.h). The implementations are comm_single.c and
 * comm_mpi.c; nothing here knows how bytes travel.
 */
#include "kernels/comm_impl.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct comm {
    const comm_impl *impl;
    void *state;
    int rank, size;
    bool checked;
};

/* What a rank says it is about to call; compared across ranks before the call. */
typedef enum { CALL_ALL_REDUCE = 1, CALL_ALL_GATHER, CALL_BROADCAST, CALL_BARRIER, CALL_SPLIT } call_kind;
enum { CALL_KIND, CALL_COUNT, CALL_TYPE, CALL_ROOT, CALL_OK, CALL_FIELDS };

static const char *call_name(int64_t kind) {
    switch (kind) {
    case CALL_ALL_REDUCE: return "all-reduce";
    case CALL_ALL_GATHER: return "all-gather";
    case CALL_BROADCAST: return "broadcast";
    case CALL_BARRIER: return "barrier";
    case CALL_SPLIT: return "split";
    default: return "an unknown collective";
    }
}

comm *comm_wrap(const comm_impl *impl, void *state, int rank, int size) {
    comm *self = ts_calloc(1, sizeof *self);
    self->impl = impl;
    self->state = state;
    self->rank = rank;
    self->size = size;
    self->checked = true;
    return self;
}

void comm_destroy(comm **self_p) {
    if (!self_p || !*self_p) return;
    comm *self = *self_p;
    if (self->impl->destroy) self->impl->destroy(self->state);
    free(self);
    *self_p = NULL;
}

int comm_rank(const comm *self) { return self->rank; }
int comm_size(const comm *self) { return self->size; }
const char *comm_kind(const comm *self) { return self->impl->name; }
bool comm_device_buffers(const comm *self) { return self->impl->device_buffers; }
void comm_set_checked(comm *self, bool checked) { self->checked = checked; }

/* Wraps the current error as "comm KIND(SIZE): WHAT: error". */
static int comm_fail(const comm *self, const char *what) {
    return ts_fail_wrap("comm %s(%d): %s", self->impl->name, self->size, what);
}

/* Describes how rank r's call differs from rank 0's, naming both. */
static int report_mismatch(const comm *self, const int64_t *all, int r) {
    const int64_t *mine = all + (size_t)r * CALL_FIELDS, *first = all;
    const char *name = call_name(first[CALL_KIND]);
    char prefix[64];
    snprintf(prefix, sizeof prefix, "comm %s(%d)", self->impl->name, self->size);
    if (mine[CALL_KIND] != first[CALL_KIND])
        return ts_fail("%s: rank %d calls %s while rank 0 calls %s", prefix, r,
                       call_name(mine[CALL_KIND]), name);
    if (mine[CALL_TYPE] != first[CALL_TYPE])
        return ts_fail("%s: %s: rank %d passes %s values, rank 0 passes %s", prefix, name, r,
                       dtype_name((dtype)mine[CALL_TYPE]), dtype_name((dtype)first[CALL_TYPE]));
    if (mine[CALL_COUNT] != first[CALL_COUNT]) {
        if (first[CALL_KIND] == CALL_ALL_REDUCE)
            return ts_fail("%s: %s: rank %d passes %lld %s values, rank 0 passes %lld", prefix,
                           name, r, (long long)mine[CALL_COUNT], dtype_name((dtype)mine[CALL_TYPE]),
                           (long long)first[CALL_COUNT]);
        if (first[CALL_KIND] == CALL_SPLIT)
            return ts_fail("%s: %s: rank %d asks for groups of %lld, rank 0 for groups of %lld",
                           prefix, name, r, (long long)mine[CALL_COUNT], (long long)first[CALL_COUNT]);
        return ts_fail("%s: %s: rank %d passes %lld bytes, rank 0 passes %lld", prefix, name, r,
                       (long long)mine[CALL_COUNT], (long long)first[CALL_COUNT]);
    }
    return ts_fail("%s: %s: rank %d names root %lld, rank 0 names root %lld", prefix, name, r,
                   (long long)mine[CALL_ROOT], (long long)first[CALL_ROOT]);
}

/*
 * Every rank tells every other what it is about to call (and whether its own arguments were
 * good); all return -1 together when they differ, so no rank is left waiting in a collective
 * that the others never enter. `ok` false means this rank has already recorded why.
 */
static int agree_on_call(comm *self, call_kind kind, size_t count, dtype type, int root, bool ok) {
    if (!self->checked) return ok ? 0 : -1;
    char own_error[512] = "";
    if (!ok) snprintf(own_error, sizeof own_error, "%s", ts_last_error());
    int64_t mine[CALL_FIELDS] = {kind, (int64_t)count, type, root, ok};
    int64_t stack_all[8 * CALL_FIELDS];
    int64_t *all = self->size <= 8 ? stack_all : ts_malloc((size_t)self->size * sizeof mine);
    int rc = self->impl->agree(self->state, mine, all, CALL_FIELDS);
    if (rc != 0) {
        rc = comm_fail(self, "agreeing on a call");
    } else {
        if (!ok) rc = ts_fail("%s", own_error); /* our own reason first */
        for (int r = 0; r < self->size && rc == 0; r++) {
            const int64_t *theirs = all + (size_t)r * CALL_FIELDS;
            if (!theirs[CALL_OK]) {
                rc = ts_fail("comm %s(%d): %s: rank %d refused its arguments (its error says why)",
                             self->impl->name, self->size, call_name(theirs[CALL_KIND]), r);
            }
        }
        for (int r = 1; r < self->size && rc == 0; r++)
            if (memcmp(all + (size_t)r * CALL_FIELDS, all, sizeof mine) != 0) rc = report_mismatch(self, all, r);
    }
    if (all != stack_all) free(all);
    return rc;
}

/* A local argument problem (why, printf-style): recorded here, shared through agree_on_call. */
static bool arguments_ok(const comm *self, const char *call, bool cond, const char *why, ...) TS_PRINTF(4, 5);
static bool arguments_ok(const comm *self, const char *call, bool cond, const char *why, ...) {
    if (cond) return true;
    char text[256];
    va_list ap;
    va_start(ap, why);
    vsnprintf(text, sizeof text, why, ap);
    va_end(ap);
    ts_fail("comm %s(%d): %s: %s", self->impl->name, self->size, call, text);
    return false;
}

int comm_all_reduce_sum(comm *self, const void *send, void *recv, size_t count, dtype type) {
    bool known = type >= 0 && type < DT_COUNT;
    bool ok = arguments_ok(self, "all-reduce", known && self->impl->supports_sum(type), "%s does not sum %s values",
                           self->impl->name, known ? dtype_name(type) : "unknown") &&
              arguments_ok(self, "all-reduce", count == 0 || (send && recv), "NULL buffer") &&
              arguments_ok(self, "all-reduce", count <= (size_t)INT64_MAX / 8, "count too large");
    if (!ok && type >= DT_COUNT) type = DT_F32; /* keep dtype_name in messages in range */
    if (agree_on_call(self, CALL_ALL_REDUCE, count, type, 0, ok) != 0) return -1;
    if (count == 0) return 0;
    if (self->impl->all_reduce_sum(self->state, send, recv, count, type) != 0)
        return comm_fail(self, "all-reduce");
    return 0;
}

int comm_all_gather(comm *self, const void *send, void *recv, size_t bytes) {
    bool ok = arguments_ok(self, "all-gather", bytes == 0 || (send && recv), "NULL buffer") &&
              arguments_ok(self, "all-gather", bytes <= (size_t)INT64_MAX / (size_t)self->size,
                           "too many bytes");
    if (agree_on_call(self, CALL_ALL_GATHER, bytes, DT_U8, 0, ok) != 0) return -1;
    if (bytes == 0) return 0;
    if (self->impl->all_gather(self->state, send, recv, bytes) != 0) return comm_fail(self, "all-gather");
    return 0;
}

int comm_broadcast(comm *self, void *data, size_t bytes, int root) {
    bool ok = arguments_ok(self, "broadcast", root >= 0 && root < self->size,
                           "root %d is not a rank of a group of %d", root, self->size) &&
              arguments_ok(self, "broadcast", bytes == 0 || data, "NULL buffer");
    if (agree_on_call(self, CALL_BROADCAST, bytes, DT_U8, root, ok) != 0) return -1;
    if (bytes == 0) return 0;
    if (self->impl->broadcast(self->state, data, bytes, root) != 0) return comm_fail(self, "broadcast");
    return 0;
}

int comm_broadcast_message(comm *self, void **data, size_t *bytes, int root) {
    uint64_t length = self->rank == root ? (uint64_t)*bytes : 0;
    if (comm_broadcast(self, &length, sizeof length, root) != 0) return -1;
    if (self->rank == root) return comm_broadcast(self, *data, (size_t)length, root);
    void *message = length ? ts_malloc((size_t)length) : NULL;
    if (comm_broadcast(self, message, (size_t)length, root) != 0) {
        free(message);
        return -1;
    }
    *data = message;
    *bytes = (size_t)length;
    return 0;
}

int comm_barrier(comm *self) {
    /* The checked agreement is an all-gather: it already waits for every rank. */
    if (self->checked) return agree_on_call(self, CALL_BARRIER, 0, DT_U8, 0, true);
    if (self->impl->barrier(self->state) != 0) return comm_fail(self, "barrier");
    return 0;
}

/* The implementation's split, after the ranks have agreed on the call. */
static comm *split_agreed(comm *self, int color, int key) {
    int rank = 0, size = 0;
    void *state = self->impl->split(self->state, color, key, &rank, &size);
    if (!state) {
        comm_fail(self, "split");
        return NULL;
    }
    comm *group = comm_wrap(self->impl, state, rank, size);
    group->checked = self->checked;
    return group;
}

comm *comm_split(comm *self, int color, int key) {
    bool ok = arguments_ok(self, "split", color >= 0, "color %d is negative", color);
    if (agree_on_call(self, CALL_SPLIT, 0, DT_U8, 0, ok) != 0) return NULL;
    return split_agreed(self, color, key);
}

comm *comm_split_groups(comm *self, int group_size, int *group_index) {
    bool ok = arguments_ok(self, "split into groups", group_size >= 1 && self->size % group_size == 0,
                           "size %d does not divide into groups of %d", self->size, group_size);
    /* The group size goes in the agreement, so ranks asking for different sizes all fail. */
    if (agree_on_call(self, CALL_SPLIT, ok ? (size_t)group_size : 0, DT_U8, 0, ok) != 0) return NULL;
    int color = self->rank / group_size;
    if (group_index) *group_index = color;
    return split_agreed(self, color, self->rank);
}

comm *comm_new_world(void) {
    if (!comm_under_launcher()) return comm_new_single();
    if (!comm_have_mpi()) {
        ts_fail("comm: started by an MPI launcher (mpirun, srun), but this tessera was built "
                "without MPI (install libopenmpi-dev and rebuild)");
        return NULL;
    }
    return comm_new_mpi_world();
}
