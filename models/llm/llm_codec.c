/* llm_codec.c — a model's tokenizer and chat template (see llm_codec.h). */
#include "models/llm/llm_codec.h"
#include "models/formats/gguf.h"
#include "models/formats/llama2c.h"
#include "models/llm/llm_tokenizer.h"
#include "models/formats/model_files.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct llm_codec {
    llm_tokenizer *tok;          /* GGUF / Hugging Face */
    llama2c_tokenizer *l2c;      /* llama2.c */
    gguf *own_gguf;              /* a --tokenizer .gguf we opened */
    chat_template tmpl;
    bool have_template;
    char piece[256];             /* the detokenizer's last piece */
    int vocab_size;
};

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* chat_template from an HF folder's tokenizer_config.json, if it has one. */
static void template_from_hf_folder(llm_codec *c, const char *folder) {
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer_config.json", folder);
    char *text = read_text_file(path, NULL);
    if (!text) { ts_clear_error(); return; }
    cJSON *root = cJSON_Parse(text);
    free(text);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "chat_template");
    if (cJSON_IsString(t) && chat_template_detect(t->valuestring, &c->tmpl) == 0) c->have_template = true;
    cJSON_Delete(root);
}

llm_codec *llm_codec_open(const llm *m, const char *model_path, const char *override) {
    llm_codec *c = ts_calloc(1, sizeof *c);
    const llm_config *cfg = llm_get_config(m);
    c->vocab_size = cfg->vocab_size;
    struct stat sb;
    if (override) {
        if (ends_with(override, ".gguf")) {
            c->own_gguf = gguf_open(override);
            if (c->own_gguf) c->tok = llm_tokenizer_from_gguf(c->own_gguf);
        } else if (ends_with(override, ".bin")) {
            c->l2c = llama2c_tokenizer_open(override, cfg->vocab_size);
        } else {
            c->tok = llm_tokenizer_from_hf(override);
        }
    } else if (strcmp(cfg->arch, "llama2c") == 0) {
        char path[4096];
        const char *slash = strrchr(model_path, '/');
        snprintf(path, sizeof path, "%.*stokenizer.bin", slash ? (int)(slash - model_path + 1) : 0, model_path);
        c->l2c = llama2c_tokenizer_open(path, cfg->vocab_size);
    } else if (llm_gguf(m)) {
        c->tok = llm_tokenizer_from_gguf(llm_gguf(m));
        gguf_str jinja;
        if (gguf_find_key(llm_gguf(m), "tokenizer.chat_template") >= 0 &&
            gguf_get_string(llm_gguf(m), "tokenizer.chat_template", &jinja) == 0) {
            char *s = gguf_strdup(jinja);
            if (chat_template_detect(s, &c->tmpl) == 0) c->have_template = true;
            free(s);
        }
    } else if (llm_folder(m)) {
        c->tok = llm_tokenizer_from_hf(llm_folder(m));
        template_from_hf_folder(c, llm_folder(m));
    } else if (stat(model_path, &sb) == 0) {
        ts_fail("%s: no tokenizer found (give one with --tokenizer)", model_path);
    }
    if (!c->tok && !c->l2c) {
        ts_fail_wrap("tokenizer for %s", model_path);
        llm_codec_destroy(&c);
        return NULL;
    }
    if (c->tok && llm_tokenizer_vocab_size(c->tok) > cfg->vocab_size) {
        ts_fail("%s: the tokenizer has %d tokens but the model only %d", model_path,
                llm_tokenizer_vocab_size(c->tok), cfg->vocab_size);
        llm_codec_destroy(&c);
        return NULL;
    }
    if (!c->have_template && c->tok) {
        c->tmpl = chat_template_for_arch(cfg->arch, llm_tokenizer_find(c->tok, "<|start_header_id|>") >= 0);
        c->have_template = llm_tokenizer_find(c->tok, "<|im_start|>") >= 0 ||
                           llm_tokenizer_find(c->tok, "<|start_header_id|>") >= 0 ||
                           llm_tokenizer_find(c->tok, "[INST]") >= 0 || c->tmpl == CHAT_LLAMA2;
    }
    return c;
}

void llm_codec_destroy(llm_codec **self) {
    if (!self || !*self) return;
    llm_codec *c = *self;
    llm_tokenizer_destroy(&c->tok);
    llama2c_tokenizer_destroy(&c->l2c);
    gguf_close(&c->own_gguf);
    free(c);
    *self = NULL;
}

