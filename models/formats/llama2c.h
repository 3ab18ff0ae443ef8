/*
 * llama2c.h — Andrej Karpathy's llama2.c checkpoints (.bin) and tokenizers (tokenizer.bin,
 * tok512.bin).
 *
 * Checkpoint: seven int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size,
 * seq_len; a negative vocab_size means an unshared classifier at the end), then float32
 * arrays: token embedding, attention norms, wq, wk, wv, wo, ffn norms, w1, w2, w3, final
 * norm, the unused freq_cis tables, and the classifier if unshared. RoPE rotates adjacent
 * pairs; theta 10000; RMSNorm eps 1e-5.
 *
 * Tokenizer: int32 max_token_length, then per token float32 score, int32 length, bytes.
 * Ids 0/1/2 are <unk>, <s>, </s>; 3..258 the bytes <0x00>..<0xFF>.
 */
#ifndef TESSERA_LLAMA2C_H
#define TESSERA_LLAMA2C_H

#include "models/llm/llm.h"

/* A model from a llama2.c checkpoint; used by llm_open for files that are not GGUF. */
llm *llama2c_open(const char *path);

typedef struct llama2c_tokenizer llama2c_tokenizer;

/* vocab_size comes from the model (the file does not store it). */
llama2c_tokenizer *llama2c_tokenizer_open(const char *path, int vocab_size);
void llama2c_tokenizer_destroy(llama2c_tokenizer **self);

/* llama2.c's encode: a dummy space before non-empty text, UTF-8 code points looked up
 * (bytes as <0xXX> tokens when absent), then the best-scoring merges. BOS (1) and EOS (2)
 * added when asked. tokens needs strlen(text) + 3 entries; returns the count. */
int llama2c_encode(const llama2c_tokenizer *self, const char *text, bool bos, bool eos, int *tokens);
/* The text of `token` following `prev`: the leading space after BOS dropped, <0xXX> as
 * the raw byte. Returns a pointer valid until the tokenizer is destroyed. */
const char *llama2c_decode(const llama2c_tokenizer *self, int prev, int token);

#endif
