/*
 * bench_vae.c — `tessera bench vae [--res N] [--tile T] [--reps R]`: the full-size SD VAE
 * decoder (block_out 128/256/512/512, 2 layers per block, random float32 weights) decoding
 * one N x N image, tiled and untiled, with the decode time, the nominal conv FLOPs per second
 * (upsample convs counted as 3x3 at double resolution, as written in diffusers) and the
 * process's peak RSS after each. Tiled runs first, so its peak is not hidden by the untiled one.
 * Target (issue 5): untiled at 512 in at most 18 s on the 2-core reference machine.
 */
#include "cli/bench.h"
#include "models/diffusion/vae.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static double peak_rss_mb(void) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return (double)u.ru_maxrss / 1024.0;   /* Linux: kilobytes */
}

/* Multiply-adds of the decoder's convolutions (2 FLOPs each) for an H x W output. */
static double decoder_flops(const vae_config *c, int H, int W) {
    int n = c->levels, f = 1 << (n - 1);
    double h = (double)H / f, w = (double)W / f, fl = 0;
    int top = c->block_out[n - 1];
    fl += 2.0 * 9 * c->latent_channels * top * h * w;                        /* conv_in */
    fl += 4 * 2.0 * 9 * top * top * h * w + 4 * 2.0 * top * top * h * w       /* mid ResNets, q k v out */
          + 2 * 2.0 * top * (h * w) * (h * w);                                /* attention */
    int prev = top;
    for (int i = 0; i < n; i++) {
        int ch = c->block_out[n - 1 - i];
        for (int j = 0; j <= c->layers_per_block; j++) {
            int cin = j == 0 ? prev : ch;
            fl += 2.0 * 9 * (cin * ch + ch * ch) * h * w;
            if (cin != ch) fl += 2.0 * cin * ch * h * w;
        }
        if (i < n - 1) { h *= 2, w *= 2; fl += 2.0 * 9 * ch * ch * h * w; }
        prev = ch;
    }
    return fl + 2.0 * 9 * c->block_out[0] * c->out_channels * h * w;      /* conv_out */
}

int bench_vae(int argc, char **argv) {
    int res = 512, tile = 0, reps = 1, first_mode = 0, last_mode = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--res") == 0 && i + 1 < argc) res = atoi(argv[++i]);
        else if (strcmp(argv[i], "--tile") == 0 && i + 1 < argc) tile = atoi(argv[++i]);
        else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) reps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc && strcmp(argv[i + 1], "tiled") == 0) last_mode = 0, i++;
        else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc && strcmp(argv[i + 1], "untiled") == 0) first_mode = 1, i++;
        else {
            fprintf(stderr, "usage: tessera bench vae [--res N (multiple of 8, default 512)] "
                            "[--tile LATENTS (default min(64, N/16))] [--reps R] [--only tiled|untiled]\n");
            return 2;
        }
    }
    if (res < 16 || res % 8 || reps < 1) { fprintf(stderr, "tessera bench vae: --res must be a multiple of 8 >= 16\n"); return 2; }
    int h = res / 8;
    if (tile <= 0) tile = h / 2 < 64 ? h / 2 : 64;   /* small enough that the image is really tiled */
    vae_config c = {.in_channels = 3, .out_channels = 3, .latent_channels = 4, .levels = 4,
                    .block_out = {128, 256, 512, 512}, .layers_per_block = 2, .norm_groups = 32,
                    .post_quant_conv = true, .scaling_factor = VAE_SCALING_SD, .sample_size = 512};
    vae *v = vae_new_random(&c, 1234);
    ts_ctx *ctx = bench_device_ctx_new(0);
    if (!v || !ctx) { fprintf(stderr, "tessera bench vae: %s\n", ts_last_error()); vae_destroy(&v); return 1; }
    float *z = ts_malloc((size_t)4 * h * h * sizeof(float));
    float *img = ts_malloc((size_t)3 * res * res * sizeof(float));
    for (int i = 0; i < 4 * h * h; i++) z[i] = (float)((i * 2654435761u) % 1000) / 500.0f - 1.0f;
    double gflop = decoder_flops(&c, res, res) / 1e9;
    printf("vae decoder %dx%d: %.0f GFLOP untiled, random fp32 weights, peak RSS after load %.0f MB\n", res, res,
           gflop, peak_rss_mb());
    int status = 0;
    for (int mode = first_mode; mode <= last_mode && !status; mode++) {
        vae_tiling t = {.enabled = mode == 0, .tile_latent = tile, .overlap = 0.25f};
        double best = 1e30;
        for (int r = 0; r < reps; r++) {
            double t0 = ts_now();
            if (vae_decode(v, ctx, z, 1, h, h, img, &t) < 0) {
                fprintf(stderr, "tessera bench vae: %s\n", ts_last_error());
                status = 1;
                break;
            }
            double dt = ts_now() - t0;
            if (dt < best) best = dt;
        }
        if (status) break;
        if (mode == 0)
            printf("  tiled (%d-latent tiles, overlap 0.25): %7.2f s   peak RSS %6.0f MB\n", tile, best, peak_rss_mb());
        else
            printf("  untiled:                            %7.2f s   peak RSS %6.0f MB   %.1f GFLOP/s (nominal)   target <= 18 s at 512: %s\n",
                   best, peak_rss_mb(), gflop / best, res != 512 ? "n/a" : best <= 18.0 ? "met" : "NOT met");
    }
    free(z), free(img);
    vae_destroy(&v);
    ts_ctx_destroy(&ctx);
    return status;
}
