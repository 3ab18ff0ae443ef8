/* llm_tokenizer.c — SentencePiece-style and byte-level BPE tokenizers (see the header). */
#include "models/llm/llm_tokenizer.h"
#include "models/text/bpe.h"
#include "models/formats/model_files.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <cjson/cJSON.h>
#include <pcre2.h>
#include <utf8proc.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The pre-tokenizer regexes of the byte-level families, as their tokenizer.json files
 * and llama.cpp give them (GGUF names them by tokenizer.ggml.pre). */
#define GPT2_REGEX "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"
#define LLAMA3_REGEX "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
/* Names as llama.cpp's converter writes them (llama-vocab.cpp); aliases share a regex. */
static const struct { const char *pre; const char *regex; } pre_tokenizers[] = {
    {"gpt2", GPT2_REGEX},
    {"gpt-2", GPT2_REGEX},
    {"default", GPT2_REGEX},
    {"llama3", LLAMA3_REGEX},
    {"llama-v3", LLAMA3_REGEX},
    {"llama-bpe", LLAMA3_REGEX},
    {"qwen2", "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
    {"smollm", "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
};

enum { TOKEN_NORMAL = 1, TOKEN_UNKNOWN = 2, TOKEN_CONTROL = 3, TOKEN_USER = 4, TOKEN_UNUSED = 5, TOKEN_BYTE = 6 };

struct llm_tokenizer {
    llm_tokenizer_kind kind;
    bpe *vocab;
    uint8_t *type;             /* per id: TOKEN_* */
    int n_vocab;
    int32_t bos, eos, unk;
    bool add_bos, add_eos;     /* what the model file says encoding adds (llama.cpp's add_special) */
    bool add_space_prefix;     /* SentencePiece's dummy prefix */
    bool ignore_merges;        /* Llama 3: a whole pre-token found in the vocabulary wins */
    int32_t byte_token[256];   /* SPM: <0xXX>; byte-level: the alphabet character's id */
    pcre2_code *split;         /* byte-level pre-tokenizer */
    int32_t *specials;         /* control/user tokens to match in text, longest first */
    int n_specials;
};

/* ---- construction ------------------------------------------------------ */

static llm_tokenizer *tokenizer_new(llm_tokenizer_kind kind, int n_vocab) {
    llm_tokenizer *t = ts_calloc(1, sizeof *t);
    t->kind = kind;
    t->vocab = bpe_new(n_vocab);
    t->type = ts_calloc((size_t)n_vocab + 1, 1);
    t->n_vocab = n_vocab;
    t->bos = t->eos = t->unk = -1;
    return t;
}

void llm_tokenizer_destroy(llm_tokenizer **self) {
    if (!self || !*self) return;
    llm_tokenizer *t = *self;
    bpe_destroy(&t->vocab);
    free(t->type);
    if (t->split) pcre2_code_free(t->split);
    free(t->specials);
    free(t);
    *self = NULL;
}

static int compile_split(llm_tokenizer *t, const char *regex) {
    int err;
    PCRE2_SIZE at;
    t->split = pcre2_compile((PCRE2_SPTR)regex, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &err, &at, NULL);
    if (!t->split) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        return ts_fail("pre-tokenizer regex: %s at offset %zu", (char *)msg, (size_t)at);
    }
    pcre2_jit_compile(t->split, PCRE2_JIT_COMPLETE);   /* a speed-up only; fine if absent */
    return 0;
}

/* qsort_r's context: tokenizers are loaded by worker threads at the same time */
static int compare_special_length(const void *a, const void *b, void *context) {
    const llm_tokenizer *t = context;
    size_t la = 0, lb = 0;
    bpe_token_text(t->vocab, *(const int32_t *)a, &la);
    bpe_token_text(t->vocab, *(const int32_t *)b, &lb);
    return la < lb ? 1 : la > lb ? -1 : 0;
}

/* Byte tables and the special-token list, once the vocabulary is in. */
static int finish_setup(llm_tokenizer *t) {
    for (int b = 0; b < 256; b++) {
        if (t->kind == LLM_TOKENIZER_SPM) {
            char name[8];
            snprintf(name, sizeof name, "<0x%02X>", b);
            t->byte_token[b] = bpe_token_id(t->vocab, name, 6);
        } else {
            uint8_t s[4];
            utf8proc_ssize_t n = utf8proc_encode_char((utf8proc_int32_t)bpe_byte_to_codepoint((uint8_t)b), s);
            t->byte_token[b] = bpe_token_id(t->vocab, (const char *)s, (size_t)n);
            if (t->byte_token[b] < 0) return ts_fail("byte-level vocabulary lacks the character for byte 0x%02x", b);
        }
    }
    t->specials = ts_malloc(sizeof(int32_t) * (size_t)(t->n_vocab + 1));
    for (int i = 0; i < t->n_vocab; i++)
        if ((t->type[i] == TOKEN_CONTROL || t->type[i] == TOKEN_USER) && bpe_token_text(t->vocab, i, NULL)) {
            size_t len;
            bpe_token_text(t->vocab, i, &len);
            if (len > 0) t->specials[t->n_specials++] = i;
        }
    qsort_r(t->specials, (size_t)t->n_specials, sizeof(int32_t), compare_special_length, t);
    return 0;
}

llm_tokenizer *llm_tokenizer_from_gguf(const gguf *g) {
    gguf_str model;
    if (gguf_get_string(g, "tokenizer.ggml.model", &model) != 0) { ts_fail_wrap("%s", gguf_path(g)); return NULL; }
    llm_tokenizer_kind kind;
    if (gguf_str_eq(model, "llama")) kind = LLM_TOKENIZER_SPM;
    else if (gguf_str_eq(model, "gpt2")) kind = LLM_TOKENIZER_BYTE_BPE;
    else { ts_fail("%s: tokenizer.ggml.model '%.*s' is not supported (llama, gpt2 are)", gguf_path(g), (int)model.len, model.ptr); return NULL; }
    gguf_type et;
    uint64_t count;
    if (gguf_get_array(g, "tokenizer.ggml.tokens", &et, &count) != 0 || et != GGUF_STRING || count == 0 || count > (1u << 24)) {
        ts_fail("%s: tokenizer.ggml.tokens must be a non-empty string array", gguf_path(g));
        return NULL;
    }
    llm_tokenizer *t = tokenizer_new(kind, (int)count);
    bool have_types = gguf_find_key(g, "tokenizer.ggml.token_type") >= 0;
    float *scores = ts_calloc(count, sizeof(float));
    for (uint64_t i = 0; i < count; i++) {
        gguf_str s;
        if (gguf_array_string(g, "tokenizer.ggml.tokens", i, &s) != 0) goto fail;
        bpe_add_token(t->vocab, s.ptr, s.len, (int32_t)i);
        int64_t ty = TOKEN_NORMAL;
        if (have_types && gguf_array_int(g, "tokenizer.ggml.token_type", i, &ty) != 0) goto fail;
        t->type[i] = (uint8_t)ty;
        double sc = 0;
        if (kind == LLM_TOKENIZER_SPM && gguf_find_key(g, "tokenizer.ggml.scores") >= 0 &&
            gguf_array_float(g, "tokenizer.ggml.scores", i, &sc) != 0) goto fail;
        scores[i] = (float)sc;
    }
    int64_t v;
    if (gguf_get_int_or(g, "tokenizer.ggml.bos_token_id", -1, &v) == 0) t->bos = (int32_t)v;
    if (gguf_get_int_or(g, "tokenizer.ggml.eos_token_id", -1, &v) == 0) t->eos = (int32_t)v;
    if (gguf_get_int_or(g, "tokenizer.ggml.unknown_token_id", -1, &v) == 0) t->unk = (int32_t)v;
    bool b;
    t->add_bos = gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &b) == 0 ? b : kind == LLM_TOKENIZER_SPM;
    t->add_eos = gguf_get_bool(g, "tokenizer.ggml.add_eos_token", &b) == 0 ? b : false;
    t->add_space_prefix = gguf_get_bool(g, "tokenizer.ggml.add_space_prefix", &b) == 0 ? b : kind == LLM_TOKENIZER_SPM;
    if (kind == LLM_TOKENIZER_SPM) {
        /* control, unused and byte tokens never come out of merges */
        for (uint64_t i = 0; i < count; i++)
            if (t->type[i] != TOKEN_NORMAL && t->type[i] != TOKEN_USER) scores[i] = -1e30f;
        bpe_merges_from_scores(t->vocab, scores, (int)count);
    } else {
        uint64_t n_merges;
        if (gguf_get_array(g, "tokenizer.ggml.merges", &et, &n_merges) != 0 || et != GGUF_STRING) goto fail;
        for (uint64_t i = 0; i < n_merges; i++) {
            gguf_str m;
            if (gguf_array_string(g, "tokenizer.ggml.merges", i, &m) != 0) goto fail;
            const char *sp = memchr(m.ptr + 1, ' ', m.len - 1);   /* a part may itself start with ' '? never: spaces are Ġ */
            if (!sp) { ts_fail("%s: merge %llu has no space", gguf_path(g), (unsigned long long)i); goto fail; }
            if (bpe_add_merge_text(t->vocab, m.ptr, (size_t)(sp - m.ptr), sp + 1, m.len - (size_t)(sp - m.ptr) - 1) != 0) {
                ts_fail_wrap("%s: merge %llu", gguf_path(g), (unsigned long long)i);
                goto fail;
            }
        }
        gguf_str pre = {"gpt2", 4};
        gguf_get_string(g, "tokenizer.ggml.pre", &pre);
        const char *regex = NULL;
        for (size_t k = 0; k < sizeof pre_tokenizers / sizeof pre_tokenizers[0]; k++)
            if (gguf_str_eq(pre, pre_tokenizers[k].pre)) regex = pre_tokenizers[k].regex;
        if (!regex) { ts_fail("%s: pre-tokenizer '%.*s' is not supported", gguf_path(g), (int)pre.len, pre.ptr); goto fail; }
        t->ignore_merges = gguf_str_eq(pre, "llama-bpe") || gguf_str_eq(pre, "llama3") || gguf_str_eq(pre, "llama-v3");
        if (compile_split(t, regex) != 0) goto fail;
    }
    free(scores);
    if (finish_setup(t) != 0) { llm_tokenizer_destroy(&t); return NULL; }
    return t;
fail:
    free(scores);
    llm_tokenizer_destroy(&t);
    if (!ts_last_error()[0]) ts_fail("%s: bad tokenizer metadata", gguf_path(g));
    return NULL;
}

