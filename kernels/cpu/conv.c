/*
 * conv.c — 2-D convolution (groups, stride, padding) for the U-Net, VAE and TAESD.
 *
 * Four paths, chosen per context and shape (conv2d_set_backend; AUTO below):
 *   im2col + OpenBLAS sgemm: unfold the receptive fields into a [C/g*KH*KW, OH*OW]
 *     matrix and multiply by the weight matrix; 1x1 stride-1 convolutions skip the
 *     unfolding and are a plain GEMM.
 *   oneDNN (conv_dnnl.c): direct JIT convolution on blocked layouts.
 *   blocked: im2col over the batch and weight_gemm (weight_gemm.c), at few positions per weight.
 *   Winograd F(2x2, 3x3) (conv_winograd.c): 3x3 stride 1 pad 1 with 16 products over the
 *     channels instead of 36 multiplications per output pair, at 128+ channels in and out.
 * Measured with `tessera bench gemm` (Sapphire Rapids, 2 threads, fp32, batch 2, 3x3 pad 1,
 * GFLOP per CPU-second because the machine was shared; wall figures agree in direction):
 *   shape         oneDNN   oneDNN + weight cache   im2col+sgemm   (sgemm 2048^3: 171)
 *   320@64x64      145            155                  80
 *   640@32x32      150            157                 133
 *   1280@16x16     127            155                 108
 * Wall GFLOP/s in a quieter moment, oneDNN / im2col: 158 / 136, 164 / 79, 121 / 78.
 * oneDNN is faster at every SD 3x3 shape, so it is the default (CONV_BACKEND_DEFAULT in
 * cpu.h). But the same tool at one thread, GFLOP per CPU-second, oneDNN / sgemm:
 *   1x1 320@64x64: 90 / 136;  1x1 640->1280@32x32: 123 / 146;  3x3 4->512 (VAE conv_in): 57 / 111
 *   (3x3 stride 2: 129 / 112 and 136 / 131; 3x3 128@256x256: 162 / 79; 64@64x64: 166 / 73)
 * so AUTO sends 1x1 stride-1 convolutions (a plain GEMM, no activation reorders) and those
 * with under 16 input channels per group to im2col+sgemm. im2col also serves builds
 * without oneDNN and paddings oneDNN cannot express.
 */
#include "kernels/cpu/cpu.h"

#include <string.h>

/* col[(c*KH + kh)*KW + kw][(oh - oh0)*OW + ow] = x[c][oh*sh - ph + kh][ow*sw - pw + kw]
 * (0 outside) for the output rows oh0 <= oh < oh1. */
static void im2col(ts_ctx *ctx, float *col, const float *x, int C, int H, int W, int KH, int KW, int oh0, int oh1, int OW,
                   conv2d_params p) {
    int64_t rows = (int64_t)C * KH * KW, cols = (int64_t)(oh1 - oh0) * OW;
    #pragma omp parallel for num_threads(cpu_threads(ctx)) schedule(static) if (rows * cols >= PARALLEL_MIN_WORK)
    for (int64_t r = 0; r < rows; r++) {
        int c = (int)(r / (KH * KW)), kh = (int)(r / KW % KH), kw = (int)(r % KW);
        const float *xc = x + (int64_t)c * H * W;
        float *dst = col + r * cols;
        for (int oh = oh0; oh < oh1; oh++) {
            int ih = oh * p.stride_h - p.pad_h + kh;
            float *d = dst + (int64_t)(oh - oh0) * OW;
            if (ih < 0 || ih >= H) { memset(d, 0, (size_t)OW * sizeof(float)); continue; }
            const float *src = xc + (int64_t)ih * W;
            if (p.stride_w == 1) {
                /* valid ow: 0 <= ow - pw + kw < W */
                int lo = p.pad_w - kw, hi = W + p.pad_w - kw;
                if (lo < 0) lo = 0;
                if (hi > OW) hi = OW;
                if (hi < lo) hi = lo;
                for (int ow = 0; ow < lo; ow++) d[ow] = 0.0f;
                if (hi > lo) memcpy(d + lo, src + lo - p.pad_w + kw, (size_t)(hi - lo) * sizeof(float));
                for (int ow = hi; ow < OW; ow++) d[ow] = 0.0f;
            } else {
                for (int ow = 0; ow < OW; ow++) {
                    int iw = ow * p.stride_w - p.pad_w + kw;
                    d[ow] = iw >= 0 && iw < W ? src[iw] : 0.0f;
                }
            }
        }
    }
}

