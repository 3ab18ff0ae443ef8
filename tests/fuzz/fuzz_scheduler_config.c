/*
 * fuzz_scheduler_config.c — libFuzzer target: any bytes as a scheduler_config.json, for each
 * sampler. The first byte picks the sampler and the step count; the rest is the JSON. A config
 * that parses must give a scheduler whose timesteps, if set_timesteps accepts the step count,
 * lie inside the training range, and a few steps on a tiny sample must not crash.
 */
#include "models/diffusion/scheduler.h"

#include <stdlib.h>
#include <string.h>

static const char *const samplers[] = {"ddim", "euler", "euler_a", "dpm++2m", "lcm"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const char *name = samplers[data[0] % 5];
    int steps = 1 + (data[0] >> 3) % 30;
    char *json = malloc(size);
    memcpy(json, data + 1, size - 1);
    json[size - 1] = '\0';
    scheduler_config cfg;
    if (scheduler_config_init(&cfg, name, (data[0] & 4) ? "karras" : NULL) != 0 &&
        scheduler_config_init(&cfg, name, NULL) != 0)
        abort();
    if (scheduler_config_parse(&cfg, json, "fuzz") == 0 && cfg.num_train_timesteps <= 5000) {
        cfg.eta = 0.5f;
        scheduler *s = scheduler_new(&cfg);
        if (s && scheduler_set_timesteps(s, steps) == 0) {
            for (int i = 0; i < scheduler_steps(s); i++) {
                float t = scheduler_timestep(s, i);
                if (!(t >= 0 && t <= cfg.num_train_timesteps - 1)) abort();
            }
            torch_rng *g = torch_rng_new(1);
            float x[32] = {0}, e[32];
            for (int i = 0; i < 32; i++) e[i] = (float)i / 32.0f - 0.5f;
            for (int i = 0; i < scheduler_steps(s) && i < 3; i++) {
                scheduler_scale_model_input(s, x, x, 32);
                if (scheduler_step(s, e, x, 32, &g, 1) != 0) break;
            }
            torch_rng_destroy(&g);
        }
        scheduler_destroy(&s);
    }
    free(json);
    return 0;
}
