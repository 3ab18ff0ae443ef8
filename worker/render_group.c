/*
 * render_group.c — render workers in groups of MPI ranks sharing a U-Net: the world split
 * into groups, each group's rank 0 a worker, the others serving its U-Net. See render_group.h.
 */
#include "worker/render_group.h"

#include "kernels/comm.h"
#include "kernels/comm_watch.h"
#include "models/diffusion/txt2img.h"
#include "models/diffusion/unet_parallel.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Rank 0 of a group: the worker sees the loss through comm_watch_lost and hands its tasks back. */
static void leader_saw_loss(void *arg, int rank) {
    fprintf(stderr, "tessera: render group %d: rank %d of the group ended without leaving (killed or "
                    "crashed): handing the tasks back, then ending this group\n", *(int *)arg, rank);
}

/* Started by `mpirun --enable-recovery` (OpenMPI passes its MCA settings to the ranks). */
static bool launcher_recovers(void) {
    const char *recovery = getenv("OMPI_MCA_orte_enable_recovery");
    return recovery && (atoi(recovery) == 1 || !strcmp(recovery, "true"));
}

/* Without --enable-recovery OpenMPI's mpirun ends every rank when one dies: say so once. */
static void warn_without_recovery(const comm *world, int tp) {
    if (comm_rank(world) != 0 || comm_size(world) / tp < 2 || !getenv("OMPI_COMM_WORLD_SIZE")) return;
    if (launcher_recovers()) return;
    log_warn("render groups: mpirun without --enable-recovery ends every rank, every group of this mpirun, "
             "when one rank dies; with it only the dead rank's group ends");
}

int render_group_run(const worker_options *options, int tp, const char *parallel) {
    unet_parallel mode = UNET_PARALLEL_TP;
    if (parallel && (unet_parallel_parse(parallel, &mode) || mode == UNET_PARALLEL_NONE))
        return ts_fail("--parallel is tp, cfg or dp for a render group, not '%s'", parallel);
    if (options->stage != 2) return ts_fail("--tp: only render workers run in groups");
    comm *world = comm_new_world();
    if (!world) return -1;
    int index = 0;
    comm *group = comm_split_groups(world, tp, &index);
    if (!group) {
        ts_fail_wrap("--tp %d over %d ranks", tp, comm_size(world));
        comm_destroy(&world);
        return -1;
    }
    warn_without_recovery(world, tp);
    /* The world is not used again: a dead rank of another group must not matter to this one. */
    bool leader = comm_rank(group) == 0;
    comm_watch *watch = comm_watch_new(group, leader ? leader_saw_loss : NULL, &index);
    if (!watch) {
        ts_fail_wrap("render group %d", index);
        comm_destroy(&group);
        comm_destroy(&world);
        return -1;
    }
    int rc;
    if (!leader) {
        txt2img_options o = {.model = options->model, .device = options->device, .group = group, .parallel = mode,
                             .tp_pieces = options->tp_pieces};
        rc = txt2img_follow(&o);
        if (rc) ts_fail_wrap("render group %d, rank %d", index, comm_rank(group));
    } else {
        worker_options o = *options;
        char name[160];
        snprintf(name, sizeof name, "%s-g%d", options->name ? options->name : "render", index);
        o.name = name;
        o.group = comm_size(group) > 1 ? group : NULL;
        o.parallel = mode;
        o.group_watch = watch;
        rc = worker_run(&o);
    }
    if (comm_watch_lost(watch) >= 0) {
        /* A collective with the dead rank never returns, and MPI_Finalize would wait for it:
         * end here. Nothing was left half written (outputs are written then renamed). */
        fprintf(stderr, "tessera: render group %d, rank %d: %s\n", index, comm_rank(group), ts_last_error());
        fflush(NULL);
        _exit(COMM_WATCH_EXIT);
    }
    if (rc) comm_watch_abandon(&watch); /* the others must not wait for a rank that failed */
    else comm_watch_destroy(&watch);     /* in order: the group's MPI traffic is over */
    /* Another group may have lost a rank: MPI_Finalize's fence over the whole job would wait
     * for it forever (seen with OpenMPI 4.1.4 when world rank 0 was the one killed). */
    if (launcher_recovers()) comm_set_finalize_at_exit(false);
    comm_destroy(&group);
    comm_destroy(&world);
    return rc;
}
