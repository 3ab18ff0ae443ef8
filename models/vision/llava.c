/* llava.c — loading a LLaVA captioner (HF folder or llama.cpp GGUF pair), the image
 * features, and the prompt splice (see llava.h). */
#include "models/vision/llava.h"
#include "models/formats/weight_binder.h"
#include "kernels/ops.h"
#include "models/formats/gguf.h"
#include "models/llm/llm_codec.h"
#include "models/formats/model_files.h"
#include "models/formats/safetensors.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <utf8proc.h>
#include <stdlib.h>
#include <string.h>

struct llava {
    llm *lm;
    llm_codec *codec;           /* NULL when the model carries no usable tokenizer */
    int end_ids[8], n_end;
    clip_vision_config vcfg;
    clip_vision_weights vw;
    int run_layers;             /* vision layers to run */
    bool drop_cls;              /* "default" feature selection */
    tensor proj1_w, proj1_b, proj2_w, proj2_b;
    bool proj_gelu_tanh;
    int image_token_id;
    image_preprocess_config pre;
    weight_binder *weights;     /* the vision tower's and projector's: the folder, or the mmproj file */
    gguf *mmproj;               /* GGUF pair: the mmproj file's metadata */
};

/* A tensor the file must have, as stored (shapes are checked against each other after). */
static int require(weight_binder *w, const char *name, tensor *out) {
    return weight_binder_get_stored(w, out, name);
}

/* ---- Hugging Face folder ----------------------------------------------- */


static double json_num(const cJSON *obj, const char *key, double dflt) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsNumber(x) ? x->valuedouble : dflt;
}

static const char *json_str(const cJSON *obj, const char *key, const char *dflt) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(x) ? x->valuestring : dflt;
}

/* preprocessor_config.json when present (CLIPImageProcessor / LlavaImageProcessor). */
static int read_hf_preprocessor(llava *v, const char *folder) {
    v->pre = image_preprocess_clip(v->vcfg.image_size);
    char path[4096];
    snprintf(path, sizeof path, "%s/preprocessor_config.json", folder);
    FILE *probe = fopen(path, "rb");
    if (!probe) return 0;
    fclose(probe);
    size_t size;
    char *text = read_text_file(path, &size);
    if (!text) return -1;
    cJSON *p = json_parse_config(text, path);
    free(text);
    if (!p) return -1;
    const cJSON *sz = cJSON_GetObjectItemCaseSensitive(p, "size");
    if (cJSON_IsObject(sz)) v->pre.shortest_edge = (int)json_num(sz, "shortest_edge", v->pre.shortest_edge);
    else if (cJSON_IsNumber(sz)) v->pre.shortest_edge = sz->valueint;
    const cJSON *crop = cJSON_GetObjectItemCaseSensitive(p, "crop_size");
    if (cJSON_IsObject(crop)) {
        v->pre.crop_h = (int)json_num(crop, "height", v->pre.crop_h);
        v->pre.crop_w = (int)json_num(crop, "width", v->pre.crop_w);
    } else if (cJSON_IsNumber(crop)) v->pre.crop_h = v->pre.crop_w = crop->valueint;
    const cJSON *dc = cJSON_GetObjectItemCaseSensitive(p, "do_center_crop");
    if (cJSON_IsFalse(dc)) v->pre.crop_h = v->pre.crop_w = 0;
    const cJSON *dr = cJSON_GetObjectItemCaseSensitive(p, "do_resize");
    if (cJSON_IsFalse(dr)) v->pre.shortest_edge = 0;
    v->pre.rescale_factor = json_num(p, "rescale_factor", v->pre.rescale_factor);
    if (cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(p, "do_rescale"))) v->pre.rescale_factor = 0;
    const cJSON *mean = cJSON_GetObjectItemCaseSensitive(p, "image_mean"), *std = cJSON_GetObjectItemCaseSensitive(p, "image_std");
    for (int c = 0; c < 3; c++) {
        if (cJSON_GetArraySize(mean) == 3) v->pre.mean[c] = (float)cJSON_GetArrayItem(mean, c)->valuedouble;
        if (cJSON_GetArraySize(std) == 3) v->pre.std[c] = (float)cJSON_GetArrayItem(std, c)->valuedouble;
    }
    if (cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(p, "do_normalize"))) v->pre.std[0] = v->pre.std[1] = v->pre.std[2] = 0;
    v->pre.pad_to_square = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "do_pad"));
    cJSON_Delete(p);
    return 0;
}

