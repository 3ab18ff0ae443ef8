/* Sampling and the generate loop: each filter does what it says (greedy, top-k, top-p,
 * min-p, repetition penalty, temperature), draws follow the distribution, a seed repeats,
 * and generation stops on max tokens, end tokens and stop strings, with the stop text
 * cut off. (The seeded sampler is also pinned against llama2.c's documented output in
 * parity/test_llm_llama2c.) */
#include "models/llm/llm_sample.h"
#include "models/formats/model_files.h"
#include "tests/test.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int draw(llm_sampling p, const float *logits, int n, const int *hist, int nh) {
    static llm_sampler *s;
    static llm_sampling last;
    if (!s || memcmp(&last, &p, sizeof p) != 0) {
        llm_sampler_destroy(&s);
        s = llm_sampler_new(&p, n);
        last = p;
    }
    float buf[16];
    memcpy(buf, logits, (size_t)n * sizeof(float));
    return llm_sampler_sample(s, buf, hist, nh);
}

static void check_filters(void) {
    const float logits[6] = {0.1f, 2.0f, 1.5f, -1.0f, 1.9f, 0.0f};
    llm_sampling g = llm_sampling_greedy();
    CHECK(draw(g, logits, 6, NULL, 0) == 1, "greedy picks the largest");

    llm_sampling p = g;
    p.temperature = 1.5f;
    p.top_k = 1;
    p.seed = 7;
    bool only_max = true;
    for (int i = 0; i < 200; i++) only_max &= draw(p, logits, 6, NULL, 0) == 1;
    CHECK(only_max, "top-k 1 always picks the largest");

    p.top_k = 2;
    bool in_top2 = true;
    for (int i = 0; i < 500; i++) { int t = draw(p, logits, 6, NULL, 0); in_top2 &= t == 1 || t == 4; }
    CHECK(in_top2, "top-k 2 picks only tokens 1 and 4");

    p.top_k = 0;
    p.top_p = 0.01f;
    only_max = true;
    for (int i = 0; i < 200; i++) only_max &= draw(p, logits, 6, NULL, 0) == 1;
    CHECK(only_max, "top-p 0.01 keeps only the most likely");

    p.top_p = 1.0f;
    p.min_p = 0.95f;   /* token 4 has p4/p1 = e^(-0.1/1.5) = 0.936 */
    only_max = true;
    for (int i = 0; i < 200; i++) only_max &= draw(p, logits, 6, NULL, 0) == 1;
    CHECK(only_max, "min-p 0.95 drops everything but the most likely");
    p.min_p = 0.9f;
    bool saw4 = false, in_set = true;
    for (int i = 0; i < 500; i++) { int t = draw(p, logits, 6, NULL, 0); saw4 |= t == 4; in_set &= t == 1 || t == 4; }
    CHECK(saw4 && in_set, "min-p 0.9 keeps tokens 1 and 4 only");

    /* repetition penalty: 2.0/1.5 = 1.33 < 1.9, so token 4 wins once 1 was seen */
    llm_sampling r = g;
    r.repeat_penalty = 1.5f;
    int hist[3] = {1, 1, 5};
    CHECK(draw(r, logits, 6, hist, 3) == 4, "penalised token 1 loses to token 4");
    r.repeat_last_n = 1;
    CHECK(draw(r, logits, 6, hist, 3) == 1, "penalty window of 1 only sees token 5");
    const float neg[3] = {-1.0f, -1.2f, -3.0f};
    int h0 = 0;
    r.repeat_last_n = 64;
    CHECK(draw(r, neg, 3, &h0, 1) == 1, "negative logits are multiplied (-1.5 < -1.2)");
}

static void check_distribution_and_seed(void) {
    /* probabilities 0.5, 0.3, 0.2 at temperature 1 */
    const float logits[3] = {logf(0.5f), logf(0.3f), logf(0.2f)};
    llm_sampling p = llm_sampling_greedy();
    p.temperature = 1.0f;
    p.seed = 12345;
    llm_sampler *s = llm_sampler_new(&p, 3);
    int counts[3] = {0};
    const int N = 20000;
    for (int i = 0; i < N; i++) {
        float b[3] = {logits[0], logits[1], logits[2]};
        counts[llm_sampler_sample(s, b, NULL, 0)]++;
    }
    CHECK(fabs(counts[0] / (double)N - 0.5) < 0.02 && fabs(counts[1] / (double)N - 0.3) < 0.02 &&
          fabs(counts[2] / (double)N - 0.2) < 0.02, "frequencies %d %d %d of %d", counts[0], counts[1], counts[2], N);
    llm_sampler_destroy(&s);
    /* temperature: low makes the top token dominate */
    p.temperature = 0.1f;
    s = llm_sampler_new(&p, 3);
    int top = 0;
    for (int i = 0; i < 1000; i++) { float b[3] = {logits[0], logits[1], logits[2]}; top += llm_sampler_sample(s, b, NULL, 0) == 0; }
    CHECK(top > 975, "temperature 0.1 (p = 0.994): top token %d of 1000", top);
    llm_sampler_destroy(&s);
    /* same seed, same draws; another seed, other draws */
    p.temperature = 1.0f;
    int a[64], b2[64], c[64];
    for (int run = 0; run < 3; run++) {
        p.seed = run == 2 ? 99 : 42;
        s = llm_sampler_new(&p, 3);
        for (int i = 0; i < 64; i++) {
            float b[3] = {logits[0], logits[1], logits[2]};
            int t = llm_sampler_sample(s, b, NULL, 0);
            (run == 0 ? a : run == 1 ? b2 : c)[i] = t;
        }
        llm_sampler_destroy(&s);
    }
    CHECK(memcmp(a, b2, sizeof a) == 0, "same seed gives the same draws");
    CHECK(memcmp(a, c, sizeof a) != 0, "another seed gives other draws");
}

