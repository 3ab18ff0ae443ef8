/* Tensor views, strides, copies and the arena: structural properties, no math. */
#include "tests/test.h"

#include <string.h>

int main(void) {
    TEST_BEGIN();
    float data[24];
    for (int i = 0; i < 24; i++) data[i] = (float)i;
    tensor t = tensor_f32(data, 2, 3, 4, 0);
    CHECK(t.ndim == 3 && tensor_numel(&t) == 24, "ndim %d", t.ndim);
    CHECK(tensor_is_contiguous(&t), "fresh view is contiguous");

    tensor p;
    CHECK_OK(tensor_permute(&p, &t, (int[]){2, 0, 1}));
    CHECK(p.shape[0] == 4 && p.shape[1] == 2 && p.shape[2] == 3, "permuted shape");
    CHECK(!tensor_is_contiguous(&p), "permuted view is strided");
    CHECK(tensor_get(&p, (int64_t[]){3, 1, 2}) == data[1 * 12 + 2 * 4 + 3], "strided element");

    float out[24];
    tensor_copy_to_f32(out, &p);
    CHECK(out[0] == 0 && out[1] == 4 && out[6] == 1, "copy of permuted view: %g %g %g", out[0], out[1], out[6]);

    tensor s;
    CHECK_OK(tensor_slice(&s, &t, 1, 1, 2));
    CHECK(s.shape[1] == 2 && tensor_get(&s, (int64_t[]){0, 0, 0}) == 4, "slice");
    CHECK(tensor_slice(&s, &t, 1, 2, 2) == -1, "slice past the end is refused");
    CHECK(strstr(ts_last_error(), "outside") != NULL, "message: %s", ts_last_error());

    arena *a = arena_new(1 << 20);
    size_t m = arena_mark(a);
    float *x = arena_floats(a, 100);
    CHECK(((uintptr_t)x & 63) == 0, "arena alignment");
    arena_floats(a, 1000);
    arena_reset(a, m);
    CHECK(arena_used(a) == m && arena_peak(a) >= 1100 * sizeof(float), "arena reset and peak");
    arena_destroy(&a);
    CHECK(a == NULL, "destroy clears the pointer");
    return TEST_END();
}