static int open_hf(llava *v, const char *folder) {
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", folder);
    size_t size;
    char *text = read_text_file(path, &size);
    if (!text) return -1;
    cJSON *cfg = json_parse_config(text, path);
    free(text);
    if (!cfg) return -1;
    int rc = -1;
    const cJSON *archs = cJSON_GetObjectItemCaseSensitive(cfg, "architectures");
    const cJSON *a0 = cJSON_IsArray(archs) ? cJSON_GetArrayItem(archs, 0) : NULL;
    if (!cJSON_IsString(a0) || strcmp(a0->valuestring, "LlavaForConditionalGeneration") != 0) {
        ts_fail("%s: not a LlavaForConditionalGeneration model (architectures[0] is '%s')", path,
                cJSON_IsString(a0) ? a0->valuestring : "");
        goto done;
    }
    /* CLIPVisionConfig: transformers writes only what differs from its defaults */
    const cJSON *vc = cJSON_GetObjectItemCaseSensitive(cfg, "vision_config");
    const char *vtype = json_str(vc, "model_type", "clip_vision_model");
    if (strcmp(vtype, "clip_vision_model") != 0) { ts_fail("%s: vision tower '%s' is not supported (clip_vision_model)", path, vtype); goto done; }
    v->vcfg.n_heads = (int)json_num(vc, "num_attention_heads", 12);
    v->vcfg.eps = (float)json_num(vc, "layer_norm_eps", 1e-5);
    const char *act = json_str(vc, "hidden_act", "quick_gelu");
    if (strcmp(act, "quick_gelu") == 0) v->vcfg.act = CLIP_ACT_QUICK_GELU;
    else if (strcmp(act, "gelu") == 0) v->vcfg.act = CLIP_ACT_GELU;
    else { ts_fail("%s: vision hidden_act '%s' is not supported (quick_gelu, gelu)", path, act); goto done; }
    const cJSON *fl = cJSON_GetObjectItemCaseSensitive(cfg, "vision_feature_layer");
    if (fl && !cJSON_IsNumber(fl)) { ts_fail("%s: vision_feature_layer must be one layer index (lists are not supported)", path); goto done; }
    int feature_layer = fl ? fl->valueint : -2;
    const char *strategy = json_str(cfg, "vision_feature_select_strategy", "default");
    if (strcmp(strategy, "default") != 0 && strcmp(strategy, "full") != 0) {
        ts_fail("%s: vision_feature_select_strategy '%s' is not supported (default, full)", path, strategy);
        goto done;
    }
    v->drop_cls = strcmp(strategy, "default") == 0;
    const char *pact = json_str(cfg, "projector_hidden_act", "gelu");
    if (strcmp(pact, "gelu") != 0 && strcmp(pact, "gelu_pytorch_tanh") != 0) {
        ts_fail("%s: projector_hidden_act '%s' is not supported (gelu, gelu_pytorch_tanh)", path, pact);
        goto done;
    }
    v->proj_gelu_tanh = strcmp(pact, "gelu_pytorch_tanh") == 0;
    v->image_token_id = (int)json_num(cfg, "image_token_index", json_num(cfg, "image_token_id", 32000));

    if (!(v->weights = weight_binder_open(folder))) goto done;
    /* the tower's names by transformers version: llava-1.5-hf's files, 4.52+ in memory, 5.x files */
    const char *vprefixes[] = {"vision_tower.vision_model.", "model.vision_tower.vision_model.", "vision_tower.", "model.vision_tower."};
    const char *vprefix = NULL;
    for (size_t i = 0; i < sizeof vprefixes / sizeof vprefixes[0] && !vprefix; i++) {
        char probe[256];
        snprintf(probe, sizeof probe, "%sembeddings.class_embedding", vprefixes[i]);
        if (weight_binder_has(v->weights, probe)) vprefix = vprefixes[i];
    }
    if (!vprefix) { ts_fail("%s: no vision tower (no tensor '*vision_tower*.embeddings.class_embedding')", folder); goto done; }
    const char *pprefix = weight_binder_has(v->weights, "model.multi_modal_projector.linear_1.weight")
                        ? "model.multi_modal_projector." : "multi_modal_projector.";
    if (clip_vision_load(&v->vcfg, &v->vw, CLIP_NAMES_HF, vprefix, v->weights, folder)) goto done;
    /* hidden_states[k]: k = 0 the embeddings, k = n_layers the last layer */
    v->run_layers = feature_layer < 0 ? v->vcfg.n_layers + 1 + feature_layer : feature_layer;
    if (v->run_layers < 0 || v->run_layers > v->vcfg.n_layers) {
        ts_fail("%s: vision_feature_layer %d is outside the tower's %d layers", path, feature_layer, v->vcfg.n_layers);
        goto done;
    }
    char name[4][128];
    const char *suffix[4] = {"linear_1.weight", "linear_1.bias", "linear_2.weight", "linear_2.bias"};
    tensor *dst[4] = {&v->proj1_w, &v->proj1_b, &v->proj2_w, &v->proj2_b};
    for (int i = 0; i < 4; i++) {
        snprintf(name[i], sizeof name[i], "%s%s", pprefix, suffix[i]);
        if (require(v->weights, name[i], dst[i])) goto done;
    }
    if (read_hf_preprocessor(v, folder)) goto done;
    if (!(v->lm = llm_open(folder))) goto done;
    rc = 0;
done:
    cJSON_Delete(cfg);
    return rc;
}