/* A detokenizer that writes each id as "<id>". */
static const char *id_piece(void *ctx, int prev, int token, size_t *len) {
    static char buf[16];
    *len = (size_t)snprintf(buf, sizeof buf, "<%d>", token);
    return buf;
}

/* What a constraint saw, and what it allows: only `only` (or every token when -1). */
typedef struct {
    int only, calls, fail_at;
    bool state_ok;
    int last_prompt_token;
} constraint_probe;

static int probe_restrict(void *ctx, int prompt, const int *generated, int n_generated, int prev, const char *text,
                          size_t text_len, float *logits, int vocab) {
    constraint_probe *p = ctx;
    /* the state it is given: prompt 0, n tokens so far, prev = the last of them (the prompt's
     * last at first), text = their pieces */
    char want[512] = "";
    for (int i = 0; i < n_generated; i++) snprintf(want + strlen(want), sizeof want - strlen(want), "<%d>", generated[i]);
    bool ok = prompt == 0 && n_generated == p->calls && prev == (n_generated ? generated[n_generated - 1] : p->last_prompt_token) &&
              text_len == strlen(want) && memcmp(text, want, text_len) == 0;
    if (!ok) p->state_ok = false;
    if (p->calls++ == p->fail_at) return ts_fail("probe: refusing at step %d", p->fail_at);
    if (p->only >= 0)
        for (int t = 0; t < vocab; t++)
            if (t != p->only) logits[t] = -INFINITY;
    return 0;
}

static void check_constraint(llm *m, llm_state *s, const int *prompt, int plen, const int *cont, const llm_detokenizer *detok) {
    const int *prompts[1] = {prompt};
    llm_output out;
    llm_sampling greedy = llm_sampling_greedy(), hot = greedy;
    hot.temperature = 1.5f, hot.top_p = 0.95f, hot.repeat_penalty = 1.3f, hot.seed = 7;
    /* allowing everything changes nothing */
    constraint_probe p = {.only = -1, .fail_at = -1, .state_ok = true, .last_prompt_token = prompt[plen - 1]};
    llm_constraint c = {&p, probe_restrict};
    llm_generation gen = {.max_tokens = 6, .end_ids = &(int){-1}, .n_end = 1, .constraint = &c};
    CHECK_OK(llm_generate(m, s, 1, prompts, &plen, &greedy, &gen, detok, &out));
    CHECK(out.n_tokens == 6 && memcmp(out.tokens, cont, 6 * sizeof(int)) == 0 && p.calls == 6 && p.state_ok,
          "an open constraint: %d tokens, %d calls, state %s", out.n_tokens, p.calls, p.state_ok ? "right" : "wrong");
    llm_output_free(&out, 1);
    /* one allowed token: every step takes it, greedy or sampled hot */
    int forced = cont[0] == 5 ? 6 : 5;
    for (int k = 0; k < 2; k++) {
        p = (constraint_probe){.only = forced, .fail_at = -1, .state_ok = true, .last_prompt_token = prompt[plen - 1]};
        CHECK_OK(llm_generate(m, s, 1, prompts, &plen, k ? &hot : &greedy, &gen, detok, &out));
        bool all = out.n_tokens == 6;
        for (int i = 0; i < out.n_tokens; i++) all &= out.tokens[i] == forced;
        CHECK(all && p.state_ok, "%s: forced token %d every step (%d tokens)", k ? "sampled" : "greedy", forced, out.n_tokens);
        llm_output_free(&out, 1);
    }
    /* a constraint's error stops the generation with it */
    p = (constraint_probe){.only = -1, .fail_at = 2, .state_ok = true, .last_prompt_token = prompt[plen - 1]};
    CHECK(llm_generate(m, s, 1, prompts, &plen, &greedy, &gen, detok, &out) == -1 && strstr(ts_last_error(), "step 2"),
          "the constraint's error: %s", ts_last_error());
}

