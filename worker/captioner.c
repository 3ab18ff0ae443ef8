/* captioner.c — the "caption" expander backend (see captioner.h). */
#include "worker/captioner.h"
#include "kernels/base.h"
#include "models/vision/caption_prompt.h"
#include "models/vision/llava.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_IMAGE_BYTES (64u << 20)
#define CAPTION_SEQUENCES 4       /* captions decoded together (continuous batching) */

typedef struct {
    llava *model;
    ts_ctx *compute;              /* where the vision tower and the LLM run */
    llm_state *state;
    int ctx;
} captioner;

/* What a record's params say about its image. */
typedef struct {
    char path[4096];
    int64_t offset, size;       /* offset -1: the whole file */
    caption_style style;
    bool alt_text;
} image_ref;

static int parse_ref(const char *params, image_ref *r) {
    memset(r, 0, sizeof *r);
    r->offset = -1;
    r->alt_text = true;
    cJSON *p = params && params[0] ? cJSON_Parse(params) : NULL;
    const cJSON *img = cJSON_GetObjectItemCaseSensitive(p, "image");
    if (!cJSON_IsString(img)) { cJSON_Delete(p); return ts_fail("record params name no image (dataset.format: images)"); }
    snprintf(r->path, sizeof r->path, "%s", img->valuestring);
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(p, "offset"), *size = cJSON_GetObjectItemCaseSensitive(p, "size");
    if (cJSON_IsNumber(off) && cJSON_IsNumber(size)) r->offset = (int64_t)off->valuedouble, r->size = (int64_t)size->valuedouble;
    const cJSON *style = cJSON_GetObjectItemCaseSensitive(p, "style");
    int rc = cJSON_IsString(style) ? caption_style_from_name(style->valuestring, &r->style) : 0;
    const cJSON *alt = cJSON_GetObjectItemCaseSensitive(p, "alt_text");
    if (cJSON_IsBool(alt)) r->alt_text = cJSON_IsTrue(alt);
    cJSON_Delete(p);
    return rc;
}

/* The image's bytes: a tar member at its offset, or a whole file. */
static uint8_t *read_image(const image_ref *r, size_t *n) {
    int fd = open(r->path, O_RDONLY);
    if (fd < 0) { ts_fail("%s: cannot open: %s", r->path, strerror(errno)); return NULL; }
    int64_t size = r->size, at = r->offset < 0 ? 0 : r->offset;
    if (r->offset < 0) {
        off_t end = lseek(fd, 0, SEEK_END);
        size = end < 0 ? -1 : (int64_t)end;
    }
    if (size < 0 || size > (int64_t)MAX_IMAGE_BYTES) {
        close(fd);
        ts_fail("%s: unreadable or larger than 64 MiB", r->path);
        return NULL;
    }
    uint8_t *buf = ts_malloc((size_t)size + 1);
    int64_t got = 0;
    while (got < size) {
        ssize_t k = pread(fd, buf + got, (size_t)(size - got), (off_t)(at + got));
        if (k <= 0) {
            ts_fail("%s: read error at byte %lld: %s", r->path, (long long)(at + got), k < 0 ? strerror(errno) : "end of file");
            close(fd);
            free(buf);
            return NULL;
        }
        got += k;
    }
    close(fd);
    *n = (size_t)size;
    return buf;
}

