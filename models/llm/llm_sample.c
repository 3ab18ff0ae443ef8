/* llm_sample.c — the sampler and the continuous-batching generate loop (see llm_sample.h). */
#include "models/llm/llm_sample.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

llm_sampling llm_sampling_greedy(void) {
    return (llm_sampling){.temperature = 0.0f, .top_k = 0, .top_p = 1.0f, .min_p = 0.0f,
                          .repeat_penalty = 1.0f, .repeat_last_n = 64, .seed = 0};
}

typedef struct { float prob; int index; } prob_index;

struct llm_sampler {
    llm_sampling p;
    int vocab;
    uint64_t rng;
    prob_index *pi;
};

llm_sampler *llm_sampler_new(const llm_sampling *params, int vocab_size) {
    llm_sampler *s = ts_calloc(1, sizeof *s);
    s->p = *params;
    s->vocab = vocab_size;
    s->rng = params->seed ? params->seed : 0x9E3779B97F4A7C15ull;
    s->pi = ts_malloc((size_t)vocab_size * sizeof(prob_index));
    return s;
}

void llm_sampler_destroy(llm_sampler **self) {
    if (!*self) return;
    free((*self)->pi);
    free(*self);
    *self = NULL;
}

/* llama2.c's xorshift64* generator, so seeds reproduce its samples. */
static uint32_t random_u32(uint64_t *state) {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    return (uint32_t)((*state * 0x2545F4914F6CDD1Dull) >> 32);
}
static float random_f32(uint64_t *state) { return (float)(random_u32(state) >> 8) / 16777216.0f; }

static int argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

static int by_prob_desc(const void *a, const void *b) {
    const prob_index *x = a, *y = b;
    return (x->prob < y->prob) - (x->prob > y->prob);
}

/* Float softmax over x[n] in place, as llama2.c computes it. */
static void softmax(float *x, int n) {
    float max = x[0];
    for (int i = 1; i < n; i++) max = x[i] > max ? x[i] : max;
    float sum = 0.0f;
    for (int i = 0; i < n; i++) { x[i] = expf(x[i] - max); sum += x[i]; }
    for (int i = 0; i < n; i++) x[i] /= sum;
}

int llm_sampler_sample(llm_sampler *s, float *logits, const int *history, int n_history) {
    const llm_sampling *p = &s->p;
    const int n = s->vocab;
    if (p->repeat_penalty != 1.0f && p->repeat_penalty > 0.0f && n_history > 0) {
        int from = p->repeat_last_n > 0 && n_history > p->repeat_last_n ? n_history - p->repeat_last_n : 0;
        /* each distinct token penalised once: mark with the index table */
        for (int i = from; i < n_history; i++)
            if (history[i] >= 0 && history[i] < n) s->pi[history[i]].index = -1;
        for (int i = from; i < n_history; i++) {
            int t = history[i];
            if (t < 0 || t >= n || s->pi[t].index != -1) continue;
            s->pi[t].index = 0;
            logits[t] = logits[t] > 0 ? logits[t] / p->repeat_penalty : logits[t] * p->repeat_penalty;
        }
    }
    if (p->temperature <= 0.0f) return argmax(logits, n);
    if (p->top_k > 0 && p->top_k < n) {
        for (int i = 0; i < n; i++) s->pi[i] = (prob_index){logits[i], i};
        qsort(s->pi, (size_t)n, sizeof(prob_index), by_prob_desc);
        float kth = s->pi[p->top_k - 1].prob;
        int kept = 0;
        for (int i = 0; i < n; i++) {   /* ties at the k-th value: keep the first k by index */
            if (logits[i] > kth || (logits[i] == kth && kept < p->top_k)) kept++;
            else logits[i] = -INFINITY;
        }
    }
    for (int i = 0; i < n; i++) logits[i] /= p->temperature;
    softmax(logits, n);
    if (p->min_p > 0.0f) {
        float cut = p->min_p * logits[argmax(logits, n)], sum = 0.0f;
        for (int i = 0; i < n; i++) {
            if (logits[i] < cut) logits[i] = 0.0f;
            sum += logits[i];
        }
        for (int i = 0; i < n; i++) logits[i] /= sum;
    }
    float coin = random_f32(&s->rng);
    if (p->top_p <= 0.0f || p->top_p >= 1.0f) {
        float cdf = 0.0f;
        for (int i = 0; i < n; i++) {
            cdf += logits[i];
            if (coin < cdf) return i;
        }
        return n - 1;
    }
    /* nucleus: tokens below (1 - top_p) / (n - 1) cannot be in it, so sort only the rest */
    const float cutoff = (1.0f - p->top_p) / (float)(n - 1);
    int n0 = 0;
    for (int i = 0; i < n; i++)
        if (logits[i] >= cutoff) s->pi[n0++] = (prob_index){logits[i], i};
    qsort(s->pi, (size_t)n0, sizeof(prob_index), by_prob_desc);
    float cumulative = 0.0f;
    int last = n0 - 1;
    for (int i = 0; i < n0; i++) {
        cumulative += s->pi[i].prob;
        if (cumulative > p->top_p) { last = i; break; }
    }
    float r = coin * cumulative, cdf = 0.0f;
    for (int i = 0; i <= last; i++) {
        cdf += s->pi[i].prob;
        if (r < cdf) return s->pi[i].index;
    }
    return s->pi[last].index;
}

