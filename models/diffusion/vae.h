/*
 * vae.h — the AutoencoderKL of Stable Diffusion (KL-f8): latents <-> images.
 *
 * Reads either checkpoint layout: a diffusers folder (MODEL/vae/NAME.safetensors, names like
 * decoder.up_blocks.0.resnets.1.conv1.weight, mid-block attention as linear to_q/to_k/to_v/
 * to_out.0) or a single CompVis file (first_stage_model.decoder.up.3.block.1.conv1.weight,
 * attention as 1x1 convs q/k/v/proj_out), or a standalone VAE file in either naming.
 * The architecture (levels, block_out_channels, layers_per_block, latent channels) is read
 * off the weight shapes, so both layouts load through one path; vae/config.json, when there,
 * supplies scaling_factor, norm_num_groups and sample_size (the default tile size).
 *
 * Images are NCHW float in [-1, 1]; latents NCHW, *unscaled* (divide the sampler's latents
 * by vae_scaling_factor() before vae_decode, as diffusers' pipelines do).
 */
#ifndef TESSERA_VAE_H
#define TESSERA_VAE_H

#include "kernels/backend.h"

#define VAE_MAX_LEVELS 8

#define VAE_SCALING_SD 0.18215f    /* SD 1.x / 2.x */
#define VAE_SCALING_SDXL 0.13025f  /* SDXL */

typedef struct {
    int in_channels, out_channels, latent_channels;
    int levels;                        /* len(block_out_channels); factor 2^(levels-1) */
    int block_out[VAE_MAX_LEVELS];
    int layers_per_block;
    int norm_groups;                   /* 32 in every SD VAE */
    bool quant_conv, post_quant_conv;
    bool has_encoder;
    float scaling_factor;
    int sample_size;                   /* tile size in pixels for tiled decode (512 for SD) */
} vae_config;

/* Tiled decode as diffusers' AutoencoderKL.tiled_decode: tiles of tile_latent latents,
 * overlapping by overlap (0.25), blended linearly top and left, so no seams show. */
typedef struct {
    bool enabled;
    int tile_latent;                   /* 0: sample_size / factor */
    float overlap;                     /* 0: 0.25 */
} vae_tiling;

typedef struct vae vae;

/* Loads from MODEL (a diffusers folder or a single .safetensors). default_scaling is used
 * when no vae/config.json says otherwise (VAE_SCALING_SD or VAE_SCALING_SDXL). */
vae *vae_load(const char *model, float default_scaling);
/* A VAE with random float32 weights in the given shape (benchmarks). */
vae *vae_new_random(const vae_config *config, uint64_t seed);
void vae_destroy(vae **self);

const vae_config *vae_get_config(const vae *self);
float vae_scaling_factor(const vae *self);
int vae_downscale(const vae *self);    /* 8 for SD */

/* latent [N, L, h, w] (unscaled) -> image [N, out_channels, h*f, w*f] in about [-1, 1].
 * tiling NULL or not enabled: one pass. Tiling is used only when the latent is larger
 * than a tile, as in diffusers, so small images come out identical either way. */
int vae_decode(vae *self, ts_ctx *ctx, const float *latent, int N, int h, int w, float *image,
               const vae_tiling *tiling);
/* image [N, in_channels, H, W] in [-1, 1] (H, W multiples of the factor) -> the mean of
 * the latent distribution [N, L, H/f, W/f] (unscaled). */
int vae_encode_mean(vae *self, ts_ctx *ctx, const float *image, int N, int H, int W, float *latent);

/* Convenience: image in [-1, 1] NCHW (one image) -> interleaved RGB8 (HWC), clamped,
 * rounded as diffusers' numpy_to_pil: (x/2+0.5).clamp(0,1)*255, round. Host memory in and
 * out, on any backend; -1 with ts_fail on a device failure. */
int vae_image_to_rgb8(ts_ctx *ctx, const float *image, int C, int H, int W, uint8_t *rgb);

#endif
