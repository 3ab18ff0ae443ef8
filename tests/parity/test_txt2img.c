/* test_txt2img.c — the whole pipeline against diffusers' StableDiffusionPipeline on a tiny
 * random SD 1.x model (tools/gen_txt2img_fixtures.py): DDIM, Euler ancestral, DDIM decoded by
 * TAESD; and StableDiffusionXLPipeline on a tiny SDXL (tools/gen_txt2img_sdxl_fixtures.py).
 * CPU generator. Images must agree within 1/255 in at least 99.9 % of values. */
#include "models/formats/model_files.h"
#include "models/diffusion/txt2img.h"
#include "tests/test.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static void run_case(txt2img *p, const cJSON *c) {
    const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
    txt2img_request r = txt2img_request_defaults();
    r.prompt = cJSON_GetObjectItem(c, "prompt")->valuestring;
    r.negative = cJSON_GetObjectItem(c, "negative")->valuestring;
    r.sampler = cJSON_GetObjectItem(c, "sampler")->valuestring;
    r.seed = (uint64_t)cJSON_GetObjectItem(c, "seed")->valuedouble;
    r.steps = cJSON_GetObjectItem(c, "steps")->valueint;
    r.cfg_scale = (float)cJSON_GetObjectItem(c, "cfg")->valuedouble;
    r.width = cJSON_GetObjectItem(c, "width")->valueint;
    r.height = cJSON_GetObjectItem(c, "height")->valueint;
    txt2img_result out;
    CHECK_OK(txt2img_generate(p, &r, &out));
    if (!out.rgb) return;

    char rel[128];
    tensor ws, ls;
    snprintf(rel, sizeof rel, "tiny_sd_expected/%s.npy", name);
    float *want = fixture_npy(rel, &ws);
    snprintf(rel, sizeof rel, "tiny_sd_expected/%s_latents.npy", name);
    float *want_latents = fixture_npy(rel, &ls);
    CHECK(want && want_latents, "%s: fixtures", name);
    if (want && want_latents) {
        size_t n = (size_t)r.width * r.height * 3, off = 0;
        int worst = 0;
        for (size_t i = 0; i < n; i++) {
            int d = abs((int)out.rgb[0][i] - (int)want[i]);
            off += d > 1;
            if (d > worst) worst = d;
        }
        double frac = 1.0 - (double)off / (double)n;
        fprintf(stderr, "%s: %.4f %% of pixel values within 1/255 (worst %d/255)\n", name, 100.0 * frac, worst);
        CHECK(off == 0, "%s: only %.4f %% of values within 1/255", name, 100.0 * frac);
        size_t nl = (size_t)tensor_numel(&ls);
        float mw, dl = test_max_abs_diff(out.latents, want_latents, nl, &mw);
        fprintf(stderr, "%s: final latents max |diff| %.3g (max |want| %.3g)\n", name, dl, mw);
        CHECK(dl <= 3e-5f * (mw > 1 ? mw : 1), "%s: latents differ by %g", name, dl);
    }
    free(want), free(want_latents);
    txt2img_result_free(&out);
}