/* ---- the generate loop ---- */

typedef struct {
    int prompt;          /* index into the prompts, -1 when the slot is free */
    int *history;        /* prompt then generated tokens */
    int n_history, fed;  /* tokens so far, and how many are in the KV cache */
    llm_sampler *sampler;
    char *text;
    size_t text_len, text_cap;
} slot;

/* Appends n bytes (NUL bytes included: text is counted, not terminated) and keeps a
 * terminating NUL after them. */
static void append_text(slot *sl, const char *piece, size_t n) {
    if (sl->text_len + n + 1 > sl->text_cap) {
        sl->text_cap = (sl->text_len + n + 1) * 2;
        sl->text = ts_realloc(sl->text, sl->text_cap);
    }
    if (n) memcpy(sl->text + sl->text_len, piece, n);
    sl->text_len += n;
    sl->text[sl->text_len] = 0;
}

/* First occurrence of needle[nl] in hay[hl] (memmem is not ISO C), or NULL. */
static const char *find_bytes(const char *hay, size_t hl, const char *needle, size_t nl) {
    for (size_t i = 0; nl <= hl && i <= hl - nl; i++) {
        const char *p = memchr(hay + i, needle[0], hl - nl - i + 1);
        if (!p) return NULL;
        i = (size_t)(p - hay);
        if (memcmp(p, needle, nl) == 0) return p;
    }
    return NULL;
}

/* Position of the earliest stop string that now ends within the last `added` bytes. */
static long find_stop(const slot *sl, size_t added, const llm_generation *g) {
    long best = -1;
    for (int i = 0; i < g->n_stop; i++) {
        size_t len = strlen(g->stop[i]);
        if (len == 0) continue;
        size_t from = sl->text_len > added + len ? sl->text_len - added - len : 0;
        const char *hit = find_bytes(sl->text + from, sl->text_len - from, g->stop[i], len);
        if (hit && (best < 0 || hit - sl->text < best)) best = hit - sl->text;
    }
    return best;
}

static bool is_end(const llm *m, const llm_generation *g, int token) {
    if (!g->end_ids) return token == llm_get_config(m)->eos_id;
    for (int i = 0; i < g->n_end; i++)
        if (token == g->end_ids[i]) return true;
    return false;
}

static void finish_slot(slot *sl, llm_output *o, llm_finish why) {
    o->finish = why;
    sl->prompt = -1;
    llm_sampler_destroy(&sl->sampler);
}

