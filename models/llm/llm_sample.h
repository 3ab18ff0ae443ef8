/*
 * llm_sample.h — choosing the next token, and the batched generate loop.
 *
 * Sampling order: repetition penalty on the logits (llama.cpp / CTRL: positive logits
 * divided, negative multiplied), then greedy if temperature is 0; otherwise top-k, divide
 * by the temperature, softmax, min-p (drop p < min_p * p_max), top-p (the smallest set
 * of most likely tokens whose mass exceeds top_p), and a draw. With only temperature and
 * top-p set this is exactly llama2.c's sampler, xorshift generator included, so a seed
 * means the same as there. A given seed gives the same tokens every time, whatever else
 * shares the batch (each sequence has its own generator).
 */
#ifndef TESSERA_LLM_SAMPLE_H
#define TESSERA_LLM_SAMPLE_H

#include "models/llm/llm.h"

typedef struct llm_sampling {
    float temperature;     /* 0: greedy */
    int top_k;             /* 0: off */
    float top_p;           /* 0 or >= 1: off */
    float min_p;           /* 0: off */
    float repeat_penalty;  /* 1: off */
    int repeat_last_n;     /* tokens of history the penalty looks at; 0: all */
    uint64_t seed;         /* 0 is replaced by a fixed non-zero seed */
} llm_sampling;

/* Greedy, every filter off, repeat_last_n 64. */
llm_sampling llm_sampling_greedy(void);

typedef struct llm_sampler llm_sampler;
llm_sampler *llm_sampler_new(const llm_sampling *params, int vocab_size);
void llm_sampler_destroy(llm_sampler **self);
/* The next token from logits [vocab] (changed in place); history: the tokens so far. */
int llm_sampler_sample(llm_sampler *self, float *logits, const int *history, int n_history);

/* ---- generation ---- */

/* Text of `token` following `prev`, for stop strings and the output text: *len bytes,
 * which may include NUL (a <0x00> byte token is one). Any tokenizer plugs in here; the
 * returned pointer only needs to live until the next call. */
typedef struct llm_detokenizer {
    void *ctx;
    const char *(*piece)(void *ctx, int prev, int token, size_t *len);
} llm_detokenizer;

/* A constraint on what may be generated (constrained decoding, e.g. a grammar): before each
 * new token of prompt `prompt` is chosen, restrict_logits() sets logits[t] = -INFINITY for
 * every token t that may not come next, given the tokens and text generated so far (end
 * tokens included: masking them keeps the sequence going); prev is the token before the
 * next one (the prompt's last at first), as the detokenizer takes it. It must leave at least
 * one token; -1 (with ts_fail) stops the generation as an error. */
typedef struct llm_constraint {
    void *ctx;
    int (*restrict_logits)(void *ctx, int prompt, const int *generated, int n_generated, int prev,
                           const char *text, size_t text_len, float *logits, int vocab_size);
} llm_constraint;

typedef struct llm_generation {
    int max_tokens;                /* new tokens per prompt; <= 0: until the context is full */
    const char *const *stop;       /* stop strings (need a detokenizer); the text ends before one */
    int n_stop;
    const int *end_ids;            /* tokens that end a sequence; NULL: the model's eos_id */
    int n_end;
    const llm_constraint *constraint; /* NULL: none; needs a detokenizer for its text */
} llm_generation;

typedef enum { LLM_FINISH_LENGTH = 0, LLM_FINISH_END_TOKEN, LLM_FINISH_STOP } llm_finish;

typedef struct llm_output {
    int *tokens;                   /* generated ids (the end token excluded); free() */
    int n_tokens;
    char *text;                    /* their text (NULL without a detokenizer); free() */
    size_t text_len;               /* its bytes: text may hold NUL bytes, and ends with one more */
    llm_finish finish;
} llm_output;

/*
 * Continues every prompt, batching them through the state: up to llm_state_max_seqs
 * sequences at once (a finished one's slot takes the next prompt), their prefill and
 * decode tokens packed into batches of up to llm_state_max_batch. out[n_prompts].
 * Empty prompts are refused (give at least a BOS).
 */
int llm_generate(const llm *m, llm_state *s, int n_prompts, const int *const *prompts, const int *prompt_lens,
                 const llm_sampling *sampling, const llm_generation *gen, const llm_detokenizer *detok,
                 llm_output *out);
void llm_output_free(llm_output *out, int n);

#endif
