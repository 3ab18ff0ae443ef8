/* scheduler_config.c — sampler names, diffusers defaults, and scheduler_config.json (cJSON). */
#include "models/diffusion/scheduler.h"
#include "models/formats/model_files.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

static const struct { const char *name; sampler_kind kind; } sampler_names[] = {
    {"ddim", SAMPLER_DDIM},         {"euler", SAMPLER_EULER},       {"euler_a", SAMPLER_EULER_A},
    {"dpm++2m", SAMPLER_DPMPP_2M},  {"dpmpp_2m", SAMPLER_DPMPP_2M}, {"lcm", SAMPLER_LCM},
};

const char *sampler_name(sampler_kind k) {
    for (size_t i = 0; i < sizeof sampler_names / sizeof sampler_names[0]; i++)
        if (sampler_names[i].kind == k) return sampler_names[i].name;
    return "?";
}

int scheduler_config_init(scheduler_config *cfg, const char *sampler, const char *schedule) {
    memset(cfg, 0, sizeof *cfg);
    size_t i = 0, count = sizeof sampler_names / sizeof sampler_names[0];
    while (i < count && strcmp(sampler_names[i].name, sampler ? sampler : "") != 0) i++;
    if (i == count)
        return ts_fail("unknown sampler '%s' (have ddim, euler, euler_a, dpm++2m, lcm)", sampler ? sampler : "");
    cfg->sampler = sampler_names[i].kind;

    /* The defaults of the diffusers class, as SomeScheduler() has them: what a key missing
     * from scheduler_config.json becomes in SomeScheduler.from_config(file). DDIM, Euler,
     * Euler ancestral and DPM-Solver default to DDPM's linear 1e-4..0.02 betas with
     * steps_offset 0; DDIM also to set_alpha_to_one and clip_sample true; LCM to SD's
     * scaled_linear betas, set_alpha_to_one true, clip_sample false. */
    bool lcm = cfg->sampler == SAMPLER_LCM, ddim = cfg->sampler == SAMPLER_DDIM;
    cfg->num_train_timesteps = 1000;
    cfg->beta_start = lcm ? 0.00085 : 0.0001;
    cfg->beta_end = lcm ? 0.012 : 0.02;
    cfg->beta_schedule = lcm ? BETAS_SCALED_LINEAR : BETAS_LINEAR;
    cfg->steps_offset = 0;
    cfg->set_alpha_to_one = ddim || lcm;
    cfg->clip_sample = ddim;
    cfg->prediction = PREDICT_EPSILON;
    cfg->spacing = (ddim || lcm) ? SPACING_LEADING : SPACING_LINSPACE;
    cfg->final_sigmas_zero = true;
    cfg->clip_sample_range = 1.0f;
    cfg->eta = 0.0f;
    cfg->lower_order_final = true;
    cfg->euler_at_final = false;
    cfg->original_inference_steps = 50;
    cfg->timestep_scaling = 10.0f;

    if (!schedule || strcmp(schedule, "discrete") == 0 || strcmp(schedule, "default") == 0) {
        cfg->use_karras_sigmas = false;
    } else if (strcmp(schedule, "karras") == 0) {
        if (cfg->sampler != SAMPLER_EULER && cfg->sampler != SAMPLER_DPMPP_2M)
            return ts_fail("sampler %s has no karras schedule in diffusers (euler and dpm++2m do)", sampler);
        cfg->use_karras_sigmas = true;
    } else {
        return ts_fail("unknown schedule '%s' (have discrete, karras)", schedule);
    }
    return 0;
}

/* Reads a string-valued key into one of the given names; absent or null keeps *out. */
static int json_enum(const cJSON *root, const char *key, const char *const *names, int count, int *out,
                     const char *where) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsString(v)) return ts_fail("%s: '%s' is not a string", where, key);
    for (int i = 0; i < count; i++)
        if (strcmp(v->valuestring, names[i]) == 0) { *out = i; return 0; }
    return ts_fail("%s: %s \"%s\" is not supported", where, key, v->valuestring);
}

static int json_number(const cJSON *root, const char *key, double *out, const char *where) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsNumber(v)) return ts_fail("%s: '%s' is not a number", where, key);
    *out = v->valuedouble;
    return 0;
}

static int json_bool(const cJSON *root, const char *key, bool *out, const char *where) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsBool(v)) return ts_fail("%s: '%s' is not true/false", where, key);
    *out = cJSON_IsTrue(v);
    return 0;
}

static int json_int(const cJSON *root, const char *key, int *out, int lo, int hi, const char *where) {
    double d = *out;
    if (json_number(root, key, &d, where) != 0) return -1;
    /* range first: converting an out-of-range double to int is undefined (found by the fuzzer) */
    if (!(d >= lo && d <= hi) || d != (double)(int)d)
        return ts_fail("%s: '%s' must be an integer in [%d, %d]", where, key, lo, hi);
    *out = (int)d;
    return 0;
}

