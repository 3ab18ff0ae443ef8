/* backend.c — the built-in backends (echo / null) and the table where real models plug in. */
#include "worker/backend.h"
#include "kernels/base.h"
#include "models/formats/image_png.h"
#include "models/llm/expand_check.h"
#include "models/llm/llm_expander.h"
#include "models/diffusion/txt2img.h"
#include "worker/captioner.h"
#include "worker/llm_http.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A 1x1 grey RGB PNG, the null renderer's whole output. */
static const uint8_t null_png[69] = {
    0x89,0x50,0x4e,0x47,0x0d,0x0a,0x1a,0x0a,0x00,0x00,0x00,0x0d,0x49,0x48,0x44,0x52,0x00,0x00,0x00,0x01,
    0x00,0x00,0x00,0x01,0x08,0x02,0x00,0x00,0x00,0x90,0x77,0x53,0xde,0x00,0x00,0x00,0x0c,0x49,0x44,0x41,
    0x54,0x78,0x9c,0x63,0x68,0x68,0x68,0x00,0x00,0x03,0x04,0x01,0x81,0x4b,0xd3,0xd2,0x10,0x00,0x00,0x00,
    0x00,0x49,0x45,0x4e,0x44,0xae,0x42,0x60,0x82};

/* The built-in backends take "sleep:MS" as their model: MS milliseconds per record, so
 * fault tests have jobs that last a few seconds. */
static int sleep_ms_of(const char *model) {
    return model && !strncmp(model, "sleep:", 6) ? atoi(model + 6) : 0;
}

