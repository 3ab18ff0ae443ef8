/*
 * cmd_caption.c — `tessera caption`: images in, captions out, with a LLaVA-style captioner.
 *
 *   tessera caption -m MODEL [--mmproj MMPROJ] -i IMAGE [-i IMAGE ...] [--style dsc|ssc]
 *                   [--alt-text TEXT] [--prompt TEMPLATE] [-n TOKENS] [--pad | --no-pad]
 *                   [--print-ids]
 *
 * MODEL is a LlavaForConditionalGeneration folder, or an LLM GGUF with its --mmproj GGUF
 * (llama.cpp's pair). One image prints its caption; several print "IMAGE<TAB>caption" per
 * line. An image that cannot be read is reported on stderr and the others go on (exit 1).
 * Prompts: models/vision/caption_prompt.h. Greedy decoding, as captions should be.
 *
 *   tessera caption --write-shards MANIFEST -o DIR
 *
 * puts an image recaption job's captions back into copies of its WebDataset shards
 * (key.descriptive.txt / key.short.txt beside each record: worker/recaption_shards.h).
 */
#include "cli/commands.h"
#include "models/vision/caption_prompt.h"
#include "models/vision/llava.h"
#include "worker/recaption_shards.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(int status) {
    fprintf(status ? stderr : stdout,
            "usage: tessera caption -m MODEL [--mmproj MMPROJ] -i IMAGE [-i IMAGE ...] [options]\n"
            "  -m MODEL            LlavaForConditionalGeneration folder, or the LLM .gguf of a pair\n"
            "  --mmproj FILE       llama.cpp's mmproj .gguf (vision tower + projector)\n"
            "  -i IMAGE            JPEG, PNG or WebP (repeatable)\n"
            "  --style dsc|ssc     descriptive (default) or short caption, as DALL-E 3 names them\n"
            "  --alt-text TEXT     the image's original alt-text, given as context\n"
            "  --prompt TEMPLATE   prompt with <image> and optionally {instruction}\n"
            "                      (default: \"USER: <image>\\n{instruction} ASSISTANT:\")\n"
            "  -n TOKENS           new tokens at most (default 256)\n"
            "  --pad / --no-pad    LLaVA-1.5's pad-to-square (default: as the model's files say)\n"
            "  --print-ids         print the caption's token ids instead of its text\n"
            "  --device D          cpu (default) or cuda[:N]\n"
            "   or: tessera caption --write-shards MANIFEST -o DIR\n"
            "  the captions of an image recaption job's manifest added to copies of its shards\n");
    return status;
}

int cmd_caption(int argc, char **argv) {
    const char *model = NULL, *mmproj = NULL, *device = NULL, *alt = NULL, *tpl = NULL, *shards_manifest = NULL, *out_dir = NULL;
    const char **images = ts_calloc((size_t)argc, sizeof *images);
    int n_images = 0, pad = -1, status = 1;
    long max_new = 256;
    bool print_ids = false;
    caption_style style = CAPTION_DSC;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) { free(images); return usage(0); }
        if (strcmp(a, "--pad") == 0) { pad = 1; continue; }
        if (strcmp(a, "--no-pad") == 0) { pad = 0; continue; }
        if (strcmp(a, "--print-ids") == 0) { print_ids = true; continue; }
        const char *val = i + 1 < argc ? argv[++i] : NULL;
        if (!val) { fprintf(stderr, "tessera caption: %s needs a value\n", a); free(images); return 2; }
        if (strcmp(a, "-m") == 0) model = val;
        else if (strcmp(a, "--mmproj") == 0) mmproj = val;
        else if (strcmp(a, "--device") == 0) device = val;
        else if (strcmp(a, "-i") == 0) images[n_images++] = val;
        else if (strcmp(a, "--alt-text") == 0) alt = val;
        else if (strcmp(a, "--prompt") == 0) tpl = val;
        else if (strcmp(a, "--write-shards") == 0) shards_manifest = val;
        else if (strcmp(a, "-o") == 0) out_dir = val;
        else if (strcmp(a, "--style") == 0) {
            if (caption_style_from_name(val, &style)) { fprintf(stderr, "tessera caption: %s\n", ts_last_error()); free(images); return 2; }
        } else if (strcmp(a, "-n") == 0) {
            char *e;
            max_new = strtol(val, &e, 10);
            if (*e || max_new < 1) { fprintf(stderr, "tessera caption: bad -n '%s'\n", val); free(images); return 2; }
        } else { fprintf(stderr, "tessera caption: unknown option '%s'\n", a); free(images); return usage(2); }
    }
    if (shards_manifest) {
        free(images);
        if (!out_dir) { fprintf(stderr, "tessera caption: --write-shards needs -o DIR\n"); return 2; }
        recaption_shards_stats st;
        if (recaption_write_shards(shards_manifest, out_dir, &st)) { fprintf(stderr, "tessera caption: %s\n", ts_last_error()); return 1; }
        printf("%d shards written to %s, %d captions added%s\n", st.shards, out_dir, st.captions,
               st.truncated ? " (some input shards were cut short: see the warnings)" : "");
        return 0;
    }
    if (!model || n_images == 0) { free(images); return usage(2); }

    llava *v = llava_open(model, mmproj);
    ts_ctx *ctx = ts_ctx_new(device, 0);
    char *prompt = NULL;
    int *ids = NULL, n_ids = 0;
    llm_state *s = NULL;
    float *features = NULL;
    if (!v || !ctx || !(prompt = caption_prompt(tpl, style, alt)) || llava_tokenize_prompt(v, prompt, &ids, &n_ids)) {
        fprintf(stderr, "tessera caption: %s\n", ts_last_error());
        goto done;
    }
    if (!print_ids && !llava_codec(v)) { fprintf(stderr, "tessera caption: the model has no tokenizer; use --print-ids\n"); goto done; }
    image_preprocess_config pre = *llava_preprocess_config(v);
    if (pad >= 0) pre.pad_to_square = pad;
    const int K = llava_image_tokens(v), D = llm_get_config(llava_llm(v))->dim;
    features = ts_malloc((size_t)K * D * sizeof(float));
    if (!(s = llm_state_new(llava_llm(v), ctx, 1, n_ids + (int)max_new + 1, 512))) {
        fprintf(stderr, "tessera caption: %s\n", ts_last_error());
        goto done;
    }
    status = 0;
    for (int i = 0; i < n_images; i++) {
        image_rgb8 img;
        float *px = NULL;
        int H, W, *out = NULL, n_out = 0;
        double t0 = ts_now();
        if (image_read(images[i], &img) || image_preprocess(&img, &pre, &px, &H, &W) ||
            llava_encode_images(v, ctx, px, 1, features) || llava_generate(v, s, 0, ids, n_ids, features, (int)max_new, &out, &n_out)) {
            fprintf(stderr, "tessera caption: %s\n", ts_last_error());
            status = 1;
        } else {
            if (n_images > 1) printf("%s\t", images[i]);
            if (print_ids) {
                for (int j = 0; j < n_out; j++) printf("%s%d", j ? " " : "", out[j]);
                printf("\n");
            } else {
                char *text = llava_decode_text(v, out, n_out);
                printf("%s\n", text);
                free(text);
            }
            fflush(stdout);
            log_info("%s: %d prompt + %d new tokens in %.2f s", images[i], n_ids, n_out, ts_now() - t0);
        }
        free(out);
        free(px);
        image_rgb8_clear(&img);
    }
done:
    free(features);
    llm_state_destroy(&s);
    free(ids);
    free(prompt);
    llava_destroy(&v);
    ts_ctx_destroy(&ctx);
    free(images);
    return status;
}
