/*
 * expand_check.c — the keep-words faithfulness check of prompt expansions and the retry
 * loop around an expander (see expand_check.h).
 *
 * Words come from utf8proc (case folding, letter and number categories); the stop list,
 * plural rule and position words are ours: no library we depend on has an English stemmer,
 * and the check only needs the simple cases the header names.
 */
#include "models/llm/expand_check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

expand_check_options expand_check_default_options(void) {
    return (expand_check_options){.kind = EXPAND_CHECK_NONE, .retries = 4, .retry_temperature = 0.8f};
}

int expand_check_parse(const char *name, expand_check_kind *out) {
    if (!name || !*name || !strcmp(name, "none")) *out = EXPAND_CHECK_NONE;
    else if (!strcmp(name, "keep-words")) *out = EXPAND_CHECK_KEEP_WORDS;
    else return ts_fail("expand.check: '%s' is not none or keep-words", name);
    return 0;
}

/* ---- words ------------------------------------------------------------------------ */

enum { WORD, NUMBER, POSITION, ARTICLE };
enum { WORD_MAX = 48 };

typedef struct {
    char text[WORD_MAX];    /* normalised: stem, "top left", or the number's digits */
    int kind, clause, value;
    bool plural;            /* a WORD that was plural before normalisation */
} word;

typedef struct {
    word *v;
    int n, cap;
} words;

static const char *const stop_words[] = {
    "a", "an", "the", "and", "or", "but", "nor", "of", "in", "on", "at", "to", "with", "by", "for", "from", "as",
    "into", "onto", "is", "are", "was", "were", "be", "been", "being", "am", "it", "its", "this", "that",
    "these", "those", "there", "here", "some", "any", "very", "each", "every", "while", "has", "have", "had",
    "having", "their", "his", "her", "hers", "them", "they", "he", "she", "we", "you", "i", "my", "your", "our",
    "me", "us", "him", "who", "whom", "which", "what", "whose", "when", "how", "than", "then", "so", "such",
    "too", "also", "just", "only", "both", "not", "no", "do", "does", "did", "can", "could", "will", "would",
    "should", "may", "might", "must", "shall", "s", "t", "itself", "all", "other", "another",
};
static const char *const number_words[] = {"zero", "one", "two", "three", "four", "five", "six", "seven",
                                            "eight", "nine", "ten", "eleven", "twelve"};
/* Position words; "top", "bottom", "center" followed by "left", "right", "center" make one. */
static const char *const position_words[] = {"left", "right", "top", "bottom", "center", "above", "below", "under",
                                              "underneath", "beneath", "over", "behind", "beside", "front", "near",
                                              "between", "inside", "outside", "corner"};
static const char *const synonyms[][2] = {
    {"centre", "center"}, {"middle", "center"}, {"upper", "top"}, {"lower", "bottom"},
    {"colour", "color"}, {"colours", "colors"}, {"grey", "gray"}, {"centered", "center"}, {"centred", "center"},
};

static bool in_list(const char *w, const char *const *list, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!strcmp(w, list[i])) return true;
    return false;
}
#define IN(w, list) in_list(w, list, sizeof list / sizeof list[0])

/* Plural to singular for the regular cases: puppies -> puppy, boxes -> box, circles -> circle. */
static void singular(char *w) {
    size_t n = strlen(w);
    if (n > 4 && !strcmp(w + n - 3, "ies")) strcpy(w + n - 3, "y");
    else if (n > 4 && (!strcmp(w + n - 4, "sses") || !strcmp(w + n - 4, "shes") || !strcmp(w + n - 4, "ches") ||
                       !strcmp(w + n - 3, "xes") || !strcmp(w + n - 3, "zes") || !strcmp(w + n - 4, "uses")))
        w[n - 2] = '\0';
    else if (n > 3 && w[n - 1] == 's' && w[n - 2] != 's' && w[n - 2] != 'u' && w[n - 2] != 'i') w[n - 1] = '\0';
}

static void push(words *ws, const char *text, int kind, int clause, int value) {
    if (ws->n == ws->cap) ws->v = ts_realloc(ws->v, (size_t)(ws->cap = ws->cap ? 2 * ws->cap : 32) * sizeof *ws->v);
    word *w = &ws->v[ws->n++];
    snprintf(w->text, sizeof w->text, "%s", text);
    w->kind = kind, w->clause = clause, w->value = value;
}

