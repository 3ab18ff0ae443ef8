/*
 * test_backend_ops.c — every op the models call, on one backend, against torch / diffusers
 * (tools/gen_backend_op_fixtures.py -> tests/fixtures/backend_ops/): the contract any backend
 * of the op table must keep, in ops.h's layout (F32 activations in the context's memory, NCHW
 * images, weights as host tensors of F32 or F16).
 *
 *   test_backend_ops            the CPU backend (unit/test_backend_ops)
 *   test_backend_ops check      the CPU under a device's rules (unit/test_backend_ops_check)
 *   test_backend_ops cuda       the CUDA backend (gpu/test_backend_ops_cuda; skipped, exit
 *                               77, where the build or the machine has no CUDA device)
 */
#include "kernels/ops.h"
#include "kernels/quant.h"
#include "tests/test.h"
#ifdef TESSERA_HAVE_CUDA
#include "kernels/cuda/cuda.h"
#endif

#include <math.h>
#include <stdlib.h>
#include <string.h>

static ts_ctx *ctx;
/* F32 against float64, x max(1, max |want|): the CPU's worst is 3e-7 of that scale; a device's
 * F32 GEMM, convolution and attention sum in other orders, within a few times of it. */
static float tol = 3e-6f;

/* ---- fixtures in host memory and in the context's ------------------------------- */

static float *host(const char *name, int64_t *n) {
    char rel[128];
    snprintf(rel, sizeof rel, "backend_ops/%s.npy", name);
    tensor shape;
    float *v = fixture_npy(rel, &shape);
    if (!v) {
        fprintf(stderr, "missing fixture %s (tools/gen_backend_op_fixtures.py)\n", rel);
        exit(1);
    }
    if (n) *n = tensor_numel(&shape);
    return v;
}

/* Up to 64 allocations in the context's memory, freed after each case. */
static void *live[64];
static int live_count;

static float *on_ctx(const float *values, int64_t n) {
    float *d = ts_ctx_alloc(ctx, (size_t)n * sizeof(float));
    if (!d || ts_ctx_upload(ctx, d, values, (size_t)n * sizeof(float))) {
        fprintf(stderr, "FAIL: %s\n", ts_last_error());
        exit(1);
    }
    live[live_count++] = d;
    return d;
}

/* A fixture in the context's memory. */
static float *fix(const char *name, int64_t *n) {
    int64_t count;
    float *h = host(name, &count);
    float *d = on_ctx(h, count);
    free(h);
    if (n) *n = count;
    return d;
}

static float *out(int64_t n) {
    float *zeros = ts_calloc((size_t)n, sizeof(float));
    float *d = on_ctx(zeros, n);
    free(zeros);
    return d;
}

static void free_all(void) {
    while (live_count) ts_ctx_free(ctx, live[--live_count]);
}

/* A host weight tensor of type t (F32 or F16) holding fixture `name`, shaped. */
static tensor weight(const char *name, dtype t, int ndim, const int64_t *shape) {
    int64_t n;
    float *v = host(name, &n);
    tensor w = tensor_new(t, ndim, shape);
    CHECK(tensor_numel(&w) == n, "%s: %lld values for its shape", name, (long long)n);
    convert_from_f32(w.data, t, v, (size_t)n);
    free(v);
    return w;
}

/* Downloads n floats at got and compares them with fixture `want`. */
static void expect(const char *what, const float *got, const char *want, float tolerance) {
    int64_t n;
    float *w = host(want, &n);
    float *g = ts_malloc((size_t)n * sizeof(float));
    CHECK_OK(ts_ctx_synchronize(ctx));
    CHECK_OK(ts_ctx_download(ctx, g, got, (size_t)n * sizeof(float)));
    CHECK_CLOSE_ARRAYS(g, w, (size_t)n, tolerance, what);
    free(g), free(w);
}

/* ---- the cases ----------------------------------------------------------------------- */