int llm_generate(const llm *m, llm_state *s, int n_prompts, const int *const *prompts, const int *prompt_lens,
                 const llm_sampling *sampling, const llm_generation *gen, const llm_detokenizer *detok,
                 llm_output *out) {
    const llm_config *c = llm_get_config(m);
    const int S = llm_state_max_seqs(s), B = llm_state_max_batch(s), ctx = llm_state_max_ctx(s);
    for (int i = 0; i < n_prompts; i++) {
        if (prompt_lens[i] <= 0) return ts_fail("llm_generate: prompt %d is empty (give at least a BOS token)", i);
        if (prompt_lens[i] >= ctx) return ts_fail("llm_generate: prompt %d has %d tokens; the context holds %d", i, prompt_lens[i], ctx);
    }
    memset(out, 0, (size_t)n_prompts * sizeof *out);
    slot *slots = ts_calloc((size_t)S, sizeof(slot));
    int *tok = ts_malloc((size_t)B * sizeof(int)), *seq = ts_malloc((size_t)B * sizeof(int));
    int *pos = ts_malloc((size_t)B * sizeof(int)), *rows = ts_malloc((size_t)B * sizeof(int));
    int *row_slot = ts_malloc((size_t)B * sizeof(int));
    float *logits = ts_malloc((size_t)B * (size_t)c->vocab_size * sizeof(float));
    int next_prompt = 0, active = 0, rc = 0;
    for (int i = 0; i < S; i++) slots[i].prompt = -1;

    for (;;) {
        /* fill free slots with waiting prompts */
        for (int i = 0; i < S && next_prompt < n_prompts; i++) {
            if (slots[i].prompt >= 0) continue;
            slot *sl = &slots[i];
            int p = next_prompt++, len = prompt_lens[p];
            sl->prompt = p;
            free(sl->history);
            sl->history = ts_malloc((size_t)(ctx + 1) * sizeof(int));
            memcpy(sl->history, prompts[p], (size_t)len * sizeof(int));
            sl->n_history = len;
            sl->fed = 0;
            sl->sampler = llm_sampler_new(sampling, c->vocab_size);
            sl->text = NULL;
            sl->text_len = sl->text_cap = 0;
            if (detok) append_text(sl, "", 0);
            active++;
        }
        if (active == 0) break;
        /* pack a batch: every decoding slot's one token first, then prefill chunks */
        int n = 0, n_rows = 0;
        for (int pass = 0; pass < 2; pass++)
            for (int i = 0; i < S && n < B; i++) {
                slot *sl = &slots[i];
                if (sl->prompt < 0) continue;
                int waiting = sl->n_history - sl->fed;
                bool decoding = sl->fed >= prompt_lens[sl->prompt];
                if ((pass == 0) != decoding || waiting <= 0) continue;
                int take = waiting < B - n ? waiting : B - n;
                for (int k = 0; k < take; k++, n++) {
                    tok[n] = sl->history[sl->fed + k];
                    seq[n] = i;
                    pos[n] = sl->fed + k;
                }
                sl->fed += take;
                if (sl->fed == sl->n_history) { rows[n_rows] = n - 1; row_slot[n_rows++] = i; }
            }
        if (llm_forward(m, s, n, tok, seq, pos, n_rows, rows, logits)) { rc = -1; break; }
        for (int r = 0; r < n_rows; r++) {
            slot *sl = &slots[row_slot[r]];
            llm_output *o = &out[sl->prompt];
            float *row = logits + (size_t)r * c->vocab_size;
            if (gen->constraint) {
                int plen = prompt_lens[sl->prompt];
                if (gen->constraint->restrict_logits(gen->constraint->ctx, sl->prompt, sl->history + plen,
                                                     sl->n_history - plen, sl->history[sl->n_history - 1],
                                                     sl->text ? sl->text : "", sl->text_len,
                                                     row, c->vocab_size) != 0) { rc = -1; break; }
            }
            int next = llm_sampler_sample(sl->sampler, row, sl->history, sl->n_history);
            int prev = sl->history[sl->n_history - 1];
            if (is_end(m, gen, next)) { finish_slot(sl, o, LLM_FINISH_END_TOKEN); active--; goto store; }
            sl->history[sl->n_history++] = next;
            int generated = sl->n_history - prompt_lens[sl->prompt];
            if (detok) {
                size_t piece_len = 0;
                const char *piece = detok->piece(detok->ctx, prev, next, &piece_len);
                size_t before = sl->text_len;
                append_text(sl, piece ? piece : "", piece ? piece_len : 0);
                long at = gen->n_stop ? find_stop(sl, sl->text_len - before, gen) : -1;
                if (at >= 0) {
                    sl->text[at] = 0;
                    sl->text_len = (size_t)at;
                    finish_slot(sl, o, LLM_FINISH_STOP); active--; goto store;
                }
            }
            if ((gen->max_tokens > 0 && generated >= gen->max_tokens) || sl->n_history >= ctx) { finish_slot(sl, o, LLM_FINISH_LENGTH); active--; goto store; }
            continue;
        store: {
                int plen = prompt_lens[o - out];
                o->n_tokens = sl->n_history - plen;
                o->tokens = ts_malloc((size_t)(o->n_tokens + 1) * sizeof(int));
                memcpy(o->tokens, sl->history + plen, (size_t)o->n_tokens * sizeof(int));
                o->text = detok ? sl->text : NULL;
                o->text_len = detok ? sl->text_len : 0;
                if (!detok) free(sl->text);
                sl->text = NULL;
            }
        }
        if (rc) break;
    }
    for (int i = 0; i < S; i++) {
        free(slots[i].history);
        free(slots[i].text);
        llm_sampler_destroy(&slots[i].sampler);
    }
    free(slots); free(tok); free(seq); free(pos); free(rows); free(row_slot); free(logits);
    if (rc) llm_output_free(out, n_prompts);
    return rc;
}

void llm_output_free(llm_output *out, int n) {
    for (int i = 0; i < n; i++) {
        free(out[i].tokens);
        free(out[i].text);
        out[i].tokens = NULL;
        out[i].text = NULL;
        out[i].text_len = 0;
    }
}
