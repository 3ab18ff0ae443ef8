/*
 * ops_private.h — helpers shared by the CPU op files (not part of the public API):
 * widening weights of any dtype to float32, per-thread scratch buffers, vectorisable
 * exp/erf.
 */
#ifndef TESSERA_OPS_PRIVATE_H
#define TESSERA_OPS_PRIVATE_H

#include "kernels/ops.h"

#ifdef __clang__
/* clang at -O1 (the sanitizer build) skips vectorisation and would warn at every `omp simd`. */
#pragma clang diagnostic ignored "-Wpass-failed"
#endif

/* Per-thread growable, 64-byte aligned scratch; slot 0..SCRATCH_SLOTS-1 lets one op hold
 * several at once. Contents are undefined on return. Freed when the thread ends. */
#define SCRATCH_SLOTS 6   /* slot 5: oneDNN scratchpads (conv_dnnl.c) */
float *scratch_floats(int slot, size_t count);

/* The float32 data of a weight vector/matrix of any dtype: the tensor's own memory when
 * it is contiguous F32, else a widened copy in scratch slot `slot`. NULL if t is NULL. */
const float *weight_f32(const tensor *t, int slot);

/* Number of elements a weight must have, checked with a clear message. */
int check_weight(const tensor *t, int64_t numel, const char *op, const char *what);

/* The convolution backends, on float32 weights already widened (conv.c, conv_dnnl.c). */
int conv2d_im2col(float *out, const float *x, int N, int C, int H, int W,
                  const float *w, const float *bias, int OC, int KH, int KW, conv2d_params p);
int conv2d_dnnl(float *out, const float *x, int N, int C, int H, int W,
                const tensor *weight, const float *bias, int OC, int KH, int KW, conv2d_params p);
/* The backend AUTO resolves to when oneDNN is present, chosen by measurement (conv_dnnl.c). */
#define CONV_BACKEND_DEFAULT CONV_BACKEND_ONEDNN

/*
 * exp and erf that the compiler can vectorise. Hand-written because glibc's vector expf /
 * erff are only used under -ffast-math; these are a few lines each and accurate to a few
 * ulp (checked against torch in tests/unit/test_ops.c).
 *   ts_expf: 2^n * exp(r), n = round(x / ln 2), degree-7 Taylor on |r| <= ln2/2;
 *            0 below -87, inf above 88, NaN passes through.
 *   ts_erff: the rational approximation Eigen and XLA use on [-4, 4] (|erf| = 1 beyond).
 */
static inline float ts_expf(float x) {
    float xc = x < -87.0f ? -87.0f : x > 88.0f ? 88.0f : x;
    float t = xc * 1.44269504088896341f + 12582912.0f;        /* 1.5 * 2^23 rounds to an integer */
    float n = t - 12582912.0f;
    uint32_t tb;
    __builtin_memcpy(&tb, &t, 4);
    uint32_t sb = (tb - 0x4B400000u + 127u) << 23;              /* 2^n as float bits */
    float r = (xc - n * 0.693145751953125f) - n * 1.428606765330187045e-06f;
    float p = 1.0f / 5040;
    p = p * r + 1.0f / 720;
    p = p * r + 1.0f / 120;
    p = p * r + 1.0f / 24;
    p = p * r + 1.0f / 6;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    float s;
    __builtin_memcpy(&s, &sb, 4);
    float y = p * s;
    return x < -87.0f ? 0.0f : x > 88.0f ? __builtin_inff() : y;
}

static inline float ts_erff(float x) {
    float xc = x < -4.0f ? -4.0f : x > 4.0f ? 4.0f : x;
    float x2 = xc * xc;
    float p = x2 * -2.72614225801306e-10f + 2.77068142495902e-08f;
    p = p * x2 + -2.10102402082508e-06f;
    p = p * x2 + -5.69250639462346e-05f;
    p = p * x2 + -7.34990630326855e-04f;
    p = p * x2 + -2.95459980854025e-03f;
    p = p * x2 + -1.60960333262415e-02f;
    p = p * xc;
    float q = x2 * -1.45660718464996e-05f + -2.13374055278905e-04f;
    q = q * x2 + -1.68282697438203e-03f;
    q = q * x2 + -7.37332916720468e-03f;
    q = q * x2 + -1.42647390514189e-02f;
    return p / q;
}

/* Run a loop in parallel only when it is worth waking the threads. */
#define PARALLEL_MIN_WORK 32768

#endif