static int caption_records(ts_expander *self, const char *const *prompts, const char *const *params, const uint64_t *seeds,
                           int n, char **out, char **errors, char **fallbacks) {
    (void)seeds;
    captioner *c = self->state;
    const image_preprocess_config *pre = llava_preprocess_config(c->model);
    const int S = llava_vision_config(c->model)->image_size, K = llava_image_tokens(c->model);
    const int D = llm_get_config(llava_llm(c->model))->dim;
    float *pixels = ts_malloc((size_t)n * 3 * S * S * sizeof(float));
    int *slot = ts_malloc((size_t)n * sizeof(int));   /* the record's row in the batch, -1: none */
    image_ref *refs = ts_calloc((size_t)n, sizeof *refs);
    int batch = 0;
    /* read, decode and preprocess; a bad image falls back to its alt-text with the reason */
    for (int i = 0; i < n; i++) {
        out[i] = errors[i] = fallbacks[i] = NULL;
        slot[i] = -1;
        if (parse_ref(params[i], &refs[i])) { errors[i] = ts_strdup(ts_last_error()); continue; }
        size_t size;
        uint8_t *bytes = read_image(&refs[i], &size);
        image_rgb8 img = {0};
        float *px = NULL;
        int H, W;
        char label[4200];
        snprintf(label, sizeof label, "%s%s", refs[i].path, refs[i].offset >= 0 ? " (tar member)" : "");
        if (!bytes || image_decode(bytes, size, label, &img) || image_preprocess(&img, pre, &px, &H, &W)) {
            char why[1024];
            snprintf(why, sizeof why, "image: %s", ts_last_error());
            out[i] = ts_strdup(prompts[i]);
            fallbacks[i] = ts_strdup(why);
        } else if (H != S || W != S) {
            out[i] = ts_strdup(prompts[i]);
            fallbacks[i] = ts_strdup("image: the preprocessing does not give the tower's input size");
        } else {
            memcpy(pixels + (size_t)batch * 3 * S * S, px, (size_t)3 * S * S * sizeof(float));
            slot[i] = batch++;
        }
        free(px);
        image_rgb8_clear(&img);
        free(bytes);
    }
    /* one vision-tower call for the task's images, then their captions decoded together */
    float *features = ts_malloc((size_t)(batch ? batch : 1) * K * D * sizeof(float));
    int rc = batch ? llava_encode_images(c->model, c->compute, pixels, batch, features) : 0;
    int **ids = ts_calloc((size_t)n, sizeof *ids), *n_ids = ts_calloc((size_t)n, sizeof *n_ids), *which = ts_calloc((size_t)n, sizeof *which);
    const float **feats = ts_calloc((size_t)n, sizeof *feats);
    int m = 0, max_new = 64;
    for (int i = 0; rc == 0 && i < n; i++) {
        if (slot[i] < 0) continue;
        char *prompt = caption_prompt(NULL, refs[i].style, refs[i].alt_text ? prompts[i] : NULL);
        if (!prompt || llava_tokenize_prompt(c->model, prompt, &ids[m], &n_ids[m])) rc = -1;
        free(prompt);
        if (refs[i].style == CAPTION_DSC) max_new = 320;
        feats[m] = features + (size_t)slot[i] * K * D;
        which[m++] = i;
    }
    int **gen = ts_calloc((size_t)(m ? m : 1), sizeof *gen), *n_gen = ts_calloc((size_t)(m ? m : 1), sizeof *n_gen);
    for (int j = 0; rc == 0 && j < m; j++)
        if (n_ids[j] + max_new > c->ctx) rc = ts_fail("captioner: a prompt of %d tokens + %d new does not fit the context (%d)", n_ids[j], max_new, c->ctx);
    if (rc == 0 && m > 0) rc = llava_generate_batch(c->model, c->state, m, (const int *const *)ids, n_ids, feats, max_new, gen, n_gen);
    for (int j = 0; rc == 0 && j < m; j++) {
        int i = which[j];
        char *text = llava_decode_text(c->model, gen[j], n_gen[j]);
        if (text && text[0]) out[i] = text;
        else {
            free(text);
            out[i] = ts_strdup(prompts[i]);
            fallbacks[i] = ts_strdup("captioner: empty caption");
        }
    }
    for (int j = 0; j < m; j++) free(ids[j]), free(gen[j]);
    free(ids), free(n_ids), free(which), free(feats), free(gen), free(n_gen);
    free(features), free(pixels), free(slot), free(refs);
    if (rc) {
        for (int i = 0; i < n; i++) { free(out[i]); free(errors[i]); free(fallbacks[i]); out[i] = errors[i] = fallbacks[i] = NULL; }
        return -1;
    }
    return 0;
}

/* Without params there is no image: the plain expand() is refused. */
static int caption_without_params(ts_expander *self, const char *const *prompts, const uint64_t *seeds, int n,
                                  char **out, char **errors, char **fallbacks) {
    (void)self, (void)prompts, (void)seeds, (void)n, (void)out, (void)errors, (void)fallbacks;
    return ts_fail("the caption backend needs the records' params (a recaption job with dataset.format: images)");
}

static void captioner_destroy(ts_expander *self) {
    captioner *c = self->state;
    llm_state_destroy(&c->state);
    llava_destroy(&c->model);
    ts_ctx_destroy(&c->compute);
    free(c);
    free(self);
}

ts_expander *captioner_expander_new(const char *name, const char *model, const char *device) {
    if (!model || !*model) { ts_fail("backend 'caption': no captioner (set models.expander)"); return NULL; }
    /* "LLM.gguf,MMPROJ.gguf" or a folder */
    char llm_path[4096], *mmproj = NULL;
    snprintf(llm_path, sizeof llm_path, "%s", model);
    char *comma = strchr(llm_path, ',');
    if (comma) *comma = 0, mmproj = comma + 1;
    captioner *c = ts_calloc(1, sizeof *c);
    c->model = llava_open(llm_path, mmproj);
    if (c->model && !llava_codec(c->model)) ts_fail("backend 'caption': %s has no tokenizer", model);
    /* the KV cache of CAPTION_SEQUENCES sequences of image + prompt + caption: 1024
     * positions hold LLaVA-1.5's 576 image rows, the prompt and 320 new tokens */
    int max_ctx = c->model ? llm_get_config(llava_llm(c->model))->max_seq_len : 0;
    c->ctx = max_ctx > 0 && max_ctx < 1024 ? max_ctx : 1024;
    if (c->model) c->compute = ts_ctx_new(device, 0);
    if (!c->model || !llava_codec(c->model) || !c->compute ||
        !(c->state = llm_state_new(llava_llm(c->model), c->compute, CAPTION_SEQUENCES, c->ctx, 512))) {
        llava_destroy(&c->model);
        ts_ctx_destroy(&c->compute);
        free(c);
        return NULL;
    }
    ts_expander *e = ts_calloc(1, sizeof *e);
    e->name = name;
    e->state = c;
    e->expand = caption_without_params;
    e->expand_records = caption_records;
    e->destroy = captioner_destroy;
    return e;
}
