/* LLM parity: every fixture model (Llama and Qwen2; GGUF F32/F16/BF16/Q8_0/Q4_0/Q4_K/Q6_K
 * and Q4_1/Q5_0/Q5_1/Q2_K/Q3_K/Q5_K/IQ4_NL/IQ4_XS and a Q4_K_M layout; HF folders in F32 and BF16) gives transformers' logits within 1e-3 max abs, computed on
 * the weights as the file holds them (gguf.quants.dequantize), through the batched
 * prefill, the gemm path, and token-by-token decoding with the KV cache; and the same
 * greedy continuations, generated for several prompts of different lengths at once.
 * Fixtures: tools/gen_llm_fixtures.py. */
#include "models/llm/llm.h"
#include "models/llm/llm_sample.h"
#include "models/formats/model_files.h"
#include "tests/test.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define TOL 1.5e-4f   /* measured worst 3.0e-5 (qwen2_384_q4_k_m prefill); within 10x, see README, Testing */

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

static void check_case(const cJSON *c) {
    const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
    llm *m = llm_open(fixture_path(cJSON_GetObjectItem(c, "model")->valuestring));
    CHECK(m != NULL, "%s: %s", name, ts_last_error());
    if (!m) return;
    const llm_config *cfg = llm_get_config(m);
    const int V = cfg->vocab_size;
    int T;
    int *prompt = json_ints(cJSON_GetObjectItem(c, "prompt"), &T);
    tensor shape;
    float *want = fixture_npy(cJSON_GetObjectItem(c, "logits")->valuestring, &shape);
    CHECK(want && shape.shape[0] == T && shape.shape[1] == V, "%s: reference logits shape", name);
    if (!want) { free(prompt); llm_destroy(&m); return; }

    /* 1. the whole prompt as one batch, logits for every position */
    llm_state *s = llm_state_new(m, test_ctx(), 3, 64, 3 * T);
    float *logits = ts_malloc((size_t)3 * T * V * sizeof(float));
    int *seq = ts_calloc((size_t)3 * T, sizeof(int)), *pos = ts_malloc((size_t)3 * T * sizeof(int));
    int *tok = ts_malloc((size_t)3 * T * sizeof(int));
    for (int i = 0; i < T; i++) pos[i] = i;
    CHECK_OK(llm_forward(m, s, T, prompt, seq, pos, 0, NULL, logits));
    float e1 = max_err(logits, want, (size_t)T * V);
    CHECK(e1 <= TOL, "%s: prefill logits max abs error %g", name, e1);

    /* 2. three sequences in one batch of 3T rows (>= QMATMUL_GEMM_MIN_ROWS: the slab + gemm path) */
    for (int i = 0; i < 3 * T; i++) { tok[i] = prompt[i % T]; seq[i] = i / T; pos[i] = i % T; }
    CHECK(3 * T >= QMATMUL_GEMM_MIN_ROWS, "prompt of %d tokens too short for the gemm path", T);
    CHECK_OK(llm_forward(m, s, 3 * T, tok, seq, pos, 0, NULL, logits));
    float e2 = 0;
    for (int k = 0; k < 3; k++) e2 = fmaxf(e2, max_err(logits + (size_t)k * T * V, want, (size_t)T * V));
    CHECK(e2 <= TOL, "%s: three-sequence batch logits max abs error %g", name, e2);

    /* 3. token by token through the KV cache (sequence 1, the decode path) */
    float e3 = 0;
    for (int i = 0; i < T; i++) {
        int one_seq = 1, one_pos = i;
        CHECK_OK(llm_forward(m, s, 1, &prompt[i], &one_seq, &one_pos, 1, NULL, logits));
        e3 = fmaxf(e3, max_err(logits, want + (size_t)i * V, (size_t)V));
    }
    CHECK(e3 <= TOL, "%s: token-by-token logits max abs error %g", name, e3);
    llm_state_destroy(&s);

    /* 4. greedy continuations of prompts of different lengths, all batched together;
     *    then again with fewer slots than prompts and a small batch (slot reuse, chunked prefill) */
    const cJSON *greedy = cJSON_GetObjectItem(c, "greedy");
    int G = cJSON_GetArraySize(greedy);
    int **gp = ts_calloc((size_t)G, sizeof(int *)), *glen = ts_calloc((size_t)G, sizeof(int));
    int **gc = ts_calloc((size_t)G, sizeof(int *)), *gclen = ts_calloc((size_t)G, sizeof(int));
    for (int g = 0; g < G; g++) {
        gp[g] = json_ints(cJSON_GetObjectItem(cJSON_GetArrayItem(greedy, g), "prompt"), &glen[g]);
        gc[g] = json_ints(cJSON_GetObjectItem(cJSON_GetArrayItem(greedy, g), "continuation"), &gclen[g]);
    }
    llm_sampling sp = llm_sampling_greedy();
    int none = -1;
    llm_generation gen = {.max_tokens = gclen[0], .end_ids = &none, .n_end = 1};
    const int shapes[2][2] = {{G, 32}, {2, 4}};   /* {sequences, batch tokens} */
    /* the slot-reuse run once per family and block kind, to stay quick under ASan */
    bool reuse = strstr(name, "_f32") || strstr(name, "_q4_k") || strstr(name, "_q8_0") || strstr(name, "_q5_0");
    for (int k = 0; k < (reuse ? 2 : 1); k++) {
        llm_state *gs = llm_state_new(m, test_ctx(), shapes[k][0], 64, shapes[k][1]);
        llm_output *out = ts_calloc((size_t)G, sizeof(llm_output));
        CHECK_OK(llm_generate(m, gs, G, (const int *const *)gp, glen, &sp, &gen, NULL, out));
        for (int g = 0; g < G; g++) {
            bool same = out[g].n_tokens == gclen[g] && memcmp(out[g].tokens, gc[g], (size_t)gclen[g] * sizeof(int)) == 0;
            CHECK(same, "%s: greedy continuation of prompt %d (%d tokens, %d slots, batch %d) differs from transformers",
                  name, g, glen[g], shapes[k][0], shapes[k][1]);
        }
        llm_output_free(out, G);
        free(out);
        llm_state_destroy(&gs);
    }
    printf("%-12s %-5s logits max abs error: prefill %.2e, 3-seq batch %.2e, decode %.2e\n", name,
           llm_weight_type(m), e1, e2, e3);
    for (int g = 0; g < G; g++) { free(gp[g]); free(gc[g]); }
    free(gp); free(glen); free(gc); free(gclen);
    free(logits); free(seq); free(pos); free(tok); free(prompt); free(want);
    llm_destroy(&m);
}