/* Adds the merges of a tokenizer.json / merges.txt; entries are "a b" or ["a", "b"]. */
static int add_json_merges(llm_tokenizer *t, const cJSON *merges) {
    const cJSON *m;
    cJSON_ArrayForEach(m, merges) {
        const char *l, *r;
        size_t ll, rl;
        if (cJSON_IsString(m)) {
            const char *s = m->valuestring, *sp = strchr(s + 1, ' ');
            if (!sp) return ts_fail("merge '%s' has no space", s);
            l = s; ll = (size_t)(sp - s); r = sp + 1; rl = strlen(r);
        } else if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2) {
            l = cJSON_GetArrayItem(m, 0)->valuestring; r = cJSON_GetArrayItem(m, 1)->valuestring;
            if (!l || !r) return ts_fail("bad merge entry");
            ll = strlen(l); rl = strlen(r);
        } else return ts_fail("bad merge entry");
        if (bpe_add_merge_text(t->vocab, l, ll, r, rl) != 0) return -1;
    }
    return 0;
}

static llm_tokenizer *from_vocab_and_merges(const char *folder) {
    char vpath[4096], mpath[4096];
    snprintf(vpath, sizeof vpath, "%s/vocab.json", folder);
    snprintf(mpath, sizeof mpath, "%s/merges.txt", folder);
    char *vtext = read_text_file(vpath, NULL);
    if (!vtext) return NULL;
    cJSON *vocab = cJSON_Parse(vtext);
    free(vtext);
    if (!cJSON_IsObject(vocab)) { cJSON_Delete(vocab); ts_fail("%s: not a JSON object", vpath); return NULL; }
    int n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, vocab) if (cJSON_IsNumber(e) && e->valueint + 1 > n) n = e->valueint + 1;
    llm_tokenizer *t = tokenizer_new(LLM_TOKENIZER_BYTE_BPE, n);
    cJSON_ArrayForEach(e, vocab) if (cJSON_IsNumber(e)) {
        bpe_add_token(t->vocab, e->string, strlen(e->string), e->valueint);
        t->type[e->valueint] = TOKEN_NORMAL;
    }
    cJSON_Delete(vocab);
    char *mtext = read_text_file(mpath, NULL);
    if (!mtext) { llm_tokenizer_destroy(&t); return NULL; }
    char *save = NULL;
    int line_no = 0;
    for (char *line = strtok_r(mtext, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        line_no++;
        if (line_no == 1 && strncmp(line, "#version", 8) == 0) continue;
        size_t len = strlen(line);
        if (len && line[len - 1] == '\r') line[--len] = 0;
        char *sp = strchr(line + 1, ' ');
        if (!sp || bpe_add_merge_text(t->vocab, line, (size_t)(sp - line), sp + 1, len - (size_t)(sp - line) - 1) != 0) {
            ts_fail("%s:%d: bad merge line", mpath, line_no);
            free(mtext);
            llm_tokenizer_destroy(&t);
            return NULL;
        }
    }
    free(mtext);
    int32_t eot = bpe_token_id(t->vocab, "<|endoftext|>", 13);
    if (eot >= 0) { t->type[eot] = TOKEN_CONTROL; t->bos = t->eos = eot; }
    if (compile_split(t, pre_tokenizers[0].regex) != 0 || finish_setup(t) != 0) { llm_tokenizer_destroy(&t); return NULL; }
    return t;
}