static void test_gemm(void) {
    float *x = fix("linear_x", NULL), *y = out(5 * 16);
    tensor w = weight("linear_w", DT_F16, 2, (int64_t[]){16, 24}), b = weight("linear_b", DT_F16, 1, (int64_t[]){16});
    CHECK_OK(linear(ctx, y, x, 5, &w, &b));
    expect("linear, F16 weight and bias", y, "linear_y", tol);
    CHECK_OK(linear(ctx, y, x, 5, &w, &b));   /* the weight again: from the backend's copy */
    expect("linear, second call", y, "linear_y", tol);

    float *a = fix("gemm_a", NULL), *bt = fix("gemm_bt", NULL), *c = fix("gemm_c0", NULL);
    gemm(ctx, false, true, 6, 5, 8, 0.5f, a, 8, bt, 8, 2.0f, c, 5);
    expect("gemm, B^T, alpha 0.5, beta 2", c, "gemm_c", tol);

    tensor wl = weight("wgemm_w", DT_F16, 2, (int64_t[]){16, 24});
    float *xl = fix("wgemm_xl", NULL), *cl = fix("wgemm_cl0", NULL);
    weight_gemm_params left = {.weight_left = true, .other = 10, .K = 24, .X = xl, .ldx = 10, .x_stride = 240, .C = cl,
                               .ldc = 10, .c_stride = 160, .count = 2, .beta = 1.0f};
    CHECK_OK(weight_gemm(ctx, &wl, &left));
    expect("weight_gemm, weight left, 2 images, accumulate", cl, "wgemm_left", tol);
    float *xr = fix("wgemm_xr", NULL), *cr = out(7 * 16);
    weight_gemm_params right = {.weight_left = false, .other = 7, .K = 24, .X = xr, .ldx = 24, .C = cr, .ldc = 16, .count = 1};
    CHECK_OK(weight_gemm(ctx, &wl, &right));
    expect("weight_gemm, token rows", cr, "wgemm_right", tol);
    tensor_free(&w), tensor_free(&b), tensor_free(&wl);
    free_all();
}

static void test_conv(void) {
    float *x = fix("conv_x", NULL), *y = out(2 * 16 * 9 * 11);
    tensor w3 = weight("conv_w3", DT_F16, 4, (int64_t[]){16, 8, 3, 3}), b3 = weight("conv_b3", DT_F32, 1, (int64_t[]){16});
    tensor w1 = weight("conv_w1", DT_F32, 4, (int64_t[]){12, 8, 1, 1});
    CHECK_OK(conv2d(ctx, y, x, 2, 8, 9, 11, &w3, &b3, (conv2d_params){1, 1, 1, 1, 1}));
    expect("conv 3x3 pad 1, F16 weight", y, "conv3", tol);
    CHECK_OK(conv2d(ctx, y, x, 2, 8, 9, 11, &w3, &b3, (conv2d_params){2, 2, 1, 1, 1}));
    expect("conv 3x3 stride 2", y, "conv3_s2", tol);
    CHECK_OK(conv2d(ctx, y, x, 2, 8, 9, 11, &w1, NULL, (conv2d_params){1, 1, 0, 0, 1}));
    expect("conv 1x1, no bias", y, "conv1", tol);
    tensor_free(&w3), tensor_free(&b3), tensor_free(&w1);
    free_all();
}