/* The unfolded matrix is made a band of output rows at a time, so it stays within
 * IM2COL_MAX_FLOATS (a 512x512 VAE layer would otherwise need over 1 GB). */
enum { IM2COL_MAX_FLOATS = 8 << 20 };

int conv2d_im2col(ts_ctx *ctx, float *out, const float *x, int N, int C, int H, int W,
                  const float *w, const float *bias, int OC, int KH, int KW, conv2d_params p) {
    int G = p.groups, OH, OW;
    int Cg = C / G, OCg = OC / G;
    OH = (H + 2 * p.pad_h - KH) / p.stride_h + 1;
    OW = (W + 2 * p.pad_w - KW) / p.stride_w + 1;
    int64_t ohw = (int64_t)OH * OW, K = (int64_t)Cg * KH * KW;
    bool direct = KH == 1 && KW == 1 && p.stride_h == 1 && p.stride_w == 1 && p.pad_h == 0 && p.pad_w == 0;
    int band = direct ? OH : (int)(IM2COL_MAX_FLOATS / (K * OW));
    if (band < 1) band = 1;
    if (band > OH) band = OH;
    float *col = direct ? NULL : cpu_scratch(ctx, 2, (size_t)(K * band * OW));
    for (int n = 0; n < N; n++)
        for (int g = 0; g < G; g++) {
            const float *xg = x + ((int64_t)n * C + (int64_t)g * Cg) * H * W;
            float *og = out + ((int64_t)n * OC + (int64_t)g * OCg) * ohw;
            float beta = 0.0f;
            if (bias) {
                for (int o = 0; o < OCg; o++) {
                    float v = bias[g * OCg + o];
                    float *row = og + (int64_t)o * ohw;
                    for (int64_t i = 0; i < ohw; i++) row[i] = v;
                }
                beta = 1.0f;
            }
            const float *wg = w + (int64_t)g * OCg * K;
            if (direct) {
                cpu_gemm(ctx, false, false, OCg, (int)ohw, (int)K, 1.0f, wg, (int)K, xg, (int)ohw, beta, og, (int)ohw);
                continue;
            }
            for (int oh0 = 0; oh0 < OH; oh0 += band) {
                int oh1 = oh0 + band < OH ? oh0 + band : OH, cols = (oh1 - oh0) * OW;
                im2col(ctx, col, xg, Cg, H, W, KH, KW, oh0, oh1, OW, p);
                /* out[o][oh0*OW ...]: a column block of the [OCg, OH*OW] output */
                cpu_gemm(ctx, false, false, OCg, cols, (int)K, 1.0f, wg, (int)K, col, cols, beta, og + (int64_t)oh0 * OW,
                     (int)ohw);
            }
        }
    return 0;
}

/* ---- few positions per weight: im2col over the batch, blocked weight products ---- */

/* col[r][b * ld_img + oh * OW + ow] = x[b][c][oh*s - p + kh][ow*s - p + kw], r = (c*KH + kh)*KW + kw:
 * the receptive fields of all B images side by side, so one product can cover the batch. */
static void im2col_batch(ts_ctx *ctx, float *col, const float *x, int B, int C, int H, int W, int KH, int KW, int OH,
                         int OW, int stride, int pad) {
    int64_t rows = (int64_t)C * KH * KW, ohw = (int64_t)OH * OW, ld = (int64_t)B * ohw;
    #pragma omp parallel for num_threads(cpu_threads(ctx)) schedule(static) collapse(2)
    for (int b = 0; b < B; b++)
        for (int64_t r = 0; r < rows; r++) {
            int c = (int)(r / (KH * KW)), kh = (int)(r / KW % KH), kw = (int)(r % KW);
            const float *xc = x + ((int64_t)b * C + c) * H * W;
            float *dst = col + r * ld + b * ohw;
            for (int oh = 0; oh < OH; oh++) {
                int ih = oh * stride - pad + kh;
                float *d = dst + (int64_t)oh * OW;
                if (ih < 0 || ih >= H) { memset(d, 0, (size_t)OW * sizeof(float)); continue; }
                const float *src = xc + (int64_t)ih * W;
                if (stride == 1) {
                    int lo = pad - kw, hi = W + pad - kw;   /* valid ow: 0 <= ow - pad + kw < W */
                    if (lo < 0) lo = 0;
                    if (hi > OW) hi = OW;
                    if (hi < lo) hi = lo;
                    for (int ow = 0; ow < lo; ow++) d[ow] = 0.0f;
                    if (hi > lo) memcpy(d + lo, src + lo - pad + kw, (size_t)(hi - lo) * sizeof(float));
                    for (int ow = hi; ow < OW; ow++) d[ow] = 0.0f;
                } else {
                    for (int ow = 0; ow < OW; ow++) {
                        int iw = ow * stride - pad + kw;
                        d[ow] = iw >= 0 && iw < W ? src[iw] : 0.0f;
                    }
                }
            }
        }
}