static void nap(void *state) {
    int ms = (int)(intptr_t)state;
    if (ms <= 0) return;
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int echo_expand(ts_expander *self, const char *const *prompts, const uint64_t *seeds, int n,
                       char **out, char **errors, char **fallbacks) {
    (void)fallbacks;
    int suffix = strcmp(self->name, "null") == 0;
    for (int i = 0; i < n; i++) {
        nap(self->state);
        size_t len = strlen(prompts[i]);
        out[i] = ts_malloc(len + 16);
        memcpy(out[i], prompts[i], len + 1);
        if (suffix) strcat(out[i], ", detailed");
        errors[i] = NULL;
    }
    return 0;
}

static void plain_expander_destroy(ts_expander *self) { free(self); }

static int null_render(ts_renderer *self, const render_request *req, render_output *out) {
    nap(self->state);
    if (strstr(req->prompt, "[[fail]]")) return ts_fail("null renderer: the prompt asks for a failure");
    out->bytes = ts_malloc(sizeof null_png);
    memcpy(out->bytes, null_png, sizeof null_png);
    out->size = sizeof null_png;
    strcpy(out->ext, "png");
    return 0;
}

static void plain_renderer_destroy(ts_renderer *self) { free(self); }

static ts_expander *echo_expander_new(const char *name, const char *model, const char *device) {
    (void)device;
    ts_expander *e = ts_calloc(1, sizeof *e);
    e->name = name;
    e->state = (void *)(intptr_t)sleep_ms_of(model);
    e->expand = echo_expand;
    e->destroy = plain_expander_destroy;
    return e;
}

static ts_renderer *null_renderer_new(const char *name, const char *model, const char *device) {
    (void)device;
    ts_renderer *r = ts_calloc(1, sizeof *r);
    r->name = name;
    r->state = (void *)(intptr_t)sleep_ms_of(model);
    r->render = null_render;
    r->destroy = plain_renderer_destroy;
    return r;
}

/* ---- the real expander: embedded LLM, or an OpenAI-compatible server ---- */

typedef struct {
    llm_expander *embedded;
    llm_http *http;
    expand_check_options check;   /* expand.check, expand.retries */
} model_expander;

/* One try (expand_check.h): retries of the embedded LLM sample with other seeds; a server
 * samples as it is configured to, so a retry just asks again. */
static int model_expand_attempt(void *ctx, int n, const char *const *prompts, int attempt, expansion *out) {
    model_expander *m = ctx;
    if (m->http) return llm_http_expand(m->http, n, prompts, out);
    return expand_llm_try(m->embedded, n, prompts, attempt, m->check.retry_temperature, out);
}

static int model_expand(ts_expander *self, const char *const *prompts, const uint64_t *seeds, int n,
                        char **out, char **errors, char **fallbacks) {
    (void)seeds;
    model_expander *m = self->state;
    expansion *x = ts_calloc((size_t)n, sizeof *x);
    int rc = expand_checked(model_expand_attempt, m, &m->check, n, prompts, x);
    for (int i = 0; i < n && rc == 0; i++) {
        out[i] = x[i].text;
        x[i].text = NULL;
        errors[i] = NULL;
        fallbacks[i] = x[i].verdict == UPSAMPLE_OK ? NULL : ts_strdup(upsample_verdict_name(x[i].verdict));
    }
    expansion_free(x, n);
    free(x);
    return rc;
}

static void model_expander_destroy(ts_expander *self) {
    model_expander *m = self->state;
    llm_expander_destroy(&m->embedded);
    llm_http_destroy(&m->http);
    free(m);
    free(self);
}

static ts_expander *model_expander_new(const char *name, const char *model, const char *device) {
    if (!model || !*model) { ts_fail("backend 'model': no expander model (set models.expander)"); return NULL; }
    model_expander *m = ts_calloc(1, sizeof *m);
    m->check = expand_check_default_options();
    if (!strncmp(model, "http://", 7) || !strncmp(model, "https://", 8)) {
        llm_http_options o = llm_http_default_options();
        o.url = model;
        m->http = llm_http_new(&o);
    } else {
        llm_expander_options o = llm_expander_default_options();
        o.model = model;
        o.device = device;
        o.model_sampling = true;
        m->embedded = llm_expander_open(&o);
    }
    if (!m->embedded && !m->http) { free(m); return NULL; }
    ts_expander *e = ts_calloc(1, sizeof *e);
    e->name = name;
    e->state = m;
    e->expand = model_expand;
    e->destroy = model_expander_destroy;
    return e;
}

/* ---- the real renderer: txt2img, one PNG with A1111 parameters per record ---- */

typedef struct {
    txt2img *pipeline;
    char model_name[256];
} model_renderer;

static txt2img_request request_of(const render_request *q) {
    txt2img_request r = txt2img_request_defaults();
    r.prompt = q->prompt;
    r.negative = q->negative;
    r.seed = q->seed;
    if (q->width > 0) r.width = q->width;
    if (q->height > 0) r.height = q->height;
    if (q->steps > 0) r.steps = q->steps;
    if (q->cfg > 0) r.cfg_scale = q->cfg;
    if (q->sampler && q->sampler[0]) r.sampler = q->sampler;
    return r;
}

/* One image as a PNG with the parameters of its request made alone (a batch of one). */
static int png_of(const model_renderer *m, const txt2img_request *r, const uint8_t *rgb, int width, int height,
                  render_output *out) {
    gen_parameters gp = {.prompt = (char *)r->prompt, .negative = (char *)(r->negative ? r->negative : ""),
                         .steps = r->steps, .cfg_scale = r->cfg_scale, .seed = (int64_t)r->seed,
                         .width = width, .height = height};
    snprintf(gp.sampler, sizeof gp.sampler, "%s", txt2img_a1111_sampler(r->sampler));
    snprintf(gp.model, sizeof gp.model, "%s", m->model_name);
    char *params = gen_parameters_format(&gp);
    void *png = NULL;
    size_t size = 0;
    int rc = image_png_encode(rgb, width, height, params, &png, &size);
    free(params);
    if (rc != 0) return -1;
    out->bytes = png;
    out->size = size;
    strcpy(out->ext, "png");
    return 0;
}

static int model_render(ts_renderer *self, const render_request *req, render_output *out) {
    model_renderer *m = self->state;
    txt2img_request r = request_of(req);
    txt2img_result res;
    if (txt2img_generate(m->pipeline, &r, &res) < 0) return -1;
    int rc = png_of(m, &r, res.rgb[0], res.width, res.height, out);
    txt2img_result_free(&res);
    return rc;
}

/* ---- render sessions: batches through a pipeline of three stage threads ---- */

/* Records of one txt2img call. The text stage drops a record whose prompt fails (its error
 * goes into failed[]); a failure of the whole call is `error`. */
typedef struct render_batch render_batch;
struct render_batch {
    render_batch *next;                  /* the session's input queue */
    const render_request *reqs;          /* the submission's */
    void *tag;
    int n;
    int *index;                          /* into reqs */
    const char **prompts, **negatives;
    uint64_t *seeds;
    txt2img_request req;
    txt2img_text *text;
    txt2img_result result;
    char *error;
    int n_failed;
    int *failed;
    char **failed_error;
};

/* A one-slot handoff between two stages. */
typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    render_batch *slot;
    bool closed;
} handoff;

