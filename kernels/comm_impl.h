/*
 * comm_impl.h — what an implementation of comm.h provides (for comm_*.c only, not callers).
 *
 * An implementation keeps its own state (an MPI communicator, an NCCL communicator and its
 * stream, ...) and fills this table; comm.c checks the arguments, has the ranks agree on the
 * call, then dispatches. Each function is collective: every rank of the group calls it with
 * the same arguments (comm.c has made sure of that when checking is on). Each returns 0, or
 * -1 with ts_fail naming the library call that failed.
 *
 * To add one (NCCL, say): write kernels/comm_nccl.c with a `static const comm_impl` table and
 * a constructor that makes the state and returns comm_wrap(&table, state, rank, size).
 */
#ifndef TESSERA_COMM_IMPL_H
#define TESSERA_COMM_IMPL_H

#include "kernels/comm.h"

typedef struct comm_impl {
    const char *name;
    bool device_buffers;   /* the collectives' buffers are device pointers (NCCL), not host memory */
    /* recv = sum of every rank's send; send == recv means in place. Types other than those
     * the implementation supports are refused by comm.c through supports_sum. */
    int (*all_reduce_sum)(void *state, const void *send, void *recv, size_t count, dtype type);
    bool (*supports_sum)(dtype type);
    int (*all_gather)(void *state, const void *send, void *recv, size_t bytes);
    int (*broadcast)(void *state, void *data, size_t bytes, int root);
    int (*barrier)(void *state);
    /* A small all-gather of n int64 per rank, in host memory, used by comm.c to check that
     * the ranks make the same call. all holds size * n. Must not itself be checked. */
    int (*agree)(void *state, const int64_t *mine, int64_t *all, int n);
    /* The state of a new sub-group; *rank and *size are this rank's place in it. */
    void *(*split)(void *state, int color, int key, int *rank, int *size);
    void (*destroy)(void *state);
} comm_impl;

/* Wraps an implementation's state into a comm (takes ownership of state). */
comm *comm_wrap(const comm_impl *impl, void *state, int rank, int size);

#endif
