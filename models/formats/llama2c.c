/* llama2c.c — llama2.c checkpoints and tokenizers (see llama2c.h). The tokenizer format is
 * llama2.c's own, so no library reads it. */
#include "models/formats/llama2c.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- checkpoint -------------------------------------------------------- */

typedef struct { void *base; size_t size; } mapping;

static void release_mapping(void *p) {
    mapping *m = p;
    munmap(m->base, m->size);
    free(m);
}

llm *llama2c_open(const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) { ts_fail("%s: cannot open", path); return NULL; }
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size < 28) { close(fd); ts_fail("%s: too small for a llama2.c checkpoint", path); return NULL; }
    void *base = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (base == MAP_FAILED) { ts_fail("%s: cannot memory-map", path); return NULL; }
    int32_t h[7];
    memcpy(h, base, sizeof h);
    llm_config c = {0};
    snprintf(c.arch, sizeof c.arch, "llama2c");
    c.dim = h[0]; c.hidden_dim = h[1]; c.n_layers = h[2]; c.n_heads = h[3]; c.n_kv_heads = h[4];
    c.vocab_size = h[5] < 0 ? -h[5] : h[5];
    c.max_seq_len = h[6];
    c.tied_output = h[5] > 0;
    c.norm_eps = 1e-5f;
    c.rope_theta = 10000.0f;
    c.rope = ROPE_INTERLEAVED;
    c.bos_id = 1;
    c.eos_id = 2;
    llm_weights w = {0};
    mapping *m = ts_malloc(sizeof *m);
    *m = (mapping){base, (size_t)st.st_size};
    if (c.dim <= 0 || c.n_heads <= 0 || c.n_kv_heads <= 0 || c.n_layers <= 0 || c.n_layers > 4096 || c.hidden_dim <= 0 ||
        c.vocab_size <= 0 || c.max_seq_len <= 0 || c.dim % c.n_heads || c.n_heads % c.n_kv_heads || (c.dim / c.n_heads) % 2 ||
        c.dim > (1 << 16) || c.hidden_dim > (1 << 18) || c.vocab_size > (1 << 20) || c.max_seq_len > (1 << 20)) {
        ts_fail("%s: not a llama2.c checkpoint (header dim %d, hidden %d, layers %d, heads %d/%d, vocab %d, seq %d)",
                path, h[0], h[1], h[2], h[3], h[4], h[5], h[6]);
        goto fail;
    }
    c.head_dim = c.dim / c.n_heads;
    /* Sizes in floats, in file order. */
    int64_t D = c.dim, Hd = c.hidden_dim, L = c.n_layers, V = c.vocab_size, kv = (int64_t)c.n_kv_heads * c.head_dim;
    int64_t need = V * D + L * D + L * D * D + 2 * L * D * kv + L * D * D + L * D + 3 * L * D * Hd + D +
                   (int64_t)c.max_seq_len * c.head_dim + (c.tied_output ? 0 : V * D);
    if ((int64_t)(m->size - 28) / 4 < need) {
        ts_fail("%s: %zu bytes, but the header's shapes need %lld", path, m->size, (long long)(28 + 4 * need));
        goto fail;
    }
    const float *p = (const float *)((const char *)base + 28);
    qmatrix_view(&w.token_embd, DT_F32, V, D, p, "token_embedding"); p += V * D;
    w.layers = ts_calloc((size_t)L, sizeof(llm_layer));
    int64_t vec[1] = {D};
    for (int l = 0; l < L; l++) w.layers[l].attn_norm = tensor_view((void *)(p + l * D), DT_F32, 1, vec);
    p += L * D;
    for (int l = 0; l < L; l++) qmatrix_view(&w.layers[l].wq, DT_F32, D, D, p + l * D * D, "wq");
    p += L * D * D;
    for (int l = 0; l < L; l++) qmatrix_view(&w.layers[l].wk, DT_F32, kv, D, p + l * D * kv, "wk");
    p += L * D * kv;
    for (int l = 0; l < L; l++) qmatrix_view(&w.layers[l].wv, DT_F32, kv, D, p + l * D * kv, "wv");
    p += L * D * kv;
    for (int l = 0; l < L; l++) qmatrix_view(&w.layers[l].wo, DT_F32, D, D, p + l * D * D, "wo");
    p += L * D * D;
    for (int l = 0; l < L; l++) w.layers[l].ffn_norm = tensor_view((void *)(p + l * D), DT_F32, 1, vec);
    p += L * D;
    for (int l = 0; l < L; l++) qmatrix_view(&w.layers[l].w_gate, DT_F32, Hd, D, p + l * D * Hd, "w1");
    p += L * D * Hd;
    for (int l = 0; l < L; l++) qmatrix_view(&w.layers[l].w_down, DT_F32, D, Hd, p + l * D * Hd, "w2");
    p += L * D * Hd;
    for (int l = 0; l < L; l++) qmatrix_view(&w.layers[l].w_up, DT_F32, Hd, D, p + l * D * Hd, "w3");
    p += L * D * Hd;
    w.out_norm = tensor_view((void *)p, DT_F32, 1, vec);
    p += D;
    p += (int64_t)c.max_seq_len * c.head_dim; /* freq_cis_real and _imag, recomputed instead */
    if (c.tied_output) w.output = w.token_embd;
    else qmatrix_view(&w.output, DT_F32, V, D, p, "wcls");
    w.rope_inv_freq = llm_rope_frequencies(c.head_dim, c.rope_theta);
    return llm_new(&c, &w, m, release_mapping);
