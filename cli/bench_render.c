/*
 * bench_render.c — `tessera bench render`: render-worker throughput, the worker's own code
 * path (backend_render_many: batches, the text / U-Net / decode pipeline, PNG encoding).
 *
 *   tessera bench render -m SD15_FOLDER [--batch 8] [--res 256] [--steps 2] [--records 16]
 *                        [--only one|own|shared] [--threads N]
 *
 * SD15_FOLDER is a full-size SD 1.5 checkpoint; tools/make_bench_sd15.py writes one with
 * random weights (F16), so nothing is downloaded. The same records (different prompts,
 * negatives and seeds) are rendered three times in one run: one record per call (batch 1),
 * `--batch` records per call with each record's U-Net rows on their own (the default: bytes
 * equal to batch 1), and `--batch` records sharing each U-Net call (workers.unet_shared).
 * Printed per run: images/s, the ratio to batch 1, the share of the wall time the U-Net is
 * busy (also until it sampled the last batch: after that only the last decodes are left) and
 * the text and decode stages, then how the shared run's pixels differ from batch 1,
 * and where the memory goes (file-backed RSS = mapped weights, anonymous RSS, peak).
 * --memory instead runs one whole txt2img_generate (as `tessera txt2img` does; res default
 * 256 there too, pass --res 512) and prints file-backed and anonymous RSS after loading, at
 * the end of sampling and after the decode, with the peak so far.
 */
#include "cli/bench.h"
#include "models/diffusion/txt2img.h"
#include "models/formats/image_png.h"
#include "worker/backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

/* A field of /proc/self/status (VmHWM, RssAnon, RssFile ...) in MiB. */
static double status_mib(const char *field) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    double kb = 0;
    size_t n = strlen(field);
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, field, n) && line[n] == ':') kb = atof(line + n + 1);
    if (f) fclose(f);
    return kb / 1024;
}

typedef struct {
    uint8_t **png;
    size_t *size;
    int failed;
} collected;

static void keep(void *user, void *tag, int i, render_output *out, const char *error) {
    (void)tag;
    collected *c = user;
    if (error) { fprintf(stderr, "bench render: record %d: %s\n", i, error); c->failed++; return; }
    c->png[i] = out->bytes, c->size[i] = out->size;
    out->bytes = NULL;
}

static void collected_free(collected *c, int n) {
    for (int i = 0; i < n; i++) free(c->png[i]);
    free(c->png), free(c->size);
}

/* CPU seconds of this process so far: on a shared machine images per CPU-second is the
 * steadier figure (the wall time includes waiting for a core). */
static double cpu_seconds(void) {
    struct rusage r;
    getrusage(RUSAGE_SELF, &r);
    return (double)r.ru_utime.tv_sec + r.ru_utime.tv_usec * 1e-6 + (double)r.ru_stime.tv_sec + r.ru_stime.tv_usec * 1e-6;
}

/* Starts a new peak (VmHWM) for this process. */
static void reset_peak(void) {
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (f) fputs("5", f), fclose(f);
}

typedef struct { double file, anon, peak; } rss_at;

static rss_at rss_now(void) { return (rss_at){status_mib("RssFile"), status_mib("RssAnon"), status_mib("VmHWM")}; }

/* After the last step (steps count from 1): what sampling holds, before txt2img_generate
 * lets the U-Net's weight pages go. */
static int memory_step(void *user, int step, int steps) {
    if (step == steps) *(rss_at *)user = rss_now();
    return 0;
}

/* --memory: one whole txt2img_generate (what `tessera txt2img` runs) and where its memory goes. */
static int bench_memory(const char *model, int res, int steps) {
    reset_peak();
    txt2img *p = txt2img_load(&(txt2img_options){.model = model});
    if (!p) { fprintf(stderr, "bench render: %s\n", ts_last_error()); return 1; }
    rss_at load = rss_now(), sampling = {0};
    txt2img_request r = txt2img_request_defaults();
    r.prompt = "a photo of a cat", r.seed = 1, r.steps = steps, r.width = r.height = res;
    r.progress = memory_step, r.progress_user = &sampling;
    txt2img_result out;
    double t0 = ts_now();
    int rc = txt2img_generate(p, &r, &out);
    rss_at decode = rss_now();
    if (rc < 0) fprintf(stderr, "bench render: %s\n", ts_last_error());
    else
        printf("memory, one txt2img %dx%d, %d step(s), untiled VAE, %.1f s (MiB; file = memory-mapped weights):\n"
               "  after load      file %6.0f  anon %6.0f  peak so far %6.0f\n"
               "  end of sampling file %6.0f  anon %6.0f  peak so far %6.0f (U-Net weights and activations)\n"
               "  after decode    file %6.0f  anon %6.0f  peak of the run %6.0f\n",
               res, res, steps, ts_now() - t0, load.file, load.anon, load.peak, sampling.file, sampling.anon,
               sampling.peak, decode.file, decode.anon, decode.peak);
    txt2img_result_free(&out);
    txt2img_destroy(&p);
    return rc < 0;
}

