/*
 * bench_unet.c — `tessera bench unet`: one CFG step of a full-size U-Net (SD 1.5, SD 2.1 or
 * SDXL) with random weights built in memory, so nothing is downloaded.
 *
 *   tessera bench unet [--arch sd15|sd21|sdxl] [--res 512] [--batch 2] [--threads N]
 *                      [--weights f16|bf16|f32] [--reps 2] [--tokens 77]
 *
 * Prints seconds per U-Net call (batch 2 = cond + uncond = one CFG step), GFLOP/s, the
 * fraction of the sgemm rate measured in the same run (2048^3, the practical fp32 peak),
 * a per-layer-type time table and the peak RSS.
 */
#include "cli/bench.h"
#include "kernels/ops.h"
#include "models/diffusion/unet.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#ifdef TESSERA_HAVE_CUDA
#include "kernels/cuda/cuda.h"
#endif

typedef struct {
    ts_ctx *ctx;
    int n;
    float *a, *b, *c;
} sgemm_case;

static void run_sgemm(void *arg) {
    sgemm_case *g = arg;
    gemm(g->ctx, false, false, g->n, g->n, g->n, 1.0f, g->a, g->n, g->b, g->n, 0.0f, g->c, g->n);
    ts_ctx_synchronize(g->ctx);   /* a device queues the product: time it to the end */
}

static float *filled(size_t n, float v) {
    float *f = ts_aligned_alloc(n * sizeof(float));
    uint32_t s = 2024;
    for (size_t i = 0; i < n; i++) { s = s * 1664525u + 1013904223u; f[i] = v * ((float)(s >> 8) * 0x1p-24f - 0.5f); }
    return f;
}

/* sgemm GFLOP/s at 2048^3: the fp32 rate the U-Net's GEMMs and convolutions aim at. */
static double sgemm_peak(ts_ctx *ctx) {
    size_t n = 2048u * 2048;
    float *h[3] = {filled(n, 1), filled(n, 1), filled(n, 1)}, *d[3];
    for (int i = 0; i < 3; i++) d[i] = (float *)ts_stage_in(ctx, h[i], n * sizeof(float));   /* on a device: copies */
    sgemm_case g = {ctx, 2048, d[0], d[1], d[2]};
    double s = d[0] && d[1] && d[2] ? bench_best_seconds(run_sgemm, &g, 3) : 1e30;
    for (int i = 0; i < 3; i++) ts_stage_release(ctx, h[i], d[i]), free(h[i]);
    return 2.0 * 2048.0 * 2048.0 * 2048.0 / s * 1e-9;
}

/* A device's figures: iterations (CFG steps) per second, TFLOP/s, and the share of the GPU's
 * dense F16 tensor-core peak (from its name: A100 312, H100/H200 989 TFLOP/s; else unknown). */
static void device_rates(double flops, double seconds, int batch) {
    double tflops = flops / seconds * 1e-12, peak = 0;
    char name[256] = "";
#ifdef TESSERA_HAVE_CUDA
    if (cuda_device_describe(0, name, sizeof name) != 0) name[0] = 0;
#endif
    if (strstr(name, "H100") || strstr(name, "H200")) peak = 989.0;
    else if (strstr(name, "A100")) peak = 312.0;
    printf("device: %s\n", name[0] ? name : "(unknown)");
    printf("it/s (CFG steps of 2 images): %.2f; %.1f TFLOP/s", batch / 2.0 / seconds, tflops);
    if (peak > 0) printf(" = %.1f %% of the dense F16 peak (%.0f TFLOP/s)", 100.0 * tflops / peak, peak);
    printf("\n");
}

static double peak_rss_gb(void) {
    struct rusage r;
    getrusage(RUSAGE_SELF, &r);
    return (double)r.ru_maxrss * 1024.0 / 1e9;   /* ru_maxrss is in KiB on Linux */
}