static void handoff_init(handoff *h) {
    pthread_mutex_init(&h->lock, NULL);
    pthread_cond_init(&h->changed, NULL);
    h->slot = NULL;
    h->closed = false;
}

static void handoff_fini(handoff *h) {
    pthread_mutex_destroy(&h->lock);
    pthread_cond_destroy(&h->changed);
}

static void handoff_put(handoff *h, render_batch *b) {
    pthread_mutex_lock(&h->lock);
    while (h->slot) pthread_cond_wait(&h->changed, &h->lock);
    h->slot = b;
    pthread_cond_broadcast(&h->changed);
    pthread_mutex_unlock(&h->lock);
}

static void handoff_close(handoff *h) {
    pthread_mutex_lock(&h->lock);
    h->closed = true;
    pthread_cond_broadcast(&h->changed);
    pthread_mutex_unlock(&h->lock);
}

/* The next batch, or NULL once the sender closed and the slot is empty. */
static render_batch *handoff_take(handoff *h) {
    pthread_mutex_lock(&h->lock);
    while (!h->slot && !h->closed) pthread_cond_wait(&h->changed, &h->lock);
    render_batch *b = h->slot;
    h->slot = NULL;
    pthread_cond_broadcast(&h->changed);
    pthread_mutex_unlock(&h->lock);
    return b;
}

struct render_session {
    ts_renderer *renderer;
    model_renderer *m;                   /* pipelined: the model */
    render_batching how;
    render_done_fn done;
    void *user;
    /* the text stage's input: batches queued by submit */
    pthread_mutex_t lock;
    pthread_cond_t changed;
    render_batch *head, *tail;
    bool closing;
    handoff to_unet, to_decode;
    pthread_t threads[3];
    int started;
    double t0;
    double busy[3];                      /* text, U-Net, decode: each written by its stage only */
    double unet_end;                     /* the U-Net stage's */
    int batches, images;                 /* the submitter's */
};

static bool same_str(const char *a, const char *b) { return !strcmp(a ? a : "", b ? b : ""); }

/* Records that may share a txt2img call: the same size, steps, cfg and sampler. */
static bool batchable(const render_request *a, const render_request *b) {
    return a->width == b->width && a->height == b->height && a->steps == b->steps && a->cfg == b->cfg &&
           same_str(a->sampler, b->sampler);
}

static void batch_free(render_batch *b) {
    txt2img_text_free(&b->text);
    txt2img_result_free(&b->result);
    for (int j = 0; j < b->n_failed; j++) free(b->failed_error[j]);
    free(b->index), free(b->prompts), free(b->negatives), free(b->seeds), free(b->failed), free(b->failed_error);
    free(b->error);
    free(b);
}

/* Text stage: encodes each batch; a batch that fails is encoded record by record, and the
 * records that fail alone leave it with their error. */
