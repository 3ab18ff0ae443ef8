/*
 * llm_tokenizer.h — the tokenizers of Llama-family LLMs, from GGUF metadata or from
 * Hugging Face files, giving the same ids as the reference libraries.
 *
 * Two kinds:
 *   - SentencePiece-style BPE with byte fallback (Llama 2, Mistral; GGUF
 *     tokenizer.ggml.model = "llama"): a space prefix, spaces as U+2581, pieces merged by
 *     score, bytes outside the vocabulary as <0xXX> tokens.
 *   - Byte-level BPE (GPT-2, Llama 3, Qwen2; "gpt2"): text split by the family's
 *     pre-tokenizer regex (PCRE2), bytes mapped to GPT-2's printable alphabet, merged by rank.
 * Special tokens (control / user-defined: "<|im_start|>", "</s>", ...) are matched in the
 * text first when parse_special is set, so chat templates can be written as text.
 */
#ifndef TESSERA_LLM_TOKENIZER_H
#define TESSERA_LLM_TOKENIZER_H

#include "models/formats/gguf.h"

typedef struct llm_tokenizer llm_tokenizer;

typedef enum { LLM_TOKENIZER_SPM, LLM_TOKENIZER_BYTE_BPE } llm_tokenizer_kind;

llm_tokenizer *llm_tokenizer_from_gguf(const gguf *g);
/* A tokenizer.json, a folder holding one, or a folder with GPT-2's vocab.json + merges.txt. */
llm_tokenizer *llm_tokenizer_from_hf(const char *path);
void llm_tokenizer_destroy(llm_tokenizer **self);

llm_tokenizer_kind llm_tokenizer_kind_of(const llm_tokenizer *self);
int llm_tokenizer_vocab_size(const llm_tokenizer *self);
int32_t llm_tokenizer_bos(const llm_tokenizer *self);   /* -1 if none */
int32_t llm_tokenizer_eos(const llm_tokenizer *self);
/* Whether encoding "with special tokens" adds BOS / EOS, as the model file says: GGUF
 * tokenizer.ggml.add_bos_token / add_eos_token (absent: BOS for SentencePiece only, as
 * llama.cpp); Hugging Face, as transformers 5 does: the tokenizer.json post_processor's
 * template ("<s> $A"; none: nothing), and for SentencePiece-style files (LlamaTokenizer)
 * tokenizer_config.json's add_bos_token / add_eos_token where present. */
bool llm_tokenizer_adds_bos(const llm_tokenizer *self);
bool llm_tokenizer_adds_eos(const llm_tokenizer *self);
/* Id of an exact token text (e.g. "<|im_end|>"), -1 if absent. */
int32_t llm_tokenizer_find(const llm_tokenizer *self, const char *text);
bool llm_tokenizer_is_special(const llm_tokenizer *self, int32_t id);

/* Encodes text (UTF-8, len bytes) into *ids (malloc'd; free it), count in *n.
 * add_bos: prepend BOS when the tokenizer has one. Invalid UTF-8 is an error naming the
 * byte offset. */
int llm_tokenize(const llm_tokenizer *self, const char *text, size_t len, bool add_bos,
                 bool parse_special, int32_t **ids, int *n);
/* Bytes of one token as they appear in text (byte-level decoded, U+2581 as space,
 * <0xXX> as the byte). Writes up to size bytes; returns the full length, -1 if bad id. */
int llm_token_bytes(const llm_tokenizer *self, int32_t id, char *buf, size_t size);
/* Decodes ids to a NUL-terminated string (free it). Special tokens are skipped when
 * skip_special; SentencePiece's leading space from the prefix is removed. */
char *llm_detokenize(const llm_tokenizer *self, const int32_t *ids, int n, bool skip_special);

#endif
