/*
 * test_comm_watch.c — a group's ranks noticing one another's end (kernels/comm_watch.h).
 *
 * Run by ctest it checks the one-rank watch, then starts itself under mpirun -np 3, where:
 *   1. the three ranks make a watch and leave in order (comm_watch_destroy): nobody is
 *      reported lost, and leaving is a barrier (every rank has said goodbye);
 *   2. they make another; rank 2 closes its connection without goodbye (comm_watch_abandon,
 *      as a killed process's sockets close): rank 0 reports rank 2 lost within 10 s; then rank
 *      0 abandons: rank 1 reports rank 0 lost. The processes stay alive, so MPI goes on and
 *      the ranks finish with a barrier; what a real kill -9 does to a render group is
 *      integration/test_render_group's.
 */
#include "kernels/comm.h"
#include "kernels/comm_watch.h"
#include "tests/test.h"

#include <stdlib.h>
#include <unistd.h>

static int reported = -1, reports = 0; /* __atomic: set on the watch's thread */

static void on_loss(void *arg, int rank) {
    (void)arg;
    __atomic_store_n(&reported, rank, __ATOMIC_RELEASE);
    __atomic_add_fetch(&reports, 1, __ATOMIC_ACQ_REL);
}

/* Waits up to 10 s for w to report `rank` lost. */
static bool lost_within(comm_watch *w, int rank) {
    for (int i = 0; i < 1000; i++) {
        if (comm_watch_lost(w) == rank) return true;
        usleep(10000);
    }
    return false;
}

int main(void) {
    TEST_BEGIN();
    if (!comm_under_launcher()) {
        comm *one = comm_new_single();
        comm_watch *w = comm_watch_new(one, on_loss, NULL);
        CHECK(w && comm_watch_lost(w) == -1, "one rank: %s", w ? "reported a loss" : ts_last_error());
        comm_watch_destroy(&w);
        CHECK(w == NULL, "destroy clears the pointer");
        comm_destroy(&one);
        if (comm_have_mpi()) CHECK(test_run_under_mpirun(3, 120), "mpirun -np 3: a rank failed");
        else fprintf(stderr, "test_comm_watch: built without MPI, only the one-rank watch is tested\n");
        return TEST_END();
    }
    comm *world = comm_new_world();
    CHECK(world && comm_size(world) == 3, "%s", world ? "not 3 ranks" : ts_last_error());
    if (!world || comm_size(world) != 3) return TEST_END();
    int rank = comm_rank(world);

    /* 1. leaving in order */
    comm_watch *w = comm_watch_new(world, on_loss, NULL);
    CHECK(w != NULL, "%s", ts_last_error());
    CHECK_OK(comm_barrier(world));
    if (rank == 1) usleep(300000); /* one rank late: the others wait for its goodbye */
    comm_watch_destroy(&w);
    CHECK(__atomic_load_n(&reports, __ATOMIC_ACQUIRE) == 0, "rank %d: rank %d reported lost after an orderly leave",
          rank, __atomic_load_n(&reported, __ATOMIC_ACQUIRE));

    /* 2. an end without goodbye */
    w = comm_watch_new(world, on_loss, NULL);
    CHECK(w != NULL, "%s", ts_last_error());
    CHECK_OK(comm_barrier(world));
    if (w && rank == 2) {
        comm_watch_abandon(&w);
    } else if (w && rank == 0) {
        CHECK(lost_within(w, 2), "rank 0: rank 2's end not seen (lost: %d)", comm_watch_lost(w));
        CHECK(__atomic_load_n(&reported, __ATOMIC_ACQUIRE) == 2 && __atomic_load_n(&reports, __ATOMIC_ACQUIRE) == 1,
              "rank 0: on_loss got %d (%d calls)", reported, reports);
        comm_watch_abandon(&w);
    } else if (w) {
        CHECK(lost_within(w, 0), "rank 1: rank 0's end not seen (lost: %d)", comm_watch_lost(w));
        CHECK(__atomic_load_n(&reported, __ATOMIC_ACQUIRE) == 0, "rank 1: on_loss got %d", reported);
        comm_watch_destroy(&w); /* a goodbye to a rank already gone: must not hang or fail */
    }
    CHECK_OK(comm_barrier(world));
    comm_destroy(&world);
    return TEST_END();
}
