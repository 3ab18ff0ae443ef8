/*
 * test_expand_check.c — the keep-words faithfulness check (models/llm/expand_check.h): on the
 * shapes world's prompts and on real-language prompts with expansions the way instruction
 * LLMs write them (kept, reworded, moved, miscounted), and the retry loop on the real demo
 * expander (demo/expander.gguf): every reply either keeps the prompt's words or falls back
 * to the prompt as "unfaithful", the same every run.
 */
#include "models/llm/expand_check.h"
#include "tests/test.h"
#include "worker/backend.h"

#include <stdlib.h>
#include <string.h>

static void keeps(const char *prompt, const char *expansion, bool want, const char *lost_want) {
    char *lost = NULL;
    bool got = expand_check_keeps_words(prompt, expansion, &lost);
    CHECK(got == want, "'%s' => '%s': %s (lost: %s)", prompt, expansion, got ? "kept" : "not kept", lost ? lost : "-");
    if (lost_want) CHECK(lost && strcmp(lost, lost_want) == 0, "lost '%s', expected '%s'", lost ? lost : "-", lost_want);
    free(lost);
}

static void test_shapes_world(void) {
    const char *desc = "A small red circle in the center, a large red circle in the bottom right, "
                       "a small blue square in the top left, on a white background.";
    keeps("two red circles and a square in the top left", desc, true, NULL);
    keeps("a blue square in the top left", desc, true, NULL);
    keeps("a red circle in the bottom right", desc, true, NULL);
    keeps("a red circle in the top left", desc, false, "top left (of red circle)");      /* moved */
    keeps("a square in the bottom right", desc, false, "bottom right (of square)");
    keeps("three red circles", desc, false, "3 circle");                              /* miscounted */
    keeps("a green triangle", desc, false, "green");
    keeps("a red circle", desc, false, "1 red circle (2 named)");        /* one, not two */
    keeps("a red circle in the bottom right",
          "A large red circle in the bottom right, a small red circle in the bottom right, on a white background.", false,
          "1 red circle (2 named)");
    keeps("a red circle in the bottom right", desc, true, NULL);      /* the other red circle is elsewhere */
    keeps("a blue square and two red circles", desc, true, NULL);
    keeps("two small red circles", desc, true, NULL);
    keeps("a large orange square in the bottom right", "A large orange square in the top left, on a white background.",
          false, "bottom right (of large orange square)");
    /* The colour goes with the position: the top right square is purple. */
    keeps("a red square in the center left, a red square in the top right and a purple square",
          "A small red square in the center left, a large red square in the bottom right, a small purple square in the "
          "top right, on a white background.", false, "top right (of red square)");
}

static void test_real_prompts(void) {
    keeps("a cat wearing armor",
          "A majestic tabby cat wearing gleaming silver armor, standing proudly in a sunlit castle courtyard.", true, NULL);
    keeps("two dogs playing in the snow",
          "A golden retriever bounds through fresh powder, snow glittering in the morning light.", false, "2 dog");
    keeps("three red apples on a wooden table",
          "Three glossy red apples rest on a rustic wooden table, soft window light falling across them.", true, NULL);
    keeps("3 red apples", "Three glossy red apples on a plate.", true, NULL);
    keeps("two cats", "A grey cat curls up beside a ginger cat on a windowsill.", true, NULL);   /* counted by name */
    keeps("two cats", "A grey cat curls up on a windowsill.", false, "2 cat");
    keeps("a cat", "Two fluffy cats asleep on a sofa.", false, "1 cat (2 named)");
    keeps("a cat", "The cat sleeps; the cat's tail twitches.", true, NULL);     /* "the": no new cat */
    keeps("a dog and a cat", "A playful dog chases a curious cat across the lawn.", true, NULL);
    keeps("a lighthouse on the left and a boat on the right",
          "A tall white lighthouse stands on the left of a rocky shore, and a small fishing boat sails on the right.",
          true, NULL);
    keeps("a lighthouse on the left and a boat on the right",
          "A tall white lighthouse stands on the right of a rocky shore, and a small fishing boat sails on the left.",
          false, "left (of lighthouse)");
    /* Normalisation: case, plurals, British spelling, Unicode case folding. */
    keeps("Puppies in a BOX", "A cosy cardboard box full of sleepy puppies.", true, NULL);
    keeps("two glasses of water", "Two tall glasses of sparkling water on a marble counter.", true, NULL);
    keeps("a glass of water", "Two tall glasses of sparkling water on a marble counter.", false, "1 glass water (2 named)");
    keeps("a grey bus in the centre", "A gray double-decker bus parked in the center of a busy London street.", true, NULL);
    keeps("a CAFÉ in Paris", "A cozy café on a cobbled street in paris at dusk.", true, NULL);
    keeps("a café in Paris", "A cozy cafe in Paris.", false, "café");     /* accents are kept: a different word */
    /* A reworded noun is lost: the check sees words, not meaning. */
    keeps("a photo of a dog", "A photograph of a dog in a park.", false, "photo");
}

