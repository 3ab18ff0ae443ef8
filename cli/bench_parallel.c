/*
 * bench_parallel.c — `tessera bench parallel`: when does splitting the U-Net pay?
 *
 * For SD 1.5 at 512^2 and SDXL at 1024^2 (one CFG step: batch 2), from the U-Net's plan
 * (models/diffusion/unet_parallel.h):
 *   - bytes all-reduced per step and per layer under tensor parallelism (analytic);
 *   - measured on this machine at T = 1, 2, 4 ranks (T > 1: the benchmark starts itself under
 *     mpirun) with random weights at a small size (--measure-res, CPU): step time, the part
 *     spent in collectives (waiting for the slowest rank included), bytes all-reduced against
 *     the plan's, weight bytes per rank;
 *   - the step time the plan predicts for T = 2, 4, 8 over NVLink 4, PCIe 5 and 200 Gb/s
 *     InfiniBand at a device rate of --tflops, for tensor parallelism and the batch split
 *     (CFG-parallel), and what --parallel auto picks, with its reason.
 * The machine's cores are shared by the ranks (threads per rank = --threads / T), and other
 * work on a shared machine shows in the timings: compare only figures of one run.
 */
#include "cli/bench.h"
#include "kernels/comm.h"
#include "models/diffusion/unet.h"
#include "models/diffusion/unet_parallel.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int usage(int status) {
    fprintf(status ? stderr : stdout,
            "usage: tessera bench parallel [--arch sd15|sdxl|both] [--measure-arch sd15|sdxl|none]\n"
            "                              [--measure-res PIXELS] [--ranks 1,2,4] [--reps N] [--tflops F]\n"
            "                              [--layers]\n"
            "  --measure-res   image side of the measured runs (default 128: latents 16x16)\n"
            "  --tflops        device rate of the predictions (default 150: an A100/H100-class GPU's\n"
            "                  effective rate on this U-Net, assumed)\n"
            "  --layers        the all-reduces of every block, not only the totals\n");
    return status;
}

typedef struct {
    double step, comm, comm_bytes, weight_bytes, split_bytes, flops;
    int threads;
    double latency, bandwidth;   /* this host's all-reduce: 4 bytes; ring bandwidth at 4 MB */
} measured;

/* Seconds of one all-reduce of n floats over group on this rank, best of reps (barrier first). */
static double time_all_reduce(comm *group, float *buf, size_t n, int reps) {
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        comm_barrier(group);
        double t0 = ts_now();
        if (comm_all_reduce_sum(group, buf, buf, n, DT_F32)) return -1;
        double dt = ts_now() - t0;
        if (dt < best) best = dt;
    }
    return best;
}

static float *filled(size_t n, float v) {
    float *p = ts_malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) p[i] = v * (float)((i * 2654435761u) % 1000) / 1000.0f - v / 2;
    return p;
}

/* One CFG step (batch 2) of arch at res, split over group (NULL: one rank), best of reps. */
static int measure(const char *arch, int res, comm *group, int threads, int reps, measured *m) {
    unet_config cfg;
    if (unet_config_preset(arch, &cfg)) return -1;
    int T = group ? comm_size(group) : 1, rank = group ? comm_rank(group) : 0;
    unet_split split = T > 1 ? (unet_split){UNET_PARALLEL_TP, rank, T, 0} : UNET_SPLIT_NONE;
    unet *u = unet_new_random_split(&cfg, DT_F16, 1, split);
    if (!u) return -1;
    ts_ctx *ctx = ts_ctx_new("cpu", threads);
    if (!ctx) {
        unet_destroy(&u);
        return -1;
    }
    if (group) {
        comm_set_checked(group, false);   /* proven calls: no agreement round trip per all-reduce */
        ts_ctx_set_comm(ctx, group);
    }
    int B = 2, H = res / 8, W = res / 8, tokens = 77;
    float *x = filled((size_t)B * cfg.in_channels * H * W, 2), *text = filled((size_t)B * tokens * cfg.cross_attention_dim, 2);
    float *out = ts_malloc((size_t)B * cfg.out_channels * H * W * sizeof(float)), t[2] = {999, 899};
    float *pooled = NULL, *ids = NULL;
    if (cfg.text_time) {
        pooled = filled((size_t)B * unet_text_embeds_dim(u), 2);
        ids = ts_malloc((size_t)B * 6 * sizeof(float));
        for (int i = 0; i < B * 6; i++) ids[i] = i % 6 < 2 || i % 6 > 3 ? (float)res : 0;
    }
    int rc = unet_forward(u, ctx, x, B, H, W, t, text, tokens, pooled, ids, out);   /* warm-up */
    memset(m, 0, sizeof *m);
    m->step = 1e30;
    for (int r = 0; r < reps && !rc; r++) {
        if (group) comm_barrier(group);
        unet_profile_enable(u, true);
        double t0 = ts_now();
        rc = unet_forward(u, ctx, x, B, H, W, t, text, tokens, pooled, ids, out);
        double dt = ts_now() - t0;
        const unet_profile *p = unet_get_profile(u);
        if (dt < m->step) m->step = dt, m->comm = p->seconds[UNET_OP_COMM], m->comm_bytes = p->comm_bytes;
    }
    m->weight_bytes = (double)unet_weight_bytes(u);
    m->split_bytes = (double)unet_split_weight_bytes(u);
    m->flops = unet_forward_flops(u, B, H, W, tokens);
    m->threads = ts_ctx_threads(ctx);
    free(x), free(text), free(out), free(pooled), free(ids);
    ts_ctx_destroy(&ctx);
    unet_destroy(&u);
    return rc;
}

