/* torch_rng.c — torch's CPU generator and randn, bit for bit (see torch_rng.h). */
#include "models/diffusion/torch_rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Rounding must match torch's binary exactly. Its AVX2 kernels are built with -mfma and GCC
 * contracts a multiply whose only use is an add into one FMA, taking the earlier multiply in
 * program order when both operands of the add are products. The fmaf() calls below mark
 * exactly those places (found by comparing millions of draws with torch: a plain multiply-add
 * at any one of them gives 1-ulp differences); everything else rounds once per operation,
 * so the compiler must not contract on its own. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#define MT_M 397
#define MT_MATRIX_A 0x9908b0dfu
#define MT_UPPER 0x80000000u
#define MT_LOWER 0x7fffffffu

void torch_rng_seed(torch_rng *self, uint64_t seed) {
    self->seed = seed;
    self->state[0] = (uint32_t)seed;
    for (uint32_t j = 1; j < TORCH_RNG_STATE_N; j++)
        self->state[j] = 1812433253u * (self->state[j - 1] ^ (self->state[j - 1] >> 30)) + j;
    self->next = TORCH_RNG_STATE_N;   /* regenerate before the first draw */
    self->has_cached_normal = false;
    self->cached_normal = 0;
}

torch_rng *torch_rng_new(uint64_t seed) {
    torch_rng *self = ts_malloc(sizeof *self);
    torch_rng_seed(self, seed);
    return self;
}

void torch_rng_destroy(torch_rng **self) {
    if (!self || !*self) return;
    free(*self);
    *self = NULL;
}

static uint32_t mt_twist(uint32_t u, uint32_t v) {
    uint32_t mixed = (u & MT_UPPER) | (v & MT_LOWER);
    return (mixed >> 1) ^ ((v & 1u) ? MT_MATRIX_A : 0u);
}

static void mt_next_state(torch_rng *self) {
    uint32_t *s = self->state;
    int k = 0;
    for (; k < TORCH_RNG_STATE_N - MT_M; k++) s[k] = s[k + MT_M] ^ mt_twist(s[k], s[k + 1]);
    for (; k < TORCH_RNG_STATE_N - 1; k++) s[k] = s[k + MT_M - TORCH_RNG_STATE_N] ^ mt_twist(s[k], s[k + 1]);
    s[k] = s[k + MT_M - TORCH_RNG_STATE_N] ^ mt_twist(s[k], s[0]);
    self->next = 0;
}