/* ---- llama.cpp GGUF pair ----------------------------------------------- */

static int open_gguf_pair(llava *v, const char *model, const char *mmproj) {
    if (!(v->mmproj = gguf_open(mmproj)) || !(v->weights = weight_binder_open(mmproj))) return -1;
    gguf *g = v->mmproj;
    bool has_llava = false;
    gguf_get_bool(g, "clip.has_llava_projector", &has_llava);
    gguf_str ptype = {0};
    bool mlp = gguf_get_string(g, "clip.projector_type", &ptype) == 0 ? gguf_str_eq(ptype, "mlp") : has_llava;
    if (!mlp) return ts_fail("%s: projector type is not \"mlp\" (LLaVA-1.5); only that one is supported", mmproj);
    int64_t heads;
    double eps;
    bool use_gelu = false;
    if (gguf_get_int(g, "clip.vision.attention.head_count", &heads)) return -1;
    if (gguf_get_float_or(g, "clip.vision.attention.layer_norm_epsilon", 1e-5, &eps)) return -1;
    gguf_get_bool(g, "clip.use_gelu", &use_gelu);
    v->vcfg.n_heads = (int)heads;
    v->vcfg.eps = (float)eps;
    v->vcfg.act = use_gelu ? CLIP_ACT_GELU : CLIP_ACT_QUICK_GELU;
    if (clip_vision_load(&v->vcfg, &v->vw, CLIP_NAMES_GGUF, NULL, v->weights, mmproj)) return -1;
    v->run_layers = v->vcfg.n_layers;   /* the file holds only the layers LLaVA uses */
    /* LLaVA-1.5's converter drops post_layernorm (the features come before it); a file that
     * has one was made for another feature selection, which is not written here */
    if (weight_binder_has(v->weights, "v.post_ln.weight"))
        return ts_fail("%s: has a vision post-layernorm (v.post_ln): not a LLaVA-1.5 mmproj, not supported", mmproj);
    v->drop_cls = true;
    v->image_token_id = -1;
    const char *names[4] = {"mm.0.weight", "mm.0.bias", "mm.2.weight", "mm.2.bias"};
    tensor *dst[4] = {&v->proj1_w, &v->proj1_b, &v->proj2_w, &v->proj2_b};
    for (int i = 0; i < 4; i++)
        if (require(v->weights, names[i], dst[i])) return -1;
    v->pre = image_preprocess_clip(v->vcfg.image_size);
    v->pre.pad_to_square = true;   /* llama.cpp's llava pads to square, as LLaVA-1.5 trained */
    gguf_type et;
    uint64_t count;
    if (gguf_get_array(g, "clip.vision.image_mean", &et, &count) == 0 && count == 3)
        for (int c = 0; c < 3; c++) {
            double x;
            if (gguf_array_float(g, "clip.vision.image_mean", (uint64_t)c, &x) == 0) v->pre.mean[c] = (float)x;
            if (gguf_array_float(g, "clip.vision.image_std", (uint64_t)c, &x) == 0) v->pre.std[c] = (float)x;
        }
    if (!(v->lm = llm_open(model))) return -1;
    if (!llm_gguf(v->lm)) return ts_fail("%s: the LLM of a GGUF pair must be a GGUF file", model);
    return 0;
}

