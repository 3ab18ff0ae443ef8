/* Prompt upsampling: the instruction, the conversation, and the clean-up verdicts. */
#include "models/llm/upsample.h"
#include "tests/test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *LONG_OK =
    "A tabby cat in polished silver armor stands in a torch-lit castle hall, warm side light on engraved "
    "plates, a red cape behind it, detailed fantasy painting with silver and crimson tones";

static void expect(const char *reply, bool truncated, upsample_verdict want, const char *want_text) {
    upsample_verdict v;
    char *got = upsample_clean(reply, truncated, &v);
    CHECK(v == want, "reply \"%.50s\": verdict %s, want %s", reply, upsample_verdict_name(v), upsample_verdict_name(want));
    if (want_text) CHECK(strcmp(got, want_text) == 0, "cleaned to \"%s\"", got);
    free(got);
}

int main(void) {
    TEST_BEGIN();
    upsample_instruction *u = upsample_instruction_default();
    int words = upsample_count_words(upsample_system_prompt(u));
    CHECK(words > 40 && strstr(upsample_system_prompt(u), "15 and 80 words"), "system prompt (%d words)", words);
    CHECK(upsample_example_count(u) >= 3, "worked examples");
    chat_message m[16];
    int n = upsample_messages(u, "a red fox", m);
    CHECK(n == 2 + 2 * upsample_example_count(u), "message count %d", n);
    CHECK(strcmp(m[0].role, "system") == 0 && strcmp(m[n - 1].content, "a red fox") == 0, "order");
    for (int i = 0; i < upsample_example_count(u); i++) {
        upsample_verdict v;
        char *c = upsample_clean(m[2 + 2 * i].content, false, &v);
        CHECK(v == UPSAMPLE_OK, "built-in example %d passes our own rules (%s)", i, upsample_verdict_name(v));
        free(c);
    }
    upsample_instruction_destroy(&u);

    expect(LONG_OK, false, UPSAMPLE_OK, LONG_OK);
    char buf[1024];
    snprintf(buf, sizeof buf, "Sure, here is a detailed description:\n\n\"%s\"", LONG_OK);
    expect(buf, false, UPSAMPLE_OK, LONG_OK);
    snprintf(buf, sizeof buf, "Here's the enhanced prompt: %s\n\nThis description keeps every element.", LONG_OK);
    expect(buf, false, UPSAMPLE_OK, LONG_OK);
    snprintf(buf, sizeof buf, "**%s**", LONG_OK);
    expect(buf, false, UPSAMPLE_OK, LONG_OK);
    expect("", false, UPSAMPLE_EMPTY, "");
    expect("   \n\n  ", false, UPSAMPLE_EMPTY, "");
    expect("\"\"", false, UPSAMPLE_EMPTY, "");
    expect(LONG_OK, true, UPSAMPLE_RUNAWAY, NULL);
    char many[4096] = "";
    for (int i = 0; i < 100; i++) strcat(many, "very ");
    expect(many, false, UPSAMPLE_RUNAWAY, NULL);
    expect("A small red circle in the center, on a white background.", false, UPSAMPLE_OK, NULL);
    expect("12 34 56 78 90 !! ?? ## $$ %% ^^ && ** (( )) 12 34 56 78", false, UPSAMPLE_NOT_TEXT, NULL);
    expect("bad \x01 control", false, UPSAMPLE_NOT_TEXT, NULL);
    expect("bad \xff utf8", false, UPSAMPLE_NOT_TEXT, NULL);

    /* overriding the instruction from files */
    FILE *f = fopen("test_upsample_system.txt", "w");
    fputs("  Describe the picture.  \n", f);
    fclose(f);
    f = fopen("test_upsample_examples.txt", "w");
    fputs("# comment\na dog\tA brown dog running on a beach.\n", f);
    fclose(f);
    u = upsample_load_instruction("test_upsample_system.txt", "test_upsample_examples.txt");
    CHECK(u && strcmp(upsample_system_prompt(u), "Describe the picture.") == 0 && upsample_example_count(u) == 1,
          "loaded from files: %s", u ? upsample_system_prompt(u) : ts_last_error());
    upsample_instruction_destroy(&u);
    f = fopen("test_upsample_examples.txt", "w");
    fputs("no tab here\n", f);
    fclose(f);
    CHECK(upsample_load_instruction(NULL, "test_upsample_examples.txt") == NULL &&
              strstr(ts_last_error(), "test_upsample_examples.txt:1"), "bad examples file: %s", ts_last_error());
    remove("test_upsample_system.txt");
    remove("test_upsample_examples.txt");
    return TEST_END();
}
