/* test_sampler_loop.c — final latents after 4 steps of diffusers' StableDiffusionPipeline with
 * every sampler, spacing, prediction type, CFG / guidance_rescale setting and seeding mode,
 * using the fake U-Net both sides implement (fixtures: tools/gen_sampler_fixtures.py ->
 * tests/fixtures/samplers/loops.json, loop_*.npy), mostly after 4 steps, some after 8-20.
 * Target: max abs error <= 1e-3. */
#include "tests/test.h"
#include "models/formats/model_files.h"
#include "models/diffusion/sample_loop.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The fake U-Net of the fixture script: out = 0.5 x + 0.2 tanh(x) + 0.3 (t / 1000) + ctx[b, c],
 * with rows [uncond; cond] under CFG and [cond] without. */
typedef struct {
    int n, channels;
    int64_t hw;
    float cond[8][4], uncond[8][4];
    int calls, max_batch;
} fake_unet;

static int fake_denoise(void *user, float *out, const float *x, int batch, float timestep) {
    fake_unet *f = user;
    f->calls++;
    if (batch > f->max_batch) f->max_batch = batch;
    if (batch != f->n && batch != 2 * f->n) return ts_fail("fake unet: batch %d", batch);
    float tt = timestep / 1000.0f;
    for (int b = 0; b < batch; b++) {
        const float *ctx = batch == f->n ? f->cond[b] : b < f->n ? f->uncond[b] : f->cond[b - f->n];
        for (int c = 0; c < f->channels; c++) {
            int64_t base = ((int64_t)b * f->channels + c) * f->hw;
            for (int64_t i = 0; i < f->hw; i++) {
                float v = x[base + i];
                out[base + i] = 0.5f * v + 0.2f * tanhf(v) + 0.3f * tt + ctx[c];
            }
        }
    }
    return 0;
}

static int count_steps(void *user, int step, int steps, float t) {
    (*(int *)user)++;
    return 0;
}

