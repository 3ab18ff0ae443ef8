/*
 * text_conditioning.c — finds a model's text encoders and tokenizer, and turns prompts into
 * the U-Net's context (and SDXL's pooled embeds) the way diffusers' pipelines do.
 */
#include "models/text/text_conditioning.h"

#include "kernels/ops.h"

#include "models/formats/model_files.h"
#include "models/formats/safetensors.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct text_encoder {
    text_family family;
    clip_tokenizer *tokenizer;
    clip_text_model *enc[2];     /* enc[1] only for SDXL */
    int32_t pad[2];
    int base_skip;               /* layers skipped before clip_skip: SD2 single file and SDXL 1 */
    bool final_norm;             /* SD 1.x / 2.x: yes; SDXL: no */
};

text_encoder_options text_encoder_defaults(void) { return (text_encoder_options){0}; }
text_family text_encoder_family(const text_encoder *self) { return self->family; }
const clip_tokenizer *text_encoder_tokenizer(const text_encoder *self) { return self->tokenizer; }
int32_t text_encoder_pad_id(const text_encoder *self, int i) { return self->pad[i ? 1 : 0]; }

const char *text_family_name(text_family f) {
    return f == TEXT_FAMILY_SD1 ? "sd1" : f == TEXT_FAMILY_SD2 ? "sd2" : f == TEXT_FAMILY_SDXL ? "sdxl" : "unknown";
}

int text_encoder_context_dim(const text_encoder *self) {
    int d = clip_text_get_config(self->enc[0])->hidden;
    if (self->enc[1]) d += clip_text_get_config(self->enc[1])->hidden;
    return d;
}

void text_encoder_destroy(text_encoder **self) {
    if (!self || !*self) return;
    clip_tokenizer_destroy(&(*self)->tokenizer);
    clip_text_destroy(&(*self)->enc[0]);
    clip_text_destroy(&(*self)->enc[1]);
    free(*self);
    *self = NULL;
}

/* pad_token of MODEL/component/special_tokens_map.json (a string or {"content": ...}) as an
 * id; fallback when the file or the entry is absent. */
static int32_t folder_pad_id(const char *model, const char *component, const clip_tokenizer *tok, int32_t fallback) {
    char path[4096];
    if (model_component_file(model, component, "special_tokens_map.json", path, sizeof path) != 0) return fallback;
    char *text = read_text_file(path, NULL);
    cJSON *root = text ? cJSON_Parse(text) : NULL;
    free(text);
    const cJSON *pad = cJSON_GetObjectItem(root, "pad_token");
    if (cJSON_IsObject(pad)) pad = cJSON_GetObjectItem(pad, "content");
    int32_t id = cJSON_IsString(pad) ? clip_tokenizer_token_id(tok, pad->valuestring) : -1;
    cJSON_Delete(root);
    return id >= 0 ? id : fallback;
}

static int load_folder(text_encoder *te, const char *model) {
    char weights[4096], config_path[4096];
    clip_text_config config[2];
    const char *components[2] = {"text_encoder", "text_encoder_2"};
    int count = 1;
    if (model_component_file(model, "text_encoder_2", "config.json", config_path, sizeof config_path) == 0) count = 2;
    for (int i = 0; i < count; i++) {
        if (model_component_file(model, components[i], "config.json", config_path, sizeof config_path) != 0)
            return ts_fail("%s: no %s/config.json", model, components[i]);
        if (clip_text_config_read(config_path, &config[i]) != 0) return -1;
        if (model_component_weights(model, components[i], weights, sizeof weights) != 0) return -1;
        te->enc[i] = clip_text_load(weights, "", CLIP_NAMES_HF, &config[i]);
        if (!te->enc[i]) return -1;
    }
    te->family = count == 2 ? TEXT_FAMILY_SDXL : config[0].quick_gelu ? TEXT_FAMILY_SD1 : TEXT_FAMILY_SD2;
    te->base_skip = te->family == TEXT_FAMILY_SDXL ? 1 : 0;
    return 0;
}

