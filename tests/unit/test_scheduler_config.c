/* test_scheduler_config.c — sampler/schedule names, diffusers defaults, and scheduler_config.json
 * parsing: what is read, what is refused, and that errors say where. */
#include "tests/test.h"
#include "models/diffusion/guidance.h"
#include "models/diffusion/scheduler.h"

#include <math.h>
#include <string.h>

int main(void) {
    TEST_BEGIN();
    scheduler_config cfg;
    CHECK_OK(scheduler_config_init(&cfg, "ddim", NULL));
    /* DDIMScheduler()'s own defaults (diffusers 0.42: tools/gen_scheduler_config_fixtures.py
     * checks every class against diffusers) */
    CHECK(cfg.spacing == SPACING_LEADING && cfg.steps_offset == 0 && cfg.set_alpha_to_one && cfg.clip_sample &&
          cfg.beta_schedule == BETAS_LINEAR, "ddim defaults");
    scheduler_config_apply_pipeline(&cfg, SCHEDULER_PIPELINE_SDXL);
    CHECK(cfg.steps_offset == 0 && cfg.clip_sample, "StableDiffusionXLPipeline changes nothing");
    scheduler_config_apply_pipeline(&cfg, SCHEDULER_PIPELINE_SD);
    CHECK(cfg.steps_offset == 1 && !cfg.clip_sample, "StableDiffusionPipeline: steps_offset 1, clip_sample false");
    CHECK_OK(scheduler_config_init(&cfg, "euler", "karras"));
    CHECK(cfg.use_karras_sigmas && cfg.spacing == SPACING_LINSPACE, "euler karras defaults");
    CHECK_OK(scheduler_config_init(&cfg, "dpmpp_2m", "discrete"));
    CHECK(cfg.sampler == SAMPLER_DPMPP_2M, "dpmpp_2m alias");

    CHECK(scheduler_config_init(&cfg, "heun", NULL) != 0 && strstr(ts_last_error(), "heun"), "unknown sampler named");

    /* diffusers writes Python's JSON: "lambda_min_clipped": -Infinity (tools/gen_config_fixtures.py) */
    CHECK_OK(scheduler_config_init(&cfg, "dpm++2m", NULL));
    CHECK_OK(scheduler_config_load(&cfg, fixture_path("samplers/dpm_scheduler_config_diffusers.json")));
    CHECK(cfg.use_karras_sigmas, "use_karras_sigmas read from the diffusers-written file");
    CHECK(scheduler_config_init(&cfg, "euler_a", "karras") != 0 && strstr(ts_last_error(), "karras"),
          "euler_a has no karras in diffusers");
    CHECK(scheduler_config_init(&cfg, "euler", "exponential") != 0, "unknown schedule");

    /* SDXL's scheduler_config.json */
    CHECK_OK(scheduler_config_init(&cfg, "dpm++2m", NULL));
    CHECK_OK(scheduler_config_parse(&cfg,
        "{\"_class_name\": \"EulerDiscreteScheduler\", \"beta_end\": 0.012, \"beta_schedule\": \"scaled_linear\","
        " \"beta_start\": 0.00085, \"interpolation_type\": \"linear\", \"num_train_timesteps\": 1000,"
        " \"prediction_type\": \"epsilon\", \"sample_max_value\": 1.0, \"set_alpha_to_one\": false,"
        " \"skip_prk_steps\": true, \"steps_offset\": 1, \"timestep_spacing\": \"leading\", \"trained_betas\": null,"
        " \"use_karras_sigmas\": false}", "sdxl"));
    CHECK(cfg.spacing == SPACING_LEADING && !cfg.use_karras_sigmas, "sdxl config read");
    CHECK_OK(scheduler_config_parse(&cfg, "{\"prediction_type\": \"v_prediction\", \"use_karras_sigmas\": true}", "x"));
    CHECK(cfg.prediction == PREDICT_V && cfg.use_karras_sigmas, "v prediction, karras from the file");

    CHECK(scheduler_config_parse(&cfg, "{\"prediction_type\": \"sample\"}", "cfg.json") != 0 &&
          strstr(ts_last_error(), "cfg.json") && strstr(ts_last_error(), "prediction_type"), "unsupported value");
    CHECK(scheduler_config_parse(&cfg, "{\"thresholding\": true}", "cfg.json") != 0, "thresholding refused");
    CHECK(scheduler_config_parse(&cfg, "{\"trained_betas\": [0.1, 0.2]}", "cfg.json") != 0, "trained_betas refused");
    CHECK(scheduler_config_parse(&cfg, "{\"steps_offset\": 1.5}", "cfg.json") != 0, "non-integer refused");
    CHECK(scheduler_config_parse(&cfg, "{\"beta_start\": \"x\"}", "cfg.json") != 0, "wrong type refused");
    CHECK(scheduler_config_parse(&cfg, "{\"algorithm_type\": \"sde-dpmsolver++\"}", "c") != 0, "sde refused");
    CHECK(scheduler_config_parse(&cfg, "{\"solver_type\": \"heun\"}", "c") != 0, "heun solver refused");
    /* a key the class does not have is ignored: Euler ancestral has no final_sigmas_type */
    CHECK_OK(scheduler_config_init(&cfg, "euler_a", NULL));
    CHECK_OK(scheduler_config_parse(&cfg, "{\"final_sigmas_type\": \"sigma_min\"}", "c"));
    CHECK(cfg.final_sigmas_zero, "euler_a ignores final_sigmas_type");
    CHECK_OK(scheduler_config_init(&cfg, "dpm++2m", NULL));
    CHECK(scheduler_config_parse(&cfg, "{not json", "cfg.json") != 0 && strstr(ts_last_error(), "cfg.json"),
          "bad JSON named");
    CHECK(scheduler_config_load(&cfg, "/nonexistent/scheduler_config.json") != 0, "missing file");

    /* set_timesteps bounds */
    CHECK_OK(scheduler_config_init(&cfg, "lcm", NULL));
    scheduler *s = scheduler_new(&cfg);
    CHECK(scheduler_set_timesteps(s, 51) != 0, "lcm refuses more steps than original_inference_steps");
    CHECK(scheduler_set_timesteps(s, 0) != 0, "zero steps refused");
    CHECK_OK(scheduler_set_timesteps(s, 4));
    float x[16] = {0}, e[16] = {0};
    CHECK(scheduler_step(s, e, x, 16, NULL, 0) != 0, "lcm without a generator is refused");
    scheduler_destroy(&s);
    CHECK(s == NULL, "destroy clears the pointer");

    /* guidance: diffusers' form equals the (1 + w') eps_c - w' eps_u form with w' = w - 1 */
    float u[3] = {0.1f, -0.4f, 2.0f}, c[3] = {0.3f, 0.2f, -1.0f}, out[3];
    guidance_combine(out, u, c, 3, 7.5f);
    for (int i = 0; i < 3; i++) CHECK(fabsf(out[i] - (7.5f * c[i] - 6.5f * u[i])) < 1e-5f, "cfg form %d", i);
    guidance_combine(out, u, c, 3, 1.0f);
    for (int i = 0; i < 3; i++) CHECK(fabsf(out[i] - c[i]) < 1e-6f, "w = 1 is the conditional prediction");
    CHECK(!guidance_enabled(1.0f) && guidance_enabled(1.01f), "w > 1 enables CFG");
    return TEST_END();
}
