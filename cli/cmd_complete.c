/*
 * cmd_complete.c — `tessera complete`: the raw continuation of a text by a base model, no
 * chat template, for checks and base models.
 *
 *   tessera complete -m MODEL -p TEXT [-n TOKENS] [--temp T] [--top-p P] [--top-k K]
 *                    [--min-p P] [--repeat-penalty R] [--seed S] [--stop STR]...
 *                    [--tokenizer FILE] [--ids "1 2 3"]
 *
 * The tokenizer comes from the model (GGUF metadata, tokenizer.json, or tokenizer.bin
 * beside a llama2.c checkpoint; see models/llm/llm_codec.h) or from --tokenizer. --ids gives
 * the prompt as token ids instead and prints the continuation as ids (no tokenizer).
 */
#include "cli/args.h"
#include "cli/commands.h"
#include "models/llm/llm_codec.h"
#include "models/llm/llm_sample.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(int status) {
    fprintf(status ? stderr : stdout,
            "usage: tessera complete -m MODEL (-p TEXT | --ids \"ID ID ...\" | -- TEXT) [options]\n"
            "  -m MODEL            .gguf file, Hugging Face folder, or llama2.c .bin\n"
            "  -p TEXT             the text to continue (no chat template)\n"
            "  --ids \"1 2 3\"       the prompt as token ids; prints ids (no tokenizer needed)\n"
            "  -n TOKENS           new tokens at most (default 128)\n"
            "  --temp T            temperature, 0 = greedy (default 0)\n"
            "  --top-p P           nucleus sampling (default 1 = off)\n"
            "  --top-k K           keep the K most likely (default 0 = off)\n"
            "  --min-p P           drop tokens below P x the most likely (default 0 = off)\n"
            "  --repeat-penalty R  penalise the last 64 tokens (default 1 = off)\n"
            "  --seed S            sampling seed (default 0: a fixed seed)\n"
            "  --stop STR          stop before STR (repeatable)\n"
            "  --tokenizer FILE    tokenizer to use instead of the model's own\n"
            "  --device D          cpu (default) or cuda[:N]\n");
    return status;
}

static bool parse_float(const char *s, float *out) { char *e; *out = strtof(s, &e); return *s && !*e; }
static bool parse_int(const char *s, long long *out) { char *e; *out = strtoll(s, &e, 10); return *s && !*e; }