/* Finds the Split regex of a tokenizer.json pre_tokenizer (possibly inside a Sequence). */
static const char *find_split_regex(const cJSON *pre) {
    if (!pre) return NULL;
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(pre, "type");
    if (cJSON_IsString(type) && strcmp(type->valuestring, "Split") == 0) {
        const cJSON *re = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(pre, "pattern"), "Regex");
        return cJSON_IsString(re) ? re->valuestring : NULL;
    }
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(pre, "pretokenizers"), *p;
    cJSON_ArrayForEach(p, list) {
        const char *r = find_split_regex(p);
        if (r) return r;
    }
    return NULL;
}

/* The TemplateProcessing of a tokenizer.json post_processor (possibly inside a Sequence). */
static const cJSON *find_template_processing(const cJSON *pp) {
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(pp, "type");
    if (!cJSON_IsString(type)) return NULL;
    if (strcmp(type->valuestring, "TemplateProcessing") == 0) return pp;
    const cJSON *p;
    cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(pp, "processors")) {
        const cJSON *found = find_template_processing(p);
        if (found) return found;
    }
    return NULL;
}

/* Id of a special token named in a template: its special_tokens entry, else the vocabulary. */
static int32_t template_token_id(const llm_tokenizer *t, const cJSON *tp, const char *name) {
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(tp, "special_tokens"), name);
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(st, "ids");
    if (cJSON_IsArray(ids) && cJSON_IsNumber(cJSON_GetArrayItem(ids, 0))) return cJSON_GetArrayItem(ids, 0)->valueint;
    return bpe_token_id(t->vocab, name, strlen(name));
}