static int load_single_file(text_encoder *te, const char *path) {
    safetensors *f = safetensors_open(path);
    if (!f) return -1;
    bool sdxl = safetensors_has(f, "conditioner.embedders.1.model.token_embedding.weight");
    bool sd2 = safetensors_has(f, "cond_stage_model.model.token_embedding.weight");
    bool sd1 = safetensors_has(f, "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight") ||
               safetensors_has(f, "cond_stage_model.transformer.embeddings.token_embedding.weight");
    safetensors_close(&f);
    if (sdxl) {
        te->family = TEXT_FAMILY_SDXL;
        te->enc[0] = clip_text_load(path, "conditioner.embedders.0.transformer.", CLIP_NAMES_HF, NULL);
        te->enc[1] = te->enc[0] ? clip_text_load(path, "conditioner.embedders.1.model.", CLIP_NAMES_OPENCLIP, NULL) : NULL;
        te->base_skip = 1;
        return te->enc[1] ? 0 : -1;
    }
    if (sd2 || sd1) {
        te->family = sd2 ? TEXT_FAMILY_SD2 : TEXT_FAMILY_SD1;
        te->enc[0] = sd2 ? clip_text_load(path, "cond_stage_model.model.", CLIP_NAMES_OPENCLIP, NULL)
                         : clip_text_load(path, "cond_stage_model.transformer.", CLIP_NAMES_HF, NULL);
        te->base_skip = sd2 ? 1 : 0;   /* the file keeps the last OpenCLIP layer; SD 2 skips it */
        return te->enc[0] ? 0 : -1;
    }
    return ts_fail("%s: no text encoder (looked for cond_stage_model.transformer.*, cond_stage_model.model.*, "
                   "conditioner.embedders.1.model.*)", path);
}

text_encoder *text_encoder_load(const char *model, const char *tokenizer_path) {
    text_encoder *te = ts_calloc(1, sizeof *te);
    bool folder = model_is_folder(model);
    if ((folder ? load_folder(te, model) : load_single_file(te, model)) != 0) goto fail;
    te->final_norm = te->family != TEXT_FAMILY_SDXL;
    char vocab[4096];
    if (!tokenizer_path && folder && model_component_file(model, "tokenizer", "vocab.json", vocab, sizeof vocab) == 0)
        tokenizer_path = model;
    te->tokenizer = clip_tokenizer_load(tokenizer_path ? tokenizer_path : CLIP_TOKENIZER_DEFAULT_PATH);
    if (!te->tokenizer) {
        if (!tokenizer_path) ts_fail_wrap("%s carries no tokenizer and the default vocabulary is missing "
                                          "(run tools/install-deps.sh or pass --tokenizer)", model);
        goto fail;
    }
    int32_t pad0 = te->family == TEXT_FAMILY_SD2 ? CLIP_PAD_ZERO_ID : clip_tokenizer_eos(te->tokenizer);
    te->pad[0] = folder ? folder_pad_id(model, "tokenizer", te->tokenizer, pad0) : pad0;
    te->pad[1] = folder ? folder_pad_id(model, "tokenizer_2", te->tokenizer, CLIP_PAD_ZERO_ID) : CLIP_PAD_ZERO_ID;
    log_debug("%s: %s text encoder, context dim %d, pad ids %d/%d", model, text_family_name(te->family),
              text_encoder_context_dim(te), te->pad[0], te->pad[1]);
    return te;
fail:
    text_encoder_destroy(&te);
    return NULL;
}

void text_conditioning_free(text_conditioning *c) {
    if (!c) return;
    free(c->context);
    free(c->pooled);
    memset(c, 0, sizeof *c);
}