static void encode_batch(txt2img *pipeline, render_batch *b) {
    if (txt2img_encode(pipeline, &b->req, &b->text) == 0) return;
    int kept = 0;
    for (int j = 0; j < b->n; j++) {
        txt2img_request one = b->req;
        one.batch = 1, one.prompts = &b->prompts[j], one.negatives = &b->negatives[j], one.seeds = &b->seeds[j];
        txt2img_text *t = NULL;
        if (txt2img_encode(pipeline, &one, &t) < 0) {
            b->failed[b->n_failed] = b->index[j];
            b->failed_error[b->n_failed++] = ts_strdup(ts_last_error());
            continue;
        }
        txt2img_text_free(&t);
        b->index[kept] = b->index[j], b->prompts[kept] = b->prompts[j];
        b->negatives[kept] = b->negatives[j], b->seeds[kept++] = b->seeds[j];
    }
    b->n = b->req.batch = kept;
    if (kept && txt2img_encode(pipeline, &b->req, &b->text) < 0) b->error = ts_strdup(ts_last_error());
}

static void *text_stage(void *arg) {
    render_session *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->lock);
        while (!s->head && !s->closing) pthread_cond_wait(&s->changed, &s->lock);
        render_batch *b = s->head;
        if (b) s->head = b->next, s->tail = s->head ? s->tail : NULL;
        pthread_mutex_unlock(&s->lock);
        if (!b) break;
        double t0 = ts_now();
        encode_batch(s->m->pipeline, b);
        s->busy[0] += ts_now() - t0;
        handoff_put(&s->to_unet, b);
    }
    handoff_close(&s->to_unet);
    return NULL;
}

static void *unet_stage(void *arg) {
    render_session *s = arg;
    render_batch *b;
    while ((b = handoff_take(&s->to_unet))) {
        double t0 = ts_now();
        if (b->n && !b->error && txt2img_sample(s->m->pipeline, &b->req, b->text, &b->result) < 0)
            b->error = ts_strdup(ts_last_error());
        txt2img_text_free(&b->text);
        s->busy[1] += ts_now() - t0;
        s->unet_end = ts_now() - s->t0;
        handoff_put(&s->to_decode, b);
    }
    handoff_close(&s->to_decode);
    return NULL;
}

/* Decode stage: VAE, PNG, done() for every record of each sampled batch. */
static void *decode_stage(void *arg) {
    render_session *s = arg;
    render_batch *b;
    while ((b = handoff_take(&s->to_decode))) {
        double t0 = ts_now();
        for (int j = 0; j < b->n_failed; j++) s->done(s->user, b->tag, b->failed[j], NULL, b->failed_error[j]);
        if (b->n && !b->error && txt2img_decode(s->m->pipeline, &b->req, &b->result) < 0)
            b->error = ts_strdup(ts_last_error());
        for (int j = 0; j < b->n; j++) {
            render_output out = {0};
            if (b->error) { s->done(s->user, b->tag, b->index[j], NULL, b->error); continue; }
            txt2img_request one = request_of(&b->reqs[b->index[j]]);
            if (png_of(s->m, &one, b->result.rgb[j], b->result.width, b->result.height, &out) < 0)
                s->done(s->user, b->tag, b->index[j], NULL, ts_last_error());
            else
                s->done(s->user, b->tag, b->index[j], &out, NULL);
        }
        s->busy[2] += ts_now() - t0;
        batch_free(b);
    }
    return NULL;
}

render_session *render_session_new(ts_renderer *renderer, const render_batching *how, render_done_fn done, void *user) {
    render_batching one = {.batch = 1};
    if (!how || how->batch < 1) how = &one;
    if (how->batch > 64) { ts_fail("render: batch %d out of [1, 64]", how->batch); return NULL; }
    render_session *s = ts_calloc(1, sizeof *s);
    s->renderer = renderer, s->how = *how, s->done = done, s->user = user, s->t0 = ts_now();
    if (!renderer->pipelined) return s;
    s->m = renderer->state;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->changed, NULL);
    handoff_init(&s->to_unet);
    handoff_init(&s->to_decode);
    void *(*stage[3])(void *) = {text_stage, unet_stage, decode_stage};
    for (; s->started < 3; s->started++)
        if (pthread_create(&s->threads[s->started], NULL, stage[s->started], s) != 0) break;
    if (s->started < 3) {
        ts_fail("render: cannot start the pipeline's threads");
        render_session_destroy(&s, NULL);
    }
    return s;
}