/* What transformers adds when encoding with add_special_tokens: the post_processor's
 * template for a single sequence ("<s> $A", "<|begin_of_text|> $A", or none). */
static void special_tokens_from_post_processor(llm_tokenizer *t, const cJSON *root) {
    const cJSON *tp = find_template_processing(cJSON_GetObjectItemCaseSensitive(root, "post_processor"));
    if (!tp) return;
    bool after_text = false;
    const cJSON *item;
    t->add_bos = t->add_eos = false;
    cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(tp, "single")) {
        if (cJSON_GetObjectItemCaseSensitive(item, "Sequence")) { after_text = true; continue; }
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(item, "SpecialToken"), "id");
        int32_t tok = cJSON_IsString(id) ? template_token_id(t, tp, id->valuestring) : -1;
        if (tok < 0 || tok >= t->n_vocab) continue;
        if (!after_text && !t->add_bos) { t->bos = tok; t->add_bos = true; }
        else if (after_text && !t->add_eos) { t->eos = tok; t->add_eos = true; }
    }
}

/* tokenizer_config.json beside tokenizer.json (NULL if absent). */
static cJSON *read_tokenizer_config(const char *tokenizer_json) {
    char path[4096];
    const char *slash = strrchr(tokenizer_json, '/');
    snprintf(path, sizeof path, "%.*s/tokenizer_config.json", slash ? (int)(slash - tokenizer_json) : 1,
             slash ? tokenizer_json : ".");
    struct stat sb;
    if (stat(path, &sb) != 0) return NULL;
    char *text = read_text_file(path, NULL);
    if (!text) { ts_clear_error(); return NULL; }
    cJSON *root = cJSON_Parse(text);
    free(text);
    return root;
}