/* Deep U-Net levels (large weights, few positions): im2col over the batch, then weight_gemm
 * over blocks of widened output-channel rows; large images get one product per image
 * straight into the NCHW output, small ones one product over the whole batch and a scatter. */
int conv2d_blocked(ts_ctx *ctx, float *out, const float *x, int B, int C, int H, int W, const tensor *weight,
                   const tensor *bias_t, int stride, int pad) {
    int OC = (int)weight->shape[0], KH = (int)weight->shape[2], KW = (int)weight->shape[3];
    int OH = (H + 2 * pad - KH) / stride + 1, OW = (W + 2 * pad - KW) / stride + 1;
    int64_t K = (int64_t)C * KH * KW, ohw = (int64_t)OH * OW, n_all = (int64_t)B * ohw;
    float *col = cpu_scratch(ctx, 2, (size_t)(K * n_all));
    im2col_batch(ctx, col, x, B, C, H, W, KH, KW, OH, OW, stride, pad);
    float *bias = cpu_scratch(ctx, 1, (size_t)OC);
    if (bias_t) tensor_copy_to_f32(bias, bias_t);
    else memset(bias, 0, (size_t)OC * sizeof(float));
    bool per_image = ohw >= 1024 || B == 1;
    float *tmp = per_image ? NULL : cpu_scratch(ctx, 3, (size_t)(OC * n_all));
    weight_gemm_params prod = {.weight_left = true, .other = (int)(per_image ? ohw : n_all), .K = (int)K, .X = col,
                               .ldx = (int)n_all, .x_stride = ohw, .C = per_image ? out : tmp,
                               .ldc = (int)(per_image ? ohw : n_all), .c_stride = (int64_t)OC * ohw,
                               .count = per_image ? B : 1, .beta = per_image ? 1.0f : 0.0f,
                               .fill_bias = per_image ? bias : NULL};
    if (cpu_weight_gemm(ctx, weight, &prod)) return -1;
    if (!per_image)
        for (int b = 0; b < B; b++)
            for (int o = 0; o < OC; o++) {
                const float *src = tmp + (int64_t)o * n_all + b * ohw;
                float *dst = out + ((int64_t)b * OC + o) * ohw;
                for (int64_t j = 0; j < ohw; j++) dst[j] = src[j] + bias[o];
            }
    return 0;
}

/* ---- the choice ---------------------------------------------------------- */

/* Which path one convolution takes: the context's setting, or under AUTO the measured choice.
 * AUTO: 3x3 stride-1 pad-1 convolutions with 128+ channels in and out and 128+ positions (every
 * such U-Net and VAE layer but the U-Net's 4x4 level at 256x256) go to Winograd: `bench gemm`
 * (AMD EPYC, AVX2, 2 threads) gave it 200-260 GFLOP/s counted as direct convolution against
 * 150-180 for oneDNN at 320@64x64, 640@32x32, 1280@16x16, 512@64x64, 512@128x128 and
 * 256@256x256, 130 against 114-120 at 1280@8x8, and once its transforms ran on 8 channels or
 * tiles at once, 189 against 159-167 at 128@512x512 (the VAE's last level; with scalar
 * transforms it had lost there, 130 against 148-172, and the floor was 256 channels); and
 * with 8 tiles an image (the U-Net's 4x4 level at 256x256) the blocked path wins: a 256x256
 * step took 3.87 s with that level on Winograd, 3.36 s without (at 8x8 within noise).
 * Other convolutions at many positions per weight (outer levels) go to oneDNN's direct
 * convolution, which beat im2col + sgemm by 20-35% per CPU-second at 320/640 channels, 16x16 to
 * 64x64 (the U-Net), except pointwise and few-input-channel ones (above); few positions per
 * weight (deep levels, where weights are large) take the blocked path. */
typedef enum { PATH_IM2COL, PATH_ONEDNN, PATH_BLOCKED, PATH_WINOGRAD } conv_path;
enum { WINOGRAD_MIN_CHANNELS = 128, WINOGRAD_MIN_POSITIONS = 128 };

/* Shapes Winograd F(2x2, 3x3) computes: 3x3, stride 1, padding 1, one group. */
static bool winograd_fits(int KH, int KW, conv2d_params p) {
    return KH == 3 && KW == 3 && p.stride_h == 1 && p.stride_w == 1 && p.pad_h == 1 && p.pad_w == 1 && p.groups == 1;
}

