/*
 * cmd_txt2img.c — `tessera txt2img`: one prompt to PNG files, with the flags users of
 * stable-diffusion.cpp and diffusers already know. The generation parameters go into each
 * PNG's "parameters" text chunk in the A1111 format, so existing tools read them back.
 */
#include "cli/args.h"
#include "cli/commands.h"
#include "kernels/tensor.h"
#include "models/formats/image_png.h"
#include "models/formats/npy.h"
#include "models/diffusion/txt2img.h"
#include "models/diffusion/unet_parallel.h"
#include "kernels/comm.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

static int usage(int status) {
    fprintf(status ? stderr : stdout,
            "usage: tessera txt2img -m MODEL (-p PROMPT | --from-png FILE) [options]\n"
            "  -m, --model PATH       diffusers folder or single .safetensors checkpoint\n"
            "  -p, --prompt TEXT      the prompt\n"
            "  -n, --negative-prompt TEXT\n"
            "  -o, --output PATH      PNG to write (default output.png); %%d is replaced by the\n"
            "                         image number (1..batch); without it, images 2.. get _N\n"
            "  -W, --width N          multiple of 8, at most 2048 (default 512)\n"
            "  -H, --height N         multiple of 8, at most 2048 (default 512)\n"
            "  --steps N              sampling steps (default 20)\n"
            "  --cfg-scale W          classifier-free guidance scale (default 7.0; <= 1: off)\n"
            "  --sampler NAME         euler_a (default), euler, ddim, dpm++2m, lcm\n"
            "  --scheduler NAME       discrete (default) or karras\n"
            "  -s, --seed N           seed; negative (default -1) picks a random one, printed\n"
            "  -b, --batch N          images from one seed, as diffusers' num_images_per_prompt;\n"
            "                         each PNG records its Batch size and Batch pos\n"
            "  --batch-pos K          with -b N: make only image K (0..N-1) of that batch, the same\n"
            "                         pixels as in the batch, written to -o\n"
            "  --from-png FILE        every setting FILE's parameters record (prompt, seed, size,\n"
            "                         sampler, batch position, ...); options after it override\n"
            "  --clip-skip N          A1111 numbering: 2 = penultimate CLIP layer\n"
            "  --clip-skip-mode M     both (default: negative and positive prompt, as A1111 and\n"
            "                         sd.cpp) or positive (the positive prompt only, as diffusers)\n"
            "  --truncate             cut prompts at 77 tokens as diffusers does (default: A1111's\n"
            "                         75-token chunks, so long prompts are not cut)\n"
            "  --guidance-rescale F   diffusers' guidance_rescale, 0..1 (default 0)\n"
            "  --eta F                DDIM's eta, 0..1 (default 0: deterministic)\n"
            "  --vae-tiling           decode in overlapping tiles (large images in little memory)\n"
            "  --taesd PATH           decode with this TAESD decoder (.safetensors) instead of the VAE\n"
            "  --init-noise FILE.npy  start from these unit-variance latents instead of the seed's\n"
            "  --save-latent FILE.npy also write the final latents\n"
            "  --tokenizer PATH       CLIP vocabulary (folder with vocab.json+merges.txt, or bpe .txt.gz)\n"
            "  -t, --threads N        threads (default: all cores; per rank under mpirun)\n"
            "  --device D             cpu (default) or cuda[:N]: where the text encoder, U-Net and\n"
            "                         decoder compute (`tessera version` lists devices)\n"
            "  --dtype T              f32 (default), f16 or bf16: the U-Net's and text encoder's GEMMs\n"
            "                         and convolutions (cuda: tensor cores; cpu: f32 only)\n"
            "  --tp T                 under mpirun -np T: the U-Net split over the T ranks (tensor\n"
            "                         parallelism); = --parallel tp\n"
            "  --parallel MODE        under mpirun: tp; cfg (uncond and cond U-Net rows on two ranks)\n"
            "                         or dp (the U-Net batch's rows over the ranks; both one all-gather\n"
            "                         a step); auto (the cost model picks and says why). Rank 0 runs\n"
            "                         the pipeline and writes; the others hold only U-Net shards\n"
            "  --tp-pieces P          the U-Net cut into P pieces, P / T per rank (a thread each), summed\n"
            "                         in one order: the same image bytes for every --tp dividing P,\n"
            "                         without mpirun too\n");
    return status;
}

typedef struct { double start; bool tty; } progress_state;