/* bos_token / eos_token of tokenizer_config.json name the ids (a string or {"content": ...}). */
static void special_names_from_config(llm_tokenizer *t, const cJSON *config) {
    static const char *names[2] = {"bos_token", "eos_token"};
    int32_t *ids[2] = {&t->bos, &t->eos};
    for (int k = 0; k < 2; k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(config, names[k]);
        if (cJSON_IsObject(v)) v = cJSON_GetObjectItemCaseSensitive(v, "content");
        if (!cJSON_IsString(v)) continue;
        int32_t id = bpe_token_id(t->vocab, v->valuestring, strlen(v->valuestring));
        if (id >= 0) *ids[k] = id;
    }
}

/* SentencePiece-style files are read by transformers' LlamaTokenizer, which rebuilds its
 * post-processor from add_bos_token / add_eos_token; byte-level files load as a plain
 * tokenizers backend, where only the post-processor counts (transformers 5). */
static void special_flags_from_config(llm_tokenizer *t, const cJSON *config) {
    if (t->kind != LLM_TOKENIZER_SPM) return;
    const cJSON *ab = cJSON_GetObjectItemCaseSensitive(config, "add_bos_token");
    const cJSON *ae = cJSON_GetObjectItemCaseSensitive(config, "add_eos_token");
    if (cJSON_IsBool(ab)) t->add_bos = cJSON_IsTrue(ab);
    if (cJSON_IsBool(ae)) t->add_eos = cJSON_IsTrue(ae);
}

