/* The captioner against transformers' LlavaForConditionalGeneration (tiny random model,
 * CLIP ViT 30x30/6 + Llama): from the Hugging Face folder and from llama.cpp's GGUF pair
 * (LLM GGUF + legacy mmproj with fc1/fc2 stored as ffn_down/ffn_up), the preprocessed
 * pixels (1e-5), the image features of get_image_features (vision_feature_layer -2,
 * "default" selection, GELU projector) within 1e-4, the logits of a prompt with the image
 * features spliced in at every position within 1e-4, and the greedy ids of generate().
 * Fixtures: tools/gen_caption_fixtures.py. */
#include "models/formats/model_files.h"
#include "models/vision/llava.h"
#include "tests/test.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#define TOL 3e-5f   /* measured worst 3.5e-6 (HF logits); within 10x, see README, Testing */

static int *json_ints(const cJSON *arr, int *n) {
    *n = cJSON_GetArraySize(arr);
    int *v = ts_malloc((size_t)(*n ? *n : 1) * sizeof(int));
    for (int i = 0; i < *n; i++) v[i] = cJSON_GetArrayItem(arr, i)->valueint;
    return v;
}

static float max_err(const float *got, const float *want, size_t n) {
    float mw;
    return test_max_abs_diff(got, want, n, &mw);
}

static void check_model(const char *what, llava *v, const cJSON *meta, const char *features_npy, const char *logits_npy,
                        const char *greedy_key) {
    tensor shape;
    float *pixels = fixture_npy("caption/llava_pixels.npy", &shape);
    const int K = llava_image_tokens(v), D = llm_get_config(llava_llm(v))->dim, V = llm_get_config(llava_llm(v))->vocab_size;
    CHECK(K == cJSON_GetObjectItem(meta, "image_tokens")->valueint, "%s: %d image tokens", what, K);
    float *features = ts_malloc((size_t)K * D * sizeof(float));
    CHECK_OK(llava_encode_images(v, test_ctx(), pixels, 1, features));
    float *want = fixture_npy(features_npy, &shape);
    CHECK(want && shape.shape[0] == K && shape.shape[1] == D, "%s: features shape", what);
    float err = max_err(features, want, (size_t)K * D);
    CHECK(err <= TOL, "%s: image features max error %g", what, (double)err);
    printf("  %-5s image features [%d, %d]: max error %.3g\n", what, K, D, (double)err);
    free(want);

    /* the prompt, image token ids in place, every position's logits in one prefill */
    int n;
    int *ids = json_ints(cJSON_GetObjectItem(meta, "input_ids"), &n);
    llm_state *s = llm_state_new(llava_llm(v), test_ctx(), 1, 128, 64);
    float *logits = ts_malloc((size_t)n * V * sizeof(float));
    float *emb = ts_calloc((size_t)n * D, sizeof(float));
    int *tok = ts_malloc((size_t)n * sizeof(int)), *seq = ts_calloc((size_t)n, sizeof(int)), *pos = ts_malloc((size_t)n * sizeof(int));
    int image_id = cJSON_GetObjectItem(meta, "image_token_id")->valueint, used = 0;
    for (int i = 0; i < n; i++) {
        pos[i] = i;
        tok[i] = ids[i] == image_id ? LLM_EMBEDDING_ROW : ids[i];
        if (ids[i] == image_id) memcpy(emb + (size_t)i * D, features + (size_t)used++ * D, (size_t)D * sizeof(float));
    }
    CHECK_OK(llm_forward_embeddings(llava_llm(v), s, n, tok, emb, seq, pos, n, NULL, logits));
    want = fixture_npy(logits_npy, &shape);
    CHECK(want && shape.shape[0] == n && shape.shape[1] == V, "%s: logits shape", what);
    err = max_err(logits, want, (size_t)n * V);
    CHECK(err <= TOL, "%s: logits max error %g", what, (double)err);
    printf("  %-5s logits [%d, %d]: max error %.3g\n", what, n, V, (double)err);
    free(want);

    /* greedy caption: LLM_EMBEDDING_ROW rows take the features in turn */
    int *gen, n_gen, n_want;
    int *greedy = json_ints(cJSON_GetObjectItem(meta, greedy_key), &n_want);
    int eos = cJSON_GetObjectItem(meta, "eos_id")->valueint;
    llm_state *s2 = llm_state_new(llava_llm(v), test_ctx(), 2, 128, 16);
    const int *prompt = llava_image_token_id(v) >= 0 ? ids : tok;   /* HF: the image token id itself */
    CHECK_OK(llava_generate(v, s2, 1, prompt, n, features, n_want, &gen, &n_gen));
    int expect = n_want;
    for (int i = 0; i < n_want; i++)
        if (greedy[i] == eos) { expect = i; break; }
    bool same = n_gen == expect;
    for (int i = 0; same && i < n_gen; i++) same = gen[i] == greedy[i];
    CHECK(same, "%s: greedy ids differ from generate()'s (%d vs %d tokens)", what, n_gen, expect);
    printf("  %-5s greedy: %d tokens %s\n", what, n_gen, same ? "identical" : "DIFFER");
    /* batched: five captions of the prompt through 2 sequences and batches of 16 rows
     * (prefill chunks, slot reuse, decode rows next to prompt rows): each one the same ids */
    llm_state *s3 = llm_state_new(llava_llm(v), test_ctx(), 2, 128, 16);
    const int *prompts[5];
    int lens[5], *outs[5], n_outs[5];
    const float *feats[5];
    for (int k = 0; k < 5; k++) prompts[k] = prompt, lens[k] = n, feats[k] = features;
    CHECK_OK(llava_generate_batch(v, s3, 5, prompts, lens, feats, n_want, outs, n_outs));
    for (int k = 0; k < 5; k++) {
        bool ok = n_outs[k] == expect;
        for (int i = 0; ok && i < expect; i++) ok = outs[k][i] == greedy[i];
        CHECK(ok, "%s: batched caption %d differs from generate()'s", what, k);
        free(outs[k]);
    }
    llm_state_destroy(&s3);
    free(gen), free(greedy);
    llm_state_destroy(&s2);
    llm_state_destroy(&s);
    free(ids), free(logits), free(emb), free(tok), free(seq), free(pos), free(features), free(pixels);
}

