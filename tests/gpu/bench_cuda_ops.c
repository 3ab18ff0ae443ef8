/*
 * bench_cuda_ops.c — times kernels/cuda's heavy ops at Stable Diffusion sizes, one line each:
 *
 *   BENCH <case> <milliseconds> <TFLOP/s or GB/s> <unit>
 *
 * Not a test (no ctest entry): tools/gpu-check.sh runs it beside the same cases in PyTorch
 * (the baseline, in the same script on the same GPU) and prints one table. Each case is
 * warmed up, then timed with CUDA events per run; the median of the runs is printed.
 */
#include "kernels/cuda/cuda.h"

#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RUNS 20

static cuda_context *ctx;

static void die(const char *what) {
    fprintf(stderr, "bench_cuda_ops: %s: %s\n", what, ts_last_error());
    exit(1);
}

/* Device memory of n values of type t, filled with uniform values in [-1, 1). */
static void *random_device(int64_t n, dtype t, unsigned seed) {
    float *host = malloc((size_t)n * sizeof(float));
    uint32_t s = seed * 2654435761u + 1;
    for (int64_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        host[i] = (float)(s >> 8) / (float)(1 << 23) - 1.0f;
    }
    cuda_buffer *f32 = cuda_buffer_new(ctx, (size_t)n * 4), *out = cuda_buffer_new(ctx, (size_t)n * dtype_size(t));
    if (!f32 || !out) die("allocating");
    if (cuda_upload(ctx, cuda_buffer_data(f32), host, (size_t)n * 4) ||
        cuda_convert(ctx, cuda_buffer_data(out), t, cuda_buffer_data(f32), DT_F32, n) || cuda_synchronize(ctx))
        die("uploading");
    cuda_buffer_destroy(&f32);
    free(host);
    return cuda_buffer_data(out);   /* kept for the whole run */
}