static int parse_config(scheduler_config *cfg, const cJSON *root, const char *where) {
    if (!cJSON_IsObject(root)) return ts_fail("%s: not a JSON object", where);
    bool on = false;
    if (json_bool(root, "thresholding", &on, where) != 0) return -1;
    if (on) return ts_fail("%s: thresholding is not supported", where);
    const cJSON *tb = cJSON_GetObjectItemCaseSensitive(root, "trained_betas");
    if (tb && !cJSON_IsNull(tb)) return ts_fail("%s: trained_betas is not supported", where);
    const cJSON *algo = cJSON_GetObjectItemCaseSensitive(root, "algorithm_type");
    if (cfg->sampler == SAMPLER_DPMPP_2M && cJSON_IsString(algo) && strcmp(algo->valuestring, "dpmsolver++") != 0)
        return ts_fail("%s: algorithm_type \"%s\" is not supported (dpm++2m is dpmsolver++)", where, algo->valuestring);
    const cJSON *solver = cJSON_GetObjectItemCaseSensitive(root, "solver_type");
    if (cfg->sampler == SAMPLER_DPMPP_2M && cJSON_IsString(solver) && strcmp(solver->valuestring, "midpoint") != 0)
        return ts_fail("%s: solver_type \"%s\" is not supported (dpm++2m is midpoint)", where, solver->valuestring);
    const cJSON *interp = cJSON_GetObjectItemCaseSensitive(root, "interpolation_type");
    if (cJSON_IsString(interp) && strcmp(interp->valuestring, "linear") != 0)
        return ts_fail("%s: interpolation_type \"%s\" is not supported", where, interp->valuestring);
    const cJSON *ttype = cJSON_GetObjectItemCaseSensitive(root, "timestep_type");
    if (cJSON_IsString(ttype) && strcmp(ttype->valuestring, "discrete") != 0)
        return ts_fail("%s: timestep_type \"%s\" is not supported", where, ttype->valuestring);
    bool other_sigmas = false;
    if (json_bool(root, "use_exponential_sigmas", &other_sigmas, where) != 0) return -1;
    if (!other_sigmas && json_bool(root, "use_beta_sigmas", &other_sigmas, where) != 0) return -1;
    if (!other_sigmas && json_bool(root, "use_lu_lambdas", &other_sigmas, where) != 0) return -1;
    if (other_sigmas) return ts_fail("%s: exponential/beta/lu sigmas are not supported", where);

    static const char *const betas[] = {"scaled_linear", "linear", "squaredcos_cap_v2"};
    static const char *const preds[] = {"epsilon", "v_prediction"};
    static const char *const spacings[] = {"leading", "trailing", "linspace"};
    static const char *const finals[] = {"zero", "sigma_min"};
    int beta = cfg->beta_schedule, pred = cfg->prediction, spacing = cfg->spacing;
    int final_type = cfg->final_sigmas_zero ? 0 : 1;
    double clip_range = cfg->clip_sample_range, scaling = cfg->timestep_scaling;
    bool karras = cfg->use_karras_sigmas;
    if (json_int(root, "num_train_timesteps", &cfg->num_train_timesteps, 2, 100000, where) != 0 ||
        json_number(root, "beta_start", &cfg->beta_start, where) != 0 ||
        json_number(root, "beta_end", &cfg->beta_end, where) != 0 ||
        json_enum(root, "beta_schedule", betas, 3, &beta, where) != 0 ||
        json_bool(root, "rescale_betas_zero_snr", &cfg->rescale_betas_zero_snr, where) != 0 ||
        json_enum(root, "prediction_type", preds, 2, &pred, where) != 0 ||
        json_enum(root, "timestep_spacing", spacings, 3, &spacing, where) != 0 ||
        json_int(root, "steps_offset", &cfg->steps_offset, 0, 1000, where) != 0 ||
        json_bool(root, "use_karras_sigmas", &karras, where) != 0 ||
        json_enum(root, "final_sigmas_type", finals, 2, &final_type, where) != 0 ||
        json_bool(root, "set_alpha_to_one", &cfg->set_alpha_to_one, where) != 0 ||
        json_bool(root, "clip_sample", &cfg->clip_sample, where) != 0 ||
        json_number(root, "clip_sample_range", &clip_range, where) != 0 ||
        json_bool(root, "lower_order_final", &cfg->lower_order_final, where) != 0 ||
        json_bool(root, "euler_at_final", &cfg->euler_at_final, where) != 0 ||
        json_int(root, "original_inference_steps", &cfg->original_inference_steps, 1, 100000, where) != 0 ||
        json_number(root, "timestep_scaling", &scaling, where) != 0 ||
        json_number(root, "sigma_min", &cfg->sigma_min, where) != 0 ||
        json_number(root, "sigma_max", &cfg->sigma_max, where) != 0)
        return -1;
    if (cfg->sigma_min < 0 || cfg->sigma_max < 0) return ts_fail("%s: sigma_min/sigma_max must be positive", where);
    if (!(cfg->beta_start > 0 && cfg->beta_end > 0 && cfg->beta_end < 1))
        return ts_fail("%s: beta_start/beta_end out of range", where);
    cfg->beta_schedule = (beta_schedule_kind)beta;
    cfg->prediction = (prediction_kind)pred;
    cfg->spacing = (timestep_spacing_kind)spacing;
    /* only EulerDiscrete and DPM-Solver have final_sigmas_type; Euler ancestral always ends at 0 */
    if (cfg->sampler == SAMPLER_EULER || cfg->sampler == SAMPLER_DPMPP_2M) cfg->final_sigmas_zero = final_type == 0;
    cfg->clip_sample_range = (float)clip_range;
    cfg->timestep_scaling = (float)scaling;
    /* As with diffusers' from_config, use_karras_sigmas in the file switches Karras sigmas on
     * for the samplers that have them; the others ignore the key, as their classes do. */
    if (karras && (cfg->sampler == SAMPLER_EULER || cfg->sampler == SAMPLER_DPMPP_2M))
        cfg->use_karras_sigmas = true;
    return 0;
}

