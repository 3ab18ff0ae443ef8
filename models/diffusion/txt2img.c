/*
 * txt2img.c — the pipeline glue: components loaded once, then per request text
 * conditioning, the sample loop around the U-Net, and the VAE or TAESD decode.
 */
#include "models/diffusion/txt2img.h"

#include "kernels/ops.h"
#include "kernels/comm.h"
#include "kernels/comm_nccl.h"

#include "models/formats/model_files.h"
#include "models/diffusion/sample_loop.h"
#include "models/diffusion/scheduler.h"
#include "models/diffusion/taesd.h"
#include "models/text/text_conditioning.h"
#include "models/diffusion/unet.h"
#include "models/diffusion/vae.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

struct txt2img {
    char *model;
    ts_ctx *ctx;              /* where every component computes (options.device, .threads) */
    ts_ctx *text_ctx, *decode_ctx;   /* txt2img_encode's and txt2img_decode's own: the stages may
                                        run in threads beside sampling (txt2img.h) */
    text_encoder *text;
    unet *unet;
    vae *vae;                 /* NULL when TAESD decodes */
    taesd *taesd;
    char scheduler_json[4096];       /* MODEL/scheduler/scheduler_config.json ... */
    char *scheduler_json_text;       /* ... and its text; NULL: the model has none */
    struct comm *nccl;               /* a led group on a GPU: the U-Net's all-reduces (device_group_comm) */
};

/* What the U-Net callback needs for one request. */
typedef struct {
    unet *unet;
    ts_ctx *ctx;
    const text_conditioning *cond;   /* per image: rows [negative, positive] */
    int n;                           /* images */
    int H, W;                        /* latent size */
    int pixel_h, pixel_w;            /* image size (SDXL time ids) */
    float *context, *text_embeds, *time_ids, *timesteps;   /* for one image's (up to) 2 rows */
    float *x, *out;                                         /* its U-Net input and output */
    int dim, pooled_dim;
    bool together;                   /* request.unet_batch: one call for the images of equal length */
    int *group;                      /* together: the images of one call */
} denoise_context;

/* Every rank of a group says whether it is ready; 0 when all are. */
static int group_agree(struct comm *g, bool ok) {
    float v = ok ? 1.0f : 0.0f;
    if (comm_all_reduce_sum(g, &v, &v, 1, DT_F32)) return -1;
    return v == (float)comm_size(g) ? 0 : -1;
}

/* The comm a group's U-Net all-reduces on: NCCL over the group, on the context's device and
 * stream, where the context is a GPU, the split tensor-parallel and the build has NCCL (the
 * sums then stay on the device); otherwise *out is NULL and the host group serves (a device
 * context copies each sum through the host). Collective over group; -1 on every rank when
 * NCCL fails. */
static int device_group_comm(ts_ctx *ctx, struct comm *group, int parallel, struct comm **out) {
    *out = NULL;
    int device;
    void *stream = ts_ctx_device_stream(ctx, &device);
    if (device < 0 || parallel != UNET_PARALLEL_TP || !comm_have_nccl()) return 0;
    *out = comm_new_nccl(group, device, stream);
    return *out ? 0 : ts_fail_wrap("txt2img: NCCL for the U-Net's group on device %d", device);
}

int txt2img_follow(const txt2img_options *o) {
    struct comm *g = o->group;
    if (!g || comm_rank(g) == 0) return ts_fail("txt2img_follow: for the ranks other than 0 of a group");
    ts_ctx *ctx = ts_ctx_new(o->device, o->threads);
    dtype t;
    if (ctx && o->dtype && (ts_compute_type_parse(o->dtype, &t) || ts_ctx_set_compute_type(ctx, t))) ts_ctx_destroy(&ctx);
    unet *u = ctx ? unet_load_split(o->model, (unet_split){(unet_parallel)o->parallel, comm_rank(g), comm_size(g), o->tp_pieces}) : NULL;
    if (!u) ts_fail_wrap("txt2img: rank %d: loading the U-Net of %s", comm_rank(g), o->model);
    int rc = group_agree(g, u != NULL);
    struct comm *nccl = NULL;
    if (rc && u) ts_fail("txt2img: rank 0 of the group failed to load %s", o->model);
    if (rc == 0 && (rc = device_group_comm(ctx, g, o->parallel, &nccl)) == 0) {
        ts_ctx_set_comm(ctx, nccl ? nccl : g);
        rc = unet_follow(u, ctx, g);
    }
    unet_destroy(&u);
    comm_destroy(&nccl);   /* before its context */
    ts_ctx_destroy(&ctx);
    return rc;
}

