/*
 * test_cuda_context.c — the CUDA context's memory: uploads and downloads through the pinned
 * staging buffer (sizes that span several staging chunks), device buffers, the arena's
 * bookkeeping and its "full" error, and a bad device number. Exits 77 (ctest: skipped)
 * where no GPU is present.
 */
#include "tests/gpu/gpu_test.h"

#include <stdint.h>

int main(void) {
    TEST_BEGIN();
    CHECK(cuda_context_new(-1, 0) == NULL && strstr(ts_last_error(), "device -1"), "%s", ts_last_error());
    cuda_context *ctx = gpu_test_context((size_t)1 << 20);
    CHECK(cuda_context_new(cuda_device_count(), 0) == NULL, "a device past the last one");

    /* 150 MB: more than two halves of the 64 MB staging buffer, and an odd length */
    size_t n = ((size_t)150 << 20) + 13;
    unsigned char *src = malloc(n), *back = malloc(n);
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) { h = (h ^ (unsigned char)i) * 16777619u; src[i] = (unsigned char)(h >> 24); }
    memset(back, 0, n);
    cuda_buffer *a = cuda_buffer_new(ctx, n), *b = cuda_buffer_new(ctx, n);
    CHECK(a && b, "%s", ts_last_error());
    if (a && b) {
        CHECK(cuda_buffer_size(a) == n, "buffer size %zu", cuda_buffer_size(a));
        CHECK_OK(cuda_upload(ctx, cuda_buffer_data(a), src, n));
        memset(src, 0xAB, 1000);   /* the source may be reused at once: the upload has its copy */
        CHECK_OK(cuda_upload(ctx, cuda_buffer_data(b), src, 1000));
        CHECK_OK(cuda_download(ctx, back, cuda_buffer_data(a), n));
        h = 2166136261u;
        size_t bad = n;
        for (size_t i = 0; i < n && bad == n; i++) {
            h = (h ^ (unsigned char)i) * 16777619u;
            if (back[i] != (unsigned char)(h >> 24)) bad = i;
        }
        CHECK(bad == n, "round trip differs first at byte %zu", bad);
        CHECK_OK(cuda_download(ctx, back, cuda_buffer_data(b), 1000));
        CHECK(back[0] == 0xAB && back[999] == 0xAB, "second upload: %02x %02x", back[0], back[999]);
        CHECK_OK(cuda_zero(ctx, cuda_buffer_data(b), 1000));
        CHECK_OK(cuda_download(ctx, back, cuda_buffer_data(b), 1000));
        CHECK(back[0] == 0 && back[999] == 0, "zeroed: %02x %02x", back[0], back[999]);
    }
    cuda_buffer_destroy(&a);
    cuda_buffer_destroy(&b);
    CHECK(a == NULL && b == NULL, "destroy clears the pointer");

    /* arena: aligned bump allocation, reset to a mark, a clear error when full */
    size_t mark = cuda_arena_mark(ctx);
    char *p1 = cuda_arena_alloc(ctx, 100), *p2 = cuda_arena_alloc(ctx, 100);
    CHECK(p1 && p2 && p2 - p1 == 256 && ((uintptr_t)p2 % 256) == 0, "arena pointers %p %p", (void *)p1, (void *)p2);
    CHECK(cuda_arena_alloc(ctx, (size_t)2 << 20) == NULL && strstr(ts_last_error(), "arena"), "%s", ts_last_error());
    cuda_arena_reset(ctx, mark);
    CHECK(cuda_arena_alloc(ctx, 100) == p1, "reset gives the same memory back");
    CHECK(cuda_arena_peak(ctx) >= 356, "peak %zu", cuda_arena_peak(ctx));
    CHECK_OK(cuda_synchronize(ctx));

    free(src);
    free(back);
    cuda_context_destroy(&ctx);
    CHECK(ctx == NULL, "destroy clears the pointer");
    return TEST_END();
}
