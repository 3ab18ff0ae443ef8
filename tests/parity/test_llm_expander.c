/* The expander's path through a real chat model: the ChatML rendering and tokenization of
 * the upsampling conversation give transformers' prompt ids, greedy generation gives
 * transformers' reply ids, and a reply that is not a description falls back to the prompt
 * (fixture: tools/gen_expander_fixture.py). */
#include "models/llm/llm_codec.h"
#include "models/llm/llm_expander.h"
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

int main(void) {
    TEST_BEGIN();
    const char *model_path = fixture_path("expander_tiny");
    char *json = read_text_file(fixture_path("expander_tiny/reference.json"), NULL);
    CHECK(json != NULL, "%s", ts_last_error());
    if (!json) return TEST_END();
    cJSON *cases = cJSON_Parse(json);
    free(json);
    CHECK(cJSON_GetArraySize(cases) == 2, "reference.json: %d cases, want 2", cJSON_GetArraySize(cases));

    llm *m = llm_open(model_path);
    CHECK(m != NULL, "%s", ts_last_error());
    llm_codec *codec = m ? llm_codec_open(m, model_path, NULL) : NULL;
    CHECK(codec != NULL, "%s", ts_last_error());
    upsample_instruction *ins = upsample_load_instruction(fixture_path("expander_tiny/system.txt"),
                                                          fixture_path("expander_tiny/examples.txt"));
    CHECK(ins != NULL, "%s", ts_last_error());
    if (m && codec && ins) {
        CHECK(llm_codec_has_template(codec) && llm_codec_template(codec) == CHAT_CHATML, "ChatML from tokenizer_config.json");
        llm_state *s = llm_state_new(m, test_ctx(), 1, 512, 256);
        const cJSON *c;
        cJSON_ArrayForEach(c, cases) {
            const char *prompt = cJSON_GetObjectItem(c, "prompt")->valuestring;
            chat_message msgs[8];
            int n = upsample_messages(ins, prompt, msgs);
            char *text = llm_codec_render_chat(codec, msgs, n);
            int *ids, n_ids;
            CHECK_OK(llm_codec_encode(codec, text, false, true, &ids, &n_ids));
            free(text);
            CHECK(same_ids(ids, n_ids, cJSON_GetObjectItem(c, "prompt_ids")), "'%s': prompt ids (%d)", prompt, n_ids);
            int end_ids[8];
            llm_generation gen = {.max_tokens = 20, .end_ids = end_ids};
            gen.n_end = llm_codec_end_ids(codec, end_ids, 8);
            llm_sampling greedy = llm_sampling_greedy();
            llm_output out = {0};
            const int *prompts[1] = {ids};
            CHECK_OK(llm_generate(m, s, 1, prompts, &n_ids, &greedy, &gen, NULL, &out));
            CHECK(same_ids(out.tokens, out.n_tokens, cJSON_GetObjectItem(c, "reply_ids")),
                  "'%s': greedy reply ids (%d tokens)", prompt, out.n_tokens);
            llm_output_free(&out, 1);
            free(ids);
        }
        llm_state_destroy(&s);
    }
    upsample_instruction_destroy(&ins);
    llm_codec_destroy(&codec);
    llm_destroy(&m);

    /* The expander end to end: a random model's reply is no description, so each prompt
     * falls back to itself with a verdict, and the raw reply is kept for the record. */
    llm_expander_options o = llm_expander_default_options();
    o.model = model_path;
    o.system_file = fixture_path("expander_tiny/system.txt");
    o.examples_file = fixture_path("expander_tiny/examples.txt");
    o.sampling = llm_sampling_greedy();
    o.max_tokens = 20;
    llm_expander *e = llm_expander_open(&o);
    CHECK(e != NULL, "%s", ts_last_error());
    if (e) {
        const char *prompts[] = {"a red circle", "a cat wearing armor", "x"};
        expansion out[3] = {{0}};
        CHECK_OK(llm_expander_run(e, 3, prompts, out));
        for (int i = 0; i < 3; i++) {
            CHECK(out[i].verdict != UPSAMPLE_OK, "prompt %d: verdict %s", i, upsample_verdict_name(out[i].verdict));
            CHECK(strcmp(out[i].text, prompts[i]) == 0, "fallback keeps the prompt: %s", out[i].text);
            CHECK(out[i].raw && out[i].raw[0], "raw reply recorded");
        }
        expansion_free(out, 3);
        llm_expander_destroy(&e);
    }
    cJSON_Delete(cases);
    return TEST_END();
}