static void test_norms(void) {
    float *gx = fix("gn_x", NULL), *gy = out(2 * 32 * 35);
    tensor gg = weight("gn_gamma", DT_F32, 1, (int64_t[]){32}), gb = weight("gn_beta", DT_F32, 1, (int64_t[]){32});
    CHECK_OK(group_norm(ctx, gy, gx, 2, 32, 35, 8, &gg, &gb, 1e-5f));
    expect("group_norm, 8 groups, offset 3", gy, "gn_y", tol);
    CHECK_OK(group_norm(ctx, gx, gx, 2, 32, 35, 8, &gg, &gb, 1e-5f));
    expect("group_norm in place", gx, "gn_y", tol);

    float *lx = fix("ln_x", NULL), *ly = out(6 * 40);
    tensor lg = weight("ln_gamma", DT_F32, 1, (int64_t[]){40}), lb = weight("ln_beta", DT_F32, 1, (int64_t[]){40});
    CHECK_OK(layer_norm(ctx, ly, lx, 6, 40, &lg, &lb, 1e-5f));
    expect("layer_norm", ly, "ln_y", tol);
    tensor rw = weight("rms_w", DT_F32, 1, (int64_t[]){40});
    CHECK_OK(rms_norm(ctx, ly, lx, 6, 40, &rw, 1e-6f));
    expect("rms_norm", ly, "rms_y", tol);
    float *sx = fix("softmax_x", NULL);
    softmax_rows(ctx, sx, 5, 33);
    expect("softmax_rows", sx, "softmax_y", tol);
    tensor_free(&gg), tensor_free(&gb), tensor_free(&lg), tensor_free(&lb), tensor_free(&rw);
    free_all();
}

static void test_elementwise(void) {
    int64_t n;
    float *x = fix("unary_x", &n), *y = out(n);
    silu(ctx, y, x, n), expect("silu", y, "silu", tol);
    gelu_erf(ctx, y, x, n), expect("gelu_erf", y, "gelu_erf", tol);
    gelu_tanh(ctx, y, x, n), expect("gelu_tanh", y, "gelu_tanh", tol);
    quick_gelu(ctx, y, x, n), expect("quick_gelu", y, "quick_gelu", tol);
    relu(ctx, y, x, n), expect("relu", y, "relu", tol);
    clamp(ctx, y, x, n, -0.5f, 0.7f), expect("clamp", y, "clamp", tol);
    scaled_tanh(ctx, y, x, n, 3.0f), expect("scaled_tanh", y, "scaled_tanh", tol);
    copy_floats(ctx, y, x, n), affine(ctx, y, n, 1.5f, -0.25f), expect("affine", y, "affine", tol);
    copy_floats(ctx, y, x, n), scale_inplace(ctx, y, 0.75f, n), expect("scale_inplace", y, "scale", tol);
    silu(ctx, x, x, n), expect("silu in place", x, "silu", tol);

    float *gx = fix("geglu_x", NULL), *gy = out(6 * 20);
    geglu(ctx, gy, gx, 6, 20);
    expect("geglu", gy, "geglu_y", tol);
    float *sg = fix("swiglu_gate", NULL), *su = fix("swiglu_up", NULL);
    swiglu(ctx, gy, sg, su, 6, 20);
    expect("swiglu", gy, "swiglu_y", tol);

    float *bx = fix("cbias_x", NULL), *bx2 = fix("cbias_x", NULL);
    tensor bc = weight("cbias_c", DT_F16, 1, (int64_t[]){6});
    CHECK_OK(add_channel_bias(ctx, bx, 2, 6, 15, &bc));
    expect("add_channel_bias [C], F16", bx, "cbias_yc", tol);
    float *bn = fix("cbias_n", NULL);   /* per image: an activation in the context's memory */
    tensor bnt = tensor_view(bn, DT_F32, 2, (int64_t[]){2, 6});
    CHECK_OK(add_channel_bias(ctx, bx2, 2, 6, 15, &bnt));
    expect("add_channel_bias [N, C]", bx2, "cbias_yn", tol);
    CHECK(add_channel_bias(ctx, bx2, 2, 5, 18, &bc) == -1, "a [6] bias for 5 channels accepted");

    float *rx = fix("rbias_x", NULL), *ry = fix("add_y", NULL), *rx2 = fix("rbias_x", NULL);
    tensor rb = weight("rbias_b", DT_F32, 1, (int64_t[]){16});
    add_row_bias(ctx, rx, 5, 16, &rb);
    expect("add_row_bias", rx, "rbias_y", tol);
    add_inplace(ctx, rx2, ry, 5 * 16);
    expect("add_inplace", rx2, "add_xy", tol);
    fill(ctx, ry, 0.25f, 5 * 16);
    float got[80];
    CHECK_OK(ts_ctx_synchronize(ctx));
    CHECK_OK(ts_ctx_download(ctx, got, ry, sizeof got));
    CHECK(got[0] == 0.25f && got[79] == 0.25f, "fill: %g %g", got[0], got[79]);
    tensor_free(&bc), tensor_free(&rb);
    free_all();
}