llm_tokenizer *llm_tokenizer_from_hf(const char *path) {
    char file[4096];
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        snprintf(file, sizeof file, "%s/tokenizer.json", path);
        if (stat(file, &sb) != 0) return from_vocab_and_merges(path);
    } else snprintf(file, sizeof file, "%s", path);
    char *text = read_text_file(file, NULL);
    if (!text) return NULL;
    cJSON *root = cJSON_Parse(text);
    free(text);
    llm_tokenizer *t = NULL;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *mtype = cJSON_GetObjectItemCaseSensitive(model, "type");
    if (!cJSON_IsObject(vocab) || !cJSON_IsString(mtype) || strcmp(mtype->valuestring, "BPE") != 0) {
        ts_fail("%s: only BPE tokenizer.json files are supported", file);
        goto done;
    }
    const cJSON *fallback = cJSON_GetObjectItemCaseSensitive(model, "byte_fallback");
    llm_tokenizer_kind kind = cJSON_IsTrue(fallback) ? LLM_TOKENIZER_SPM : LLM_TOKENIZER_BYTE_BPE;
    int n = 0;
    const cJSON *e, *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    cJSON_ArrayForEach(e, vocab) if (cJSON_IsNumber(e) && e->valueint + 1 > n) n = e->valueint + 1;
    cJSON_ArrayForEach(e, added) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
        if (cJSON_IsNumber(id) && id->valueint + 1 > n) n = id->valueint + 1;
    }
    t = tokenizer_new(kind, n);
    cJSON_ArrayForEach(e, vocab) if (cJSON_IsNumber(e) && e->valueint >= 0) {
        bpe_add_token(t->vocab, e->string, strlen(e->string), e->valueint);
        t->type[e->valueint] = TOKEN_NORMAL;
    }
    cJSON_ArrayForEach(e, added) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id"), *c = cJSON_GetObjectItemCaseSensitive(e, "content");
        const cJSON *special = cJSON_GetObjectItemCaseSensitive(e, "special");
        if (!cJSON_IsNumber(id) || !cJSON_IsString(c) || id->valueint < 0) continue;
        bpe_add_token(t->vocab, c->valuestring, strlen(c->valuestring), id->valueint);
        t->type[id->valueint] = cJSON_IsTrue(special) ? TOKEN_CONTROL : TOKEN_USER;
    }
    if (add_json_merges(t, cJSON_GetObjectItemCaseSensitive(model, "merges")) != 0) {
        ts_fail_wrap("%s", file);
        llm_tokenizer_destroy(&t);
        goto done;
    }
    const cJSON *ignore = cJSON_GetObjectItemCaseSensitive(model, "ignore_merges");
    t->ignore_merges = cJSON_IsTrue(ignore);
    if (kind == LLM_TOKENIZER_SPM) {
        t->add_space_prefix = true;
        t->add_bos = true;
        t->bos = bpe_token_id(t->vocab, "<s>", 3);
        t->eos = bpe_token_id(t->vocab, "</s>", 4);
        t->unk = bpe_token_id(t->vocab, "<unk>", 5);
    } else {
        const char *regex = find_split_regex(cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"));
        if (compile_split(t, regex ? regex : pre_tokenizers[0].regex) != 0) { llm_tokenizer_destroy(&t); goto done; }
        t->bos = bpe_token_id(t->vocab, "<|endoftext|>", 13);
        t->eos = t->bos;
    }
    cJSON *config = read_tokenizer_config(file);
    special_names_from_config(t, config);
    special_tokens_from_post_processor(t, root);
    special_flags_from_config(t, config);
    cJSON_Delete(config);
    if (finish_setup(t) != 0) llm_tokenizer_destroy(&t);
done:
    cJSON_Delete(root);
    return t;
}

/* ---- encoding ---------------------------------------------------------- */

typedef struct { int32_t *ids; int n, cap; } id_list;

static void push_id(id_list *l, int32_t id) {
    if (l->n == l->cap) { l->cap = l->cap ? l->cap * 2 : 64; l->ids = ts_realloc(l->ids, sizeof(int32_t) * (size_t)l->cap); }
    l->ids[l->n++] = id;
}

/* Merges a run of initial symbols and appends the result. */
static void push_merged(const llm_tokenizer *t, id_list *out, int32_t *syms, int n) {
    n = bpe_merge(t->vocab, syms, n);
    for (int i = 0; i < n; i++) push_id(out, syms[i]);
}

static int encode_spm(const llm_tokenizer *t, const char *s, size_t len, bool first, id_list *out) {
    /* text -> "▁" prefix + spaces as "▁", then one symbol per character (or its bytes) */
    size_t cap = len * 3 + 4;
    char *text = ts_malloc(cap);
    size_t k = 0;
    if (t->add_space_prefix && first) { memcpy(text, "\xe2\x96\x81", 3); k = 3; }
    for (size_t i = 0; i < len; i++) {
        if (s[i] == ' ') { memcpy(text + k, "\xe2\x96\x81", 3); k += 3; }
        else text[k++] = s[i];
    }
    int32_t *syms = ts_malloc(sizeof(int32_t) * (k + 1));
    int n = 0;
    for (size_t i = 0; i < k;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t cl = utf8proc_iterate((const utf8proc_uint8_t *)text + i, (utf8proc_ssize_t)(k - i), &cp);
        if (cl <= 0) cl = 1;
        int32_t id = bpe_token_id(t->vocab, text + i, (size_t)cl);
        if (id >= 0 && t->type[id] != TOKEN_UNUSED) syms[n++] = id;
        else
            for (utf8proc_ssize_t b = 0; b < cl; b++) {
                int32_t bt = t->byte_token[(uint8_t)text[i + (size_t)b]];
                syms[n++] = bt >= 0 ? bt : t->unk;
            }
        i += (size_t)cl;
    }
    push_merged(t, out, syms, n);
    free(syms);
    free(text);
    return 0;
}

