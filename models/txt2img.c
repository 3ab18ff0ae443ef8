/*
 * txt2img.c — the pipeline glue: components loaded once, then per request text
 * conditioning, the sample loop around the U-Net, and the VAE or TAESD decode.
 */
#include "models/txt2img.h"

#include "models/model_files.h"
#include "models/sample_loop.h"
#include "models/scheduler.h"
#include "models/taesd.h"
#include "models/text_conditioning.h"
#include "models/unet.h"
#include "models/vae.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct txt2img {
    char *model;
    text_encoder *text;
    unet *unet;
    vae *vae;                 /* NULL when TAESD decodes */
    taesd *taesd;
    char scheduler_json[4096];
    bool has_scheduler_json;
};

/* What the U-Net callback needs for one request. */
typedef struct {
    unet *unet;
    const text_conditioning *cond;   /* rows: [negative, positive] */
    int n;                           /* images */
    int H, W;                        /* latent size */
    int pixel_h, pixel_w;            /* image size (SDXL time ids) */
    float *context, *text_embeds, *time_ids, *timesteps;   /* for 2n rows */
    int tokens, dim, pooled_dim;
} denoise_context;

txt2img *txt2img_load(const txt2img_options *o) {
    if (!o || !o->model) { ts_fail("txt2img: no model given"); return NULL; }
    txt2img *p = ts_calloc(1, sizeof *p);
    p->model = ts_strdup(o->model);
    double t0 = ts_now();
    p->text = text_encoder_load(o->model, o->tokenizer);
    if (!p->text) goto fail;
    p->unet = unet_load(o->model);
    if (!p->unet) goto fail;
    if (o->taesd) {
        p->taesd = taesd_load(NULL, o->taesd);
        if (!p->taesd) goto fail;
        if (taesd_latent_channels(p->taesd) != unet_out_channels(p->unet)) {
            ts_fail("%s: TAESD has %d latent channels, the U-Net %d", o->taesd, taesd_latent_channels(p->taesd),
                    unet_out_channels(p->unet));
            goto fail;
        }
    } else {
        float scaling = text_encoder_family(p->text) == TEXT_FAMILY_SDXL ? VAE_SCALING_SDXL : VAE_SCALING_SD;
        p->vae = vae_load(o->model, scaling);
        if (!p->vae) goto fail;
        if (vae_get_config(p->vae)->latent_channels != unet_out_channels(p->unet)) {
            ts_fail("%s: the VAE has %d latent channels, the U-Net %d", o->model,
                    vae_get_config(p->vae)->latent_channels, unet_out_channels(p->unet));
            goto fail;
        }
    }
    if (unet_cross_attention_dim(p->unet) != text_encoder_context_dim(p->text)) {
        ts_fail("%s: the U-Net expects %d-wide text conditioning, the text encoder gives %d", o->model,
                unet_cross_attention_dim(p->unet), text_encoder_context_dim(p->text));
        goto fail;
    }
    p->has_scheduler_json =
        model_component_file(o->model, "scheduler", "scheduler_config.json", p->scheduler_json, sizeof p->scheduler_json) == 0;
    log_info("txt2img: %s loaded (%s) in %.1f s", o->model, text_family_name(text_encoder_family(p->text)), ts_now() - t0);
    return p;
fail:
    ts_fail_wrap("txt2img: loading %s", o->model);
    txt2img_destroy(&p);
    return NULL;
}

void txt2img_destroy(txt2img **self) {
    txt2img *p = *self;
    if (!p) return;
    text_encoder_destroy(&p->text);
    unet_destroy(&p->unet);
    vae_destroy(&p->vae);
    taesd_destroy(&p->taesd);
    free(p->model);
    free(p);
    *self = NULL;
}

txt2img_request txt2img_request_defaults(void) {
    return (txt2img_request){.prompt = "", .steps = 20, .cfg_scale = 7.0f, .sampler = "euler_a",
                             .schedule = "discrete", .width = 512, .height = 512, .batch = 1};
}

int txt2img_latent_channels(const txt2img *p) { return unet_out_channels(p->unet); }
int txt2img_downscale(const txt2img *p) { return p->vae ? vae_downscale(p->vae) : 8; }

const char *txt2img_a1111_sampler(const char *s) {
    static const char *names[][2] = {{"ddim", "DDIM"}, {"euler", "Euler"}, {"euler_a", "Euler a"},
                                     {"dpm++2m", "DPM++ 2M"}, {"dpmpp_2m", "DPM++ 2M"}, {"lcm", "LCM"}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(s, names[i][0]) == 0) return names[i][1];
    return s;
}

