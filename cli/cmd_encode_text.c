/*
 * cmd_encode_text.c — `tessera encode-text`: a prompt through the model's text encoder(s),
 * written as the U-Net's context tensor in .npy, [batch, 77 * chunks, dim].
 *
 *   tessera encode-text -m MODEL -p "text" -o out.npy [-n "negative"] [--pooled pooled.npy]
 * With -n the batch is [negative, positive], padded to the same number of chunks (the
 * classifier-free guidance pair, in diffusers' order).
 */
#include "cli/args.h"
#include "cli/commands.h"
#include "models/formats/npy.h"
#include "models/text/text_conditioning.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(int status) {
    fprintf(status ? stderr : stdout,
            "usage: tessera encode-text -m MODEL -p TEXT -o OUT.npy [options]\n"
            "  -m MODEL          diffusers folder or single-file checkpoint (SD 1.x, 2.x, SDXL)\n"
            "  -p TEXT           the prompt\n"
            "  -n TEXT           a negative prompt: the output batch is [negative, positive]\n"
            "  -o OUT.npy        the context, float32 [batch, 77 * chunks, dim]\n"
            "  --pooled OUT.npy  SDXL's pooled text embeds, float32 [batch, 1280]\n"
            "  --clip-skip N     diffusers' clip_skip (default 0; A1111's \"clip skip 2\" is 1)\n"
            "  --truncate        cut at 75 tokens (diffusers) instead of 75-token chunks\n"
            "  --tokenizer PATH  vocabulary for single files (default %s)\n", CLIP_TOKENIZER_DEFAULT_PATH);
    return status;
}

static int save(const char *path, float *data, int d0, int d1, int d2) {
    int64_t shape[3] = {d0, d1, d2};
    tensor t = tensor_view(data, DT_F32, d2 ? 3 : 2, shape);
    return npy_save(path, &t);
}

int cmd_encode_text(int argc, char **argv) {
    const char *model = NULL, *prompt = NULL, *negative = NULL, *out = NULL, *pooled_out = NULL, *tokenizer = NULL;
    text_encoder_options o = text_encoder_defaults();
    cli_args args;
    cli_args_init(&args, argc, argv);
    bool option;
    for (const char *a; (a = cli_args_next(&args, &option));) {
        if (!option) { fprintf(stderr, "tessera encode-text: '%s': the prompt goes after -p\n", a); return usage(2); }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) return usage(0);
        if (strcmp(a, "--truncate") == 0) { o.truncate = true; continue; }
        const char *val = cli_args_value(&args);
        if (!val) { fprintf(stderr, "tessera encode-text: %s needs a value\n", a); return 2; }
        if (strcmp(a, "-m") == 0) model = val;
        else if (strcmp(a, "-p") == 0) prompt = val;
        else if (strcmp(a, "-n") == 0) negative = val;
        else if (strcmp(a, "-o") == 0) out = val;
        else if (strcmp(a, "--pooled") == 0) pooled_out = val;
        else if (strcmp(a, "--tokenizer") == 0) tokenizer = val;
        else if (strcmp(a, "--clip-skip") == 0) {
            char *end;
            long v = strtol(val, &end, 10);
            if (*end || v < 0 || v > 64) { fprintf(stderr, "tessera encode-text: --clip-skip '%s' is not 0..64\n", val); return 2; }
            o.clip_skip = (int)v;
        } else { fprintf(stderr, "tessera encode-text: unknown option '%s'\n", a); return usage(2); }
    }
    if (!model || !prompt || !out) return usage(2);
    text_encoder *te = text_encoder_load(model, tokenizer);
    ts_ctx *ctx = te ? ts_ctx_new("cpu", 0) : NULL;
    if (!ctx) { fprintf(stderr, "tessera encode-text: %s\n", ts_last_error()); text_encoder_destroy(&te); return 1; }
    const char *prompts[2] = {negative, prompt};
    int count = negative ? 2 : 1;
    text_conditioning c;
    int status = 0;
    double t0 = ts_now();
    if (text_encoder_encode(te, ctx, negative ? prompts : prompts + 1, count, &o, &c) != 0) {
        fprintf(stderr, "tessera encode-text: %s\n", ts_last_error());
        text_encoder_destroy(&te);
        ts_ctx_destroy(&ctx);
        return 1;
    }
    log_info("%s: %s, context [%d, %d, %d] in %.3f s", model, text_family_name(text_encoder_family(te)), c.batch,
             c.tokens, c.dim, ts_now() - t0);
    if (save(out, c.context, c.batch, c.tokens, c.dim) != 0) status = 1;
    if (status == 0 && pooled_out) {
        if (!c.pooled) { ts_fail("%s: only SDXL has a pooled output", model); status = 1; }
        else if (save(pooled_out, c.pooled, c.batch, c.pooled_dim, 0) != 0) status = 1;
    }
    if (status) fprintf(stderr, "tessera encode-text: %s\n", ts_last_error());
    text_conditioning_free(&c);
    text_encoder_destroy(&te);
    ts_ctx_destroy(&ctx);
    return status;
}
