/*
 * llm_expander.h — prompt expansion with the embedded LLM: every prompt becomes the
 * upsampling conversation (upsample.h) in the model's chat template, all of them are
 * generated in one batch, and each reply is cleaned and judged. A reply that fails the
 * judgement falls back to the original prompt with its verdict, so the caller can count
 * and record it.
 *
 * Base models trained for one task (like the demo's shapes expander) have no chat
 * template: they take a completion format instead, "{prompt} =>" for instance, from the
 * options or from the GGUF key tessera.expander.prompt_format. The format replaces the
 * whole conversation (with BOS before it); the reply is judged the same way. Such a model
 * may also say how to sample it (tessera.expander.temperature, .repeat_penalty): those
 * replace the defaults when model_sampling is set, and name the grammar its replies are
 * decoded under (tessera.expander.grammar, expand_grammar.h: constrained decoding that
 * keeps what the prompt names).
 */
#ifndef TESSERA_LLM_EXPANDER_H
#define TESSERA_LLM_EXPANDER_H

#include "models/llm/llm_sample.h"
#include "models/llm/upsample.h"

typedef struct llm_expander_options {
    const char *model;           /* .gguf, Hugging Face folder */
    const char *tokenizer;       /* override; NULL: the model's own */
    const char *template_name;   /* NULL: the model's own */
    const char *prompt_format;   /* NULL: the model's tessera.expander.prompt_format, else chat */
    const char *system_file;     /* NULL: built in */
    const char *examples_file;   /* NULL: built in */
    const char *grammar;         /* constrained decoding (expand_grammar.h): "none", "shapes";
                                  * NULL: the model's tessera.expander.grammar, else none */
    llm_sampling sampling;
    bool model_sampling;         /* the model's tessera.expander.* sampling keys win over .sampling */
    int max_tokens;              /* per reply */
    int max_batch;               /* prompts generated together */
    int threads;                 /* CPU threads of the model's ops; 0: all cores */
    const char *device;          /* where it computes: NULL or "cpu", "cuda[:N]" */
} llm_expander_options;

/* Defaults: temperature 0.7, top-p 0.9, repeat penalty 1.1, 160 tokens, batch 8. */
llm_expander_options llm_expander_default_options(void);

typedef struct expansion {
    char *text;                  /* the description, or the original prompt on fallback */
    char *raw;                   /* what the model said */
    upsample_verdict verdict;    /* UPSAMPLE_OK unless it fell back */
} expansion;

typedef struct llm_expander llm_expander;

llm_expander *llm_expander_open(const llm_expander_options *options);
void llm_expander_destroy(llm_expander **self);
/* Expands n prompts; out[n] filled (free with expansion_free). -1 only when the model
 * itself fails; bad replies are fallbacks, not errors. */
int llm_expander_run(llm_expander *self, int n, const char *const *prompts, expansion *out);
/* The same with other sampling settings (a retry of expand_check.h); NULL: as configured. */
int llm_expander_run_with(llm_expander *self, int n, const char *const *prompts, const llm_sampling *sampling,
                          expansion *out);
/* The sampling settings in force (after the model's own, see model_sampling). */
const llm_sampling *llm_expander_sampling(const llm_expander *self);
/* The grammar replies are decoded under ("none" when unconstrained). */
const char *llm_expander_grammar(const llm_expander *self);
void expansion_free(expansion *e, int n);

#endif