/* ---- the object -------------------------------------------------------- */

llava *llava_open(const char *model, const char *mmproj) {
    llava *v = ts_calloc(1, sizeof *v);
    int rc = mmproj ? open_gguf_pair(v, model, mmproj) : model_is_folder(model) ? open_hf(v, model)
           : ts_fail("%s: a captioner is a LlavaForConditionalGeneration folder, or an LLM GGUF with --mmproj", model);
    if (rc == 0) {
        if (!(v->codec = llm_codec_open(v->lm, model, NULL)))
            log_warn("%s: no usable tokenizer (%s); prompts must be given as ids", model, ts_last_error());
        v->n_end = v->codec ? llm_codec_end_ids(v->codec, v->end_ids, 8) : 0;
        if (v->n_end <= 0 && llm_get_config(v->lm)->eos_id >= 0) v->end_ids[0] = llm_get_config(v->lm)->eos_id, v->n_end = 1;
        int D = llm_get_config(v->lm)->dim, in = v->vcfg.hidden;
        if (v->proj1_w.ndim != 2 || v->proj1_w.shape[1] != in || v->proj2_w.ndim != 2 || v->proj2_w.shape[1] != v->proj1_w.shape[0] ||
            v->proj2_w.shape[0] != D)
            rc = ts_fail("%s: projector shapes do not map the vision width %d to the LLM width %d", mmproj ? mmproj : model, in, D);
    }
    if (rc) {
        ts_fail_wrap("captioner");
        llava_destroy(&v);
        return NULL;
    }
    log_info("captioner: ViT %dx%d/%d, %d of %d layers, width %d, %d image tokens; LLM width %d",
             v->vcfg.image_size, v->vcfg.image_size, v->vcfg.patch_size, v->run_layers, v->vcfg.n_layers, v->vcfg.hidden,
             llava_image_tokens(v), llm_get_config(v->lm)->dim);
    return v;
}

void llava_destroy(llava **self) {
    llava *v = *self;
    if (!v) return;
    llm_destroy(&v->lm);
    llm_codec_destroy(&v->codec);
    clip_vision_weights_free(&v->vw);
    weight_binder_destroy(&v->weights);
    gguf_close(&v->mmproj);
    free(v);
    *self = NULL;
}

const llm *llava_llm(const llava *self) { return self->lm; }
llm_codec *llava_codec(const llava *self) { return self->codec; }
const clip_vision_config *llava_vision_config(const llava *self) { return &self->vcfg; }
const image_preprocess_config *llava_preprocess_config(const llava *self) { return &self->pre; }
int llava_image_token_id(const llava *self) { return self->image_token_id; }

int llava_image_tokens(const llava *self) {
    return clip_vision_tokens(&self->vcfg) + (self->drop_cls ? 0 : 1);
}