txt2img *txt2img_load(const txt2img_options *o) {
    if (!o || !o->model) { ts_fail("txt2img: no model given"); return NULL; }
    bool led = o->group && comm_size(o->group) > 1;
    if (led && comm_rank(o->group) != 0) {
        ts_fail("txt2img: rank %d of the group: rank 0 loads the pipeline, the others call txt2img_follow",
                comm_rank(o->group));
        return NULL;
    }
    txt2img *p = ts_calloc(1, sizeof *p);
    p->model = ts_strdup(o->model);
    p->ctx = ts_ctx_new(o->device, o->threads);
    if (!p->ctx) goto fail;
    p->text_ctx = ts_ctx_new(o->device, o->threads);
    if (!p->text_ctx) goto fail;
    if (o->dtype) {
        dtype t;
        if (ts_compute_type_parse(o->dtype, &t) || ts_ctx_set_compute_type(p->ctx, t) ||
            ts_ctx_set_compute_type(p->text_ctx, t))
            goto fail;
    }
    p->decode_ctx = ts_ctx_new(o->device, o->threads);
    if (!p->decode_ctx) goto fail;
    double t0 = ts_now();
    p->text = text_encoder_load(o->model, o->tokenizer);
    if (!p->text) goto fail;
    unet_split split = UNET_SPLIT_NONE;
    if (led) {
        /* rank 0 leads: its U-Net stage announces each call to the group (txt2img_follow) */
        split = (unet_split){(unet_parallel)o->parallel, 0, comm_size(o->group), o->tp_pieces};
        ts_ctx_set_comm(p->ctx, o->group);
    } else if (o->tp_pieces > 1) {
        split = (unet_split){UNET_PARALLEL_TP, 0, 1, o->tp_pieces};   /* every piece here, on threads */
    }
    p->unet = unet_load_split(o->model, split);
    if (!p->unet || (led && unet_lead(p->unet, o->group))) goto fail;
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
    if (model_component_file(o->model, "scheduler", "scheduler_config.json", p->scheduler_json,
                             sizeof p->scheduler_json) == 0) {
        p->scheduler_json_text = read_text_file(p->scheduler_json, NULL);
        if (!p->scheduler_json_text) goto fail;
    }
    if (led && group_agree(o->group, true)) {
        unet_lead(p->unet, NULL);   /* a follower failed and is gone: nobody to stop */
        ts_fail("txt2img: another rank of the group failed to load its part of the U-Net");
        txt2img_destroy(&p);
        return NULL;
    }
    if (led && device_group_comm(p->ctx, o->group, o->parallel, &p->nccl)) {
        unet_lead(p->unet, NULL);   /* NCCL failed on every rank: the followers return */
        txt2img_destroy(&p);
        return NULL;
    }
    if (p->nccl) ts_ctx_set_comm(p->ctx, p->nccl);
    log_info("txt2img: %s loaded (%s) in %.1f s", o->model, text_family_name(text_encoder_family(p->text)), ts_now() - t0);
    return p;
fail:
    ts_fail_wrap("txt2img: loading %s", o->model);
    if (led) {
        if (p->unet) unet_lead(p->unet, NULL);
        group_agree(o->group, false);
    }
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
    free(p->scheduler_json_text);
    free(p->model);
    comm_destroy(&p->nccl);   /* before its context */
    ts_ctx_destroy(&p->ctx);
    ts_ctx_destroy(&p->text_ctx);
    ts_ctx_destroy(&p->decode_ctx);
    free(p);
    *self = NULL;
}

txt2img_request txt2img_request_defaults(void) {
    return (txt2img_request){.prompt = "", .steps = 20, .cfg_scale = 7.0f, .sampler = "euler_a",
                             .schedule = "discrete", .width = 512, .height = 512, .batch = 1, .batch_pos = -1};
}

