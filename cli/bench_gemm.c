/*
 * bench_gemm.c — `tessera bench gemm`: achieved sgemm GFLOP/s, and 3x3 convolution GFLOP/s
 * at the Stable Diffusion U-Net and VAE shapes for every conv2d backend and as AUTO chooses
 * (Winograd counted as the direct convolution it replaces), each also as a ratio to
 * the square sgemm figure of the same run (the machine's practical fp32 peak), and the
 * attention kernel at SD 1.x's 64x64-latent shapes.
 */
#include "cli/bench.h"
#include "kernels/ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    ts_ctx *ctx;
    int M, N, K;
    float *A, *B, *C;
} gemm_case;

static void run_gemm(void *arg) {
    gemm_case *g = arg;
    gemm(g->ctx, false, false, g->M, g->N, g->K, 1.0f, g->A, g->K, g->B, g->N, 0.0f, g->C, g->N);
}

typedef struct {
    ts_ctx *ctx;
    int N, C, H, W, OC;
    float *x, *y;
    tensor w, b;
    int status;
} conv_case;

static void run_conv(void *arg) {
    conv_case *c = arg;
    c->status |= conv2d(c->ctx, c->y, c->x, c->N, c->C, c->H, c->W, &c->w, &c->b,
                        (conv2d_params){.stride_h = 1, .stride_w = 1, .pad_h = 1, .pad_w = 1});
}

typedef struct {
    ts_ctx *ctx;
    attention_params p;
    float *q, *k, *v, *o;
} attn_case;

static void run_attention(void *arg) {
    attn_case *c = arg;
    attention(c->ctx, c->o, c->q, c->k, c->v, c->p);
}

typedef struct {
    ts_ctx *ctx;
    tensor w;
    weight_gemm_params p;
    int status;
} product_case;

static void run_product(void *arg) {
    product_case *c = arg;
    c->status |= weight_gemm(c->ctx, &c->w, &c->p);
}

static float *random_floats(size_t n) {
    float *f = ts_aligned_alloc(n * sizeof(float));
    uint32_t s = 12345;
    for (size_t i = 0; i < n; i++) { s = s * 1664525u + 1013904223u; f[i] = (float)(s >> 8) * 0x1p-24f - 0.5f; }
    return f;
}

/* GFLOP/s of wall time, and per CPU second (comparable on a shared machine). */
typedef struct { double wall, cpu; } rate;

static rate rate_of(double flops, bench_time t) { return (rate){flops / t.wall * 1e-9, flops / t.cpu * 1e-9}; }

static rate gemm_rate(ts_ctx *ctx, int M, int N, int K, int reps) {
    gemm_case g = {ctx, M, N, K, random_floats((size_t)M * K), random_floats((size_t)K * N), random_floats((size_t)M * N)};
    bench_time t = bench_best_time(run_gemm, &g, reps);
    free(g.A); free(g.B); free(g.C);
    return rate_of(2.0 * M * N * K, t);
}