static void test_layout(void) {
    float *ux = fix("up_x", NULL), *uy = out(2 * 3 * 8 * 10);
    upsample_nearest2x(ctx, uy, ux, 2, 3, 4, 5);
    expect("upsample_nearest2x", uy, "up_y", 0);
    float *nx = fix("nhwc_x", NULL), *ny = out(2 * 6 * 15), *back = out(2 * 6 * 15);
    nchw_to_nhwc(ctx, ny, nx, 2, 6, 15);
    expect("nchw_to_nhwc", ny, "nhwc_y", 0);
    nhwc_to_nchw(ctx, back, ny, 2, 6, 15);
    expect("nhwc_to_nchw", back, "nhwc_x", 0);
    float *kx = fix("crop_x", NULL), *ky = out(3 * 4 * 5);
    copy_strided(ctx, ky, (const int64_t[3]){20, 5, 1}, kx + 2 * 9 + 1, (const int64_t[3]){63, 9, 1},
                 (const int64_t[3]){3, 4, 5});
    expect("copy_strided (a crop)", ky, "crop_y", 0);
    float *moved = out(3 * 7 * 9 + 5);   /* there and back over overlapping ranges (memmove) */
    copy_floats(ctx, moved, kx, 3 * 7 * 9);
    copy_floats(ctx, moved + 5, moved, 3 * 7 * 9);
    copy_floats(ctx, moved, moved + 5, 3 * 7 * 9);
    expect("copy_floats over overlapping ranges", moved, "crop_x", 0);

    /* diffusers' blend_v / blend_h over 4 rows / columns of 6 x 5 planes */
    float *fa = fix("fade_a", NULL), *fb = fix("fade_b", NULL), *fb2 = fix("fade_b", NULL);
    crossfade(ctx, fb, 30, 5, fa + 2 * 5, 30, 5, 3, 4, 5, 4, true);
    expect("crossfade along rows (blend_v)", fb, "fade_v", tol);
    crossfade(ctx, fb2, 30, 5, fa + 1, 30, 5, 3, 6, 4, 4, false);
    expect("crossfade along columns (blend_h)", fb2, "fade_h", tol);

    float *img = fix("rgb_x", NULL);
    uint8_t *rgb = ts_ctx_alloc(ctx, 3 * 42);
    rgb8_from_planes(ctx, rgb, img, 3, 42, 0.5f, 0.5f);
    uint8_t got[126];
    CHECK_OK(ts_ctx_synchronize(ctx));
    CHECK_OK(ts_ctx_download(ctx, got, rgb, sizeof got));
    float *want = host("rgb_y", NULL);
    int differ = 0;
    for (int i = 0; i < 126; i++) differ += got[i] != (uint8_t)want[i];
    CHECK(differ == 0, "rgb8_from_planes: %d of 126 bytes differ from diffusers' numpy_to_pil", differ);
    free(want);
    ts_ctx_free(ctx, rgb);

    tensor tab = weight("gather_table", DT_F16, 2, (int64_t[]){10, 12});
    float *gy = out(4 * 12);
    CHECK_OK(gather_rows(ctx, gy, &tab, (const int32_t[]){3, 0, 9, 3}, 4));
    expect("gather_rows, F16 table", gy, "gather_y", 0);
    CHECK_OK(gather_rows(ctx, gy, &tab, NULL, 4));
    expect("gather_rows, rows 0..3", gy, "gather_first", 0);
    CHECK(gather_rows(ctx, gy, &tab, (const int32_t[]){10}, 1) == -1, "row 10 of a 10-row table accepted");

    /* t is host memory, as ops.h says. Arguments reach 999 radians: one ulp of a device's expf
     * moves them by 6e-5, so the sines may differ by that much from torch's */
    float t[3] = {1.0f, 500.5f, 999.0f};
    float *ea = out(3 * 32), *eb = out(3 * 33);
    timestep_embedding(ctx, ea, t, 3, 32, true, 0.0f);
    expect("timestep_embedding, flip, dim 32", ea, "temb_a", 2e-4f);
    timestep_embedding(ctx, eb, t, 3, 33, false, 1.0f);
    expect("timestep_embedding, shift 1, odd dim 33", eb, "temb_b", 2e-4f);
    tensor_free(&tab);
    free_all();
}