int cmd_complete(int argc, char **argv) {
    const char *model = NULL, *prompt = NULL, *ids = NULL, *tokenizer = NULL, *device = NULL;
    llm_sampling sp = llm_sampling_greedy();
    long long max_tokens = 128, v;
    const char *stops[16];
    int n_stop = 0;
    cli_args args;
    cli_args_init(&args, argc, argv);
    bool option;
    for (const char *a; (a = cli_args_next(&args, &option));) {
        if (!option) {   /* the prompt as an operand: `tessera complete -m M -- "-a prompt"` */
            if (prompt) { fprintf(stderr, "tessera complete: one prompt only ('%s')\n", a); return 2; }
            prompt = a;
            continue;
        }
        bool ok = true;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) return usage(0);
        const char *val = cli_args_value(&args);
        if (!val) { fprintf(stderr, "tessera complete: %s needs a value\n", a); return 2; }
        if (strcmp(a, "-m") == 0) model = val;
        else if (strcmp(a, "-p") == 0) prompt = val;
        else if (strcmp(a, "--ids") == 0) ids = val;
        else if (strcmp(a, "--tokenizer") == 0) tokenizer = val;
        else if (strcmp(a, "--device") == 0) device = val;
        else if (strcmp(a, "-n") == 0) ok = parse_int(val, &max_tokens) && max_tokens > 0;
        else if (strcmp(a, "--temp") == 0) ok = parse_float(val, &sp.temperature) && sp.temperature >= 0;
        else if (strcmp(a, "--top-p") == 0) ok = parse_float(val, &sp.top_p) && sp.top_p >= 0;
        else if (strcmp(a, "--min-p") == 0) ok = parse_float(val, &sp.min_p) && sp.min_p >= 0 && sp.min_p <= 1;
        else if (strcmp(a, "--repeat-penalty") == 0) ok = parse_float(val, &sp.repeat_penalty) && sp.repeat_penalty > 0;
        else if (strcmp(a, "--top-k") == 0) { ok = parse_int(val, &v) && v >= 0; sp.top_k = (int)v; }
        else if (strcmp(a, "--seed") == 0) { ok = parse_int(val, &v) && v >= 0; sp.seed = (uint64_t)v; }
        else if (strcmp(a, "--stop") == 0) { ok = n_stop < 16; if (ok) stops[n_stop++] = val; }
        else { fprintf(stderr, "tessera complete: unknown option '%s'\n", a); return usage(2); }
        if (!ok) { fprintf(stderr, "tessera complete: bad value '%s' for %s\n", val, a); return 2; }
    }
    if (!model || (!prompt && !ids)) return usage(2);

    llm *m = llm_open(model);
    if (!m) { fprintf(stderr, "tessera complete: %s\n", ts_last_error()); return 1; }
    const llm_config *c = llm_get_config(m);
    llm_codec *codec = NULL;
    int *tokens = NULL, n = 0, status = 1;
    llm_state *s = NULL;
    ts_ctx *compute = NULL;
    if (ids) {
        tokens = ts_malloc((strlen(ids) / 2 + 2) * sizeof(int));
        for (char *p = (char *)ids, *e; *p; p = e) {
            long t = strtol(p, &e, 10);
            if (e == p) { if (*p == ' ' || *p == ',') { e = p + 1; continue; } fprintf(stderr, "tessera complete: bad --ids '%s'\n", ids); goto done; }
            tokens[n++] = (int)t;
        }
    } else {
        codec = llm_codec_open(m, model, tokenizer);
        /* BOS (and EOS) only where the model file asks for them, as llama.cpp does */
        if (!codec || llm_codec_encode(codec, prompt, true, false, &tokens, &n)) {
            fprintf(stderr, "tessera complete: %s\n", ts_last_error());
            goto done;
        }
    }
    if (n == 0) { fprintf(stderr, "tessera complete: empty prompt\n"); goto done; }
    int ctx = n + (int)max_tokens + 1;
    if (ctx > c->max_seq_len && c->max_seq_len > 0) ctx = c->max_seq_len;
    compute = ts_ctx_new(device, 0);
    s = compute ? llm_state_new(m, compute, 1, ctx, n < 512 ? n : 512) : NULL;
    if (!s) { fprintf(stderr, "tessera complete: %s\n", ts_last_error()); goto done; }
    llm_generation gen = {.max_tokens = (int)max_tokens, .stop = stops, .n_stop = n_stop};
    int ends[8] = {1, 2};   /* llama2.c: BOS delimits stories */
    gen.n_end = strcmp(c->arch, "llama2c") == 0 ? 2 : codec ? llm_codec_end_ids(codec, ends, 8) : 0;
    if (gen.n_end > 0) gen.end_ids = ends;
    llm_detokenizer detok = codec ? llm_codec_detokenizer(codec) : (llm_detokenizer){0};
    llm_output out;
    const int *prompts[1] = {tokens};
    double t0 = ts_now();
    if (llm_generate(m, s, 1, prompts, &n, &sp, &gen, codec ? &detok : NULL, &out)) {
        fprintf(stderr, "tessera complete: %s\n", ts_last_error());
        goto done;
    }
    double dt = ts_now() - t0;
    if (out.text) {   /* counted bytes: a <0x00> token's NUL is part of the text */
        fputs(prompt, stdout);
        fwrite(out.text, 1, out.text_len, stdout);
        putchar('\n');
    } else {
        for (int i = 0; i < out.n_tokens; i++) printf("%s%d", i ? " " : "", out.tokens[i]);
        printf("\n");
    }
    log_info("%d prompt + %d new tokens in %.2f s (%s)", n, out.n_tokens, dt,
             out.finish == LLM_FINISH_STOP ? "stop string" : out.finish == LLM_FINISH_END_TOKEN ? "end token" : "length");
    llm_output_free(&out, 1);
    status = 0;
done:
    free(tokens);
    llm_state_destroy(&s);
    ts_ctx_destroy(&compute);
    llm_codec_destroy(&codec);
    llm_destroy(&m);
    return status;
}