static int usage(int status) {
    fprintf(status ? stderr : stdout,
            "usage: tessera bench render -m SD15_FOLDER [--batch N] [--res PIXELS] [--steps N] [--records N]\n"
            "                            [--only one|own|shared]\n"
            "       tessera bench render -m SD15_FOLDER --memory [--res 512] [--steps 1]\n"
            "  SD15_FOLDER: e.g. made by tools/make_bench_sd15.py (random full-size SD 1.5 weights)\n"
            "  --only: just one of the three runs (batch 1, batch N with own U-Net rows, shared U-Net\n"
            "          calls), e.g. the busy share of a long job; no ratios or comparisons then\n");
    return status;
}

int bench_render(int argc, char **argv) {
    const char *model = NULL;
    int batch = 8, res = 256, steps = 2, records = 16, memory = 0, only = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) return usage(0);
        if (!strcmp(a, "--memory")) { memory = 1; continue; }
        if (i + 1 >= argc) return usage(2);
        const char *v = argv[++i];
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--batch")) batch = atoi(v);
        else if (!strcmp(a, "--res")) res = atoi(v);
        else if (!strcmp(a, "--steps")) steps = atoi(v);
        else if (!strcmp(a, "--records")) records = atoi(v);
        else if (!strcmp(a, "--only")) {
            only = !strcmp(v, "one") ? 0 : !strcmp(v, "own") ? 1 : !strcmp(v, "shared") ? 2 : -1;
            if (only < 0) return usage(2);
        } else return usage(2);
    }
    if (!model) return usage(2);
    if (memory) return bench_memory(model, res, steps);
    if (batch < 1 || batch > 64 || res < 64 || res > 2048 || res % 64 || steps < 1 || records < 1 || records > 4096) {
        fprintf(stderr, "bench render: --batch 1..64, --res a multiple of 64 in 64..2048, --steps >= 1, --records 1..4096\n");
        return 2;
    }
    double t0 = ts_now();
    ts_renderer *r = backend_renderer_new("model", model, NULL);
    if (!r) { fprintf(stderr, "bench render: %s\n", ts_last_error()); return 1; }
    printf("render: %s, %dx%d, %d steps, cfg 7.5, euler_a, %d records (loaded in %.1f s)\n", model, res, res, steps,
           records, ts_now() - t0);
    printf("memory after load: file-backed RSS (mapped weights) %.0f MiB, anonymous %.0f MiB\n", status_mib("RssFile"),
           status_mib("RssAnon"));
    fflush(stdout);

    render_request *reqs = ts_calloc((size_t)records, sizeof *reqs);
    char (*prompts)[96] = ts_calloc((size_t)records, sizeof *prompts);
    char (*negatives)[32] = ts_calloc((size_t)records, sizeof *negatives);
    for (int i = 0; i < records; i++) {
        snprintf(prompts[i], sizeof prompts[i], "a photo of thing %d, %s", i, i % 2 ? "at night" : "in the snow, detailed");
        snprintf(negatives[i], sizeof negatives[i], "%s", i % 3 ? "blurry" : "");
        reqs[i] = (render_request){.prompt = prompts[i], .negative = negatives[i], .sampler = "euler_a",
                                   .seed = 1000 + (uint64_t)i, .width = res, .height = res, .steps = steps, .cfg = 7.5f};
    }
    struct { const char *name; render_batching how; } runs[3] = {
        {"batch 1", {.batch = 1}}, {"batch N, own U-Net rows", {.batch = batch}}, {"batch N, shared U-Net", {.batch = batch, .unet_shared = true}}};
    collected got[3] = {{0}};
    double base = 0, base_cpu = 0;
    int rc = 0;
    for (int k = 0; k < 3 && rc == 0; k++) {
        if (only >= 0 && k != only) continue;
        got[k] = (collected){ts_calloc((size_t)records, sizeof(uint8_t *)), ts_calloc((size_t)records, sizeof(size_t)), 0};
        render_stats st;
        double c0 = cpu_seconds();
        if (backend_render_many(r, reqs, records, &runs[k].how, keep, &got[k], &st) < 0 || got[k].failed) {
            fprintf(stderr, "bench render: %s: %s\n", runs[k].name, got[k].failed ? "records failed" : ts_last_error());
            rc = 1;
            break;
        }
        double ips = records / st.wall, ipc = records / (cpu_seconds() - c0);
        if (k == 0) base = ips, base_cpu = ipc;
        char wall_ratio[32] = "", cpu_ratio[32] = "";     /* none without the batch-1 run (--only) */
        if (base > 0) {
            snprintf(wall_ratio, sizeof wall_ratio, " (%.2fx batch 1)", ips / base);
            snprintf(cpu_ratio, sizeof cpu_ratio, " (%.2fx)", ipc / base_cpu);
        }
        /* the U-Net's share until it sampled the last batch tells whether it ever waited on the
         * other stages; after that only the last batch's decodes are left */
        printf("%-26s batch %2d: %.4f images/s%s, %.4f images/CPU-s%s, %.1f s; busy: U-Net %.1f %% "
               "(%.1f %% until its last batch), text %.1f %%, decode+PNG %.1f %%\n",
               runs[k].name, runs[k].how.batch, ips, wall_ratio, ipc, cpu_ratio, st.wall,
               100 * st.unet_busy / st.wall, st.unet_end > 0 ? 100 * st.unet_busy / st.unet_end : 0.0,
               100 * st.text_busy / st.wall, 100 * st.decode_busy / st.wall);
        fflush(stdout);   /* long runs: each line when it is known */
    }
    if (rc == 0 && only < 0) {
        int same = 0;
        for (int i = 0; i < records; i++)
            same += got[1].size[i] == got[0].size[i] && !memcmp(got[1].png[i], got[0].png[i], got[0].size[i]);
        printf("own U-Net rows: %d of %d PNGs byte-identical to batch 1\n", same, records);
        /* the shared run's pixels against batch 1 */
        size_t values = 0, within = 0, identical = 0;
        int maxd = 0, same_png = 0;
        for (int i = 0; i < records && rc == 0; i++) {
            uint8_t *a = NULL, *b = NULL;
            int wa, ha, wb, hb;
            same_png += got[2].size[i] == got[0].size[i] && !memcmp(got[2].png[i], got[0].png[i], got[0].size[i]);
            if (image_png_decode(got[0].png[i], got[0].size[i], "batch 1", &a, &wa, &ha, NULL) < 0 ||
                image_png_decode(got[2].png[i], got[2].size[i], "shared", &b, &wb, &hb, NULL) < 0) {
                fprintf(stderr, "bench render: %s\n", ts_last_error());
                rc = 1;
            } else {
                for (size_t j = 0; j < (size_t)wa * ha * 3; j++) {
                    int d = abs((int)a[j] - (int)b[j]);
                    values++, within += d <= 1, identical += d == 0;
                    if (d > maxd) maxd = d;
                }
            }
            free(a), free(b);
        }
        if (rc == 0)
            printf("shared U-Net vs batch 1: %d of %d PNGs byte-identical; pixel values equal %.3f %%, within 1/255 %.3f %%, "
                   "max difference %d/255\n", same_png, records, 100.0 * identical / values, 100.0 * within / values, maxd);
    }
    printf("memory: peak RSS %.0f MiB; now file-backed (mapped weights) %.0f MiB, anonymous %.0f MiB\n",
           status_mib("VmHWM"), status_mib("RssFile"), status_mib("RssAnon"));
    for (int k = 0; k < 3; k++)
        if (got[k].png) collected_free(&got[k], records);
    free(reqs), free(prompts), free(negatives);
    backend_renderer_destroy(&r);
    return rc;
}
