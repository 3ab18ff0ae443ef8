/*
 * test_comm_nccl.c — the NCCL comm (kernels/comm_nccl.h) against the host comm on the same
 * data: all-reduce (sum) of F32, F16 and BF16 values in place and not, all-gather, broadcast,
 * barrier, a split, and a refused dtype. Each rank's data is made on the host, summed and
 * gathered by the host comm (MPI under a launcher, else the single rank: NCCL refuses two
 * ranks on one GPU, so a one-GPU machine runs this at T = 1), uploaded, and the same
 * collective run by NCCL on the device; the downloads must agree: F32 integer-valued sums
 * bit for bit, other values within the type's rounding times the rank count.
 *
 * Under mpirun (a machine with one GPU per rank): mpirun -np T gpu_test_comm_nccl.
 * Exits 77 (ctest: skipped) where no GPU is present, or when built without NCCL (which
 * tools/gpu-check.sh counts as a failure on a GPU machine).
 */
#include "kernels/comm_nccl.h"
#include "tests/gpu/gpu_test.h"

#include <math.h>

/* Rank r's i-th value: integer-valued (exact sums) or not. */
static float value(int r, size_t i, bool integer) {
    uint32_t h = (uint32_t)(r * 2654435761u) ^ (uint32_t)(i * 40503u + 7u);
    h = (h ^ (h >> 15)) * 2246822519u;
    float v = (float)(h % 2001u) - 1000.0f; /* -1000 .. 1000 */
    return integer ? v : v / 997.0f;
}

/* Host float to F16/BF16 bits and back (round to nearest even), as the device holds them. */
static uint16_t to_half(float f, dtype t) { return t == DT_F16 ? f32_to_f16(f) : f32_to_bf16(f); }
static float from_half(uint16_t b, dtype t) { return t == DT_F16 ? f16_to_f32(b) : bf16_to_f32(b); }

static void check_all_reduce(comm *host, comm *gpu, cuda_context *ctx, dtype t, size_t n, bool in_place) {
    int size = comm_size(host), rank = comm_rank(host);
    size_t elem = t == DT_F32 ? 4 : 2;
    float *mine = malloc(n * 4), *want = malloc(n * 4), *got = malloc(n * 4);
    void *raw = malloc(n * elem);
    bool integer = t == DT_F32 && !in_place;
    for (size_t i = 0; i < n; i++) {
        float v = value(rank, i, integer);
        if (t != DT_F32) v = from_half(to_half(v, t), t); /* what the device holds */
        mine[i] = v;
        if (t == DT_F32) ((float *)raw)[i] = v;
        else ((uint16_t *)raw)[i] = to_half(v, t);
    }
    CHECK_OK(comm_all_reduce_sum(host, mine, want, n, DT_F32)); /* the host comm's sum (MPI's) */
    void *send = cuda_arena_alloc(ctx, n * elem), *recv = in_place ? send : cuda_arena_alloc(ctx, n * elem);
    CHECK_OK(cuda_upload(ctx, send, raw, n * elem));
    CHECK_OK(comm_all_reduce_sum(gpu, send, recv, n, t));
    CHECK_OK(cuda_download(ctx, raw, recv, n * elem));
    double worst = 0, scale = 1;
    for (size_t i = 0; i < n; i++) {
        got[i] = t == DT_F32 ? ((float *)raw)[i] : from_half(((uint16_t *)raw)[i], t);
        worst = fmax(worst, fabs((double)got[i] - want[i]));
        scale = fmax(scale, fabs(want[i]));
    }
    /* NCCL adds in the type: up to size - 1 roundings of the partial sums */
    double limit = integer ? 0 : (t == DT_F32 ? 1e-6 : gpu_test_tolerance(t)) * scale * size;
    CHECK(worst <= limit, "all-reduce %s of %zu values%s at T = %d: max |NCCL - %s| = %.3g (limit %.3g)",
          dtype_name(t), n, in_place ? " in place" : "", size, comm_kind(host), worst, limit);
    printf("all-reduce %-4s %7zu values%-9s T = %d: max |NCCL - %s| %.3g (limit %.3g)\n", dtype_name(t), n,
           in_place ? " in place" : "", size, comm_kind(host), worst, limit);
    free(mine), free(want), free(got), free(raw);
}

