/*
 * cmd_mpi_info.c — `tessera mpi-info [--tp T]`: how the ranks of this job form groups.
 *
 *   mpirun -np 4 tessera mpi-info --tp 2
 *
 * splits the world into consecutive groups of T ranks (comm_split_groups), has each group's
 * rank 0 broadcast its world rank to its group (the group leader: the rank that will hold the
 * coordinator's connection in `worker render --tp T`), gathers every rank's view over the world
 * and prints it from world rank 0. Without a launcher the world is one rank. A diagnostic for
 * a cluster's MPI setup, and the group formation the tensor-parallel worker builds on.
 */
#include "cli/commands.h"
#include "kernels/comm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* One rank's view, all-gathered as plain bytes. */
typedef struct {
    int32_t world_rank, group, group_rank, group_size, leader_world_rank, pid;
    char host[64];
} rank_view;

static int usage(int status) {
    printf("usage: [mpirun -np N] tessera mpi-info [--tp T]\n"
           "Splits the ranks into groups of T (default 1) and prints each rank's group, its place in\n"
           "it and its group's leader (the group's rank 0). Without mpirun the world is one rank.\n");
    return status;
}

int cmd_mpi_info(int argc, char **argv) {
    int tp = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return usage(0);
        if (!strcmp(argv[i], "--tp") && i + 1 < argc) {
            char *end;
            long v = strtol(argv[++i], &end, 10);
            if (*end || v < 1 || v > 1 << 20) {
                fprintf(stderr, "tessera mpi-info: --tp wants a whole number >= 1, not '%s'\n", argv[i]);
                return 2;
            }
            tp = (int)v;
        } else {
            fprintf(stderr, "tessera mpi-info: unknown option '%s'\n", argv[i]);
            return usage(2);
        }
    }
    comm *world = comm_new_world();
    if (!world) {
        fprintf(stderr, "tessera mpi-info: %s\n", ts_last_error());
        return 1;
    }
    int group_index = 0, rc = 1;
    rank_view *all = NULL;
    comm *group = comm_split_groups(world, tp, &group_index);
    if (!group) goto done;
    rank_view me = {.world_rank = comm_rank(world), .group = group_index, .group_rank = comm_rank(group),
                    .group_size = comm_size(group), .pid = (int32_t)getpid()};
    if (gethostname(me.host, sizeof me.host - 1) != 0) snprintf(me.host, sizeof me.host, "?");
    /* The leader says who it is; every member learns it from the group itself. */
    me.leader_world_rank = me.world_rank;
    if (comm_broadcast(group, &me.leader_world_rank, sizeof me.leader_world_rank, 0) != 0) goto done;
    all = ts_calloc((size_t)comm_size(world), sizeof *all);
    if (comm_all_gather(world, &me, all, sizeof me) != 0) goto done;
    if (comm_rank(world) == 0) {
        printf("world: %d rank%s over %s; groups of %d: %d group%s\n", comm_size(world),
               comm_size(world) == 1 ? "" : "s", comm_kind(world), tp, comm_size(world) / tp,
               comm_size(world) / tp == 1 ? "" : "s");
        for (int r = 0; r < comm_size(world); r++) {
            const rank_view *v = &all[r];
            printf("rank %d: group %d, rank %d of %d, leader rank %d%s, host %s, pid %d\n", v->world_rank,
                   v->group, v->group_rank, v->group_size, v->leader_world_rank,
                   v->leader_world_rank == v->world_rank ? " (this rank)" : "", v->host, v->pid);
        }
        fflush(stdout);
    }
    rc = 0;
done:
    if (rc != 0) fprintf(stderr, "tessera mpi-info: rank %d: %s\n", comm_rank(world), ts_last_error());
    free(all);
    comm_destroy(&group);
    comm_destroy(&world);
    return rc;
}
