/*
 * gemm.c — matrix products through OpenBLAS (cblas_sgemm), linear layers with weights
 * of any dtype, and the weight helpers of cpu.h.
 * Products are cut into tiles so that results never depend on the thread count (see gemm).
 *
 * Without OpenBLAS a plain triple loop keeps the build working (slowly).
 */
#include "kernels/cpu/cpu.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#ifdef TESSERA_HAVE_OPENBLAS
#include <cblas.h>
#endif

/* ---- helpers (cpu.h) -------------------------------------------------- */

const float *weight_f32(ts_ctx *ctx, const tensor *t, int slot) {
    if (!t) return NULL;
    if (t->type == DT_F32 && tensor_is_contiguous(t)) return t->data;
    float *w = cpu_scratch(ctx, slot, (size_t)tensor_numel(t));
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

/*
 * Results must not depend on how many threads compute them: the same seed must give the same
 * image on a 2-core laptop, a 64-core node, and in a render worker that shares its process
 * with others (issue 11). Neither OpenBLAS nor oneDNN's sgemm promises that: OpenBLAS 0.3.21
 * changed 40 % of the elements of a 36x64x576 product between 1 and 2 threads (its one-thread
 * path takes other kernels for small products), and its thread count is one setting for the
 * whole process, so a second pipeline changing it under a running GEMM changed images too.
 * So OpenBLAS stays single-threaded for the whole process (set once, never changed), and
 * gemm cuts every product into tiles whose shapes depend only on M and N; each tile is one
 * single-threaded BLAS call. The tiles run on our OpenMP threads, or one after another when
 * the caller is already inside a parallel region: the same numbers either way.
 */
enum { GEMM_TILE_M = 256, GEMM_TILE_N = 1024 };

static bool in_parallel_region(void) {
#ifdef _OPENMP
    return omp_in_parallel();
#else
    return false;
#endif
}

static pthread_once_t blas_once = PTHREAD_ONCE_INIT;
static void blas_single_threaded(void) {
#ifdef TESSERA_HAVE_OPENBLAS
    openblas_set_num_threads(1);
#endif
}

static void gemm_tile(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A, int lda,
                      const float *B, int ldb, float beta, float *C, int ldc) {
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

void cpu_gemm(ts_ctx *ctx, bool trans_a, bool trans_b, int M, int N, int K, float alpha,
          const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    pthread_once(&blas_once, blas_single_threaded);
    int tiles_m = (M + GEMM_TILE_M - 1) / GEMM_TILE_M, tiles_n = (N + GEMM_TILE_N - 1) / GEMM_TILE_N;
    int tiles = tiles_m * tiles_n;
    #pragma omp parallel for num_threads(cpu_threads(ctx)) schedule(dynamic, 1) if (tiles > 1 && !in_parallel_region())
    for (int t = 0; t < tiles; t++) {
        int i0 = (t / tiles_n) * GEMM_TILE_M, j0 = (t % tiles_n) * GEMM_TILE_N;
        int m = M - i0 < GEMM_TILE_M ? M - i0 : GEMM_TILE_M, n = N - j0 < GEMM_TILE_N ? N - j0 : GEMM_TILE_N;
        gemm_tile(trans_a, trans_b, m, n, K, alpha, A + (trans_a ? (size_t)i0 : (size_t)i0 * lda), lda,
                  B + (trans_b ? (size_t)j0 * ldb : (size_t)j0), ldb, beta, C + (size_t)i0 * ldc + j0, ldc);
    }
}

void cpu_gemm_batched(ts_ctx *ctx, int count, bool trans_a, bool trans_b, int M, int N, int K, float alpha,
                  const float *A, int lda, int64_t stride_a,
                  const float *B, int ldb, int64_t stride_b, float beta,
                  float *C, int ldc, int64_t stride_c) {
    /* Many small products: one per thread (each product is computed the same way wherever it
     * runs, see gemm). Few large ones: gemm spreads each over the threads. */
    double flops = 2.0 * M * N * K;
    #pragma omp parallel for num_threads(cpu_threads(ctx)) schedule(dynamic, 1) if (count > 1 && flops < 64.0 * 1024 * 1024)
    for (int i = 0; i < count; i++)
        cpu_gemm(ctx, trans_a, trans_b, M, N, K, alpha, A + i * stride_a, lda, B + i * stride_b, ldb, beta,
             C + i * stride_c, ldc);
}

/* ---- linear ------------------------------------------------------------ */

/* A few rows (LLM decoding) against a half-precision weight: widening the whole weight
 * would cost more than the product, so each thread widens one weight row at a time into
 * L1 and takes its dot products with every input row. */
static void linear_few_rows(ts_ctx *ctx, float *y, const float *x, int rows, int64_t out, int64_t in, const tensor *W,
                            const float *bias) {
    size_t es = dtype_size(W->type);
    #pragma omp parallel num_threads(cpu_threads(ctx)) if (out * in >= PARALLEL_MIN_WORK)
    {
        float *w = cpu_scratch(ctx, 0, (size_t)in);
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

int cpu_linear(ts_ctx *ctx, float *y, const float *x, int64_t rows, const tensor *W, const tensor *b) {
    if (!W || W->ndim != 2) return ts_fail("linear: weight must be 2-D [out, in]");
    int64_t out = W->shape[0], in = W->shape[1];
    if (check_weight(W, out * in, "linear", "weight") || check_weight(b, out, "linear", "bias")) return -1;
    if (rows <= 0) return 0;
    /* Slot 0 for the weight, slot 1 for the bias: both live until the end. */
    const float *bias = weight_f32(ctx, b, 1);
    if (rows <= 4 && W->type != DT_F32 && tensor_is_contiguous(W)) {
        linear_few_rows(ctx, y, x, (int)rows, out, in, W, bias);
        return 0;
    }
    const float *w = weight_f32(ctx, W, 0);
    float beta = 0.0f;
    if (bias) {
        for (int64_t r = 0; r < rows; r++) memcpy(y + r * out, bias, (size_t)out * sizeof(float));
        beta = 1.0f;
    }
    cpu_gemm(ctx, false, true, (int)rows, (int)out, (int)in, 1.0f, x, (int)in, w, (int)in, beta, y, (int)out);
    return 0;
}
