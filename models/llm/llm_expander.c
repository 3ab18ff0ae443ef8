/* llm_expander.c — batched prompt expansion with the embedded LLM (see expander.h). */
#include "models/llm/llm_expander.h"
#include "models/formats/gguf.h"
#include "models/llm/expand_grammar.h"
#include "models/llm/llm_codec.h"

#include <math.h>

#include <stdlib.h>
#include <string.h>

struct llm_expander {
    llm_expander_options options;
    llm *model;
    ts_ctx *ctx;                 /* where the model computes */
    llm_codec *codec;
    llm_state *state;
    upsample_instruction *instruction;
    char *prompt_format;          /* completion mode: "{prompt}" replaced by the prompt */
    char *grammar;                /* constrained decoding, NULL: none */
};

llm_expander_options llm_expander_default_options(void) {
    llm_expander_options o = {0};
    o.sampling = llm_sampling_greedy();
    o.sampling.temperature = 0.7f;
    o.sampling.top_p = 0.9f;
    o.sampling.repeat_penalty = 1.1f;
    o.max_tokens = 160;
    o.max_batch = 8;
    return o;
}

llm_expander *llm_expander_open(const llm_expander_options *o) {
    llm_expander *e = ts_calloc(1, sizeof *e);
    e->options = *o;
    if (e->options.max_batch <= 0) e->options.max_batch = 8;
    if (e->options.max_tokens <= 0) e->options.max_tokens = 160;
    e->model = llm_open(o->model);
    if (!e->model) goto fail;
    e->codec = llm_codec_open(e->model, o->model, o->tokenizer);
    if (!e->codec || llm_codec_set_template(e->codec, o->template_name) != 0) goto fail;
    if (o->prompt_format) e->prompt_format = ts_strdup(o->prompt_format);
    else if (llm_gguf(e->model) && gguf_find_key(llm_gguf(e->model), "tessera.expander.prompt_format") >= 0) {
        gguf_str f;
        if (gguf_get_string(llm_gguf(e->model), "tessera.expander.prompt_format", &f) != 0) goto fail;
        e->prompt_format = gguf_strdup(f);
    }
    if (o->grammar) e->grammar = ts_strdup(o->grammar);
    else if (llm_gguf(e->model) && gguf_find_key(llm_gguf(e->model), "tessera.expander.grammar") >= 0) {
        gguf_str f;
        if (gguf_get_string(llm_gguf(e->model), "tessera.expander.grammar", &f) != 0) goto fail;
        e->grammar = gguf_strdup(f);
    }
    if (e->grammar && expand_grammar_check_name(e->grammar) != 0) { ts_fail_wrap("%s", o->model); goto fail; }
    if (e->grammar && !strcmp(e->grammar, "none")) { free(e->grammar); e->grammar = NULL; }
    double v;
    if (o->model_sampling && llm_gguf(e->model)) {
        if (gguf_get_float_or(llm_gguf(e->model), "tessera.expander.temperature", e->options.sampling.temperature, &v) != 0) goto fail;
        e->options.sampling.temperature = (float)v;
        if (gguf_get_float_or(llm_gguf(e->model), "tessera.expander.repeat_penalty", e->options.sampling.repeat_penalty, &v) != 0) goto fail;
        e->options.sampling.repeat_penalty = (float)v;
    }
    if (e->prompt_format && !strstr(e->prompt_format, "{prompt}")) {
        ts_fail("%s: the prompt format '%s' has no {prompt}", o->model, e->prompt_format);
        goto fail;
    }
    if (!e->prompt_format && !llm_codec_has_template(e->codec)) {
        ts_fail("%s: the model has no chat template; name one with --template", o->model);
        goto fail;
    }
    e->instruction = upsample_load_instruction(o->system_file, o->examples_file);
    if (!e->instruction) goto fail;
    /* the upsampling conversation is a few hundred tokens: a long model context would
     * only make the KV cache large */
    int ctx = llm_get_config(e->model)->max_seq_len;
    if (ctx <= 0 || ctx > 2048) ctx = 2048;
    e->ctx = ts_ctx_new(e->options.device, e->options.threads);
    if (!e->ctx) goto fail;
    e->state = llm_state_new(e->model, e->ctx, e->options.max_batch, ctx, 512);
    if (!e->state) goto fail;
    return e;
fail:
    llm_expander_destroy(&e);
    return NULL;
}

void llm_expander_destroy(llm_expander **self) {
    if (!self || !*self) return;
    llm_expander *e = *self;
    llm_state_destroy(&e->state);
    ts_ctx_destroy(&e->ctx);
    llm_codec_destroy(&e->codec);
    upsample_instruction_destroy(&e->instruction);
    free(e->prompt_format);
    free(e->grammar);
    llm_destroy(&e->model);
    free(e);
    *self = NULL;
}

/* The completion format with every "{prompt}" replaced. */
static char *format_prompt(const char *format, const char *prompt) {
    size_t n = strlen(format) + 1, pl = strlen(prompt);
    for (const char *p = strstr(format, "{prompt}"); p; p = strstr(p + 8, "{prompt}")) n += pl;
    char *out = ts_malloc(n), *w = out;
    for (const char *p = format; *p;) {
        if (strncmp(p, "{prompt}", 8) == 0) { memcpy(w, prompt, pl); w += pl; p += 8; }
        else *w++ = *p++;
    }
    *w = 0;
    return out;
}