uint32_t torch_rng_u32(torch_rng *self) {
    if (self->next >= TORCH_RNG_STATE_N) mt_next_state(self);
    uint32_t y = self->state[self->next++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
}

uint64_t torch_rng_u64(torch_rng *self) {
    uint64_t hi = torch_rng_u32(self);
    uint64_t lo = torch_rng_u32(self);
    return (hi << 32) | lo;
}

/* at::uniform_real_distribution<float>(0, 1): 24 random bits, exact in float. */
static float uniform_float(torch_rng *self) {
    return (float)(torch_rng_u32(self) & 0xffffffu) * (1.0f / 16777216.0f);
}

/* at::uniform_real_distribution<double>(0, 1): 53 random bits. */
static double uniform_double(torch_rng *self) {
    return (double)(torch_rng_u64(self) & ((UINT64_C(1) << 53) - 1)) * (1.0 / 9007199254740992.0);
}

/* ---- the cephes log and sincos of torch's avx_mathfun.h, one lane at a time ---------- */

static uint32_t float_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float bits_float(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/* log256_ps for x > 0 (Box-Muller's 1 - u lies in (0, 1]). */
static float avx_mathfun_log(float x) {
    if (x < 1.17549435e-38f) x = 1.17549435e-38f;          /* _mm256_max_ps(x, min_norm_pos) */
    uint32_t bits = float_bits(x);
    int32_t exponent = (int32_t)(bits >> 23) - 0x7f;
    x = bits_float((bits & ~0x7f800000u) | float_bits(0.5f)); /* mantissa in [0.5, 1) */
    float e = (float)exponent;
    e = e + 1.0f;
    bool below = x < 0.707106781186547524f;
    float tmp = below ? x : 0.0f;
    x = x - 1.0f;
    e = e - (below ? 1.0f : 0.0f);
    x = x + tmp;
    float z = x * x;
    static const float p[9] = {7.0376836292E-2f,  -1.1514610310E-1f, 1.1676998740E-1f,
                               -1.2420140846E-1f, +1.4249322787E-1f, -1.6668057665E-1f,
                               +2.0000714765E-1f, -2.4999993993E-1f, +3.3333331174E-1f};
    float y = p[0];
    for (int i = 1; i < 9; i++) y = fmaf(y, x, p[i]);
    y = y * x;
    tmp = e * -2.12194440e-4f;
    y = fmaf(y, z, tmp);
    y = fmaf(-z, 0.5f, y);
    x = x + y;
    x = fmaf(e, 0.693359375f, x);
    return x;
}

/* sincos256_ps for x >= 0 (Box-Muller's angle 2*pi*u). */
static void avx_mathfun_sincos(float x, float *s, float *c) {
    uint32_t sign_sin = float_bits(x) & 0x80000000u;
    x = fabsf(x);
    float y = x * 1.27323954473516f;                        /* 4 / pi */
    int32_t j = (int32_t)y;                                 /* cvttps: truncation */
    j = (j + 1) & ~1;
    y = (float)j;
    uint32_t swap_sign_sin = (uint32_t)(j & 4) << 29;
    bool sin_poly = (j & 2) == 0;
    x = fmaf(y, -0.78515625f, x);                     /* extended-precision reduction */
    x = fmaf(y, -2.4187564849853515625e-4f, x);
    x = fmaf(y, -3.77489497744594108e-8f, x);
    uint32_t sign_cos = (uint32_t)(~(j - 2) & 4) << 29;
    sign_sin ^= swap_sign_sin;

    float z = x * x;
    float yc = 2.443315711809948E-005f;                 /* cosine polynomial */
    yc = fmaf(yc, z, -1.388731625493765E-003f);
    yc = fmaf(yc, z, 4.166664568298827E-002f);
    yc = yc * z;
    float tmp = z * 0.5f;
    yc = fmaf(yc, z, -tmp);
    yc = yc + 1.0f;

    float ys = -1.9515295891E-4f;                       /* sine polynomial */
    ys = fmaf(ys, z, 8.3321608736E-3f);
    ys = fmaf(ys, z, -1.6666654611E-1f);
    ys = ys * z;
    ys = fmaf(ys, x, x);

    float ysin2 = sin_poly ? ys : 0.0f;
    float ysin1 = sin_poly ? 0.0f : yc;
    ys = ys - ysin2;
    yc = yc - ysin1;
    float sin_v = ysin1 + ysin2;
    float cos_v = yc + ys;
    *s = bits_float(float_bits(sin_v) ^ sign_sin);
    *c = bits_float(float_bits(cos_v) ^ sign_cos);
}

/* normal_fill_16_AVX2: 16 uniforms in place -> 16 normals. */
static void normal_fill_16(float *data, float mean, float std) {
    const float two_pi = (float)(2.0 * 3.14159265358979323846);
    for (int j = 0; j < 8; j++) {
        float u1 = 1.0f - data[j];
        float u2 = data[j + 8];
        float log_u1 = avx_mathfun_log(u1);
        float radius = sqrtf(-2.0f * log_u1);
        float theta = two_pi * u2;
        float sin_t, cos_t;
        avx_mathfun_sincos(theta, &sin_t, &cos_t);
        float n1 = radius * cos_t;
        float n2 = radius * sin_t;
        data[j] = fmaf(n1, std, mean);
        data[j + 8] = fmaf(n2, std, mean);
    }
}

/* at::normal_distribution<double>, with the generator's one-value cache. */
static double normal_double(torch_rng *self, double mean, double std) {
    if (self->has_cached_normal) {
        self->has_cached_normal = false;
        return self->cached_normal * std + mean;
    }
    double u1 = uniform_double(self);
    double u2 = uniform_double(self);
    double r = sqrt(-2.0 * log1p(-u2));
    double theta = 2.0 * 3.14159265358979323846 * u1;
    self->cached_normal = r * sin(theta);
    self->has_cached_normal = true;
    return r * cos(theta) * std + mean;
}

void torch_rng_normal(torch_rng *self, float *out, int64_t n, float mean, float std) {
    if (n < 16) {
        for (int64_t i = 0; i < n; i++) out[i] = (float)normal_double(self, mean, std);
        return;
    }
    for (int64_t i = 0; i < n; i++) out[i] = uniform_float(self);
    for (int64_t i = 0; i + 16 <= n; i += 16) normal_fill_16(out + i, mean, std);
    if (n % 16 != 0) {
        float *tail = out + n - 16;
        for (int i = 0; i < 16; i++) tail[i] = uniform_float(self);
        normal_fill_16(tail, mean, std);
    }
}

void torch_rng_randn(torch_rng *self, float *out, int64_t n) {
    torch_rng_normal(self, out, n, 0.0f, 1.0f);
}

int torch_rng_randn_tensor(torch_rng *const *gens, int n_gens, float *out, int64_t numel) {
    if (!gens || n_gens < 1) return ts_fail("randn_tensor: no generator given");
    if (numel % n_gens != 0)
        return ts_fail("randn_tensor: %lld values do not split over %d generators", (long long)numel, n_gens);
    int64_t per = numel / n_gens;
    for (int b = 0; b < n_gens; b++) torch_rng_randn(gens[b], out + b * per, per);
    return 0;
}
