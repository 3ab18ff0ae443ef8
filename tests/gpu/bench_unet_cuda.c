/*
 * bench_unet_cuda.c — one CFG step (batch 2) of a full-size random SD 1.5 U-Net through the
 * op table on a CUDA context (the F32 path: cuBLASLt and cuDNN without TF32), one line:
 *
 *   BENCH unet_sd15_<res>_b2_F32 <milliseconds> <TFLOP/s> TFLOP/s
 *
 * Not a test: tools/gpu-check.sh runs it beside diffusers' UNet2DConditionModel in float32
 * (the baseline, same script, same GPU, TF32 off on both sides). Host inputs, host output:
 * what the sampler gives and takes, so the copies are in the time. Median of 10 calls after
 * 2 warm-ups (the first also uploads and widens the weights).
 *
 *   gpu_bench_unet_cuda [RES]     RES 512 (default) or any multiple of 64
 */
#include "kernels/backend.h"
#include "models/diffusion/unet.h"

#include <stdio.h>
#include <stdlib.h>

#define RUNS 10

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static float *random_floats(size_t n, float scale, uint32_t s) {
    float *f = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        f[i] = scale * ((float)(s >> 8) * 0x1p-24f - 0.5f);
    }
    return f;
}

int main(int argc, char **argv) {
    int res = argc > 1 ? atoi(argv[1]) : 512;
    ts_ctx *ctx = ts_ctx_new("cuda", 0);
    if (!ctx) {
        printf("no CUDA context: %s\n", ts_last_error());
        return 0;   /* no GPU: nothing to time (gpu-check's dry run) */
    }
    unet_config cfg;
    unet *u = unet_config_preset("sd15", &cfg) ? NULL : unet_new_random(&cfg, DT_F16, 1);
    if (!u) {
        fprintf(stderr, "bench_unet_cuda: %s\n", ts_last_error());
        return 1;
    }
    int B = 2, H = res / 8, W = res / 8, T = 77;
    float *x = random_floats((size_t)B * 4 * H * W, 2, 1), *c = random_floats((size_t)B * T * cfg.cross_attention_dim, 2, 2);
    float *out = malloc((size_t)B * 4 * H * W * sizeof(float)), t[2] = {999, 899};
    double ms[RUNS];
    int rc = 0;
    for (int r = 0; r < 2 + RUNS && rc == 0; r++) {
        double t0 = ts_now();
        rc = unet_forward(u, ctx, x, B, H, W, t, c, T, NULL, NULL, out);   /* synchronizes: out is host */
        if (r >= 2) ms[r - 2] = (ts_now() - t0) * 1e3;
    }
    if (rc) {
        fprintf(stderr, "bench_unet_cuda: %s\n", ts_last_error());
        return 1;
    }
    qsort(ms, RUNS, sizeof ms[0], by_value);
    double median = ms[RUNS / 2], flops = unet_forward_flops(u, B, H, W, T);
    printf("BENCH unet_sd15_%d_b2_F32 %.3f %.1f TFLOP/s\n", res, median, flops / (median * 1e-3) / 1e12);
    free(x), free(c), free(out);
    unet_destroy(&u);
    ts_ctx_destroy(&ctx);
    return 0;
}
