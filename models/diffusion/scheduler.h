/*
 * scheduler.h — the samplers of diffusers, step for step: DDIMScheduler (eta 0 and > 0),
 * EulerDiscreteScheduler, EulerAncestralDiscreteScheduler, DPMSolverMultistepScheduler
 * (dpmsolver++, order 2, optionally Karras sigmas) and LCMScheduler, for epsilon and
 * v prediction, over the training schedule of a diffusers scheduler_config.json.
 *
 *   scheduler_config cfg;                                        // names as in sd.cpp / A1111:
 *   scheduler_config_for_pipeline(&cfg, "euler_a", "discrete", json_text, path, SCHEDULER_PIPELINE_SD);
 *   cfg.prediction = PREDICT_V;                                  // e.g. for SD 2.x 768-v
 *   scheduler *s = scheduler_new(&cfg);
 *   scheduler_set_timesteps(s, 30);
 *   x *= scheduler_init_noise_sigma(s);
 *   for (int i = 0; i < scheduler_steps(s); i++) {
 *       float t = scheduler_timestep(s, i);                      // what the U-Net is given
 *       scheduler_scale_model_input(s, x_in, x, n);              // x_in = c_in(sigma) * x
 *       ... model_output = unet(x_in, t) ...
 *       scheduler_step(s, model_output, x, n, gens, n_gens);     // x <- x_prev, in place
 *   }
 *   scheduler_destroy(&s);
 * (models/diffusion/sample_loop.h runs this loop with CFG and batching.)
 *
 * Sampler names: ddim, euler, euler_a, dpm++2m (also dpmpp_2m), lcm. Schedule names:
 * discrete (the training schedule, diffusers' default) or karras (use_karras_sigmas; euler
 * and dpm++2m only, as in diffusers).
 *
 * Configuration is what a diffusers pipeline ends up with, in diffusers' order:
 *   1. the defaults of the sampler's diffusers class (DDIMScheduler(), ...: each class has
 *      its own, e.g. DDIM clip_sample true, set_alpha_to_one true, steps_offset 0, linear
 *      1e-4..0.02 betas) — scheduler_config_init;
 *   2. the keys present in scheduler_config.json win (SomeScheduler.from_config(file)) —
 *      scheduler_config_parse/load; a model without the file gets its family's published one;
 *   3. the pipeline class's own fix-ups: StableDiffusionPipeline (SD 1.x/2.x) forces
 *      steps_offset 1 and clip_sample false; StableDiffusionXLPipeline has none —
 *      scheduler_config_apply_pipeline.
 * scheduler_config_for_pipeline does all three; it is what
 * StableDiffusion[XL]Pipeline.from_pretrained(model, scheduler=SomeScheduler.from_pretrained(
 * model, subfolder="scheduler")) runs with. (Swapping pipe.scheduler after loading skips step
 * 3, and fills missing keys from the file's own _class_name first; not modelled.)
 * timestep_spacing defaults per class: leading for ddim and lcm, linspace for the others.
 *
 * Random draws (DDIM with eta > 0, Euler ancestral, LCM) come from torch generators exactly
 * as diffusers' randn_tensor draws them: one generator draws the whole batch at once; a list
 * of n_gens == batch generators draws one image each (see torch_rng_randn_tensor). Arithmetic
 * is float32 per element with per-step coefficients in double from the float32 schedule, so
 * results match diffusers to float rounding (about 1e-6), not bit for bit.
 */
#ifndef TESSERA_SCHEDULER_H
#define TESSERA_SCHEDULER_H

#include "kernels/base.h"
#include "models/diffusion/torch_rng.h"

typedef enum { SAMPLER_DDIM, SAMPLER_EULER, SAMPLER_EULER_A, SAMPLER_DPMPP_2M, SAMPLER_LCM } sampler_kind;
typedef enum { SPACING_LEADING, SPACING_TRAILING, SPACING_LINSPACE } timestep_spacing_kind;
typedef enum { PREDICT_EPSILON, PREDICT_V } prediction_kind;
typedef enum { BETAS_SCALED_LINEAR, BETAS_LINEAR, BETAS_SQUAREDCOS_CAP_V2 } beta_schedule_kind;

