/* expand_grammar.c — constrained decoding for closed-language expanders (see expand_grammar.h). */
#include "models/llm/expand_grammar.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the shapes world (tools/shapes/world.py) ---- */

enum { N_SHAPES = 3, N_COLOURS = 6, N_SIZES = 2, N_CELLS = 9, MAX_OBJECTS = 3, MAX_PHRASES = 8 };
static const char *const shape_words[N_SHAPES] = {"circle", "square", "triangle"};
static const char *const shape_plurals[N_SHAPES] = {"circles", "squares", "triangles"};
static const char *const colour_words[N_COLOURS] = {"red", "green", "blue", "yellow", "purple", "orange"};
static const char *const size_words[N_SIZES] = {"small", "large"};
static const char *const cell_words[N_CELLS] = {"top left",    "top center", "top right",
                                                "center left", "center",     "center right",
                                                "bottom left", "bottom center", "bottom right"};

typedef struct { int shape, colour, size, cell; } gobj;          /* -1: not (yet) said */

typedef struct {
    int n;                       /* phrases */
    int need[MAX_PHRASES];       /* objects each phrase asks for */
    gobj want[MAX_PHRASES];      /* what each says about them */
    bool colour_named[N_COLOURS], cell_named[N_CELLS];
    int other_colour;            /* a colour no phrase names, -1 if none */
} gprompt;

/* The decode's progress through "A SIZE COLOUR SHAPE in the POSITION, a ..., on a white background." */
enum { S_START, S_SIZE, S_COLOUR, S_SHAPE, S_POS, S_CONT, S_DONE, S_KINDS };

typedef struct {
    int slot;
    int consumed;                /* bytes of the current slot's choice read so far */
    uint32_t mask;               /* its choices still possible: feasible and agreeing with those bytes */
    int n;                       /* objects finished */
    gobj objs[MAX_OBJECTS], cur;
    bool started, dead;
} gstate;

/* Each slot's choices, separators included, so that no choice is a prefix of another. */
typedef struct { int n; const char *text[N_CELLS]; } gchoices;
static const gchoices choices[S_KINDS] = {
    [S_START] = {1, {"A "}},
    [S_SIZE] = {2, {"small ", "large "}},
    [S_COLOUR] = {6, {"red ", "green ", "blue ", "yellow ", "purple ", "orange "}},
    [S_SHAPE] = {3, {"circle in the ", "square in the ", "triangle in the "}},
    [S_POS] = {9, {"top left,", "top center,", "top right,", "center left,", "center,", "center right,",
                   "bottom left,", "bottom center,", "bottom right,"}},
    [S_CONT] = {2, {" a ", " on a white background."}},
    [S_DONE] = {0, {0}},
};

struct expand_grammar {
    int n;
    gprompt *prompts;
    bool *applies;
    /* per prompt: the last text read and its state */
    char **cached_text;
    size_t *cached_len;
    gstate *cached;
};

/* ---- what a short prompt asks for ---- */

static int word_in(const char *w, const char *const *list, int n) {
    for (int i = 0; i < n; i++)
        if (strcmp(w, list[i]) == 0) return i;
    return -1;
}

/* Splits lower-cased text into words; "," is a word of its own; a final "." is dropped. */
static int split_words(const char *text, char words[][16], int max) {
    int n = 0;
    for (const char *p = text; *p;) {
        if (isspace((unsigned char)*p)) { p++; continue; }
        if (*p == ',') { if (n == max) return -1; strcpy(words[n++], ","); p++; continue; }
        if (*p == '.' && p[1 + strspn(p + 1, " \t\r\n")] == 0) break;
        if (!isalpha((unsigned char)*p)) return -1;
        size_t len = 0;
        char w[16];
        while (isalpha((unsigned char)*p)) {
            if (len + 1 >= sizeof w) return -1;
            w[len++] = (char)tolower((unsigned char)*p++);
        }
        w[len] = 0;
        if (n == max) return -1;
        strcpy(words[n++], w);
    }
    return n;
}

