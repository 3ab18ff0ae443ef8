/*
 * cmd_expand.c — `tessera expand`: rewrite short prompts into detailed descriptions,
 * with the embedded LLM (-m MODEL) or an OpenAI-compatible server (--server URL).
 *
 *   tessera expand -m qwen2.5-0.5b-instruct-q8_0.gguf -p "a cat wearing armor"
 *   tessera expand --server http://127.0.0.1:8080 -f prompts.txt
 *
 * Prints one description per prompt, one per line. A reply that fails the checks (empty,
 * runaway, not text, too short, backend failure) falls back to the original prompt; each
 * fallback is reported on stderr with its reason, and counted at the end.
 */
#include "cli/args.h"
#include "cli/commands.h"
#include "models/llm/expand_check.h"
#include "models/llm/expand_grammar.h"
#include "models/llm/llm_expander.h"
#include "models/formats/model_files.h"
#include "worker/llm_http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(int status) {
    fprintf(status ? stderr : stdout,
            "usage: tessera expand (-m MODEL | --server URL) (-p PROMPT | -f FILE | -- PROMPT...) [options]\n"
            "  -m MODEL             .gguf file or Hugging Face folder (embedded LLM)\n"
            "  --server URL         an OpenAI-compatible server instead (vLLM, llama.cpp, serve-llm)\n"
            "  --api-model NAME     the 'model' field sent to the server\n"
            "  --api-key-env VAR    environment variable with the API key (default OPENAI_API_KEY)\n"
            "  --timeout S          per-request timeout in seconds (default 60)\n"
            "  --retries N          retries on 429/5xx/connection errors (default 4)\n"
            "  --concurrency N      requests in flight (default 8)\n"
            "  -p PROMPT            a prompt (repeatable)\n"
            "  -f FILE              prompts, one per line\n"
            "  --template NAME      chatml | llama3 | llama2 | mistral (default: the model's)\n"
            "  --prompt-format F    base models: complete F with {prompt} replaced, no chat\n"
            "                       (default: the GGUF's tessera.expander.prompt_format)\n"
            "  --grammar G          none | shapes: decode under a grammar that keeps the prompt\n"
            "                       (default: the GGUF's tessera.expander.grammar, else none)\n"
            "  --tokenizer PATH     tokenizer.json / .gguf override\n"
            "  --device D           cpu (default) or cuda[:N]: where the model computes\n"
            "  --system FILE        the instruction (default: built in)\n"
            "  --examples FILE      worked examples, 'short<TAB>description' per line\n"
            "  --temp T --top-p P --top-k K --min-p P --repeat-penalty R --seed S\n"
            "  --max-tokens N       per reply (default 160)\n"
            "  --batch N            prompts generated together (default 8)\n"
            "  --show-raw           print the model's raw reply under each line\n"
            "  --check C            none | keep-words: a reply must keep the prompt's content words,\n"
            "                       else it is sampled again, then the prompt is kept (unfaithful)\n"
            "  --check-retries N    further samples when the check fails (default 4)\n");
    return status;
}

static void add_prompt(char ***list, int *n, const char *p) {
    *list = ts_realloc(*list, sizeof(char *) * (size_t)(*n + 1));
    (*list)[(*n)++] = ts_strdup(p);
}

static int read_prompts(const char *path, char ***list, int *n) {
    char *text = read_text_file(path, NULL);
    if (!text) return -1;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        size_t len = strlen(line);
        if (len && line[len - 1] == '\r') line[len - 1] = 0;
        if (*line) add_prompt(list, n, line);
    }
    free(text);
    return 0;
}

