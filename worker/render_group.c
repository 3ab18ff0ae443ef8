/*
 * render_group.c — render workers in groups of MPI ranks sharing a U-Net: the world split
 * into groups, each group's rank 0 a worker, the others serving its U-Net. See render_group.h.
 */
#include "worker/render_group.h"

#include "kernels/comm.h"
#include "models/diffusion/txt2img.h"
#include "models/diffusion/unet_parallel.h"

#include <stdio.h>

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
    int rc;
    if (comm_rank(group) != 0) {
        txt2img_options o = {.model = options->model, .group = group, .parallel = mode};
        rc = txt2img_follow(&o);
        if (rc) ts_fail_wrap("render group %d, rank %d", index, comm_rank(group));
    } else {
        worker_options o = *options;
        char name[160];
        snprintf(name, sizeof name, "%s-g%d", options->name ? options->name : "render", index);
        o.name = name;
        o.group = comm_size(group) > 1 ? group : NULL;
        o.parallel = mode;
        rc = worker_run(&o);
    }
    comm_destroy(&group);
    comm_destroy(&world);
    return rc;
}
