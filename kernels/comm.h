/*
 * comm.h — collectives between the ranks of a group: the `comm` object.
 *
 * A comm is a group of ranks 0..size-1 that call the same collectives in the same order:
 * all-reduce (sum), all-gather, broadcast and barrier. It hides how the bytes travel:
 *
 *   comm_new_single()      one rank; every collective is a copy. Always built.
 *   comm_new_mpi_world()   every rank of the job, over MPI on host memory (only when the
 *                          build has MPI and the program was started by mpirun/srun).
 *   comm_new_world()       the MPI world when started under a launcher, else a single rank:
 *                          what a program that may or may not be under mpirun calls.
 *   comm_split(c, color, key)  sub-groups (tensor-parallel groups of a world, say).
 *
 * A new implementation (NCCL on device buffers, for one) fills a comm_impl table
 * (comm_impl.h) and wraps it with comm_wrap(); callers do not change.
 *
 *   comm *world = comm_new_world();
 *   comm *group = comm_split(world, comm_rank(world) / tp, comm_rank(world));
 *   if (comm_all_reduce_sum(group, part, part, n, DT_F32) != 0) return ts_fail_wrap("block 3");
 *   comm_destroy(&group); comm_destroy(&world);
 *
 * Checked calls: by default every collective first agrees with the other ranks on what is
 * being called (which collective, the count, the dtype, the root) through one small
 * all-gather. A rank that passes a different count, root or collective then makes every rank
 * return -1 with the same message naming the ranks ("comm mpi(4): all-reduce: rank 2 passes
 * 14 F32 values, rank 0 passes 13"), instead of hanging or reading past a buffer, which is what
 * MPI does with mismatched calls. comm_set_checked(c, false) skips the agreement (one
 * latency-bound round trip per call) once a caller is proven; mismatches are then undefined.
 *
 * Threads: a comm is used by one thread at a time. MPI is initialised with
 * MPI_THREAD_SERIALIZED, so that thread need not be the one that created it.
 * Errors follow base.h: 0 / -1 with ts_fail, constructors return NULL.
 */
#ifndef TESSERA_COMM_H
#define TESSERA_COMM_H

#include "kernels/tensor.h"

typedef struct comm comm;

comm *comm_new_single(void);
comm *comm_new_mpi_world(void);
comm *comm_new_world(void);
/* A new comm of the ranks of `self` that pass the same color (>= 0), ranked by key then by
 * rank in self. Collective over self. */
comm *comm_split(comm *self, int color, int key);
/* Splits self into consecutive groups of group_size ranks (ranks 0..T-1, T..2T-1, ...);
 * refuses a size that does not divide. *group_index (may be NULL) gets this rank's group. */
comm *comm_split_groups(comm *self, int group_size, int *group_index);
void comm_destroy(comm **self_p);

int comm_rank(const comm *self);
int comm_size(const comm *self);
/* "single", "mpi", ... the implementation's name. */
const char *comm_kind(const comm *self);
/* True when the collectives take device pointers (NCCL), false for host memory (single, MPI):
 * a caller whose data lives on a device copies it to the host for a host comm. */
bool comm_device_buffers(const comm *self);

/* recv[i] = sum over ranks of send[i], for count values of type (DT_F32 today). send may
 * equal recv (in place). Every rank gets the same bits. */
int comm_all_reduce_sum(comm *self, const void *send, void *recv, size_t count, dtype type);
/* recv holds size * bytes: rank r's send at recv + r * bytes. Every rank passes the same
 * bytes. */
int comm_all_gather(comm *self, const void *send, void *recv, size_t bytes);
/* data (bytes long on every rank) is replaced by root's on every other rank. */
int comm_broadcast(comm *self, void *data, size_t bytes, int root);
/* A message whose length only root knows (a task, say): root passes *data and *bytes; every
 * other rank gets a new buffer in *data (free it; NULL when the message is empty) and its
 * length in *bytes. Two broadcasts: the length, then the bytes. */
int comm_broadcast_message(comm *self, void **data, size_t *bytes, int root);
int comm_barrier(comm *self);

void comm_set_checked(comm *self, bool checked);

/* True when this process was started by an MPI launcher (mpirun, mpiexec, srun --mpi). */
bool comm_under_launcher(void);
/* True when the build has an MPI implementation. */
bool comm_have_mpi(void);
/* Whether MPI_Finalize runs at exit (the default). false: the process leaves MPI without it,
 * which `mpirun --enable-recovery` allows and which a job that may have lost a rank needs:
 * OpenMPI 4.1's MPI_Finalize ends with a fence over every rank of the job (PMIx), which can
 * wait forever for a dead one. Callers make sure their own traffic is over (comm_watch.h). */
void comm_set_finalize_at_exit(bool finalize);

#endif
