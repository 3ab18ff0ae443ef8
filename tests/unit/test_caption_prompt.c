/* The captioner's prompts as README and caption_prompt.h document them: the two DALL·E 3
 * caption kinds in LLaVA-1.5's conversation, the alt-text appended as context (folded to
 * one line, "<image>" removed, cut at 500 bytes on a UTF-8 boundary), custom templates. */
#include "models/vision/caption_prompt.h"
#include "tests/test.h"

#include <stdlib.h>
#include <string.h>

int main(void) {
    TEST_BEGIN();
    caption_style st;
    CHECK(caption_style_from_name("dsc", &st) == 0 && st == CAPTION_DSC, "dsc");
    CHECK(caption_style_from_name("short", &st) == 0 && st == CAPTION_SSC, "short");
    CHECK(caption_style_from_name("long", &st) < 0 && strstr(ts_last_error(), "'long'"), "bad style: %s", ts_last_error());

    char *p = caption_prompt(NULL, CAPTION_DSC, NULL);
    CHECK(p && !strcmp(p, "USER: <image>\nDescribe this image in detail: the main subject, its surroundings and background, "
                          "any text in the image, the style and the colours. ASSISTANT:"), "DSC prompt: %s", p);
    free(p);
    p = caption_prompt(NULL, CAPTION_SSC, "  ");
    CHECK(p && !strcmp(p, "USER: <image>\nWrite a short caption for this image: one sentence that names its main subject. ASSISTANT:"),
          "SSC prompt, blank alt-text: %s", p);
    free(p);
    p = caption_prompt(NULL, CAPTION_SSC, " Cat\n<image>on  a\tmat ");
    CHECK(p && strstr(p, " The image was published with this alt-text, which may be incomplete or wrong; use it only where "
                         "the image agrees: \"Cat on a mat\" ASSISTANT:") && strstr(p, "<image>") == strstr(p, "<image>\n") &&
          !strstr(strstr(p, "<image>") + 1, "<image>"), "alt-text context: %s", p);
    free(p);
    /* 499 ASCII bytes, then a 2-byte character across the 500-byte cut: dropped whole */
    char alt[600];
    memset(alt, 'a', 499);
    strcpy(alt + 499, "\xc3\xa9zzz");
    p = caption_prompt("<image> {instruction}", CAPTION_SSC, alt);
    const char *q = p ? strchr(p, '"') : NULL;
    CHECK(q && strlen(q) == 1 + 499 + 1, "alt-text cut at a character boundary: %zu", q ? strlen(q) : 0);
    free(p);
    p = caption_prompt("<image> What is this?", CAPTION_DSC, "x");
    CHECK(p && !strcmp(p, "<image> What is this?"), "a fixed prompt stays as it is: %s", p);
    free(p);
    CHECK(caption_prompt("Describe {instruction}", CAPTION_DSC, NULL) == NULL && strstr(ts_last_error(), "<image>"),
          "template without <image>: %s", ts_last_error());
    return TEST_END();
}
