/* backend.c — the built-in backends (echo / null) and the table where real models plug in. */
#include "worker/backend.h"
#include "kernels/base.h"
#include "models/formats/image_png.h"
#include "models/llm/expand_check.h"
#include "models/llm/llm_expander.h"
#include "models/diffusion/txt2img.h"
#include "worker/captioner.h"
#include "worker/llm_http.h"

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

static ts_expander *echo_expander_new(const char *name, const char *model) {
    ts_expander *e = ts_calloc(1, sizeof *e);
    e->name = name;
    e->state = (void *)(intptr_t)sleep_ms_of(model);
    e->expand = echo_expand;
    e->destroy = plain_expander_destroy;
    return e;
}

static ts_renderer *null_renderer_new(const char *name, const char *model) {
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

static ts_expander *model_expander_new(const char *name, const char *model) {
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

static int model_render(ts_renderer *self, const render_request *req, render_output *out) {
    model_renderer *m = self->state;
    txt2img_request r = txt2img_request_defaults();
    r.prompt = req->prompt;
    r.negative = req->negative;
    r.seed = req->seed;
    if (req->width > 0) r.width = req->width;
    if (req->height > 0) r.height = req->height;
    if (req->steps > 0) r.steps = req->steps;
    if (req->cfg > 0) r.cfg_scale = req->cfg;
    if (req->sampler && req->sampler[0]) r.sampler = req->sampler;
    txt2img_result res;
    if (txt2img_generate(m->pipeline, &r, &res) < 0) return -1;
    gen_parameters gp = {.prompt = (char *)r.prompt, .negative = (char *)(r.negative ? r.negative : ""),
                         .steps = r.steps, .cfg_scale = r.cfg_scale, .seed = (int64_t)r.seed,
                         .width = res.width, .height = res.height};
    snprintf(gp.sampler, sizeof gp.sampler, "%s", txt2img_a1111_sampler(r.sampler));
    snprintf(gp.model, sizeof gp.model, "%s", m->model_name);
    char *params = gen_parameters_format(&gp);
    void *png = NULL;
    size_t size = 0;
    int rc = image_png_encode(res.rgb[0], res.width, res.height, params, &png, &size);
    free(params);
    txt2img_result_free(&res);
    if (rc != 0) return -1;
    out->bytes = png;
    out->size = size;
    strcpy(out->ext, "png");
    return 0;
}

static void model_renderer_destroy(ts_renderer *self) {
    model_renderer *m = self->state;
    txt2img_destroy(&m->pipeline);
    free(m);
    free(self);
}

static ts_renderer *model_renderer_new(const char *name, const char *model) {
    if (!model || !*model) { ts_fail("backend 'model': no diffusion model (set models.diffusion)"); return NULL; }
    txt2img_options o = {.model = model};
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
    r->destroy = model_renderer_destroy;
    return r;
}

/* Backends by name: the built-in ones and "model" (real models). */
typedef struct {
    const char *name;
    ts_expander *(*new_expander)(const char *name, const char *model);
    ts_renderer *(*new_renderer)(const char *name, const char *model);
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

ts_expander *backend_expander_new(const char *kind, const char *model) {
    const backend_entry *b = find(kind);
    if (!b || !b->new_expander) { ts_fail("no expander backend '%s' in this build", kind); return NULL; }
    return b->new_expander(b->name, model);
}

int backend_expander_set_check(ts_expander *self, const char *check, int retries) {
    expand_check_options o = expand_check_default_options();
    if (expand_check_parse(check, &o.kind) != 0) return -1;
    if (retries >= 0) o.retries = retries;
    /* echo and null keep every word of the prompt by construction: only models are checked */
    if (self->expand == model_expand) ((model_expander *)self->state)->check = o;
    return 0;
}

ts_renderer *backend_renderer_new(const char *kind, const char *model) {
    const backend_entry *b = find(kind);
    if (!b || !b->new_renderer) { ts_fail("no render backend '%s' in this build", kind); return NULL; }
    return b->new_renderer(b->name, model);
}

void backend_expander_destroy(ts_expander **self) {
    if (*self) (*self)->destroy(*self);
    *self = NULL;
}

void backend_renderer_destroy(ts_renderer **self) {
    if (*self) (*self)->destroy(*self);
    *self = NULL;
}