int txt2img_latent_channels(const txt2img *p) { return unet_out_channels(p->unet); }
int txt2img_downscale(const txt2img *p) { return p->vae ? vae_downscale(p->vae) : 8; }

static const char *const sampler_names[][2] = {{"ddim", "DDIM"}, {"euler", "Euler"}, {"euler_a", "Euler a"},
                                               {"dpm++2m", "DPM++ 2M"}, {"dpmpp_2m", "DPM++ 2M"}, {"lcm", "LCM"}};

const char *txt2img_a1111_sampler(const char *s) {
    for (size_t i = 0; i < sizeof sampler_names / sizeof sampler_names[0]; i++)
        if (strcmp(s, sampler_names[i][0]) == 0) return sampler_names[i][1];
    return s;
}

const char *txt2img_sampler_from_a1111(const char *a1111) {
    for (size_t i = 0; i < sizeof sampler_names / sizeof sampler_names[0]; i++)
        if (strcmp(a1111, sampler_names[i][1]) == 0) return sampler_names[i][0];
    return NULL;
}

/* The U-Net runs once per image, on that image's rows alone, so an image's pixels never
 * depend on what it is batched with (the kernels' results for a row may change with the
 * batch size; by a few 1e-5 on the latents): image k of `-b N` made alone (batch_pos) and
 * a worker's record batched with others are the same bytes as in the batch.
 * With request.unet_batch the images whose prompts have the same token count share one call
 * (rows [negatives..., positives...]): faster, at the price of that promise.
 * The call's rows are put together in host memory: unet_forward takes host inputs on every
 * backend (a device's copies are its own business). */
static int denoise_rows(denoise_context *d, float *out, const float *x, int rows, const int *images, int m) {
    size_t per_row = (size_t)unet_out_channels(d->unet) * d->H * d->W;
    int tokens = d->cond[images[0]].tokens;
    size_t per_ctx = (size_t)tokens * d->dim;
    for (int r = 0; r < rows * m; r++) d->timesteps[r] = d->timesteps[0];
    for (int j = 0; j < m; j++) {
        int i = images[j];
        const text_conditioning *c = &d->cond[i];
        for (int r = 0; r < rows; r++) {   /* call row r*m + j is batch row r*n + i (image i, row r) */
            int src = rows == 2 ? r : 1, row = r * m + j;
            memcpy(d->context + row * per_ctx, c->context + src * per_ctx, per_ctx * sizeof(float));
            if (d->pooled_dim) {
                memcpy(d->text_embeds + (size_t)row * d->pooled_dim, c->pooled + (size_t)src * d->pooled_dim,
                       (size_t)d->pooled_dim * sizeof(float));
                /* SDXL micro-conditioning: original size, crop (0, 0), target size — in pixels */
                float *t = d->time_ids + row * 6;
                t[0] = t[4] = (float)d->pixel_h, t[1] = t[5] = (float)d->pixel_w, t[2] = t[3] = 0;
            }
            memcpy(d->x + row * per_row, x + (size_t)(r * d->n + i) * per_row, per_row * sizeof(float));
        }
    }
    if (unet_forward(d->unet, d->ctx, d->x, rows * m, d->H, d->W, d->timesteps, d->context, tokens,
                     d->pooled_dim ? d->text_embeds : NULL, d->pooled_dim ? d->time_ids : NULL, d->out) != 0)
        return -1;
    for (int j = 0; j < m; j++)
        for (int r = 0; r < rows; r++)
            memcpy(out + (size_t)(r * d->n + images[j]) * per_row, d->out + (size_t)(r * m + j) * per_row,
                   per_row * sizeof(float));
    return 0;
}

