/*
 * gpu_test.h — what the GPU tests share on top of tests/test.h: skipping where there is no
 * GPU, and moving fixtures to and from the device in any of F32/F16/BF16.
 */
#ifndef TESSERA_GPU_TEST_H
#define TESSERA_GPU_TEST_H

#include "kernels/cuda/cuda.h"
#include "tests/test.h"

#include <stdlib.h>
#include <string.h>

/* Exit status that ctest reports as "skipped" (SKIP_RETURN_CODE 77). */
#define GPU_TEST_SKIP_CODE 77

/* A context on device 0, or exit 77 when the driver sees no GPU. */
static inline cuda_context *gpu_test_context(size_t arena_bytes) {
    if (cuda_device_count() == 0) {
#ifdef TEST_SKIP
        TEST_SKIP("no CUDA device here");
#else
        printf("SKIP: no CUDA device here\n");
        fflush(stdout);
        exit(GPU_TEST_SKIP_CODE);
#endif
    }
    cuda_context *ctx = cuda_context_new(0, arena_bytes);
    if (!ctx) {
        fprintf(stderr, "FAIL: %s\n", ts_last_error());
        exit(1);
    }
    char desc[256];
    if (cuda_device_describe(0, desc, sizeof desc) == 0) printf("device 0: %s\n", desc);
    return ctx;
}

/* Tolerance relative to max(1, max |want|): F32 1e-5; F16 2e-3 (two roundings at
 * 2^-11); BF16 1.6e-2 (two roundings at 2^-8). */
static inline float gpu_test_tolerance(dtype t) {
    return t == DT_F32 ? 1e-5f : t == DT_F16 ? 2e-3f : 1.6e-2f;
}

static inline const char *gpu_test_suffix(dtype t) {
    return t == DT_F32 ? "f32" : t == DT_F16 ? "f16" : "bf16";
}

/* Loads the F32 input cuda/<name>.npy into fresh arena memory, rounded on the GPU to type
 * t (or left F32 when as_f32), as tools/gen_cuda_op_fixtures.py rounded it for the expected
 * values. *n gets the element count. Exits on a missing fixture (a broken checkout). */
static inline void *gpu_fixture(cuda_context *ctx, const char *name, dtype t, bool as_f32, int64_t *n) {
    char rel[256];
    snprintf(rel, sizeof rel, "cuda/%s.npy", name);
    tensor shape;
    float *host = fixture_npy(rel, &shape);
    if (!host) exit(1);
    int64_t count = tensor_numel(&shape);
    void *f32 = cuda_arena_alloc(ctx, (size_t)count * 4);
    if (!f32 || cuda_upload(ctx, f32, host, (size_t)count * 4) != 0) {
        fprintf(stderr, "FAIL: uploading %s: %s\n", rel, ts_last_error());
        exit(1);
    }
    free(host);
    if (n) *n = count;
    if (as_f32 || t == DT_F32) return f32;
    void *typed = cuda_arena_alloc(ctx, (size_t)count * dtype_size(t));
    if (!typed || cuda_convert(ctx, typed, t, f32, DT_F32, count) != 0) {
        fprintf(stderr, "FAIL: converting %s: %s\n", rel, ts_last_error());
        exit(1);
    }
    return typed;
}

/* Compares n device values of type t with the fixture cuda/<name>_<suffix>.npy. */
static inline void gpu_check_fixture(cuda_context *ctx, const char *what, const void *dev, dtype t, int64_t n,
                                     const char *name) {
    char rel[256], label[320];
    snprintf(rel, sizeof rel, "cuda/%s_%s.npy", name, gpu_test_suffix(t));
    snprintf(label, sizeof label, "%s (%s)", what, dtype_name(t));
    tensor shape;
    float *want = fixture_npy(rel, &shape);
    CHECK(want != NULL, "fixture %s", rel);
    if (!want) return;
    CHECK(tensor_numel(&shape) == n, "%s: %lld values, fixture has %lld", label, (long long)n,
          (long long)tensor_numel(&shape));
    float *got = (float *)malloc((size_t)n * sizeof(float));
    size_t mark = cuda_arena_mark(ctx);
    void *f32 = cuda_arena_alloc(ctx, (size_t)n * 4);
    int ok = f32 && cuda_convert(ctx, f32, DT_F32, dev, t, n) == 0 && cuda_download(ctx, got, f32, (size_t)n * 4) == 0;
    CHECK(ok, "%s: %s", label, ts_last_error());
    if (ok && tensor_numel(&shape) == n) {
        float scale;
        float worst = test_max_abs_diff(got, want, (size_t)n, &scale);
        printf("  %-44s max |diff| %.3g (max |want| %.3g)\n", label, worst, scale);
        CHECK_CLOSE_ARRAYS(got, want, (size_t)n, gpu_test_tolerance(t), label);
    }
    cuda_arena_reset(ctx, mark);
    free(got);
    free(want);
}

#endif
