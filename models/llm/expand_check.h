/*
 * expand_check.h — is a prompt expansion faithful to the short prompt? (job key
 * `expand.check: keep-words`, for every expander.)
 *
 * DALL·E 3's upsampler is told to keep every element of the prompt; a small or careless
 * LLM does not always ("... square in the bottom right ..." => "... square in the top
 * left ..."). The keep-words check: every content word of the short prompt must survive
 * into the expansion, after simple normalisation:
 *   - case folded (utf8proc), plural = singular ("circles" = "circle", "puppies" = "puppy"),
 *     British = American for a few words ("centre", "colour", "grey"), "middle" = "center";
 *   - function words (articles, pronouns, auxiliaries, "of", "in", "on", "with" ...) are not
 *     content; everything else is (nouns, adjectives, and verbs too: no tagger here);
 *   - a number ("two", "2") is kept when the expansion says it, or names its noun at least
 *     that often ("two red circles" => "a red circle ..., a red circle ...");
 *   - and not more of it: the things the expansion introduces with an article or a number
 *     that carry every word of a phrase of the prompt ("a large red circle" for "a red
 *     circle") may not outnumber that phrase ("a red circle" => two red circles fails);
 *   - a position ("left", "above", "top left" as one) is kept when it appears in the same
 *     clause (between commas, full stops or "and") as the words it belongs to (the content
 *     words before it in the prompt's clause: "red square" in "a red square in the top
 *     left"), so a moved object is caught.
 * The check does not see meaning: synonyms fail it ("dog" => "retriever") and a wrong
 * binding of colour to noun passes it. On failure the expander samples again, up to
 * `expand.retries` times with a different, deterministic seed each time (greedy models
 * sample at retry_temperature), then falls back to the short prompt with the verdict
 * "unfaithful", counted in stats.json like every fallback.
 */
#ifndef TESSERA_EXPAND_CHECK_H
#define TESSERA_EXPAND_CHECK_H

#include "models/llm/llm_expander.h"

typedef enum { EXPAND_CHECK_NONE = 0, EXPAND_CHECK_KEEP_WORDS } expand_check_kind;

typedef struct {
    expand_check_kind kind;
    int retries;                 /* further samples after the first expansion fails */
    float retry_temperature;     /* for models configured greedy */
} expand_check_options;

/* Defaults: none, 4 retries, temperature 0.8. */
expand_check_options expand_check_default_options(void);
/* "none" or "keep-words"; -1 with a message naming the value otherwise. */
int expand_check_parse(const char *name, expand_check_kind *out);

/* True when expansion keeps every content word of prompt. Otherwise false, and *missing
 * (when not NULL) gets what was lost, malloc'd ("bottom right (of square)"). */
bool expand_check_keeps_words(const char *prompt, const char *expansion, char **missing);

/* The sampling of retry `attempt` (>= 1) of an expander sampled with base: another seed for
 * each attempt, derived from base's; a greedy base samples at retry_temperature. */
llm_sampling expand_retry_sampling(const llm_sampling *base, int attempt, float retry_temperature);

/* One try of an expander: like llm_expander_run, attempt 0 as configured, attempt k > 0 a
 * different sample (see llm_expander_run_attempt). */
typedef int (*expand_attempt_fn)(void *ctx, int n, const char *const *prompts, int attempt, expansion *out);

/* Expands n prompts with the check: prompts whose expansion fails it are sampled again (only
 * those), then fall back with UPSAMPLE_UNFAITHFUL. Returns what run returns. */
int expand_checked(expand_attempt_fn run, void *ctx, const expand_check_options *options, int n,
                   const char *const *prompts, expansion *out);

/* One try of the embedded LLM: attempt 0 as configured, k > 0 with expand_retry_sampling. */
int expand_llm_try(llm_expander *e, int n, const char *const *prompts, int attempt, float retry_temperature,
                   expansion *out);
/* expand_checked on the embedded LLM. */
int expand_checked_llm(llm_expander *e, const expand_check_options *options, int n, const char *const *prompts,
                       expansion *out);

#endif