static int denoise(void *user, float *out, const float *x, int batch, float timestep) {
    denoise_context *d = user;
    if (batch != d->n && batch != 2 * d->n) return ts_fail("txt2img: denoiser asked for %d rows", batch);
    int rows = batch / d->n;
    d->timesteps[0] = timestep;
    if (!d->together) {
        for (int i = 0; i < d->n; i++)
            if (denoise_rows(d, out, x, rows, &i, 1) < 0) return -1;
        return 0;
    }
    /* groups of equal token count, in image order */
    bool *done = ts_calloc((size_t)d->n, sizeof *done);
    int rc = 0;
    for (int i = 0; i < d->n && rc == 0; i++) {
        if (done[i]) continue;
        int m = 0;
        for (int k = i; k < d->n; k++)
            if (!done[k] && d->cond[k].tokens == d->cond[i].tokens) d->group[m++] = k, done[k] = true;
        rc = denoise_rows(d, out, x, rows, d->group, m);
    }
    free(done);
    return rc;
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
    if (r->batch_pos < -1 || r->batch_pos >= r->batch)
        return ts_fail("txt2img: batch position %d of a batch of %d (0..%d)", r->batch_pos, r->batch, r->batch - 1);
    if (!(r->guidance_rescale >= 0 && r->guidance_rescale <= 1))
        return ts_fail("txt2img: guidance rescale %g (0..1)", (double)r->guidance_rescale);
    if (!(r->eta >= 0 && r->eta <= 1)) return ts_fail("txt2img: eta %g (0..1)", (double)r->eta);
    if (r->eta > 0 && strcmp(r->sampler, "ddim") != 0)
        return ts_fail("txt2img: eta is DDIM's setting; sampler %s has none", r->sampler);
    if (!r->prompt && !r->prompts) return ts_fail("txt2img: no prompt");
    if (r->prompts)
        for (int i = 0; i < r->batch; i++)
            if (!r->prompts[i]) return ts_fail("txt2img: no prompt for image %d", i);
    return 0;
}

struct txt2img_text {
    int n, first;                    /* images, and the first one's place in the batch (batch_pos) */
    text_conditioning *cond;         /* per image: rows [negative, positive] */
    int max_tokens;
    double seconds;
};

void txt2img_text_free(txt2img_text **self) {
    txt2img_text *t = *self;
    if (!t) return;
    for (int i = 0; i < t->n; i++) text_conditioning_free(&t->cond[i]);
    free(t->cond);
    free(t);
    *self = NULL;
}

int txt2img_encode(txt2img *p, const txt2img_request *r, txt2img_text **out) {
    *out = NULL;
    if (check_request(p, r) < 0) return -1;
    txt2img_text *t = ts_calloc(1, sizeof *t);
    /* with batch_pos, one image: image `first` of the batch */
    t->n = r->batch_pos >= 0 ? 1 : r->batch, t->first = r->batch_pos >= 0 ? r->batch_pos : 0;
    t->cond = ts_calloc((size_t)t->n, sizeof *t->cond);
    double t0 = ts_now();
    text_encoder_options to = text_encoder_defaults();
    to.clip_skip = r->clip_skip > 1 ? r->clip_skip - 1 : 0;    /* A1111's 2 is diffusers' 1 */
    to.truncate = r->truncate;
    /* Each image's pair [negative, positive] on its own, so its long-prompt chunks do not
     * depend on the other images' prompts; no negative prompt is NULL, which SDXL turns into
     * zeros as diffusers does (SD 1/2: ""). Clip skip for both rows (A1111, sd.cpp) or the
     * positive only (diffusers). */
    const bool skip_rows[2] = {!r->clip_skip_positive_only, true};
    to.skip_rows = skip_rows;
    for (int i = 0; i < t->n; i++) {
        const char *neg = r->negatives ? r->negatives[t->first + i] : r->negative;
        const char *pair[2] = {neg && neg[0] ? neg : NULL, r->prompts ? r->prompts[t->first + i] : r->prompt};
        if (text_encoder_encode(p->text, p->text_ctx, pair, 2, &to, &t->cond[i]) < 0) {
            ts_fail_wrap("txt2img: image %d", t->first + i);
            txt2img_text_free(&t);
            return -1;
        }
        if (t->cond[i].tokens > t->max_tokens) t->max_tokens = t->cond[i].tokens;
    }
    t->seconds = ts_now() - t0;
    *out = t;
    return 0;
}

