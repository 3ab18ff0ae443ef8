/*
 * test_expand_grammar.c — the expander's grammar-constrained decoding (models/llm/
 * expand_grammar.h) against the reference tools/shapes/expansion_check.py, written from the
 * world's definition (world.py): tests/fixtures/shapes/grammar.tsv pairs 200 short prompts
 * of world seed 3 with candidate expansions (the prompt's own descriptive caption, the next
 * scene's, and the own one with an object moved, recoloured, resized, dropped or added) and
 * the reference's verdict (tools/shapes/make_grammar_fixtures.py).
 *   - the grammar takes every fixture prompt;
 *   - a whole candidate is complete exactly when the reference says it keeps its prompt;
 *   - every prefix of a kept candidate is a live prefix (the decode is never steered away
 *     from a faithful expansion), and a not-kept one dies at some point;
 *   - asking per piece (status_after, cached) agrees with reading the whole text;
 *   - prompts outside the grammar are left alone; unknown grammar names are errors.
 */
#include "models/llm/expand_grammar.h"
#include "tests/test.h"

#include <stdlib.h>
#include <string.h>

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = ts_malloc((size_t)n + 1);
    size_t got = fread(buf, 1, (size_t)n, f);
    buf[got] = '\0';
    fclose(f);
    return buf;
}