int text_encoder_encode_ids(const text_encoder *self, ts_ctx *ctx, const int32_t *ids, const int32_t *ids2, int count, int chunks,
                            const bool *zero_rows, const text_encoder_options *options, text_conditioning *out) {
    memset(out, 0, sizeof *out);
    text_encoder_options o = options ? *options : text_encoder_defaults();
    int n_enc = self->enc[1] ? 2 : 1, T = CLIP_CONTEXT_LENGTH;
    if (o.clip_skip < 0) return ts_fail("clip_skip %d is negative", o.clip_skip);
    if (count <= 0 || chunks <= 0) return ts_fail("text encoder: %d prompts of %d chunks", count, chunks);
    if (self->enc[1] && !ids2) return ts_fail("text encoder: SDXL needs the second tokenizer's ids");
    out->batch = count;
    out->tokens = chunks * T;
    out->dim = text_encoder_context_dim(self);
    out->context = ts_calloc((size_t)count * out->tokens * out->dim, sizeof(float));
    if (self->family == TEXT_FAMILY_SDXL) {
        const clip_text_config *c1 = clip_text_get_config(self->enc[1]);
        out->pooled_dim = c1->projection_dim ? c1->projection_dim : c1->hidden;
        out->pooled = ts_calloc((size_t)count * out->pooled_dim, sizeof(float));
    }
    int widest = 0;
    for (int e = 0; e < n_enc; e++)
        if (clip_text_get_config(self->enc[e])->hidden > widest) widest = clip_text_get_config(self->enc[e])->hidden;
    float *hidden = ts_malloc(sizeof(float) * (size_t)T * widest);
    int rc = 0, b = 0;
    for (; b < count && rc == 0; b++) {
        if (zero_rows && zero_rows[b]) continue;
        int skip = self->base_skip + (!o.skip_rows || o.skip_rows[b] ? o.clip_skip : 0);
        for (int c = 0; c < chunks && rc == 0; c++) {
            int offset = 0;
            for (int e = 0; e < n_enc && rc == 0; e++) {
                const int32_t *chunk = (e ? ids2 : ids) + ((size_t)b * chunks + c) * T;
                int D = clip_text_get_config(self->enc[e])->hidden;
                float *pooled = e == 1 && c == 0 ? out->pooled + (size_t)b * out->pooled_dim : NULL;
                rc = clip_text_forward(self->enc[e], ctx, chunk, T, skip, self->final_norm, hidden, pooled);
                /* the encoders' hidden states side by side: context[b, c*T + t, offset ..] (host
                 * memory: clip_text_forward hands back host rows on every backend) */
                float *dst = out->context + ((size_t)b * out->tokens + (size_t)c * T) * out->dim + offset;
                for (int t = 0; rc == 0 && t < T; t++)
                    memcpy(dst + (size_t)t * out->dim, hidden + (size_t)t * D, (size_t)D * sizeof(float));
                offset += D;
            }
        }
    }
    free(hidden);
    if (rc != 0) {
        ts_fail_wrap("encoding prompt %d", b - 1);
        text_conditioning_free(out);
    }
    return rc;
}

int text_encoder_encode(const text_encoder *self, ts_ctx *ctx, const char *const *prompts, int count,
                        const text_encoder_options *options, text_conditioning *out) {
    memset(out, 0, sizeof *out);
    if (count <= 0) return ts_fail("text encoder: no prompts");
    text_encoder_options o = options ? *options : text_encoder_defaults();
    int32_t **ids = ts_calloc((size_t)count, sizeof *ids);
    int *n = ts_calloc((size_t)count, sizeof *n);
    bool *zero = ts_calloc((size_t)count, sizeof *zero);
    int chunks = 1, rc = 0;
    for (int b = 0; b < count && rc == 0; b++) {
        const char *p = prompts[b] ? prompts[b] : "";
        zero[b] = !prompts[b] && self->family == TEXT_FAMILY_SDXL;
        rc = clip_tokenizer_encode(self->tokenizer, p, strlen(p), &ids[b], &n[b]);
        if (rc != 0) ts_fail_wrap("prompt %d", b);
        else if (clip_chunk_count(n[b], o.truncate) > chunks) chunks = clip_chunk_count(n[b], o.truncate);
    }
    int32_t *all[2] = {NULL, NULL};
    int n_enc = self->enc[1] ? 2 : 1;
    for (int e = 0; e < n_enc && rc == 0; e++) {
        all[e] = ts_malloc(sizeof(int32_t) * (size_t)count * chunks * CLIP_CONTEXT_LENGTH);
        for (int b = 0; b < count; b++) {
            int32_t *c;
            clip_tokens_to_chunks(self->tokenizer, ids[b], n[b], self->pad[e], o.truncate, chunks, &c);
            memcpy(all[e] + (size_t)b * chunks * CLIP_CONTEXT_LENGTH, c, sizeof(int32_t) * (size_t)chunks * CLIP_CONTEXT_LENGTH);
            free(c);
        }
    }
    if (rc == 0) rc = text_encoder_encode_ids(self, ctx, all[0], all[1], count, chunks, zero, &o, out);
    for (int b = 0; b < count; b++) free(ids[b]);
    free(ids);
    free(n);
    free(zero);
    free(all[0]);
    free(all[1]);
    return rc;
}