static conv_path path_for(ts_ctx *ctx, int N, int C, int H, int W, int OC, int KH, int KW, conv2d_params p) {
    cpu_ctx *c = cpu_of(ctx);
    if (c->conv_backend == CONV_BACKEND_WINOGRAD && winograd_fits(KH, KW, p)) return PATH_WINOGRAD;
    if (c->conv_backend != CONV_BACKEND_AUTO && c->conv_backend != CONV_BACKEND_WINOGRAD)
        return c->conv_backend == CONV_BACKEND_ONEDNN && conv2d_backend_available(CONV_BACKEND_ONEDNN) ? PATH_ONEDNN
                                                                                                     : PATH_IM2COL;
    bool square = p.groups == 1 && p.stride_h == p.stride_w && p.pad_h == p.pad_w;
    int OH = (H + 2 * p.pad_h - KH) / p.stride_h + 1, OW = (W + 2 * p.pad_w - KW) / p.stride_w + 1;
    int64_t n_all = (int64_t)N * OH * OW;
    if (winograd_fits(KH, KW, p) && C >= WINOGRAD_MIN_CHANNELS && OC >= WINOGRAD_MIN_CHANNELS &&
        n_all >= WINOGRAD_MIN_POSITIONS)
        return PATH_WINOGRAD;
    if (square && (c->force_split || n_all < OC / 2)) return PATH_BLOCKED;
    if (!conv2d_backend_available(CONV_BACKEND_ONEDNN)) return PATH_IM2COL;
    bool pointwise = KH == 1 && KW == 1 && p.stride_h == 1 && p.stride_w == 1 && p.pad_h == 0 && p.pad_w == 0;
    return pointwise || C / p.groups < 16 ? PATH_IM2COL : PATH_ONEDNN;
}

const char *conv2d_backend_name(conv2d_backend b) {
    switch (b) {
    case CONV_BACKEND_IM2COL: return "im2col+sgemm";
    case CONV_BACKEND_ONEDNN: return "onednn";
    case CONV_BACKEND_WINOGRAD: return "winograd";
    default: return "auto";
    }
}

int cpu_conv2d(ts_ctx *ctx, float *out, const float *x, int N, int C, int H, int W,
               const tensor *weight, const tensor *bias, conv2d_params p) {
    if (!weight || weight->ndim != 4) return ts_fail("conv2d: weight must be 4-D [out, in/groups, kh, kw]");
    if (p.groups <= 0) p.groups = 1;
    if (p.stride_h <= 0) p.stride_h = 1;
    if (p.stride_w <= 0) p.stride_w = 1;
    int OC = (int)weight->shape[0], KH = (int)weight->shape[2], KW = (int)weight->shape[3];
    char buf[64];
    if (C % p.groups || OC % p.groups || weight->shape[1] != C / p.groups)
        return ts_fail("conv2d: weight %s does not fit %d input channels in %d groups",
                       tensor_shape_str(weight, buf, sizeof buf), C, p.groups);
    if (p.pad_h < 0 || p.pad_w < 0 || H + 2 * p.pad_h < KH || W + 2 * p.pad_w < KW)
        return ts_fail("conv2d: kernel %dx%d does not fit input %dx%d with padding %d,%d", KH, KW, H, W, p.pad_h, p.pad_w);
    if (check_weight(weight, tensor_numel(weight), "conv2d", "weight") || check_weight(bias, OC, "conv2d", "bias"))
        return -1;
    if (N <= 0) return 0;
    switch (path_for(ctx, N, C, H, W, OC, KH, KW, p)) {
    case PATH_BLOCKED:
        if (tensor_is_contiguous(weight)) return conv2d_blocked(ctx, out, x, N, C, H, W, weight, bias, p.stride_h, p.pad_h);
        break;
    case PATH_ONEDNN:
        return conv2d_dnnl(ctx, out, x, N, C, H, W, weight, weight_f32(ctx, bias, 1), OC, KH, KW, p);
    case PATH_WINOGRAD:
        if (tensor_is_contiguous(weight)) return conv2d_winograd(ctx, out, x, N, C, H, W, weight, weight_f32(ctx, bias, 1), OC);
        break;
    case PATH_IM2COL:
        break;
    }
    return conv2d_im2col(ctx, out, x, N, C, H, W, weight_f32(ctx, weight, 0), weight_f32(ctx, bias, 1), OC, KH, KW, p);
}
