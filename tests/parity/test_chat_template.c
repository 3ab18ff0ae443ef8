/* Chat templates render exactly what transformers renders from the families' Jinja
 * templates (tests/fixtures/chat/templates.json, made by tools/gen_chat_fixtures.py). */
#include "models/llm/chat_template.h"
#include "models/formats/model_files.h"
#include "tests/test.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

int main(void) {
    TEST_BEGIN();
    char *json = read_text_file(fixture_path("chat/templates.json"), NULL);
    CHECK(json != NULL, "%s", ts_last_error());
    if (!json) return TEST_END();
    cJSON *root = cJSON_Parse(json);
    free(json);
    static const struct { chat_template t; const char *bos, *eos; } tokens[] = {
        {CHAT_CHATML, "", ""}, {CHAT_LLAMA3, "<|begin_of_text|>", "<|eot_id|>"},
        {CHAT_LLAMA2, "<s>", "</s>"}, {CHAT_MISTRAL, "<s>", "</s>"},
    };
    const cJSON *c;
    int n_cases = 0, n_templates = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "cases")) {
        n_cases++;
        chat_template t;
        const char *name = cJSON_GetObjectItem(c, "template")->valuestring;
        CHECK_OK(chat_template_from_name(name, &t));
        chat_message msgs[8];
        int n = 0;
        const cJSON *m;
        cJSON_ArrayForEach(m, cJSON_GetObjectItem(c, "messages")) {
            msgs[n].role = cJSON_GetObjectItem(m, "role")->valuestring;
            msgs[n].content = cJSON_GetObjectItem(m, "content")->valuestring;
            n++;
        }
        char *got = chat_render(t, msgs, n, cJSON_IsTrue(cJSON_GetObjectItem(c, "add_generation_prompt")),
                                tokens[t].bos, tokens[t].eos);
        const char *want = cJSON_GetObjectItem(c, "text")->valuestring;
        CHECK(strcmp(got, want) == 0, "%s, %d messages:\n got: %s\nwant: %s", name, n, got, want);
        free(got);
    }
    /* each published template is recognised from its Jinja source */
    const cJSON *tpl;
    cJSON_ArrayForEach(tpl, cJSON_GetObjectItem(root, "templates")) {
        n_templates++;
        chat_template t, want;
        CHECK_OK(chat_template_from_name(tpl->string, &want));
        CHECK(chat_template_detect(tpl->valuestring, &t) == 0 && t == want, "detect %s", tpl->string);
    }
    /* the fixture's counts (tools/ wrote them): an emptied fixture must not pass */
    CHECK(n_cases == 24 && n_templates == 4, "%d rendering cases and %d templates, want 24 and 4", n_cases, n_templates);
    CHECK(chat_template_from_name("jinja?", &(chat_template){0}) == -1 && strstr(ts_last_error(), "chatml"),
          "unknown name lists the choices: %s", ts_last_error());
    cJSON_Delete(root);
    return TEST_END();
}