int cmd_expand(int argc, char **argv) {
    llm_expander_options eo = llm_expander_default_options();
    eo.model_sampling = true;   /* until a sampling flag says otherwise */
    llm_http_options ho = llm_http_default_options();
    const char *server = NULL;
    bool show_raw = false;
    expand_check_options check = expand_check_default_options();
    char **prompts = NULL;
    int n = 0, rc = 1;
    cli_args args;
    cli_args_init(&args, argc, argv);
    bool option;
    for (const char *a; (a = cli_args_next(&args, &option));) {
        const char *v = NULL;
        if (!option) { add_prompt(&prompts, &n, a); continue; }   /* operands are prompts too */
#define TAKE() ((v = cli_args_value(&args)) ? v : (fprintf(stderr, "tessera expand: %s needs a value\n", a), (const char *)NULL))
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) return usage(0);
        else if (strcmp(a, "-m") == 0) { if (!(eo.model = TAKE())) return 2; }
        else if (strcmp(a, "--server") == 0) { if (!(server = TAKE())) return 2; }
        else if (strcmp(a, "--api-model") == 0) { if (!(ho.model = TAKE())) return 2; }
        else if (strcmp(a, "--api-key-env") == 0) { if (!(ho.api_key_env = TAKE())) return 2; }
        else if (strcmp(a, "--timeout") == 0) { if (!TAKE()) return 2; ho.timeout_s = atof(v); }
        else if (strcmp(a, "--retries") == 0) { if (!TAKE()) return 2; ho.retries = atoi(v); }
        else if (strcmp(a, "--concurrency") == 0) { if (!TAKE()) return 2; ho.concurrency = atoi(v); }
        else if (strcmp(a, "-p") == 0) { if (!TAKE()) return 2; add_prompt(&prompts, &n, v); }
        else if (strcmp(a, "-f") == 0) { if (!TAKE() || read_prompts(v, &prompts, &n) != 0) { fprintf(stderr, "tessera: error: %s\n", ts_last_error()); return 2; } }
        else if (strcmp(a, "--template") == 0) { if (!(eo.template_name = TAKE())) return 2; }
        else if (strcmp(a, "--prompt-format") == 0) { if (!(eo.prompt_format = TAKE())) return 2; }
        else if (strcmp(a, "--grammar") == 0) {
            if (!(eo.grammar = TAKE())) return 2;
            if (expand_grammar_check_name(eo.grammar) != 0) { fprintf(stderr, "tessera: error: %s\n", ts_last_error()); return 2; }
        }
        else if (strcmp(a, "--tokenizer") == 0) { if (!(eo.tokenizer = TAKE())) return 2; }
        else if (strcmp(a, "--device") == 0) { if (!(eo.device = TAKE())) return 2; }
        else if (strcmp(a, "--system") == 0) { if (!(eo.system_file = ho.system_file = TAKE())) return 2; }
        else if (strcmp(a, "--examples") == 0) { if (!(eo.examples_file = ho.examples_file = TAKE())) return 2; }
        else if (strcmp(a, "--temp") == 0) { if (!TAKE()) return 2; eo.sampling.temperature = ho.temperature = (float)atof(v); eo.model_sampling = false; }
        else if (strcmp(a, "--top-p") == 0) { if (!TAKE()) return 2; eo.sampling.top_p = ho.top_p = (float)atof(v); }
        else if (strcmp(a, "--top-k") == 0) { if (!TAKE()) return 2; eo.sampling.top_k = atoi(v); }
        else if (strcmp(a, "--min-p") == 0) { if (!TAKE()) return 2; eo.sampling.min_p = (float)atof(v); }
        else if (strcmp(a, "--repeat-penalty") == 0) { if (!TAKE()) return 2; eo.sampling.repeat_penalty = (float)atof(v); eo.model_sampling = false; }
        else if (strcmp(a, "--seed") == 0) { if (!TAKE()) return 2; eo.sampling.seed = ho.seed = strtoull(v, NULL, 10); }
        else if (strcmp(a, "--max-tokens") == 0) { if (!TAKE()) return 2; eo.max_tokens = ho.max_tokens = atoi(v); }
        else if (strcmp(a, "--batch") == 0) { if (!TAKE()) return 2; eo.max_batch = atoi(v); }
        else if (strcmp(a, "--show-raw") == 0) show_raw = true;
        else if (strcmp(a, "--check") == 0) { if (!TAKE() || expand_check_parse(v, &check.kind) != 0) { fprintf(stderr, "tessera: error: %s\n", ts_last_error()); return 2; } }
        else if (strcmp(a, "--check-retries") == 0) { if (!TAKE()) return 2; check.retries = atoi(v); }
        else { fprintf(stderr, "tessera expand: unknown option '%s'\n", a); return usage(2); }
#undef TAKE
    }
    if ((!eo.model) == (!server) || n == 0) return usage(2);

    expansion *out = ts_calloc((size_t)n, sizeof *out);
    if (server) {
        ho.url = server;
        llm_http *h = llm_http_new(&ho);
        if (!h) goto fail;
        llm_http_expand(h, n, (const char *const *)prompts, out);
        llm_http_destroy(&h);
    } else {
        llm_expander *e = llm_expander_open(&eo);
        if (!e) goto fail;
        int r = expand_checked_llm(e, &check, n, (const char *const *)prompts, out);
        llm_expander_destroy(&e);
        if (r != 0) goto fail;
    }
    int fallbacks = 0;
    for (int i = 0; i < n; i++) {
        printf("%s\n", out[i].text);
        if (show_raw) printf("  raw: %s\n", out[i].raw ? out[i].raw : "");
        if (out[i].verdict != UPSAMPLE_OK) {
            fallbacks++;
            log_warn("prompt %d fell back to the original (%s)", i + 1, upsample_verdict_name(out[i].verdict));
            if (out[i].verdict == UPSAMPLE_FAILED) log_warn("  reason: %s", out[i].raw);
        }
    }
    log_info("expanded %d prompts, %d fell back to the original", n, fallbacks);
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "tessera: error: %s\n", ts_last_error());
done:
    expansion_free(out, n);
    free(out);
    for (int i = 0; i < n; i++) free(prompts[i]);
    free(prompts);
    return rc;
}
