/*
 * test_weight_binder.c — the one weight binder: whole tensors, row and column shards (what
 * each tensor-parallel rank keeps), 1x1-conv/linear shape equivalence, refusals naming the
 * tensor, and the random and counting sources.
 *
 * The file is written here with element (r, c, k) = 100 r + 10 c + k (exact in F16), so every value a shard
 * must hold is known by construction, not by the code under test.
 */
#include "models/formats/safetensors.h"
#include "models/formats/weight_binder.h"
#include "tests/test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static float value(int64_t r, int64_t c, int64_t k) { return (float)(100 * r + 10 * c + k); }

static void write_file(const char *path) {
    safetensors_writer *w = safetensors_writer_new(path);
    CHECK(w != NULL, "%s", ts_last_error());
    if (!w) return;
    /* "lin" [6, 4] F32, "conv" [6, 4, 3, 1] F16, "pw" [6, 4, 1, 1] F32 (a 1x1 conv), "vec" [6] F32 */
    tensor lin = tensor_new(DT_F32, 2, (const int64_t[]){6, 4}), conv = tensor_new(DT_F16, 4, (const int64_t[]){6, 4, 3, 1});
    tensor pw = tensor_new(DT_F32, 4, (const int64_t[]){6, 4, 1, 1}), vec = tensor_new(DT_F32, 1, (const int64_t[]){6});
    for (int r = 0; r < 6; r++) {
        ((float *)vec.data)[r] = value(r, 0, 0);
        for (int c = 0; c < 4; c++) {
            ((float *)lin.data)[r * 4 + c] = ((float *)pw.data)[r * 4 + c] = value(r, c, 0);
            for (int k = 0; k < 3; k++) ((uint16_t *)conv.data)[(r * 4 + c) * 3 + k] = f32_to_f16(value(r, c, k));
        }
    }
    CHECK_OK(safetensors_writer_add(w, "lin", &lin));
    CHECK_OK(safetensors_writer_add(w, "conv", &conv));
    CHECK_OK(safetensors_writer_add(w, "pw", &pw));
    CHECK_OK(safetensors_writer_add(w, "vec", &vec));
    CHECK_OK(safetensors_writer_finish(&w));
    tensor_free(&lin), tensor_free(&conv), tensor_free(&pw), tensor_free(&vec);
}

/* Every element of t equals value(r + r0, c + c0, k). */
static bool holds(const tensor *t, int64_t r0, int64_t c0) {
    int64_t R = t->shape[0], C = t->shape[1], K = t->ndim > 2 ? t->shape[2] : 1;
    for (int64_t r = 0; r < R; r++)
        for (int64_t c = 0; c < C; c++)
            for (int64_t k = 0; k < K; k++) {
                int64_t at = (r * C + c) * K + k;
                float got = t->type == DT_F16 ? f16_to_f32(((const uint16_t *)t->data)[at]) : ((const float *)t->data)[at];
                if (got != value(r + r0, c + c0, k)) return false;
            }
    return true;
}