static int compare_floats(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

typedef int (*bench_fn)(void *arg);

/* Median milliseconds of RUNS runs of fn after 3 warm-ups. */
static float time_median(bench_fn fn, void *arg) {
    cudaStream_t stream = (cudaStream_t)cuda_context_stream(ctx);
    cudaEvent_t start[RUNS], stop[RUNS];
    for (int i = 0; i < 3; i++)
        if (fn(arg)) die("warm-up");
    for (int i = 0; i < RUNS; i++) {
        cudaEventCreate(&start[i]);
        cudaEventCreate(&stop[i]);
        cudaEventRecord(start[i], stream);
        if (fn(arg)) die("run");
        cudaEventRecord(stop[i], stream);
    }
    if (cuda_synchronize(ctx)) die("synchronize");
    float ms[RUNS];
    for (int i = 0; i < RUNS; i++) {
        cudaEventElapsedTime(&ms[i], start[i], stop[i]);
        cudaEventDestroy(start[i]);
        cudaEventDestroy(stop[i]);
    }
    qsort(ms, RUNS, sizeof ms[0], compare_floats);
    return ms[RUNS / 2];
}

static int run_gemm(void *arg) { return cuda_gemm(ctx, (const cuda_gemm_params *)arg); }

static void bench_gemm(int n, dtype t) {
    cuda_gemm_params p = {.M = n, .N = n, .K = n, .alpha = 1, .beta = 0, .lda = n, .ldb = n, .ldc = n,
                          .ab_type = t, .c_type = t};
    p.A = random_device((int64_t)n * n, t, 1);
    p.B = random_device((int64_t)n * n, t, 2);
    p.C = random_device((int64_t)n * n, t, 3);
    float ms = time_median(run_gemm, &p);
    printf("BENCH gemm_%d_%s %.4f %.1f TFLOP/s\n", n, dtype_name(t), ms, 2.0 * n * n * (double)n / (ms * 1e-3) / 1e12);
}

typedef struct { void *out, *q, *k, *v; cuda_attention_params p; } attention_case;

static int run_attention(void *arg) {
    attention_case *c = arg;
    return cuda_attention(ctx, c->out, c->q, c->k, c->v, &c->p);
}

static void bench_attention(int batch, int heads, int64_t n, int d, dtype t) {
    attention_case c = {.p = {.batch = batch, .heads = heads, .head_dim = d, .n_q = n, .n_kv = n, .type = t}};
    int64_t count = (int64_t)batch * n * heads * d;
    c.q = random_device(count, t, 4);
    c.k = random_device(count, t, 5);
    c.v = random_device(count, t, 6);
    c.out = random_device(count, t, 7);
    float ms = time_median(run_attention, &c);
    double flops = 4.0 * batch * heads * (double)n * n * d;
    printf("BENCH attention_b%d_h%d_n%lld_d%d_%s %.4f %.1f TFLOP/s\n", batch, heads, (long long)n, d, dtype_name(t), ms,
           flops / (ms * 1e-3) / 1e12);
}

typedef struct { void *out, *x, *w, *b; cuda_conv_params p; } conv_case;

static int run_conv(void *arg) {
    conv_case *c = arg;
    return cuda_conv2d(ctx, c->out, c->x, c->w, c->b, &c->p);
}

static void bench_conv(int batch, int hw, int ch, dtype t) {
    conv_case c = {.p = {.N = batch, .H = hw, .W = hw, .C = ch, .OC = ch, .KH = 3, .KW = 3, .stride = 1, .pad = 1, .type = t}};
    c.x = random_device((int64_t)batch * hw * hw * ch, t, 8);
    c.w = random_device((int64_t)ch * 9 * ch, t, 9);
    c.b = random_device(ch, t, 10);
    c.out = random_device((int64_t)batch * hw * hw * ch, t, 11);
    float ms = time_median(run_conv, &c);
    double flops = 2.0 * batch * hw * hw * (double)ch * ch * 9;
    printf("BENCH conv3x3_b%d_%dx%d_c%d_%s %.4f %.1f TFLOP/s\n", batch, hw, hw, ch, dtype_name(t), ms,
           flops / (ms * 1e-3) / 1e12);
}

typedef struct { void *out, *x; int N, C; int64_t HW; dtype t; } norm_case;

static int run_group_norm(void *arg) {
    norm_case *c = arg;
    return cuda_group_norm(ctx, c->out, c->x, c->t, c->N, c->HW, c->C, 32, NULL, NULL, 1e-5f, true);
}

static void bench_group_norm(int batch, int hw, int ch, dtype t) {
    norm_case c = {.N = batch, .C = ch, .HW = (int64_t)hw * hw, .t = t};
    int64_t n = (int64_t)batch * hw * hw * ch;
    c.x = random_device(n, t, 12);
    c.out = random_device(n, t, 13);
    float ms = time_median(run_group_norm, &c);
    printf("BENCH groupnorm_silu_b%d_%dx%d_c%d_%s %.4f %.1f GB/s\n", batch, hw, hw, ch, dtype_name(t), ms,
           2.0 * n * dtype_size(t) / (ms * 1e-3) / 1e9);
}

int main(void) {
    if (cuda_device_count() == 0) {
        printf("SKIP: no CUDA device here\n");
        return 77;
    }
    ctx = cuda_context_new(0, (size_t)256 << 20);
    if (!ctx) die("context");
    char desc[256];
    if (cuda_device_describe(0, desc, sizeof desc) == 0) printf("device 0: %s\n", desc);
    bench_gemm(4096, DT_F32);
    bench_gemm(4096, DT_F16);
    bench_gemm(8192, DT_BF16);
    bench_attention(2, 8, 4096, 40, DT_F16);     /* SD 1.5, 64x64 latent, CFG batch */
    bench_attention(2, 10, 4096, 64, DT_F16);    /* SDXL, 64x64 level */
    bench_attention(2, 8, 1024, 80, DT_F16);     /* SD 1.5, 32x32 level */
    bench_attention(2, 8, 1024, 160, DT_BF16);   /* heads of 160 (SD 1.5's 16x16 level), more tokens */
    bench_conv(2, 64, 320, DT_F16);
    bench_group_norm(2, 64, 320, DT_F16);
    cuda_context_destroy(&ctx);
    return 0;
}