int llm_codec_encode(const llm_codec *c, const char *text, bool add_special, bool parse_special, int **ids, int *n) {
    if (c->tok) {
        int32_t *t;
        if (llm_tokenize(c->tok, text, strlen(text), add_special && llm_tokenizer_adds_bos(c->tok), parse_special, &t, n) != 0)
            return -1;
        if (add_special && llm_tokenizer_adds_eos(c->tok)) {
            t = ts_realloc(t, sizeof(int32_t) * (size_t)(*n + 1));
            t[(*n)++] = llm_tokenizer_eos(c->tok);
        }
        *ids = (int *)t;   /* int32_t and int are the same width on every platform we build for */
        return 0;
    }
    int *buf = ts_malloc(sizeof(int) * (strlen(text) + 3));
    *n = llama2c_encode(c->l2c, text, add_special, false, buf);   /* run.c: BOS, no EOS */
    if (*n < 0) { free(buf); return -1; }
    *ids = buf;
    return 0;
}

bool llm_codec_adds_bos(const llm_codec *c) { return c->tok ? llm_tokenizer_adds_bos(c->tok) : true; }

static const char *codec_piece(void *ctx, int prev, int token, size_t *len) {
    llm_codec *c = ctx;
    if (c->l2c) {   /* llama2.c's run.c decodes to C strings (and prints no control bytes) */
        const char *p = llama2c_decode(c->l2c, prev, token);
        *len = strlen(p);
        return p;
    }
    int n = llm_token_bytes(c->tok, token, c->piece, sizeof c->piece - 1);
    if (n < 0 || llm_tokenizer_is_special(c->tok, token)) n = 0;
    if (n > (int)sizeof c->piece - 1) n = (int)sizeof c->piece - 1;
    c->piece[n] = 0;
    *len = (size_t)n;   /* counted: a <0x00> byte token is a NUL byte of text */
    /* SentencePiece: the space the prefix added before the first word is not text */
    if (prev < 0 && llm_tokenizer_kind_of(c->tok) == LLM_TOKENIZER_SPM && n > 0 && c->piece[0] == ' ') {
        *len = (size_t)n - 1;
        return c->piece + 1;
    }
    return c->piece;
}

llm_detokenizer llm_codec_detokenizer(llm_codec *c) { return (llm_detokenizer){c, codec_piece}; }

int llm_codec_set_template(llm_codec *c, const char *name) {
    if (!name || !*name) return 0;
    if (chat_template_from_name(name, &c->tmpl) != 0) return -1;
    c->have_template = true;
    return 0;
}

bool llm_codec_has_template(const llm_codec *c) { return c->have_template; }
chat_template llm_codec_template(const llm_codec *c) { return c->tmpl; }

static const char *token_text_or(const llm_codec *c, int32_t id, const char *dflt, char *buf, size_t size) {
    if (!c->tok || id < 0) return dflt;
    int n = llm_token_bytes(c->tok, id, buf, size - 1);
    if (n < 0 || n >= (int)size) return dflt;
    buf[n] = 0;
    return buf;
}

char *llm_codec_render_chat(const llm_codec *c, const chat_message *m, int n) {
    char bos[64], eos[64];
    const char *b = token_text_or(c, c->tok ? llm_tokenizer_bos(c->tok) : -1, "", bos, sizeof bos);
    const char *e = token_text_or(c, c->tok ? llm_tokenizer_eos(c->tok) : -1, "", eos, sizeof eos);
    if (c->tmpl == CHAT_LLAMA3) b = "<|begin_of_text|>";
    return chat_render(c->tmpl, m, n, true, b, e);
}

int llm_codec_end_ids(const llm_codec *c, int *ids, int max) {
    int n = 0;
    if (!c->tok) return 0;
    const char *names[] = {"<|im_end|>", "<|eot_id|>", "<|end_of_text|>", "<|endoftext|>", "</s>"};
    for (size_t i = 0; i < sizeof names / sizeof names[0] && n < max; i++) {
        int32_t id = llm_tokenizer_find(c->tok, names[i]);
        if (id >= 0) ids[n++] = id;
    }
    int32_t eos = llm_tokenizer_eos(c->tok);
    bool seen = false;
    for (int i = 0; i < n; i++) seen |= ids[i] == eos;
    if (eos >= 0 && !seen && n < max) ids[n++] = eos;
    return n;
}
