/*
 * bench_caption.c — `tessera bench caption -m MODEL`: the captioner's throughput, and what
 * batching gains, each against its baseline measured in the same run:
 *   vision tower   images/s through the ViT + projector one image per call, and N per call
 *   captions       new tokens/s captioning N images one after another (llava_generate), and
 *                  with their sequences decoded together (llava_generate_batch, S at once)
 *
 *   tessera bench [--threads N] caption -m MODEL [--mmproj MMPROJ] [--images 8] [--gen 32] [--seqs 4]
 *
 * Pixels and prompt ids are fixed pseudo-random values, so random weights work: make a
 * ViT-L/14-336 + 0.5B LLM folder with tools/make_bench_llava.py.
 */
#include "cli/bench.h"
#include "models/vision/llava.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Process CPU seconds: on a shared machine wall time mostly measures the neighbours, so
 * every figure is also given per CPU-second (as bench llm does). */
static double cpu_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

#define PROMPT_TEXT_IDS 24   /* ids around the image, as "USER: <image>\n... ASSISTANT:" has */

int bench_caption(int argc, char **argv) {
    const char *model = NULL, *mmproj = NULL;
    int N = 8, G = 32, S = 4;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-m") == 0 && i + 1 < argc) model = argv[++i];
        else if (strcmp(argv[i], "--mmproj") == 0 && i + 1 < argc) mmproj = argv[++i];
        else if (strcmp(argv[i], "--images") == 0 && i + 1 < argc) N = atoi(argv[++i]);
        else if (strcmp(argv[i], "--gen") == 0 && i + 1 < argc) G = atoi(argv[++i]);
        else if (strcmp(argv[i], "--seqs") == 0 && i + 1 < argc) S = atoi(argv[++i]);
        else { N = 0; break; }
    }
    if (!model || N < 1 || G < 1 || S < 1) {
        fprintf(stderr, "usage: tessera bench [--threads N] caption -m MODEL [--mmproj MMPROJ] [--images 8] [--gen 32] [--seqs 4]\n"
                        "  (make a random ViT-L/14-336 + 0.5B LLM with tools/make_bench_llava.py)\n");
        return 2;
    }
    llava *v = llava_open(model, mmproj);
    ts_ctx *ctx = bench_ctx_new();
    if (!v || !ctx) { fprintf(stderr, "tessera bench caption: %s\n", ts_last_error()); llava_destroy(&v); ts_ctx_destroy(&ctx); return 1; }
    const clip_vision_config *vc = llava_vision_config(v);
    const llm_config *lc = llm_get_config(llava_llm(v));
    const int P = vc->image_size, K = llava_image_tokens(v), D = lc->dim, V = lc->vocab_size;
    printf("captioner: ViT %dx%d/%d, width %d, %d layers; LLM %s dim %d, %d layers, vocab %d\n", P, P, vc->patch_size,
           vc->hidden, vc->n_layers, lc->arch, D, lc->n_layers, V);
    float *pixels = ts_malloc((size_t)N * 3 * P * P * sizeof(float));
    float *features = ts_malloc((size_t)N * K * D * sizeof(float));
    uint32_t rng = 1234;
    for (size_t i = 0; i < (size_t)N * 3 * P * P; i++) {
        rng = rng * 1664525u + 1013904223u;
        pixels[i] = (float)(rng >> 8) / (float)(1u << 24) * 4.0f - 2.0f;
    }
    int status = 1;
    /* the vision tower: N calls of one image, then one call of N */
    double t0 = ts_now(), c0 = cpu_now();
    for (int i = 0; i < N; i++)
        if (llava_encode_images(v, ctx, pixels + (size_t)i * 3 * P * P, 1, features + (size_t)i * K * D)) goto fail;
    double one = N / (ts_now() - t0), one_cpu = N / (cpu_now() - c0);
    t0 = ts_now(), c0 = cpu_now();
    if (llava_encode_images(v, ctx, pixels, N, features)) goto fail;
    double batched = N / (ts_now() - t0), batched_cpu = N / (cpu_now() - c0);
    printf("vision tower, one image per call: %8.3f images/s %8.3f images/cpu-s\n", one, one_cpu);
    printf("vision tower, %2d images per call: %8.3f images/s %8.3f images/cpu-s   (%.2fx wall, %.2fx per cpu-s)\n", N,
           batched, batched_cpu, batched / one, batched_cpu / one_cpu);
    /* the captions: the same prompt shape for every image, its own features */
    int n_ids = 1 + PROMPT_TEXT_IDS / 2 + K + PROMPT_TEXT_IDS / 2;
    int *ids = ts_malloc((size_t)n_ids * sizeof(int));
    for (int i = 0; i < n_ids; i++) {
        rng = rng * 1664525u + 1013904223u;
        ids[i] = (int)((rng >> 8) % (uint32_t)V);
    }
    ids[0] = lc->bos_id >= 0 ? lc->bos_id : ids[0];
    for (int i = 0; i < K; i++) ids[1 + PROMPT_TEXT_IDS / 2 + i] = LLM_EMBEDDING_ROW;
    llm_state *s1 = llm_state_new(llava_llm(v), ctx, 1, n_ids + G + 1, 512);
    llm_state *sn = llm_state_new(llava_llm(v), ctx, S, n_ids + G + 1, 512 > S ? 512 : S);
    if (!s1 || !sn) goto fail;
    long tokens_one = 0, tokens_batch = 0;
    t0 = ts_now(), c0 = cpu_now();
    for (int i = 0; i < N; i++) {
        int *out, n_out;
        if (llava_generate(v, s1, 0, ids, n_ids, features + (size_t)i * K * D, G, &out, &n_out)) goto fail;
        tokens_one += n_out;
        free(out);
    }
    double seq_s = ts_now() - t0, seq_cpu = cpu_now() - c0;
    const int **prompts = ts_malloc((size_t)N * sizeof *prompts);
    const float **feats = ts_malloc((size_t)N * sizeof *feats);
    int *lens = ts_malloc((size_t)N * sizeof(int)), **outs = ts_malloc((size_t)N * sizeof *outs), *n_outs = ts_malloc((size_t)N * sizeof(int));
    for (int i = 0; i < N; i++) prompts[i] = ids, lens[i] = n_ids, feats[i] = features + (size_t)i * K * D;
    t0 = ts_now(), c0 = cpu_now();
    int rc = llava_generate_batch(v, sn, N, prompts, lens, feats, G, outs, n_outs);
    double batch_s = ts_now() - t0, batch_cpu = cpu_now() - c0;
    for (int i = 0; rc == 0 && i < N; i++) tokens_batch += n_outs[i], free(outs[i]);
    free(prompts), free(feats), free(lens), free(outs), free(n_outs);
    if (rc) goto fail;
    printf("captions of %d images (%d prompt tokens incl. %d image rows, up to %d new):\n", N, n_ids, K, G);
    printf("  one at a time:         %8.3f images/s %8.2f new tok/s %8.2f new tok/cpu-s\n", N / seq_s, tokens_one / seq_s,
           tokens_one / seq_cpu);
    printf("  %2d sequences together: %8.3f images/s %8.2f new tok/s %8.2f new tok/cpu-s   (%.2fx wall, %.2fx per cpu-s)\n", S,
           N / batch_s, tokens_batch / batch_s, tokens_batch / batch_cpu, (tokens_batch / batch_s) / (tokens_one / seq_s),
           (tokens_batch / batch_cpu) / (tokens_one / seq_cpu));
    status = 0;
    llm_state_destroy(&s1);
    llm_state_destroy(&sn);
    free(ids);
fail:
    if (status) fprintf(stderr, "tessera bench caption: %s\n", ts_last_error());
    free(pixels), free(features);
    llava_destroy(&v);
    ts_ctx_destroy(&ctx);
    return status;
}
