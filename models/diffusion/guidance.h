/*
 * guidance.h — classifier-free guidance, as diffusers' StableDiffusionPipeline computes it.
 *
 * diffusers writes   eps = eps_u + w * (eps_c - eps_u)        (guidance_scale w, e.g. 7.5).
 * Some write-ups (Ho & Salimans; Imagen) write eps = (1 + w') * eps_c - w' * eps_u.
 * Expanding the first: w * eps_c - (w - 1) * eps_u, so the two agree with w' = w - 1:
 * diffusers' 7.5 is their 6.5, and diffusers' w = 1 (their w' = 0) is the plain conditional
 * prediction — the unconditional pass is skipped entirely (diffusers turns CFG on only for
 * w > 1; guidance_enabled says so).
 *
 * guidance_rescale (phi, from "Common Diffusion Noise Schedules and Sample Steps are Flawed")
 * is diffusers' rescale_noise_cfg: per image, rescale the guided prediction to the standard
 * deviation (unbiased, over all its values) of the conditional one, then mix:
 *   eps = phi * eps * std(eps_c) / std(eps) + (1 - phi) * eps.
 */
#ifndef TESSERA_GUIDANCE_H
#define TESSERA_GUIDANCE_H

#include "kernels/base.h"

/* Whether w asks for an unconditional pass (diffusers: w > 1). */
bool guidance_enabled(float w);
/* out[n] = uncond + w * (cond - uncond); out may alias either input. */
void guidance_combine(float *out, const float *uncond, const float *cond, int64_t n, float w);
/* In place on guided[batch * per_image]; cond has the same layout. phi <= 0 does nothing. */
void guidance_rescale(float *guided, const float *cond, int batch, int64_t per_image, float phi);

#endif