int main(void) {
    TEST_BEGIN();
    const char *fixtures = getenv("TESSERA_FIXTURES");
    if (!fixtures) fixtures = "tests/fixtures";
    char path[1024];
    snprintf(path, sizeof path, "%s/shapes/grammar.tsv", fixtures);
    char *text = slurp(path);
    CHECK(text != NULL, "cannot read %s", path);
    if (!text) return TEST_END();

    enum { MAX = 4096 };
    const char **shorts = ts_calloc(MAX, sizeof *shorts), **cands = ts_calloc(MAX, sizeof *cands);
    int *want = ts_calloc(MAX, sizeof *want), n = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line && n < MAX; line = strtok_r(NULL, "\n", &save)) {
        char *t1 = strchr(line, '\t'), *t2 = t1 ? strchr(t1 + 1, '\t') : NULL;
        CHECK(t1 && t2, "fixture line %d has no two tabs", n + 1);
        if (!t1 || !t2) break;
        *t1 = *t2 = 0;
        shorts[n] = line, cands[n] = t1 + 1, want[n] = atoi(t2 + 1);
        n++;
    }
    CHECK(n > 1000, "only %d fixture pairs", n);

    expand_grammar *g = expand_grammar_new("shapes", n, shorts);
    CHECK(g != NULL, "%s", ts_last_error());
    if (!g) return TEST_END();
    int applies = 0, agree = 0, kept = 0, prefix_ok = 0, dead_ok = 0, after_ok = 0;
    for (int i = 0; i < n; i++) {
        applies += expand_grammar_applies(g, i);
        /* as generated: with the leading space of the first token */
        char buf[512];
        snprintf(buf, sizeof buf, " %s", cands[i]);
        size_t len = strlen(buf);
        grammar_status st = expand_grammar_status(g, i, buf, len);
        bool complete = st == GRAMMAR_COMPLETE;
        if (complete == (want[i] == 1)) agree++;
        else CHECK(false, "'%s' => '%s': grammar says %d, the reference %d", shorts[i], cands[i], (int)st, want[i]);
        if (want[i]) {
            kept++;
            bool live = true;
            for (size_t k = 0; k < len && live; k++) live = expand_grammar_status(g, i, buf, k) != GRAMMAR_DEAD;
            if (live) prefix_ok++;
            else CHECK(false, "a prefix of the kept '%s' (for '%s') is dead", cands[i], shorts[i]);
        } else if (st == GRAMMAR_DEAD) dead_ok++;
        /* per piece, in chunks of 5 bytes as a decoder would ask */
        grammar_status last = GRAMMAR_PREFIX;
        for (size_t k = 0; k < len; k += 5) {
            size_t m = len - k < 5 ? len - k : 5;
            last = expand_grammar_status_after(g, i, buf, k, buf + k, m);
            if (last == GRAMMAR_DEAD) break;
        }
        if (last == st) after_ok++;
    }
    CHECK(applies == n, "the grammar takes %d of %d world prompts", applies, n);
    CHECK(agree == n, "%d of %d verdicts agree with the reference", agree, n);
    CHECK(kept > 300 && kept < n - 300, "fixtures: %d of %d kept (both kinds needed)", kept, n);
    CHECK(prefix_ok == kept, "%d of %d kept expansions have only live prefixes", prefix_ok, kept);
    CHECK(dead_ok == n - kept, "%d of %d not-kept expansions are dead", dead_ok, n - kept);
    CHECK(after_ok == n, "status_after agrees with status on %d of %d", after_ok, n);
    printf("grammar: %d pairs, %d kept; verdicts agree %d, live prefixes %d\n", n, kept, agree, prefix_ok);
    expand_grammar_destroy(&g);

    /* outside the grammar: left unconstrained */
    const char *odd[] = {"a red dog", "three circles and a square", "a red square in the top left and a blue circle in the top left",
                         "a red circle, on a white background", "two red circle"};
    g = expand_grammar_new("shapes", 5, odd);
    for (int i = 0; i < 5; i++) {
        CHECK(!expand_grammar_applies(g, i), "'%s' should be outside the grammar", odd[i]);
        CHECK(expand_grammar_status(g, i, "anything", 8) == GRAMMAR_PREFIX, "unconstrained prompt %d", i);
    }
    expand_grammar_destroy(&g);
    /* "none": nothing constrained */
    g = expand_grammar_new("none", 1, (const char *[]){"a red circle"});
    CHECK(g && !expand_grammar_applies(g, 0), "grammar none constrains");
    expand_grammar_destroy(&g);
    /* the decode's alternatives at a point: after "A small red circle in the top left," only
     * the end fits "a red circle"; another red circle is refused */
    g = expand_grammar_new("shapes", 1, (const char *[]){"a red circle"});
    const char *s = " A small red circle in the top left,";
    CHECK(expand_grammar_status_after(g, 0, s, strlen(s), " on a white background.", 23) == GRAMMAR_COMPLETE, "end");
    CHECK(expand_grammar_status_after(g, 0, s, strlen(s), " a large red circle", 19) == GRAMMAR_DEAD, "second red circle");
    CHECK(expand_grammar_status_after(g, 0, s, strlen(s), " a large blue circle in the center,", 35) == GRAMMAR_PREFIX, "another object");
    CHECK(expand_grammar_status_after(g, 0, s, strlen(s), " a large blue circle in the top left", 36) == GRAMMAR_DEAD, "same cell");
    expand_grammar_destroy(&g);
    /* one object cannot serve two phrases ("a large circle and a yellow circle" is two objects) */
    g = expand_grammar_new("shapes", 1, (const char *[]){"a large circle and a yellow circle"});
    s = " A large yellow circle in the center, on a white background.";
    CHECK(expand_grammar_status(g, 0, s, strlen(s)) == GRAMMAR_DEAD, "one object for two phrases");
    s = " A large yellow circle in the center,";
    CHECK(expand_grammar_status(g, 0, s, strlen(s)) == GRAMMAR_DEAD, "no second object can mend it");
    s = " A large red circle in the center, a small yellow circle in the top left, on a white background.";
    CHECK(expand_grammar_status(g, 0, s, strlen(s)) == GRAMMAR_COMPLETE, "two objects");
    expand_grammar_destroy(&g);
    CHECK(expand_grammar_new("lark", 1, (const char *[]){"x"}) == NULL && strstr(ts_last_error(), "lark"),
          "unknown grammar names itself: %s", ts_last_error());

    free(shorts); free(cands); free(want); free(text);
    return TEST_END();
}