/* One raw word (case folded) into the list: dropped, a number, a position or a stem. */
static void add_word(words *ws, char *w, int clause) {
    for (size_t i = 0; i < sizeof synonyms / sizeof synonyms[0]; i++)
        if (!strcmp(w, synonyms[i][0])) snprintf(w, WORD_MAX, "%s", synonyms[i][1]);
    if (!strcmp(w, "a") || !strcmp(w, "an")) {   /* "a red circle" is one */
        push(ws, w, ARTICLE, clause, 1);
        return;
    }
    char *end;
    long v = strtol(w, &end, 10);
    if (*w && !*end) {
        char digits[24];
        snprintf(digits, sizeof digits, "%ld", v);
        push(ws, digits, NUMBER, clause, (int)v);
        return;
    }
    for (int i = 0; i < (int)(sizeof number_words / sizeof number_words[0]); i++)
        if (!strcmp(w, number_words[i])) {
            char digits[8];
            snprintf(digits, sizeof digits, "%d", i);
            push(ws, digits, NUMBER, clause, i);
            return;
        }
    if (IN(w, position_words)) {
        word *prev = ws->n ? &ws->v[ws->n - 1] : NULL;
        bool pair = (!strcmp(w, "left") || !strcmp(w, "right") || !strcmp(w, "center")) && prev &&
                    prev->kind == POSITION && prev->clause == clause &&
                    (!strcmp(prev->text, "top") || !strcmp(prev->text, "bottom") || !strcmp(prev->text, "center"));
        if (pair) {
            if (strcmp(prev->text, w) != 0) {   /* "center center" is "center" */
                char both[WORD_MAX];
                snprintf(both, sizeof both, "%s %s", prev->text, w);
                snprintf(prev->text, sizeof prev->text, "%s", both);
            }
        } else push(ws, w, POSITION, clause, 0);
        return;
    }
    if (IN(w, stop_words) || strlen(w) < 2) return;
    size_t len = strlen(w);
    singular(w);
    push(ws, w, WORD, clause, 0);
    ws->v[ws->n - 1].plural = strlen(w) < len;
}

/* The words of a text with their clause numbers; clauses end at , ; : . ! ? and "and". */
static int split_words(const char *text, words *out) {
    memset(out, 0, sizeof *out);
    utf8proc_uint8_t *folded = NULL;
    utf8proc_ssize_t len = utf8proc_map((const utf8proc_uint8_t *)text, 0, &folded,
                                        UTF8PROC_NULLTERM | UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_CASEFOLD);
    if (len < 0) return ts_fail("expand check: text is not UTF-8 (%s)", utf8proc_errmsg(len));
    char w[WORD_MAX];
    int wl = 0, clause = 0;
    bool too_long = false;
    for (utf8proc_ssize_t i = 0; i <= len;) {
        utf8proc_int32_t cp = 0;
        utf8proc_ssize_t step = i < len ? utf8proc_iterate(folded + i, len - i, &cp) : 1;
        if (step <= 0) step = 1, cp = ' ';
        utf8proc_category_t cat = i < len ? utf8proc_category(cp) : UTF8PROC_CATEGORY_ZS;
        bool letter = (cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO) ||
                      (cat >= UTF8PROC_CATEGORY_ND && cat <= UTF8PROC_CATEGORY_NO) ||
                      (cat >= UTF8PROC_CATEGORY_MN && cat <= UTF8PROC_CATEGORY_ME);
        if (letter) {
            if (wl + step < WORD_MAX) memcpy(w + wl, folded + i, (size_t)step), wl += (int)step;
            else too_long = true;
        } else {
            if (wl && !too_long) {
                w[wl] = '\0';
                if (!strcmp(w, "and")) clause++;
                else add_word(out, w, clause);
            }
            wl = 0, too_long = false;
            if (cp == ',' || cp == ';' || cp == ':' || cp == '.' || cp == '!' || cp == '?') clause++;
        }
        i += step;
    }
    free(folded);
    return 0;
}

/* ---- the check -------------------------------------------------------------------- */

static int count_stem(const words *e, const char *stem) {
    int n = 0;
    for (int i = 0; i < e->n; i++) n += e->v[i].kind == WORD && !strcmp(e->v[i].text, stem);
    return n;
}

/* A mention: an article or a number and the content words right after it in its clause
 * ("a large red circle", "two dogs playing"); *count its number, *where the position right
 * after the words, if any ("a red circle in the top left"). Returns the index after the words. */
