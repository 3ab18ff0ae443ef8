/* upsample.c — the upsampling instruction and the clean-up of replies (see upsample.h). */
#include "models/llm/upsample.h"
#include "models/formats/model_files.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <utf8proc.h>

/* Our own words. It asks for everything the renderer's text encoder can use, in the
 * order CLIP attends to best (subject first), and forbids what hurts: contradictions,
 * lists, commentary. */
static const char *DEFAULT_SYSTEM =
    "You rewrite short image prompts into one detailed description for an image generator. "
    "Keep every element the user names: each subject, count, colour, position, style and text. "
    "Never contradict or drop any of them, and do not add people, text or objects that change the scene. "
    "Add concrete visual detail: what the subject looks like, the setting and background, the style or "
    "medium, the lighting, the composition and camera view, and the main colours. "
    "Write a single paragraph of plain prose between 15 and 80 words. "
    "Reply with the description only: no preamble, no quotes, no lists, no explanations.";

static const char *DEFAULT_EXAMPLES[][2] = {
    {"a cat wearing armor",
     "A tabby cat standing proudly in polished silver plate armor with engraved gold trim, a small red cape "
     "over its shoulders, inside a torch-lit stone castle hall; dramatic warm side lighting, shallow depth of "
     "field, detailed fantasy illustration, centered full-body composition, rich silver, gold and crimson tones."},
    {"two red circles and a blue square",
     "Two bright red circles side by side in the upper half of the frame and one solid blue square centered "
     "below them, flat vector shapes with crisp edges on a clean white background, even soft lighting, "
     "minimalist geometric poster style, balanced symmetrical composition."},
    {"lighthouse at dusk",
     "A tall white lighthouse with a red lantern room on a rocky headland at dusk, its beam sweeping across "
     "a calm sea, the sky fading from orange at the horizon to deep violet above, first stars appearing; "
     "wide-angle landscape photograph, long exposure, cool blues against warm sunset light."},
};

struct upsample_instruction {
    char *system;
    char **shorts, **longs;
    int n_examples;
};

upsample_instruction *upsample_instruction_default(void) {
    upsample_instruction *u = ts_calloc(1, sizeof *u);
    u->system = ts_strdup(DEFAULT_SYSTEM);
    int n = (int)(sizeof DEFAULT_EXAMPLES / sizeof DEFAULT_EXAMPLES[0]);
    u->shorts = ts_calloc((size_t)n, sizeof(char *));
    u->longs = ts_calloc((size_t)n, sizeof(char *));
    for (int i = 0; i < n; i++) {
        u->shorts[i] = ts_strdup(DEFAULT_EXAMPLES[i][0]);
        u->longs[i] = ts_strdup(DEFAULT_EXAMPLES[i][1]);
    }
    u->n_examples = n;
    return u;
}

void upsample_instruction_destroy(upsample_instruction **self) {
    if (!self || !*self) return;
    upsample_instruction *u = *self;
    for (int i = 0; i < u->n_examples; i++) { free(u->shorts[i]); free(u->longs[i]); }
    free(u->shorts);
    free(u->longs);
    free(u->system);
    free(u);
    *self = NULL;
}

static void trim_in_place(char *s) {
    size_t n = strlen(s), b = 0;
    while (b < n && isspace((unsigned char)s[b])) b++;
    while (n > b && isspace((unsigned char)s[n - 1])) n--;
    memmove(s, s + b, n - b);
    s[n - b] = 0;
}

upsample_instruction *upsample_load_instruction(const char *system_file, const char *examples_file) {
    upsample_instruction *u = upsample_instruction_default();
    if (system_file) {
        char *s = read_text_file(system_file, NULL);
        if (!s) { upsample_instruction_destroy(&u); return NULL; }
        trim_in_place(s);
        if (!*s) { free(s); upsample_instruction_destroy(&u); ts_fail("%s: the system prompt is empty", system_file); return NULL; }
        free(u->system);
        u->system = s;
    }
    if (examples_file) {
        char *text = read_text_file(examples_file, NULL);
        if (!text) { upsample_instruction_destroy(&u); return NULL; }
        for (int i = 0; i < u->n_examples; i++) { free(u->shorts[i]); free(u->longs[i]); }
        u->n_examples = 0;
        int line_no = 0, cap = 0;
        char *save = NULL;
        for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
            line_no++;
            trim_in_place(line);
            if (!*line || line[0] == '#') continue;
            char *tab = strchr(line, '\t');
            if (!tab) {
                ts_fail("%s:%d: an example is 'short prompt<TAB>description'", examples_file, line_no);
                free(text);
                upsample_instruction_destroy(&u);
                return NULL;
            }
            *tab = 0;
            if (u->n_examples == cap) {
                cap = cap ? cap * 2 : 8;
                u->shorts = ts_realloc(u->shorts, sizeof(char *) * (size_t)cap);
                u->longs = ts_realloc(u->longs, sizeof(char *) * (size_t)cap);
            }
            u->shorts[u->n_examples] = ts_strdup(line);
            u->longs[u->n_examples] = ts_strdup(tab + 1);
            u->n_examples++;
        }
        free(text);
    }
    return u;
}

