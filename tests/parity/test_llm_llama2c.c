/* llama2.c parity: the real stories260K checkpoint with tok512, run from BOS for 256 steps,
 * prints exactly the outputs quoted in llama2.c's doc/stories260K.md: greedy (-t 0.0) and
 * sampled (-t 1.0 -p 0.9 -s 133742, which also pins the sampler and its seeded generator).
 * The quoted texts are in tests/fixtures/llm/stories260K.json (tools/gen_llm_fixtures.py). */
#include "models/formats/llama2c.h"
#include "models/llm/llm_sample.h"
#include "models/formats/model_files.h"
#include "tests/test.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

static const char *piece(void *ctx, int prev, int token, size_t *len) {
    const char *p = llama2c_decode(ctx, prev, token);
    *len = strlen(p);
    return p;
}

int main(void) {
    TEST_BEGIN();
    llm *m = llm_open(data_path("llama2c/stories260K.bin"));
    CHECK(m != NULL, "%s", ts_last_error());
    if (!m) return TEST_END();
    const llm_config *c = llm_get_config(m);
    CHECK(c->dim == 64 && c->n_layers == 5 && c->n_heads == 8 && c->n_kv_heads == 4 && c->vocab_size == 512,
          "stories260K config: dim %d layers %d heads %d/%d vocab %d", c->dim, c->n_layers, c->n_heads, c->n_kv_heads, c->vocab_size);
    llama2c_tokenizer *tok = llama2c_tokenizer_open(data_path("llama2c/tok512.bin"), c->vocab_size);
    CHECK(tok != NULL, "%s", ts_last_error());
    size_t size;
    char *text = read_text_file(fixture_path("llm/stories260K.json"), &size);
    CHECK(text != NULL, "%s", ts_last_error());
    if (!tok || !text) return TEST_END();
    cJSON *root = cJSON_Parse(text);
    const cJSON *run;
    int runs = 0;
    cJSON_ArrayForEach(run, cJSON_GetObjectItem(root, "runs")) {
        llm_sampling sp = llm_sampling_greedy();
        sp.temperature = (float)cJSON_GetObjectItem(run, "temperature")->valuedouble;
        sp.top_p = (float)cJSON_GetObjectItem(run, "top_p")->valuedouble;
        sp.seed = (uint64_t)cJSON_GetObjectItem(run, "seed")->valuedouble;
        int steps = cJSON_GetObjectItem(run, "steps")->valueint;
        /* run.c: starts from BOS at position 0, runs `steps` positions, stops on BOS (1) */
        int bos = 1, end = 1, prompt_len = 1;
        const int *prompts[1] = {&bos};
        llm_generation gen = {.max_tokens = steps, .end_ids = &end, .n_end = 1};
        llm_detokenizer detok = {tok, piece};
        llm_state *s = llm_state_new(m, test_ctx(), 1, 0, 16);
        llm_output out;
        CHECK_OK(llm_generate(m, s, 1, prompts, &prompt_len, &sp, &gen, &detok, &out));
        const char *want = cJSON_GetObjectItem(run, "output")->valuestring;
        size_t n = out.text ? strlen(out.text) : 0;
        bool same = out.text && strlen(want) == n + 1 && strncmp(out.text, want, n) == 0 && want[n] == '\n';
        CHECK(same, "stories260K (%s):\n got: %s\nwant: %s", cJSON_GetObjectItem(run, "command")->valuestring,
              out.text ? out.text : "(null)", want);
        llm_output_free(&out, 1);
        llm_state_destroy(&s);
        runs++;
    }
    CHECK(runs == 2, "two documented runs, found %d", runs);

    /* the tokenizer: encode then decode gives the text back (with its dummy prefix space) */
    const char *samples[2] = {"Once upon a time, Lily saw a big red ball.",
                              "Un caf\xc3\xa9 \xe2\x98\x95 d\xc3\xad" "a."};  /* bytes outside tok512: <0xXX> */
    for (int k = 0; k < 2; k++) {
        const char *sample = samples[k];
        int ids[128];
        int n = llama2c_encode(tok, sample, true, false, ids);
        CHECK(n > 2 && ids[0] == 1 && (k == 1 || n < (int)strlen(sample)), "encode gave %d tokens", n);
        bool bytes = false;
        for (int i = 0; i < n; i++) bytes |= ids[i] >= 3 && ids[i] < 259;
        CHECK(k == 0 || bytes, "non-ASCII text falls back to byte tokens");
        char back[256] = "";
        for (int i = 1; i < n; i++) strcat(back, llama2c_decode(tok, ids[i - 1], ids[i]));
        CHECK(strcmp(back, sample) == 0, "decode(encode(x)) = '%s'", back);
    }
    cJSON_Delete(root);
    free(text);
    llama2c_tokenizer_destroy(&tok);
    llm_destroy(&m);
    return TEST_END();
}