int render_session_submit(render_session *s, const render_request *reqs, int n, void *tag) {
    s->images += n;
    if (!s->m) {   /* inline, one record at a time */
        for (int i = 0; i < n; i++) {
            render_output out = {0};
            double t0 = ts_now();
            if (s->renderer->render(s->renderer, &reqs[i], &out) < 0) s->done(s->user, tag, i, NULL, ts_last_error());
            else s->done(s->user, tag, i, &out, NULL);
            s->busy[1] += ts_now() - t0;
            s->unet_end = ts_now() - s->t0;
            s->batches++;
        }
        return 0;
    }
    /* batches of up to how.batch batchable records, in request order */
    bool *taken = ts_calloc((size_t)(n ? n : 1), sizeof *taken);
    for (int i = 0; i < n; i++) {
        if (taken[i]) continue;
        render_batch *b = ts_calloc(1, sizeof *b);
        b->reqs = reqs, b->tag = tag;
        b->index = ts_calloc((size_t)s->how.batch, sizeof *b->index);
        for (int j = i; j < n && b->n < s->how.batch; j++)
            if (!taken[j] && batchable(&reqs[i], &reqs[j])) b->index[b->n++] = j, taken[j] = true;
        b->prompts = ts_calloc((size_t)b->n, sizeof *b->prompts);
        b->negatives = ts_calloc((size_t)b->n, sizeof *b->negatives);
        b->seeds = ts_calloc((size_t)b->n, sizeof *b->seeds);
        b->failed = ts_calloc((size_t)b->n, sizeof *b->failed);
        b->failed_error = ts_calloc((size_t)b->n, sizeof *b->failed_error);
        for (int j = 0; j < b->n; j++) {
            const render_request *q = &reqs[b->index[j]];
            b->prompts[j] = q->prompt, b->negatives[j] = q->negative ? q->negative : "", b->seeds[j] = q->seed;
        }
        b->req = request_of(&reqs[i]);
        b->req.batch = b->n;
        b->req.prompts = b->prompts, b->req.negatives = b->negatives, b->req.seeds = b->seeds;
        b->req.unet_batch = s->how.unet_shared;
        pthread_mutex_lock(&s->lock);
        if (s->tail) s->tail->next = b;
        else s->head = b;
        s->tail = b;
        pthread_cond_broadcast(&s->changed);
        pthread_mutex_unlock(&s->lock);
        s->batches++;
    }
    free(taken);
    return 0;
}

void render_session_destroy(render_session **self, render_stats *stats) {
    render_session *s = *self;
    if (!s) return;
    if (s->m) {
        pthread_mutex_lock(&s->lock);
        s->closing = true;
        pthread_cond_broadcast(&s->changed);
        pthread_mutex_unlock(&s->lock);
        if (s->started < 3) {   /* a stage missing: close the handoffs it would have closed */
            handoff_close(&s->to_unet);
            handoff_close(&s->to_decode);
        }
        for (int i = 0; i < s->started; i++) pthread_join(s->threads[i], NULL);
        /* what a missing stage left behind */
        for (render_batch *b = s->head, *next; b; b = next) next = b->next, batch_free(b);
        render_batch *b;
        if ((b = s->to_unet.slot)) batch_free(b);
        if ((b = s->to_decode.slot)) batch_free(b);
        handoff_fini(&s->to_unet);
        handoff_fini(&s->to_decode);
        pthread_mutex_destroy(&s->lock);
        pthread_cond_destroy(&s->changed);
    }
    if (stats)
        *stats = (render_stats){.wall = ts_now() - s->t0, .text_busy = s->busy[0], .unet_busy = s->busy[1],
                                .decode_busy = s->busy[2], .unet_end = s->unet_end, .batches = s->batches, .images = s->images};
    free(s);
    *self = NULL;
}

int backend_render_many(ts_renderer *self, const render_request *reqs, int n, const render_batching *how,
                        render_done_fn done, void *user, render_stats *stats) {
    render_session *s = render_session_new(self, how, done, user);
    if (!s) return -1;
    int rc = render_session_submit(s, reqs, n, NULL);
    render_session_destroy(&s, stats);
    return rc;
}