int scheduler_config_parse(scheduler_config *cfg, const char *json_text, const char *where) {
    cJSON *root = json_parse_config(json_text, where);
    if (!root) return -1;
    int rc = parse_config(cfg, root, where);
    cJSON_Delete(root);
    return rc;
}

int scheduler_config_load(scheduler_config *cfg, const char *json_path) {
    size_t size = 0;
    char *text = read_text_file(json_path, &size);
    if (!text) return -1;
    int rc = scheduler_config_parse(cfg, text, json_path);
    free(text);
    return rc;
}

void scheduler_config_apply_pipeline(scheduler_config *cfg, scheduler_pipeline pipeline) {
    /* StableDiffusionPipeline.__init__ rewrites the config of the scheduler it is given
     * ("deprecated" settings of old SD files); StableDiffusionXLPipeline leaves it alone. */
    if (pipeline == SCHEDULER_PIPELINE_SD) {
        cfg->steps_offset = 1;
        cfg->clip_sample = false;
    }
}

/* The scheduler/scheduler_config.json of the reference models, as published (runwayml /
 * stable-diffusion-v1-5 and stabilityai/stable-diffusion-xl-base-1.0), for checkpoints that
 * carry none: diffusers' from_single_file takes the reference model's config the same way.
 * SD 2.x single files use SD 1.5's: the same schedule, and epsilon prediction, since the
 * file alone does not say whether it is a v model (SD 2.1-base's file says epsilon too). */
static const char published_sd15[] =
    "{\"_class_name\": \"PNDMScheduler\", \"_diffusers_version\": \"0.6.0\", \"beta_end\": 0.012,"
    " \"beta_schedule\": \"scaled_linear\", \"beta_start\": 0.00085, \"num_train_timesteps\": 1000,"
    " \"set_alpha_to_one\": false, \"skip_prk_steps\": true, \"steps_offset\": 1, \"trained_betas\": null,"
    " \"clip_sample\": false}";
static const char published_sdxl[] =
    "{\"_class_name\": \"EulerDiscreteScheduler\", \"_diffusers_version\": \"0.19.0.dev0\", \"beta_end\": 0.012,"
    " \"beta_schedule\": \"scaled_linear\", \"beta_start\": 0.00085, \"clip_sample\": false,"
    " \"interpolation_type\": \"linear\", \"num_train_timesteps\": 1000, \"prediction_type\": \"epsilon\","
    " \"sample_max_value\": 1.0, \"set_alpha_to_one\": false, \"skip_prk_steps\": true, \"steps_offset\": 1,"
    " \"timestep_spacing\": \"leading\", \"trained_betas\": null, \"use_karras_sigmas\": false}";

int scheduler_config_for_pipeline(scheduler_config *cfg, const char *sampler, const char *schedule,
                                  const char *json_text, const char *where, scheduler_pipeline pipeline) {
    if (scheduler_config_init(cfg, sampler, schedule) != 0) return -1;
    if (!json_text) {
        json_text = pipeline == SCHEDULER_PIPELINE_SDXL ? published_sdxl : published_sd15;
        where = pipeline == SCHEDULER_PIPELINE_SDXL ? "SDXL's published scheduler_config.json"
                                                    : "SD 1.5's published scheduler_config.json";
    }
    if (scheduler_config_parse(cfg, json_text, where) != 0) return -1;
    scheduler_config_apply_pipeline(cfg, pipeline);
    return 0;
}
