/*
 * test_clip_tokenizer.c — token ids against transformers' CLIPTokenizer.
 *
 * tests/fixtures/clip/tokenizer_ids.json (tools/gen_clip_fixtures.py) holds >= 300 strings
 * with the ids of transformers' slow CLIPTokenizer (no ftfy) and, where they differ, of the
 * tokenizers-backed one. Both real vocabulary files in ../shared/data must give them all.
 */
#include "models/text/bpe.h"
#include "models/text/clip_tokenizer.h"
#include "models/formats/model_files.h"
#include "tests/test.h"

/* The special ids of OpenAI's CLIP vocabulary (the real files in ../shared/data). */
#define CLIP_BOS_ID 49406
#define CLIP_EOS_ID 49407

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static bool same_ids(const int32_t *got, int n, const cJSON *want) {
    if (cJSON_GetArraySize(want) != n) return false;
    int i = 0;
    for (const cJSON *e = want->child; e; e = e->next, i++)
        if ((int32_t)e->valuedouble != got[i]) return false;
    return true;
}

static void print_mismatch(const char *label, const char *text, const int32_t *got, int n, const cJSON *want) {
    fprintf(stderr, "%s: \"%.60s\"\n  got ", label, text);
    for (int i = 0; i < n && i < 40; i++) fprintf(stderr, "%d ", got[i]);
    char *w = cJSON_PrintUnformatted(want);
    fprintf(stderr, "\n  want %.300s\n", w);
    free(w);
}

/* ids with BOS/EOS and no truncation, as tokenizer(text)["input_ids"]. */
static int encode_wrapped(const clip_tokenizer *tok, const char *text, size_t len, int32_t **out) {
    int32_t *ids;
    int n;
    if (clip_tokenizer_encode(tok, text, len, &ids, &n) != 0) return -1;
    *out = ts_malloc(sizeof **out * (size_t)(n + 2));
    (*out)[0] = CLIP_BOS_ID;
    if (n) memcpy(*out + 1, ids, sizeof *ids * (size_t)n);
    (*out)[n + 1] = CLIP_EOS_ID;
    free(ids);
    return n + 2;
}

static void check_cases(clip_tokenizer *tok, const cJSON *doc, const char *label) {
    const cJSON *cases = cJSON_GetObjectItem(doc, "cases");
    CHECK(cJSON_GetArraySize(cases) >= 300, "only %d strings", cJSON_GetArraySize(cases));
    for (int flavor = 0; flavor < 2; flavor++) {
        clip_tokenizer_set_flavor(tok, (clip_tokenizer_flavor)flavor);
        int bad = 0;
        for (const cJSON *c = cases->child; c; c = c->next) {
            const char *text = cJSON_GetObjectItem(c, "text")->valuestring;
            const cJSON *want = cJSON_GetObjectItem(c, "ids");
            if (flavor == CLIP_TOKENIZER_FAST && cJSON_GetObjectItem(c, "ids_fast")) want = cJSON_GetObjectItem(c, "ids_fast");
            const cJSON *hex = cJSON_GetObjectItem(c, "hex");
            char bytes[256];
            size_t len = strlen(text);
            if (hex) { /* text with a NUL byte */
                len = strlen(hex->valuestring) / 2;
                for (size_t i = 0; i < len && i < sizeof bytes; i++) sscanf(hex->valuestring + 2 * i, "%2hhx", (unsigned char *)&bytes[i]);
                text = bytes;
            }
            int32_t *got = NULL;
            int n = encode_wrapped(tok, text, len, &got);
            if (n < 0 || !same_ids(got, n, want)) {
                if (bad++ < 5) print_mismatch(label, text, got, n, want);
            }
            free(got);
        }
        CHECK(bad == 0, "%s (%s flavor): %d strings differ", label, flavor ? "fast" : "slow", bad);
    }
    clip_tokenizer_set_flavor(tok, CLIP_TOKENIZER_SLOW);

    /* Padding and truncation to 77, EOS-padded (SD 1.x) and zero-padded (SD 2.x). */
    const cJSON *padded = cJSON_GetObjectItem(doc, "padded");
    for (const cJSON *c = padded->child; c; c = c->next) {
        const char *text = cJSON_GetObjectItem(c, "text")->valuestring;
        bool zero = strcmp(cJSON_GetObjectItem(c, "pad")->valuestring, "zero") == 0;
        int32_t *ids, *chunks;
        int n;
        CHECK_OK(clip_tokenizer_encode(tok, text, strlen(text), &ids, &n));
        int nc = clip_tokens_to_chunks(tok, ids, n, zero ? CLIP_PAD_ZERO_ID : CLIP_EOS_ID, true, 1, &chunks);
        CHECK(nc == 1, "truncation gives %d chunks", nc);
        CHECK(same_ids(chunks, CLIP_CONTEXT_LENGTH, cJSON_GetObjectItem(c, "ids")), "%s: padded '%.30s'", label, text);
        free(ids);
        free(chunks);
    }
}

