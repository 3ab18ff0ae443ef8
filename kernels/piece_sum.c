/*
 * piece_sum.c — the ordered all-reduce of piece_sum.h: the local threads hand their parts to
 * thread 0, which gathers the other ranks' (MPI or any host comm), adds all P parts in piece
 * order and hands the sum back. Plain loops: the adds must happen in one fixed order per
 * element, which a library reduction does not promise.
 */
#include "kernels/piece_sum.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct piece_sum {
    int local, pieces;
    pthread_barrier_t meet;
    float **part;              /* [local]: each local thread's buffer for the call in progress */
    const float **all;         /* [pieces]: every piece's part, in piece order */
    float *send, *recv, *sum;  /* thread 0's buffers (send, recv only with other ranks) */
    size_t cap;                /* floats of each per piece */
    int rc;
};

piece_sum *piece_sum_new(int local, int pieces) {
    if (local < 1 || pieces < local || pieces % local) {
        ts_fail("piece_sum: %d local pieces of %d (a multiple of them) wanted", local, pieces);
        return NULL;
    }
    piece_sum *self = ts_calloc(1, sizeof *self);
    self->local = local;
    self->pieces = pieces;
    if (pthread_barrier_init(&self->meet, NULL, (unsigned)local)) {
        free(self);
        ts_fail("piece_sum: no barrier for %d threads", local);
        return NULL;
    }
    self->part = ts_calloc((size_t)local, sizeof *self->part);
    self->all = ts_calloc((size_t)pieces, sizeof *self->all);
    return self;
}

void piece_sum_destroy(piece_sum **self_p) {
    if (!self_p || !*self_p) return;
    piece_sum *self = *self_p;
    pthread_barrier_destroy(&self->meet);
    free(self->part);
    free(self->all);
    free(self->send), free(self->recv), free(self->sum);
    free(self);
    *self_p = NULL;
}

int piece_sum_local(const piece_sum *self) { return self->local; }
int piece_sum_pieces(const piece_sum *self) { return self->pieces; }

/* Thread 0's part of a call: every piece's part in self->all, their sum into every local part. */
static int gather_and_add(piece_sum *self, comm *group, size_t n) {
    int ranks = self->pieces / self->local;
    if ((group ? comm_size(group) : 1) != ranks)
        return ts_fail("piece_sum: %d pieces, %d here, need a group of %d ranks (it has %d)", self->pieces, self->local, ranks,
                       group ? comm_size(group) : 1);
    if (n > self->cap) {
        free(self->send), free(self->recv), free(self->sum);
        self->send = ranks > 1 ? ts_malloc((size_t)self->local * n * sizeof(float)) : NULL;
        self->recv = ranks > 1 ? ts_malloc((size_t)self->pieces * n * sizeof(float)) : NULL;
        self->sum = ts_malloc(n * sizeof(float));
        self->cap = n;
    }
    if (ranks > 1) {
        for (int j = 0; j < self->local; j++) memcpy(self->send + (size_t)j * n, self->part[j], n * sizeof(float));
        if (comm_all_gather(group, self->send, self->recv, (size_t)self->local * n * sizeof(float)))
            return ts_fail_wrap("piece_sum: gathering %d pieces of %zu values", self->pieces, n);
        for (int i = 0; i < self->pieces; i++) self->all[i] = self->recv + (size_t)i * n;
    } else {
        for (int i = 0; i < self->pieces; i++) self->all[i] = self->part[i];
    }
    float *s = self->sum;
    memcpy(s, self->all[0], n * sizeof(float));
    for (int i = 1; i < self->pieces; i++) {
        const float *p = self->all[i];
        for (size_t k = 0; k < n; k++) s[k] += p[k];
    }
    for (int j = 0; j < self->local; j++) memcpy(self->part[j], s, n * sizeof(float));
    return 0;
}

int piece_sum_add(piece_sum *self, int local_index, comm *group, float *x, size_t n) {
    self->part[local_index] = x;
    pthread_barrier_wait(&self->meet);
    if (local_index == 0) self->rc = gather_and_add(self, group, n);
    pthread_barrier_wait(&self->meet);
    return self->rc;
}
