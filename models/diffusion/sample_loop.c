/* sample_loop.c — init noise, batched CFG denoising and scheduler steps (see sample_loop.h). */
#include "models/diffusion/sample_loop.h"
#include "models/diffusion/guidance.h"
#include "models/formats/npy.h"

#include <stdlib.h>
#include <string.h>

int sample_loop_run(scheduler *s, const sample_params *p, float *latents) {
    if (p->batch < 1 || p->channels < 1 || p->height < 1 || p->width < 1)
        return ts_fail("sample loop: bad latent shape [%d, %d, %d, %d]", p->batch, p->channels, p->height, p->width);
    if (!p->denoise) return ts_fail("sample loop: no denoiser given");
    const bool part = p->whole_batch > 1;
    if (part && (p->batch != 1 || p->batch_pos < 0 || p->batch_pos >= p->whole_batch))
        return ts_fail("sample loop: image %d of a batch of %d, made alone, is one image (not %d)", p->batch_pos,
                       p->whole_batch, p->batch);
    const int seeds_wanted = part ? p->whole_batch : p->batch;
    if (!p->seeds || (p->n_seeds != 1 && p->n_seeds != seeds_wanted))
        return ts_fail("sample loop: need 1 seed or one per image (%d), got %d", seeds_wanted, p->n_seeds);
    /* one generator per image: image k of a batch is its own generator's, alone */
    const uint64_t *seeds = part && p->n_seeds > 1 ? p->seeds + p->batch_pos : p->seeds;
    const int n_seeds = part ? 1 : p->n_seeds;
    const int draw_whole = part && p->n_seeds == 1 ? p->whole_batch : 1, draw_part = draw_whole > 1 ? p->batch_pos : 0;
    if (scheduler_set_timesteps(s, p->steps) != 0) return -1;
    if (scheduler_draw_noise_as_part(s, draw_whole, draw_part) != 0) return -1;

    const int64_t per_image = (int64_t)p->channels * p->height * p->width;
    const int64_t n = per_image * p->batch;
    const bool cfg = guidance_enabled(p->guidance_scale);
    const int model_batch = cfg ? 2 * p->batch : p->batch;
    int rc = -1;

    torch_rng **gens = ts_calloc((size_t)n_seeds, sizeof *gens);
    for (int i = 0; i < n_seeds; i++) gens[i] = torch_rng_new(seeds[i]);
    float *x_in = ts_aligned_alloc(sizeof(float) * n * (cfg ? 2 : 1));
    float *out = ts_aligned_alloc(sizeof(float) * n * (cfg ? 2 : 1));

    if (p->init_noise) {
        memcpy(latents, p->init_noise, sizeof(float) * n);
    } else if (draw_whole > 1) {   /* the batch's latents, of which this image's share */
        float *whole = ts_aligned_alloc(sizeof(float) * n * draw_whole);
        int drawn = torch_rng_randn_tensor(gens, 1, whole, n * draw_whole);
        if (drawn == 0) memcpy(latents, whole + n * draw_part, sizeof(float) * n);
        free(whole);
        if (drawn != 0) goto done;
    } else if (torch_rng_randn_tensor(gens, n_seeds, latents, n) != 0) {
        goto done;
    }
    const float init_sigma = scheduler_init_noise_sigma(s);
    for (int64_t i = 0; i < n; i++) latents[i] = latents[i] * init_sigma;

    for (int step = 0; step < scheduler_steps(s); step++) {
        float t = scheduler_timestep(s, step);
        scheduler_scale_model_input(s, x_in, latents, n);
        if (cfg) memcpy(x_in + n, x_in, sizeof(float) * n);
        if (p->denoise(p->denoise_user, out, x_in, model_batch, t) != 0) {
            ts_fail_wrap("denoising step %d/%d (t=%g)", step + 1, scheduler_steps(s), t);
            goto done;
        }
        const float *eps = out;
        if (cfg) {
            const float *uncond = out, *cond = out + n;
            float *guided = x_in;   /* the model input is no longer needed */
            guidance_combine(guided, uncond, cond, n, p->guidance_scale);
            guidance_rescale(guided, cond, p->batch, per_image, p->guidance_rescale);
            eps = guided;
        }
        if (scheduler_step(s, eps, latents, n, gens, n_seeds) != 0) goto done;
        if (p->progress && p->progress(p->progress_user, step + 1, scheduler_steps(s), t) != 0) {
            ts_fail("sampling stopped at step %d/%d", step + 1, scheduler_steps(s));
            goto done;
        }
    }
    rc = 0;
done:
    for (int i = 0; i < n_seeds; i++) torch_rng_destroy(&gens[i]);
    free(gens);
    free(x_in);
    free(out);
    return rc;
}

int sample_load_init_noise(const char *path, int n, int c, int h, int w, float **out) {
    *out = NULL;
    tensor t;
    if (npy_load(path, &t) != 0) return ts_fail_wrap("--init-noise");
    const int64_t want[4] = {n, c, h, w};
    bool ok = t.ndim == 4 || (t.ndim == 3 && n == 1);
    for (int i = 0; ok && i < t.ndim; i++) ok = t.shape[i] == want[4 - t.ndim + i];
    if (ok && t.type != DT_F32 && t.type != DT_F16 && t.type != DT_BF16 && t.type != DT_F64) ok = false;
    if (!ok) {
        char got[64];
        tensor_shape_str(&t, got, sizeof got);
        const char *type = dtype_name(t.type);
        tensor_free(&t);
        return ts_fail("%s: initial latents are %s %s, expected float [%d, %d, %d, %d]", path, type, got, n, c, h, w);
    }
    *out = ts_malloc(sizeof(float) * (size_t)tensor_numel(&t));
    tensor_copy_to_f32(*out, &t);
    tensor_free(&t);
    return 0;
}
