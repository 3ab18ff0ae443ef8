/*
 * txt2img.h — the text-to-image pipeline, as diffusers' StableDiffusionPipeline runs it:
 * prompts -> CLIP text conditioning -> denoising loop (U-Net, CFG, sampler) -> VAE (or TAESD)
 * -> RGB8 images.
 *
 *   txt2img_options o = {.model = "sd15/", .tokenizer = NULL, .taesd = NULL};
 *   txt2img *p = txt2img_load(&o);                     // loads every component once
 *   txt2img_request r = txt2img_request_defaults();
 *   r.prompt = "a cat"; r.seed = 42; ...
 *   txt2img_result out;
 *   if (txt2img_generate(p, &r, &out) < 0) ... ts_last_error() ...
 *   ... out.rgb[i] (width*height*3 bytes each), out.latents ...
 *   txt2img_result_free(&out);
 *   txt2img_destroy(&p);
 *
 * A pipeline serves many requests (the diffusion worker keeps one per model); it is not
 * re-entrant (one generate at a time). Seeds follow diffusers: one seed is one CPU
 * torch.Generator drawing the whole batch, so image i of a batch equals diffusers' image i;
 * per-image seeds (request.seeds) are diffusers' list of generators. An image never depends
 * on what it is batched with: each image's prompts are encoded and its U-Net rows run on
 * their own, so image k of a batch made alone (batch_pos) is the same bytes.
 */
#ifndef TESSERA_TXT2IMG_H
#define TESSERA_TXT2IMG_H

#include "kernels/base.h"

typedef struct {
    const char *model;        /* diffusers folder or single .safetensors */
    const char *tokenizer;    /* NULL: MODEL/tokenizer/, else the built-in default path */
    const char *taesd;        /* NULL, or a TAESD decoder .safetensors: decode with it instead of the VAE */
    const char *device;       /* NULL or "cpu" (the default), "cuda:0", ...: where it computes */
    const char *dtype;        /* NULL or "f32" (the default), "f16", "bf16": the U-Net's and text
                               * encoders' GEMMs and convolutions (ts_ctx_set_compute_type); the
                               * VAE stays F32 (SDXL's overflows in F16) */
    int threads;              /* CPU threads of the pipeline's ops; 0: all cores */
    /* Parallel rendering (unet.h): NULL, or the ranks that share the U-Net, and how they share
     * it: tensor parallelism or the batch split (CFG-parallel: uncond and cond rows on two
     * ranks). Rank 0 loads the pipeline and leads; the other ranks call txt2img_follow, which
     * loads only their U-Net shards and serves rank 0's U-Net calls until it is destroyed. */
    struct comm *group;
    int parallel;             /* a unet_parallel (UNET_PARALLEL_TP, UNET_PARALLEL_BATCH) */
    int tp_pieces;            /* 0, or the U-Net cut into this many tensor-parallel pieces (a
                               * multiple of the group's size; unet_split.pieces): the images are
                               * then the same bytes for every group size dividing it, no group
                               * (one rank) included */
} txt2img_options;

/* Called after each denoising step; return non-zero to stop. */
typedef int (*txt2img_progress_fn)(void *user, int step, int steps);

typedef struct {
    const char *prompt, *negative;   /* negative NULL or "": the empty prompt */
    int steps;                       /* 20 */
    float cfg_scale;                 /* 7.0; <= 1 skips the unconditional pass */
    const char *sampler;             /* "euler_a" (ddim, euler, euler_a, dpm++2m, lcm) */
    const char *schedule;            /* "discrete" or "karras" */
    uint64_t seed;
    int width, height;               /* 512; multiples of 8 up to 2048 */
    int batch;                       /* 1 */
    int clip_skip;                   /* A1111 / sd.cpp numbering: 0 or 1 = last layer, 2 = penultimate */
    bool clip_skip_positive_only;    /* diffusers: clip_skip for the positive prompt only; false:
                                        negative and positive, as A1111 and sd.cpp */
    bool truncate;                   /* prompts cut at 77 tokens, as diffusers; false: A1111's
                                        75-token chunks */
    float guidance_rescale;          /* diffusers' guidance_rescale (phi); 0: off */
    float eta;                       /* DDIM's eta (0: deterministic); other samplers take 0 only */
    int batch_pos;                   /* -1: every image of the batch; k: image k (0-based, A1111's
                                        "Batch pos") alone, equal to image k of the whole batch */
    bool vae_tiling;
    const float *init_noise;         /* NULL, or batch*C*h*w unit-variance latents (the whole
                                        batch's, also with batch_pos) */
    /* Per-image batches (the diffusion worker batching different records): each NULL or
     * `batch` entries. prompts/negatives override prompt/negative per image; seeds gives each
     * image its own generator (diffusers' generator=[...]), so an image does not depend on
     * what it was batched with. */
    const char *const *prompts, *const *negatives;
    const uint64_t *seeds;
    bool unet_batch;                 /* the rows of the images whose prompts have the same token
                                        count in one U-Net call a step (faster); false: one call
                                        per image, the image independent of its batch, bit for bit */
    txt2img_progress_fn progress;
    void *progress_user;
} txt2img_request;

typedef struct {
    int batch, width, height;        /* batch: 1 with batch_pos */
    uint8_t **rgb;                   /* batch images, width*height*3 bytes each, row-major RGB */
    float *latents;                  /* [batch, C, height/f, width/f], before 1/scaling_factor */
    int latent_channels, latent_height, latent_width;
    double seconds_text, seconds_sampling, seconds_decode;
} txt2img_result;

typedef struct txt2img txt2img;

txt2img *txt2img_load(const txt2img_options *options);
/* The ranks other than 0 of options->group: serve rank 0's U-Net calls until its pipeline is
 * destroyed (0), or the group fails (-1). */
int txt2img_follow(const txt2img_options *options);
void txt2img_destroy(txt2img **self);

txt2img_request txt2img_request_defaults(void);
int txt2img_generate(txt2img *self, const txt2img_request *request, txt2img_result *out);
void txt2img_result_free(txt2img_result *r);

/* txt2img_generate in its three stages, for a caller that overlaps them (the render worker's
 * pipeline): encode the text, sample the latents (out gets latents, sizes, seconds), decode
 * them into out->rgb. The text encoder, the U-Net and the decoder are separate objects, each
 * stage with its own ts_ctx, so one thread may encode a request while another samples one and
 * a third decodes one, as long as each stage runs in one thread at a time.
 * generate = encode + sample + decode. */
typedef struct txt2img_text txt2img_text;
int txt2img_encode(txt2img *self, const txt2img_request *request, txt2img_text **out);
int txt2img_sample(txt2img *self, const txt2img_request *request, const txt2img_text *text, txt2img_result *out);
int txt2img_decode(txt2img *self, const txt2img_request *request, txt2img_result *out);
void txt2img_text_free(txt2img_text **self);

int txt2img_latent_channels(const txt2img *self);
int txt2img_downscale(const txt2img *self);          /* 8 for SD */
/* The A1111 sampler name ("Euler a", "DDIM", ...) for a sampler name of ours. */
const char *txt2img_a1111_sampler(const char *sampler);
/* Ours for an A1111 sampler name ("Euler a" -> "euler_a"); NULL for one we do not have. */
const char *txt2img_sampler_from_a1111(const char *a1111);

#endif