/* Fills the per-row inputs for batch rows: the conditioning holds 2n rows [negatives;
 * positives], which is the CFG batch order; without CFG only the positives run. */
static void fill_rows(denoise_context *d, int rows) {
    const text_conditioning *c = d->cond;
    size_t per = (size_t)d->tokens * d->dim;
    for (int r = 0; r < rows; r++) {
        int src = rows == 2 * d->n ? r : d->n + r;
        memcpy(d->context + r * per, c->context + src * per, per * sizeof(float));
        if (d->pooled_dim) {
            memcpy(d->text_embeds + (size_t)r * d->pooled_dim, c->pooled + (size_t)src * d->pooled_dim,
                   (size_t)d->pooled_dim * sizeof(float));
            /* SDXL micro-conditioning: original size, crop (0, 0), target size — in pixels */
            float *t = d->time_ids + r * 6;
            t[0] = t[4] = (float)d->pixel_h, t[1] = t[5] = (float)d->pixel_w, t[2] = t[3] = 0;
        }
    }
}

static int denoise(void *user, float *out, const float *x, int batch, float timestep) {
    denoise_context *d = user;
    if (batch != d->n && batch != 2 * d->n) return ts_fail("txt2img: denoiser asked for %d rows", batch);
    fill_rows(d, batch);
    for (int r = 0; r < batch; r++) d->timesteps[r] = timestep;
    return unet_forward(d->unet, x, batch, d->H, d->W, d->timesteps, d->context, d->tokens,
                        d->pooled_dim ? d->text_embeds : NULL, d->pooled_dim ? d->time_ids : NULL, out);
}

static int on_step(void *user, int step, int steps, float timestep) {
    const txt2img_request *r = user;
    (void)timestep;
    return r->progress ? r->progress(r->progress_user, step, steps) : 0;
}

static int check_request(const txt2img *p, const txt2img_request *r) {
    int f = txt2img_downscale(p);
    if (r->width < f || r->height < f || r->width % f || r->height % f || r->width > 2048 || r->height > 2048)
        return ts_fail("txt2img: size %dx%d: width and height must be multiples of %d, at most 2048", r->width,
                       r->height, f);
    int unet_factor = 1 << (unet_get_config(p->unet)->levels - 1);
    if ((r->width / f) % unet_factor || (r->height / f) % unet_factor)
        return ts_fail("txt2img: size %dx%d: the latent size must be a multiple of %d for this U-Net", r->width,
                       r->height, unet_factor);
    if (r->steps < 1 || r->steps > 1000) return ts_fail("txt2img: steps %d (1..1000)", r->steps);
    if (r->batch < 1 || r->batch > 64) return ts_fail("txt2img: batch %d (1..64)", r->batch);
    if (r->clip_skip < 0 || r->clip_skip > 12) return ts_fail("txt2img: clip skip %d", r->clip_skip);
    if (!r->prompt && !r->prompts) return ts_fail("txt2img: no prompt");
    if (r->prompts)
        for (int i = 0; i < r->batch; i++)
            if (!r->prompts[i]) return ts_fail("txt2img: no prompt for image %d", i);
    return 0;
}