fail:
    release_mapping(m);
    return NULL;
}

/* ---- tokenizer --------------------------------------------------------- */

struct llama2c_tokenizer {
    char **vocab;
    float *scores;
    int vocab_size;
    int max_token_length;
    int *sorted;                 /* ids sorted by piece, for lookup */
    char byte_pieces[256][2];
};

/* qsort_r's context: tokenizers are loaded by worker threads at the same time */
static int compare_pieces(const void *a, const void *b, void *context) {
    const llama2c_tokenizer *t = context;
    return strcmp(t->vocab[*(const int *)a], t->vocab[*(const int *)b]);
}

llama2c_tokenizer *llama2c_tokenizer_open(const char *path, int vocab_size) {
    FILE *f = fopen(path, "rb");
    if (!f) { ts_fail("%s: cannot open", path); return NULL; }
    llama2c_tokenizer *t = ts_calloc(1, sizeof *t);
    t->vocab_size = vocab_size;
    t->vocab = ts_calloc((size_t)vocab_size, sizeof(char *));
    t->scores = ts_calloc((size_t)vocab_size, sizeof(float));
    for (int i = 0; i < 256; i++) t->byte_pieces[i][0] = (char)i;
    int32_t mtl;
    if (fread(&mtl, 4, 1, f) != 1 || mtl <= 0 || mtl > 4096) { ts_fail("%s: bad max_token_length", path); goto fail; }
    t->max_token_length = mtl;
    for (int i = 0; i < vocab_size; i++) {
        int32_t len;
        if (fread(&t->scores[i], 4, 1, f) != 1 || fread(&len, 4, 1, f) != 1) { ts_fail("%s: ends at token %d of %d", path, i, vocab_size); goto fail; }
        if (len < 0 || len > mtl) { ts_fail("%s: token %d has length %d (max %d)", path, i, len, mtl); goto fail; }
        t->vocab[i] = ts_malloc((size_t)len + 1);
        if (fread(t->vocab[i], 1, (size_t)len, f) != (size_t)len) { ts_fail("%s: ends inside token %d", path, i); goto fail; }
        t->vocab[i][len] = 0;
    }
    fclose(f);
    t->sorted = ts_malloc((size_t)vocab_size * sizeof(int));
    for (int i = 0; i < vocab_size; i++) t->sorted[i] = i;
    qsort_r(t->sorted, (size_t)vocab_size, sizeof(int), compare_pieces, t);
    return t;
fail:
    fclose(f);
    llama2c_tokenizer_destroy(&t);
    return NULL;
}

void llama2c_tokenizer_destroy(llama2c_tokenizer **self) {
    llama2c_tokenizer *t = *self;
    if (!t) return;
    for (int i = 0; i < t->vocab_size; i++) free(t->vocab[i]);
    free(t->vocab);
    free(t->scores);
    free(t->sorted);
    free(t);
    *self = NULL;
}

static int lookup(const llama2c_tokenizer *t, const char *s) {
    int lo = 0, hi = t->vocab_size - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2, r = strcmp(t->vocab[t->sorted[mid]], s);
        if (r == 0) return t->sorted[mid];
        if (r < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

int llama2c_encode(const llama2c_tokenizer *t, const char *text, bool bos, bool eos, int *tokens) {
    int n = 0;
    char *buf = ts_malloc((size_t)t->max_token_length * 2 + 3);
    if (bos) tokens[n++] = 1;
    if (text[0]) {
        int space = lookup(t, " ");
        if (space >= 0) tokens[n++] = space;
    }
    size_t len = 0;
    for (const char *c = text; *c; c++) {
        /* gather one UTF-8 code point (continuation bytes are 10xxxxxx, at most 4 bytes) */
        if ((*c & 0xC0) != 0x80) len = 0;
        buf[len++] = *c;
        buf[len] = 0;
        if ((*(c + 1) & 0xC0) == 0x80 && len < 4) continue;
        int id = lookup(t, buf);
        if (id >= 0) tokens[n++] = id;
        else
            for (size_t i = 0; i < len; i++) tokens[n++] = (unsigned char)buf[i] + 3; /* byte fallback */
        len = 0;
    }
    for (;;) { /* merge the best-scoring adjacent pair until none is in the vocabulary */
        float best = -1e10f;
        int best_id = -1, best_at = -1;
        for (int i = 0; i < n - 1; i++) {
            snprintf(buf, (size_t)t->max_token_length * 2 + 3, "%s%s", t->vocab[tokens[i]], t->vocab[tokens[i + 1]]);
            int id = lookup(t, buf);
            if (id >= 0 && t->scores[id] > best) { best = t->scores[id]; best_id = id; best_at = i; }
        }
        if (best_at < 0) break;
        tokens[best_at] = best_id;
        memmove(tokens + best_at + 1, tokens + best_at + 2, (size_t)(n - best_at - 2) * sizeof(int));
        n--;
    }
    if (eos) tokens[n++] = 2;
    free(buf);
    return n;
}

const char *llama2c_decode(const llama2c_tokenizer *t, int prev, int token) {
    if (token < 0 || token >= t->vocab_size) return "";
    const char *piece = t->vocab[token];
    if (prev == 1 && piece[0] == ' ') piece++;
    unsigned int byte;
    if (strlen(piece) == 6 && sscanf(piece, "<0x%02X>", &byte) == 1) return t->byte_pieces[byte];
    return piece;
}
