/* The text side of an LLM as the model file asks (tests/fixtures/llm_bos, from
 * tools/gen_llm_bos_fixtures.py):
 *   - a raw prompt gets BOS exactly when the file says so: a Qwen2 GGUF with
 *     tokenizer.ggml.add_bos_token = false none, a Llama one with true one, each giving the
 *     ids transformers gives for the same tokenizer as Hugging Face files; the HF folders
 *     themselves (post_processor template or none) give transformers' ids too;
 *   - a chat rendered by the template is encoded without an added BOS, as transformers'
 *     apply_chat_template does;
 *   - generated text keeps the NUL bytes of <0x00> byte tokens. */
#include "models/llm/llm_codec.h"
#include "models/formats/model_files.h"
#include "tests/test.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

static bool same_ids(const int *got, int n, const cJSON *want) {
    if (n != cJSON_GetArraySize(want)) return false;
    for (int i = 0; i < n; i++)
        if (got[i] != cJSON_GetArrayItem(want, i)->valueint) return false;
    return true;
}

static void print_ids(const char *what, const int *ids, int n) {
    fprintf(stderr, "  %s:", what);
    for (int i = 0; i < n && i < 16; i++) fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, "%s\n", n > 16 ? " ..." : "");
}

/* Every string of the fixture, encoded as a raw prompt, and the chat. */
static void check_codec(llm_codec *codec, const char *label, const cJSON *root, const cJSON *c) {
    const cJSON *strings = cJSON_GetObjectItem(root, "strings");
    for (int i = 0; i < cJSON_GetArraySize(strings); i++) {
        const char *s = cJSON_GetArrayItem(strings, i)->valuestring;
        int *ids = NULL, n = 0;
        CHECK_OK(llm_codec_encode(codec, s, true, false, &ids, &n));
        bool same = same_ids(ids, n, cJSON_GetArrayItem(cJSON_GetObjectItem(c, "ids"), i));
        CHECK(same, "%s: raw prompt '%s' gives other ids than transformers", label, s);
        if (!same) print_ids("got", ids, n);
        free(ids);
    }
    const cJSON *chat = cJSON_GetObjectItem(root, "chat");
    chat_message msgs[4];
    int nm = cJSON_GetArraySize(chat);
    for (int i = 0; i < nm; i++)
        msgs[i] = (chat_message){cJSON_GetObjectItem(cJSON_GetArrayItem(chat, i), "role")->valuestring,
                                 cJSON_GetObjectItem(cJSON_GetArrayItem(chat, i), "content")->valuestring};
    char *text = llm_codec_render_chat(codec, msgs, nm);
    int *ids = NULL, n = 0;
    CHECK_OK(llm_codec_encode(codec, text, false, true, &ids, &n));
    bool same = same_ids(ids, n, cJSON_GetObjectItem(c, "chat_ids"));
    CHECK(same, "%s: the chat gives other ids than transformers' apply_chat_template", label);
    if (!same) print_ids("got", ids, n);
    free(ids);
    free(text);
}

static void check_bos(const cJSON *root) {
    const cJSON *c;
    llm *any = NULL;   /* a model for the folder-only tokenizers (same vocabulary size) */
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "cases")) {
        char path[256];
        const cJSON *g = cJSON_GetObjectItem(c, "gguf");
        if (cJSON_IsString(g)) {
            snprintf(path, sizeof path, "llm_bos/%s", g->valuestring);
            llm *m = llm_open(fixture_path(path));
            CHECK(m != NULL, "%s: %s", path, ts_last_error());
            if (!m) continue;
            llm_codec *codec = llm_codec_open(m, fixture_path(path), NULL);
            CHECK(codec != NULL, "%s: %s", path, ts_last_error());
            if (codec) check_codec(codec, g->valuestring, root, c);
            llm_codec_destroy(&codec);
            if (!any) any = m;
            else llm_destroy(&m);
        }
        const char *folder = cJSON_GetObjectItem(c, "folder")->valuestring;
        snprintf(path, sizeof path, "llm_bos/%s", folder);
        if (!any) continue;
        llm_codec *codec = llm_codec_open(any, "hf", fixture_path(path));
        CHECK(codec != NULL, "%s: %s", path, ts_last_error());
        if (codec) check_codec(codec, folder, root, c);
        llm_codec_destroy(&codec);
    }
    llm_destroy(&any);
}

/* Greedy decoding of nul.gguf emits <0x00> after any prompt: its text is NUL bytes. */
static void check_nul_bytes(const cJSON *root) {
    char path[256];
    snprintf(path, sizeof path, "llm_bos/%s", cJSON_GetObjectItem(root, "nul_model")->valuestring);
    llm *m = llm_open(fixture_path(path));
    CHECK(m != NULL, "%s: %s", path, ts_last_error());
    if (!m) return;
    llm_codec *codec = llm_codec_open(m, fixture_path(path), NULL);
    CHECK(codec != NULL, "%s", ts_last_error());
    int *ids = NULL, n = 0;
    if (codec) CHECK_OK(llm_codec_encode(codec, "a cat", true, false, &ids, &n));
    if (!codec || !ids) { llm_codec_destroy(&codec); llm_destroy(&m); return; }
    llm_state *s = llm_state_new(m, test_ctx(), 1, 32, 8);
    llm_sampling sp = llm_sampling_greedy();
    llm_generation gen = {.max_tokens = 5, .stop = (const char *[]){"never"}, .n_stop = 1};
    llm_detokenizer detok = llm_codec_detokenizer(codec);
    llm_output out;
    const int *prompts[1] = {ids};
    CHECK_OK(llm_generate(m, s, 1, prompts, &n, &sp, &gen, &detok, &out));
    const int nul = cJSON_GetObjectItem(root, "nul_token")->valueint;
    bool all_nul = out.n_tokens == 5;
    for (int i = 0; i < out.n_tokens; i++) all_nul &= out.tokens[i] == nul;
    CHECK(all_nul, "nul.gguf: greedy tokens are not <0x00> x 5 (%d tokens)", out.n_tokens);
    static const char five[5] = {0};
    CHECK(out.text && out.text_len == 5 && memcmp(out.text, five, 5) == 0 && out.text[5] == 0,
          "5 <0x00> tokens: %zu bytes of text, want 5 NUL bytes", out.text_len);
    llm_output_free(&out, 1);
    llm_state_destroy(&s);
    free(ids);
    llm_codec_destroy(&codec);
    llm_destroy(&m);
}

int main(void) {
    TEST_BEGIN();
    char *text = read_text_file(fixture_path("llm_bos/cases.json"), NULL);
    CHECK(text != NULL, "%s", ts_last_error());
    if (!text) return TEST_END();
    cJSON *root = cJSON_Parse(text);
    check_bos(root);
    check_nul_bytes(root);
    cJSON_Delete(root);
    free(text);
    return TEST_END();
}