static void test_attention(void) {
    float *q = fix("attn_q", NULL), *k = fix("attn_k", NULL), *v = fix("attn_v", NULL), *y = out(2 * 10 * 16);
    attention(ctx, y, q, k, v, (attention_params){.batch = 2, .heads = 2, .head_dim = 8, .n_q = 10, .n_kv = 7});
    expect("attention, 2 heads, 10 queries over 7 keys", y, "attn_y", tol);
    float *gq = fix("gqa_q", NULL), *gk = fix("gqa_k", NULL), *gv = fix("gqa_v", NULL), *gy = out(9 * 32);
    attention(ctx, gy, gq, gk, gv,
              (attention_params){.batch = 1, .heads = 4, .kv_heads = 2, .head_dim = 8, .n_q = 9, .n_kv = 9, .causal = true});
    expect("attention, causal, grouped-query (4 heads, 2 kv heads)", gy, "gqa_y", tol);
    float *wq = fix("wide_q", NULL), *wk = fix("wide_k", NULL), *wv = fix("wide_v", NULL), *wy = out(12 * 320);
    attention(ctx, wy, wq, wk, wv, (attention_params){.batch = 1, .heads = 1, .head_dim = 320, .n_q = 12, .n_kv = 9});
    expect("attention, one head 320 wide (the VAE's kind)", wy, "wide_y", tol);
    float *mq = fix("mask_q", NULL), *mk = fix("mask_k", NULL), *mv = fix("mask_v", NULL), *mm = fix("mask_m", NULL);
    float *my = out(2 * 10 * 16);
    attention(ctx, my, mq, mk, mv,
              (attention_params){.batch = 2, .heads = 2, .head_dim = 8, .n_q = 10, .n_kv = 7, .mask = mm});
    expect("attention, additive mask", my, "mask_y", tol);
    free_all();
}

