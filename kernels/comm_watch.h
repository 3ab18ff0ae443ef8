/*
 * comm_watch.h — noticing that a rank of a group has died (kill -9, a crash, a lost node).
 *
 * MPI without fault tolerance (OpenMPI 4.1 as Debian builds it: no ULFM) never tells the
 * survivors: a collective with a dead rank waits forever, over shared memory and TCP alike,
 * even with MPI_ERRORS_RETURN. A comm_watch gives each group that notice itself: one TCP
 * connection from every other rank to the group's rank 0 (a star, made once, collectively),
 * watched by a thread that sleeps in poll(). A process that ends closes its sockets, so its
 * peers see the end of the stream at once, wherever it ran; TCP keepalive covers a node that
 * vanishes. A rank that leaves on purpose says goodbye first (comm_watch_destroy), so only an
 * end without goodbye counts as a loss. Rank 0 watches every rank, the others watch rank 0;
 * when rank 0 ends because of a loss, the others see that in turn.
 *
 *   comm_watch *w = comm_watch_new(group, on_loss, arg);  // collective over group
 *   ... collectives on group ...
 *   comm_watch_destroy(&w);                                // before comm_destroy(&group)
 *
 * on_loss(arg, rank) runs once, on the watch's thread, naming the group rank that ended. With
 * on_loss NULL the process prints why and ends at once (_exit(COMM_WATCH_EXIT)): the right
 * thing for a rank whose main thread is inside a collective that will never complete (it must
 * not run MPI_Finalize either). Nothing here is written to storage.
 *
 * The launcher must let the others live on: OpenMPI's mpirun aborts every rank when one dies
 * unless started with --enable-recovery (see README, "Parallel rendering").
 */
#ifndef TESSERA_COMM_WATCH_H
#define TESSERA_COMM_WATCH_H

#include "kernels/comm.h"

enum { COMM_WATCH_EXIT = 75 }; /* the exit status of a process ended by a lost peer */

typedef struct comm_watch comm_watch;
typedef void (*comm_watch_fn)(void *arg, int rank);

/* Collective over group. NULL with ts_fail when a connection cannot be made (on every rank). A
 * group of one rank gets a watch that watches nothing. */
comm_watch *comm_watch_new(comm *group, comm_watch_fn on_loss, void *arg);
/* Leaves on purpose, collectively: stops the thread, then the ranks other than 0 say goodbye
 * and wait for rank 0's, which it says once all of theirs have come (or ended; at most a
 * minute). So when it returns no rank of the group still waits for a message from another. */
void comm_watch_destroy(comm_watch **self_p);
/* Closes without goodbye (this rank failed and its peers must not wait for it). */
void comm_watch_abandon(comm_watch **self_p);
/* The group rank seen lost (>= 0), or -1 while none. Any thread. */
int comm_watch_lost(const comm_watch *self);

#endif