int llava_encode_images(const llava *self, ts_ctx *ctx, const float *pixels, int n, float *features) {
    const clip_vision_config *c = &self->vcfg;
    const int T = clip_vision_tokens(c) + 1, keep = llava_image_tokens(self), D = c->hidden;
    const int mid = (int)self->proj1_w.shape[0], P = c->image_size;
    const size_t out_bytes = (size_t)n * keep * (size_t)self->proj2_w.shape[0] * sizeof(float);
    /* pixels in and features out are the caller's host memory; the rest the context's */
    const float *x = ts_stage_in(ctx, pixels, (size_t)n * 3 * P * P * sizeof(float));
    float *out = x ? ts_stage_out(ctx, features, out_bytes) : NULL;
    float *buf = out ? ts_ctx_alloc(ctx, ((size_t)n * T * D + (size_t)n * keep * (D + mid)) * sizeof(float)) : NULL;
    if (!buf) {
        ts_stage_release(ctx, pixels, x);
        if (out) ts_stage_release(ctx, features, out);
        return ts_fail_wrap("llava_encode_images on %s", ts_ctx_backend_name(ctx));
    }
    float *hidden = buf, *sel = hidden + (size_t)n * T * D, *h = sel + (size_t)n * keep * D;
    int rc = clip_vision_forward(ctx, c, &self->vw, x, n, self->run_layers, hidden);
    if (rc == 0) {
        /* the last `keep` tokens of each image (all, or all but the class token) */
        copy_2d(ctx, sel, (int64_t)keep * D, hidden + (size_t)(T - keep) * D, (int64_t)T * D, n, (int64_t)keep * D);
        int64_t rows = (int64_t)n * keep;
        rc = linear(ctx, h, sel, rows, &self->proj1_w, &self->proj1_b);
        if (rc == 0) {
            if (self->proj_gelu_tanh) gelu_tanh(ctx, h, h, rows * mid);
            else gelu_erf(ctx, h, h, rows * mid);
            rc = linear(ctx, out, h, rows, &self->proj2_w, &self->proj2_b);
        }
    }
    ts_ctx_free(ctx, buf);
    ts_stage_release(ctx, pixels, x);
    if (rc == 0) rc = ts_stage_finish(ctx, features, out, out_bytes) | ts_ctx_synchronize(ctx);
    else ts_stage_release(ctx, features, out);
    return rc ? ts_fail_wrap("llava_encode_images on %s", ts_ctx_backend_name(ctx)) : 0;
}

int llava_tokenize_prompt(const llava *self, const char *prompt, int **ids, int *n_ids) {
    *ids = NULL, *n_ids = 0;
    if (!self->codec) return ts_fail("captioner: no tokenizer to read the prompt with");
    const char *at = strstr(prompt, "<image>");
    if (!at || strstr(at + 7, "<image>")) return ts_fail("captioner: the prompt must hold \"<image>\" exactly once: \"%s\"", prompt);
    int *a = NULL, *b = NULL, na = 0, nb = 0;
    char *head = ts_malloc((size_t)(at - prompt) + 1);
    memcpy(head, prompt, (size_t)(at - prompt));
    head[at - prompt] = 0;
    /* the text before the image gets the BOS the model asks for; special tokens are parsed
     * in both parts, as transformers' processor tokenizes around its image tokens */
    int rc = llm_codec_encode(self->codec, head, true, true, &a, &na);
    free(head);
    if (rc == 0) rc = llm_codec_encode(self->codec, at + 7, false, true, &b, &nb);
    if (rc) {
        free(a);
        return -1;
    }
    int k = llava_image_tokens(self);
    int *out = ts_malloc((size_t)(na + k + nb) * sizeof(int));
    for (int i = 0; i < na; i++) out[i] = a[i];
    for (int i = 0; i < k; i++) out[na + i] = LLM_EMBEDDING_ROW;
    for (int i = 0; i < nb; i++) out[na + k + i] = b[i];
    free(a), free(b);
    *ids = out, *n_ids = na + k + nb;
    return 0;
}