/* Expands prompts through the worker's model backend with the given check; out, fallbacks
 * filled (malloc'd). */
static int expand_with(ts_expander *x, int n, const char *const *prompts, char **out, char **fallbacks) {
    uint64_t seeds[16] = {0};
    char *errors[16] = {0};
    int rc = x->expand(x, prompts, seeds, n, out, errors, fallbacks);
    for (int i = 0; i < n; i++) free(errors[i]);
    return rc;
}

/* The retry loop through the worker's model backend, on the real demo expander (greedy
 * first, then samples), as `expand.check: keep-words` runs it. */
static void test_retries_on_the_demo_expander(void) {
    char model[4096];
    const char *src = getenv("TESSERA_SOURCE");
    snprintf(model, sizeof model, "%s/demo/expander.gguf", src ? src : ".");
    ts_expander *x = backend_expander_new("model", model, NULL);
    CHECK(x != NULL, "open %s: %s", model, ts_last_error());
    if (!x) return;
    CHECK(backend_expander_set_check(x, "bogus", 1) == -1 && strstr(ts_last_error(), "'bogus'"),
          "a bad check name is an error naming it: %s", ts_last_error());
    /* The demo expander decodes under the shapes grammar (expand_grammar.h), which keeps every
     * prompt it reads; "at the" is outside it, so those prompts are decoded freely and the
     * check and its retries have work to do, as with any expander. */
    static const char *const prompts[] = {
        "a red circle at the bottom right", "a large orange square at the bottom right and a purple circle at the top left",
        "two green triangles and a red triangle", "a yellow circle", "a small blue square at the center",
        "three orange squares", "a circle in the bottom center", "a purple square in the center and a green circle",
        "a green square at the top right", "an orange triangle at the center left and a blue circle",
    };
    enum { N = sizeof prompts / sizeof prompts[0] };
    char *plain[N] = {0}, *plain_fb[N] = {0}, *first[N] = {0}, *first_fb[N] = {0}, *again[N] = {0}, *again_fb[N] = {0};
    CHECK_OK(backend_expander_set_check(x, "none", -1));
    CHECK_OK(expand_with(x, N, prompts, plain, plain_fb));
    CHECK_OK(backend_expander_set_check(x, "keep-words", 8));
    CHECK_OK(expand_with(x, N, prompts, first, first_fb));
    CHECK_OK(expand_with(x, N, prompts, again, again_fb));
    int greedy_kept = 0, kept = 0, unfaithful = 0, retried = 0;
    for (int i = 0; i < N; i++) {
        greedy_kept += !plain_fb[i] && expand_check_keeps_words(prompts[i], plain[i], NULL);
        if (!first_fb[i]) {
            kept++;
            CHECK(expand_check_keeps_words(prompts[i], first[i], NULL), "accepted but unfaithful: %s => %s", prompts[i],
                  first[i]);
            retried += strcmp(first[i], plain[i]) != 0;
        } else {
            unfaithful += !strcmp(first_fb[i], "unfaithful");
            CHECK(!strcmp(first[i], prompts[i]), "a fallback is the prompt itself: %s", first[i]);
        }
        CHECK(!strcmp(first[i], again[i]) && !first_fb[i] == !again_fb[i], "the same every run: %s / %s", first[i],
              again[i]);
        printf("  %s%s => %s\n", first_fb[i] ? "[fallback] " : "", prompts[i], first[i]);
    }
    printf("demo expander: greedy keeps every word for %d of %d prompts; with keep-words and 8 retries %d "
           "(%d from a retry), %d fell back as unfaithful\n", greedy_kept, (int)N, kept, retried, unfaithful);
    CHECK(kept + unfaithful == N, "every prompt is kept or unfaithful: %d + %d", kept, unfaithful);
    CHECK(kept >= greedy_kept, "retries never lose: %d < %d", kept, greedy_kept);
    for (int i = 0; i < N; i++) {
        free(plain[i]), free(plain_fb[i]), free(first[i]), free(first_fb[i]), free(again[i]), free(again_fb[i]);
    }
    backend_expander_destroy(&x);
}

int main(void) {
    TEST_BEGIN();
    test_shapes_world();
    test_real_prompts();
    test_retries_on_the_demo_expander();
    return TEST_END();
}