int bench_gemm(int argc, char **argv) {
    int reps = 3;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) reps = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: tessera bench [--threads N] gemm [--reps N]\n"
                            "sgemm GFLOP/s (2048^3, 4096x320x1280) and 3x3 conv GFLOP/s at SD shapes (the U-Net's\n"
                            "levels at 512x512, batch 2; the VAE decoder's, batch 1) per conv2d backend and as AUTO\n"
                            "chooses (Winograd counted as a direct convolution); attention.\n");
            return strcmp(argv[i], "--help") == 0 ? 0 : 2;
        }
    }
    printf("GFLOP/s is of wall time; 'per cpu-s' divides by the process CPU time instead, which\n"
           "stays comparable when the machine is shared. Ratios are to sgemm 2048^3 of this run.\n");
    printf("  %-30s %10s %12s %11s %10s\n", "", "GFLOP/s", "per cpu-s", "ratio wall", "ratio cpu");
    ts_ctx *ctx = bench_ctx_new();
    if (!ctx) { fprintf(stderr, "tessera bench: %s\n", ts_last_error()); return 1; }
    rate sq = gemm_rate(ctx, 2048, 2048, 2048, reps), tall = gemm_rate(ctx, 4096, 320, 1280, reps);
    printf("  %-30s %10.1f %12.1f %11.2f %10.2f\n", "sgemm M=N=K=2048", sq.wall, sq.cpu, 1.0, 1.0);
    printf("  %-30s %10.1f %12.1f %11.2f %10.2f\n", "sgemm M=4096 N=320 K=1280", tall.wall, tall.cpu,
           tall.wall / sq.wall, tall.cpu / sq.cpu);

    /* the U-Net's levels at 512x512 (CFG batch 2) and the VAE decoder's at 512x512 (batch 1) */
    static const struct { int N, C, H; } shapes[] = {{2, 320, 64}, {2, 640, 32}, {2, 1280, 16}, {2, 1280, 8},
                                                     {1, 512, 64}, {1, 512, 128}, {1, 256, 256}, {1, 128, 512}};
    static const struct { conv2d_backend backend; bool cache; const char *label; } variants[] = {
        {CONV_BACKEND_ONEDNN, false, "onednn"},
        {CONV_BACKEND_ONEDNN, true, "onednn cached"},    /* conv2d_weight_cache: no weight reorder */
        {CONV_BACKEND_IM2COL, false, "im2col+sgemm"},
        {CONV_BACKEND_WINOGRAD, false, "winograd"},
        {CONV_BACKEND_AUTO, false, "auto"},              /* what the models run: conv.c's choice */
    };
    conv2d_backend chosen = conv2d_get_backend(ctx);
    printf("conv2d 3x3 pad 1, N images of C channels at HxW (default: %s, or as AUTO chooses)\n", conv2d_backend_name(chosen));
    int status = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int N = shapes[s].N, C = shapes[s].C, H = shapes[s].H;
        conv_case c = {.ctx = ctx, .N = N, .C = C, .H = H, .W = H, .OC = C};
        c.x = random_floats((size_t)N * C * H * H);
        c.y = ts_aligned_alloc((size_t)N * C * H * H * sizeof(float));
        float *w = random_floats((size_t)C * C * 9), *b = random_floats((size_t)C);
        c.w = tensor_f32(w, C, C, 3, 3);
        c.b = tensor_f32(b, C, 0, 0, 0);
        double flops = 2.0 * N * C * H * H * (double)C * 9;
        for (size_t k = 0; k < sizeof variants / sizeof variants[0]; k++) {
            if (!conv2d_backend_available(variants[k].backend)) continue;
            conv2d_set_backend(ctx, variants[k].backend);
            conv2d_weight_cache(ctx, variants[k].cache ? (size_t)1 << 30 : 0);
            rate r = rate_of(flops, bench_best_time(run_conv, &c, reps));
            conv2d_weight_cache_clear(ctx);
            conv2d_weight_cache(ctx, 0);
            char label[64];
            snprintf(label, sizeof label, "%dx%d@%dx%d %s", N, C, H, H, variants[k].label);
            printf("  %-30s %10.1f %12.1f %11.2f %10.2f\n", label, r.wall, r.cpu, r.wall / sq.wall, r.cpu / sq.cpu);
        }
        if (c.status) { fprintf(stderr, "tessera bench: conv2d failed: %s\n", ts_last_error()); status = 1; }
        free(c.x); free(c.y); free(w); free(b);
    }
    conv2d_set_backend(ctx, CONV_BACKEND_AUTO);

    /* The U-Net's products with a weight (linear layers, 1x1 convolutions) as the models run
     * them (weight_gemm, F16 weights widened on the fly): tokens of SD 1.x's three transformer
     * levels at 256x256, batch 8; in -> out as attention (C -> C), GEGLU (C -> 8C), FF out (4C -> C). */
    static const struct { int tokens, in, out; } dense[] = {{8192, 320, 320}, {8192, 320, 2560}, {8192, 1280, 320},
                                                            {2048, 640, 640}, {2048, 640, 5120}, {2048, 2560, 640},
                                                            {512, 1280, 1280}, {512, 1280, 10240}, {512, 5120, 1280}};
    printf("weight products, F16 weights: tokens x in -> out (the U-Net's linear layers, 256x256 batch 8)\n");
    for (size_t d = 0; d < sizeof dense / sizeof dense[0]; d++) {
        int M = dense[d].tokens, K = dense[d].in, O = dense[d].out;
        float *wf = random_floats((size_t)O * K), *x = random_floats((size_t)M * K);
        uint16_t *wh = ts_malloc((size_t)O * K * sizeof(uint16_t));
        for (size_t i = 0; i < (size_t)O * K; i++) wh[i] = f32_to_f16(wf[i]);
        float *y = ts_aligned_alloc((size_t)M * O * sizeof(float));
        product_case c = {.ctx = ctx, .w = tensor_view(wh, DT_F16, 2, (int64_t[]){O, K}),
                          .p = {.other = M, .K = K, .X = x, .ldx = K, .C = y, .ldc = O, .count = 1}};
        rate r = rate_of(2.0 * M * K * (double)O, bench_best_time(run_product, &c, reps));
        if (c.status) { fprintf(stderr, "tessera bench: weight_gemm failed: %s\n", ts_last_error()); status = 1; }
        char label[64];
        snprintf(label, sizeof label, "%d x %d -> %d", M, K, O);
        printf("  %-30s %10.1f %12.1f %11.2f %10.2f\n", label, r.wall, r.cpu, r.wall / sq.wall, r.cpu / sq.cpu);
        free(wf); free(x); free(wh); free(y);
    }

    /* SD 1.x attention at the 64x64 level: self (4096 keys) and cross (77 keys), CFG batch 2. */
    static const struct { int heads, head_dim; int64_t n_q, n_kv; } attn[] = {{8, 40, 4096, 4096}, {8, 40, 4096, 77}};
    printf("attention, batch 2, heads x head_dim, queries x keys\n");
    for (size_t a = 0; a < sizeof attn / sizeof attn[0]; a++) {
        attn_case c = {.ctx = ctx, .p = {.batch = 2, .heads = attn[a].heads, .head_dim = attn[a].head_dim,
                             .n_q = attn[a].n_q, .n_kv = attn[a].n_kv}};
        int width = attn[a].heads * attn[a].head_dim;
        c.q = random_floats((size_t)2 * attn[a].n_q * width);
        c.k = random_floats((size_t)2 * attn[a].n_kv * width);
        c.v = random_floats((size_t)2 * attn[a].n_kv * width);
        c.o = ts_aligned_alloc((size_t)2 * attn[a].n_q * width * sizeof(float));
        bench_time t = bench_best_time(run_attention, &c, reps);
        rate r = rate_of(4.0 * 2 * attn[a].heads * (double)attn[a].n_q * attn[a].n_kv * attn[a].head_dim, t);
        char label[64];
        snprintf(label, sizeof label, "8x%d, %lldx%lld (%.0f ms)", attn[a].head_dim, (long long)attn[a].n_q,
                 (long long)attn[a].n_kv, t.wall * 1e3);
        printf("  %-30s %10.1f %12.1f %11.2f %10.2f\n", label, r.wall, r.cpu, r.wall / sq.wall, r.cpu / sq.cpu);
        free(c.q); free(c.k); free(c.v); free(c.o);
    }
    ts_ctx_destroy(&ctx);
    return status;
}
