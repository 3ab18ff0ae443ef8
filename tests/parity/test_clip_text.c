/*
 * test_clip_text.c — CLIP / OpenCLIP text encoders against transformers.
 *
 * Fixtures (tools/gen_clip_fixtures.py): tiny random CLIPTextModel(WithProjection) models for
 * SD 1.x, SD 2.x and SDXL, each as a diffusers folder and as a CompVis single file, with the
 * U-Net context (and SDXL pooled) that transformers gives for two 2-chunk prompts, computed
 * as diffusers' pipelines use the outputs (last / penultimate layer, final norm, clip_skip).
 * Also a real-vocabulary SD 1.x model for prompts end to end (chunked and truncated).
 */
#include "models/text/text_conditioning.h"
#include "models/formats/model_files.h"
#include "tests/test.h"

#include <cjson/cJSON.h>

#include <stdlib.h>
#include <string.h>

#define TOL 3e-5f   /* measured worst 3.2e-6 (sdxl_bf16 context); see README, Testing */

static int32_t *load_ids(const char *rel, int *count) {
    tensor t;
    float *f = fixture_npy(rel, &t);
    if (!f) return NULL;
    int64_t n = tensor_numel(&t);
    int32_t *ids = ts_malloc(sizeof *ids * (size_t)n);
    for (int64_t i = 0; i < n; i++) ids[i] = (int32_t)f[i];
    free(f);
    *count = (int)n;
    return ids;
}

/* max |got - want| within TOL; prints the figure. */
static void check_close(const float *got, const char *want_rel, size_t n, const char *what) {
    tensor t;
    float *want = fixture_npy(want_rel, &t);
    CHECK(want != NULL, "%s", ts_last_error());
    if (!want) return;
    CHECK((size_t)tensor_numel(&t) == n, "%s: %lld values, fixture has %lld", what, (long long)n, (long long)tensor_numel(&t));
    if ((size_t)tensor_numel(&t) == n) {
        float max_want, d = test_max_abs_diff(got, want, n, &max_want);
        printf("%-44s max abs error %.3g (max |ref| %.3g)\n", what, d, max_want);
        CHECK(d <= TOL, "%s: max abs error %g > %g", what, d, TOL);
    }
    free(want);
}

typedef struct {
    const char *family;      /* fixture folder with ids and references */
    text_family expect;
    int dim, pooled_dim;
} family_case;

static void check_family(const family_case *fc, const char *model, const char *ref_tag) {
    char rel[256], what[256];
    const char *path = fixture_path(model);
    text_encoder *te = text_encoder_load(path, data_path("clip_tokenizer_sd15"));
    CHECK(te != NULL, "%s: %s", model, ts_last_error());
    if (!te) return;
    CHECK(text_encoder_family(te) == fc->expect, "%s: family %s", model, text_family_name(text_encoder_family(te)));
    CHECK(text_encoder_context_dim(te) == fc->dim, "%s: context dim %d", model, text_encoder_context_dim(te));
    int n1 = 0, n2 = 0;
    snprintf(rel, sizeof rel, "clip/%s/ids.npy", fc->family);
    int32_t *ids = load_ids(rel, &n1);
    int32_t *ids2 = NULL;
    if (fc->expect == TEXT_FAMILY_SDXL) {
        snprintf(rel, sizeof rel, "clip/%s/ids_2.npy", fc->family);
        ids2 = load_ids(rel, &n2);
    }
    CHECK(ids && n1 == 2 * 2 * 77, "ids");
    for (int skip = 0; skip < 2 && ids; skip++) {
        text_encoder_options o = text_encoder_defaults();
        o.clip_skip = skip;
        text_conditioning c;
        int rc = text_encoder_encode_ids(te, test_ctx(), ids, ids2, 2, 2, NULL, &o, &c);
        CHECK(rc == 0, "%s: %s", model, ts_last_error());
        if (rc) continue;
        CHECK(c.batch == 2 && c.tokens == 154 && c.dim == fc->dim, "%s: shape [%d, %d, %d]", model, c.batch, c.tokens, c.dim);
        CHECK(c.pooled_dim == fc->pooled_dim, "%s: pooled dim %d", model, c.pooled_dim);
        snprintf(rel, sizeof rel, "clip/%s/context%s%s.npy", fc->family, ref_tag, skip ? "_skip1" : "");
        snprintf(what, sizeof what, "%s context clip_skip=%d", model, skip);
        check_close(c.context, rel, (size_t)c.batch * c.tokens * c.dim, what);
        if (c.pooled) {
            snprintf(rel, sizeof rel, "clip/%s/pooled%s%s.npy", fc->family, ref_tag, skip ? "_skip1" : "");
            snprintf(what, sizeof what, "%s pooled clip_skip=%d", model, skip);
            check_close(c.pooled, rel, (size_t)c.batch * c.pooled_dim, what);
        }
        text_conditioning_free(&c);
    }
    free(ids);
    free(ids2);
    text_encoder_destroy(&te);
}

