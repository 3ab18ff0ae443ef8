/* chat_template.c — the chat formats of the supported families (see chat_template.h). */
#include "models/llm/chat_template.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *names[CHAT_TEMPLATE_COUNT] = {"chatml", "llama3", "llama2", "mistral"};

const char *chat_template_name(chat_template t) { return (unsigned)t < CHAT_TEMPLATE_COUNT ? names[t] : "?"; }

int chat_template_from_name(const char *name, chat_template *out) {
    for (int i = 0; i < CHAT_TEMPLATE_COUNT; i++)
        if (strcmp(name, names[i]) == 0) { *out = (chat_template)i; return 0; }
    return ts_fail("unknown chat template '%s' (chatml, llama3, llama2, mistral)", name);
}

int chat_template_detect(const char *jinja, chat_template *out) {
    if (!jinja) return -1;
    if (strstr(jinja, "<|im_start|>")) *out = CHAT_CHATML;
    else if (strstr(jinja, "<|start_header_id|>")) *out = CHAT_LLAMA3;
    else if (strstr(jinja, "<<SYS>>")) *out = CHAT_LLAMA2;
    else if (strstr(jinja, "[INST]")) *out = CHAT_MISTRAL;
    else return -1;
    return 0;
}

chat_template chat_template_for_arch(const char *arch, bool has_llama3_tokens) {
    if (strncmp(arch, "qwen", 4) == 0 || strcmp(arch, "smollm") == 0) return CHAT_CHATML;
    if (has_llama3_tokens) return CHAT_LLAMA3;
    return CHAT_LLAMA2;
}

/* ---- a growing string ---- */
typedef struct { char *s; size_t n, cap; } text;

static void put(text *t, const char *s, size_t n) {
    if (t->n + n + 1 > t->cap) {
        while (t->n + n + 1 > t->cap) t->cap = t->cap ? t->cap * 2 : 256;
        t->s = ts_realloc(t->s, t->cap);
    }
    memcpy(t->s + t->n, s, n);
    t->n += n;
    t->s[t->n] = 0;
}
static void puts_(text *t, const char *s) { put(t, s, strlen(s)); }

/* Python's str.strip() for the whitespace that occurs in prompts. */
static void put_stripped(text *t, const char *s) {
    size_t b = 0, e = strlen(s);
    while (b < e && strchr(" \t\n\r\v\f", s[b])) b++;
    while (e > b && strchr(" \t\n\r\v\f", s[e - 1])) e--;
    put(t, s + b, e - b);
}

static char *join3(const char *a, const char *b, const char *c) {
    size_t n = strlen(a) + strlen(b) + strlen(c) + 1;
    char *s = ts_malloc(n);
    snprintf(s, n, "%s%s%s", a, b, c);
    return s;
}

char *chat_render(chat_template t, const chat_message *m, int n, bool gen, const char *bos, const char *eos) {
    text out = {0};
    puts_(&out, "");
    switch (t) {
    case CHAT_CHATML:
        for (int i = 0; i < n; i++) {
            puts_(&out, "<|im_start|>"); puts_(&out, m[i].role); puts_(&out, "\n");
            puts_(&out, m[i].content); puts_(&out, "<|im_end|>\n");
        }
        if (gen) puts_(&out, "<|im_start|>assistant\n");
        break;
    case CHAT_LLAMA3:
        for (int i = 0; i < n; i++) {
            if (i == 0) puts_(&out, bos);
            puts_(&out, "<|start_header_id|>"); puts_(&out, m[i].role); puts_(&out, "<|end_header_id|>\n\n");
            put_stripped(&out, m[i].content);
            puts_(&out, "<|eot_id|>");
        }
        if (gen) puts_(&out, "<|start_header_id|>assistant<|end_header_id|>\n\n");
        break;
    case CHAT_LLAMA2: {
        int first = 0;
        const char *system = NULL;
        if (n > 0 && strcmp(m[0].role, "system") == 0) { system = m[0].content; first = 1; }
        for (int i = first; i < n; i++) {
            if (strcmp(m[i].role, "user") == 0) {
                char *content = NULL;
                if (i == first && system) {
                    char *head = join3("<<SYS>>\n", system, "\n<</SYS>>\n\n");
                    content = join3(head, m[i].content, "");
                    free(head);
                }
                puts_(&out, bos); puts_(&out, "[INST] ");
                put_stripped(&out, content ? content : m[i].content);
                puts_(&out, " [/INST]");
                free(content);
            } else if (strcmp(m[i].role, "assistant") == 0) {
                puts_(&out, " "); put_stripped(&out, m[i].content); puts_(&out, " "); puts_(&out, eos);
            }
        }
        break;   /* Llama 2's template has no generation prompt: [/INST] already asks */
    }
    case CHAT_MISTRAL: {
        puts_(&out, bos);
        const char *system = NULL;
        for (int i = 0; i < n; i++) {
            if (strcmp(m[i].role, "system") == 0) { system = m[i].content; continue; }
            if (strcmp(m[i].role, "user") == 0) {
                puts_(&out, "[INST] ");
                if (system) { puts_(&out, system); puts_(&out, "\n\n"); system = NULL; }
                puts_(&out, m[i].content);
                puts_(&out, " [/INST]");
            } else if (strcmp(m[i].role, "assistant") == 0) {
                puts_(&out, m[i].content); puts_(&out, eos);
            }
        }
        break;
    }
    default: break;
    }
    return out.s;
}