int main(void) {
    TEST_BEGIN();
    char path[] = "/tmp/tessera_binder_XXXXXX.safetensors";
    int fd = mkstemps(path, 12);
    CHECK(fd >= 0, "mkstemps");
    close(fd);
    write_file(path);

    weight_binder *b = weight_binder_open(path);
    CHECK(b != NULL, "%s", ts_last_error());
    if (b) {
        tensor t;
        CHECK_OK(weight_binder_get(b, &t, SHARD_NONE_SPEC, 2, (const int64_t[]){6, 4}, "lin"));
        CHECK(holds(&t, 0, 0), "whole tensor");
        /* rows: rank 1 of 3 keeps rows 2..3, a view into the file */
        CHECK_OK(weight_binder_get(b, &t, (shard_spec){SHARD_ROWS, 1, 3}, 2, (const int64_t[]){6, 4}, "lin"));
        CHECK(t.shape[0] == 2 && t.shape[1] == 4 && holds(&t, 2, 0), "row shard 1/3");
        /* columns: rank 1 of 2 keeps columns 2..3 of every row, contiguous */
        CHECK_OK(weight_binder_get(b, &t, (shard_spec){SHARD_COLS, 1, 2}, 2, (const int64_t[]){6, 4}, "lin"));
        CHECK(t.shape[0] == 6 && t.shape[1] == 2 && tensor_is_contiguous(&t) && holds(&t, 0, 2), "column shard 1/2");
        /* a conv weight split by input channels keeps whole kernels */
        CHECK_OK(weight_binder_get(b, &t, (shard_spec){SHARD_COLS, 0, 2}, 4, (const int64_t[]){6, 4, 3, 1}, "conv"));
        CHECK(t.type == DT_F16 && t.shape[1] == 2 && t.shape[2] == 3 && holds(&t, 0, 0), "conv input-channel shard");
        CHECK_OK(weight_binder_get(b, &t, (shard_spec){SHARD_ROWS, 2, 3}, 4, (const int64_t[]){6, 4, 3, 1}, "conv"));
        CHECK(t.shape[0] == 2 && holds(&t, 4, 0), "conv output-channel shard");
        /* [6, 4, 1, 1] stored is [6, 4] asked, and [6, 4] stored is [6, 4, 1, 1] asked */
        CHECK_OK(weight_binder_get(b, &t, SHARD_NONE_SPEC, 2, (const int64_t[]){6, 4}, "pw"));
        CHECK(t.ndim == 2 && holds(&t, 0, 0), "1x1 conv as a matrix");
        CHECK_OK(weight_binder_get(b, &t, SHARD_NONE_SPEC, 4, (const int64_t[]){6, 4, 1, 1}, "lin"));
        CHECK(t.ndim == 4, "matrix as a 1x1 conv");
        size_t bytes = weight_binder_bytes(b);
        CHECK(bytes == (size_t)(24 + 8 + 12) * 4 + (size_t)(36 + 24) * 2 + (size_t)(24 + 24) * 4,
              "bytes bound: %zu", bytes);

        /* refusals name the file and the tensor */
        CHECK(weight_binder_get(b, &t, SHARD_NONE_SPEC, 2, (const int64_t[]){4, 6}, "lin") < 0, "wrong shape taken");
        CHECK(strstr(ts_last_error(), "'lin'") && strstr(ts_last_error(), "[6, 4]"), "message: %s", ts_last_error());
        CHECK(weight_binder_get(b, &t, SHARD_NONE_SPEC, 1, (const int64_t[]){6}, "nope") < 0, "missing tensor taken");
        CHECK(strstr(ts_last_error(), "'nope'") && strstr(ts_last_error(), path), "message: %s", ts_last_error());
        CHECK(weight_binder_get(b, &t, (shard_spec){SHARD_ROWS, 0, 4}, 2, (const int64_t[]){6, 4}, "lin") < 0,
              "6 rows split in 4");
        CHECK(strstr(ts_last_error(), "does not split"), "message: %s", ts_last_error());
        CHECK(weight_binder_has(b, "vec") && !weight_binder_has(b, "nope"), "has");
        int nd;
        int64_t shape[TENSOR_MAX_DIMS];
        CHECK(weight_binder_shape(b, "conv", &nd, shape) == 0 && nd == 4 && shape[2] == 3, "stored shape");
    }
    weight_binder_destroy(&b);

    /* random: the shard's shape, values in the promised ranges; counting: shapes only */
    weight_binder *r = weight_binder_random(DT_F16, 7);
    tensor w, bias, norm;
    CHECK_OK(weight_binder_get(r, &w, (shard_spec){SHARD_COLS, 0, 2}, 2, (const int64_t[]){64, 48}, "x.weight"));
    CHECK_OK(weight_binder_get(r, &bias, SHARD_NONE_SPEC, 1, (const int64_t[]){64}, "x.bias"));
    CHECK_OK(weight_binder_get(r, &norm, SHARD_NONE_SPEC, 1, (const int64_t[]){64}, "norm.weight"));
    bool in_range = w.shape[1] == 24 && w.type == DT_F16;
    for (int i = 0; i < 64 * 24; i++) in_range = in_range && fabsf(f16_to_f32(((uint16_t *)w.data)[i])) <= sqrtf(3.0f / 48) + 1e-3f;
    for (int i = 0; i < 64; i++) {
        float bv = f16_to_f32(((uint16_t *)bias.data)[i]), nv = f16_to_f32(((uint16_t *)norm.data)[i]);
        in_range = in_range && fabsf(bv) <= 0.0201f && fabsf(nv - 1.0f) <= 0.0201f;
    }
    CHECK(in_range, "random values in range");
    CHECK(weight_binder_params(r) == 64 * 24 + 64 + 64, "random params %lld", (long long)weight_binder_params(r));
    weight_binder_destroy(&r);
    weight_binder *count = weight_binder_counting();
    CHECK_OK(weight_binder_get(count, &w, SHARD_NONE_SPEC, 4, (const int64_t[]){320, 4, 3, 3}, "conv_in.weight"));
    CHECK(w.data == NULL && weight_binder_params(count) == 320 * 4 * 9, "counting");
    weight_binder_destroy(&count);
    unlink(path);
    return TEST_END();
}