/* Prompts end to end through the real tokenizer: chunked (A1111 style) and truncated. */
static void check_prompts(void) {
    text_encoder *te = text_encoder_load(fixture_path("clip/sd1_prompt"), data_path("clip_tokenizer_sd15"));
    CHECK(te != NULL, "%s", ts_last_error());
    char *json = read_text_file(fixture_path("clip/sd1_prompt/prompts.json"), NULL);
    cJSON *doc = json ? cJSON_Parse(json) : NULL;
    CHECK(doc != NULL, "prompts.json");
    if (te && doc) {
        const char *prompts[2] = {cJSON_GetObjectItem(doc, "negative")->valuestring,
                                  cJSON_GetObjectItem(doc, "positive")->valuestring};
        int chunks = cJSON_GetObjectItem(doc, "chunks")->valueint;
        CHECK(text_encoder_pad_id(te, 0) == 49407, "SD 1.x pads with EOS (49407 in OpenAI's vocabulary)");
        for (int truncate = 0; truncate < 2; truncate++) {
            text_encoder_options o = text_encoder_defaults();
            o.truncate = truncate;
            text_conditioning c;
            int rc = text_encoder_encode(te, test_ctx(), prompts, 2, &o, &c);
            CHECK(rc == 0, "%s", ts_last_error());
            if (rc) continue;
            int want_tokens = truncate ? 77 : 77 * chunks;
            CHECK(chunks == 2 && c.tokens == want_tokens, "tokens %d, want %d", c.tokens, want_tokens);
            if (c.tokens == want_tokens)
                check_close(c.context, truncate ? "clip/sd1_prompt/context_truncated.npy" : "clip/sd1_prompt/context_chunked.npy",
                            (size_t)2 * c.tokens * c.dim, truncate ? "prompts, truncated (diffusers)" : "prompts, 75-token chunks");
            text_conditioning_free(&c);
        }
        /* Bad input is an error, not a crash. */
        const char *bad[1] = {"caf\xc3"};
        text_conditioning c;
        CHECK(text_encoder_encode(te, test_ctx(), bad, 1, NULL, &c) == -1, "invalid UTF-8 accepted");
        CHECK(strstr(ts_last_error(), "byte 3") != NULL, "message: %s", ts_last_error());
    }
    cJSON_Delete(doc);
    free(json);
    text_encoder_destroy(&te);
}

/* Refusals name the file and what is wrong. */
static void check_errors(void) {
    text_encoder *te = text_encoder_load(fixture_path("clip/sdxl"), data_path("clip_tokenizer_sd15"));
    CHECK(te != NULL, "%s", ts_last_error());
    if (te) {
        int32_t ids[2 * 77], ids2[2 * 77];
        for (int i = 0; i < 2 * 77; i++) ids[i] = ids2[i] = i % 77 == 0 ? 254 : 255;
        bool zero[2] = {true, false};
        text_conditioning c;
        CHECK_OK(text_encoder_encode_ids(te, test_ctx(), ids, ids2, 2, 1, zero, NULL, &c));
        float first = 0, second = 0;
        for (int i = 0; i < c.tokens * c.dim; i++) first += c.context[i] * c.context[i], second += c.context[c.tokens * c.dim + i] * c.context[c.tokens * c.dim + i];
        CHECK(first == 0 && second > 0, "a zero row (SDXL, no negative prompt) is zeros, the other is not");
        CHECK(c.pooled[0] == 0 && c.pooled[c.pooled_dim] != 0, "zero row pooled");
        text_conditioning_free(&c);
        ids[5] = 999;
        CHECK(text_encoder_encode_ids(te, test_ctx(), ids, ids2, 2, 1, NULL, NULL, &c) == -1, "id outside the vocabulary accepted");
        CHECK(strstr(ts_last_error(), "token 999 at position 5") != NULL, "message: %s", ts_last_error());
        text_encoder_options o = text_encoder_defaults();
        o.clip_skip = 7;
        ids[5] = 3;
        CHECK(text_encoder_encode_ids(te, test_ctx(), ids, ids2, 2, 1, NULL, &o, &c) == -1, "clip_skip beyond the depth accepted");
        text_encoder_destroy(&te);
    }
    CHECK(text_encoder_load(fixture_path("clip/tokenizer_ids.json"), NULL) == NULL, "a JSON file loaded as a model");
    CHECK(strstr(ts_last_error(), "tokenizer_ids.json") != NULL, "message: %s", ts_last_error());
    CHECK(text_encoder_load(fixture_path("clip/no_such_model"), NULL) == NULL, "missing model loaded");
}

int main(void) {
    TEST_BEGIN();
    family_case sd1 = {"sd1", TEXT_FAMILY_SD1, 128, 0}, sd2 = {"sd2", TEXT_FAMILY_SD2, 128, 0},
                sdxl = {"sdxl", TEXT_FAMILY_SDXL, 64 + 128, 64};
    check_family(&sd1, "clip/sd1", "");
    check_family(&sd1, "clip/sd1.safetensors", "");
    check_family(&sd1, "clip/sd1_fp16", "_fp16");
    check_family(&sd1, "clip/sd1_fp16.safetensors", "_fp16");
    check_family(&sd2, "clip/sd2", "");
    check_family(&sd2, "clip/sd2.safetensors", "");
    check_family(&sdxl, "clip/sdxl", "");
    check_family(&sdxl, "clip/sdxl.safetensors", "");
    check_family(&sdxl, "clip/sdxl_bf16", "_bf16");
    check_family(&sdxl, "clip/sdxl_bf16.safetensors", "_bf16");
    check_prompts();
    check_errors();
    return TEST_END();
}