static void check_generate_stops(void) {
    size_t size;
    char *text = read_text_file(fixture_path("llm/cases.json"), &size);
    CHECK(text != NULL, "%s", ts_last_error());
    if (!text) return;
    cJSON *root = cJSON_Parse(text);
    const cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItem(root, "cases"), 0);
    char path[256];
    snprintf(path, sizeof path, "llm/%s", cJSON_GetObjectItem(c0, "model")->valuestring);
    llm *m = llm_open(fixture_path(path));
    CHECK(m != NULL, "%s", ts_last_error());
    const cJSON *g0 = cJSON_GetArrayItem(cJSON_GetObjectItem(c0, "greedy"), 2);
    int plen = cJSON_GetArraySize(cJSON_GetObjectItem(g0, "prompt"));
    int prompt[64], cont[64];
    for (int i = 0; i < plen; i++) prompt[i] = cJSON_GetArrayItem(cJSON_GetObjectItem(g0, "prompt"), i)->valueint;
    for (int i = 0; i < 12; i++) cont[i] = cJSON_GetArrayItem(cJSON_GetObjectItem(g0, "continuation"), i)->valueint;
    if (!m) { cJSON_Delete(root); free(text); return; }
    llm_state *s = llm_state_new(m, test_ctx(), 1, 64, 8);
    llm_sampling sp = llm_sampling_greedy();
    llm_detokenizer detok = {NULL, id_piece};
    const int *prompts[1] = {prompt};
    llm_output out;
    int none = -1;

    /* max tokens */
    llm_generation gen = {.max_tokens = 5, .end_ids = &none, .n_end = 1};
    CHECK_OK(llm_generate(m, s, 1, prompts, &plen, &sp, &gen, &detok, &out));
    CHECK(out.n_tokens == 5 && out.finish == LLM_FINISH_LENGTH && memcmp(out.tokens, cont, 5 * sizeof(int)) == 0,
          "max_tokens 5: %d tokens, finish %d", out.n_tokens, out.finish);
    llm_output_free(&out, 1);

    /* stop string: the text of the 4th token (with the 3rd's closing '>'), cut from the text */
    char stop[32], want[128] = "";
    snprintf(stop, sizeof stop, "><%d>", cont[3]);
    for (int i = 0; i < 3; i++) snprintf(want + strlen(want), sizeof want - strlen(want), "<%d>", cont[i]);
    want[strlen(want) - 1] = 0;   /* the stop string begins with the 3rd token's '>' */
    const char *stops[2] = {"never-appears", stop};
    gen = (llm_generation){.max_tokens = 12, .stop = stops, .n_stop = 2, .end_ids = &none, .n_end = 1};
    CHECK_OK(llm_generate(m, s, 1, prompts, &plen, &sp, &gen, &detok, &out));
    CHECK(out.finish == LLM_FINISH_STOP && out.n_tokens == 4 && out.text && strcmp(out.text, want) == 0,
          "stop '%s': finish %d, %d tokens, text '%s' (want '%s')", stop, out.finish, out.n_tokens, out.text ? out.text : "", want);
    llm_output_free(&out, 1);

    /* end token: the 3rd continuation token ends the sequence and is not included */
    int end = cont[2];
    bool earlier = cont[0] == end || cont[1] == end;
    gen = (llm_generation){.max_tokens = 12, .end_ids = &end, .n_end = 1};
    CHECK_OK(llm_generate(m, s, 1, prompts, &plen, &sp, &gen, &detok, &out));
    CHECK(earlier || (out.finish == LLM_FINISH_END_TOKEN && out.n_tokens == 2), "end token: finish %d, %d tokens", out.finish, out.n_tokens);
    llm_output_free(&out, 1);

    /* a constraint (constrained decoding): sees each step's state, and its mask decides */
    check_constraint(m, s, prompt, plen, cont, &detok);

    /* bad input: empty prompt, prompt longer than the context */
    int zero = 0;
    CHECK(llm_generate(m, s, 1, prompts, &zero, &sp, &gen, NULL, &out) == -1 && strstr(ts_last_error(), "empty"),
          "empty prompt refused: %s", ts_last_error());
    int big = 64;
    CHECK(llm_generate(m, s, 1, prompts, &big, &sp, &gen, NULL, &out) == -1 && strstr(ts_last_error(), "context"),
          "over-long prompt refused: %s", ts_last_error());
    int bad_tok = 100000, sq = 0, ps = 0;
    float logits[256];
    CHECK(llm_forward(m, s, 1, &bad_tok, &sq, &ps, 1, NULL, logits) == -1 && strstr(ts_last_error(), "100000"),
          "token outside the vocabulary refused: %s", ts_last_error());
    llm_state_destroy(&s);
    llm_destroy(&m);
    cJSON_Delete(root);
    free(text);
}

int main(void) {
    TEST_BEGIN();
    check_filters();
    check_distribution_and_seed();
    check_generate_stops();
    return TEST_END();
}
