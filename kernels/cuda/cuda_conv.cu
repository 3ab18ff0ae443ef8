/*
 * cuda_conv.cu — 2-D convolution through cuDNN, NHWC activations and OHWI weights.
 *
 * The algorithm comes from cuDNN's heuristics (no timing runs: those would stall the first
 * step); the first one that fits the workspace (grown up to MAX_WORKSPACE) is used, and
 * remembered per shape in the context (cuda_conv_plan). F32
 * is pinned to FMA math and GEMM-like algorithms so that neither TF32 nor Winograd's
 * rounding creeps into the parity path; F16/BF16 use the
 * tensor cores with F32 accumulation. The bias is a separate pass (cuda_add_bias):
 * cuDNN's fused bias+activation call takes only one algorithm.
 */
#include "kernels/cuda/cuda_private.h"


#define MAX_WORKSPACE ((size_t)512 << 20)

static cudnnDataType_t dnn_type(dtype t) {
    return t == DT_F16 ? CUDNN_DATA_HALF : t == DT_BF16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_FLOAT;
}

static bool same_shape(const cuda_conv_params *a, const cuda_conv_params *b) {
    return a->N == b->N && a->H == b->H && a->W == b->W && a->C == b->C && a->OC == b->OC && a->KH == b->KH &&
           a->KW == b->KW && a->stride == b->stride && a->pad == b->pad && a->groups == b->groups && a->type == b->type &&
           a->nchw == b->nchw;
}

static const cuda_conv_plan *find_plan(const cuda_context *ctx, const cuda_conv_params *p) {
    for (int i = 0; i < ctx->conv_plan_count; i++)
        if (same_shape(&ctx->conv_plans[i].key, p)) return &ctx->conv_plans[i];
    return NULL;
}

/* + bias[OC]: along the last dimension (NHWC) or per channel plane (NCHW, F32 only). */
static int add_conv_bias(cuda_context *ctx, void *out, const void *bias, const cuda_conv_params *p, int OH, int OW) {
    if (!p->nchw) return cuda_add_bias(ctx, out, bias, p->type, 1, (int64_t)p->N * OH * OW, p->OC);
    if (p->type != DT_F32) return ts_fail("cuda_conv2d: an NCHW bias is F32 only");
    return cuda_add_channel_bias_nchw(ctx, (float *)out, p->N, p->OC, (int64_t)OH * OW, (const float *)bias, false);
}

void cuda_conv2d_out_size(const cuda_conv_params *p, int *OH, int *OW) {
    int s = p->stride > 0 ? p->stride : 1;
    *OH = (p->H + 2 * p->pad - p->KH) / s + 1;
    *OW = (p->W + 2 * p->pad - p->KW) / s + 1;
}

