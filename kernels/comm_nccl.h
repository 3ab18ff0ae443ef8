/*
 * comm_nccl.h — the comm (comm.h) over NCCL, on device buffers: the GPU collectives.
 *
 * One GPU per rank: NCCL refuses two ranks of one communicator on one GPU, so a rank's device
 * is its place among the ranks on its machine (comm_nccl_device), and a machine with one GPU
 * runs NCCL at T = 1 only. The NCCL communicator is made over a host comm (MPI, or the single
 * rank), which carries NCCL's unique id from rank 0 and the calls' checks (comm.c's agreement
 * on each call, a small host all-gather).
 *
 *   comm *world = comm_new_world();
 *   int device = comm_nccl_device(world);                 // collective; -1 with ts_fail
 *   cuda_context *ctx = cuda_context_new(device, arena);
 *   comm *gpu = comm_new_nccl(world, device, cuda_context_stream(ctx));
 *   comm_all_reduce_sum(gpu, d_x, d_x, n, DT_F16);         // device pointers, on ctx's stream
 *   comm_destroy(&gpu);                                    // before the context goes
 *
 * Every collective is enqueued on the stream given at creation and returns at once: the
 * result is there in stream order (cuda_synchronize, or the next op on that stream). Buffers
 * are device pointers on this rank's device. all-reduce sums F32, F16 and BF16 (NCCL adds in
 * the type itself: ring order, so the bits may differ from MPI's F32 sum of the same values);
 * all-gather and broadcast move bytes; barrier waits for the stream, then for every rank.
 * comm_split splits the NCCL communicator (ncclCommSplit) and its host comm alike.
 *
 * Built only when CMake finds NCCL and the CUDA library is built (TESSERA_HAVE_NCCL,
 * kernels/comm_nccl.cmake); otherwise the constructors fail saying so.
 */
#ifndef TESSERA_COMM_NCCL_H
#define TESSERA_COMM_NCCL_H

#include "kernels/comm.h"

/* True when this build has the NCCL comm. */
bool comm_have_nccl(void);
/* The GPU this rank uses: how many lower ranks of host run on the same machine. Collective
 * over host; -1 with ts_fail (on every rank) when a machine has more ranks than GPUs. */
int comm_nccl_device(comm *host);
/* A comm over NCCL among host's ranks, on `device` (cudaSetDevice), enqueuing on `stream` (a
 * cudaStream_t on that device; NULL: the default stream). Collective over host, which it
 * duplicates (host may be destroyed after). NULL with ts_fail, on every rank. */
comm *comm_new_nccl(comm *host, int device, void *stream);

#endif
