/*
 * test_dtype.c — float32 <-> float16 / bfloat16 conversions (kernels/tensor.c), scalar and
 * bulk paths, against numpy (f16) and torch (bf16) on tricky values: ties, subnormals,
 * overflow, NaN/Inf (fixtures by tools/gen_op_fixtures.py).
 */
#include "kernels/tensor.h"
#include "tests/test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static float *load(const char *name, int64_t *n) {
    char rel[128];
    snprintf(rel, sizeof rel, "ops/%s.npy", name);
    tensor t;
    float *f = fixture_npy(rel, &t);
    if (!f) exit(1);
    *n = tensor_numel(&t);
    return f;
}

static bool half_is_nan(uint16_t h, bool bf16) {
    return bf16 ? (h & 0x7f80) == 0x7f80 && (h & 0x7f) : (h & 0x7c00) == 0x7c00 && (h & 0x3ff);
}

/* Counts mismatches between got and want bit patterns (any NaN matches any NaN). */
static int count_bit_mismatches(const uint16_t *got, const float *want, const float *input, int64_t n,
                                bool bf16, const char *what) {
    int bad = 0;
    for (int64_t i = 0; i < n; i++) {
        uint16_t w = (uint16_t)want[i];
        bool ok = got[i] == w || (half_is_nan(got[i], bf16) && half_is_nan(w, bf16));
        if (!ok && bad++ < 5)
            fprintf(stderr, "  %s: input %.9g (0x%08x): got 0x%04x want 0x%04x\n", what, input[i],
                    (unsigned)(*(const uint32_t *)&input[i]), got[i], w);
    }
    return bad;
}

static int count_float_mismatches(const float *got, const float *want, int64_t n, const char *what) {
    int bad = 0;
    for (int64_t i = 0; i < n; i++) {
        bool ok = memcmp(&got[i], &want[i], 4) == 0 || (isnan(got[i]) && isnan(want[i]));
        if (!ok && bad++ < 5) fprintf(stderr, "  %s: [%lld] got %.9g want %.9g\n", what, (long long)i, got[i], want[i]);
    }
    return bad;
}

int main(void) {
    TEST_BEGIN();
    int64_t n, n16, nbf;
    float *x = load("dtype_f32", &n);
    float *want16 = load("dtype_f16_bits", &n16);
    float *wantbf = load("dtype_bf16_bits", &nbf);
    CHECK(n == n16 && n == nbf, "fixture sizes %lld %lld %lld", (long long)n, (long long)n16, (long long)nbf);
    uint16_t *h = ts_malloc((size_t)n * 2);

    for (int64_t i = 0; i < n; i++) h[i] = f32_to_f16(x[i]);
    int bad = count_bit_mismatches(h, want16, x, n, false, "f32_to_f16");
    CHECK(bad == 0, "f32_to_f16: %d of %lld differ from numpy", bad, (long long)n);
    memset(h, 0, (size_t)n * 2);
    convert_from_f32(h, DT_F16, x, (size_t)n);
    bad = count_bit_mismatches(h, want16, x, n, false, "convert_from_f32 F16");
    CHECK(bad == 0, "convert_from_f32 F16: %d of %lld differ from numpy", bad, (long long)n);

    for (int64_t i = 0; i < n; i++) h[i] = f32_to_bf16(x[i]);
    bad = count_bit_mismatches(h, wantbf, x, n, true, "f32_to_bf16");
    CHECK(bad == 0, "f32_to_bf16: %d of %lld differ from torch", bad, (long long)n);
    memset(h, 0, (size_t)n * 2);
    convert_from_f32(h, DT_BF16, x, (size_t)n);
    bad = count_bit_mismatches(h, wantbf, x, n, true, "convert_from_f32 BF16");
    CHECK(bad == 0, "convert_from_f32 BF16: %d of %lld differ from torch", bad, (long long)n);
    free(h);

    /* every half-precision bit pattern widened, scalar and bulk */
    int64_t nall;
    float *want_all = load("dtype_f16_all_f32", &nall);
    CHECK(nall == 65536, "all-halves fixture has %lld values", (long long)nall);
    uint16_t *all = ts_malloc(65536 * 2);
    float *got = ts_malloc(65536 * sizeof(float));
    for (int i = 0; i < 65536; i++) all[i] = (uint16_t)i;
    for (int i = 0; i < 65536; i++) got[i] = f16_to_f32(all[i]);
    bad = count_float_mismatches(got, want_all, 65536, "f16_to_f32");
    CHECK(bad == 0, "f16_to_f32: %d of 65536 differ from numpy", bad);
    memset(got, 0, 65536 * sizeof(float));
    convert_to_f32(got + 1, all + 1, DT_F16, 65535);   /* odd start and length: tail paths */
    got[0] = f16_to_f32(0);
    bad = count_float_mismatches(got, want_all, 65536, "convert_to_f32 F16");
    CHECK(bad == 0, "convert_to_f32 F16: %d of 65536 differ from numpy", bad);

    int64_t nsample;
    float *want_bf = load("dtype_bf16_sample_f32", &nsample);
    uint16_t *sample = ts_malloc((size_t)nsample * 2);
    for (int64_t i = 0; i < nsample; i++) sample[i] = (uint16_t)(i * 7);
    for (int64_t i = 0; i < nsample; i++) got[i] = bf16_to_f32(sample[i]);
    bad = count_float_mismatches(got, want_bf, nsample, "bf16_to_f32");
    CHECK(bad == 0, "bf16_to_f32: %d of %lld differ from torch", bad, (long long)nsample);
    convert_to_f32(got, sample, DT_BF16, (size_t)nsample);
    bad = count_float_mismatches(got, want_bf, nsample, "convert_to_f32 BF16");
    CHECK(bad == 0, "convert_to_f32 BF16: %d of %lld differ from torch", bad, (long long)nsample);

    free(x); free(want16); free(wantbf); free(want_all); free(all); free(got); free(want_bf); free(sample);
    return TEST_END();
}