static int show_progress(void *user, int step, int steps) {
    progress_state *s = user;
    if (!s->tty) return 0;
    double el = ts_now() - s->start, per = el / step;
    int width = 30, done = step * width / steps;
    char bar[64];
    for (int i = 0; i < width; i++) bar[i] = i < done ? '#' : '.';
    bar[width] = 0;
    fprintf(stderr, "\r  %3d/%d |%s| %.2f s/it, %.0f s left ", step, steps, bar, per, per * (steps - step));
    if (step == steps) fputc('\n', stderr);
    fflush(stderr);
    return 0;
}

/* pattern with the first "%d" replaced by number; no "%d": number > 1 inserts _N before the extension. */
static void output_name(const char *pattern, int number, char *out, size_t size) {
    const char *d = strstr(pattern, "%d");
    if (d) {
        snprintf(out, size, "%.*s%d%s", (int)(d - pattern), pattern, number, d + 2);
        return;
    }
    if (number <= 1) { snprintf(out, size, "%s", pattern); return; }
    const char *dot = strrchr(pattern, '.'), *slash = strrchr(pattern, '/');
    if (!dot || (slash && dot < slash)) dot = pattern + strlen(pattern);
    snprintf(out, size, "%.*s_%d%s", (int)(dot - pattern), pattern, number, dot);
}

static void model_label(const char *model, char *out, size_t size) {
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", model);
    size_t n = strlen(buf);
    while (n > 1 && buf[n - 1] == '/') buf[--n] = 0;
    const char *base = strrchr(buf, '/');
    base = base ? base + 1 : buf;
    snprintf(out, size, "%s", base);
    char *ext = strrchr(out, '.');
    if (ext && (strcmp(ext, ".safetensors") == 0 || strcmp(ext, ".ckpt") == 0)) *ext = 0;
}

static bool parse_int(const char *s, long long lo, long long hi, long long *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return false;
    *out = v;
    return true;
}

static bool parse_float(const char *s, float lo, float hi, float *out) {
    char *end;
    errno = 0;
    float v = strtof(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi)) return false;
    *out = v;
    return true;
}

/* --from-png: every setting the PNG's parameters record (gp keeps the strings). */
static int settings_from_png(const char *path, txt2img_request *r, long long *seed, gen_parameters *gp) {
    uint8_t *rgb = NULL;
    char *text = NULL;
    int w, h;
    if (image_png_read(path, &rgb, &w, &h, &text) < 0) return -1;
    free(rgb);
    if (!text) return ts_fail("%s has no parameters text chunk", path);
    gen_parameters_clear(gp);
    int rc = gen_parameters_parse(text, gp);
    free(text);
    if (rc < 0) return ts_fail_wrap("%s", path);
    const char *sampler = txt2img_sampler_from_a1111(gp->sampler);
    if (!sampler) return ts_fail("%s: sampler '%s' is not one of ours", path, gp->sampler);
    r->prompt = gp->prompt, r->negative = gp->negative;
    r->steps = gp->steps, r->sampler = sampler, r->cfg_scale = gp->cfg_scale;
    r->schedule = strcmp(gp->schedule, "Karras") == 0 ? "karras" : "discrete";
    r->width = gp->width, r->height = gp->height;
    r->clip_skip = gp->clip_skip, r->clip_skip_positive_only = gp->clip_skip_positive_only;
    r->truncate = gp->truncate, r->guidance_rescale = gp->guidance_rescale, r->eta = gp->eta;
    r->batch = gp->batch_size > 1 ? gp->batch_size : 1;
    r->batch_pos = gp->batch_size > 1 ? gp->batch_pos : -1;
    *seed = gp->seed;
    return 0;
}

/* --tp / --parallel: the MPI world (mpirun) shares the U-Net; every rank runs the pipeline
 * with rank 0's seed. -1 with the reason on a size or mode that cannot work. */