static void test_llm_ops(void) {
    int64_t n;
    float *rf = host("rope_pos", NULL), *fq = host("rope_freq", NULL);
    int pos[3] = {(int)rf[0], (int)rf[1], (int)rf[2]};   /* host values, as ops.h says */
    float *x = fix("rope_x", &n), *x2 = fix("rope_x", NULL);
    rope(ctx, x, 16, 3, 2, 8, pos, fq, true);
    expect("rope, neox pairs (i, i + d/2)", x, "rope_neox", tol);
    rope(ctx, x2, 16, 3, 2, 8, pos, fq, false);
    expect("rope, adjacent pairs (2i, 2i + 1)", x2, "rope_pairs", tol);
    free(rf), free(fq);

    float *sf = host("kv_seqs", NULL), *pf = host("kv_pos", NULL);
    int seqs[3], kpos[3];
    for (int i = 0; i < 3; i++) seqs[i] = (int)sf[i], kpos[i] = (int)pf[i];
    float *kc = fix("kv_k", NULL), *vc = fix("kv_v", NULL), *q = fix("kv_q", NULL), *y = out(3 * 32);
    attention_kv(ctx, y, q, kc, vc,
                 (kv_attention_params){.n = 3, .heads = 4, .kv_heads = 2, .head_dim = 8, .seqs = seqs, .pos = kpos,
                                       .seq_stride = 6 * 16, .row_stride = 16, .max_ctx = 6});
    expect("attention_kv, 3 rows of 2 sequences, grouped-query", y, "kv_y", tol);
    free(sf), free(pf);

    float *wb = host("q8_w", &n);   /* the gguf package's Q8_0 bytes, widened by the .npy loader */
    uint8_t *bytes = ts_malloc((size_t)n);
    for (int64_t i = 0; i < n; i++) bytes[i] = (uint8_t)wb[i];
    qmatrix W;
    CHECK_OK(qmatrix_view(&W, DT_Q8_0, 16, 64, bytes, "q8_w"));
    float *qx = fix("q8_x", NULL), *qy = out(3 * 16), *rows = out(2 * 64);
    qmatmul(ctx, qy, qx, 3, &W);
    expect("qmatmul, Q8_0 weight (gguf package)", qy, "q8_y", tol);
    qmatrix_gather(ctx, rows, &W, (const int[]){2, 7}, 2);
    expect("qmatrix_gather, Q8_0 rows", rows, "q8_rows", 0);
    free(wb), free(bytes);
    free_all();
}

int main(int argc, char **argv) {
    TEST_BEGIN();
    const char *device = argc > 1 ? argv[1] : "cpu";
    if (strncmp(device, "cuda", 4) == 0) {
#ifdef TESSERA_HAVE_CUDA
        if (cuda_device_count() == 0) TEST_SKIP("no CUDA device on this machine");
#else
        TEST_SKIP("this build has no CUDA backend");
#endif
    }
    ctx = ts_ctx_new(device, 0);
    if (!ctx) {
        fprintf(stderr, "FAIL: %s\n", ts_last_error());
        return 1;
    }
    printf("backend %s\n", ts_ctx_backend_name(ctx));
    if (strcmp(device, "check") == 0) {   /* the check backend refuses host memory, naming the op */
        float host_buf[8] = {0};
        silu(ctx, host_buf, host_buf, 8);
        CHECK(ts_ctx_synchronize(ctx) == -1 && strstr(ts_last_error(), "'unary'") && strstr(ts_last_error(), "not memory of this context"),
              "a host buffer given to silu on 'check': %s", ts_last_error());
        CHECK(ts_ctx_synchronize(ctx) == 0, "the failure is reported once");
    }
    test_gemm();
    test_conv();
    test_norms();
    test_elementwise();
    test_layout();
    test_attention();
    test_llm_ops();
    /* A backend with reduced-precision compute (CUDA: F16/BF16 tensor cores for GEMMs and
     * convolutions, F32 accumulation): the same products within the inputs' rounding */
    static const struct { dtype t; float tol; } reduced[] = {{DT_F16, 2e-3f}, {DT_BF16, 1.6e-2f}};
    for (size_t i = 0; i < sizeof reduced / sizeof reduced[0]; i++) {
        if (ts_ctx_set_compute_type(ctx, reduced[i].t) != 0) {
            CHECK(strncmp(device, "cuda", 4) != 0, "cuda refuses compute type %s: %s", dtype_name(reduced[i].t), ts_last_error());
            continue;
        }
        printf("compute type %s:\n", dtype_name(reduced[i].t));
        tol = reduced[i].tol;
        test_gemm();
        test_conv();
        CHECK_OK(ts_ctx_set_compute_type(ctx, DT_F32));
    }
    ts_ctx_destroy(&ctx);
    return TEST_END();
}