static void model_renderer_destroy(ts_renderer *self) {
    model_renderer *m = self->state;
    txt2img_destroy(&m->pipeline);
    free(m);
    free(self);
}

static ts_renderer *model_renderer_open(const char *name, const char *model, const char *device, struct comm *group,
                                        int parallel, int tp_pieces) {
    if (!model || !*model) { ts_fail("backend 'model': no diffusion model (set models.diffusion)"); return NULL; }
    txt2img_options o = {.model = model, .device = device, .group = group, .parallel = parallel, .tp_pieces = tp_pieces};
    model_renderer *m = ts_calloc(1, sizeof *m);
    m->pipeline = txt2img_load(&o);
    if (!m->pipeline) { free(m); return NULL; }
    /* the name written into PNG parameters: the folder or file name, as A1111 does */
    snprintf(m->model_name, sizeof m->model_name, "%s", model);
    size_t n = strlen(m->model_name);
    while (n > 1 && m->model_name[n - 1] == '/') m->model_name[--n] = 0;
    char *base = strrchr(m->model_name, '/');
    if (base) memmove(m->model_name, base + 1, strlen(base));
    ts_renderer *r = ts_calloc(1, sizeof *r);
    r->name = name;
    r->state = m;
    r->render = model_render;
    r->pipelined = true;
    r->destroy = model_renderer_destroy;
    return r;
}

static ts_renderer *model_renderer_new(const char *name, const char *model, const char *device) {
    return model_renderer_open(name, model, device, NULL, 0, 0);
}

ts_renderer *backend_renderer_new_in_group(const char *kind, const char *model, const char *device, struct comm *group,
                                           int parallel, int tp_pieces) {
    if (strcmp(kind, "model") != 0) {
        ts_fail("backend '%s': only the model backend renders in a group of ranks", kind);
        return NULL;
    }
    return model_renderer_open("model", model, device, group, parallel, tp_pieces);
}

/* Backends by name: the built-in ones and "model" (real models). */
typedef struct {
    const char *name;
    ts_expander *(*new_expander)(const char *name, const char *model, const char *device);
    ts_renderer *(*new_renderer)(const char *name, const char *model, const char *device);
} backend_entry;

static const backend_entry backend_table[] = {
    {"null", echo_expander_new, null_renderer_new},
    {"echo", echo_expander_new, null_renderer_new},
    {"model", model_expander_new, model_renderer_new},
    {"caption", captioner_expander_new, NULL},   /* recaption from the images (worker/captioner.h) */
};

static const backend_entry *find(const char *kind) {
    for (size_t i = 0; i < sizeof backend_table / sizeof backend_table[0]; i++)
        if (!strcmp(backend_table[i].name, kind)) return &backend_table[i];
    return NULL;
}

ts_expander *backend_expander_new(const char *kind, const char *model, const char *device) {
    const backend_entry *b = find(kind);
    if (!b || !b->new_expander) { ts_fail("no expander backend '%s' in this build", kind); return NULL; }
    return b->new_expander(b->name, model, device);
}

int backend_expander_set_check(ts_expander *self, const char *check, int retries) {
    expand_check_options o = expand_check_default_options();
    if (expand_check_parse(check, &o.kind) != 0) return -1;
    if (retries >= 0) o.retries = retries;
    /* echo and null keep every word of the prompt by construction: only models are checked */
    if (self->expand == model_expand) ((model_expander *)self->state)->check = o;
    return 0;
}

ts_renderer *backend_renderer_new(const char *kind, const char *model, const char *device) {
    const backend_entry *b = find(kind);
    if (!b || !b->new_renderer) { ts_fail("no render backend '%s' in this build", kind); return NULL; }
    return b->new_renderer(b->name, model, device);
}

void backend_expander_destroy(ts_expander **self) {
    if (*self) (*self)->destroy(*self);
    *self = NULL;
}

void backend_renderer_destroy(ts_renderer **self) {
    if (*self) (*self)->destroy(*self);
    *self = NULL;
}
