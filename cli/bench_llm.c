/*
 * bench_llm.c — `tessera bench llm -m MODEL`: prefill and decode tokens/s of the embedded
 * LLM runtime at batch 1 and batch 16 (16 sequences decoded together), and the batching
 * gain (batch-16 decode throughput over batch-1, measured in the same run).
 *
 *   tessera bench [--threads N] llm -m MODEL [--prompt 64] [--gen 16] [--batch 16]
 *
 * Token ids are fixed pseudo-random ids, so any model (random weights included) works.
 */
#include "cli/bench.h"
#include "models/llm/llm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Process CPU seconds: on a shared, oversubscribed machine wall time mostly measures the
 * neighbours, so the table also gives tokens per CPU-second (with --threads 1 that is
 * what one dedicated core would do). */
static double cpu_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

typedef struct { double prefill, decode, prefill_cpu, decode_cpu; int status; } rates;

/* Prefill `seqs` prompts of P tokens (chunks of up to 512 batch tokens), then G decode
 * steps of one token per sequence. Returns tokens/s of each phase. */
static rates measure(const llm *m, ts_ctx *ctx, int seqs, int P, int G) {
    rates r = {0};
    const int V = llm_get_config(m)->vocab_size, chunk = 512;
    llm_state *s = llm_state_new(m, ctx, seqs, P + G + 1, chunk > seqs ? chunk : seqs);
    if (!s) { r.status = -1; return r; }
    int total = seqs * P;
    int *tok = ts_malloc((size_t)total * sizeof(int)), *seq = ts_malloc((size_t)total * sizeof(int));
    int *pos = ts_malloc((size_t)total * sizeof(int)), *rows = ts_malloc((size_t)seqs * sizeof(int));
    float *logits = ts_malloc((size_t)seqs * (size_t)V * sizeof(float));
    uint32_t rng = 1234;
    for (int i = 0; i < total; i++) {
        rng = rng * 1664525u + 1013904223u;
        tok[i] = (int)((rng >> 8) % (uint32_t)V);
        seq[i] = i / P;
        pos[i] = i % P;
    }
    double t0 = ts_now(), c0 = cpu_now();
    for (int at = 0; at < total && !r.status; at += chunk) {
        int n = total - at < chunk ? total - at : chunk;
        /* logits only for rows that end a prompt, as generation would ask */
        int n_out = 0;
        for (int i = at; i < at + n; i++)
            if (pos[i] == P - 1) rows[n_out++] = i - at;
        r.status = llm_forward(m, s, n, tok + at, seq + at, pos + at, n_out, rows, logits);
    }
    r.prefill = total / (ts_now() - t0);
    r.prefill_cpu = total / (cpu_now() - c0);
    t0 = ts_now();
    c0 = cpu_now();
    for (int step = 0; step < G && !r.status; step++) {
        for (int i = 0; i < seqs; i++) { seq[i] = i; pos[i] = P + step; tok[i] = (tok[i] * 7 + 3) % V; }
        r.status = llm_forward(m, s, seqs, tok, seq, pos, seqs, NULL, logits);
    }
    r.decode = (double)seqs * G / (ts_now() - t0);
    r.decode_cpu = (double)seqs * G / (cpu_now() - c0);
    free(tok); free(seq); free(pos); free(rows); free(logits);
    llm_state_destroy(&s);
    return r;
}

int bench_llm(int argc, char **argv) {
    const char *model = NULL;
    int P = 64, G = 16, B = 16;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-m") == 0 && i + 1 < argc) model = argv[++i];
        else if (strcmp(argv[i], "--prompt") == 0 && i + 1 < argc) P = atoi(argv[++i]);
        else if (strcmp(argv[i], "--gen") == 0 && i + 1 < argc) G = atoi(argv[++i]);
        else if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc) B = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: tessera bench [--threads N] llm -m MODEL [--prompt 64] [--gen 16] [--batch 16]\n"
                            "  (make a 0.5B Qwen2-shaped Q8_0 model with tools/make_bench_gguf.py)\n");
            return 2;
        }
    }
    if (!model || P < 1 || G < 1 || B < 1) {
        fprintf(stderr, "tessera bench llm: needs -m MODEL (try tools/make_bench_gguf.py) and positive sizes\n");
        return 2;
    }
    llm *m = llm_open(model);
    ts_ctx *ctx = m ? bench_ctx_new() : NULL;
    if (!m || !ctx) { fprintf(stderr, "tessera bench llm: %s\n", ts_last_error()); llm_destroy(&m); return 1; }
    const llm_config *c = llm_get_config(m);
    printf("model: %s (%s, %.0fM parameters, %s, %d layers, dim %d, vocab %d)\n", model, c->arch,
           (double)llm_parameter_count(m) * 1e-6, llm_weight_type(m), c->n_layers, c->dim, c->vocab_size);
    printf("prompt %d tokens, %d decode steps\n", P, G);
    printf("%-6s %14s %14s %18s %18s\n", "batch", "prefill tok/s", "decode tok/s", "prefill tok/cpu-s", "decode tok/cpu-s");
    rates one = measure(m, ctx, 1, P, G);
    if (!one.status) printf("%-6d %14.1f %14.2f %18.1f %18.2f\n", 1, one.prefill, one.decode, one.prefill_cpu, one.decode_cpu);
    rates many = one.status ? one : measure(m, ctx, B, P, G);
    if (!many.status) printf("%-6d %14.1f %14.2f %18.1f %18.2f\n", B, many.prefill, many.decode, many.prefill_cpu, many.decode_cpu);
    int status = one.status || many.status;
    if (status) fprintf(stderr, "tessera bench llm: %s\n", ts_last_error());
    else printf("batching gain (batch-%d decode over batch-1): %.2fx wall, %.2fx per cpu-second\n", B,
                many.decode / one.decode, many.decode_cpu / one.decode_cpu);
    llm_destroy(&m);
    ts_ctx_destroy(&ctx);
    return status;
}