/* Under mpirun: every rank measures; rank 0 prints one line for the parent to read (the
 * slowest rank's step). */
static int child(const char *arch, int res, int reps) {
    comm *world = comm_new_world();
    if (!world) return 1;
    int T = comm_size(world), threads = bench_threads() / T;
    measured m;
    int rc = measure(arch, res, world, threads < 1 ? 1 : threads, reps, &m);
    /* the link between the ranks here: latency (4 bytes) and ring bandwidth (4 MB) */
    size_t big = 1 << 20;
    float *buf = calloc(big, sizeof(float));
    double small = rc ? 0 : time_all_reduce(world, buf, 1, 20), large = rc ? 0 : time_all_reduce(world, buf, big, 5);
    free(buf);
    if (small < 0 || large < 0) rc = -1;
    m.latency = small / (2.0 * (T - 1));
    m.bandwidth = large > 0 ? 2.0 * (T - 1) / T * big * sizeof(float) / large : 0;
    double mine[2] = {rc ? -1 : m.step, m.weight_bytes}, all[2 * 64];
    if (T > 64 || comm_all_gather(world, mine, all, sizeof mine)) rc = -1;
    if (comm_rank(world) == 0 && !rc) {
        double slowest = 0, most = 0;
        for (int r = 0; r < T; r++) {
            if (all[2 * r] < 0) rc = -1;
            if (all[2 * r] > slowest) slowest = all[2 * r];
            if (all[2 * r + 1] > most) most = all[2 * r + 1];
        }
        printf("bench-parallel %d %.6f %.6f %.0f %.0f %.0f %.0f %d %.9f %.0f\n", T, slowest, m.comm, m.comm_bytes, most,
               m.split_bytes, m.flops, m.threads, m.latency, m.bandwidth);
    }
    if (rc) fprintf(stderr, "tessera bench parallel: rank %d: %s\n", comm_rank(world), ts_last_error());
    comm_destroy(&world);
    return rc ? 1 : 0;
}

/* Runs `mpirun -np T tessera bench --threads N parallel --child ...` and reads its line. */
static int measure_mpi(const char *arch, int res, int T, int reps, measured *m) {
#ifndef TESSERA_MPIEXEC
#define TESSERA_MPIEXEC "mpirun"
#endif
    char self[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len <= 0) return ts_fail("cannot find this program");
    self[len] = 0;
    char cmd[PATH_MAX + 512];
    snprintf(cmd, sizeof cmd,
             "%s -np %d --allow-run-as-root --oversubscribe --timeout 1800 '%s' bench --threads %d parallel --child "
             "--measure-arch %s --measure-res %d --reps %d",
             TESSERA_MPIEXEC, T, self, bench_threads(), arch, res, reps);
    FILE *f = popen(cmd, "r");
    if (!f) return ts_fail("cannot start %s", TESSERA_MPIEXEC);
    char line[512];
    bool got = false;
    while (fgets(line, sizeof line, f)) {
        int t = 0;
        if (sscanf(line, "bench-parallel %d %lf %lf %lf %lf %lf %lf %d %lf %lf", &t, &m->step, &m->comm, &m->comm_bytes,
                   &m->weight_bytes, &m->split_bytes, &m->flops, &m->threads, &m->latency, &m->bandwidth) == 10 &&
            t == T)
            got = true;
    }
    int status = pclose(f);
    if (!got || status != 0) return ts_fail("mpirun -np %d: no result (exit status %d)", T, status);
    return 0;
}

