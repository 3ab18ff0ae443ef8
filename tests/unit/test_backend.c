/*
 * test_backend.c — contexts and buffers (kernels/backend.h): device names, buffers and their
 * bounds, and the promise that two contexts in one process share nothing mutable: two threads,
 * each with its own context, run the same convolutions and weight products at the same time
 * and get exactly the bytes one context gets alone (run under ThreadSanitizer in
 * `make test-tsan`).
 */
#include "kernels/comm.h"
#include "kernels/ops.h"
#include "tests/test.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

enum { C = 64, H = 24, OC = 96, N = 2, ROWS = N * C * H * H / (C * 9) };   /* x read as [ROWS, C*9] too */

typedef struct {
    const float *x, *w32;
    const tensor *w16, *b;
    float *conv_out, *gemm_out;
    int threads, status;
} work;

/* A convolution on the blocked path (F16 weights, few positions), one on oneDNN's, one by
 * Winograd, weight products shared out both ways, with the context's scratch in use throughout. */
static void *run(void *arg) {
    work *k = arg;
    ts_ctx *ctx = ts_ctx_new("cpu", k->threads);
    if (!ctx) { k->status = -1; return NULL; }
    conv2d_params p = {.stride_h = 1, .stride_w = 1, .pad_h = 1, .pad_w = 1};
    for (int rep = 0; rep < 3 && k->status == 0; rep++) {
        k->status |= conv2d(ctx, k->conv_out, k->x, N, C, H, H, k->w16, k->b, p);
        k->status |= conv2d(ctx, k->conv_out + (size_t)N * OC * H * H, k->x, 1, C, 4, 4, k->w16, k->b, p);
        conv2d_set_backend(ctx, CONV_BACKEND_WINOGRAD);   /* its transforms and 16 products per chunk */
        k->status |= conv2d(ctx, k->conv_out + (size_t)(N * H * H + 16) * OC, k->x, N, C, H, H, k->w16, k->b, p);
        conv2d_set_backend(ctx, CONV_BACKEND_AUTO);
        tensor w = tensor_f32((float *)k->w32, OC, C * 9, 0, 0);
        weight_gemm_params g = {.weight_left = false, .other = ROWS, .K = C * 9, .X = k->x, .ldx = C * 9,
                                .C = k->gemm_out, .ldc = OC, .count = 1};
        k->status |= weight_gemm(ctx, &w, &g);
        /* x as a [ROWS, C*9] weight against OC token rows: fewer rows than the weight's, so the
         * threads share it out in blocks of weight rows */
        tensor wx = tensor_f32((float *)k->x, ROWS, C * 9, 0, 0);
        weight_gemm_params gr = {.weight_left = false, .other = OC, .K = C * 9, .X = k->w32, .ldx = C * 9,
                                 .C = k->gemm_out + ROWS * OC, .ldc = ROWS, .count = 1};
        k->status |= weight_gemm(ctx, &wx, &gr);
    }
    k->status |= ts_ctx_synchronize(ctx);
    ts_ctx_destroy(&ctx);
    return NULL;
}

int main(void) {
    TEST_BEGIN();

    /* device names */
    ts_ctx *ctx = ts_ctx_new("cpu", 2);
    CHECK(ctx && strcmp(ts_ctx_backend_name(ctx), "cpu") == 0 && ts_ctx_threads(ctx) == 2 && ts_ctx_host_memory(ctx),
          "cpu context: %s", ts_last_error());
    CHECK(ts_ctx_new("rocm", 1) == NULL && strstr(ts_last_error(), "no such backend") && strstr(ts_last_error(), "cpu"),
          "unknown backend: %s", ts_last_error());
    CHECK(ts_ctx_new("cpu:x", 1) == NULL && strstr(ts_last_error(), "cpu:x"), "bad index: %s", ts_last_error());
    CHECK(ts_ctx_new("cpu:1", 1) == NULL && strstr(ts_last_error(), "one CPU device"), "cpu:1: %s", ts_last_error());
    CHECK(comm_size(ts_ctx_comm(ctx)) == 1 && comm_rank(ts_ctx_comm(ctx)) == 0, "default comm: one rank");

    /* buffers: a round trip, and offsets past the end refused */
    ts_buffer *b = ts_buffer_new(ctx, 64);
    CHECK(b && ts_buffer_size(b) == 64, "buffer");
    if (b) {
        char in[16] = "fifteen letters", out[16] = {0};
        CHECK_OK(ts_buffer_set(b, 40, in, 16));
        CHECK_OK(ts_buffer_get(b, 40, out, 16));
        CHECK(memcmp(in, out, 16) == 0, "round trip");
        CHECK(ts_buffer_set(b, 56, in, 16) < 0 && strstr(ts_last_error(), "outside"), "overrun: %s", ts_last_error());
        float host[6] = {1, 2, 3, 4, 5, 6};
        tensor t = tensor_f32(host, 2, 3, 0, 0), dev;
        ts_buffer *owner;
        CHECK_OK(tensor_to_backend(ctx, &t, &dev, &owner));
        CHECK(owner == NULL && dev.data == host, "on the CPU a tensor is used where it is");
    }
    ts_buffer_destroy(&b);
    ts_ctx_destroy(&ctx);
    CHECK(ctx == NULL, "destroy clears the pointer");

    /* two contexts on two threads at once == one context alone */
    size_t xn = (size_t)N * C * H * H, wn = (size_t)OC * C * 9, outn = (size_t)(2 * N * H * H + 16) * OC;
    float *x = malloc(xn * sizeof(float)), *w32 = malloc(wn * sizeof(float));
    uint16_t *w16d = malloc(wn * 2);
    float *bias = malloc(OC * sizeof(float));
    uint32_t s = 1;
    for (size_t i = 0; i < xn; i++) { s = s * 1664525u + 1013904223u; x[i] = (float)(s >> 8) * 0x1p-24f - 0.5f; }
    for (size_t i = 0; i < wn; i++) { s = s * 1664525u + 1013904223u; w32[i] = (float)(s >> 8) * 0x1p-27f; w16d[i] = f32_to_f16(w32[i]); }
    for (int i = 0; i < OC; i++) bias[i] = 0.01f * (float)i;
    tensor w16 = tensor_view(w16d, DT_F16, 4, (const int64_t[]){OC, C, 3, 3}), bt = tensor_f32(bias, OC, 0, 0, 0);
    work alone = {x, w32, &w16, &bt, calloc(outn, 4), calloc((size_t)2 * ROWS * OC, 4), 2, 0};
    run(&alone);
    CHECK(alone.status == 0, "alone: %s", ts_last_error());
    work both[2];
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        both[i] = (work){x, w32, &w16, &bt, calloc(outn, 4), calloc((size_t)2 * ROWS * OC, 4), i + 1, 0};
        pthread_create(&th[i], NULL, run, &both[i]);
    }
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < 2; i++) {
        CHECK(both[i].status == 0, "thread %d", i);
        CHECK(memcmp(both[i].conv_out, alone.conv_out, outn * 4) == 0, "thread %d (%d threads): conv bytes differ", i,
              both[i].threads);
        CHECK(memcmp(both[i].gemm_out, alone.gemm_out, (size_t)2 * ROWS * OC * 4) == 0, "thread %d: weight_gemm bytes differ", i);
        free(both[i].conv_out), free(both[i].gemm_out);
    }
    free(alone.conv_out), free(alone.gemm_out), free(x), free(w32), free(w16d), free(bias);
    return TEST_END();
}