static int mention_at(const words *ws, int i, int *count, const char **where) {
    *count = ws->v[i].kind == ARTICLE || ws->v[i].kind == NUMBER ? ws->v[i].value : 0;
    int j = i + 1;
    while (j < ws->n && ws->v[j].kind == WORD && ws->v[j].clause == ws->v[i].clause) j++;
    *where = j < ws->n && ws->v[j].kind == POSITION && ws->v[j].clause == ws->v[i].clause ? ws->v[j].text : NULL;
    return j;
}

/* How many things the expansion's mentions count that carry every word of p's mention
 * [from, to) and its position, if it has one: "a large red circle ..., a small red circle"
 * has two for "a red circle". */
static int mentions_fitting(const words *p, int from, int to, const char *where, const words *e) {
    int total = 0;
    for (int i = 0; i < e->n; i++) {
        const char *at;
        int count, end = mention_at(e, i, &count, &at);
        if (!count || end == i + 1 || (where && (!at || strcmp(at, where)))) continue;
        bool all = true;
        for (int k = from; k < to && all; k++) {
            bool found = false;
            for (int j = i + 1; j < end && !found; j++) found = !strcmp(e->v[j].text, p->v[k].text);
            all = found;
        }
        total += all ? count : 0;
    }
    return total;
}

/* Is position p in a clause of e that also names every stem of p's words [from, to)? */
static bool position_kept(const words *e, const char *p, const words *pw, int from, int to) {
    for (int i = 0; i < e->n; i++) {
        if (e->v[i].kind != POSITION || strcmp(e->v[i].text, p)) continue;
        bool all = true;
        for (int k = from; k < to && all; k++) {
            if (pw->v[k].kind != WORD) continue;
            bool found = false;
            for (int j = 0; j < e->n && !found; j++)
                found = e->v[j].clause == e->v[i].clause && e->v[j].kind == WORD && !strcmp(e->v[j].text, pw->v[k].text);
            all = found;
        }
        if (all) return true;
    }
    return false;
}

bool expand_check_keeps_words(const char *prompt, const char *expansion, char **missing) {
    words p, e;
    if (missing) *missing = NULL;
    if (split_words(prompt, &p) != 0 || split_words(expansion, &e) != 0) {
        free(p.v);
        if (missing) *missing = ts_strdup("(text is not UTF-8)");
        return false;
    }
    char lost[2 * WORD_MAX + 16] = "";
    for (int i = 0; i < p.n && !lost[0]; i++) {
        const word *w = &p.v[i];
        if (w->kind == WORD && !count_stem(&e, w->text)) snprintf(lost, sizeof lost, "%s", w->text);
        else if (w->kind == NUMBER) {
            /* Its noun: the first plural among the content words right after it in its
             * clause ("two small red circles", "two dogs playing"), else the last of them. */
            const char *noun = NULL;
            for (int j = i + 1; j < p.n && p.v[j].kind == WORD && p.v[j].clause == w->clause; j++) {
                noun = p.v[j].text;
                if (p.v[j].plural) break;
            }
            bool said = false;
            for (int j = 0; j < e.n; j++) said |= e.v[j].kind == NUMBER && e.v[j].value == w->value;
            if (!said && !(noun && count_stem(&e, noun) >= w->value))
                snprintf(lost, sizeof lost, "%s%s%s", w->text, noun ? " " : "", noun ? noun : "");
        } else if (w->kind == POSITION) {
            /* Its words: the content words before it in its clause back to another position,
             * else those after it ("a red square in the top left", "left of a tree"). */
            int from = i, to = i;
            while (from > 0 && p.v[from - 1].clause == w->clause && p.v[from - 1].kind != POSITION) from--;
            bool before = false;
            for (int k = from; k < i; k++) before |= p.v[k].kind == WORD;
            if (!before) {
                from = to = i + 1;
                while (to < p.n && p.v[to].clause == w->clause && p.v[to].kind != POSITION) to++;
            }
            if (!position_kept(&e, w->text, &p, from, to)) {
                int used = snprintf(lost, sizeof lost, "%s (of", w->text);
                for (int k = from; k < to && used < (int)sizeof lost; k++)
                    if (p.v[k].kind == WORD) used += snprintf(lost + used, sizeof lost - (size_t)used, " %s", p.v[k].text);
                if (used < (int)sizeof lost) snprintf(lost + used, sizeof lost - (size_t)used, ")");
            }
        }
    }
    /* Not more than the prompt asked for: "a red circle" is not two red circles. */
    for (int i = 0; i < p.n && !lost[0]; i++) {
        const char *where;
        int count, end = mention_at(&p, i, &count, &where);
        if (!count || end == i + 1) continue;
        int fitting = mentions_fitting(&p, i + 1, end, where, &e);
        if (fitting > count) {
            int used = snprintf(lost, sizeof lost, "%d", count);
            for (int k = i + 1; k < end && used < (int)sizeof lost; k++)
                used += snprintf(lost + used, sizeof lost - (size_t)used, " %s", p.v[k].text);
            if (used < (int)sizeof lost) snprintf(lost + used, sizeof lost - (size_t)used, " (%d named)", fitting);
        }
    }
    free(p.v), free(e.v);
    if (lost[0] && missing) *missing = ts_strdup(lost);
    return !lost[0];
}