int txt2img_sample(txt2img *p, const txt2img_request *r, const txt2img_text *text, txt2img_result *out) {
    memset(out, 0, sizeof *out);
    if (check_request(p, r) < 0) return -1;
    int n = text->n, first = text->first;
    if (n != (r->batch_pos >= 0 ? 1 : r->batch)) return ts_fail("txt2img: text for %d images, request for %d", n, r->batch);
    int f = txt2img_downscale(p), C = unet_out_channels(p->unet);
    int h = r->height / f, w = r->width / f;
    int rc = -1;
    scheduler *s = NULL;
    const text_conditioning *cond = text->cond;
    denoise_context d = {0};
    out->seconds_text = text->seconds;

    /* as diffusers' pipeline class configures the scheduler it is given (scheduler.h) */
    scheduler_config sc;
    scheduler_pipeline pipeline =
        text_encoder_family(p->text) == TEXT_FAMILY_SDXL ? SCHEDULER_PIPELINE_SDXL : SCHEDULER_PIPELINE_SD;
    if (scheduler_config_for_pipeline(&sc, r->sampler, r->schedule, p->scheduler_json_text, p->scheduler_json,
                                      pipeline) < 0)
        goto done;
    sc.eta = r->eta;
    s = scheduler_new(&sc);
    if (!s) goto done;

    int rows = r->unet_batch ? 2 * n : 2;   /* the most rows of one U-Net call */
    d = (denoise_context){.unet = p->unet, .ctx = p->ctx, .cond = cond, .n = n, .H = h, .W = w, .pixel_h = r->height,
                          .pixel_w = r->width, .dim = cond[0].dim,
                          .pooled_dim = unet_text_embeds_dim(p->unet) ? cond[0].pooled_dim : 0,
                          .together = r->unet_batch && n > 1};
    if (unet_text_embeds_dim(p->unet) && cond[0].pooled_dim != unet_text_embeds_dim(p->unet)) {
        ts_fail("txt2img: the U-Net wants %d-wide pooled text, the text encoder gives %d", unet_text_embeds_dim(p->unet),
                cond[0].pooled_dim);
        goto done;
    }
    d.context = ts_malloc((size_t)rows * text->max_tokens * d.dim * sizeof(float));
    d.timesteps = ts_malloc((size_t)rows * sizeof(float));
    d.group = ts_malloc((size_t)n * sizeof(int));
    d.x = ts_aligned_alloc((size_t)rows * C * h * w * sizeof(float));
    d.out = ts_aligned_alloc((size_t)rows * C * h * w * sizeof(float));
    if (d.pooled_dim) {
        d.text_embeds = ts_malloc((size_t)rows * d.pooled_dim * sizeof(float));
        d.time_ids = ts_malloc((size_t)rows * 6 * sizeof(float));
    }
    size_t latent_n = (size_t)n * C * h * w;
    out->latents = ts_malloc(latent_n * sizeof(float));
    out->latent_channels = C, out->latent_height = h, out->latent_width = w;
    out->batch = n, out->width = r->width, out->height = r->height;
    sample_params sp = {.batch = n, .channels = C, .height = h, .width = w, .steps = r->steps,
                        .guidance_scale = r->cfg_scale, .guidance_rescale = r->guidance_rescale,
                        .seeds = r->seeds ? r->seeds : &r->seed, .n_seeds = r->seeds ? r->batch : 1,
                        .init_noise = r->init_noise ? r->init_noise + (size_t)first * C * h * w : NULL,
                        .denoise = denoise, .denoise_user = &d, .progress = on_step, .progress_user = (void *)r,
                        .whole_batch = r->batch_pos >= 0 ? r->batch : 0, .batch_pos = first};
    double t0 = ts_now();
    if (sample_loop_run(s, &sp, out->latents) < 0) goto done;
    out->seconds_sampling = ts_now() - t0;
    rc = 0;
done:
    if (rc < 0) {
        ts_fail_wrap("txt2img");
        txt2img_result_free(out);
    }
    free(d.context), free(d.timesteps), free(d.group), free(d.text_embeds), free(d.time_ids), free(d.x), free(d.out);
    scheduler_destroy(&s);
    return rc;
}