const char *upsample_system_prompt(const upsample_instruction *u) { return u->system; }
int upsample_example_count(const upsample_instruction *u) { return u->n_examples; }

int upsample_messages(const upsample_instruction *u, const char *prompt, chat_message *m) {
    int n = 0;
    m[n++] = (chat_message){"system", u->system};
    for (int i = 0; i < u->n_examples; i++) {
        m[n++] = (chat_message){"user", u->shorts[i]};
        m[n++] = (chat_message){"assistant", u->longs[i]};
    }
    m[n++] = (chat_message){"user", prompt};
    return n;
}

const char *upsample_verdict_name(upsample_verdict v) {
    static const char *names[] = {"ok", "empty", "runaway", "not_text", "failed", "unfaithful"};
    return (unsigned)v <= UPSAMPLE_UNFAITHFUL ? names[v] : "?";
}

int upsample_count_words(const char *s) {
    int n = 0;
    bool in_word = false;
    for (; *s; s++) {
        bool space = isspace((unsigned char)*s);
        if (!space && !in_word) n++;
        in_word = !space;
    }
    return n;
}

/* Preambles models put before the answer; matched case-insensitively at the start and
 * removed up to the end of their sentence or colon. */
static const char *PREAMBLES[] = {
    "sure", "certainly", "of course", "here is", "here's", "here are", "okay", "ok,", "absolutely",
    "below is", "the following", "enhanced prompt", "expanded prompt", "description", "prompt",
    "detailed description", "rewritten prompt", "improved prompt",
};

static bool starts_with_ci(const char *s, const char *p) { return strncasecmp(s, p, strlen(p)) == 0; }

char *upsample_clean(const char *reply, bool truncated, upsample_verdict *verdict) {
    char *s = ts_strdup(reply ? reply : "");
    /* invalid UTF-8 or control characters (other than whitespace): not text */
    for (size_t i = 0; s[i];) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t n = utf8proc_iterate((const utf8proc_uint8_t *)s + i, -1, &cp);
        if (n <= 0 || (cp < 0x20 && cp != '\n' && cp != '\t' && cp != '\r') || cp == 0x7f) {
            *verdict = UPSAMPLE_NOT_TEXT;
            return s;
        }
        i += (size_t)n;
    }
    trim_in_place(s);
    /* drop preamble lines/sentences like "Sure, here is a detailed description:" */
    for (int round = 0; round < 3; round++) {
        bool removed = false;
        for (size_t k = 0; k < sizeof PREAMBLES / sizeof PREAMBLES[0]; k++) {
            if (!starts_with_ci(s, PREAMBLES[k])) continue;
            char *colon = strchr(s, ':'), *nl = strchr(s, '\n');
            char *cut = colon && (!nl || colon < nl) ? colon + 1 : nl ? nl + 1 : NULL;
            if (cut && cut - s < 120) {   /* only a short lead-in, never the description itself */
                memmove(s, cut, strlen(cut) + 1);
                trim_in_place(s);
                removed = true;
            }
            break;
        }
        if (!removed) break;
    }
    /* keep the first paragraph */
    char *para = strstr(s, "\n\n");
    if (para) *para = 0;
    for (char *p = s; *p; p++) if (*p == '\n' || *p == '\r' || *p == '\t') *p = ' ';
    trim_in_place(s);
    /* markdown emphasis and surrounding quotes */
    while (s[0] == '*' || s[0] == '#' || s[0] == '-' || s[0] == '>') { memmove(s, s + 1, strlen(s)); trim_in_place(s); }
    size_t n = strlen(s);
    while (n > 0 && s[n - 1] == '*') s[--n] = 0;
    static const char *quotes[][2] = {{"\"", "\""}, {"'", "'"}, {"\xe2\x80\x9c", "\xe2\x80\x9d"}, {"`", "`"}};
    for (int again = 1; again;) {
        again = 0;
        n = strlen(s);
        for (size_t q = 0; q < sizeof quotes / sizeof quotes[0]; q++) {
            size_t ol = strlen(quotes[q][0]), cl = strlen(quotes[q][1]);
            if (n >= ol + cl && strncmp(s, quotes[q][0], ol) == 0 && strcmp(s + n - cl, quotes[q][1]) == 0) {
                s[n - cl] = 0;
                memmove(s, s + ol, strlen(s + ol) + 1);
                trim_in_place(s);
                again = 1;
                break;
            }
        }
    }
    /* mostly letters? (a reply of digits and symbols is not a description) */
    int letters = 0, others = 0;
    for (size_t i = 0; s[i];) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s + i, -1, &cp);
        utf8proc_category_t c = utf8proc_category(cp);
        if (c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_LO) letters++;
        else if (cp != ' ') others++;
        i += (size_t)(k > 0 ? k : 1);
    }
    int words = upsample_count_words(s);
    if (!*s) *verdict = UPSAMPLE_EMPTY;
    else if (letters < 2 * others) *verdict = UPSAMPLE_NOT_TEXT;
    else if (truncated || words > UPSAMPLE_MAX_WORDS) *verdict = UPSAMPLE_RUNAWAY;
    else *verdict = UPSAMPLE_OK;
    return s;
}