int main(void) {
    TEST_BEGIN();
    txt2img *p = txt2img_load(&(txt2img_options){.device = test_device(), .model = fixture_path("tiny_sd"),
                                                 .tokenizer = data_path("clip_tokenizer_sd15")});
    CHECK(p != NULL, "%s", ts_last_error());
    char *json = read_text_file(fixture_path("tiny_sd_expected/cases.json"), NULL);
    cJSON *cases = json ? cJSON_Parse(json) : NULL;
    CHECK(cases && cJSON_GetArraySize(cases) == 2, "cases.json");
    if (p && cases) {
        const cJSON *c;
        cJSON_ArrayForEach(c, cases) run_case(p, c);
        /* a batch of different records, one generator each: image 0 is still diffusers' ddim
         * image, whatever it was batched with */
        const cJSON *c0 = cJSON_GetArrayItem(cases, 0);
        const char *prompts[2] = {cJSON_GetObjectItem(c0, "prompt")->valuestring, "something else entirely"};
        const char *negatives[2] = {cJSON_GetObjectItem(c0, "negative")->valuestring, ""};
        uint64_t seeds[2] = {(uint64_t)cJSON_GetObjectItem(c0, "seed")->valuedouble, 99};
        txt2img_request rb = txt2img_request_defaults();
        rb.prompts = prompts, rb.negatives = negatives, rb.seeds = seeds, rb.batch = 2, rb.sampler = "ddim";
        rb.steps = cJSON_GetObjectItem(c0, "steps")->valueint;
        rb.cfg_scale = (float)cJSON_GetObjectItem(c0, "cfg")->valuedouble;
        rb.width = 64, rb.height = 48;
        txt2img_result ob;
        tensor ws;
        float *want = fixture_npy("tiny_sd_expected/ddim.npy", &ws);
        CHECK_OK(txt2img_generate(p, &rb, &ob));
        if (ob.rgb && want) {
            size_t n = (size_t)64 * 48 * 3, off = 0, same = 0;
            for (size_t i = 0; i < n; i++) {
                off += abs((int)ob.rgb[0][i] - (int)want[i]) > 1;
                same += ob.rgb[1][i] == ob.rgb[0][i];
            }
            CHECK(off <= n / 1000, "batched record 0: %zu values off by more than 1/255", off);
            CHECK(same < n / 2, "batched record 1 looks like record 0 (%zu equal values)", same);
        }
        free(want);
        txt2img_result_free(&ob);

        /* bad requests are refused with a message, not a crash */
        txt2img_request r = txt2img_request_defaults();
        r.width = 60, r.height = 48;
        txt2img_result out;
        CHECK(txt2img_generate(p, &r, &out) < 0 && strstr(ts_last_error(), "multiple"), "bad size: %s", ts_last_error());
        r.width = 64, r.sampler = "nonsense";
        CHECK(txt2img_generate(p, &r, &out) < 0, "unknown sampler refused");
    }
    txt2img_destroy(&p);

    /* --taesd: the ddim case decoded by a tiny TAESD, against diffusers with vae = AutoencoderTiny */
    p = txt2img_load(&(txt2img_options){.device = test_device(), .model = fixture_path("tiny_sd"), .tokenizer = data_path("clip_tokenizer_sd15"),
                                        .taesd = fixture_path("tiny_taesd/diffusion_pytorch_model.safetensors")});
    CHECK(p != NULL, "with TAESD: %s", ts_last_error());
    const cJSON *c0 = cases ? cJSON_GetArrayItem(cases, 0) : NULL;
    if (p && c0) {
        txt2img_request r = txt2img_request_defaults();
        r.prompt = cJSON_GetObjectItem(c0, "prompt")->valuestring;
        r.negative = cJSON_GetObjectItem(c0, "negative")->valuestring;
        r.sampler = "ddim";
        r.seed = (uint64_t)cJSON_GetObjectItem(c0, "seed")->valuedouble;
        r.steps = cJSON_GetObjectItem(c0, "steps")->valueint;
        r.cfg_scale = (float)cJSON_GetObjectItem(c0, "cfg")->valuedouble;
        r.width = 64, r.height = 48;
        txt2img_result out;
        tensor ws;
        float *want = fixture_npy("tiny_sd_expected/ddim_taesd.npy", &ws);
        CHECK_OK(txt2img_generate(p, &r, &out));
        if (out.rgb && want) {
            size_t n = (size_t)64 * 48 * 3, off = 0;
            for (size_t i = 0; i < n; i++) off += abs((int)out.rgb[0][i] - (int)want[i]) > 1;
            fprintf(stderr, "ddim + TAESD: %.4f %% of pixel values within 1/255\n", 100.0 * (1.0 - (double)off / n));
            CHECK(off == 0, "ddim + TAESD: %zu values off by more than 1/255", off);
        }
        free(want);
        txt2img_result_free(&out);
    }
    txt2img_destroy(&p);
    cJSON_Delete(cases);
    free(json);

    /* SDXL: two text encoders, pooled text + size ids into the U-Net, zeroed negative,
     * scaling factor 0.13025 (tools/gen_txt2img_sdxl_fixtures.py) */
    p = txt2img_load(&(txt2img_options){.device = test_device(), .model = fixture_path("tiny_sdxl"), .tokenizer = data_path("clip_tokenizer_sd15")});
    CHECK(p != NULL, "SDXL: %s", ts_last_error());
    json = read_text_file(fixture_path("tiny_sd_expected/sdxl_cases.json"), NULL);
    cases = json ? cJSON_Parse(json) : NULL;
    CHECK(cases && cJSON_GetArraySize(cases) == 1, "sdxl_cases.json: one case");
    if (p && cases) {
        const cJSON *c;
        cJSON_ArrayForEach(c, cases) run_case(p, c);
    }
    cJSON_Delete(cases);
    free(json);
    txt2img_destroy(&p);
    return TEST_END();
}
