/*
 * clip_vision.h — the CLIP ViT image encoder (transformers' CLIPVisionModel) as LLaVA uses
 * it: patch embedding (a stride-`patch` convolution without bias), a class token, learned
 * position embeddings, pre-LayerNorm, then pre-LN transformer layers
 *   x += out_proj(attn(ln1(x)));  x += fc2(act(fc1(ln2(x))))      act: quick_gelu (CLIP)
 * Shapes (ViT-B/16, ViT-L/14, ViT-L/14-336, ...) are read from the weights; only the head
 * count, the LayerNorm epsilon and the activation come from the config.
 *
 * The weights are views into a mapped file (safetensors or GGUF), any float dtype.
 */
#ifndef TESSERA_CLIP_VISION_H
#define TESSERA_CLIP_VISION_H

#include "kernels/backend.h"

typedef enum { CLIP_ACT_QUICK_GELU = 0, CLIP_ACT_GELU } clip_activation;

typedef struct {
    int image_size, patch_size, hidden, intermediate, n_layers, n_heads;
    float eps;
    clip_activation act;
} clip_vision_config;

typedef struct {
    tensor ln1_w, ln1_b, q_w, q_b, k_w, k_b, v_w, v_b, o_w, o_b, ln2_w, ln2_b, fc1_w, fc1_b, fc2_w, fc2_b;
} clip_vision_layer;

typedef struct {
    tensor patch_w, patch_b;      /* [hidden, 3, p, p]; patch_b data NULL when absent */
    tensor class_embd;            /* [hidden] */
    tensor pos_embd;              /* [1 + patches, hidden] */
    tensor pre_ln_w, pre_ln_b;    /* data NULL when absent */
    clip_vision_layer *layers;    /* n_layers, malloc'd */
} clip_vision_weights;

/* The tensor names of the two layouts the loader knows. */
typedef enum { CLIP_NAMES_HF = 0, CLIP_NAMES_GGUF } clip_names;

/* Fills cfg's shapes and w from the weights; cfg->n_heads, eps and act must be set.
 * prefix (HF: "vision_tower.vision_model." or "model.vision_tower.vision_model.") is
 * put before every HF name. Shapes are checked against each other with the tensor named. */
struct weight_binder;
int clip_vision_load(clip_vision_config *cfg, clip_vision_weights *w, clip_names names, const char *prefix,
                     struct weight_binder *weights, const char *label);
void clip_vision_weights_free(clip_vision_weights *w);

/* Patches per side and in all (without the class token). */
int clip_vision_tokens(const clip_vision_config *cfg);

/*
 * pixels [n_images, 3, S, S] -> hidden [n_images, 1 + patches, hidden]: the hidden state
 * after `run_layers` transformer layers (0: just the pre-LayerNorm embeddings; n_layers:
 * the last layer, before post_layernorm), i.e. transformers' hidden_states[run_layers].
 * pixels and hidden are in ctx's memory (llava_encode_images stages the caller's).
 */
int clip_vision_forward(ts_ctx *ctx, const clip_vision_config *cfg, const clip_vision_weights *w, const float *pixels,
                        int n_images, int run_layers, float *hidden);

#endif
