/*
 * clip_tokenizer.h — CLIP's byte-level BPE tokenizer, giving the same ids as transformers.
 *
 * Two vocabulary sources give the same tokenizer:
 *   - a diffusers/Hugging Face folder: vocab.json + merges.txt (or MODEL/tokenizer/...);
 *   - OpenAI's bpe_simple_vocab_16e6.txt.gz (single-file checkpoints carry no vocabulary;
 *     tools/install-deps.sh puts a copy at CLIP_TOKENIZER_DEFAULT_PATH).
 *
 * Text goes through, in order (CLIP_TOKENIZER_SLOW, the default; this is transformers'
 * Python CLIPTokenizer when ftfy is not installed, which is what diffusers pipelines use):
 *   1. UTF-8 check (an invalid byte is an error naming its offset);
 *   2. the exact strings <|startoftext|> / <|endoftext|> become their special ids;
 *   3. BasicTokenizer cleaning: NUL, U+FFFD and control/format/unassigned/private-use
 *      characters (\p{C} but tab, newline, CR) removed; tab/newline/CR and \p{Zs} become
 *      spaces; spaces put around CJK ideographs; NFC; split on whitespace; each word
 *      lower-cased the way Python's str.lower does it (full mapping, final sigma);
 *   4. CLIP's pre-tokenizer regex ('s|'t|...|\p{L}+|\p{N}|[^\s\p{L}\p{N}]+), PCRE2 with UCP;
 *   5. each piece as bytes -> byte-level unicode -> BPE with "</w>" on the last symbol.
 * CLIP_TOKENIZER_FAST reproduces the tokenizers-backed CLIPTokenizer (transformers 5 /
 * CLIPTokenizerFast) instead: NFC + per-character lower-casing only, no cleaning, no CJK
 * splitting, no final sigma, and upper-case <|ENDOFTEXT|> stays ordinary text. The two differ
 * on CJK text, control/format characters (ZWJ in emoji sequences), final sigma.
 *
 * Unicode tables: PCRE2 10.42 (Unicode 14, as Python 3.11's unicodedata) for the classes,
 * utf8proc for NFC and case; characters assigned after Unicode 14 may differ.
 * clip_tokenizer_encode keeps no state between calls: one tokenizer serves many threads.
 *
 * Prompts longer than 75 tokens are cut into chunks of 75, each wrapped as
 * [BOS, 75 tokens, EOS, pad...] of length 77, as the A1111 web UI and stable-diffusion.cpp
 * do (without A1111's break-at-comma heuristic); truncation keeps the first 75 tokens.
 */
#ifndef TESSERA_CLIP_TOKENIZER_H
#define TESSERA_CLIP_TOKENIZER_H

#include "kernels/base.h"

#define CLIP_CONTEXT_LENGTH 77          /* tokens per chunk, BOS and EOS included */
#define CLIP_CHUNK_TOKENS 75            /* text tokens per chunk */
#define CLIP_PAD_ZERO_ID 0              /* "!": SD 2.x and SDXL's second tokenizer pad with it */
#define CLIP_TOKENIZER_DEFAULT_PATH "/usr/local/share/tessera/bpe_simple_vocab_16e6.txt.gz"

typedef enum { CLIP_TOKENIZER_SLOW = 0, CLIP_TOKENIZER_FAST = 1 } clip_tokenizer_flavor;

typedef struct clip_tokenizer clip_tokenizer;

/* PATH may be: a folder holding vocab.json + merges.txt, a model folder holding
 * tokenizer/vocab.json + tokenizer/merges.txt, a bpe_simple_vocab_16e6.txt.gz file, or a
 * folder holding that file. */
clip_tokenizer *clip_tokenizer_load(const char *path);
clip_tokenizer *clip_tokenizer_from_vocab_files(const char *vocab_json, const char *merges_txt);
clip_tokenizer *clip_tokenizer_from_bpe_gz(const char *path);
void clip_tokenizer_destroy(clip_tokenizer **self);

void clip_tokenizer_set_flavor(clip_tokenizer *self, clip_tokenizer_flavor flavor);
int clip_tokenizer_vocab_size(const clip_tokenizer *self);
/* Ids of <|startoftext|> and <|endoftext|> in this vocabulary (49406 and 49407 in
 * OpenAI's; other vocabularies, like the demo model's, have their own). SD 1.x pads with EOS. */
int32_t clip_tokenizer_bos(const clip_tokenizer *self);
int32_t clip_tokenizer_eos(const clip_tokenizer *self);
/* Id of a vocabulary entry ("!", "<|endoftext|>"); -1 (no message) if absent. */
int clip_tokenizer_token_id(const clip_tokenizer *self, const char *token);

/* The ids of TEXT (len bytes), without BOS/EOS. *ids is malloc'd (free() it), *count may be 0.
 * -1 with "text: invalid UTF-8 at byte N" on bad input. */
int clip_tokenizer_encode(const clip_tokenizer *self, const char *text, size_t len,
                          int32_t **ids, int *count);

/* Cuts ids into 77-token chunks [BOS, <=75 ids, EOS, pad_id...]. With truncate, one chunk
 * (the first 75 ids). At least min_chunks chunks are made (extra ones hold BOS EOS pad...),
 * so a negative prompt can be padded to the positive's count. Returns the number of chunks;
 * *chunks is malloc'd [n * 77]. */
int clip_tokens_to_chunks(const clip_tokenizer *self, const int32_t *ids, int count, int32_t pad_id,
                          bool truncate, int min_chunks, int32_t **chunks);

/* Number of chunks clip_tokens_to_chunks would make for count ids (min_chunks 1). */
int clip_chunk_count(int count, bool truncate);

#endif