static void encode_byte_piece(const llm_tokenizer *t, const char *p, size_t len, id_list *out) {
    /* the piece in the byte-level alphabet, for the whole-word lookup */
    if (t->ignore_merges) {
        char *mapped = ts_malloc(len * 2 + 1);
        size_t k = 0;
        for (size_t i = 0; i < len; i++)
            k += (size_t)utf8proc_encode_char((utf8proc_int32_t)bpe_byte_to_codepoint((uint8_t)p[i]), (utf8proc_uint8_t *)mapped + k);
        int32_t whole = bpe_token_id(t->vocab, mapped, k);
        free(mapped);
        if (whole >= 0) { push_id(out, whole); return; }
    }
    int32_t *syms = ts_malloc(sizeof(int32_t) * (len + 1));
    for (size_t i = 0; i < len; i++) syms[i] = t->byte_token[(uint8_t)p[i]];
    push_merged(t, out, syms, (int)len);
    free(syms);
}

static int encode_byte_level(const llm_tokenizer *t, const char *s, size_t len, id_list *out) {
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(t->split, NULL);
    size_t pos = 0;
    while (pos < len) {
        int rc = pcre2_match(t->split, (PCRE2_SPTR)s, len, pos, 0, md, NULL);
        if (rc < 0) { encode_byte_piece(t, s + pos, len - pos, out); break; }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        if (ov[0] > pos) encode_byte_piece(t, s + pos, ov[0] - pos, out);  /* text between matches */
        if (ov[1] == ov[0]) {   /* an empty match: step over one character */
            size_t step = 1;
            while (ov[0] + step < len && ((uint8_t)s[ov[0] + step] & 0xC0) == 0x80) step++;
            encode_byte_piece(t, s + ov[0], step, out);
            pos = ov[0] + step;
            continue;
        }
        encode_byte_piece(t, s + ov[0], ov[1] - ov[0], out);
        pos = ov[1];
    }
    pcre2_match_data_free(md);
    return 0;
}

static int encode_segment(const llm_tokenizer *t, const char *s, size_t len, bool first, id_list *out) {
    if (len == 0) return 0;
    return t->kind == LLM_TOKENIZER_SPM ? encode_spm(t, s, len, first, out) : encode_byte_level(t, s, len, out);
}

/* The first special token starting at or after pos: its offset and id (-1 if none). */
static int32_t next_special(const llm_tokenizer *t, const char *s, size_t len, size_t pos, size_t *at) {
    for (size_t i = pos; i < len; i++)
        for (int k = 0; k < t->n_specials; k++) {
            size_t sl;
            const char *st = bpe_token_text(t->vocab, t->specials[k], &sl);
            if (sl <= len - i && memcmp(s + i, st, sl) == 0) { *at = i; return t->specials[k]; }
        }
    return -1;
}

int llm_tokenize(const llm_tokenizer *t, const char *text, size_t len, bool add_bos, bool parse_special,
                 int32_t **ids, int *n) {
    const uint8_t *u = (const uint8_t *)text;
    for (size_t i = 0; i < len;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t cl = utf8proc_iterate(u + i, (utf8proc_ssize_t)(len - i), &cp);
        if (cl <= 0) return ts_fail("invalid UTF-8 at byte %zu", i);
        i += (size_t)cl;
    }
    id_list out = {0};
    if (add_bos && t->bos >= 0) push_id(&out, t->bos);
    size_t pos = 0;
    bool first = true;
    while (pos < len) {
        size_t at = len;
        int32_t special = parse_special ? next_special(t, text, len, pos, &at) : -1;
        encode_segment(t, text + pos, (special >= 0 ? at : len) - pos, first, &out);
        if (at > pos) first = false;
        if (special < 0) break;
        push_id(&out, special);
        size_t sl;
        bpe_token_text(t->vocab, special, &sl);
        pos = at + sl;
        first = false;
    }
    *ids = out.ids ? out.ids : ts_malloc(sizeof(int32_t));
    *n = out.n;
    return 0;
}

