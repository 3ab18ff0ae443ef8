/*
 * cmd_tokenize.c — `tessera tokenize`: a prompt's CLIP token ids, one 77-id chunk per line,
 * exactly what the text encoder will be given.
 *
 *   tessera tokenize -m MODEL "text"            the model's tokenizer and padding
 *   tessera tokenize --tokenizer PATH "text"    vocab folder or bpe_simple_vocab_16e6.txt.gz
 *   tessera tokenize -m MODEL -- "-a prompt"    text that starts with '-' (see cli/args.h)
 */
#include "cli/args.h"
#include "cli/commands.h"
#include "models/text/text_conditioning.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(int status) {
    fprintf(status ? stderr : stdout,
            "usage: tessera tokenize (-m MODEL | --tokenizer PATH) [options] [--] TEXT\n"
            "  -m MODEL          diffusers folder or single-file checkpoint (its tokenizer and pad id)\n"
            "  --tokenizer PATH  vocab.json+merges.txt folder or bpe_simple_vocab_16e6.txt.gz\n"
            "  --pad eos|zero    pad id (default: the model's first tokenizer; EOS with --tokenizer)\n"
            "  --truncate        one chunk: the first 75 tokens (default: 75-token chunks)\n"
            "  --raw             the ids alone on one line, without BOS/EOS/padding\n"
            "  --fast            tokenize as the tokenizers-backed CLIPTokenizer (transformers 5)\n");
    return status;
}

int cmd_tokenize(int argc, char **argv) {
    const char *model = NULL, *tokenizer_path = NULL, *text = NULL, *pad = NULL;
    bool truncate = false, raw = false, fast = false, option;
    cli_args args;
    cli_args_init(&args, argc, argv);
    for (const char *a; (a = cli_args_next(&args, &option));) {
        if (!option) {
            if (text) { fprintf(stderr, "tessera tokenize: one TEXT only (quote it)\n"); return 2; }
            text = a;
            continue;
        }
        bool takes_value = strcmp(a, "-m") == 0 || strcmp(a, "--tokenizer") == 0 || strcmp(a, "--pad") == 0;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) return usage(0);
        const char *val = takes_value ? cli_args_value(&args) : NULL;
        if (takes_value && !val) { fprintf(stderr, "tessera tokenize: %s needs a value\n", a); return 2; }
        if (strcmp(a, "-m") == 0) model = val;
        else if (strcmp(a, "--tokenizer") == 0) tokenizer_path = val;
        else if (strcmp(a, "--pad") == 0) pad = val;
        else if (strcmp(a, "--truncate") == 0) truncate = true;
        else if (strcmp(a, "--raw") == 0) raw = true;
        else if (strcmp(a, "--fast") == 0) fast = true;
        else { fprintf(stderr, "tessera tokenize: unknown option '%s' (a TEXT starting with '-' goes after --)\n", a); return usage(2); }
    }
    if (!text || (!model && !tokenizer_path)) return usage(2);
    if (pad && strcmp(pad, "eos") != 0 && strcmp(pad, "zero") != 0) {
        fprintf(stderr, "tessera tokenize: --pad is eos or zero, not '%s'\n", pad);
        return 2;
    }
    text_encoder *te = NULL;
    clip_tokenizer *own = NULL;
    const clip_tokenizer *tok;
    int32_t pad_id;
    if (model) {
        te = text_encoder_load(model, tokenizer_path);
        if (!te) { fprintf(stderr, "tessera tokenize: %s\n", ts_last_error()); return 1; }
        tok = text_encoder_tokenizer(te);
        pad_id = text_encoder_pad_id(te, 0);
    } else {
        own = clip_tokenizer_load(tokenizer_path);
        if (!own) { fprintf(stderr, "tessera tokenize: %s\n", ts_last_error()); return 1; }
        tok = own;
        pad_id = clip_tokenizer_eos(tok);
    }
    if (pad) pad_id = strcmp(pad, "zero") == 0 ? CLIP_PAD_ZERO_ID : clip_tokenizer_eos(tok);
    if (fast) clip_tokenizer_set_flavor((clip_tokenizer *)tok, CLIP_TOKENIZER_FAST);
    int32_t *ids = NULL, *chunks = NULL;
    int n = 0, status = 0;
    if (clip_tokenizer_encode(tok, text, strlen(text), &ids, &n) != 0) {
        fprintf(stderr, "tessera tokenize: %s\n", ts_last_error());
        status = 1;
    } else if (raw) {
        for (int i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
        printf("\n");
    } else {
        int count = clip_tokens_to_chunks(tok, ids, n, pad_id, truncate, 1, &chunks);
        for (int c = 0; c < count; c++) {
            for (int i = 0; i < CLIP_CONTEXT_LENGTH; i++) printf(i ? " %d" : "%d", chunks[c * CLIP_CONTEXT_LENGTH + i]);
            printf("\n");
        }
    }
    free(ids);
    free(chunks);
    clip_tokenizer_destroy(&own);
    text_encoder_destroy(&te);
    return status;
}