static void check_all_gather_and_broadcast(comm *host, comm *gpu, cuda_context *ctx) {
    int size = comm_size(host), rank = comm_rank(host);
    size_t bytes = 100003; /* odd: no alignment to lean on */
    unsigned char *mine = malloc(bytes), *want = malloc(bytes * (size_t)size), *got = malloc(bytes * (size_t)size);
    for (size_t i = 0; i < bytes; i++) mine[i] = (unsigned char)(value(rank, i, true) + 1000);
    CHECK_OK(comm_all_gather(host, mine, want, bytes));
    void *send = cuda_arena_alloc(ctx, bytes), *recv = cuda_arena_alloc(ctx, bytes * (size_t)size);
    CHECK_OK(cuda_upload(ctx, send, mine, bytes));
    CHECK_OK(comm_all_gather(gpu, send, recv, bytes));
    CHECK_OK(cuda_download(ctx, got, recv, bytes * (size_t)size));
    CHECK(!memcmp(got, want, bytes * (size_t)size), "all-gather of %zu bytes differs from %s's", bytes, comm_kind(host));

    int root = size - 1;
    CHECK_OK(comm_broadcast(host, mine, bytes, root));
    unsigned char *own = malloc(bytes);
    for (size_t i = 0; i < bytes; i++) own[i] = (unsigned char)(value(rank, i, true) + 1000);
    CHECK_OK(cuda_upload(ctx, send, own, bytes));
    CHECK_OK(comm_broadcast(gpu, send, bytes, root));
    CHECK_OK(cuda_download(ctx, got, send, bytes));
    CHECK(!memcmp(got, mine, bytes), "broadcast from rank %d differs from %s's", root, comm_kind(host));
    printf("all-gather of %zu bytes and broadcast from rank %d: equal to %s's\n", bytes, root, comm_kind(host));
    free(mine), free(want), free(got), free(own);
}

int main(void) {
    TEST_BEGIN();
    if (!comm_have_nccl()) TEST_SKIP("built without NCCL (CMake found no nccl.h and libnccl)");
    if (cuda_device_count() == 0) TEST_SKIP("no CUDA device here");
    comm *host = comm_new_world();
    CHECK(host != NULL, "%s", ts_last_error());
    if (!host) return TEST_END();
    int device = comm_nccl_device(host);
    CHECK(device >= 0, "%s", ts_last_error());
    if (device < 0) {
        comm_destroy(&host);
        return TEST_END();
    }
    cuda_context *ctx = cuda_context_new(device, (size_t)64 << 20);
    CHECK(ctx != NULL, "%s", ts_last_error());
    comm *gpu = ctx ? comm_new_nccl(host, device, cuda_context_stream(ctx)) : NULL;
    CHECK(gpu != NULL, "%s", ts_last_error());
    if (gpu) {
        char desc[256] = "";
        cuda_device_describe(device, desc, sizeof desc);
        printf("rank %d of %d (%s host comm) on device %d: %s\n", comm_rank(gpu), comm_size(gpu), comm_kind(host),
               device, desc);
        CHECK(!strcmp(comm_kind(gpu), "nccl") && comm_rank(gpu) == comm_rank(host) && comm_size(gpu) == comm_size(host),
              "kind %s, rank %d of %d", comm_kind(gpu), comm_rank(gpu), comm_size(gpu));
        size_t counts[] = {1, 13, 1001, 1 << 20};
        for (size_t k = 0; k < sizeof counts / sizeof counts[0]; k++) {
            check_all_reduce(host, gpu, ctx, DT_F32, counts[k], false);
            check_all_reduce(host, gpu, ctx, DT_F32, counts[k], true);
        }
        check_all_reduce(host, gpu, ctx, DT_F16, 10007, false);
        check_all_reduce(host, gpu, ctx, DT_BF16, 10007, true);
        check_all_gather_and_broadcast(host, gpu, ctx);
        CHECK_OK(comm_barrier(gpu));
        /* a type NCCL's comm does not sum: refused by name on every rank, the comm still usable */
        void *p = cuda_arena_alloc(ctx, 64);
        CHECK(comm_all_reduce_sum(gpu, p, p, 8, DT_I64) == -1 && strstr(ts_last_error(), "I64"), "%s", ts_last_error());
        /* a split into ranks of the same parity, then a sum within it */
        comm *half = comm_split(gpu, comm_rank(gpu) % 2, comm_rank(gpu));
        CHECK(half && !strcmp(comm_kind(half), "nccl"), "%s", ts_last_error());
        if (half) {
            int expect = (comm_size(gpu) - comm_rank(gpu) % 2 + 1) / 2;
            CHECK(comm_size(half) == expect, "split size %d, want %d", comm_size(half), expect);
            float one = 1.0f, sum = 0;
            void *d = cuda_arena_alloc(ctx, 4);
            CHECK_OK(cuda_upload(ctx, d, &one, 4));
            CHECK_OK(comm_all_reduce_sum(half, d, d, 1, DT_F32));
            CHECK_OK(cuda_download(ctx, &sum, d, 4));
            CHECK(sum == (float)expect, "sum of ones over the split: %g, want %d", sum, expect);
            comm_destroy(&half);
        }
        CHECK_OK(cuda_synchronize(ctx));
    }
    comm_destroy(&gpu);
    cuda_context_destroy(&ctx);
    comm_destroy(&host);
    return TEST_END();
}