static void check_chunks(const clip_tokenizer *tok) {
    int32_t ids[160];
    for (int i = 0; i < 160; i++) ids[i] = 1000 + i;
    int32_t *c;
    int n = clip_tokens_to_chunks(tok, ids, 160, CLIP_EOS_ID, false, 1, &c);
    CHECK(n == 3, "160 tokens make %d chunks", n);
    CHECK(c[0] == CLIP_BOS_ID && c[1] == 1000 && c[75] == 1074 && c[76] == CLIP_EOS_ID, "chunk 0");
    CHECK(c[77] == CLIP_BOS_ID && c[78] == 1075 && c[77 + 76] == CLIP_EOS_ID, "chunk 1");
    CHECK(c[154] == CLIP_BOS_ID && c[155] == 1150 && c[164] == 1159 && c[165] == CLIP_EOS_ID && c[166] == CLIP_EOS_ID, "chunk 2");
    free(c);
    n = clip_tokens_to_chunks(tok, ids, 75, 0, false, 1, &c);
    CHECK(n == 1 && c[76] == CLIP_EOS_ID, "75 tokens fill exactly one chunk");
    free(c);
    n = clip_tokens_to_chunks(tok, NULL, 0, 0, false, 2, &c);
    CHECK(n == 2 && c[0] == CLIP_BOS_ID && c[1] == CLIP_EOS_ID && c[2] == 0 && c[77] == CLIP_BOS_ID && c[78] == CLIP_EOS_ID,
          "an empty prompt padded to two chunks");
    free(c);
}

/* A vocabulary of one's own (like the demo model's) has its own <|startoftext|> and
 * <|endoftext|> ids: chunks must use those, not OpenAI's 49406/49407. */
static void check_own_special_ids(void) {
    char dir[] = "/tmp/tessera-clip-vocab.XXXXXX";
    if (!mkdtemp(dir)) { CHECK(false, "mkdtemp"); return; }
    char vocab[256], merges[256];
    snprintf(vocab, sizeof vocab, "%s/vocab.json", dir);
    snprintf(merges, sizeof merges, "%s/merges.txt", dir);
    /* the 256 byte characters, the same with </w>, then the two special tokens at 512, 513 */
    FILE *f = fopen(vocab, "w");
    fprintf(f, "{");
    for (int end = 0; end < 2; end++)
        for (int b = 0; b < 256; b++) {
            uint32_t cp = bpe_byte_to_codepoint((uint8_t)b);
            char u[8] = {0};
            if (cp < 0x80) u[0] = (char)cp;
            else { u[0] = (char)(0xC0 | (cp >> 6)); u[1] = (char)(0x80 | (cp & 0x3F)); }
            if (cp == '"' || cp == '\\') fprintf(f, "\"\\%s%s\": %d, ", u, end ? "</w>" : "", end * 256 + b);
            else fprintf(f, "\"%s%s\": %d, ", u, end ? "</w>" : "", end * 256 + b);
        }
    fprintf(f, "\"<|startoftext|>\": 512, \"<|endoftext|>\": 513}");
    fclose(f);
    f = fopen(merges, "w");
    fprintf(f, "#version: 0.2\n");
    fclose(f);
    clip_tokenizer *tok = clip_tokenizer_from_vocab_files(vocab, merges);
    CHECK(tok != NULL, "%s", ts_last_error());
    if (tok) {
        CHECK(clip_tokenizer_bos(tok) == 512 && clip_tokenizer_eos(tok) == 513, "special ids %d %d",
              clip_tokenizer_bos(tok), clip_tokenizer_eos(tok));
        int32_t *ids, *c;
        int n;
        CHECK_OK(clip_tokenizer_encode(tok, "a", 1, &ids, &n));
        CHECK(n == 1 && ids[0] == 256 + 'a', "'a' is 'a</w>'");
        n = clip_tokens_to_chunks(tok, ids, 1, clip_tokenizer_eos(tok), false, 1, &c);
        CHECK(n == 1 && c[0] == 512 && c[1] == 256 + 'a' && c[2] == 513 && c[76] == 513, "chunk [%d %d %d .. %d]",
              c[0], c[1], c[2], c[76]);
        free(ids);
        free(c);
        clip_tokenizer_destroy(&tok);
    }
    remove(vocab);
    remove(merges);
    rmdir(dir);
}

