/*
 * test_piece_sum.c — the ordered all-reduce of kernels/piece_sum.h, and the U-Net's pieces
 * on one rank's threads (unet_split.pieces). Runs under ThreadSanitizer in `make test`.
 *
 * Order: three local pieces whose parts are 1e8, 1 and -1e8. In float, (1e8 + 1) + -1e8 is 0
 * (1e8 + 1 rounds to 1e8) while any order that adds -1e8 before 1 gives 1: the sum must be the
 * first, on every thread, every time. The U-Net: the tiny SD 1.x fixture in 2 pieces on one
 * rank equals diffusers' output within the U-Net parity tolerance, twice with the same bits
 * (test_unet_parallel compares the bits across rank counts under mpirun).
 */
#include "kernels/piece_sum.h"
#include "models/diffusion/unet.h"
#include "tests/test.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

enum { LOCAL = 3, N = 1000, CALLS = 50 };

typedef struct {
    piece_sum *s;
    int index, bad;
    float x[N];
} piece;

static void *run(void *arg) {
    piece *p = arg;
    static const float part[LOCAL] = {1e8f, 1.0f, -1e8f};
    for (int call = 0; call < CALLS; call++) {
        for (int i = 0; i < N; i++) p->x[i] = part[p->index] * (float)(1 + (i & 1));
        if (piece_sum_add(p->s, p->index, NULL, p->x, N)) { p->bad = -1; break; }
        /* odd i: (2e8 + 2) + -2e8 = 0 too (2e8 + 2 rounds to 2e8) */
        for (int i = 0; i < N; i++) p->bad += p->x[i] != 0.0f;
    }
    return NULL;
}

static void test_order(void) {
    piece_sum *s = piece_sum_new(LOCAL, LOCAL);
    CHECK(s != NULL, "%s", ts_last_error());
    if (!s) return;
    piece ps[LOCAL];
    pthread_t th[LOCAL];
    for (int j = 0; j < LOCAL; j++) {
        ps[j] = (piece){.s = s, .index = j};
        pthread_create(&th[j], NULL, run, &ps[j]);
    }
    for (int j = 0; j < LOCAL; j++) {
        pthread_join(th[j], NULL);
        CHECK(ps[j].bad == 0, "piece %d: %d sums not in piece order (or a failed call)", j, ps[j].bad);
    }
    piece_sum_destroy(&s);
    /* refusals: pieces not a multiple of the local ones; a group of the wrong size */
    CHECK(piece_sum_new(2, 3) == NULL && strstr(ts_last_error(), "2 local pieces of 3"), "%s", ts_last_error());
    s = piece_sum_new(1, 2);
    float x = 1;
    comm *one = comm_new_single();
    CHECK(s && piece_sum_add(s, 0, one, &x, 1) == -1 && strstr(ts_last_error(), "group of 2 ranks (it has 1)"), "%s",
          ts_last_error());
    comm_destroy(&one);
    piece_sum_destroy(&s);
}

static void test_unet_pieces(void) {
    tensor xs, cs, os, ts;
    float *x = fixture_npy("unet/sd1/x.npy", &xs), *t = fixture_npy("unet/sd1/t.npy", &ts);
    float *ctx = fixture_npy("unet/sd1/context.npy", &cs), *want = fixture_npy("unet/sd1/out.npy", &os);
    unet *u = unet_load_split(fixture_path("unet/sd1"), (unet_split){UNET_PARALLEL_TP, 0, 1, 2});
    CHECK(x && t && ctx && want && u, "%s", ts_last_error());
    if (x && t && ctx && want && u) {
        size_t n = (size_t)tensor_numel(&os);
        float *a = calloc(n, sizeof(float)), *b = calloc(n, sizeof(float));
        int B = (int)xs.shape[0], H = (int)xs.shape[2], W = (int)xs.shape[3], T = (int)cs.shape[1];
        CHECK_OK(unet_forward(u, test_ctx(), x, B, H, W, t, ctx, T, NULL, NULL, a));
        CHECK_OK(unet_forward(u, test_ctx(), x, B, H, W, t, ctx, T, NULL, NULL, b));
        float err = test_max_abs_diff(a, want, n, NULL);
        printf("sd1 in 2 pieces on one rank: max |err| %.3g vs diffusers\n", err);
        CHECK(err <= 3e-5f, "max |err| %g vs diffusers", err);
        CHECK(memcmp(a, b, n * sizeof(float)) == 0, "two calls differ");
        free(a), free(b);
    }
    unet_destroy(&u);
    free(x), free(t), free(ctx), free(want);
}

int main(void) {
    TEST_BEGIN();
    test_order();
    test_unet_pieces();
    return TEST_END();
}
