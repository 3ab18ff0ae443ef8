/*
 * sample_loop.h — the denoising loop of diffusers' StableDiffusionPipeline, around any
 * denoiser (the U-Net in txt2img; a fake model in the sampler tests).
 *
 *   scheduler *s = scheduler_new(&cfg);                  // see scheduler.h
 *   sample_params p = {
 *       .batch = N, .channels = 4, .height = H / 8, .width = W / 8, .steps = 30,
 *       .guidance_scale = 7.5f, .guidance_rescale = 0.0f,
 *       .seeds = &seed, .n_seeds = 1,                    // or N seeds, one per image
 *       .init_noise = NULL,                              // or --init-noise latents
 *       .denoise = unet_callback, .denoise_user = &ctx,
 *   };
 *   sample_loop_run(s, &p, latents);                     // latents: N*C*H*W floats out
 *
 * What it does, in diffusers' order:
 *   1. latents = randn([N,C,H,W]) from the seed(s) — or the given init_noise — times the
 *      scheduler's init_noise_sigma. One seed is diffusers' generator=torch.Generator()
 *      .manual_seed(seed): the whole batch in one draw. N seeds are generator=[g_0..g_N-1]:
 *      image i's noise from its own generator, so an image does not depend on what it was
 *      batched with. Samplers that draw noise during steps continue the same generator(s);
 *      with init_noise given, the generators are still seeded from seeds for those draws.
 *   2. For each timestep t: x_in = scale_model_input([latents; latents]) (or [latents] when
 *      w <= 1), ONE call denoise(out, x_in, 2N, t): rows 0..N-1 are the unconditional
 *      (negative-prompt) pass, rows N..2N-1 the conditional pass, image i at row i and N+i.
 *      Then eps = uncond + w (cond - uncond), guidance_rescale if > 0, scheduler step.
 *   3. progress(step, steps, t) after each step.
 * The result is the final latents (before the VAE's 1/scaling_factor).
 */
#ifndef TESSERA_SAMPLE_LOOP_H
#define TESSERA_SAMPLE_LOOP_H

#include "models/diffusion/scheduler.h"

/* out[batch, C, H, W] = model(x[batch, C, H, W], timestep); batch is 2N with CFG
 * ([uncond; cond]) and N without. Returns 0, or -1 with ts_fail. */
typedef int (*denoise_fn)(void *user, float *out, const float *x, int batch, float timestep);
/* Called after step `step` (1-based) of `steps`; return non-zero to stop the loop. */
typedef int (*sample_progress_fn)(void *user, int step, int steps, float timestep);

typedef struct sample_params {
    int batch;                      /* N images */
    int channels, height, width;    /* latent shape of one image */
    int steps;
    float guidance_scale;           /* w; the unconditional pass runs only when w > 1 */
    float guidance_rescale;         /* phi; 0 = off */
    const uint64_t *seeds;          /* 1 seed (one generator) or `batch` seeds (one each) */
    int n_seeds;
    const float *init_noise;        /* NULL, or N*C*H*W unit-variance latents */
    denoise_fn denoise;
    void *denoise_user;
    sample_progress_fn progress;    /* may be NULL */
    void *progress_user;
    /* One image of a larger batch, made alone (image k of `-b N`, from its PNG's metadata):
     * batch 1, whole_batch N, batch_pos k. One seed: every draw (initial latents and the
     * samplers' noise) is made for all N images and image k's share kept, so the result is
     * image k of the batch. N seeds (one generator per image): seed k alone. 0: off. */
    int whole_batch, batch_pos;
} sample_params;

/* Runs set_timesteps(steps) and the whole loop; latents gets N*C*H*W floats.
 * -1 with a message on bad parameters, a failing denoiser, or a stop request. */
int sample_loop_run(scheduler *s, const sample_params *p, float *latents);

/* --init-noise FILE.npy: reads unit-variance initial latents of shape [N, C, H, W] (or
 * [C, H, W] when N is 1), any float dtype, into a new float buffer (free() it). The loop
 * multiplies them by init_noise_sigma, as diffusers does with its latents= argument.
 * -1 with a message naming the file and the shape expected. */
int sample_load_init_noise(const char *path, int n, int c, int h, int w, float **out);

#endif
