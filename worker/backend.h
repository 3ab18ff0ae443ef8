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

#include <stdbool.h>
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

/* How a render session groups records (job keys workers.batch, workers.unet_shared). */
typedef struct {
    int batch;           /* records of one submission in one txt2img call (1..64) */
    bool unet_shared;    /* false: each record's U-Net rows run on their own, its bytes those of a
                            batch of one. true: one U-Net call a step for the records whose
                            prompts have the same token count: faster, but a record's pixels may
                            then move a little with its batch (the GEMM tiles and the few-rows
                            linear path depend on the row count; README, render throughput) */
} render_batching;

/* A rendered record: called once for each submitted request, from one thread at a time (not
 * necessarily the submitter's), with the image (out->bytes passes to the callee) or the
 * error; tag is the submission's. */
typedef void (*render_done_fn)(void *user, void *tag, int index, render_output *out, const char *error);

typedef struct ts_renderer ts_renderer;
struct ts_renderer {
    const char *name;
    void *state;
    int (*render)(ts_renderer *self, const render_request *req, render_output *out);
    void (*destroy)(ts_renderer *self);
    bool pipelined;      /* sessions run stage threads (the model renderer); else render() inline */
};

/* Where a session's time went (seconds since render_session_new). */
typedef struct {
    double wall;
    double unet_busy, text_busy, decode_busy;   /* each stage's working time (U-Net: sampling) */
    double unet_end;     /* when the U-Net finished its last batch: after it only the last decodes */
    int batches, images;
} render_stats;

/*
 * A render session: records in, images out through done(). Records of one submission (a
 * task) that have the same size, steps, cfg and sampler go `batch` at a time into one model
 * call. The model renderer runs a pipeline of three stages, each in its own thread with its
 * own model component, that stays up across submissions: text encoding of the next batch and
 * VAE decode + PNG encoding + done() of the last batch go on while the U-Net samples, so the
 * U-Net does not wait between batches nor between a worker's tasks. Other renderers render
 * inline in render_session_submit. Without how->unet_shared a record's image does not depend
 * on the records it is batched with: its bytes are those of a batch of one. A record that
 * fails (a bad prompt) gets its error; the others go on.
 */
typedef struct render_session render_session;
render_session *render_session_new(ts_renderer *renderer, const render_batching *how, render_done_fn done, void *user);
/* Queues n requests; reqs (and its strings) must live until their done() calls. */
int render_session_submit(render_session *self, const render_request *reqs, int n, void *tag);
/* Waits until every submitted request is done, then ends the threads; stats may be NULL. */
void render_session_destroy(render_session **self, render_stats *stats);
/* A session for just these requests: new, submit (tag NULL), destroy. */
int backend_render_many(ts_renderer *self, const render_request *reqs, int n, const render_batching *how,
                        render_done_fn done, void *user, render_stats *stats);

/* kind: "null", "echo" or a name from backend.c's table; model: path from the job spec;
 * device: where a model expander or renderer computes, "cpu" (NULL) or "cuda[:N]"
 * (workers.device). */
ts_expander *backend_expander_new(const char *kind, const char *model, const char *device);
ts_renderer *backend_renderer_new(const char *kind, const char *model, const char *device);
/* The "model" renderer as rank 0 of a group of MPI ranks that share its U-Net (unet.h:
 * parallel a unet_parallel); the other ranks serve it in txt2img_follow (render_group.h).
 * tp_pieces: txt2img_options.tp_pieces (group NULL: one rank computing every piece). */
struct comm;
ts_renderer *backend_renderer_new_in_group(const char *kind, const char *model, const char *device, struct comm *group,
                                           int parallel, int tp_pieces);
/* The faithfulness check on a model expander's replies (models/llm/expand_check.h): check is
 * "none" or "keep-words" (NULL, "": none), retries < 0 the default. -1 for a bad name. */
int backend_expander_set_check(ts_expander *self, const char *check, int retries);
void backend_expander_destroy(ts_expander **self);
void backend_renderer_destroy(ts_renderer **self);

#endif