int main(void) {
    TEST_BEGIN();
    char *text = read_text_file(fixture_path("samplers/loops.json"), NULL);
    CHECK(text != NULL, "%s", ts_last_error());
    cJSON *root = text ? cJSON_Parse(text) : NULL;
    fake_unet f = {0};
    f.n = cJSON_GetObjectItem(root, "batch")->valueint;
    f.channels = cJSON_GetObjectItem(root, "channels")->valueint;
    int size = cJSON_GetObjectItem(root, "size")->valueint;
    f.hw = (int64_t)size * size;
    for (int b = 0; b < f.n; b++)
        for (int c = 0; c < f.channels; c++) {
            f.cond[b][c] = (float)cJSON_GetArrayItem(cJSON_GetArrayItem(cJSON_GetObjectItem(root, "cond"), b), c)->valuedouble;
            f.uncond[b][c] = (float)cJSON_GetArrayItem(cJSON_GetArrayItem(cJSON_GetObjectItem(root, "uncond"), b), c)->valuedouble;
        }
    const int64_t n = (int64_t)f.n * f.channels * f.hw;
    tensor shape;
    float *init = fixture_npy("samplers/loop_init_noise.npy", &shape);
    float *expected = fixture_npy("samplers/loop_expected.npy", &shape);
    CHECK(init && expected, "loop fixtures");
    if (!init || !expected) return TEST_END();

    /* --init-noise: the same latents through the .npy loader; a wrong shape is refused */
    float *loaded = NULL;
    CHECK_OK(sample_load_init_noise(fixture_path("samplers/loop_init_noise.npy"), f.n, f.channels, size, size, &loaded));
    CHECK(loaded && memcmp(loaded, init, sizeof(float) * n) == 0, "init noise loads unchanged");
    free(loaded);
    CHECK(sample_load_init_noise(fixture_path("samplers/loop_init_noise.npy"), 1, f.channels, size, size, &loaded) != 0 &&
          strstr(ts_last_error(), "expected float [1, 4, 8, 8]"), "wrong shape refused: %s", ts_last_error());

    float *latents = ts_malloc(sizeof(float) * n);
    const cJSON *c;
    int cases = 0;
    float worst = 0;
    char worst_what[256] = "";
    const char *names[5] = {"ddim", "euler", "euler_a", "dpm++2m", "lcm"};
    float worst_per[5] = {0};
    int cases_per[5] = {0};
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "cases")) {
        const char *sampler = cJSON_GetObjectItem(c, "sampler")->valuestring;
        const char *schedule = cJSON_GetObjectItem(c, "schedule")->valuestring;
        int index = cJSON_GetObjectItem(c, "index")->valueint;
        char *config = cJSON_PrintUnformatted(cJSON_GetObjectItem(c, "overrides"));
        char *full = cJSON_PrintUnformatted(cJSON_GetObjectItem(c, "config"));
        uint64_t seeds[8];
        int n_seeds = 0;
        const cJSON *sd;
        cJSON_ArrayForEach(sd, cJSON_GetObjectItem(c, "seeds")) seeds[n_seeds++] = (uint64_t)sd->valuedouble;
        bool given = cJSON_IsTrue(cJSON_GetObjectItem(c, "given_latents"));
        float w = (float)cJSON_GetObjectItem(c, "w")->valuedouble;
        float rescale = (float)cJSON_GetObjectItem(c, "rescale")->valuedouble;
        float eta = (float)cJSON_GetObjectItem(c, "eta")->valuedouble;
        int steps = cJSON_GetObjectItem(c, "steps")->valueint;
        char what[256];
        snprintf(what, sizeof what, "case %d: %s %s %s %d steps w=%g rescale=%g eta=%g %s, %d seed(s)", index,
                 sampler, schedule, config, steps, w, rescale, eta, given ? "given latents" : "seeded latents",
                 n_seeds);
        cases++;

        scheduler_config cfg;
        scheduler *s = NULL;
        if (scheduler_config_init(&cfg, sampler, schedule) != 0 || scheduler_config_parse(&cfg, full, what) != 0 ||
            !(s = scheduler_new(&cfg))) {
            CHECK(false, "%s: %s", what, ts_last_error());
        } else {
            cfg.eta = eta;
            scheduler_destroy(&s);
            s = scheduler_new(&cfg);
            int progressed = 0;
            f.calls = 0;
            f.max_batch = 0;
            sample_params p = {
                .batch = f.n, .channels = f.channels, .height = size, .width = size, .steps = steps,
                .guidance_scale = w, .guidance_rescale = rescale, .seeds = seeds, .n_seeds = n_seeds,
                .init_noise = given ? init : NULL, .denoise = fake_denoise, .denoise_user = &f,
                .progress = count_steps, .progress_user = &progressed,
            };
            CHECK(sample_loop_run(s, &p, latents) == 0, "%s: %s", what, ts_last_error());
            CHECK(f.calls == steps && progressed == steps, "%s: %d model calls, %d progress calls", what, f.calls,
                  progressed);
            CHECK(f.max_batch == (w > 1 ? 2 : 1) * f.n, "%s: model batch %d (one batched call per step)", what,
                  f.max_batch);
            const float *want = expected + (int64_t)index * n;
            float scale, d = test_max_abs_diff(latents, want, (size_t)n, &scale);
            if (d > worst) {
                worst = d;
                snprintf(worst_what, sizeof worst_what, "%s", what);
            }
            CHECK(d <= 5e-5f, "%s: max abs diff %.3g (latents up to %.3g)", what, d, scale);
            for (int k = 0; k < 5; k++)
                if (strcmp(sampler, names[k]) == 0) {
                    cases_per[k]++;
                    if (d > worst_per[k]) worst_per[k] = d;
                }
        }
        scheduler_destroy(&s);
        free(config);
        free(full);
    }
    CHECK(cases >= 30, "only %d loop cases", cases);
    for (int k = 0; k < 5; k++)
        printf("  %-8s %2d cases, worst max abs diff %.3g\n", names[k], cases_per[k], worst_per[k]);
    printf("sampler loops: %d cases, worst max abs diff %.3g (%s)\n", cases, worst, worst_what);

    free(latents);
    free(init);
    free(expected);
    cJSON_Delete(root);
    free(text);
    return TEST_END();
}
