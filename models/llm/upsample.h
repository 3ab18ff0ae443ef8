/*
 * upsample.h — prompt upsampling ("caption upsampling" in the DALL·E 3 paper): the
 * instruction that asks an LLM to rewrite a short prompt into one detailed, visually
 * specific description, and the clean-up of what comes back.
 *
 * The instruction and the worked examples are built in and can be replaced from files
 * (upsample_load_instruction). The reply is cleaned (quotes, "Sure, here is…" preambles,
 * labels, markdown, extra paragraphs) and judged: an empty, runaway (over the word limit
 * or cut off by the token limit) or non-text reply is rejected with a reason, and the
 * caller falls back to the original prompt and counts it. Nothing is dropped silently.
 */
#ifndef TESSERA_UPSAMPLE_H
#define TESSERA_UPSAMPLE_H

#include "models/llm/chat_template.h"

/* The instruction asks for 15-80 words; only the upper bound is enforced (a short but
 * clean description, e.g. of a single object, is still a description). */
#define UPSAMPLE_MAX_WORDS 80

typedef struct upsample_instruction upsample_instruction;

/* The built-in instruction and examples. */
upsample_instruction *upsample_instruction_default(void);
/* system_file: the system prompt as plain text (NULL: built in). examples_file: worked
 * examples, one per line as "short prompt<TAB>description" (NULL: built in). */
upsample_instruction *upsample_load_instruction(const char *system_file, const char *examples_file);
void upsample_instruction_destroy(upsample_instruction **self);
const char *upsample_system_prompt(const upsample_instruction *self);
int upsample_example_count(const upsample_instruction *self);

/* The conversation for one prompt: system, then the examples as user/assistant turns,
 * then the prompt. messages must hold 2 + 2 * example_count entries; returns the count. */
int upsample_messages(const upsample_instruction *self, const char *prompt, chat_message *messages);

typedef enum {
    UPSAMPLE_OK = 0,
    UPSAMPLE_EMPTY,        /* nothing left after cleaning */
    UPSAMPLE_RUNAWAY,      /* over UPSAMPLE_MAX_WORDS, or cut off by the token limit */
    UPSAMPLE_NOT_TEXT,     /* control characters, invalid UTF-8, or mostly non-letters */
    UPSAMPLE_FAILED,       /* the backend failed (HTTP error, timeout); set by callers */
    UPSAMPLE_UNFAITHFUL    /* lost words of the prompt on every try (expand_check.h) */
} upsample_verdict;

const char *upsample_verdict_name(upsample_verdict v);   /* "ok", "empty", "runaway", ... */

/* Cleans a reply in place-of-copy: returns a malloc'd cleaned text (possibly empty) and the
 * verdict. truncated: the generation hit its token limit. */
char *upsample_clean(const char *reply, bool truncated, upsample_verdict *verdict);

int upsample_count_words(const char *text);

#endif
