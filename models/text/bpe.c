/* bpe.c — vocabulary, merge table and the merge loop shared by all BPE tokenizers. */
#include "models/text/bpe.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    char *text;
    uint32_t len;
    int32_t id;     /* -1: empty slot */
} vocab_slot;

typedef struct {
    uint64_t key;   /* (left << 32 | right) + 1; 0 = empty */
    int32_t rank, merged;
} merge_slot;

struct bpe {
    vocab_slot *slots;
    size_t capacity, count;
    char **id_text;      /* id -> text (points into slots) */
    uint32_t *id_len;
    int32_t id_capacity, max_id;
    merge_slot *merges;
    size_t merge_capacity, merge_count;
    int32_t next_rank;
};

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static size_t vocab_find(const bpe *b, const char *s, size_t n) {
    size_t i = hash_bytes(s, n) & (b->capacity - 1);
    while (b->slots[i].id >= 0 && !(b->slots[i].len == n && memcmp(b->slots[i].text, s, n) == 0))
        i = (i + 1) & (b->capacity - 1);
    return i;
}

static void vocab_grow(bpe *b) {
    vocab_slot *old = b->slots;
    size_t old_cap = b->capacity;
    b->capacity *= 2;
    b->slots = ts_malloc(b->capacity * sizeof *b->slots);
    for (size_t i = 0; i < b->capacity; i++) b->slots[i].id = -1;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].id >= 0) b->slots[vocab_find(b, old[i].text, old[i].len)] = old[i];
    free(old);
}

bpe *bpe_new(int vocab_hint) {
    bpe *b = ts_calloc(1, sizeof *b);
    b->capacity = 1024;
    while (b->capacity < (size_t)vocab_hint * 2) b->capacity *= 2;
    b->slots = ts_malloc(b->capacity * sizeof *b->slots);
    for (size_t i = 0; i < b->capacity; i++) b->slots[i].id = -1;
    b->merge_capacity = 1024;
    b->merges = ts_calloc(b->merge_capacity, sizeof *b->merges);
    b->max_id = -1;
    return b;
}

void bpe_destroy(bpe **self) {
    if (!self || !*self) return;
    bpe *b = *self;
    for (size_t i = 0; i < b->capacity; i++)
        if (b->slots[i].id >= 0) free(b->slots[i].text);
    free(b->slots);
    free(b->id_text);
    free(b->id_len);
    free(b->merges);
    free(b);
    *self = NULL;
}

int bpe_add_token(bpe *b, const char *text, size_t len, int32_t id) {
    if (id < 0) return ts_fail("bpe: negative token id %d", id);
    if ((b->count + 1) * 2 > b->capacity) vocab_grow(b);
    size_t i = vocab_find(b, text, len);
    if (b->slots[i].id < 0) {
        b->slots[i].text = ts_malloc(len + 1);
        memcpy(b->slots[i].text, text, len);
        b->slots[i].text[len] = 0;
        b->slots[i].len = (uint32_t)len;
        b->count++;
    }
    b->slots[i].id = id;
    if (id >= b->id_capacity) {
        int32_t cap = b->id_capacity ? b->id_capacity : 1024;
        while (cap <= id) cap *= 2;
        b->id_text = ts_realloc(b->id_text, (size_t)cap * sizeof *b->id_text);
        b->id_len = ts_realloc(b->id_len, (size_t)cap * sizeof *b->id_len);
        memset(b->id_text + b->id_capacity, 0, (size_t)(cap - b->id_capacity) * sizeof *b->id_text);
        memset(b->id_len + b->id_capacity, 0, (size_t)(cap - b->id_capacity) * sizeof *b->id_len);
        b->id_capacity = cap;
    }
    /* slots move when the table grows, so keep our own pointer: re-point after growth */
    b->id_text[id] = b->slots[i].text;
    b->id_len[id] = (uint32_t)len;
    if (id > b->max_id) b->max_id = id;
    return 0;
}

int32_t bpe_token_id(const bpe *b, const char *text, size_t len) {
    return b->slots[vocab_find(b, text, len)].id;
}

const char *bpe_token_text(const bpe *b, int32_t id, size_t *len) {
    if (id < 0 || id >= b->id_capacity || !b->id_text[id]) return NULL;
    if (len) *len = b->id_len[id];
    return b->id_text[id];
}

