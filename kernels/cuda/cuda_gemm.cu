/*
 * cuda_gemm.cu — matrix products through cuBLASLt, row-major as in ops.h.
 *
 * cuBLASLt is column-major: a row-major C[M,N] is a column-major C^T[N,M], so we ask for
 * C^T = op(B)^T op(A)^T, i.e. B is cuBLASLt's first operand and A its second, m = N, n = M.
 * A bias per column of the row-major C is then a bias per row of C^T, which is what
 * cuBLASLt's BIAS epilogues add.
 */
#include "kernels/cuda/cuda_private.h"

static cudaDataType_t lt_type(dtype t) {
    return t == DT_F16 ? CUDA_R_16F : t == DT_BF16 ? CUDA_R_16BF : CUDA_R_32F;
}

static cublasLtEpilogue_t lt_epilogue(cuda_epilogue e) {
    switch (e) {
    case CUDA_EPILOGUE_BIAS: return CUBLASLT_EPILOGUE_BIAS;
    case CUDA_EPILOGUE_GELU_TANH: return CUBLASLT_EPILOGUE_GELU;
    case CUDA_EPILOGUE_BIAS_GELU_TANH: return CUBLASLT_EPILOGUE_GELU_BIAS;
    default: return CUBLASLT_EPILOGUE_DEFAULT;
    }
}

/* A column-major layout of rows x cols with leading dimension ld, batched. */
static int make_layout(cublasLtMatrixLayout_t *out, dtype t, uint64_t rows, uint64_t cols, int64_t ld,
                       int count, int64_t stride) {
    if (cuda_check_lt(cublasLtMatrixLayoutCreate(out, lt_type(t), rows, cols, ld), "cublasLtMatrixLayoutCreate")) return -1;
    if (count > 1) {
        int32_t c = count;
        if (cuda_check_lt(cublasLtMatrixLayoutSetAttribute(*out, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &c, sizeof c),
                          "setting the batch count") ||
            cuda_check_lt(cublasLtMatrixLayoutSetAttribute(*out, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof stride),
                          "setting the batch stride"))
            return -1;
    }
    return 0;
}

static int check_params(const cuda_gemm_params *p) {
    if (cuda_check_float_type(p->ab_type, "cuda_gemm")) return -1;
    if (p->c_type != DT_F32 && p->c_type != p->ab_type)
        return ts_fail("cuda_gemm: C of type %s with %s inputs (C must be F32 or the inputs' type)",
                       dtype_name(p->c_type), dtype_name(p->ab_type));
    if (p->M < 0 || p->N < 0 || p->K < 0) return ts_fail("cuda_gemm: negative size %dx%dx%d", p->M, p->N, p->K);
    int a_cols = p->trans_a ? p->M : p->K, b_cols = p->trans_b ? p->K : p->N;
    if (p->lda < (a_cols > 1 ? a_cols : 1) || p->ldb < (b_cols > 1 ? b_cols : 1) || p->ldc < (p->N > 1 ? p->N : 1))
        return ts_fail("cuda_gemm: leading dimensions lda %d ldb %d ldc %d are too small for %dx%dx%d",
                       p->lda, p->ldb, p->ldc, p->M, p->N, p->K);
    bool has_bias = p->epilogue == CUDA_EPILOGUE_BIAS || p->epilogue == CUDA_EPILOGUE_BIAS_GELU_TANH;
    if (has_bias && !p->bias) return ts_fail("cuda_gemm: a bias epilogue without a bias");
    return 0;
}

int cuda_gemm(cuda_context *ctx, const cuda_gemm_params *p) {
    if (check_params(p)) return -1;
    int count = p->count > 1 ? p->count : 1;
    if (p->M == 0 || p->N == 0) return 0;
    cublasLtMatmulDesc_t op = NULL;
    cublasLtMatrixLayout_t la = NULL, lb = NULL, lc = NULL;
    cublasLtMatmulPreference_t pref = NULL;
    int rc = -1;
    /* F32 stays F32: CUBLAS_COMPUTE_32F never uses TF32 (the parity tests need F32) */
    cublasOperation_t ta = p->trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, tb = p->trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasLtEpilogue_t epi = lt_epilogue(p->epilogue);
    cudaDataType_t bias_type = lt_type(p->c_type);
    uint64_t ws = ctx->workspace_bytes;
    cublasLtMatmulHeuristicResult_t heur;
    int found = 0;
    if (cuda_check_lt(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F), "cublasLtMatmulDescCreate") ||
        cuda_check_lt(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta), "TRANSA") ||
        cuda_check_lt(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb), "TRANSB") ||
        cuda_check_lt(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi), "EPILOGUE"))
        goto done;
    if (p->bias && (p->epilogue == CUDA_EPILOGUE_BIAS || p->epilogue == CUDA_EPILOGUE_BIAS_GELU_TANH)) {
        int64_t zero = 0;
        if (cuda_check_lt(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &p->bias, sizeof p->bias), "BIAS_POINTER") ||
            cuda_check_lt(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type, sizeof bias_type), "BIAS_DATA_TYPE") ||
            cuda_check_lt(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_BATCH_STRIDE, &zero, sizeof zero), "BIAS_BATCH_STRIDE"))
            goto done;
    }
    /* cuBLASLt's first operand is our B, stored [K,N] (or [N,K] transposed) row-major */
    if (make_layout(&la, p->ab_type, p->trans_b ? p->K : p->N, p->trans_b ? p->N : p->K, p->ldb, count, p->stride_b) ||
        make_layout(&lb, p->ab_type, p->trans_a ? p->M : p->K, p->trans_a ? p->K : p->M, p->lda, count, p->stride_a) ||
        make_layout(&lc, p->c_type, p->N, p->M, p->ldc, count, p->stride_c))
        goto done;
    if (cuda_check_lt(cublasLtMatmulPreferenceCreate(&pref), "cublasLtMatmulPreferenceCreate") ||
        cuda_check_lt(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws),
                      "MAX_WORKSPACE_BYTES"))
        goto done;
    if (cuda_check_lt(cublasLtMatmulAlgoGetHeuristic(ctx->lt, op, la, lb, lc, lc, pref, 1, &heur, &found),
                      "cublasLtMatmulAlgoGetHeuristic"))
        goto done;
    if (found == 0) {
        ts_fail("cuda_gemm: cuBLASLt has no algorithm for %dx%dx%d (%s inputs, %s output, epilogue %d)",
                p->M, p->N, p->K, dtype_name(p->ab_type), dtype_name(p->c_type), (int)p->epilogue);
        goto done;
    }
    if (cuda_check_lt(cublasLtMatmul(ctx->lt, op, &p->alpha, p->B, la, p->A, lb, &p->beta, p->C, lc, p->C, lc,
                                     &heur.algo, ctx->workspace, ctx->workspace_bytes, ctx->stream),
                      "cublasLtMatmul"))
        goto done;
    rc = 0;
done:
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    if (lc) cublasLtMatrixLayoutDestroy(lc);
    if (lb) cublasLtMatrixLayoutDestroy(lb);
    if (la) cublasLtMatrixLayoutDestroy(la);
    if (op) cublasLtMatmulDescDestroy(op);
    if (rc) ts_fail_wrap("cuda_gemm %dx%dx%d", p->M, p->N, p->K);
    return rc;
}