int llava_generate(const llava *self, llm_state *s, int seq, const int *ids, int n_ids, const float *features,
                   int max_new, int **out, int *n_out) {
    *out = NULL, *n_out = 0;
    const llm_config *c = llm_get_config(self->lm);
    const int D = c->dim, B = llm_state_max_batch(s), ctx = llm_state_max_ctx(s);
    if (n_ids + max_new > ctx) return ts_fail("captioner: prompt of %d tokens + %d new exceeds the context (%d)", n_ids, max_new, ctx);
    /* the image token id of an HF prompt stands for the next feature row, as LLM_EMBEDDING_ROW does */
    int *tok = ts_malloc((size_t)B * sizeof(int)), *seqs = ts_malloc((size_t)B * sizeof(int)), *pos = ts_malloc((size_t)B * sizeof(int));
    float *emb = ts_aligned_alloc((size_t)B * D * sizeof(float));
    float *logits = ts_malloc((size_t)c->vocab_size * sizeof(float));
    int *gen = ts_malloc((size_t)(max_new > 0 ? max_new : 1) * sizeof(int));
    int rc = 0, used = 0, n_gen = 0;
    for (int start = 0; start < n_ids && rc == 0; start += B) {
        int n = n_ids - start < B ? n_ids - start : B;
        for (int i = 0; i < n; i++) {
            int id = ids[start + i];
            bool image = id == LLM_EMBEDDING_ROW || (self->image_token_id >= 0 && id == self->image_token_id);
            tok[i] = image ? LLM_EMBEDDING_ROW : id;
            seqs[i] = seq, pos[i] = start + i;
            if (image) {
                if (!features) { rc = ts_fail("captioner: the prompt has image rows but no features were given"); break; }
                memcpy(emb + (size_t)i * D, features + (size_t)used++ * D, (size_t)D * sizeof(float));   /* host rows */
            }
        }
        int last = n - 1;
        if (rc == 0) rc = llm_forward_embeddings(self->lm, s, n, tok, emb, seqs, pos, start + n == n_ids ? 1 : 0, &last, logits);
    }
    for (int step = 0; rc == 0 && step < max_new; step++) {
        int best = 0;
        for (int j = 1; j < c->vocab_size; j++)
            if (logits[j] > logits[best]) best = j;
        bool end = false;
        for (int e = 0; e < self->n_end; e++) end |= best == self->end_ids[e];
        if (end) break;
        gen[n_gen++] = best;
        if (step + 1 == max_new) break;
        int p = n_ids + step;
        rc = llm_forward(self->lm, s, 1, &best, &seq, &p, 1, NULL, logits);
    }
    free(tok), free(seqs), free(pos), free(emb), free(logits);
    if (rc) { free(gen); return -1; }
    *out = gen, *n_out = n_gen;
    return 0;
}

char *llava_decode_text(const llava *self, const int *ids, int n) {
    if (!self->codec) { ts_fail("captioner: no tokenizer to write the caption with"); return NULL; }
    llm_detokenizer d = llm_codec_detokenizer(self->codec);
    size_t len = 0, cap = 256;
    char *out = ts_malloc(cap);
    out[0] = 0;
    for (int i = 0; i < n; i++) {
        size_t k = 0;
        const char *piece = d.piece(d.ctx, i ? ids[i - 1] : -1, ids[i], &k);
        if (!piece) k = 0;
        if (len + k + 1 > cap) out = ts_realloc(out, cap = 2 * (len + k + 1));
        for (size_t j = 0; j < k; j++)
            if (piece[j]) out[len++] = piece[j];   /* a <0x00> byte token has no place in a caption */
        out[len] = 0;
    }
    /* byte tokens can leave a character half-written: U+FFFD for each bad byte, as
     * transformers' decode (errors="replace") writes it */
    char *fixed = ts_malloc(3 * len + 1), *w = fixed;
    for (size_t i = 0; i < len;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)out + i, (utf8proc_ssize_t)(len - i), &cp);
        if (k <= 0) { memcpy(w, "\xEF\xBF\xBD", 3); w += 3; i++; }
        else { memcpy(w, out + i, (size_t)k); w += k; i += (size_t)k; }
    }
    *w = 0;
    free(out);
    out = fixed;
    /* one line: newlines folded, the leading and trailing spaces trimmed */
    for (char *p = out; *p; p++)
        if (*p == '\n' || *p == '\r' || *p == '\t') *p = ' ';
    char *start = out;
    while (*start == ' ') start++;
    memmove(out, start, strlen(start) + 1);
    for (size_t k = strlen(out); k > 0 && out[k - 1] == ' '; k--) out[k - 1] = 0;
    return out;
}

/* One sequence of llava_generate_batch. */
typedef struct {
    int image;          /* the image it captions, -1: free */
    int fed;            /* prompt rows in the cache */
    int used;           /* feature rows spliced so far */
    int n_gen, next;    /* tokens generated; the one to feed next */
    bool decoding;
} gen_slot;

