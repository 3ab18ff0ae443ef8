/* LLM tokenizers give the same ids as the reference libraries (sentencepiece for Llama 2,
 * transformers/tokenizers for GPT-2 and the Qwen2 / Llama 3 byte-level BPEs), from GGUF
 * metadata and from Hugging Face files; decoding gives the text back. */
#include "models/llm/llm_tokenizer.h"
#include "models/formats/model_files.h"
#include "tests/test.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

static void check_against(const char *label, llm_tokenizer *tok, const char *fixture, bool add_bos, bool lossless) {
    CHECK(tok != NULL, "%s: %s", label, ts_last_error());
    if (!tok) return;
    char *text = read_text_file(fixture_path(fixture), NULL);
    CHECK(text != NULL, "%s", ts_last_error());
    if (!text) return;
    cJSON *root = cJSON_Parse(text);
    free(text);
    const cJSON *strings = cJSON_GetObjectItem(root, "strings"), *ids = cJSON_GetObjectItem(root, "ids");
    int total = cJSON_GetArraySize(strings), matched = 0;
    for (int i = 0; i < total; i++) {
        const char *s = cJSON_GetArrayItem(strings, i)->valuestring;
        const cJSON *want = cJSON_GetArrayItem(ids, i);
        int32_t *got;
        int n;
        if (llm_tokenize(tok, s, strlen(s), add_bos, true, &got, &n) != 0) {
            fprintf(stderr, "%s: string %d: %s\n", label, i, ts_last_error());
            continue;
        }
        bool same = n == cJSON_GetArraySize(want);
        for (int k = 0; same && k < n; k++) same = got[k] == cJSON_GetArrayItem(want, k)->valueint;
        if (same) matched++;
        else {
            fprintf(stderr, "%s: string %d \"%.60s\": got %d ids [", label, i, s, n);
            for (int k = 0; k < n && k < 12; k++) fprintf(stderr, "%d ", got[k]);
            fprintf(stderr, "], want %d [", cJSON_GetArraySize(want));
            for (int k = 0; k < cJSON_GetArraySize(want) && k < 12; k++) fprintf(stderr, "%d ", cJSON_GetArrayItem(want, k)->valueint);
            fprintf(stderr, "]\n");
        }
        if (lossless && same) {
            char *back = llm_detokenize(tok, got, n, false);
            CHECK(strcmp(back, s) == 0, "%s: decode of string %d gives \"%.60s\"", label, i, back);
            free(back);
        }
        free(got);
    }
    CHECK(matched == total, "%s: %d of %d strings match the reference ids", label, matched, total);
    printf("%s: %d/%d strings identical\n", label, matched, total);
    cJSON_Delete(root);
}

static llm_tokenizer *from_gguf_file(const char *rel, gguf **keep) {
    *keep = gguf_open(fixture_path(rel));
    if (!*keep) return NULL;
    return llm_tokenizer_from_gguf(*keep);
}

int main(void) {
    TEST_BEGIN();
    gguf *g;
    llm_tokenizer *tok;

    tok = llm_tokenizer_from_hf(data_path("fooocus_expansion"));
    check_against("gpt2 (vocab.json + merges.txt)", tok, "llm_tokenizer/gpt2.json", false, true);
    llm_tokenizer_destroy(&tok);

    tok = from_gguf_file("llm_tokenizer/llama2-vocab.gguf", &g);
    check_against("llama2 (GGUF, SentencePiece)", tok, "llm_tokenizer/llama2.json", true, false);
    if (tok) {
        int32_t *ids;
        int n;
        CHECK(llm_tokenize(tok, "ab\xff", 3, true, false, &ids, &n) == -1 && strstr(ts_last_error(), "byte 2"),
              "invalid UTF-8 names the offset: %s", ts_last_error());
        CHECK_OK(llm_tokenize(tok, "Hello world", 11, true, false, &ids, &n));
        char *back = llm_detokenize(tok, ids, n, true);
        CHECK(strcmp(back, "Hello world") == 0, "spm decode: '%s'", back);
        free(back);
        free(ids);
    }
    llm_tokenizer_destroy(&tok);
    gguf_close(&g);

    const char *families[] = {"qwen2", "llama3"};
    for (int f = 0; f < 2; f++) {
        char rel[128], label[128];
        snprintf(rel, sizeof rel, "llm_tokenizer/%s-tokenizer.json", families[f]);
        snprintf(label, sizeof label, "%s (tokenizer.json)", families[f]);
        tok = llm_tokenizer_from_hf(fixture_path(rel));
        snprintf(rel, sizeof rel, "llm_tokenizer/%s.json", families[f]);
        check_against(label, tok, rel, false, true);
        llm_tokenizer_destroy(&tok);

        snprintf(rel, sizeof rel, "llm_tokenizer/%s-vocab.gguf", families[f]);
        snprintf(label, sizeof label, "%s (GGUF)", families[f]);
        tok = from_gguf_file(rel, &g);
        snprintf(rel, sizeof rel, "llm_tokenizer/%s.json", families[f]);
        check_against(label, tok, rel, false, true);
        llm_tokenizer_destroy(&tok);
        gguf_close(&g);
    }
    return TEST_END();
}