int txt2img_decode(txt2img *p, const txt2img_request *r, txt2img_result *out) {
    if (!out->latents || out->rgb) return ts_fail("txt2img: decode wants sampled latents, not yet decoded");
    double t0 = ts_now();
    int n = out->batch, C = out->latent_channels, h = out->latent_height, w = out->latent_width;
    out->rgb = ts_calloc((size_t)n, sizeof(uint8_t *));
    size_t pixels = (size_t)out->width * out->height;
    float *image = ts_malloc(3 * pixels * sizeof(float));
    float *z = ts_malloc((size_t)C * h * w * sizeof(float));
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        memcpy(z, out->latents + (size_t)i * C * h * w, (size_t)C * h * w * sizeof(float));   /* latents: host */
        if (p->taesd) {   /* TAESD works on the scaled latents and gives [0, 1] */
            rc = taesd_decode(p->taesd, p->decode_ctx, z, 1, h, w, image);
            /* to the VAE's [-1, 1], on the host image (x * 2 is exact: no rounding to differ) */
            for (size_t k = 0; rc == 0 && k < 3 * pixels; k++) image[k] = image[k] * 2.0f - 1.0f;
        } else {
            float scaling = vae_scaling_factor(p->vae);   /* divide, as diffusers does */
            for (size_t k = 0; k < (size_t)C * h * w; k++) z[k] /= scaling;
            vae_tiling tiling = {.enabled = r->vae_tiling};
            rc = vae_decode(p->vae, p->decode_ctx, z, 1, h, w, image, &tiling);
        }
        if (rc == 0) {
            out->rgb[i] = ts_malloc(3 * pixels);
            rc = vae_image_to_rgb8(p->decode_ctx, image, 3, out->height, out->width, out->rgb[i]);
        }
    }
    free(image), free(z);
    if (rc < 0) return ts_fail_wrap("txt2img: decoding");
    out->seconds_decode = ts_now() - t0;
    return 0;
}

/* Drops from this process the pages of the memory-mapped weight files of a component whose
 * stage is over: every mapping of MODEL/<component>/... (a folder) or, for a single-file
 * checkpoint, of the file itself (component NULL). The pages stay in the page cache; a later
 * access maps them back. A run's peak RSS is then its largest stage's, not the sum. */
static void release_weight_pages(const char *model, const char *component) {
    char real[PATH_MAX], prefix[PATH_MAX + 64];
    if (!realpath(model, real)) return;
    size_t n = (size_t)snprintf(prefix, sizeof prefix, "%s%s%s%s", real, component ? "/" : "", component ? component : "",
                                component ? "/" : "");
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f) return;
    char line[PATH_MAX + 256];
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        int at = 0;
        if (sscanf(line, "%lx-%lx %*s %*s %*s %*s %n", &lo, &hi, &at) < 2 || !at) continue;
        char *path = line + at;
        path[strcspn(path, "\n")] = 0;
        if (component ? !strncmp(path, prefix, n) : !strcmp(path, real)) madvise((void *)lo, hi - lo, MADV_DONTNEED);
    }
    fclose(f);
}

/* One request start to end: each component's weight pages leave the process once its stage
 * is over (release_weight_pages), so a 512x512 SD 1.5 run peaks at the U-Net's weights plus
 * its activations, not at everything at once (README, render throughput). The stage API
 * (txt2img_encode/_sample/_decode, for pipelines that keep every stage busy) keeps them. */
int txt2img_generate(txt2img *p, const txt2img_request *r, txt2img_result *out) {
    memset(out, 0, sizeof *out);
    txt2img_text *text = NULL;
    if (txt2img_encode(p, r, &text) < 0) return -1;
    bool folder = model_is_folder(p->model);
    if (folder) release_weight_pages(p->model, "text_encoder"), release_weight_pages(p->model, "text_encoder_2");
    int rc = txt2img_sample(p, r, text, out);
    txt2img_text_free(&text);
    release_weight_pages(p->model, folder ? "unet" : NULL);
    if (rc == 0 && txt2img_decode(p, r, out) < 0) {
        txt2img_result_free(out);
        return -1;
    }
    return rc;
}

void txt2img_result_free(txt2img_result *r) {
    if (r->rgb)
        for (int i = 0; i < r->batch; i++) free(r->rgb[i]);
    free(r->rgb);
    free(r->latents);
    memset(r, 0, sizeof *r);
}
