/*
 * chat_template.h — turning a conversation into the text an instruction-tuned model
 * was trained on. The families' Jinja templates are re-written here as C, one function
 * each, and checked against transformers' rendering of the real templates
 * (tests/parity/test_chat_template.c); a full Jinja engine would be a large dependency
 * for four short, fixed formats.
 *
 *   chatml   Qwen2 / Qwen2.5, SmolLM:  <|im_start|>role\ncontent<|im_end|>\n
 *   llama3   <|begin_of_text|><|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|>
 *   llama2   <s>[INST] <<SYS>>\nsys\n<</SYS>>\n\nuser [/INST] answer </s>
 *   mistral  <s>[INST] user [/INST]answer</s>  (no system role: folded into the first user turn)
 */
#ifndef TESSERA_CHAT_TEMPLATE_H
#define TESSERA_CHAT_TEMPLATE_H

#include "kernels/base.h"

typedef enum { CHAT_CHATML = 0, CHAT_LLAMA3, CHAT_LLAMA2, CHAT_MISTRAL, CHAT_TEMPLATE_COUNT } chat_template;

typedef struct {
    const char *role;      /* "system", "user", "assistant" */
    const char *content;
} chat_message;

const char *chat_template_name(chat_template t);
/* By name ("chatml", "llama3", "llama2", "mistral"); -1 with a message listing them. */
int chat_template_from_name(const char *name, chat_template *out);
/* From a model's Jinja source (GGUF tokenizer.chat_template) by its markers; -1 if none
 * is recognised (no message: the caller falls back to the architecture's default). */
int chat_template_detect(const char *jinja, chat_template *out);
/* The template an architecture ("qwen2", "llama", ...) uses when the file names none. */
chat_template chat_template_for_arch(const char *arch, bool has_llama3_tokens);

/* Renders the conversation; bos/eos are the tokenizer's texts ("<s>", "</s>"). Returns a
 * malloc'd string. The text contains special tokens as text: tokenize it with
 * parse_special and without adding BOS (the template adds it where the family does). */
char *chat_render(chat_template t, const chat_message *messages, int n, bool add_generation_prompt,
                  const char *bos, const char *eos);

#endif
