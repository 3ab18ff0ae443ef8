/* test_scheduler_pipeline_config.c — a sampler configured from scheduler_config.json as a
 * diffusers pipeline configures it: keys missing from the file take the defaults of the
 * sampler's own class, then StableDiffusionPipeline's fix-ups (steps_offset 1, clip_sample
 * false) for SD 1.x/2.x and none for SDXL. For every sampler x base file (the published
 * SD 1.5 / SD 2.1 / SDXL files and each class's complete config) x the file missing each of
 * its keys x pipeline family: the settings, the timesteps, and the final latents of 4 steps
 * of the real pipeline with a fake U-Net (fixtures: tools/gen_scheduler_config_fixtures.py ->
 * tests/fixtures/samplers/pipeline_configs.json). Also the published files, read as
 * checkpoints without a file are configured. */
#include "tests/test.h"
#include "models/formats/model_files.h"
#include "models/diffusion/sample_loop.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The fake U-Net of the fixture script: out = 0.5 x + 0.2 tanh(x) + 0.3 (t / 1000) + ctx[b, c],
 * rows [uncond; cond]. */
typedef struct {
    int n, channels;
    int64_t hw;
    float cond[2][4], uncond[2][4];
} fake_unet;

static int fake_denoise(void *user, float *out, const float *x, int batch, float timestep) {
    fake_unet *f = user;
    if (batch != 2 * f->n) return ts_fail("fake unet: batch %d", batch);
    float tt = timestep / 1000.0f;
    for (int b = 0; b < batch; b++) {
        const float *ctx = b < f->n ? f->uncond[b] : f->cond[b - f->n];
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

/* Each setting diffusers' scheduler ends up with against ours; returns how many differ. */
static int compare_settings(const scheduler_config *c, const cJSON *eff, const char *what) {
    static const char *const betas[] = {"scaled_linear", "linear", "squaredcos_cap_v2"};
    static const char *const preds[] = {"epsilon", "v_prediction"};
    static const char *const spacings[] = {"leading", "trailing", "linspace"};
    int bad = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, eff) {
        const char *k = v->string;
        bool ok = true;
        double d = cJSON_IsNumber(v) ? v->valuedouble : 0;
        bool b = cJSON_IsTrue(v);
        if (!strcmp(k, "num_train_timesteps")) ok = c->num_train_timesteps == (int)d;
        else if (!strcmp(k, "beta_start")) ok = c->beta_start == d;
        else if (!strcmp(k, "beta_end")) ok = c->beta_end == d;
        else if (!strcmp(k, "beta_schedule")) ok = !strcmp(betas[c->beta_schedule], v->valuestring);
        else if (!strcmp(k, "prediction_type")) ok = !strcmp(preds[c->prediction], v->valuestring);
        else if (!strcmp(k, "timestep_spacing")) ok = !strcmp(spacings[c->spacing], v->valuestring);
        else if (!strcmp(k, "steps_offset")) ok = c->steps_offset == (int)d;
        else if (!strcmp(k, "set_alpha_to_one")) ok = c->set_alpha_to_one == b;
        else if (!strcmp(k, "clip_sample")) ok = c->clip_sample == b;
        else if (!strcmp(k, "clip_sample_range")) ok = c->clip_sample_range == (float)d;
        else if (!strcmp(k, "use_karras_sigmas")) ok = c->use_karras_sigmas == b;
        else if (!strcmp(k, "final_sigmas_type")) ok = c->final_sigmas_zero == !strcmp(v->valuestring, "zero");
        else if (!strcmp(k, "lower_order_final")) ok = c->lower_order_final == b;
        else if (!strcmp(k, "euler_at_final")) ok = c->euler_at_final == b;
        else if (!strcmp(k, "original_inference_steps")) ok = c->original_inference_steps == (int)d;
        else if (!strcmp(k, "timestep_scaling")) ok = c->timestep_scaling == (float)d;
        else if (!strcmp(k, "rescale_betas_zero_snr")) ok = c->rescale_betas_zero_snr == b;
        else if (!strcmp(k, "sigma_min")) ok = c->sigma_min == (cJSON_IsNull(v) ? 0 : d);
        else if (!strcmp(k, "sigma_max")) ok = c->sigma_max == (cJSON_IsNull(v) ? 0 : d);
        else continue;
        if (!ok) {
            char *s = cJSON_PrintUnformatted(v);
            CHECK(false, "%s: %s is %s in diffusers, not ours", what, k, s);
            free(s);
            bad++;
        }
    }
    return bad;
}

/* A checkpoint without scheduler_config.json is configured from its family's published file:
 * the same as reading that file. */
static void check_published_fallback(void) {
    const char *samplers[] = {"ddim", "euler", "euler_a", "dpm++2m", "lcm"};
    for (int i = 0; i < 5; i++)
        for (int pl = 0; pl < 2; pl++) {
            const char *file = pl ? "samplers/published/sdxl_scheduler_config.json"
                                  : "samplers/published/sd15_scheduler_config.json";
            char *text = read_text_file(fixture_path(file), NULL);
            CHECK(text != NULL, "%s", ts_last_error());
            scheduler_config from_file, fallback;
            CHECK_OK(scheduler_config_for_pipeline(&from_file, samplers[i], NULL, text, file, (scheduler_pipeline)pl));
            CHECK_OK(scheduler_config_for_pipeline(&fallback, samplers[i], NULL, NULL, NULL, (scheduler_pipeline)pl));
            CHECK(memcmp(&from_file, &fallback, sizeof from_file) == 0, "%s, no file: configured as %s", samplers[i],
                  file);
            free(text);
        }
}

int main(void) {
    TEST_BEGIN();
    check_published_fallback();

    char *text = read_text_file(fixture_path("samplers/pipeline_configs.json"), NULL);
    CHECK(text != NULL, "%s", ts_last_error());
    cJSON *root = text ? cJSON_Parse(text) : NULL;
    if (!root) return TEST_END();
    fake_unet f = {0};
    f.n = cJSON_GetObjectItem(root, "batch")->valueint;
    f.channels = cJSON_GetObjectItem(root, "channels")->valueint;
    int size = cJSON_GetObjectItem(root, "size")->valueint;
    int steps = cJSON_GetObjectItem(root, "steps")->valueint;
    float w = (float)cJSON_GetObjectItem(root, "w")->valuedouble;
    uint64_t seed = (uint64_t)cJSON_GetObjectItem(root, "seed")->valuedouble;
    f.hw = (int64_t)size * size;
    for (int b = 0; b < f.n; b++)
        for (int c = 0; c < f.channels; c++) {
            f.cond[b][c] = (float)cJSON_GetArrayItem(cJSON_GetArrayItem(cJSON_GetObjectItem(root, "cond"), b), c)->valuedouble;
            f.uncond[b][c] = (float)cJSON_GetArrayItem(cJSON_GetArrayItem(cJSON_GetObjectItem(root, "uncond"), b), c)->valuedouble;
        }
    const int64_t n = (int64_t)f.n * f.channels * f.hw;
    tensor shape;
    float *init = fixture_npy("samplers/pipeline_configs_init_noise.npy", &shape);
    float *expected = fixture_npy("samplers/pipeline_configs_expected.npy", &shape);
    CHECK(init && expected, "fixtures");
    if (!init || !expected) return TEST_END();
    float *latents = ts_malloc(sizeof(float) * n);

    int cases = 0, settings_bad = 0, timesteps_bad = 0, latents_bad = 0;
    float worst = 0;
    char worst_what[256] = "";
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "cases")) {
        const char *sampler = cJSON_GetObjectItem(c, "sampler")->valuestring;
        const char *pipeline = cJSON_GetObjectItem(c, "pipeline")->valuestring;
        const char *base = cJSON_GetObjectItem(c, "base")->valuestring;
        const char *missing = cJSON_GetObjectItem(c, "missing")->valuestring;
        const char *config = cJSON_GetObjectItem(c, "config")->valuestring;
        int index = cJSON_GetObjectItem(c, "index")->valueint;
        char what[256];
        snprintf(what, sizeof what, "case %d: %s, %s file without %s, %s pipeline", index, sampler, base,
                 missing[0] ? missing : "(nothing)", pipeline);
        cases++;
        scheduler_config cfg;
        scheduler_pipeline pl = !strcmp(pipeline, "sdxl") ? SCHEDULER_PIPELINE_SDXL : SCHEDULER_PIPELINE_SD;
        scheduler *s = NULL;
        if (scheduler_config_for_pipeline(&cfg, sampler, "discrete", config, what, pl) != 0 ||
            !(s = scheduler_new(&cfg))) {
            CHECK(false, "%s: %s", what, ts_last_error());
            continue;
        }
        settings_bad += compare_settings(&cfg, cJSON_GetObjectItem(c, "effective"), what) > 0;
        sample_params p = {.batch = f.n, .channels = f.channels, .height = size, .width = size, .steps = steps,
                           .guidance_scale = w, .seeds = &seed, .n_seeds = 1, .init_noise = init,
                           .denoise = fake_denoise, .denoise_user = &f};
        if (sample_loop_run(s, &p, latents) != 0) {
            CHECK(false, "%s: %s", what, ts_last_error());
            scheduler_destroy(&s);
            continue;
        }
        const cJSON *ts = cJSON_GetObjectItem(c, "timesteps");
        bool same_t = cJSON_GetArraySize(ts) == scheduler_steps(s);
        for (int i = 0; same_t && i < scheduler_steps(s); i++)
            same_t = fabs(cJSON_GetArrayItem(ts, i)->valuedouble - scheduler_timestep(s, i)) <= 1e-3;
        CHECK(same_t, "%s: timesteps differ from diffusers' (first %g, diffusers %g)", what, scheduler_timestep(s, 0),
              cJSON_GetArrayItem(ts, 0)->valuedouble);
        timesteps_bad += !same_t;
        float scale, d = test_max_abs_diff(latents, expected + (int64_t)index * n, (size_t)n, &scale);
        if (d > worst) worst = d, snprintf(worst_what, sizeof worst_what, "%s, latents up to %.3g", what, scale);
        /* achieved: 1.53e-5 at worst (Euler over DDIM's default linear betas, latents up to 87) */
        CHECK(d <= 1.5e-4f, "%s: max abs diff %.3g (latents up to %.3g)", what, d, scale);
        latents_bad += !(d <= 1.5e-4f);
        scheduler_destroy(&s);
    }
    CHECK(cases >= 500, "only %d cases", cases);
    printf("pipeline configs: %d cases; settings differ in %d, timesteps in %d, latents in %d; worst max abs diff "
           "%.3g (%s)\n", cases, settings_bad, timesteps_bad, latents_bad, worst, worst_what);
    free(latents);
    free(init);
    free(expected);
    cJSON_Delete(root);
    free(text);
    return TEST_END();
}
