/* test_sampler_schedules.c — alphas_cumprod, timesteps, sigmas and init_noise_sigma against
 * diffusers' set_timesteps for every sampler, spacing and Karras option at many step counts
 * (fixtures: tools/gen_sampler_fixtures.py -> tests/fixtures/samplers/schedules.json). */
#include "tests/test.h"
#include "models/formats/model_files.h"
#include "models/diffusion/scheduler.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int main(void) {
    TEST_BEGIN();
    scheduler_config cfg;
    /* SD's training schedule: the one SD 1.5's published scheduler_config.json gives */
    CHECK_OK(scheduler_config_for_pipeline(&cfg, "ddim", NULL, NULL, NULL, SCHEDULER_PIPELINE_SD));
    scheduler *s = scheduler_new(&cfg);
    tensor shape;
    float *want_ac = fixture_npy("samplers/alphas_cumprod.npy", &shape);
    CHECK(want_ac && tensor_numel(&shape) == 1000, "alphas_cumprod fixture");
    if (want_ac) {
        float scale, worst = test_max_abs_diff(scheduler_alphas_cumprod(s), want_ac, 1000, &scale);
        int bits = 0;
        for (int i = 0; i < 1000; i++) bits += scheduler_alphas_cumprod(s)[i] != want_ac[i];
        printf("alphas_cumprod: max abs diff %.3g, %d of 1000 differ\n", worst, bits);
        CHECK(bits == 0, "alphas_cumprod: %d values differ from torch's (max abs diff %g)", bits, worst);
    }
    free(want_ac);
    scheduler_destroy(&s);

    char *text = read_text_file(fixture_path("samplers/schedules.json"), NULL);
    CHECK(text != NULL, "%s", ts_last_error());
    cJSON *root = text ? cJSON_Parse(text) : NULL;
    const cJSON *e;
    int entries = 0;
    double worst_t = 0, worst_sigma = 0;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(root, "entries")) {
        const char *sampler = cJSON_GetObjectItem(e, "sampler")->valuestring;
        const char *schedule = cJSON_GetObjectItem(e, "schedule")->valuestring;
        int steps = cJSON_GetObjectItem(e, "steps")->valueint;
        char *config = cJSON_PrintUnformatted(cJSON_GetObjectItem(e, "config"));
        char what[160];
        snprintf(what, sizeof what, "%s %s %d steps %s", sampler, schedule, steps, config);
        entries++;
        if (scheduler_config_init(&cfg, sampler, schedule) != 0 || scheduler_config_parse(&cfg, config, what) != 0 ||
            !(s = scheduler_new(&cfg)) || scheduler_set_timesteps(s, steps) != 0) {
            CHECK(false, "%s: %s", what, ts_last_error());
            free(config);
            scheduler_destroy(&s);
            continue;
        }
        const cJSON *ts = cJSON_GetObjectItem(e, "timesteps");
        CHECK(scheduler_steps(s) == cJSON_GetArraySize(ts), "%s: %d timesteps, diffusers has %d", what,
              scheduler_steps(s), cJSON_GetArraySize(ts));
        bool fractional = strcmp(sampler, "euler") == 0 && strcmp(schedule, "karras") == 0;
        for (int i = 0; i < scheduler_steps(s) && i < cJSON_GetArraySize(ts); i++) {
            double want = cJSON_GetArrayItem(ts, i)->valuedouble, got = scheduler_timestep(s, i);
            double d = fabs(got - want);
            if (d > worst_t) worst_t = d;
            CHECK(fractional ? d <= 5e-4 : d == 0, "%s: timestep[%d] %.6f, diffusers %.6f", what, i, got, want);
        }
        const cJSON *sig = cJSON_GetObjectItem(e, "sigmas");
        if (cJSON_IsArray(sig)) {
            CHECK(cJSON_GetArraySize(sig) == scheduler_steps(s) + 1, "%s: sigma count", what);
            for (int i = 0; i <= scheduler_steps(s) && i < cJSON_GetArraySize(sig); i++) {
                double want = cJSON_GetArrayItem(sig, i)->valuedouble, got = scheduler_sigma(s, i);
                double rel = fabs(got - want) / (want > 1 ? want : 1);
                if (rel > worst_sigma) worst_sigma = rel;
                CHECK(rel <= 5e-7, "%s: sigma[%d] %.8g, diffusers %.8g", what, i, got, want);
            }
        } else {
            CHECK(scheduler_sigma(s, 0) < 0, "%s: has no sigmas", what);
        }
        double want_ins = cJSON_GetObjectItem(e, "init_noise_sigma")->valuedouble;
        CHECK(fabs(scheduler_init_noise_sigma(s) - want_ins) <= 5e-7 * want_ins, "%s: init_noise_sigma %.8g vs %.8g",
              what, scheduler_init_noise_sigma(s), want_ins);
        free(config);
        scheduler_destroy(&s);
    }
    CHECK(entries > 100, "only %d schedule entries", entries);
    printf("schedules: %d entries; worst timestep diff %.3g, worst sigma rel diff %.3g\n", entries, worst_t,
           worst_sigma);
    cJSON_Delete(root);
    free(text);
    return TEST_END();
}
