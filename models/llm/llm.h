/*
 * llm.h — the Llama-family decoder (Llama 2/3, Mistral, Qwen2/2.5, SmolLM, llama2.c).
 *
 * In llama2.c's shape: one struct for the config, one for the weights, one for the run
 * state. The model maps token ids to logits; it knows nothing of text, so any tokenizer
 * plugs in on top (ids in, logits out; see llm_sample.h for the generate loop).
 *
 *   llm *m = llm_open("qwen2.5-0.5b-q8_0.gguf");      // GGUF, HF folder or llama2.c .bin
 *   llm_state *s = llm_state_new(m, ctx, 4, 512, 64);  // 4 sequences of up to 512 tokens
 *   llm_forward(m, s, n, tokens, seqs, positions, n_out, out_rows, logits);
 *
 * Batching: one llm_forward call takes n tokens from any mix of sequences (prefill of
 * several prompts of different lengths, or one decode token per sequence). Token i is
 * at position pos[i] of sequence seq[i]; it attends to positions 0..pos[i] of its own
 * sequence, which must be in the KV cache already or in this same batch.
 *
 * Weights stay in the memory-mapped file in their stored type (F32/F16/BF16/Q8_0/Q4_0/
 * Q4_K/Q6_K); the matmuls run on the stored blocks (kernels/quant.h).
 */
#ifndef TESSERA_LLM_H
#define TESSERA_LLM_H

#include "kernels/quant.h"
#include "kernels/backend.h"

typedef enum {
    ROPE_INTERLEAVED = 0,  /* pairs (2i, 2i+1): llama2.c, GGUF "llama" (q/k rows permuted) */
    ROPE_NEOX = 1          /* pairs (i, i + d/2): Hugging Face rotate_half, GGUF "qwen2" */
} rope_style;

typedef struct llm_config {
    char arch[32];         /* "llama", "qwen2", "llama2c", ... */
    int dim;               /* hidden size */
    int hidden_dim;        /* feed-forward size */
    int n_layers;
    int n_heads;
    int n_kv_heads;        /* < n_heads: grouped-query attention */
    int head_dim;
    int vocab_size;
    int max_seq_len;       /* the model's context length */
    float norm_eps;
    float rope_theta;
    rope_style rope;
    bool qkv_bias;         /* Qwen2 */
    bool tied_output;      /* output projection is the token embedding */
    int bos_id, eos_id;    /* -1 when unknown */
} llm_config;

typedef struct llm_layer {
    tensor attn_norm, ffn_norm;          /* [dim], any float dtype */
    qmatrix wq, wk, wv, wo;              /* [heads*hd, dim], [kv*hd, dim] x2, [dim, heads*hd] */
    tensor bq, bk, bv;                   /* data NULL when absent */
    qmatrix w_gate, w_up, w_down;        /* [hidden, dim] x2, [dim, hidden] */
} llm_layer;

typedef struct llm_weights {
    qmatrix token_embd;                  /* [vocab, dim] */
    llm_layer *layers;
    tensor out_norm;                     /* [dim] */
    qmatrix output;                      /* [vocab, dim]; = token_embd when tied */
    float *rope_inv_freq;                /* [head_dim/2], with any frequency scaling applied */
} llm_weights;

typedef struct llm llm;

/* Opens a model: a .gguf file, a Hugging Face folder (config.json + *.safetensors) or a
 * llama2.c checkpoint (.bin). NULL with a message naming the file and what was wrong. */
llm *llm_open(const char *path);
void llm_destroy(llm **self);

const llm_config *llm_get_config(const llm *self);
const llm_weights *llm_get_weights(const llm *self);
/* The weight type most of the model is stored in ("Q8_0", "BF16", ...). */
const char *llm_weight_type(const llm *self);
/* The GGUF file behind the model (for the tokenizer's metadata), or NULL. */
const struct gguf *llm_gguf(const llm *self);
/* The folder of a Hugging Face model (for tokenizer.json), or NULL. */
const char *llm_folder(const llm *self);
int64_t llm_parameter_count(const llm *self);

/* Used by the format loaders (llm.c, llama2c.c): a model from a filled config and
 * weights; `owner` is freed with `release(owner)` on destroy (the mapping). */
llm *llm_new(const llm_config *config, const llm_weights *weights, void *owner, void (*release)(void *));
/* Base RoPE frequencies 1 / theta^(2i/head_dim), in float as Hugging Face computes them. */
float *llm_rope_frequencies(int head_dim, float theta);
/* Llama 3 "llama3" rope scaling applied in place (transformers' _compute_llama3_parameters). */
void llm_rope_llama3_scaling(float *inv_freq, int head_dim, float factor, float low_freq_factor,
                             float high_freq_factor, float original_max_position);

/* ---- run state: the KV cache and scratch for batches of up to max_batch tokens ---- */

typedef struct llm_state llm_state;

/* max_ctx: positions per sequence (<= 0: the model's context length). */
llm_state *llm_state_new(const llm *m, ts_ctx *ctx, int max_seqs, int max_ctx, int max_batch);
void llm_state_destroy(llm_state **self);
int llm_state_max_seqs(const llm_state *self);
int llm_state_max_ctx(const llm_state *self);
int llm_state_max_batch(const llm_state *self);
ts_ctx *llm_state_context(const llm_state *self);   /* the context given at llm_state_new */

/*
 * One forward pass over n tokens (n <= max_batch). logits receives n_out rows of
 * vocab_size floats, for the batch rows listed in out_rows (NULL: every row).
 * -1 with a message on a bad token id, sequence or position.
 */
int llm_forward(const llm *m, llm_state *s, int n, const int *tokens, const int *seqs, const int *pos,
                int n_out, const int *out_rows, float *logits);

/* Like llm_forward, with some rows given as embeddings instead of token ids: where
 * tokens[i] is LLM_EMBEDDING_ROW, row i of embeddings [n, dim] is used as the input
 * (a captioner's image features standing where the prompt's image token stood). */
#define LLM_EMBEDDING_ROW (-1)
int llm_forward_embeddings(const llm *m, llm_state *s, int n, const int *tokens, const float *embeddings,
                           const int *seqs, const int *pos, int n_out, const int *out_rows, float *logits);

#endif
