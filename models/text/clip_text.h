/*
 * clip_text.h — the CLIP / OpenCLIP text transformer (transformers' CLIPTextModel and
 * CLIPTextModelWithProjection), read from safetensors in either naming:
 *
 *   CLIP_NAMES_HF        text_model.embeddings.token_embedding.weight, ...layers.N.self_attn.q_proj...
 *                        ("text_model." may be absent: transformers 5 saves CLIPTextModel without it)
 *                        (diffusers text_encoder/ folders; SD 1.x single files under
 *                        cond_stage_model.transformer.; SDXL under conditioner.embedders.0.transformer.)
 *   CLIP_NAMES_OPENCLIP  token_embedding.weight, positional_embedding, transformer.resblocks.N.attn.
 *                        in_proj_weight (fused q,k,v), ln_final, text_projection (x @ P)
 *                        (SD 2.x under cond_stage_model.model., SDXL under conditioner.embedders.1.model.)
 *
 * The config comes from config.json (diffusers), or from the tensor shapes: width, depth,
 * vocabulary, positions and MLP width are visible; the head count is not, and follows the
 * published models (64-wide heads: CLIP-L 12, OpenCLIP ViT-H 16, bigG 20); activation is
 * quick_gelu for OpenAI CLIP (HF names), gelu for OpenCLIP.
 *
 * Weights stay memory-mapped in their dtype (F32/F16/BF16) and are widened per layer.
 */
#ifndef TESSERA_CLIP_TEXT_H
#define TESSERA_CLIP_TEXT_H

#include "kernels/backend.h"

typedef enum { CLIP_NAMES_HF = 0, CLIP_NAMES_OPENCLIP = 1 } clip_names;

typedef struct {
    int vocab_size, hidden, heads, layers, intermediate, max_positions;
    int projection_dim;      /* 0: no text_projection (CLIPTextModel) */
    bool quick_gelu;         /* else gelu (erf) */
    float eps;
    int eos_token_id;        /* 2 (transformers' legacy value): pool at argmax(ids), else first eos */
} clip_text_config;

typedef struct clip_text_model clip_text_model;

/* Weights from one safetensors file. prefix is prepended to every tensor name ("" for a
 * diffusers folder, "cond_stage_model.transformer." ...). config NULL: inferred from shapes.
 * Every tensor's shape is checked; a missing or mis-shaped tensor is named in the error. */
clip_text_model *clip_text_load(const char *weights_path, const char *prefix, clip_names names,
                                const clip_text_config *config);
/* A diffusers component folder's config.json -> config; -1 with a message on failure. */
int clip_text_config_read(const char *config_json, clip_text_config *out);
void clip_text_destroy(clip_text_model **self);
const clip_text_config *clip_text_get_config(const clip_text_model *self);

/*
 * Runs one sequence of n ids (n <= max_positions, usually 77) with the causal mask.
 *   hidden  [n, hidden]: hidden_states[layers - skip] as transformers numbers them (0..layers; 0 = the embeddings)
 *           (skip 0: the last layer; 1: the penultimate), through the final layer norm
 *           when final_norm is set. May be NULL.
 *   pooled  [projection_dim] (or [hidden] without projection): the final-layer-normed last
 *           layer at the EOS position, through text_projection. May be NULL.
 * -1 with a message for an id outside the vocabulary or a bad skip.
 */
int clip_text_forward(const clip_text_model *self, ts_ctx *ctx, const int32_t *ids, int n, int skip, bool final_norm,
                      float *hidden, float *pooled);

#endif
