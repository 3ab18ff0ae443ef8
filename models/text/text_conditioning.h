/*
 * text_conditioning.h — prompts -> what the U-Net is conditioned on, as diffusers computes it.
 *
 *   text_encoder *te = text_encoder_load(model, NULL);      // -m MODEL: folder or single file
 *   text_encoder_options o = text_encoder_defaults();        // clip_skip 0, long prompts chunked
 *   const char *prompts[2] = {negative, positive};           // NULL = "no prompt given"
 *   text_conditioning c;
 *   if (text_encoder_encode(te, ctx, prompts, 2, &o, &c) != 0) ... ts_last_error() ...
 *   unet_forward(..., c.context, c.tokens, c.pooled, ...);   // context [2, c.tokens, c.dim]
 *   text_conditioning_free(&c);
 *   text_encoder_destroy(&te);
 *
 * Per family (found from the files; see text_encoder_family):
 *   SD 1.x  CLIP ViT-L/14: last layer, final layer norm; context dim 768; pads with EOS.
 *   SD 2.x  OpenCLIP ViT-H/14: penultimate layer, final layer norm (a diffusers folder holds
 *           the 23 layers left after dropping the last; a CompVis file holds all 24, and the
 *           last is skipped here); context dim 1024; pads with 0 ("!").
 *   SDXL    CLIP-L penultimate (no final norm) ++ OpenCLIP bigG penultimate (no final norm)
 *           = 2048 channels; pooled [1280] = bigG's final-normed EOS state through
 *           text_projection; the first tokenizer pads with EOS, the second with 0.
 * clip_skip is diffusers' (1 = one layer before the usual one; A1111's "clip skip 2"). It
 * applies to every prompt, as A1111 and stable-diffusion.cpp do; skip_rows limits it to some
 * prompts: diffusers' pipelines apply clip_skip to the positive prompt only, so its negative
 * rows are encoded at the usual layer.
 *
 * Long prompts: with truncate false (the default), the token ids are cut into 75-token
 * chunks, each [BOS, ids, EOS, pad] encoded on its own, concatenated along the sequence axis
 * (tokens = 77 * chunks); every prompt of one call is padded to the same number of chunks, so
 * the negative prompt matches the positive. SDXL's pooled output comes from the first chunk.
 * With truncate true, tokens is 77 and the output is exactly diffusers'.
 * A NULL prompt means "none given": for SDXL its context and pooled rows are zeros (diffusers'
 * force_zeros_for_empty_prompt); for SD 1.x/2.x it is encoded as "".
 */
#ifndef TESSERA_TEXT_CONDITIONING_H
#define TESSERA_TEXT_CONDITIONING_H

#include "models/text/clip_text.h"
#include "models/text/clip_tokenizer.h"

typedef enum { TEXT_FAMILY_SD1 = 1, TEXT_FAMILY_SD2 = 2, TEXT_FAMILY_SDXL = 3 } text_family;

typedef struct {
    int clip_skip;           /* diffusers' clip_skip; 0: the family's usual layer */
    bool truncate;           /* cut at 75 tokens instead of chunking */
    const bool *skip_rows;   /* NULL: clip_skip for every prompt; else only where skip_rows[b] */
} text_encoder_options;

typedef struct {
    int batch, tokens, dim;   /* context [batch, tokens, dim], tokens = 77 * chunks */
    float *context;
    int pooled_dim;           /* 1280 for SDXL; 0 (pooled NULL) otherwise */
    float *pooled;            /* [batch, pooled_dim] */
} text_conditioning;

typedef struct text_encoder text_encoder;

/* MODEL: a diffusers folder (text_encoder/, text_encoder_2/, tokenizer/) or a single-file
 * checkpoint. tokenizer_path: vocab folder or bpe_simple_vocab_16e6.txt.gz; NULL: the
 * model folder's tokenizer/, else CLIP_TOKENIZER_DEFAULT_PATH. */
text_encoder *text_encoder_load(const char *model, const char *tokenizer_path);
void text_encoder_destroy(text_encoder **self);

text_encoder_options text_encoder_defaults(void);
text_family text_encoder_family(const text_encoder *self);
const char *text_family_name(text_family f);         /* "sd1", "sd2", "sdxl" */
int text_encoder_context_dim(const text_encoder *self); /* 768, 1024, 2048 for the real models */
const clip_tokenizer *text_encoder_tokenizer(const text_encoder *self);
/* Pad id of encoder i (0 or 1): the tokenizer's EOS or 0. */
int32_t text_encoder_pad_id(const text_encoder *self, int i);

/* Encodes count prompts (NULL entries allowed, see above) into out (free with
 * text_conditioning_free). */
int text_encoder_encode(const text_encoder *self, ts_ctx *ctx, const char *const *prompts, int count,
                        const text_encoder_options *options, text_conditioning *out);
/* The same from token-id chunks already made: ids [count, chunks, 77] per encoder
 * (ids2 for SDXL's second encoder, NULL otherwise); zero_rows[count] may be NULL. */
int text_encoder_encode_ids(const text_encoder *self, ts_ctx *ctx, const int32_t *ids, const int32_t *ids2, int count,
                            int chunks, const bool *zero_rows, const text_encoder_options *options,
                            text_conditioning *out);
void text_conditioning_free(text_conditioning *c);

#endif
