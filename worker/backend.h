/*
 * backend.h — the ONE interface through which workers call models.
 *
 * An expander turns short prompts into expanded descriptions; a renderer turns one
 * record into encoded image bytes. Workers know nothing else about models.
 *
 * Built-in backends (no model needed):
 *   expander "echo"  returns each prompt unchanged (identity)
 *   expander "null"  returns a fixed tiny rewrite: "<prompt>, detailed"
 *   renderer "null"  returns a fixed 1x1 PNG (tests and `tessera bench pipeline` only);
 *                    fails on purpose for a prompt containing "[[fail]]" (dead-letter tests)
 * Their model string may be "sleep:MS" (MS milliseconds per record) for fault tests.
 * Backend "model" runs real models: the expander is the embedded LLM (models.expander is
 * a .gguf file or Hugging Face folder) or, when models.expander is an http(s):// URL, an
 * OpenAI-compatible server; the renderer is txt2img (models.diffusion).
 */
#ifndef TESSERA_BACKEND_H
#define TESSERA_BACKEND_H

#include <stddef.h>
#include <stdint.h>

typedef struct ts_expander ts_expander;
struct ts_expander {
    const char *name;
    void *state;
    /* out[i] gets a malloc'ed expanded text for prompts[i]; 0 ok, -1 with ts_fail. A
     * per-prompt failure can be reported by leaving out[i] NULL and setting errors[i].
     * A reply the expander rejected (empty, runaway, not text, backend failure) is not a
     * failure: out[i] is the original prompt and fallbacks[i] a malloc'ed reason, so the
     * coordinator counts and records it. */
    int (*expand)(ts_expander *self, const char *const *prompts, const uint64_t *seeds, int n,
                  char **out, char **errors, char **fallbacks);
    void (*destroy)(ts_expander *self);
    /* Optional, for expanders that read more than the prompt (the captioner reads the image
     * each record's params_json names: worker/captioner.h). When set, workers call it
     * instead of expand(), with the same contract. */
    int (*expand_records)(ts_expander *self, const char *const *prompts, const char *const *params_json,
                          const uint64_t *seeds, int n, char **out, char **errors, char **fallbacks);
};

typedef struct {
    const char *prompt, *negative, *params_json, *sampler;
    uint64_t seed;
    int width, height, steps;
    float cfg;
} render_request;

typedef struct {
    uint8_t *bytes;      /* malloc'ed, owned by the caller after render() */
    size_t size;
    char ext[8];         /* "png" */
} render_output;

typedef struct ts_renderer ts_renderer;
struct ts_renderer {
    const char *name;
    void *state;
    int (*render)(ts_renderer *self, const render_request *req, render_output *out);
    void (*destroy)(ts_renderer *self);
};

/* kind: "null", "echo" or a name from backend.c's table; model: path from the job spec. */
ts_expander *backend_expander_new(const char *kind, const char *model);
ts_renderer *backend_renderer_new(const char *kind, const char *model);
/* The faithfulness check on a model expander's replies (models/llm/expand_check.h): check is
 * "none" or "keep-words" (NULL, "": none), retries < 0 the default. -1 for a bad name. */
int backend_expander_set_check(ts_expander *self, const char *check, int retries);
void backend_expander_destroy(ts_expander **self);
void backend_renderer_destroy(ts_renderer **self);

#endif