/* ---- decoding ---------------------------------------------------------- */

int llm_token_bytes(const llm_tokenizer *t, int32_t id, char *buf, size_t size) {
    size_t len;
    const char *s = bpe_token_text(t->vocab, id, &len);
    if (!s) return -1;
    size_t k = 0;
#define PUT(c) do { if (k < size) buf[k] = (char)(c); k++; } while (0)
    if (t->type[id] == TOKEN_BYTE || (t->kind == LLM_TOKENIZER_SPM && len == 6 && strncmp(s, "<0x", 3) == 0 && s[5] == '>')) {
        PUT(strtol(s + 3, NULL, 16));
    } else if (t->type[id] == TOKEN_CONTROL || t->type[id] == TOKEN_USER || t->kind == LLM_TOKENIZER_SPM) {
        for (size_t i = 0; i < len; i++) {
            if (t->kind == LLM_TOKENIZER_SPM && i + 2 < len + 0 && memcmp(s + i, "\xe2\x96\x81", 3) == 0) { PUT(' '); i += 2; }
            else PUT(s[i]);
        }
    } else {
        for (size_t i = 0; i < len;) {
            utf8proc_int32_t cp;
            utf8proc_ssize_t cl = utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(len - i), &cp);
            if (cl <= 0) { cl = 1; cp = (uint8_t)s[i]; }
            int b = bpe_codepoint_to_byte((uint32_t)cp);
            if (b >= 0) PUT(b);
            else for (utf8proc_ssize_t j = 0; j < cl; j++) PUT(s[i + (size_t)j]);
            i += (size_t)cl;
        }
    }
#undef PUT
    return (int)k;
}

char *llm_detokenize(const llm_tokenizer *t, const int32_t *ids, int n, bool skip_special) {
    size_t cap = 64, k = 0;
    char *out = ts_malloc(cap);
    for (int i = 0; i < n; i++) {
        if (skip_special && llm_tokenizer_is_special(t, ids[i])) continue;
        int need = llm_token_bytes(t, ids[i], NULL, 0);
        if (need < 0) continue;
        while (k + (size_t)need + 1 > cap) out = ts_realloc(out, cap *= 2);
        llm_token_bytes(t, ids[i], out + k, (size_t)need);
        if (t->kind == LLM_TOKENIZER_SPM && t->add_space_prefix && k == 0 && need > 0 && out[0] == ' ') {
            memmove(out, out + 1, (size_t)need - 1);
            need--;
        }
        k += (size_t)need;
    }
    out[k] = 0;
    return out;
}

/* ---- queries ----------------------------------------------------------- */

llm_tokenizer_kind llm_tokenizer_kind_of(const llm_tokenizer *t) { return t->kind; }
int llm_tokenizer_vocab_size(const llm_tokenizer *t) { return t->n_vocab; }
int32_t llm_tokenizer_bos(const llm_tokenizer *t) { return t->bos; }
int32_t llm_tokenizer_eos(const llm_tokenizer *t) { return t->eos; }
bool llm_tokenizer_adds_bos(const llm_tokenizer *t) { return t->add_bos && t->bos >= 0; }
bool llm_tokenizer_adds_eos(const llm_tokenizer *t) { return t->add_eos && t->eos >= 0; }
int32_t llm_tokenizer_find(const llm_tokenizer *t, const char *text) { return bpe_token_id(t->vocab, text, strlen(text)); }
bool llm_tokenizer_is_special(const llm_tokenizer *t, int32_t id) {
    return id >= 0 && id < t->n_vocab && (t->type[id] == TOKEN_CONTROL || t->type[id] == TOKEN_UNKNOWN);
}
