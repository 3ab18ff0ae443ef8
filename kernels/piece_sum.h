/*
 * piece_sum.h — an all-reduce whose bits do not depend on how the work was shared out.
 *
 * A tensor-parallel layer's output is a sum of partial products, one per piece of the split.
 * An MPI all-reduce adds the ranks' parts in an order of its own, so a split over 2 ranks and
 * one over 4 round differently, and neither equals one rank's single product. A piece_sum
 * fixes the order instead: the work is cut into P pieces whatever the number of ranks T
 * (P a multiple of T), each rank computes its P / T pieces (one thread each, the "local"
 * pieces), and every sum is ((p0 + p1) + p2) + ... in piece order, on every rank. The result
 * is then the same bits for every T that divides P, T = 1 included.
 *
 *   piece_sum *s = piece_sum_new(local, pieces);          // one per rank, shared by its threads
 *   // on local thread j, at each row-parallel layer, with x its piece's partial sum:
 *   if (piece_sum_add(s, j, group, x, n)) ...              // x = the sum of all P pieces
 *   piece_sum_destroy(&s);
 *
 * The local threads meet at a barrier; thread 0 alone talks to the group (an all-gather of
 * every rank's parts over host memory), so the comm is used by one thread at a time. Every
 * local thread must call piece_sum_add the same number of times with the same n. A failed
 * all-gather makes the call return -1 on every local thread (the caller ends its work there).
 */
#ifndef TESSERA_PIECE_SUM_H
#define TESSERA_PIECE_SUM_H

#include "kernels/comm.h"

typedef struct piece_sum piece_sum;

/* local threads of this rank, pieces in all (a multiple of local). */
piece_sum *piece_sum_new(int local, int pieces);
void piece_sum_destroy(piece_sum **self_p);
int piece_sum_local(const piece_sum *self);
int piece_sum_pieces(const piece_sum *self);

/* x[n] (host memory, this thread's piece's part) = the ordered sum of every piece's part.
 * group: the ranks (pieces / local of them, this rank's pieces consecutive); NULL for one. */
int piece_sum_add(piece_sum *self, int local_index, comm *group, float *x, size_t n);

#endif