/* Reads a prompt in the world's short-caption grammar; false if it is not one. */
static bool read_prompt(const char *text, gprompt *p) {
    char words[64][16];
    int nw = split_words(text, words, 64);
    memset(p, 0, sizeof *p);
    if (nw <= 0) return false;
    int total = 0;
    for (int i = 0; i < nw;) {
        if (p->n == MAX_PHRASES) return false;
        gobj *g = &p->want[p->n];
        *g = (gobj){-1, -1, -1, -1};
        const char *w = words[i++];
        int count = !strcmp(w, "a") || !strcmp(w, "an") || !strcmp(w, "one") ? 1
                    : !strcmp(w, "two") ? 2 : !strcmp(w, "three") ? 3 : 0;
        if (!count) return false;
        if (i < nw && (g->size = word_in(words[i], size_words, N_SIZES)) >= 0) i++;
        if (i < nw && (g->colour = word_in(words[i], colour_words, N_COLOURS)) >= 0) i++;
        if (i == nw) return false;
        g->shape = word_in(words[i], count == 1 ? shape_words : shape_plurals, N_SHAPES);
        if (g->shape < 0) return false;
        i++;
        if (i < nw && !strcmp(words[i], "in")) {              /* "in the top left", "in the center" */
            if (i + 2 >= nw || strcmp(words[i + 1], "the")) return false;
            i += 2;
            if (i + 1 < nw) {
                char two[40];
                snprintf(two, sizeof two, "%s %s", words[i], words[i + 1]);
                if ((g->cell = word_in(two, cell_words, N_CELLS)) >= 0) i += 2;
            }
            if (g->cell < 0) {
                if ((g->cell = word_in(words[i], cell_words, N_CELLS)) < 0) return false;
                i++;
            }
        }
        p->need[p->n++] = count;
        total += count;
        if (i < nw) {                 /* a separator: ",", "and" or ", and" */
            bool sep = false;
            if (!strcmp(words[i], ",")) { i++; sep = true; }
            if (i < nw && !strcmp(words[i], "and")) { i++; sep = true; }
            if (!sep || i == nw) return false;
        }
    }
    if (total > MAX_OBJECTS) return false;
    for (int j = 0; j < p->n; j++) {
        if (p->want[j].colour >= 0) p->colour_named[p->want[j].colour] = true;
        if (p->want[j].cell >= 0) p->cell_named[p->want[j].cell] = true;
    }
    p->other_colour = -1;
    for (int c = 0; c < N_COLOURS && p->other_colour < 0; c++)
        if (!p->colour_named[c]) p->other_colour = c;
    return true;
}

/* ---- can a partial scene still be made to mean the prompt? ---- */

static bool fits(const gobj *o, const gobj *w) {
    return (w->shape < 0 || w->shape == o->shape) && (w->colour < 0 || w->colour == o->colour) &&
           (w->size < 0 || w->size == o->size) && (w->cell < 0 || w->cell == o->cell);
}

static int phrases_fitted(const gprompt *p, const gobj *o) {
    int k = 0;
    for (int j = 0; j < p->n; j++) k += fits(o, &p->want[j]);
    return k;
}

/*
 * True when objs[0..n) plus a completion of *cur (when not NULL) plus at most `room` more
 * objects can make every phrase fitted by exactly its count of objects, no object fitting
 * two phrases, all in distinct cells, and no look-alike of a placed phrase elsewhere that
 * no other phrase asks for ("a red square in the top left" with two more red squares
 * elsewhere is true in the world's reading, but it hedges the position instead of keeping it). Values no phrase names are interchangeable, so only
 * one of them is tried (one colour, one free cell); everything else is tried in full.
 */