static void print_plan(const char *arch, int res, bool layers) {
    unet_config c;
    if (unet_config_preset(arch, &c)) return;
    int n = 0, H = res / 8;
    unet_plan_row *rows = unet_plan(&c, 2, H, H, 77, &n);
    if (!rows) return;
    unet_plan_total t = unet_plan_sum(rows, n);
    double f = t.flops_split + t.flops_replicated;
    printf("\n%s at %dx%d, one CFG step (batch 2): %.0f GFLOP, %.1f%% in split layers; tensor parallelism: %d all-reduces, "
           "%.1f MB (F32) each rank sends into them per step\n",
           arch, res, res, f / 1e9, 100 * t.flops_split / f, t.all_reduces, t.reduce_bytes / 1e6);
    if (layers) {
        printf("  %-34s %-12s %10s %12s\n", "block", "kind", "all-reduces", "MB each");
        for (int i = 0; i < n; i++)
            if (rows[i].all_reduces)
                printf("  %-34s %-12s %10d %12.2f\n", rows[i].name, rows[i].kind, rows[i].all_reduces,
                       rows[i].reduce_floats * 4 / 1e6);
    } else {
        /* by kind */
        const char *kinds[] = {"resnet", "transformer"};
        for (int k = 0; k < 2; k++) {
            int calls = 0;
            double bytes = 0;
            for (int i = 0; i < n; i++)
                if (rows[i].kind && strcmp(rows[i].kind, kinds[k]) == 0)
                    calls += rows[i].all_reduces, bytes += rows[i].all_reduces * rows[i].reduce_floats * 4;
            printf("  %-12s %4d all-reduces, %8.1f MB per step\n", kinds[k], calls, bytes / 1e6);
        }
    }
    free(rows);
}

static void print_predictions(const char *arch, int res, double tflops) {
    unet_config c;
    if (unet_config_preset(arch, &c)) return;
    int H = res / 8;
    printf("\n%s %dx%d predicted step (batch 2) at %.0f TFLOP/s per device:\n", arch, res, res, tflops);
    printf("  %-38s %3s %10s %10s %8s %12s %8s  %s\n", "link", "T", "1 device", "tp", "(comm)", "batch split", "tp gain",
           "auto picks");
    for (const unet_link *l = unet_links; l->name; l++)
        for (int T = 2; T <= 8; T *= 2) {
            unet_prediction p = unet_predict(&c, 2, H, H, 77, T, tflops * 1e12, l);
            char why[512];
            unet_parallel pick = unet_parallel_choose(&c, 2, H, H, 77, T, tflops * 1e12, l, why, sizeof why);
            bool tp_ok = unet_tp_check(&c, T) == 0;
            char tp[32], gain[32], batch[32];
            if (tp_ok) snprintf(tp, sizeof tp, "%.1f ms", p.tp * 1e3), snprintf(gain, sizeof gain, "%.2fx", p.none / p.tp);
            else snprintf(tp, sizeof tp, "refused"), snprintf(gain, sizeof gain, "-");
            if (p.batch > 0) snprintf(batch, sizeof batch, "%.1f ms", p.batch * 1e3);
            else snprintf(batch, sizeof batch, "-");
            printf("  %-38s %3d %7.1f ms %10s %5.1f ms %12s %8s  %s\n", l->name, T, p.none * 1e3, tp,
                   tp_ok ? p.tp_comm * 1e3 : 0.0, batch, gain, unet_parallel_name(pick));
        }
    unet_config one;
    unet_config_preset(arch, &one);
    char why[512];
    unet_parallel_choose(&one, 2, H, H, 77, 2, tflops * 1e12, &unet_links[1], why, sizeof why);
    printf("  auto at T = 2 over PCIe 5: %s\n", why);
}