/* ---- the retry loop --------------------------------------------------------------- */

llm_sampling expand_retry_sampling(const llm_sampling *base, int attempt, float retry_temperature) {
    llm_sampling s = *base;
    s.seed = (base->seed ? base->seed : 1) + (uint64_t)attempt * 0x9E3779B97F4A7C15ull;
    if (s.temperature <= 0) s.temperature = retry_temperature > 0 ? retry_temperature : 0.8f;
    return s;
}

int expand_checked(expand_attempt_fn run, void *ctx, const expand_check_options *o, int n,
                   const char *const *prompts, expansion *out) {
    if (run(ctx, n, prompts, 0, out) != 0) return -1;
    if (!o || o->kind == EXPAND_CHECK_NONE || n == 0) return 0;
    int *pending = ts_malloc((size_t)n * sizeof *pending), waiting = 0;
    for (int i = 0; i < n; i++)
        if (out[i].verdict == UPSAMPLE_OK && !expand_check_keeps_words(prompts[i], out[i].text, NULL)) pending[waiting++] = i;
    const char **again = ts_malloc((size_t)n * sizeof *again);
    expansion *tries = ts_calloc((size_t)n, sizeof *tries);
    int rc = 0;
    for (int attempt = 1; attempt <= o->retries && waiting > 0; attempt++) {
        for (int k = 0; k < waiting; k++) again[k] = prompts[pending[k]];
        if (run(ctx, waiting, again, attempt, tries) != 0) { rc = -1; break; }
        int still = 0;
        for (int k = 0; k < waiting; k++) {
            expansion *x = &out[pending[k]], *t = &tries[k];
            if (t->verdict == UPSAMPLE_OK && expand_check_keeps_words(prompts[pending[k]], t->text, NULL)) {
                expansion_free(x, 1);
                *x = *t;
            } else {
                free(x->raw);                  /* keep the latest reply for the record */
                x->raw = t->raw, t->raw = NULL;
                expansion_free(t, 1);
                pending[still++] = pending[k];
            }
            memset(t, 0, sizeof *t);
        }
        waiting = still;
    }
    for (int k = 0; k < waiting && rc == 0; k++) {
        expansion *x = &out[pending[k]];
        free(x->text);
        x->text = ts_strdup(prompts[pending[k]]);
        x->verdict = UPSAMPLE_UNFAITHFUL;
    }
    free(pending), free(again), free(tries);
    return rc;
}

int expand_llm_try(llm_expander *e, int n, const char *const *prompts, int attempt, float retry_temperature,
                   expansion *out) {
    if (attempt == 0) return llm_expander_run(e, n, prompts, out);
    llm_sampling s = expand_retry_sampling(llm_expander_sampling(e), attempt, retry_temperature);
    return llm_expander_run_with(e, n, prompts, &s, out);
}

typedef struct {
    llm_expander *e;
    float retry_temperature;
} llm_try_context;

static int llm_try(void *ctx, int n, const char *const *prompts, int attempt, expansion *out) {
    llm_try_context *c = ctx;
    return expand_llm_try(c->e, n, prompts, attempt, c->retry_temperature, out);
}

int expand_checked_llm(llm_expander *e, const expand_check_options *o, int n, const char *const *prompts,
                       expansion *out) {
    llm_try_context c = {e, o ? o->retry_temperature : 0};
    return expand_checked(llm_try, &c, o, n, prompts, out);
}