static bool feasible(const gprompt *p, gobj *objs, int n, const gobj *cur, int room) {
    if (cur) {
        bool used[N_CELLS] = {0};
        for (int k = 0; k < n; k++) used[objs[k].cell] = true;
        for (int shape = 0; shape < N_SHAPES; shape++) {
            if (cur->shape >= 0 && shape != cur->shape) continue;
            for (int colour = 0; colour < N_COLOURS; colour++) {
                if (cur->colour >= 0 ? colour != cur->colour : !p->colour_named[colour] && colour != p->other_colour)
                    continue;
                for (int size = 0; size < N_SIZES; size++) {
                    if (cur->size >= 0 && size != cur->size) continue;
                    bool tried_free_cell = false;
                    for (int cell = 0; cell < N_CELLS; cell++) {
                        if (used[cell] || (cur->cell >= 0 && cell != cur->cell)) continue;
                        if (cur->cell < 0 && !p->cell_named[cell]) {
                            if (tried_free_cell) continue;
                            tried_free_cell = true;
                        }
                        gobj o = {shape, colour, size, cell};
                        if (phrases_fitted(p, &o) > 1) continue;
                        objs[n] = o;
                        if (feasible(p, objs, n + 1, NULL, room)) return true;
                    }
                }
            }
        }
        return false;
    }
    int deficit = 0, first = -1;
    for (int j = 0; j < p->n; j++) {
        int have = 0, alike = 0;
        gobj anywhere = p->want[j];
        anywhere.cell = -1;
        for (int k = 0; k < n; k++) {
            have += fits(&objs[k], &p->want[j]);
            alike += fits(&objs[k], &anywhere) && (fits(&objs[k], &p->want[j]) || !phrases_fitted(p, &objs[k]));
        }
        if (have > p->need[j] || alike > p->need[j]) return false;
        if (have < p->need[j] && first < 0) first = j;
        deficit += p->need[j] - have;
    }
    if (deficit == 0) return true;
    if (deficit > room || n >= MAX_OBJECTS) return false;
    return feasible(p, objs, n, &p->want[first], room - 1);    /* an object for the first short phrase */
}

/* ---- reading the decode ---- */

/* The state after choice k of the current slot (not checked). */
static void apply(gstate *s, int k) {
    switch (s->slot) {
    case S_START: s->cur = (gobj){-1, -1, -1, -1}; s->slot = S_SIZE; break;
    case S_SIZE: s->cur.size = k; s->slot = S_COLOUR; break;
    case S_COLOUR: s->cur.colour = k; s->slot = S_SHAPE; break;
    case S_SHAPE: s->cur.shape = k; s->slot = S_POS; break;
    case S_POS: s->cur.cell = k; s->objs[s->n++] = s->cur; s->slot = S_CONT; break;
    case S_CONT:
        if (k == 0) { s->cur = (gobj){-1, -1, -1, -1}; s->slot = S_SIZE; }
        else s->slot = S_DONE;
        break;
    }
}

/* Whether the state can still be finished faithfully. */
static bool state_feasible(const gprompt *p, const gstate *s) {
    gobj objs[MAX_OBJECTS + 1] = {{0}};
    memcpy(objs, s->objs, sizeof s->objs);
    switch (s->slot) {
    case S_START: return feasible(p, objs, 0, &(gobj){-1, -1, -1, -1}, MAX_OBJECTS - 1);
    case S_SIZE: case S_COLOUR: case S_SHAPE: case S_POS: {
        for (int k = 0; k < s->n; k++)
            if (s->cur.cell >= 0 && objs[k].cell == s->cur.cell) return false;
        return feasible(p, objs, s->n, &s->cur, MAX_OBJECTS - s->n - 1);
    }
    case S_CONT: {
        for (int k = 0; k + 1 < s->n; k++)
            if (objs[k].cell == objs[s->n - 1].cell) return false;
        if (phrases_fitted(p, &objs[s->n - 1]) > 1) return false;
        return feasible(p, objs, s->n, NULL, MAX_OBJECTS - s->n);
    }
    default: return feasible(p, objs, s->n, NULL, 0);
    }
}

/* Enters the state's slot: its choices that keep it feasible. */
static void enter(const gprompt *p, gstate *s) {
    s->consumed = 0;
    s->mask = 0;
    if (s->slot == S_DONE) return;
    for (int k = 0; k < choices[s->slot].n; k++) {
        if (s->slot == S_CONT && k == 0 && s->n >= MAX_OBJECTS) continue;
        gstate t = *s;
        apply(&t, k);
        if (state_feasible(p, &t)) s->mask |= 1u << k;
    }
    if (!s->mask) s->dead = true;
}

