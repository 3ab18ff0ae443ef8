/*
 * bench.h — the sub-benchmarks of `tessera bench`, one line each.
 * To add one: write `int bench_NAME(int argc, char **argv)` in cli/bench_NAME.c (argv[0]
 * is the sub-benchmark's name; make contexts with bench_ctx_new(), which applies `tessera
 * bench --threads`), then add a line here. A benchmark prints its figures to stdout and returns the exit status.
 * Speed targets are ratios against a baseline measured in the same run (README, Kernels).
 */
#ifndef TESSERA_BENCH_H
#define TESSERA_BENCH_H

#define TESSERA_BENCHES(X)                                                   \
    X(gemm, "sgemm and conv2d GFLOP/s; oneDNN against im2col+sgemm")     \
    X(unet, "one CFG step of a full-size U-Net: --arch sd15|sd21|sdxl --res 512") \
    X(llm, "LLM prefill and decode tok/s at batch 1 and 16: -m MODEL.gguf") \
    X(caption, "captioner images/s and tok/s, batched against one at a time: -m LLAVA") \
    X(vae, "full-size SD VAE decode, tiled and untiled: --res 512") \
    X(pipeline, "coordinator tasks/s with 1, 8, 64 null workers; RSS at 1e4 vs 1e7 records") \
    X(render, "render worker images/s, batch 1 vs --batch N, U-Net busy share: -m SD15 --res 256") \
    X(comm, "under mpirun: all-reduce time by size, checked and not, against memcpy") \
    X(parallel, "split U-Net: all-reduce bytes per step/layer, T=1,2,4 measured, NVLink/PCIe/IB predicted")

#define DECLARE_BENCH(name, summary) int bench_##name(int argc, char **argv);
TESSERA_BENCHES(DECLARE_BENCH)
#undef DECLARE_BENCH

/* A CPU context with `tessera bench --threads` threads (all cores by default); NULL on failure. */
#include "kernels/backend.h"
ts_ctx *bench_ctx_new(void);
/* A context on `tessera bench --device` (default cpu) with threads (<= 0: --threads), for
 * the benchmarks whose model runs on any backend; NULL on failure. */
ts_ctx *bench_device_ctx_new(int threads);
int bench_threads(void);   /* the threads that context has */

/* Seconds per call of fn(arg): one warm-up, then the best of `reps` timed calls. */
double bench_best_seconds(void (*fn)(void *arg), void *arg, int reps);
/* The same, with the process CPU seconds of the best call too: on a shared machine the
 * wall time includes waiting for a core, and flops / CPU seconds stays comparable. */
typedef struct { double wall, cpu; } bench_time;
bench_time bench_best_time(void (*fn)(void *arg), void *arg, int reps);

#endif