int main(void) {
    TEST_BEGIN();
    char *json = read_text_file(fixture_path("clip/tokenizer_ids.json"), NULL);
    CHECK(json != NULL, "%s", ts_last_error());
    cJSON *doc = json ? cJSON_Parse(json) : NULL;
    CHECK(doc != NULL, "fixture is not JSON");

    clip_tokenizer *from_json = clip_tokenizer_load(data_path("clip_tokenizer_sd15"));
    CHECK(from_json != NULL, "%s", ts_last_error());
    clip_tokenizer *from_gz = clip_tokenizer_load(data_path("clip/bpe_simple_vocab_16e6.txt.gz"));
    CHECK(from_gz != NULL, "%s", ts_last_error());
    if (doc && from_json) check_cases(from_json, doc, "vocab.json+merges.txt");
    if (doc && from_gz) check_cases(from_gz, doc, "bpe_simple_vocab_16e6.txt.gz");
    if (from_json) {
        CHECK(clip_tokenizer_vocab_size(from_json) == 49408, "vocab size %d", clip_tokenizer_vocab_size(from_json));
        CHECK(clip_tokenizer_token_id(from_json, "!") == 0, "'!' is id 0");
        CHECK(clip_tokenizer_token_id(from_json, "<|endoftext|>") == CLIP_EOS_ID, "EOS id");
    }
    if (from_gz) CHECK(clip_tokenizer_vocab_size(from_gz) == 49408, "vocab size %d", clip_tokenizer_vocab_size(from_gz));

    /* Invalid UTF-8 is an error naming the byte offset. */
    if (from_json) {
        int32_t *ids;
        int n;
        const char bad[] = "ok \xc3\x28 no";
        CHECK(clip_tokenizer_encode(from_json, bad, strlen(bad), &ids, &n) == -1, "invalid UTF-8 accepted");
        CHECK(strstr(ts_last_error(), "byte 3") != NULL, "message: %s", ts_last_error());
        const char surrogate[] = "ab\xed\xa0\x80";
        CHECK(clip_tokenizer_encode(from_json, surrogate, strlen(surrogate), &ids, &n) == -1, "surrogate accepted");
        CHECK(strstr(ts_last_error(), "byte 2") != NULL, "message: %s", ts_last_error());
        const char truncated[] = "abc\xe4\xb8";
        CHECK(clip_tokenizer_encode(from_json, truncated, strlen(truncated), &ids, &n) == -1, "cut sequence accepted");
        CHECK(strstr(ts_last_error(), "byte 3") != NULL, "message: %s", ts_last_error());
    }
    CHECK(clip_tokenizer_load("/nonexistent/tokenizer") == NULL, "missing path accepted");
    CHECK(strstr(ts_last_error(), "/nonexistent/tokenizer") != NULL, "message: %s", ts_last_error());
    if (from_json) check_chunks(from_json);
    check_own_special_ids();

    clip_tokenizer_destroy(&from_json);
    clip_tokenizer_destroy(&from_gz);
    cJSON_Delete(doc);
    free(json);
    return TEST_END();
}