typedef struct scheduler_config {
    sampler_kind sampler;
    /* the training schedule */
    int num_train_timesteps;          /* 1000 */
    double beta_start, beta_end;      /* 0.0001, 0.02 (lcm: 0.00085, 0.012) */
    beta_schedule_kind beta_schedule; /* linear (lcm: scaled_linear) */
    bool rescale_betas_zero_snr;      /* false */
    /* the inference schedule */
    prediction_kind prediction;       /* epsilon */
    timestep_spacing_kind spacing;    /* per sampler, see above */
    int steps_offset;                 /* 0 */
    bool use_karras_sigmas;           /* euler, dpm++2m */
    double sigma_min, sigma_max;      /* euler karras: ramp ends; 0 = the schedule's own */
    bool final_sigmas_zero;           /* final_sigmas_type "zero" (true) or "sigma_min" */
    bool set_alpha_to_one;            /* ddim, lcm: true */
    bool clip_sample;                 /* ddim: true, lcm: false */
    float clip_sample_range;          /* 1.0 */
    float eta;                        /* ddim: 0 (diffusers pipeline default) */
    bool lower_order_final;           /* dpm++2m: true */
    bool euler_at_final;              /* dpm++2m: false */
    int original_inference_steps;     /* lcm: 50 */
    float timestep_scaling;           /* lcm: 10 */
} scheduler_config;

/* The diffusers class defaults for a sampler, and a schedule name ("discrete", "karras";
 * NULL means discrete).
 * -1 with a message for an unknown name or a schedule the sampler does not have. */
int scheduler_config_init(scheduler_config *cfg, const char *sampler_name, const char *schedule_name);
/* Overrides cfg with the keys present in a diffusers scheduler_config.json (file or text).
 * Unsupported settings (thresholding, trained_betas, other algorithm types) are refused
 * with a message naming the key. */
int scheduler_config_load(scheduler_config *cfg, const char *json_path);
int scheduler_config_parse(scheduler_config *cfg, const char *json_text, const char *where);
const char *sampler_name(sampler_kind k);

/* The diffusers pipeline class that is given the scheduler. */
typedef enum { SCHEDULER_PIPELINE_SD, SCHEDULER_PIPELINE_SDXL } scheduler_pipeline;
/* Its fix-ups to the scheduler's config: StableDiffusionPipeline (SD 1.x, 2.x) sets
 * steps_offset 1 and clip_sample false; StableDiffusionXLPipeline nothing. */
void scheduler_config_apply_pipeline(scheduler_config *cfg, scheduler_pipeline pipeline);
/* Steps 1-3 above: class defaults, then json_text (a scheduler_config.json's text; NULL:
 * the family's published file), then the pipeline's fix-ups. where names the text in errors. */
int scheduler_config_for_pipeline(scheduler_config *cfg, const char *sampler, const char *schedule,
                                  const char *json_text, const char *where, scheduler_pipeline pipeline);

typedef struct scheduler scheduler;

scheduler *scheduler_new(const scheduler_config *cfg);
void scheduler_destroy(scheduler **self);

/* diffusers' set_timesteps(steps); resets the step counter and the multistep history. */
int scheduler_set_timesteps(scheduler *self, int steps);
int scheduler_steps(const scheduler *self);
/* The timestep given to the U-Net at step i (an integer, or fractional for karras euler). */
float scheduler_timestep(const scheduler *self, int i);
/* The sigma at step i (0 <= i <= steps), or -1 for ddim / lcm, which have none. */
float scheduler_sigma(const scheduler *self, int i);
/* The factor the initial unit noise is multiplied by. */
float scheduler_init_noise_sigma(const scheduler *self);
/* alphas_cumprod of the training schedule (num_train_timesteps values). */
const float *scheduler_alphas_cumprod(const scheduler *self);

/* out[n] = x scaled for the model at the current step (out may be x). */
void scheduler_scale_model_input(const scheduler *self, float *out, const float *x, int64_t n);
/* One step: sample[n] (the whole batch) becomes the previous sample, in place. gens/n_gens
 * draw the noise of samplers that need it (NULL/0 is an error for those, ignored otherwise). */
int scheduler_step(scheduler *self, const float *model_output, float *sample, int64_t n,
                   torch_rng *const *gens, int n_gens);
/* Draw each step's noise as for a sample `whole` times larger (a batch of `whole` images
 * drawn by one generator) and keep part `part` of it: image `part` of that batch, made
 * alone, then gets the noise it got in the batch. Default 1, 0. */
int scheduler_draw_noise_as_part(scheduler *self, int whole, int part);

#endif