int main(void) {
    TEST_BEGIN();
    size_t size;
    char *text = read_text_file(fixture_path("caption/cases.json"), &size);
    cJSON *root = text ? cJSON_Parse(text) : NULL;
    CHECK(root != NULL, "cases.json");
    if (!root) return TEST_END();
    const cJSON *meta = cJSON_GetObjectItem(root, "llava");

    llava *hf = llava_open(fixture_path("caption/llava_tiny"), NULL);
    CHECK(hf != NULL, "HF folder: %s", ts_last_error());
    if (hf) {
        /* its preprocessor_config.json, on the fixture image */
        image_rgb8 img;
        CHECK_OK(image_read(fixture_path("caption/png_down.png"), &img));
        float *px, *want;
        int H, W;
        tensor shape;
        CHECK_OK(image_preprocess(&img, llava_preprocess_config(hf), &px, &H, &W));
        want = fixture_npy("caption/llava_pixels.npy", &shape);
        CHECK(H == 30 && W == 30 && max_err(px, want, (size_t)3 * H * W) <= 1e-5f, "HF: preprocessed pixels");
        free(px), free(want);
        image_rgb8_clear(&img);
        CHECK(llava_image_token_id(hf) == cJSON_GetObjectItem(meta, "image_token_id")->valueint, "image token id");
        check_model("HF", hf, meta, "caption/llava_features.npy", "caption/llava_logits.npy", "greedy");
        /* the prompt as LlavaProcessor tokenizes it (tokenizer.json, BOS, <image> expanded) */
        const cJSON *cli = cJSON_GetObjectItem(meta, "cli");
        int *ids, n_ids, n_want;
        int *want_ids = json_ints(cJSON_GetObjectItem(cli, "prompt_ids"), &n_want);
        CHECK_OK(llava_tokenize_prompt(hf, cJSON_GetObjectItem(cli, "prompt")->valuestring, &ids, &n_ids));
        bool same = n_ids == n_want;
        for (int i = 0; same && i < n_ids; i++) same = ids[i] == (want_ids[i] == llava_image_token_id(hf) ? LLM_EMBEDDING_ROW : want_ids[i]);
        CHECK(same, "HF: prompt ids differ from LlavaProcessor's (%d vs %d)", n_ids, n_want);
        free(ids), free(want_ids);
        llava_destroy(&hf);
    }
    char llm_path[4096];
    snprintf(llm_path, sizeof llm_path, "%s", fixture_path("caption/llava_tiny_llm.gguf"));
    llava *gg = llava_open(llm_path, fixture_path("caption/llava_tiny_mmproj.gguf"));
    CHECK(gg != NULL, "GGUF pair: %s", ts_last_error());
    if (gg) {
        CHECK(llava_preprocess_config(gg)->pad_to_square, "GGUF: LLaVA-1.5 pads to square");
        check_model("GGUF", gg, meta, "caption/llava_gguf_features.npy", "caption/llava_gguf_logits.npy", "gguf_greedy");
        llava_destroy(&gg);
    }
    /* a bad pair is refused with the file named */
    llava *bad = llava_open(llm_path, llm_path);
    CHECK(bad == NULL && strstr(ts_last_error(), "llava_tiny_llm.gguf"), "LLM given as mmproj: '%s'", ts_last_error());
    cJSON_Delete(root);
    free(text);
    return TEST_END();
}