int bench_parallel(int argc, char **argv) {
    const char *arch = "both", *measure_arch = "sd15", *ranks_text = "1,2,4";
    int mres = 128, reps = 2;
    double tflops = 150;
    bool is_child = false, layers = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) return usage(0);
        if (strcmp(a, "--child") == 0) { is_child = true; continue; }
        if (strcmp(a, "--layers") == 0) { layers = true; continue; }
        if (!v) { fprintf(stderr, "tessera bench parallel: '%s' needs a value\n", a); return usage(2); }
        i++;
        if (strcmp(a, "--arch") == 0) arch = v;
        else if (strcmp(a, "--measure-arch") == 0) measure_arch = v;
        else if (strcmp(a, "--measure-res") == 0) mres = atoi(v);
        else if (strcmp(a, "--ranks") == 0) ranks_text = v;
        else if (strcmp(a, "--reps") == 0) reps = atoi(v);
        else if (strcmp(a, "--tflops") == 0) tflops = atof(v);
        else { fprintf(stderr, "tessera bench parallel: unknown option '%s'\n", a); return usage(2); }
    }
    if (mres < 64 || mres % 64 || reps < 1 || !(tflops > 0)) {
        fprintf(stderr, "tessera bench parallel: --measure-res is a multiple of 64; --reps, --tflops positive\n");
        return 2;
    }
    if (is_child) return child(measure_arch, mres, reps);
    if (comm_under_launcher()) {
        fprintf(stderr, "tessera bench parallel: run it without mpirun; it starts mpirun for T > 1 itself\n");
        return 2;
    }
    bool sd15 = strcmp(arch, "sd15") == 0 || strcmp(arch, "both") == 0, sdxl = strcmp(arch, "sdxl") == 0 || strcmp(arch, "both") == 0;
    if (!sd15 && !sdxl) { fprintf(stderr, "tessera bench parallel: --arch is sd15, sdxl or both\n"); return 2; }

    /* 1. the plan: what tensor parallelism sends */
    if (sd15) print_plan("sd15", 512, layers);
    if (sdxl) print_plan("sdxl", 1024, layers);

    /* 2. measured here */
    int status = 0;
    double host_bw = 0;
    if (strcmp(measure_arch, "none") != 0) {
        printf("\nmeasured: %s at %dx%d (latents %dx%d), batch 2, F16 random weights, %d threads shared by the ranks "
               "(best of %d; a shared machine: compare within this run only)\n",
               measure_arch, mres, mres, mres / 8, mres / 8, bench_threads(), reps);
        printf("  %2s %8s %10s %10s %7s %12s %12s %12s %14s\n", "T", "threads", "step", "comm", "share", "MB reduced",
               "plan MB", "weights MB", "split MB/rank");
        unet_config c;
        if (unet_config_preset(measure_arch, &c)) { fprintf(stderr, "tessera bench parallel: %s\n", ts_last_error()); return 2; }
        int n = 0;
        unet_plan_row *rows = unet_plan(&c, 2, mres / 8, mres / 8, 77, &n);
        unet_plan_total plan = rows ? unet_plan_sum(rows, n) : (unet_plan_total){0};
        free(rows);
        double t1 = 0;
        for (const char *p = ranks_text; *p;) {
            int T = atoi(p);
            measured m = {0};
            int rc;
            if (T == 1) {
                rc = measure(measure_arch, mres, NULL, bench_threads(), reps, &m);
            } else if (unet_tp_check(&c, T)) {
                printf("  %2d  %s\n", T, ts_last_error());
                rc = 1;
            } else if (!comm_have_mpi()) {
                printf("  %2d  this build has no MPI\n", T);
                rc = 1;
            } else {
                rc = measure_mpi(measure_arch, mres, T, reps, &m);
            }
            if (rc < 0) {
                fprintf(stderr, "tessera bench parallel: T = %d: %s\n", T, ts_last_error());
                status = 1;
            } else if (rc == 0) {
                if (T == 1) t1 = m.step;
                printf("  %2d %8d %8.3f s %8.3f s %6.1f%% %12.1f %12.1f %12.1f %14.1f", T, m.threads, m.step, m.comm,
                       100 * m.comm / m.step, m.comm_bytes / 1e6, T > 1 ? plan.reduce_bytes / 1e6 : 0.0, m.weight_bytes / 1e6,
                       m.split_bytes / 1e6);
                if (T > 1 && t1 > 0) {
                    /* the model's prediction for this host: T=1's rate, this link */
                    unet_link here = {"here", m.bandwidth, m.latency};
                    unet_prediction pr = unet_predict(&c, 2, mres / 8, mres / 8, 77, T, m.flops / t1, &here);
                    printf("   %.2fx of T=1; link here %.2f GB/s, %.1f us; predicted %.3f s (%.3f s all-reduces)", t1 / m.step,
                           m.bandwidth / 1e9, m.latency * 1e6, pr.tp, pr.tp_comm);
                    host_bw = m.bandwidth;
                }
                printf("\n");
            }
            while (*p && *p != ',') p++;
            if (*p == ',') p++;
        }
        if (host_bw > 0)
            printf("  comm: the time inside collectives, waiting for the slowest rank included (on %d shared cores mostly\n"
                   "  that, not the link). predicted: the plan's FLOPs at T=1's measured rate plus the all-reduces over\n"
                   "  the link measured here (4 MB ring all-reduce, 4-byte latency)\n", bench_threads());
    }

    /* 3. predicted for real links */
    if (sd15) print_predictions("sd15", 512, tflops);
    if (sdxl) print_predictions("sdxl", 1024, tflops);
    return status;
}