int llm_expander_run(llm_expander *e, int n, const char *const *prompts, expansion *out) {
    return llm_expander_run_with(e, n, prompts, NULL, out);
}

const llm_sampling *llm_expander_sampling(const llm_expander *e) { return &e->options.sampling; }

const char *llm_expander_grammar(const llm_expander *e) { return e->grammar ? e->grammar : "none"; }

/* Constrained decoding: every token after which the grammar cannot finish the reply is
 * masked, and the end tokens until it is finished. */
typedef struct {
    expand_grammar *grammar;
    llm_detokenizer detok;
    const int *end_ids;
    int n_end;
} grammar_constraint;

static int restrict_to_grammar(void *ctx, int prompt, const int *generated, int n_generated, int prev,
                               const char *text, size_t len, float *logits, int vocab) {
    (void)generated; (void)n_generated;
    grammar_constraint *c = ctx;
    if (!expand_grammar_applies(c->grammar, prompt)) return 0;
    bool complete = expand_grammar_status_after(c->grammar, prompt, text, len, "", 0) == GRAMMAR_COMPLETE;
    int allowed = 0;
    for (int t = 0; t < vocab; t++) {
        if (logits[t] == -INFINITY) continue;
        bool end = false, ok;
        for (int k = 0; k < c->n_end; k++) end |= t == c->end_ids[k];
        if (end) ok = complete;
        else {
            size_t pl = 0;
            const char *piece = c->detok.piece(c->detok.ctx, prev, t, &pl);
            ok = piece && pl > 0 && expand_grammar_status_after(c->grammar, prompt, text, len, piece, pl) != GRAMMAR_DEAD;
        }
        if (ok) allowed++;
        else logits[t] = -INFINITY;
    }
    if (!allowed) return ts_fail("expander grammar: no token continues the reply to prompt %d: \"%.*s\"", prompt, (int)len, text);
    return 0;
}

int llm_expander_run_with(llm_expander *e, int n, const char *const *prompts, const llm_sampling *sampling,
                          expansion *out) {
    int **ids = ts_calloc((size_t)n, sizeof(int *));
    int *lens = ts_calloc((size_t)n, sizeof(int));
    int rc = -1;
    chat_message *msgs = ts_malloc(sizeof(chat_message) * (size_t)(2 + 2 * upsample_example_count(e->instruction)));
    for (int i = 0; i < n; i++) {
        char *text;
        bool add_special = false;   /* a chat template writes its own BOS */
        if (e->prompt_format) {
            text = format_prompt(e->prompt_format, prompts[i]);
            add_special = true;      /* BOS/EOS as the model file says */
        } else {
            int count = upsample_messages(e->instruction, prompts[i], msgs);
            text = llm_codec_render_chat(e->codec, msgs, count);
        }
        int r = llm_codec_encode(e->codec, text, add_special, true, &ids[i], &lens[i]);
        free(text);
        if (r != 0) { ts_fail_wrap("prompt %d", i); goto done; }
    }
    int end_ids[8];
    llm_generation gen = {.max_tokens = e->options.max_tokens};
    gen.n_end = llm_codec_end_ids(e->codec, end_ids, 8);
    gen.end_ids = gen.n_end ? end_ids : NULL;
    llm_detokenizer detok = llm_codec_detokenizer(e->codec);
    expand_grammar *grammar = NULL;
    grammar_constraint constraint;
    llm_constraint hook = {&constraint, restrict_to_grammar};
    if (e->grammar) {
        if (!(grammar = expand_grammar_new(e->grammar, n, prompts))) goto done;
        constraint = (grammar_constraint){grammar, detok, end_ids, gen.n_end};
        if (!gen.n_end) constraint.end_ids = &llm_get_config(e->model)->eos_id, constraint.n_end = 1;
        gen.constraint = &hook;
    }
    llm_output *outputs = ts_calloc((size_t)n, sizeof(llm_output));
    if (llm_generate(e->model, e->state, n, (const int *const *)ids, lens, sampling ? sampling : &e->options.sampling,
                     &gen, &detok, outputs) != 0) {
        free(outputs);
        expand_grammar_destroy(&grammar);
        goto done;
    }
    expand_grammar_destroy(&grammar);
    for (int i = 0; i < n; i++) {
        out[i].raw = ts_strdup(outputs[i].text ? outputs[i].text : "");
        char *clean = upsample_clean(out[i].raw, outputs[i].finish == LLM_FINISH_LENGTH, &out[i].verdict);
        if (out[i].verdict == UPSAMPLE_OK) out[i].text = clean;
        else { free(clean); out[i].text = ts_strdup(prompts[i]); }
    }
    llm_output_free(outputs, n);
    free(outputs);
    rc = 0;
done:
    for (int i = 0; i < n; i++) free(ids[i]);
    free(ids);
    free(lens);
    free(msgs);
    return rc;
}

void expansion_free(expansion *x, int n) {
    for (int i = 0; i < n; i++) { free(x[i].text); free(x[i].raw); x[i].text = x[i].raw = NULL; }
}