/* Runs every case of one cases.json (paths in it are relative to its folder). */
static int check_cases(const char *folder) {
    char rel[256];
    snprintf(rel, sizeof rel, "%s/cases.json", folder);
    char *text = read_text_file(fixture_path(rel), NULL);
    CHECK(text != NULL, "%s", ts_last_error());
    if (!text) return 0;
    cJSON *root = cJSON_Parse(text);
    const cJSON *cases = cJSON_GetObjectItem(root, "cases"), *c;
    int n = 0;
    cJSON_ArrayForEach(c, cases) {
        cJSON *model = cJSON_GetObjectItem(c, "model"), *lg = cJSON_GetObjectItem(c, "logits");
        snprintf(rel, sizeof rel, "%s/%s", folder, model->valuestring);
        cJSON_SetValuestring(model, rel);
        snprintf(rel, sizeof rel, "%s/%s", folder, lg->valuestring);
        cJSON_SetValuestring(lg, rel);
        check_case(c);
        n++;
    }
    cJSON_Delete(root);
    free(text);
    return n;
}

int main(void) {
    TEST_BEGIN();
    int n = check_cases("llm");
    CHECK(n == 16, "expected 16 cases (2 families x 7 GGUF types + 2 HF folders), found %d", n);
    /* tools/gen_llm_quant_fixtures.py: Q4_1, Q5_0, Q5_1, IQ4_NL, Q2_K, Q3_K, Q5_K, IQ4_XS,
     * and a Qwen2 384 wide laid out as llama.cpp's Q4_K_M (Q5_0/Q8_0 where rows are not
     * a multiple of 256) */
    n = check_cases("llm_quant");
    CHECK(n == 9, "expected 9 cases in llm_quant, found %d", n);
    /* tools/gen_llm_llamacpp_fixtures.py: a Qwen2 384 wide quantized by llama.cpp itself
     * (Q4_K_M, Q3_K_M presets; the reference runs on the blocks llama.cpp wrote) */
    n = check_cases("llm_llamacpp");
    CHECK(n == 2, "expected 2 cases in llm_llamacpp, found %d", n);
    return TEST_END();
}