int cuda_conv2d(cuda_context *ctx, void *out, const void *x, const void *w, const void *bias,
                const cuda_conv_params *p) {
    if (cuda_check_float_type(p->type, "cuda_conv2d")) return -1;
    int groups = p->groups > 1 ? p->groups : 1, stride = p->stride > 0 ? p->stride : 1;
    int OH, OW;
    cuda_conv2d_out_size(p, &OH, &OW);
    if (p->N <= 0 || p->C <= 0 || p->OC <= 0 || p->KH <= 0 || p->KW <= 0 || OH <= 0 || OW <= 0 || p->pad < 0)
        return ts_fail("cuda_conv2d: bad shape: x [%d, %d, %d, %d], weight [%d, %d, %d, ·], stride %d, pad %d",
                       p->N, p->H, p->W, p->C, p->OC, p->KH, p->KW, stride, p->pad);
    if (p->C % groups || p->OC % groups)
        return ts_fail("cuda_conv2d: %d input and %d output channels do not split into %d groups", p->C, p->OC, groups);

    cudnnDataType_t dt = dnn_type(p->type);
    /* NCHW filters are OIHW: cuDNN's NCHW filter format is [K, C, H, W] */
    cudnnTensorFormat_t layout = p->nchw ? CUDNN_TENSOR_NCHW : CUDNN_TENSOR_NHWC;
    cudnnTensorDescriptor_t xd = NULL, yd = NULL;
    cudnnFilterDescriptor_t wd = NULL;
    cudnnConvolutionDescriptor_t cd = NULL;
    cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    int returned = 0, chosen = -1, rc = -1;
    const cuda_conv_plan *plan = NULL;
    float alpha = 1, beta = 0;
    if (cuda_check_dnn(cudnnCreateTensorDescriptor(&xd), "cudnnCreateTensorDescriptor") ||
        cuda_check_dnn(cudnnCreateTensorDescriptor(&yd), "cudnnCreateTensorDescriptor") ||
        cuda_check_dnn(cudnnCreateFilterDescriptor(&wd), "cudnnCreateFilterDescriptor") ||
        cuda_check_dnn(cudnnCreateConvolutionDescriptor(&cd), "cudnnCreateConvolutionDescriptor"))
        goto done;
    if (cuda_check_dnn(cudnnSetTensor4dDescriptor(xd, layout, dt, p->N, p->C, p->H, p->W), "input descriptor") ||
        cuda_check_dnn(cudnnSetTensor4dDescriptor(yd, layout, dt, p->N, p->OC, OH, OW), "output descriptor") ||
        cuda_check_dnn(cudnnSetFilter4dDescriptor(wd, dt, layout, p->OC, p->C / groups, p->KH, p->KW), "filter descriptor") ||
        cuda_check_dnn(cudnnSetConvolution2dDescriptor(cd, p->pad, p->pad, stride, stride, 1, 1, CUDNN_CROSS_CORRELATION,
                                                       CUDNN_DATA_FLOAT), "convolution descriptor") ||
        cuda_check_dnn(cudnnSetConvolutionGroupCount(cd, groups), "group count") ||
        cuda_check_dnn(cudnnSetConvolutionMathType(cd, p->type == DT_F32 ? CUDNN_FMA_MATH : CUDNN_TENSOR_OP_MATH), "math type"))
        goto done;
    plan = find_plan(ctx, p);
    if (plan) {
        if (cuda_workspace_reserve(ctx, plan->workspace)) goto done;
        if (p->type != DT_F32 &&
            cuda_check_dnn(cudnnSetConvolutionMathType(cd, (cudnnMathType_t)plan->math_type), "math type"))
            goto done;
        if (cuda_check_dnn(cudnnConvolutionForward(ctx->dnn, &alpha, xd, x, wd, w, cd, (cudnnConvolutionFwdAlgo_t)plan->algo,
                                                   ctx->workspace, ctx->workspace_bytes, &beta, yd, out), "cudnnConvolutionForward"))
            goto done;
        if (bias && add_conv_bias(ctx, out, bias, p, OH, OW)) goto done;
        rc = 0;
        goto done;
    }
    if (cuda_check_dnn(cudnnGetConvolutionForwardAlgorithm_v7(ctx->dnn, xd, wd, cd, yd, CUDNN_CONVOLUTION_FWD_ALGO_COUNT,
                                                              &returned, perf), "cudnnGetConvolutionForwardAlgorithm_v7"))
        goto done;
    for (int i = 0; i < returned && chosen < 0; i++) {
        if (perf[i].status != CUDNN_STATUS_SUCCESS || perf[i].memory > MAX_WORKSPACE) continue;
        /* F32 is the parity path: only the direct and GEMM-like algorithms, whose rounding is
         * a plain dot product's (Winograd and FFT transform the operands) */
        cudnnConvolutionFwdAlgo_t al = perf[i].algo;
        if (p->type == DT_F32 && (al == CUDNN_CONVOLUTION_FWD_ALGO_FFT || al == CUDNN_CONVOLUTION_FWD_ALGO_FFT_TILING ||
                                  al == CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD || al == CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED))
            continue;
        chosen = i;
    }
    if (chosen < 0) {
        ts_fail("cuda_conv2d: cuDNN offers no algorithm for this convolution");
        goto done;
    }
    if (ctx->conv_plan_count < CUDA_CONV_PLANS)
        ctx->conv_plans[ctx->conv_plan_count++] =
            (cuda_conv_plan){*p, (int)perf[chosen].algo, (int)perf[chosen].mathType, perf[chosen].memory};
    if (cuda_workspace_reserve(ctx, perf[chosen].memory)) goto done;
    if (p->type != DT_F32 &&
        cuda_check_dnn(cudnnSetConvolutionMathType(cd, perf[chosen].mathType), "math type"))
        goto done;
    if (cuda_check_dnn(cudnnConvolutionForward(ctx->dnn, &alpha, xd, x, wd, w, cd, perf[chosen].algo, ctx->workspace,
                                               ctx->workspace_bytes, &beta, yd, out), "cudnnConvolutionForward"))
        goto done;
    if (bias && add_conv_bias(ctx, out, bias, p, OH, OW)) goto done;
    rc = 0;
done:
    if (cd) cudnnDestroyConvolutionDescriptor(cd);
    if (wd) cudnnDestroyFilterDescriptor(wd);
    if (yd) cudnnDestroyTensorDescriptor(yd);
    if (xd) cudnnDestroyTensorDescriptor(xd);
    if (rc) ts_fail_wrap("cuda_conv2d N %d, C %d, %dx%d (%s, %s), OC %d, kernel %dx%d, groups %d", p->N, p->C, p->H, p->W,
                         p->nchw ? "NCHW" : "NHWC", dtype_name(p->type), p->OC, p->KH, p->KW, groups);
    return rc;
}