static int setup_parallel(txt2img_options *o, const txt2img_request *r, int tp, const char *parallel, long long *seed,
                          comm **group) {
    *group = comm_new_world();
    if (!*group) return -1;
    int n = comm_size(*group), rank = comm_rank(*group);
    if (tp > 1 && tp != n)
        return ts_fail("--tp %d: run under mpirun -np %d (this is %d rank%s)", tp, tp, n, n == 1 ? "" : "s");
    unet_parallel mode = UNET_PARALLEL_TP;
    char why[768] = "";
    if (parallel && strcmp(parallel, "auto") == 0) {
        /* one image's U-Net call a step: [uncond, cond] rows with CFG; a CPU rank of ~50 GFLOP/s
         * and MPI over shared memory assumed (tessera bench parallel measures them) */
        static const unet_link host = {"MPI on one host (assumed 10 GB/s, 1 us)", 10e9, 1e-6};
        unet_config c;
        if (unet_config_load(o->model, &c)) return -1;
        int f = 8, B = r->cfg_scale > 1 ? 2 : 1;
        mode = unet_parallel_choose(&c, B, r->height / f, r->width / f, 77, n, 50e9, &host, why, sizeof why);
    } else if (parallel && unet_parallel_parse(parallel, &mode)) {
        return ts_fail("--parallel is tp, cfg, dp or auto, not '%s'", parallel);
    }
    if (tp > 1 && mode != UNET_PARALLEL_TP) return ts_fail("--tp %d with --parallel %s", tp, parallel);
    if (mode == UNET_PARALLEL_BATCH && parallel && strcmp(parallel, "cfg") == 0 && (n != 2 || r->cfg_scale <= 1))
        return ts_fail("--parallel cfg: needs mpirun -np 2 and --cfg-scale above 1 (%d ranks, cfg %g)", n,
                       (double)r->cfg_scale);
    /* the same seed on every rank: rank 0's */
    if (comm_broadcast(*group, seed, sizeof *seed, 0)) return -1;
    if (n > 1) {
        o->group = *group;
        o->parallel = mode;
    }
    if (rank == 0 && why[0]) fprintf(stderr, "txt2img: %d ranks, --parallel auto picks %s\n", n, why);
    else if (rank == 0) fprintf(stderr, "txt2img: %d rank%s, parallel %s\n", n, n == 1 ? "" : "s",
                                unet_parallel_name(n > 1 ? mode : UNET_PARALLEL_NONE));
    return 0;
}