int bpe_vocab_size(const bpe *b) { return b->max_id + 1; }

int bpe_token_count(const bpe *b) { return (int)b->count; }

static uint64_t merge_key(int32_t a, int32_t c) { return ((uint64_t)(uint32_t)a << 32 | (uint32_t)c) + 1; }

/* Fibonacci hashing: the product's high half is well mixed (on CLIP's 48894 merges, bits
 * 17 and up averaged 14 probes a lookup, bits 32 and up 1.3). */
static size_t merge_find(const bpe *b, uint64_t key) {
    size_t i = (size_t)((key * 0x9E3779B97F4A7C15ull) >> 32) & (b->merge_capacity - 1);
    while (b->merges[i].key && b->merges[i].key != key) i = (i + 1) & (b->merge_capacity - 1);
    return i;
}

void bpe_add_merge(bpe *b, int32_t left, int32_t right, int32_t rank, int32_t merged) {
    if ((b->merge_count + 1) * 2 > b->merge_capacity) {
        merge_slot *old = b->merges;
        size_t old_cap = b->merge_capacity;
        b->merge_capacity *= 2;
        b->merges = ts_calloc(b->merge_capacity, sizeof *b->merges);
        for (size_t i = 0; i < old_cap; i++)
            if (old[i].key) b->merges[merge_find(b, old[i].key)] = old[i];
        free(old);
    }
    uint64_t key = merge_key(left, right);
    size_t i = merge_find(b, key);
    if (b->merges[i].key) {           /* keep the best rank for a repeated pair */
        if (rank < b->merges[i].rank) { b->merges[i].rank = rank; b->merges[i].merged = merged; }
        return;
    }
    b->merges[i] = (merge_slot){key, rank, merged};
    b->merge_count++;
    if (rank >= b->next_rank) b->next_rank = rank + 1;
}

int bpe_add_merge_text(bpe *b, const char *l, size_t ll, const char *r, size_t rl) {
    int32_t a = bpe_token_id(b, l, ll), c = bpe_token_id(b, r, rl);
    char *joined = ts_malloc(ll + rl + 1);
    memcpy(joined, l, ll);
    memcpy(joined + ll, r, rl);
    int32_t m = bpe_token_id(b, joined, ll + rl);
    free(joined);
    if (a < 0 || c < 0 || m < 0) return ts_fail("bpe: merge '%.*s %.*s' uses a token not in the vocabulary", (int)ll, l, (int)rl, r);
    bpe_add_merge(b, a, c, b->next_rank, m);
    return 0;
}

/* qsort_r's context: tokenizers are loaded by worker threads at the same time */
static int compare_score_desc(const void *x, const void *y, void *context) {
    const float *scores = context;
    float a = scores[*(const int32_t *)x], c = scores[*(const int32_t *)y];
    return a > c ? -1 : a < c ? 1 : (*(const int32_t *)x - *(const int32_t *)y);
}

void bpe_merges_from_scores(bpe *b, const float *scores, int count) {
    int32_t *order = ts_malloc(sizeof(int32_t) * (size_t)(count + 1));
    for (int i = 0; i < count; i++) order[i] = i;
    qsort_r(order, (size_t)count, sizeof(int32_t), compare_score_desc, (void *)scores);
    /* equal scores share a rank, so the leftmost such pair in the text merges first */
    int32_t rank = 0;
    for (int k = 0; k < count; k++) {
        int32_t id = order[k];
        if (k > 0 && scores[id] != scores[order[k - 1]]) rank++;
        size_t len;
        const char *t = bpe_token_text(b, id, &len);
        if (!t) continue;
        for (size_t cut = 1; cut < len; cut++) {
            int32_t l = bpe_token_id(b, t, cut), r = bpe_token_id(b, t + cut, len - cut);
            if (l >= 0 && r >= 0) bpe_add_merge(b, l, r, rank, id);
        }
    }
    free(order);
}

/* ---- the merge loop ---------------------------------------------------- */

typedef struct { int32_t rank, pos, left_id, right_id; } candidate;

