/*
 * gemm.c — matrix products through OpenBLAS (cblas_sgemm), linear layers with weights
 * of any dtype, and the shared helpers of ops_private.h (scratch, weight widening,
 * BLAS threading).
 *
 * Without OpenBLAS a plain triple loop keeps the build working (slowly).
 */
#include "kernels/ops_private.h"

#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#ifdef TESSERA_HAVE_OPENBLAS
#include <cblas.h>
#endif

/* ---- helpers (ops_private.h) ------------------------------------------- */

static _Thread_local struct { float *data; size_t capacity; } scratch[SCRATCH_SLOTS];

float *scratch_floats(int slot, size_t count) {
    if (count > scratch[slot].capacity) {
        free(scratch[slot].data);
        size_t capacity = count + count / 4 + 16;
        scratch[slot].data = ts_aligned_alloc(capacity * sizeof(float));
        scratch[slot].capacity = capacity;
    }
    return scratch[slot].data;
}

const float *weight_f32(const tensor *t, int slot) {
    if (!t) return NULL;
    if (t->type == DT_F32 && tensor_is_contiguous(t)) return t->data;
    float *w = scratch_floats(slot, (size_t)tensor_numel(t));
    tensor_copy_to_f32(w, t);
    return w;
}

int check_weight(const tensor *t, int64_t numel, const char *op, const char *what) {
    if (!t) return 0;
    if (t->type != DT_F32 && t->type != DT_F16 && t->type != DT_BF16)
        return ts_fail("%s: %s has dtype %s (expected F32, F16 or BF16)", op, what, dtype_name(t->type));
    if (tensor_numel(t) != numel) {
        char buf[64];
        return ts_fail("%s: %s has shape %s (%lld elements), expected %lld elements", op, what,
                       tensor_shape_str(t, buf, sizeof buf), (long long)tensor_numel(t), (long long)numel);
    }
    return 0;
}

int blas_threads_single(void) {
#ifdef TESSERA_HAVE_OPENBLAS
    int previous = openblas_get_num_threads();
    if (previous != 1) openblas_set_num_threads(1);
    return previous;
#else
    return 1;
#endif
}

void blas_threads_restore(int previous) {
#ifdef TESSERA_HAVE_OPENBLAS
    if (previous != 1) openblas_set_num_threads(previous);
#else
    (void)previous;
#endif
}

/* ---- GEMM -------------------------------------------------------------- */

/*
 * Large products use OpenBLAS's own threads. (Splitting them over OpenMP threads instead,
 * to have one thread pool, was tried: it cost 5-50% more CPU time, most at few rows, e.g.
 * 77x3072x768, so OpenBLAS keeps its threading; our OpenMP loops that call gemm() make
 * BLAS single-threaded around themselves with blas_threads_single.)
 */
void gemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha,
          const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
#ifdef TESSERA_HAVE_OPENBLAS
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
                M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#else
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int k = 0; k < K; k++)
                s += (double)(trans_a ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k]) *
                     (trans_b ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j]);
            float c = beta == 0.0f ? 0.0f : beta * C[(size_t)i * ldc + j];
            C[(size_t)i * ldc + j] = c + alpha * (float)s;
        }
#endif
}

void gemm_batched(int count, bool trans_a, bool trans_b, int M, int N, int K, float alpha,
                  const float *A, int lda, int64_t stride_a,
                  const float *B, int ldb, int64_t stride_b, float beta,
                  float *C, int ldc, int64_t stride_c) {
    /* Many small products: one per thread, BLAS single-threaded. Few large ones: let
     * BLAS use the threads inside each product. */
    double flops = 2.0 * M * N * K;
    int threads = ts_get_threads();
    if (count >= threads && threads > 1 && flops < 64.0 * 1024 * 1024) {
        int previous = blas_threads_single();
        #pragma omp parallel for schedule(dynamic, 1)
        for (int i = 0; i < count; i++)
            gemm(trans_a, trans_b, M, N, K, alpha, A + i * stride_a, lda, B + i * stride_b, ldb,
                 beta, C + i * stride_c, ldc);
        blas_threads_restore(previous);
        return;
    }
    for (int i = 0; i < count; i++)
        gemm(trans_a, trans_b, M, N, K, alpha, A + i * stride_a, lda, B + i * stride_b, ldb, beta,
             C + i * stride_c, ldc);
}

/* ---- linear ------------------------------------------------------------ */

/* A few rows (LLM decoding) against a half-precision weight: widening the whole weight
 * would cost more than the product, so each thread widens one weight row at a time into
 * L1 and takes its dot products with every input row. */
static void linear_few_rows(float *y, const float *x, int rows, int64_t out, int64_t in, const tensor *W,
                            const float *bias) {
    size_t es = dtype_size(W->type);
    #pragma omp parallel if (out * in >= PARALLEL_MIN_WORK)
    {
        float *w = scratch_floats(0, (size_t)in);
        #pragma omp for schedule(static)
        for (int64_t o = 0; o < out; o++) {
            convert_to_f32(w, (const char *)W->data + (size_t)(o * in) * es, W->type, (size_t)in);
            for (int r = 0; r < rows; r++) {
                const float *xr = x + r * in;
                float sum = 0.0f;
                #pragma omp simd reduction(+:sum)
                for (int64_t i = 0; i < in; i++) sum += xr[i] * w[i];
                y[r * out + o] = sum + (bias ? bias[o] : 0.0f);
            }
        }
    }
}

int linear(float *y, const float *x, int64_t rows, const tensor *W, const tensor *b) {
    if (!W || W->ndim != 2) return ts_fail("linear: weight must be 2-D [out, in]");
    int64_t out = W->shape[0], in = W->shape[1];
    if (check_weight(W, out * in, "linear", "weight") || check_weight(b, out, "linear", "bias")) return -1;
    if (rows <= 0) return 0;
    /* Slot 0 for the weight, slot 1 for the bias: both live until the end. */
    const float *bias = weight_f32(b, 1);
    if (rows <= 4 && W->type != DT_F32 && tensor_is_contiguous(W)) {
        linear_few_rows(y, x, (int)rows, out, in, W, bias);
        return 0;
    }
    const float *w = weight_f32(W, 0);
    float beta = 0.0f;
    if (bias) {
        for (int64_t r = 0; r < rows; r++) memcpy(y + r * out, bias, (size_t)out * sizeof(float));
        beta = 1.0f;
    }
    gemm(false, true, (int)rows, (int)out, (int)in, 1.0f, x, (int)in, w, (int)in, beta, y, (int)out);
    return 0;
}