int llava_generate_batch(const llava *self, llm_state *s, int n, const int *const *ids, const int *n_ids,
                         const float *const *features, int max_new, int **out, int *n_out) {
    const llm_config *c = llm_get_config(self->lm);
    const int D = c->dim, V = c->vocab_size, B = llm_state_max_batch(s), S = llm_state_max_seqs(s), ctx = llm_state_max_ctx(s);
    for (int i = 0; i < n; i++) {
        out[i] = NULL, n_out[i] = 0;
        if (n_ids[i] < 1 || n_ids[i] + max_new > ctx)
            return ts_fail("captioner: prompt %d of %d tokens + %d new does not fit the context (%d)", i, n_ids[i], max_new, ctx);
    }
    if (B < S) return ts_fail("captioner: a batch of %d rows cannot hold one decode row per sequence (%d)", B, S);
    gen_slot *slot = ts_malloc((size_t)S * sizeof *slot);
    for (int k = 0; k < S; k++) slot[k].image = -1;
    int *tok = ts_malloc((size_t)B * sizeof(int)), *seqs = ts_malloc((size_t)B * sizeof(int));
    int *pos = ts_malloc((size_t)B * sizeof(int)), *rows = ts_malloc((size_t)B * sizeof(int)), *row_slot = ts_malloc((size_t)B * sizeof(int));
    float *emb = ts_aligned_alloc((size_t)B * D * sizeof(float));
    float *logits = ts_malloc((size_t)S * V * sizeof(float));
    for (int i = 0; i < n; i++) out[i] = ts_malloc((size_t)(max_new > 0 ? max_new : 1) * sizeof(int));
    int next_image = 0, done = 0, rc = 0;
    while (done < n && rc == 0) {
        for (int k = 0; k < S && next_image < n; k++)   /* a free slot takes the next image */
            if (slot[k].image < 0) slot[k] = (gen_slot){.image = next_image++};
        /* the batch: one decode row per decoding sequence, then prompt rows while they fit */
        int m = 0, n_rows = 0;
        for (int k = 0; k < S; k++) {
            gen_slot *g = &slot[k];
            if (g->image < 0 || !g->decoding) continue;
            tok[m] = g->next, seqs[m] = k, pos[m] = n_ids[g->image] + g->n_gen - 1;
            rows[n_rows] = m, row_slot[n_rows++] = k;
            m++;
        }
        for (int k = 0; k < S && m < B; k++) {
            gen_slot *g = &slot[k];
            if (g->image < 0 || g->decoding) continue;
            const int *p = ids[g->image];
            while (g->fed < n_ids[g->image] && m < B) {
                int id = p[g->fed];
                bool image = id == LLM_EMBEDDING_ROW || (self->image_token_id >= 0 && id == self->image_token_id);
                tok[m] = image ? LLM_EMBEDDING_ROW : id, seqs[m] = k, pos[m] = g->fed;
                if (image) {
                    if (!features || !features[g->image]) { rc = ts_fail("captioner: prompt %d has image rows but no features", g->image); break; }
                    memcpy(emb + (size_t)m * D, features[g->image] + (size_t)g->used++ * D, (size_t)D * sizeof(float));
                }
                g->fed++, m++;
            }
            if (rc) break;
            if (g->fed == n_ids[g->image]) rows[n_rows] = m - 1, row_slot[n_rows++] = k;   /* its first new token */
        }
        if (rc) break;
        rc = llm_forward_embeddings(self->lm, s, m, tok, emb, seqs, pos, n_rows, rows, logits);
        for (int r = 0; rc == 0 && r < n_rows; r++) {
            gen_slot *g = &slot[row_slot[r]];
            const float *l = logits + (size_t)r * V;
            int best = 0;
            for (int j = 1; j < V; j++)
                if (l[j] > l[best]) best = j;
            bool end = max_new == 0;
            for (int e = 0; e < self->n_end; e++) end |= best == self->end_ids[e];
            if (!end) out[g->image][g->n_gen++] = best;
            if (end || g->n_gen == max_new) {
                n_out[g->image] = g->n_gen;
                g->image = -1;
                done++;
            } else {
                g->decoding = true;
                g->next = best;
            }
        }
    }
    free(slot), free(tok), free(seqs), free(pos), free(rows), free(row_slot), free(emb), free(logits);
    if (rc) {
        for (int i = 0; i < n; i++) { free(out[i]); out[i] = NULL; n_out[i] = 0; }
        return -1;
    }
    return 0;
}
