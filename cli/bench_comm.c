/*
 * bench_comm.c — `[mpirun -np N] tessera bench comm [--reps R] [--max-mib M]`: how long an
 * all-reduce of F32 takes over the ranks of this job, from 4 bytes to M MiB, checked
 * (the ranks agree on each call first, comm.h) and unchecked, against a memcpy of the same
 * bytes in the same process (the baseline). Figures for the tensor-parallel cost model: at
 * small sizes latency rules, at large ones bus bandwidth, 2 (n-1)/n x bytes / time as
 * nccl-tests counts it. Each time is the slowest rank's, best of R; rank 0 prints.
 */
#include "cli/bench.h"
#include "kernels/comm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    comm *c;
    float *x;
    size_t n;
} reduce_job;

/* Seconds of one call of op on the slowest rank, best of reps; -1 on error. */
static double slowest_rank_best(comm *c, int (*op)(reduce_job *), reduce_job *job, int reps) {
    double best = 1e30;
    double *times = ts_malloc((size_t)comm_size(c) * sizeof *times);
    for (int r = -1; r < reps; r++) { /* r == -1 warms up */
        if (comm_barrier(c) != 0) { best = -1; break; }
        double t0 = ts_now();
        if (op(job) != 0) { best = -1; break; }
        double dt = ts_now() - t0;
        if (comm_all_gather(c, &dt, times, sizeof dt) != 0) { best = -1; break; }
        double slowest = 0;
        for (int i = 0; i < comm_size(c); i++) slowest = times[i] > slowest ? times[i] : slowest;
        if (r >= 0 && slowest < best) best = slowest;
    }
    free(times);
    return best;
}

static int all_reduce_op(reduce_job *j) { return comm_all_reduce_sum(j->c, j->x, j->x, j->n, DT_F32); }
static int copy_op(reduce_job *j) {
    memcpy(j->x + j->n, j->x, j->n * sizeof *j->x); /* x has room for two copies */
    return 0;
}

int bench_comm(int argc, char **argv) {
    int reps = 20;
    double max_mib = 16;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--max-mib") && i + 1 < argc) max_mib = atof(argv[++i]);
        else {
            fprintf(stderr, "usage: [mpirun -np N] tessera bench comm [--reps R] [--max-mib M]\n");
            return 2;
        }
    }
    if (reps < 1 || max_mib <= 0) {
        fprintf(stderr, "tessera bench comm: --reps and --max-mib want positive numbers\n");
        return 2;
    }
    comm *checked = comm_new_world();
    comm *unchecked = checked ? comm_split(checked, 0, comm_rank(checked)) : NULL; /* its own copy */
    if (!unchecked) {
        fprintf(stderr, "tessera bench comm: %s\n", ts_last_error());
        comm_destroy(&checked);
        return 1;
    }
    comm_set_checked(unchecked, false);
    int np = comm_size(checked), me = comm_rank(checked), rc = 0;
    size_t max_n = (size_t)(max_mib * 1048576.0 / sizeof(float));
    float *x = ts_aligned_alloc(2 * (max_n > 0 ? max_n : 1) * sizeof *x);
    for (size_t i = 0; i < 2 * max_n; i++) x[i] = (float)(i % 7) * 0.25f;
    if (me == 0) {
        printf("all-reduce (sum, F32) over %d rank%s (%s), slowest rank, best of %d\n", np, np == 1 ? "" : "s",
               comm_kind(checked), reps);
        printf("%10s %12s %12s %10s %12s %10s %10s\n", "bytes", "checked us", "unchecked us", "check/un",
               "memcpy us", "un/memcpy", "bus GB/s");
    }
    for (size_t n = 1; n <= max_n && rc == 0; n *= 16) {
        reduce_job a = {checked, x, n}, b = {unchecked, x, n}, m = {unchecked, x, n};
        double t_checked = slowest_rank_best(checked, all_reduce_op, &a, reps);
        double t_unchecked = slowest_rank_best(unchecked, all_reduce_op, &b, reps);
        double t_copy = slowest_rank_best(unchecked, copy_op, &m, reps);
        if (t_checked < 0 || t_unchecked < 0 || t_copy < 0) {
            fprintf(stderr, "tessera bench comm: rank %d: %s\n", me, ts_last_error());
            rc = 1;
            break;
        }
        double bytes = (double)n * sizeof(float);
        double bus = np > 1 ? 2.0 * (np - 1) / np * bytes / t_unchecked / 1e9 : 0;
        if (me == 0)
            printf("%10.0f %12.1f %12.1f %10.2f %12.1f %10.1f %10.2f\n", bytes, t_checked * 1e6,
                   t_unchecked * 1e6, t_checked / t_unchecked, t_copy * 1e6, t_unchecked / t_copy, bus);
    }
    if (me == 0 && np == 1) printf("(one rank: run under mpirun -np N to measure MPI)\n");
    free(x);
    comm_destroy(&unchecked);
    comm_destroy(&checked);
    return rc;
}