int txt2img_generate(txt2img *p, const txt2img_request *r, txt2img_result *out) {
    memset(out, 0, sizeof *out);
    if (check_request(p, r) < 0) return -1;
    int n = r->batch, f = txt2img_downscale(p), C = unet_out_channels(p->unet);
    int h = r->height / f, w = r->width / f;
    int rc = -1;
    scheduler *s = NULL;
    text_conditioning cond = {0};
    denoise_context d = {0};

    /* text */
    double t0 = ts_now();
    text_encoder_options to = text_encoder_defaults();
    to.clip_skip = r->clip_skip > 1 ? r->clip_skip - 1 : 0;    /* A1111's 2 is diffusers' 1 */
    /* rows [negatives; positives]; no negative prompt is NULL, which SDXL turns into zeros as
     * diffusers does (SD 1/2: ""). */
    const char **prompts = ts_calloc((size_t)2 * n, sizeof(char *));
    for (int i = 0; i < n; i++) {
        const char *neg = r->negatives ? r->negatives[i] : r->negative;
        prompts[i] = neg && neg[0] ? neg : NULL;
        prompts[n + i] = r->prompts ? r->prompts[i] : r->prompt;
    }
    int enc = text_encoder_encode(p->text, prompts, 2 * n, &to, &cond);
    free(prompts);
    if (enc < 0) goto done;
    out->seconds_text = ts_now() - t0;

    /* sampler */
    scheduler_config sc;
    if (scheduler_config_init(&sc, r->sampler, r->schedule) < 0) goto done;
    if (p->has_scheduler_json && scheduler_config_load(&sc, p->scheduler_json) < 0) goto done;
    s = scheduler_new(&sc);
    if (!s) goto done;

    d = (denoise_context){.unet = p->unet, .cond = &cond, .n = n, .H = h, .W = w, .pixel_h = r->height,
                          .pixel_w = r->width, .tokens = cond.tokens,
                          .dim = cond.dim, .pooled_dim = unet_text_embeds_dim(p->unet) ? cond.pooled_dim : 0};
    if (unet_text_embeds_dim(p->unet) && cond.pooled_dim != unet_text_embeds_dim(p->unet)) {
        ts_fail("txt2img: the U-Net wants %d-wide pooled text, the text encoder gives %d", unet_text_embeds_dim(p->unet),
                cond.pooled_dim);
        goto done;
    }
    d.context = ts_malloc((size_t)2 * n * cond.tokens * cond.dim * sizeof(float));
    d.timesteps = ts_malloc((size_t)2 * n * sizeof(float));
    if (d.pooled_dim) {
        d.text_embeds = ts_malloc((size_t)2 * n * d.pooled_dim * sizeof(float));
        d.time_ids = ts_malloc((size_t)2 * n * 6 * sizeof(float));
    }
    size_t latent_n = (size_t)n * C * h * w;
    out->latents = ts_malloc(latent_n * sizeof(float));
    out->latent_channels = C, out->latent_height = h, out->latent_width = w;
    sample_params sp = {.batch = n, .channels = C, .height = h, .width = w, .steps = r->steps,
                        .guidance_scale = r->cfg_scale, .seeds = r->seeds ? r->seeds : &r->seed,
                        .n_seeds = r->seeds ? n : 1,
                        .init_noise = r->init_noise, .denoise = denoise, .denoise_user = &d,
                        .progress = on_step, .progress_user = (void *)r};
    t0 = ts_now();
    if (sample_loop_run(s, &sp, out->latents) < 0) goto done;
    out->seconds_sampling = ts_now() - t0;

    /* decode */
    t0 = ts_now();
    out->batch = n, out->width = r->width, out->height = r->height;
    out->rgb = ts_calloc((size_t)n, sizeof(uint8_t *));
    size_t pixels = (size_t)r->width * r->height;
    float *image = ts_malloc(3 * pixels * sizeof(float));
    float *z = ts_malloc((size_t)C * h * w * sizeof(float));
    for (int i = 0; i < n; i++) {
        memcpy(z, out->latents + (size_t)i * C * h * w, (size_t)C * h * w * sizeof(float));
        out->rgb[i] = ts_malloc(3 * pixels);
        if (p->taesd) {   /* TAESD works on the scaled latents and gives [0, 1] */
            if (taesd_decode(p->taesd, z, 1, h, w, image) < 0) { free(image), free(z); goto done; }
            for (size_t k = 0; k < 3 * pixels; k++) image[k] = image[k] * 2.0f - 1.0f;
        } else {
            float scaling = vae_scaling_factor(p->vae);   /* divide, as diffusers does */
            for (size_t k = 0; k < (size_t)C * h * w; k++) z[k] /= scaling;
            vae_tiling tiling = {.enabled = r->vae_tiling};
            if (vae_decode(p->vae, z, 1, h, w, image, &tiling) < 0) { free(image), free(z); goto done; }
        }
        vae_image_to_rgb8(image, 3, r->height, r->width, out->rgb[i]);
    }
    free(image), free(z);
    out->seconds_decode = ts_now() - t0;
    rc = 0;
done:
    if (rc < 0) {
        ts_fail_wrap("txt2img");
        txt2img_result_free(out);
    }
    free(d.context), free(d.timesteps), free(d.text_embeds), free(d.time_ids);
    text_conditioning_free(&cond);
    scheduler_destroy(&s);
    return rc;
}

void txt2img_result_free(txt2img_result *r) {
    if (r->rgb)
        for (int i = 0; i < r->batch; i++) free(r->rgb[i]);
    free(r->rgb);
    free(r->latents);
    memset(r, 0, sizeof *r);
}