int cmd_txt2img(int argc, char **argv) {
    txt2img_options o = {0};
    txt2img_request r = txt2img_request_defaults();
    static gen_parameters from_png;   /* static: its strings stay reachable on every early return */
    const char *output = "output.png", *init_noise_path = NULL, *save_latent = NULL;
    long long seed = -1, v;
    int threads = 0, tp = 0;
    const char *parallel = NULL;
    bool have_prompt = false, option;
    cli_args args;
    cli_args_init(&args, argc, argv);
    for (const char *a; (a = cli_args_next(&args, &option));) {
        if (!option) { fprintf(stderr, "tessera txt2img: '%s': the prompt goes after -p\n", a); return usage(2); }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) return usage(0);
        if (strcmp(a, "--vae-tiling") == 0) { r.vae_tiling = true; continue; }
        if (strcmp(a, "--truncate") == 0) { r.truncate = true; continue; }
        const char *val = cli_args_value(&args);
        if (!val) { fprintf(stderr, "tessera txt2img: '%s' needs a value, or is unknown\n", a); return usage(2); }
#define IS(s, l) (strcmp(a, s) == 0 || strcmp(a, l) == 0)
#define INT_ARG(lo, hi, dst)                                                                              \
    do {                                                                                                  \
        if (!parse_int(val, lo, hi, &v)) {                                                                \
            fprintf(stderr, "tessera txt2img: %s wants a whole number in [%lld, %lld], got '%s'\n", a,      \
                    (long long)(lo), (long long)(hi), val);                                               \
            return 2;                                                                                     \
        }                                                                                                 \
        dst = v;                                                                                          \
    } while (0)
#define FLOAT_ARG(lo, hi, dst)                                                                            \
    do {                                                                                                  \
        if (!parse_float(val, lo, hi, &dst)) {                                                            \
            fprintf(stderr, "tessera txt2img: %s wants a number in [%g, %g], got '%s'\n", a, (double)(lo),  \
                    (double)(hi), val);                                                                   \
            return 2;                                                                                     \
        }                                                                                                 \
    } while (0)
        if (IS("-m", "--model")) o.model = val;
        else if (IS("-p", "--prompt")) r.prompt = val, have_prompt = true;
        else if (IS("-n", "--negative-prompt")) r.negative = val;
        else if (IS("-o", "--output")) output = val;
        else if (IS("-W", "--width")) INT_ARG(8, 2048, r.width);
        else if (IS("-H", "--height")) INT_ARG(8, 2048, r.height);
        else if (IS("--steps", "--steps")) INT_ARG(1, 1000, r.steps);
        else if (IS("-s", "--seed")) INT_ARG(INT64_MIN + 1, INT64_MAX, seed);
        else if (IS("-b", "--batch")) INT_ARG(1, 64, r.batch);
        else if (IS("--batch-pos", "--batch-pos")) INT_ARG(0, 63, r.batch_pos);
        else if (IS("--clip-skip", "--clip-skip")) INT_ARG(0, 12, r.clip_skip);
        else if (IS("-t", "--threads")) INT_ARG(1, 4096, threads);
        else if (IS("--device", "--device")) o.device = val;
        else if (IS("--dtype", "--dtype")) o.dtype = val;
        else if (IS("--tp", "--tp")) INT_ARG(1, 1024, tp);
        else if (IS("--parallel", "--parallel")) parallel = val;
        else if (IS("--tp-pieces", "--tp-pieces")) INT_ARG(1, 1024, o.tp_pieces);
        else if (IS("--cfg-scale", "--guidance-scale")) FLOAT_ARG(0, 100, r.cfg_scale);
        else if (IS("--guidance-rescale", "--guidance-rescale")) FLOAT_ARG(0, 1, r.guidance_rescale);
        else if (IS("--eta", "--eta")) FLOAT_ARG(0, 1, r.eta);
        else if (IS("--clip-skip-mode", "--clip-skip-mode")) {
            if (strcmp(val, "both") != 0 && strcmp(val, "positive") != 0) {
                fprintf(stderr, "tessera txt2img: --clip-skip-mode is both or positive, not '%s'\n", val);
                return 2;
            }
            r.clip_skip_positive_only = strcmp(val, "positive") == 0;
        }
        else if (IS("--from-png", "--from-png")) {
            if (settings_from_png(val, &r, &seed, &from_png) < 0) {
                fprintf(stderr, "tessera txt2img: --from-png: %s\n", ts_last_error());
                gen_parameters_clear(&from_png);
                return 2;
            }
            have_prompt = true;
        }
        else if (IS("--sampler", "--sampling-method")) r.sampler = val;
        else if (IS("--scheduler", "--schedule")) r.schedule = val;
        else if (IS("--taesd", "--taesd")) o.taesd = val;
        else if (IS("--init-noise", "--init-noise")) init_noise_path = val;
        else if (IS("--save-latent", "--save-latent")) save_latent = val;
        else if (IS("--tokenizer", "--tokenizer")) o.tokenizer = val;
        else { fprintf(stderr, "tessera txt2img: unknown option '%s'\n", a); return usage(2); }
#undef IS
#undef INT_ARG
#undef FLOAT_ARG
    }
    if (r.batch_pos >= r.batch) {
        fprintf(stderr, "tessera txt2img: --batch-pos %d needs -b larger than it (got -b %d)\n", r.batch_pos, r.batch);
        gen_parameters_clear(&from_png);
        return 2;
    }
    if (!o.model || !have_prompt) { fprintf(stderr, "tessera txt2img: -m MODEL and -p PROMPT are required\n"); return usage(2); }
    if (r.width % 8 || r.height % 8) {
        fprintf(stderr, "tessera txt2img: -W/-H must be multiples of 8 (got %dx%d)\n", r.width, r.height);
        return 2;
    }
    if (seed < 0) {
        uint32_t rnd;
        if (getrandom(&rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) rnd = (uint32_t)(ts_now() * 1e6);
        seed = rnd;
    }
    comm *group = NULL;
    int rank = 0;
    if (tp || parallel) {
        if (setup_parallel(&o, &r, tp, parallel, &seed, &group) < 0) {
            fprintf(stderr, "tessera txt2img: %s\n", ts_last_error());
            comm_destroy(&group);
            gen_parameters_clear(&from_png);
            return 2;
        }
        rank = comm_rank(group);
        if (rank != 0) {
            /* rank 0 runs the pipeline; this rank serves its U-Net calls */
            o.threads = threads;
            int rc = txt2img_follow(&o);
            if (rc) fprintf(stderr, "tessera txt2img: rank %d: %s\n", rank, ts_last_error());
            comm_destroy(&group);
            gen_parameters_clear(&from_png);
            return rc ? 1 : 0;
        }
    }
    r.seed = (uint64_t)seed;
    o.threads = threads;
    char label[256];
    model_label(o.model, label, sizeof label);
    if (from_png.model[0] && strcmp(from_png.model, label) != 0)
        log_warn("txt2img: the PNG was made with model '%s', this is '%s': expect another image", from_png.model, label);

    txt2img *p = txt2img_load(&o);
    if (!p) { fprintf(stderr, "tessera txt2img: %s\n", ts_last_error()); return 1; }
    tensor init = {0};
    int status = 1;
    if (init_noise_path) {
        if (npy_load(init_noise_path, &init) < 0) { fprintf(stderr, "tessera txt2img: %s\n", ts_last_error()); goto done; }
        int f = txt2img_downscale(p);
        int64_t want = (int64_t)r.batch * txt2img_latent_channels(p) * (r.height / f) * (r.width / f);
        if (init.type != DT_F32 || tensor_numel(&init) != want) {
            char shape[64];
            fprintf(stderr, "tessera txt2img: %s: float32 %s, expected %lld float32 values ([%d, %d, %d, %d])\n",
                    init_noise_path, tensor_shape_str(&init, shape, sizeof shape), (long long)want, r.batch,
                    txt2img_latent_channels(p), r.height / f, r.width / f);
            goto done;
        }
        r.init_noise = init.data;
    }
    progress_state ps = {.start = ts_now(), .tty = isatty(2)};
    if (rank == 0) r.progress = show_progress, r.progress_user = &ps;
    if (rank == 0) fprintf(stderr, "txt2img: %dx%d, %d steps, %s, cfg %g, seed %llu\n", r.width, r.height, r.steps, r.sampler,
            (double)r.cfg_scale, (unsigned long long)r.seed);
    txt2img_result out;
    if (txt2img_generate(p, &r, &out) < 0) { fprintf(stderr, "tessera txt2img: %s\n", ts_last_error()); goto done; }

    /* what reproduces each image: with -b N, its place in the batch (A1111's keys), which
     * --batch-pos or --from-png gives back */
    gen_parameters gp = {.prompt = (char *)r.prompt, .negative = (char *)(r.negative ? r.negative : ""),
                         .steps = r.steps, .cfg_scale = r.cfg_scale, .seed = (int64_t)r.seed, .width = r.width,
                         .height = r.height, .clip_skip = r.clip_skip,
                         .clip_skip_positive_only = r.clip_skip_positive_only, .truncate = r.truncate,
                         .guidance_rescale = r.guidance_rescale, .eta = r.eta, .batch_size = r.batch};
    snprintf(gp.sampler, sizeof gp.sampler, "%s", txt2img_a1111_sampler(r.sampler));
    if (strcmp(r.schedule, "karras") == 0) snprintf(gp.schedule, sizeof gp.schedule, "Karras");
    snprintf(gp.model, sizeof gp.model, "%s", label);
    status = 0;
    for (int i = 0; i < out.batch && !status && rank == 0; i++) {
        gp.batch_pos = r.batch_pos >= 0 ? r.batch_pos : i;
        char path[4096], *text = gen_parameters_format(&gp);
        /* one image of a batch, made alone, goes to -o itself (its number only through %d) */
        if (r.batch_pos >= 0 && !strstr(output, "%d")) snprintf(path, sizeof path, "%s", output);
        else output_name(output, gp.batch_pos + 1, path, sizeof path);
        if (image_png_write(path, out.rgb[i], out.width, out.height, text) < 0) {
            fprintf(stderr, "tessera txt2img: %s\n", ts_last_error());
            status = 1;
        } else {
            printf("%s\n", path);
        }
        free(text);
    }
    if (!status && save_latent && rank == 0) {
        tensor lt = tensor_view(out.latents, DT_F32, 4,
                                (const int64_t[]){out.batch, out.latent_channels, out.latent_height, out.latent_width});
        if (npy_save(save_latent, &lt) < 0) { fprintf(stderr, "tessera txt2img: %s\n", ts_last_error()); status = 1; }
        else printf("%s\n", save_latent);
    }
    if (rank == 0)
        fprintf(stderr, "txt2img: seed %llu; text %.2f s, sampling %.2f s, decode %.2f s\n", (unsigned long long)r.seed,
                out.seconds_text, out.seconds_sampling, out.seconds_decode);
    txt2img_result_free(&out);
done:
    tensor_free(&init);
    txt2img_destroy(&p);
    comm_destroy(&group);
    gen_parameters_clear(&from_png);
    return status;
}
