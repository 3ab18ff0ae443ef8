/*
 * llava.h — a LLaVA-style captioner: CLIP vision tower (clip_vision.h), LLaVA-1.5's
 * feature selection and two-layer MLP projector, and the LLM (models/llm/llm.h) the image
 * features are spliced into.
 *
 *   llava *v = llava_open("llava-1.5-7b-hf", NULL);                  // HF folder
 *   llava *v = llava_open("vicuna-7b.Q8_0.gguf", "mmproj-f16.gguf");  // llama.cpp pair
 *
 * Feature selection (transformers' LlavaForConditionalGeneration.get_image_features):
 * the hidden state of layer `vision_feature_layer` (-2: the second-to-last layer's
 * output, before post_layernorm), without the class token under the "default" strategy,
 * then linear_2(gelu(linear_1(x))). llama.cpp's legacy mmproj files carry only the layers
 * used, so there every stored layer runs (as clip.cpp does).
 */
#ifndef TESSERA_LLAVA_H
#define TESSERA_LLAVA_H

#include "models/llm/llm.h"
#include "models/llm/llm_codec.h"
#include "models/vision/clip_vision.h"
#include "models/vision/image_preprocess.h"

typedef struct llava llava;

/* model: a LlavaForConditionalGeneration folder (mmproj NULL), or an LLM GGUF with its
 * mmproj GGUF. NULL with a message naming the file and what was wrong. */
llava *llava_open(const char *model, const char *mmproj);
void llava_destroy(llava **self);

const llm *llava_llm(const llava *self);
/* The model's tokenizer (GGUF metadata or the folder's tokenizer.json), or NULL. */
llm_codec *llava_codec(const llava *self);
const clip_vision_config *llava_vision_config(const llava *self);
const image_preprocess_config *llava_preprocess_config(const llava *self);
/* Feature rows one image becomes in the LLM's sequence (576 for ViT-L/14-336). */
int llava_image_tokens(const llava *self);
/* The vocabulary id of the prompt's image token, or -1 (GGUF: "<image>" is split as text). */
int llava_image_token_id(const llava *self);

/* pixels [n, 3, S, S] (image_preprocess output) -> features [n, image_tokens, llm dim]. */
int llava_encode_images(const llava *self, ts_ctx *ctx, const float *pixels, int n, float *features);

/* The prompt "text <image> text" as ids, with LLM_EMBEDDING_ROW for each of the image's
 * llava_image_tokens rows where "<image>" stands (exactly one). BOS as the tokenizer adds
 * it. *ids malloc'd. */
int llava_tokenize_prompt(const llava *self, const char *prompt, int **ids, int *n_ids);

/*
 * Greedy caption of one image: prefill of ids (LLM_EMBEDDING_ROW rows take the next row
 * of features in turn), then up to max_new tokens, stopping at an end token (the model's
 * EOS, or its chat template's end of turn). Uses sequence `seq` of s. *out malloc'd (the
 * end token excluded).
 */
int llava_generate(const llava *self, llm_state *s, int seq, const int *ids, int n_ids, const float *features,
                   int max_new, int **out, int *n_out);

/*
 * Greedy captions of n images together: prompt i (ids[i], n_ids[i] long, its image rows
 * taking features[i] in turn). Up to llm_state_max_seqs(s) sequences run at once; each
 * llm_forward carries one decode row per running sequence plus prompt rows of the others
 * (continuous batching, as the expander does), and a finished sequence's slot takes the
 * next image. Needs llm_state_max_batch(s) >= max_seqs. out[i] malloc'd, n_out[i] its length.
 */
int llava_generate_batch(const llava *self, llm_state *s, int n, const int *const *ids, const int *n_ids,
                         const float *const *features, int max_new, int **out, int *n_out);

/* The text of caption ids, as one line (newlines folded, spaces trimmed); malloc'd, NULL
 * without a tokenizer. */
char *llava_decode_text(const llava *self, const int *ids, int n);

#endif