static void feed(const gprompt *p, gstate *s, char c) {
    if (s->dead) return;
    if (s->slot == S_DONE) { s->dead = true; return; }
    if (s->slot == S_START && !s->started && c == ' ') return;
    s->started = true;
    const gchoices *ch = &choices[s->slot];
    uint32_t mask = 0;
    int complete = -1;
    for (int k = 0; k < ch->n; k++) {
        if (!(s->mask >> k & 1u) || ch->text[k][s->consumed] != c) continue;
        mask |= 1u << k;
        if (ch->text[k][s->consumed + 1] == 0) complete = k;
    }
    if (!mask) { s->dead = true; return; }
    s->mask = mask;
    s->consumed++;
    if (complete >= 0) {
        apply(s, complete);
        enter(p, s);
    }
}

static void start(const gprompt *p, gstate *s) {
    memset(s, 0, sizeof *s);
    s->slot = S_START;
    enter(p, s);
}

static grammar_status status_of(const gstate *s) {
    return s->dead ? GRAMMAR_DEAD : s->slot == S_DONE ? GRAMMAR_COMPLETE : GRAMMAR_PREFIX;
}

/* ---- the object ---- */

int expand_grammar_check_name(const char *name) {
    if (name && (!strcmp(name, "none") || !strcmp(name, "shapes"))) return 0;
    return ts_fail("expander grammar '%s' is not known (known: none, shapes)", name ? name : "(null)");
}

expand_grammar *expand_grammar_new(const char *name, int n, const char *const *prompts) {
    if (expand_grammar_check_name(name) != 0) return NULL;
    expand_grammar *g = ts_calloc(1, sizeof *g);
    g->n = n;
    g->prompts = ts_calloc((size_t)(n ? n : 1), sizeof *g->prompts);
    g->applies = ts_calloc((size_t)(n ? n : 1), sizeof *g->applies);
    g->cached_text = ts_calloc((size_t)(n ? n : 1), sizeof *g->cached_text);
    g->cached_len = ts_calloc((size_t)(n ? n : 1), sizeof *g->cached_len);
    g->cached = ts_calloc((size_t)(n ? n : 1), sizeof *g->cached);
    for (int i = 0; i < n && strcmp(name, "none"); i++) {
        if (!read_prompt(prompts[i], &g->prompts[i])) continue;
        gstate s;
        start(&g->prompts[i], &s);
        g->applies[i] = !s.dead;     /* phrases no scene satisfies: left to the check */
    }
    return g;
}

void expand_grammar_destroy(expand_grammar **self) {
    if (!self || !*self) return;
    expand_grammar *g = *self;
    for (int i = 0; i < g->n; i++) free(g->cached_text[i]);
    free(g->cached_text);
    free(g->cached_len);
    free(g->cached);
    free(g->prompts);
    free(g->applies);
    free(g);
    *self = NULL;
}

bool expand_grammar_applies(const expand_grammar *g, int i) { return i >= 0 && i < g->n && g->applies[i]; }

grammar_status expand_grammar_status(const expand_grammar *g, int i, const char *text, size_t len) {
    if (!expand_grammar_applies(g, i)) return GRAMMAR_PREFIX;
    gstate s;
    start(&g->prompts[i], &s);
    for (size_t k = 0; k < len && !s.dead; k++) feed(&g->prompts[i], &s, text[k]);
    return status_of(&s);
}

grammar_status expand_grammar_status_after(expand_grammar *g, int i, const char *text, size_t len,
                                           const char *piece, size_t piece_len) {
    if (!expand_grammar_applies(g, i)) return GRAMMAR_PREFIX;
    const gprompt *p = &g->prompts[i];
    if (!g->cached_text[i] || g->cached_len[i] != len || memcmp(g->cached_text[i], text, len) != 0) {
        gstate s;
        start(p, &s);
        for (size_t k = 0; k < len && !s.dead; k++) feed(p, &s, text[k]);
        free(g->cached_text[i]);
        g->cached_text[i] = ts_malloc(len + 1);
        memcpy(g->cached_text[i], text, len);
        g->cached_len[i] = len;
        g->cached[i] = s;
    }
    gstate s = g->cached[i];
    for (size_t k = 0; k < piece_len && !s.dead; k++) feed(p, &s, piece[k]);
    return status_of(&s);
}
