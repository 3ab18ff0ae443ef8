/*
 * llm_codec.h — the text side of an LLM: which tokenizer a model uses and which chat
 * template, found from the model itself.
 *
 *   GGUF              tokenizer.ggml.* metadata; tokenizer.chat_template
 *   Hugging Face      tokenizer.json (or vocab.json + merges.txt); tokenizer_config.json's
 *                     chat_template
 *   llama2.c .bin     tokenizer.bin beside the checkpoint (no chat template)
 * A --tokenizer override can name any of those files. Chat templates fall back to the
 * architecture's usual one when the model names none.
 */
#ifndef TESSERA_LLM_CODEC_H
#define TESSERA_LLM_CODEC_H

#include "models/llm/chat_template.h"
#include "models/llm/llm_sample.h"

typedef struct llm_codec llm_codec;

llm_codec *llm_codec_open(const llm *m, const char *model_path, const char *tokenizer_override);
void llm_codec_destroy(llm_codec **self);

/* Encodes text (special tokens parsed when parse_special); *ids malloc'd. add_special:
 * add the BOS / EOS the model file asks for (llm_tokenizer_adds_bos; llama2.c: BOS), as
 * llama.cpp's add_special and transformers' add_special_tokens do; raw text prompts want
 * it, text rendered by a chat template does not (the template writes its own BOS). */
int llm_codec_encode(const llm_codec *self, const char *text, bool add_special, bool parse_special, int **ids, int *n);
bool llm_codec_adds_bos(const llm_codec *self);
/* For llm_generate's stop strings and output text. */
llm_detokenizer llm_codec_detokenizer(llm_codec *self);

/* The chat template ("" name: from the model) and the ids that end an assistant turn. */
int llm_codec_set_template(llm_codec *self, const char *name);
bool llm_codec_has_template(const llm_codec *self);
chat_template llm_codec_template(const llm_codec *self);
/* Renders a conversation with the model's template and its BOS/EOS texts. */
char *llm_codec_render_chat(const llm_codec *self, const chat_message *messages, int n);
int llm_codec_end_ids(const llm_codec *self, int *ids, int max);

#endif
