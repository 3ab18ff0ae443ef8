/*
 * cmd_bench.c — `tessera bench [--threads N] [--device D] NAME [ARGS]`: runs one sub-benchmark
 * from the table in cli/bench.h (or all of them with `all`).
 */
#include "cli/bench.h"
#include "kernels/tensor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv);
} bench;

#define BENCH_ENTRY(name, summary) {#name, summary, bench_##name},
static const bench benches[] = {TESSERA_BENCHES(BENCH_ENTRY)};
#undef BENCH_ENTRY
static const int bench_count = (int)(sizeof benches / sizeof benches[0]);

double bench_best_seconds(void (*fn)(void *arg), void *arg, int reps) {
    fn(arg);
    double best = 1e30;
    for (int r = 0; r < (reps > 0 ? reps : 1); r++) {
        double t0 = ts_now();
        fn(arg);
        double dt = ts_now() - t0;
        if (dt < best) best = dt;
    }
    return best;
}

static double cpu_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

bench_time bench_best_time(void (*fn)(void *arg), void *arg, int reps) {
    fn(arg);
    bench_time best = {1e30, 1e30};
    for (int r = 0; r < (reps > 0 ? reps : 1); r++) {
        double c0 = cpu_seconds(), t0 = ts_now();
        fn(arg);
        double dt = ts_now() - t0, dc = cpu_seconds() - c0;
        if (dt < best.wall) best = (bench_time){dt, dc};
    }
    return best;
}

static int usage(int status) {
    fprintf(status ? stderr : stdout,
            "usage: tessera bench [--threads N] [--device D] NAME [ARGS]\n"
            "  --threads N   threads for OpenMP and BLAS (default: all cores); may also follow NAME\n"
            "  --device D    cpu (default) or cuda[:N] for the benchmarks that run on a device (unet, vae)\n"
            "\nbenchmarks:\n");
    for (int i = 0; i < bench_count; i++)
        fprintf(status ? stderr : stdout, "  %-10s %s\n", benches[i].name, benches[i].summary);
    fprintf(status ? stderr : stdout, "  %-10s %s\n", "all", "every benchmark above, in turn");
    return status;
}

/* `--threads N` and `--device D` may come before or after the benchmark's name; they are
 * taken out of argv (compacted in place) so sub-benchmarks never see them. Returns the new
 * argc, -1 on error. */
static int take_global_options(int argc, char **argv, int *threads, const char **device) {
    int kept = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--threads") == 0) {
            char *end = NULL;
            long n = i + 1 < argc ? strtol(argv[i + 1], &end, 10) : 0;
            if (i + 1 >= argc || *end || n < 1 || n > 4096) {
                fprintf(stderr, "tessera bench: --threads wants a positive number, got '%s'\n", i + 1 < argc ? argv[i + 1] : "");
                return -1;
            }
            *threads = (int)n;
            i++;
            continue;
        }
        if (strcmp(argv[i], "--device") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "tessera bench: --device wants cpu or cuda[:N]\n");
                return -1;
            }
            *device = argv[++i];
            continue;
        }
        argv[kept++] = argv[i];
    }
    return kept;
}

static int threads_option;           /* --threads, for bench_ctx_new */
static const char *device_option;    /* --device, for bench_device_ctx_new */

ts_ctx *bench_ctx_new(void) {
    if (device_option && strncmp(device_option, "cpu", 3) != 0) {
        ts_fail("this benchmark runs on the CPU only (--device %s: only unet and vae take a device)", device_option);
        return NULL;
    }
    return ts_ctx_new("cpu", threads_option);
}

ts_ctx *bench_device_ctx_new(int threads) {
    return ts_ctx_new(device_option ? device_option : "cpu", threads > 0 ? threads : threads_option);
}

int bench_threads(void) {
    ts_ctx *ctx = bench_ctx_new();
    int n = ctx ? ts_ctx_threads(ctx) : 1;
    ts_ctx_destroy(&ctx);
    return n;
}

int cmd_bench(int argc, char **argv) {
    int threads = 0;
    const char *device = NULL;
    argc = take_global_options(argc, argv, &threads, &device);
    if (argc < 0) return 2;
    if (argc < 2) return usage(2);
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) return usage(0);
    if (argv[1][0] == '-') {
        fprintf(stderr, "tessera bench: unknown option '%s'\n", argv[1]);
        return usage(2);
    }
    threads_option = threads;
    device_option = device;
    printf("threads: %d\n", bench_threads());
    if (device) printf("device: %s\n", device);
    if (strcmp(argv[1], "all") == 0) {
        int status = 0;
        for (int b = 0; b < bench_count; b++) {
            char *args[] = {(char *)benches[b].name, NULL};
            printf("== %s\n", benches[b].name);
            if (benches[b].run(1, args)) status = 1;
        }
        return status;
    }
    for (int b = 0; b < bench_count; b++)
        if (strcmp(benches[b].name, argv[1]) == 0) return benches[b].run(argc - 1, argv + 1);
    fprintf(stderr, "tessera bench: no benchmark '%s'\n", argv[1]);
    return usage(2);
}