static bool candidate_before(const candidate *x, const candidate *y) {
    return x->rank < y->rank || (x->rank == y->rank && x->pos < y->pos);
}

static void heap_push(candidate *h, int *n, candidate c) {
    int i = (*n)++;
    h[i] = c;
    while (i > 0 && candidate_before(&h[i], &h[(i - 1) / 2])) {
        candidate t = h[i]; h[i] = h[(i - 1) / 2]; h[(i - 1) / 2] = t;
        i = (i - 1) / 2;
    }
}

static candidate heap_pop(candidate *h, int *n) {
    candidate top = h[0];
    h[0] = h[--(*n)];
    int i = 0;
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < *n && candidate_before(&h[l], &h[m])) m = l;
        if (r < *n && candidate_before(&h[r], &h[m])) m = r;
        if (m == i) break;
        candidate t = h[i]; h[i] = h[m]; h[m] = t;
        i = m;
    }
    return top;
}

static void consider_pair(const bpe *b, const int32_t *ids, int l, int r, candidate *heap, int *n) {
    if (l < 0 || r < 0) return;
    size_t s = merge_find(b, merge_key(ids[l], ids[r]));
    if (b->merges[s].key) heap_push(heap, n, (candidate){b->merges[s].rank, l, ids[l], ids[r]});
}

int bpe_merge(const bpe *b, int32_t *ids, int n) {
    if (n < 2) return n;
    /* each merge pushes at most two new pairs, so 3n bounds the heap; most words are
     * short and use the stack (CLIP calls this once per word, three mallocs showed) */
    enum { SMALL = 64 };
    int next_small[SMALL], prev_small[SMALL];
    candidate heap_small[3 * SMALL];
    bool small = n <= SMALL;
    int *next = small ? next_small : ts_malloc(sizeof(int) * (size_t)n);
    int *prev = small ? prev_small : ts_malloc(sizeof(int) * (size_t)n);
    candidate *heap = small ? heap_small : ts_malloc(sizeof(candidate) * (size_t)n * 3);
    int heap_n = 0;
    for (int i = 0; i < n; i++) { next[i] = i + 1 < n ? i + 1 : -1; prev[i] = i - 1; }
    for (int i = 0; i + 1 < n; i++) consider_pair(b, ids, i, i + 1, heap, &heap_n);
    while (heap_n > 0) {
        candidate c = heap_pop(heap, &heap_n);
        int l = c.pos, r = next[l];
        /* stale entries: the left symbol was merged away or changed, or its neighbour did */
        if (ids[l] != c.left_id || r < 0 || ids[r] != c.right_id) continue;
        size_t s = merge_find(b, merge_key(ids[l], ids[r]));
        ids[l] = b->merges[s].merged;
        ids[r] = -1;
        next[l] = next[r];
        if (next[r] >= 0) prev[next[r]] = l;
        consider_pair(b, ids, prev[l], l, heap, &heap_n);
        consider_pair(b, ids, l, next[l], heap, &heap_n);
    }
    int k = 0;
    for (int i = 0; i >= 0; i = next[i]) ids[k++] = ids[i];
    if (!small) {
        free(next);
        free(prev);
        free(heap);
    }
    return k;
}

/* ---- GPT-2 byte-level alphabet ----------------------------------------- */

/* Printable bytes map to themselves; the other 68 to 256, 257, ... in byte order. They
 * form three runs, 0x00-0x20, 0x7F-0xA0 and 0xAD, so both directions are a few compares. */
static bool byte_is_printable(uint32_t b) { return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF); }

uint32_t bpe_byte_to_codepoint(uint8_t byte) {
    if (byte_is_printable(byte)) return byte;
    if (byte <= 0x20) return 256u + byte;                /* 256..288 */
    if (byte <= 0xA0) return 256u + 33 + (byte - 0x7Fu); /* 289..322 */
    return 256u + 67;                                    /* 0xAD -> 323 */
}

int bpe_codepoint_to_byte(uint32_t cp) {
    if (cp < 256) return byte_is_printable(cp) ? (int)cp : -1;
    if (cp <= 288) return (int)(cp - 256);
    if (cp <= 322) return (int)(cp - 289 + 0x7F);
    return cp == 323 ? 0xAD : -1;
}