static double cpu_seconds(void) {
    struct rusage r;
    getrusage(RUSAGE_SELF, &r);
    return (double)r.ru_utime.tv_sec + r.ru_utime.tv_usec * 1e-6 + (double)r.ru_stime.tv_sec + r.ru_stime.tv_usec * 1e-6;
}

static int usage(int status) {
    fprintf(status ? stderr : stdout,
            "usage: tessera bench [--device D] unet [--arch sd15|sd21|sdxl] [--res PIXELS] [--batch N] [--threads N]\n"
            "                          [--weights f16|bf16|f32] [--dtype f32|f16|bf16] [--reps N] [--tokens T]\n");
    return status;
}

int bench_unet(int argc, char **argv) {
    const char *arch = "sd15", *wname = "f16", *compute = NULL;
    int res = 512, batch = 2, reps = 2, tokens = 77, threads = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) return usage(0);
        if (!v) { fprintf(stderr, "tessera bench unet: '%s' needs a value\n", a); return usage(2); }
        i++;
        if (strcmp(a, "--arch") == 0) arch = v;
        else if (strcmp(a, "--weights") == 0) wname = v;
        else if (strcmp(a, "--res") == 0) res = atoi(v);
        else if (strcmp(a, "--batch") == 0) batch = atoi(v);
        else if (strcmp(a, "--reps") == 0) reps = atoi(v);
        else if (strcmp(a, "--tokens") == 0) tokens = atoi(v);
        else if (strcmp(a, "--threads") == 0) threads = atoi(v);
        else if (strcmp(a, "--dtype") == 0) compute = v;
        else { fprintf(stderr, "tessera bench unet: unknown option '%s'\n", a); return usage(2); }
    }
    dtype wtype;
    if (strcmp(wname, "f16") == 0) wtype = DT_F16;
    else if (strcmp(wname, "bf16") == 0) wtype = DT_BF16;
    else if (strcmp(wname, "f32") == 0) wtype = DT_F32;
    else { fprintf(stderr, "tessera bench unet: --weights must be f16, bf16 or f32, not '%s'\n", wname); return 2; }
    if (res < 64 || res % 64 || batch < 1 || reps < 1 || tokens < 1) {
        fprintf(stderr, "tessera bench unet: --res must be a multiple of 64; --batch, --reps, --tokens positive\n");
        return 2;
    }
    ts_ctx *ctx = bench_device_ctx_new(threads);
    dtype ct = DT_F32;
    if (ctx && compute && (ts_compute_type_parse(compute, &ct) || ts_ctx_set_compute_type(ctx, ct))) ts_ctx_destroy(&ctx);
    if (!ctx) { fprintf(stderr, "tessera bench unet: %s\n", ts_last_error()); return 1; }

    unet_config cfg;
    if (unet_config_preset(arch, &cfg)) { fprintf(stderr, "tessera bench unet: %s\n", ts_last_error()); return 2; }
    double t0 = ts_now();
    unet *u = unet_new_random(&cfg, wtype, 1);
    if (!u) { fprintf(stderr, "tessera bench unet: %s\n", ts_last_error()); return 1; }
    int H = res / 8, W = res / 8, C = cfg.in_channels, D = cfg.cross_attention_dim;
    printf("unet %s, %dx%d (latents %dx%d), batch %d, %d tokens, %s weights (%.2f GB), %d threads, built in %.1f s\n",
           arch, res, res, H, W, batch, tokens, dtype_name(wtype), (double)unet_weight_bytes(u) / 1e9, ts_ctx_threads(ctx),
           ts_now() - t0);

    double peak = sgemm_peak(ctx);
    printf("sgemm 2048^3 before: %.1f GFLOP/s\n", peak);

    float *x = filled((size_t)batch * C * H * W, 2), *text_ctx = filled((size_t)batch * tokens * D, 2);
    float *out = ts_aligned_alloc((size_t)batch * cfg.out_channels * H * W * sizeof(float));
    float *t = ts_malloc((size_t)batch * sizeof(float)), *text = NULL, *ids = NULL;
    for (int b = 0; b < batch; b++) t[b] = 999.0f - 100.0f * b;
    if (cfg.text_time) {
        text = filled((size_t)batch * unet_text_embeds_dim(u), 2);
        ids = ts_malloc((size_t)batch * 6 * sizeof(float));
        for (int b = 0; b < batch; b++) {
            float v[6] = {(float)res, (float)res, 0, 0, (float)res, (float)res};
            memcpy(ids + b * 6, v, sizeof v);
        }
    }
    int status = 0;
    t0 = ts_now();
    if (unet_forward(u, ctx, x, batch, H, W, t, text_ctx, tokens, text, ids, out)) status = 1;
    double warm = ts_now() - t0;
    unet_profile_enable(u, true);
    double best = 1e30, total = 0, cpu0 = cpu_seconds();
    for (int r = 0; r < reps && !status; r++) {
        t0 = ts_now();
        if (unet_forward(u, ctx, x, batch, H, W, t, text_ctx, tokens, text, ids, out)) status = 1;
        double dt = ts_now() - t0;
        total += dt;
        if (dt < best) best = dt;
    }
    if (status) {
        fprintf(stderr, "tessera bench unet: %s\n", ts_last_error());
    } else {
        /* Measured again after the U-Net: on a shared machine the better of the two is
         * closer to what the cores can do. */
        double again = sgemm_peak(ctx);
        printf("sgemm 2048^3 after: %.1f GFLOP/s\n", again);
        if (again > peak) peak = again;
        double flops = unet_forward_flops(u, batch, H, W, tokens);
        double per_step = best * 2.0 / batch;
        printf("warm-up call: %.2f s\n", warm);
        printf("U-Net call (batch %d): best %.3f s, mean %.3f s over %d; %.1f GFLOP per call\n", batch, best, total / reps,
               reps, flops * 1e-9);
        printf("seconds per CFG step (2 images): %.3f s\n", per_step);
        if (!ts_ctx_host_memory(ctx)) device_rates(flops, best, batch);
        /* CPU time shows what the wall clock hides on a shared machine: time lost waiting for a core */
        printf("CPU seconds per call: %.3f (all threads; wall x threads = %.3f)\n", (cpu_seconds() - cpu0) / reps,
               total / reps * ts_ctx_threads(ctx));
        printf("GFLOP/s: %.1f = %.0f %% of the in-run sgemm peak (the better of before/after)\n", flops / best * 1e-9, 100.0 * flops / best * 1e-9 / peak);
        const unet_profile *p = unet_get_profile(u);
        if (!ts_ctx_host_memory(ctx)) {   /* a device's ops return before they finish */
            printf("(no per-layer table on %s: its ops run asynchronously)\n", ts_ctx_backend_name(ctx));
            goto done;
        }
        double sum = 0;
        for (int o = 0; o < UNET_OP_COUNT; o++) sum += p->seconds[o];
        printf("\n%-20s %10s %7s %10s\n", "layer type", "s/call", "share", "GFLOP/s");
        for (int o = 0; o < UNET_OP_COUNT; o++) {
            double s = p->seconds[o] / reps;
            printf("%-20s %10.3f %6.1f%% ", unet_op_name((unet_op)o), s, 100.0 * p->seconds[o] / (total > 0 ? total : 1));
            if (p->flops[o] > 0) printf("%10.1f\n", p->flops[o] / p->seconds[o] * 1e-9);
            else printf("%10s\n", "-");
        }
        printf("%-20s %10.3f %6.1f%%\n", "(untimed glue)", (total - sum) / reps, 100.0 * (total - sum) / total);
    }
done:
    printf("peak RSS: %.2f GB\n", peak_rss_gb());
    if (ts_ctx_threads(ctx) > 1 && !getenv("OMP_WAIT_POLICY"))
        printf("(on a shared machine, OMP_WAIT_POLICY=passive keeps waiting threads from spinning away the CPU)\n");
    free(x), free(text_ctx), free(out), free(t), free(text), free(ids);
    unet_destroy(&u);
    ts_ctx_destroy(&ctx);
    return status;
}
