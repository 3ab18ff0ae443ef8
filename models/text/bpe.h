/*
 * bpe.h — the core every BPE tokenizer shares: a vocabulary (bytes <-> id), a merge
 * table ((left id, right id) -> rank and merged id), and the merge loop.
 *
 * The loop follows Hugging Face tokenizers and llama.cpp: a priority queue of adjacent
 * pairs ordered by (rank, position), so the lowest-ranked pair merges first and, among
 * equal ranks, the leftmost. SentencePiece-style vocabularies (scores, no merges list)
 * become a merge table too: bpe_merges_from_scores() ranks every pair whose
 * concatenation is a token by that token's score, highest first.
 *
 * Hand-written because no Debian library offers a BPE engine for C; the hash tables are
 * small open-addressing ones (C has none in its standard library).
 */
#ifndef TESSERA_BPE_H
#define TESSERA_BPE_H

#include "kernels/base.h"

typedef struct bpe bpe;

bpe *bpe_new(int vocab_hint);
void bpe_destroy(bpe **self);

/* Token text (raw bytes, any content) for id; ids need not be dense but must be >= 0. */
int bpe_add_token(bpe *self, const char *text, size_t len, int32_t id);
int32_t bpe_token_id(const bpe *self, const char *text, size_t len);  /* -1 if absent */
const char *bpe_token_text(const bpe *self, int32_t id, size_t *len); /* NULL if absent */
int bpe_vocab_size(const bpe *self);                                  /* largest id + 1 */
int bpe_token_count(const bpe *self);                                 /* distinct texts */

/* left + right -> merged, with a rank (lower merges first). */
void bpe_add_merge(bpe *self, int32_t left, int32_t right, int32_t rank, int32_t merged);
/* Adds "a b" merge lines by text, as in merges.txt (rank = order added). -1 if a part is
 * not in the vocabulary. */
int bpe_add_merge_text(bpe *self, const char *left, size_t left_len, const char *right, size_t right_len);
/* For SentencePiece vocabularies: every split of every token into two tokens is a merge,
 * ranked by the token's score (scores[id], highest first). */
void bpe_merges_from_scores(bpe *self, const float *scores, int count);

/* Merges ids[0..n) in place; returns the new count. */
int bpe_merge(const bpe *self, int32_t *ids, int n);

/* GPT-2's reversible byte <-> printable-character map (the "byte-level" alphabet);
 * constant time, no state. */
uint32_t bpe_byte_to_codepoint(uint8_t b);
int bpe_codepoint_to_byte(uint32_t cp);   /* -1 if cp is not in the alphabet */

#endif
