/* caption_prompt.c — the captioner's prompts (see caption_prompt.h). */
#include "models/vision/caption_prompt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ALT_MAX 500

int caption_style_from_name(const char *name, caption_style *out) {
    if (strcmp(name, "dsc") == 0 || strcmp(name, "descriptive") == 0) *out = CAPTION_DSC;
    else if (strcmp(name, "ssc") == 0 || strcmp(name, "short") == 0) *out = CAPTION_SSC;
    else return ts_fail("caption style '%s' is not one of dsc (descriptive), ssc (short)", name);
    return 0;
}

const char *caption_style_name(caption_style s) { return s == CAPTION_SSC ? "ssc" : "dsc"; }

/* The alt-text as it goes into the prompt, or NULL when there is nothing to say. */
static char *clean_alt_text(const char *alt) {
    if (!alt) return NULL;
    size_t n = strlen(alt);
    char *out = ts_malloc(n + 1), *o = out;
    for (size_t i = 0; i < n; i++) {
        if (strncmp(alt + i, "<image>", 7) == 0) { i += 6; continue; }
        char c = alt[i] == '\n' || alt[i] == '\r' || alt[i] == '\t' ? ' ' : alt[i];
        if (c == ' ' && (o == out || o[-1] == ' ')) continue;   /* collapse and trim runs of space */
        *o++ = c;
    }
    while (o > out && o[-1] == ' ') o--;
    size_t len = (size_t)(o - out);
    if (len > ALT_MAX) {   /* cut at a UTF-8 boundary */
        len = ALT_MAX;
        while (len > 0 && ((unsigned char)out[len] & 0xC0) == 0x80) len--;
    }
    out[len] = 0;
    if (len == 0) { free(out); return NULL; }
    return out;
}

char *caption_prompt(const char *template_text, caption_style style, const char *alt_text) {
    const char *tpl = template_text ? template_text : CAPTION_TEMPLATE_LLAVA;
    if (!strstr(tpl, "<image>")) { ts_fail("caption prompt template has no \"<image>\": \"%s\"", tpl); return NULL; }
    const char *base = style == CAPTION_SSC ? CAPTION_INSTRUCTION_SSC : CAPTION_INSTRUCTION_DSC;
    char *alt = clean_alt_text(alt_text);
    size_t cap = strlen(base) + (alt ? strlen(alt) + 160 : 0) + 1;
    char *instruction = ts_malloc(cap);
    if (alt) snprintf(instruction, cap, "%s The image was published with this alt-text, which may be incomplete or wrong; "
                      "use it only where the image agrees: \"%s\"", base, alt);
    else snprintf(instruction, cap, "%s", base);
    free(alt);
    const char *at = strstr(tpl, "{instruction}");
    size_t n = strlen(tpl) + strlen(instruction) + 1;
    char *out = ts_malloc(n);
    if (at) snprintf(out, n, "%.*s%s%s", (int)(at - tpl), tpl, instruction, at + 13);
    else snprintf(out, n, "%s", tpl);   /* a fixed prompt: the template is the whole prompt */
    free(instruction);
    return out;
}
