/*
 * comm_single.c — the one-rank comm: every collective is a copy (or nothing). What a program
 * gets when it is not started under an MPI launcher, so code written for groups runs alone.
 */
#include "kernels/comm_impl.h"

#include <string.h>

static bool single_supports_sum(dtype type) { return type == DT_F32; } /* as comm_mpi.c */

static int single_all_reduce_sum(void *state, const void *send, void *recv, size_t count, dtype type) {
    if (send != recv) memmove(recv, send, count * dtype_size(type));
    return 0;
}

static int single_all_gather(void *state, const void *send, void *recv, size_t bytes) {
    if (send != recv) memmove(recv, send, bytes);
    return 0;
}

static int single_broadcast(void *state, void *data, size_t bytes, int root) { return 0; }
static int single_barrier(void *state) { return 0; }

static int single_agree(void *state, const int64_t *mine, int64_t *all, int n) {
    memcpy(all, mine, (size_t)n * sizeof *mine);
    return 0;
}

/* The state is never read; a non-NULL token says the split worked. */
static char single_token;

static void *single_split(void *state, int color, int key, int *rank, int *size) {
    *rank = 0;
    *size = 1;
    return &single_token;
}

static const comm_impl single_impl = {
    .name = "single",
    .all_reduce_sum = single_all_reduce_sum,
    .supports_sum = single_supports_sum,
    .all_gather = single_all_gather,
    .broadcast = single_broadcast,
    .barrier = single_barrier,
    .agree = single_agree,
    .split = single_split,
    .destroy = NULL,
};

comm *comm_new_single(void) { return comm_wrap(&single_impl, &single_token, 0, 1); }
