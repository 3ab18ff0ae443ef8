/*
 * test_cuda_ops.c — every op of kernels/cuda against torch, in F32, F16 and BF16.
 *
 * Expected values: tests/fixtures/cuda, written by tools/gen_cuda_op_fixtures.py (torch,
 * float64, from the F32 inputs rounded to the precision under test, as the GPU rounds
 * them here). Tolerances: see gpu_test_tolerance. Exits 77 (ctest: skipped) where no GPU is present.
 * TESSERA_CUDA_TEST_OPS=attention,norm,... runs only those groups (tools/gpu-check.sh runs
 * the hand-written kernels under compute-sanitizer that way).
 */
#include "tests/gpu/gpu_test.h"

static cuda_context *ctx;

static bool wanted(const char *group) {
    const char *only = getenv("TESSERA_CUDA_TEST_OPS");
    if (!only || !*only) return true;
    size_t n = strlen(group);
    for (const char *p = only; (p = strstr(p, group)) != NULL; p += n)
        if ((p == only || p[-1] == ',') && (p[n] == ',' || p[n] == 0)) return true;
    return false;
}

#define FIX(name) gpu_fixture(ctx, name, t, false, NULL)
#define FIX_F32(name) gpu_fixture(ctx, name, t, true, NULL)
#define OUT(n) cuda_arena_alloc(ctx, (size_t)(n) * dtype_size(t))

static void test_gemm(dtype t) {
    size_t mark = cuda_arena_mark(ctx);
    const int M = 37, N = 53, K = 61;
    void *a = FIX("gemm_a"), *b = FIX("gemm_b"), *bt = FIX("gemm_bt"), *at = FIX("gemm_at"), *bias = FIX("gemm_bias");
    void *c = OUT(M * N);
    cuda_gemm_params p = {.M = M, .N = N, .K = K, .alpha = 1, .beta = 0, .A = a, .lda = K, .B = b, .ldb = N,
                          .C = c, .ldc = N, .ab_type = t, .c_type = t};
    CHECK_OK(cuda_gemm(ctx, &p));
    gpu_check_fixture(ctx, "gemm A B", c, t, M * N, "gemm_ab");

    cuda_gemm_params q = p;   /* B stored [N, K], as a linear layer's weight */
    q.trans_b = true, q.B = bt, q.ldb = K;
    CHECK_OK(cuda_gemm(ctx, &q));
    gpu_check_fixture(ctx, "gemm A B^T", c, t, M * N, "gemm_ab");

    cuda_gemm_params r = p;   /* A stored [K, M] */
    r.trans_a = true, r.A = at, r.lda = M;
    CHECK_OK(cuda_gemm(ctx, &r));
    gpu_check_fixture(ctx, "gemm A^T B", c, t, M * N, "gemm_ab");

    q.epilogue = CUDA_EPILOGUE_BIAS, q.bias = bias;
    CHECK_OK(cuda_gemm(ctx, &q));
    gpu_check_fixture(ctx, "gemm A B^T + bias", c, t, M * N, "gemm_ab_bias");

    q.epilogue = CUDA_EPILOGUE_BIAS_GELU_TANH;
    CHECK_OK(cuda_gemm(ctx, &q));
    gpu_check_fixture(ctx, "gemm gelu_tanh(A B^T + bias)", c, t, M * N, "gemm_ab_bias_gelu");

    if (t != DT_F32) {   /* F32 output from F16/BF16 inputs: only the last rounding goes */
        float *c32 = cuda_arena_alloc(ctx, (size_t)M * N * 4);
        cuda_gemm_params s = p;
        s.C = c32, s.c_type = DT_F32;
        CHECK_OK(cuda_gemm(ctx, &s));
        gpu_check_fixture(ctx, "gemm A B, F32 out", c32, DT_F32, M * N, t == DT_F16 ? "gemm_ab_f16_as" : "gemm_ab_bf16_as");
    }

    /* batched, alpha 0.5, beta 2 over a C that holds values */
    void *ba = FIX("bmm_a"), *bb = FIX("bmm_b"), *bc = FIX("bmm_c");
    cuda_gemm_params bm = {.M = 9, .N = 11, .K = 17, .alpha = 0.5f, .beta = 2.0f, .A = ba, .lda = 17, .stride_a = 9 * 17,
                           .B = bb, .ldb = 11, .stride_b = 17 * 11, .C = bc, .ldc = 11, .stride_c = 9 * 11,
                           .ab_type = t, .c_type = t, .count = 3};
    CHECK_OK(cuda_gemm(ctx, &bm));
    gpu_check_fixture(ctx, "batched gemm, alpha and beta", bc, t, 3 * 9 * 11, "bmm_out");

    cuda_gemm_params bad = p;
    bad.ldb = N - 1;
    CHECK(cuda_gemm(ctx, &bad) == -1 && strstr(ts_last_error(), "leading dimensions"), "%s", ts_last_error());
    cuda_arena_reset(ctx, mark);
}

static void test_conv(dtype t) {
    size_t mark = cuda_arena_mark(ctx);
    void *x = FIX("conv_x"), *w3 = FIX("conv_w3"), *b3 = FIX("conv_b3"), *w1 = FIX("conv_w1"), *b1 = FIX("conv_b1");
    cuda_conv_params p = {.N = 2, .H = 9, .W = 11, .C = 8, .OC = 16, .KH = 3, .KW = 3, .stride = 1, .pad = 1, .type = t};
    void *y = OUT(2 * 9 * 11 * 16);
    CHECK_OK(cuda_conv2d(ctx, y, x, w3, b3, &p));
    gpu_check_fixture(ctx, "conv 3x3 pad 1", y, t, 2 * 9 * 11 * 16, "conv3");

    cuda_conv_params s2 = p;
    s2.stride = 2;
    int OH, OW;
    cuda_conv2d_out_size(&s2, &OH, &OW);
    CHECK(OH == 5 && OW == 6, "stride-2 output %dx%d", OH, OW);
    CHECK_OK(cuda_conv2d(ctx, y, x, w3, b3, &s2));
    gpu_check_fixture(ctx, "conv 3x3 stride 2", y, t, 2 * 5 * 6 * 16, "conv3_s2");

    cuda_conv_params p1 = {.N = 2, .H = 9, .W = 11, .C = 8, .OC = 12, .KH = 1, .KW = 1, .stride = 1, .pad = 0, .type = t};
    CHECK_OK(cuda_conv2d(ctx, y, x, w1, b1, &p1));
    gpu_check_fixture(ctx, "conv 1x1", y, t, 2 * 9 * 11 * 12, "conv1");

    /* an OIHW weight turned into OHWI on the device gives the same convolution */
    void *oihw = FIX("conv_w3_oihw"), *ohwi = OUT(16 * 8 * 9);
    CHECK_OK(cuda_nchw_to_nhwc(ctx, ohwi, oihw, t, 16, 8, 9));
    CHECK_OK(cuda_conv2d(ctx, y, x, ohwi, b3, &p));
    gpu_check_fixture(ctx, "conv 3x3, weight from OIHW", y, t, 2 * 9 * 11 * 16, "conv3");

    cuda_conv_params bad = p;
    bad.groups = 3;
    CHECK(cuda_conv2d(ctx, y, x, w3, b3, &bad) == -1 && strstr(ts_last_error(), "groups"), "%s", ts_last_error());
    cuda_arena_reset(ctx, mark);
}

static void test_norm(dtype t) {
    size_t mark = cuda_arena_mark(ctx);
    void *x = FIX("gn_x");
    float *gamma = FIX_F32("gn_gamma"), *beta = FIX_F32("gn_beta");
    int64_t n = 2 * 6 * 5 * 32;
    void *y = OUT(n);
    CHECK_OK(cuda_group_norm(ctx, y, x, t, 2, 30, 32, 8, gamma, beta, 1e-5f, false));
    gpu_check_fixture(ctx, "group norm", y, t, n, "gn");
    CHECK_OK(cuda_group_norm(ctx, y, x, t, 2, 30, 32, 8, gamma, beta, 1e-5f, true));
    gpu_check_fixture(ctx, "group norm + SiLU", y, t, n, "gn_silu");
    CHECK_OK(cuda_group_norm(ctx, x, x, t, 2, 30, 32, 8, gamma, beta, 1e-5f, true));
    gpu_check_fixture(ctx, "group norm + SiLU in place", x, t, n, "gn_silu");
    if (t == DT_F32) {
        void *xb = FIX("gn_big_x");
        CHECK_OK(cuda_group_norm(ctx, xb, xb, t, 1, 32 * 32, 64, 8, NULL, NULL, 1e-6f, false));
        gpu_check_fixture(ctx, "group norm 32x32x64 (blocks per group)", xb, t, 32 * 32 * 64, "gn_big");
    }
    CHECK(cuda_group_norm(ctx, y, x, t, 2, 30, 32, 7, NULL, NULL, 1e-5f, false) == -1, "7 groups of 32 channels");

    void *lx = FIX("ln_x");
    float *lg = FIX_F32("ln_gamma"), *lb = FIX_F32("ln_beta");
    void *ly = OUT(7 * 96);
    CHECK_OK(cuda_layer_norm(ctx, ly, lx, t, 7, 96, lg, lb, 1e-5f));
    gpu_check_fixture(ctx, "layer norm", ly, t, 7 * 96, "ln");
    void *wx = FIX("ln_wide_x");
    CHECK_OK(cuda_layer_norm(ctx, wx, wx, t, 3, 1000, NULL, NULL, 1e-6f));
    gpu_check_fixture(ctx, "layer norm 1000 wide, in place", wx, t, 3 * 1000, "ln_wide");
    cuda_arena_reset(ctx, mark);
}

static void test_elementwise(dtype t) {
    size_t mark = cuda_arena_mark(ctx);
    void *gx = FIX("geglu_x"), *gy = OUT(10 * 24);
    CHECK_OK(cuda_geglu(ctx, gy, gx, t, 10, 24));
    gpu_check_fixture(ctx, "geglu", gy, t, 10 * 24, "geglu");

    void *ux = FIX("up_x"), *uy = OUT(2 * 6 * 8 * 5);
    CHECK_OK(cuda_upsample_nearest2x(ctx, uy, ux, t, 2, 3, 4, 5));
    gpu_check_fixture(ctx, "upsample nearest 2x", uy, t, 2 * 6 * 8 * 5, "up");

    void *ca = FIX("cat_a"), *cb = FIX("cat_b"), *cy = OUT(2 * 3 * 4 * 12);
    CHECK_OK(cuda_concat_channels(ctx, cy, ca, 5, cb, 7, t, 2 * 3 * 4));
    gpu_check_fixture(ctx, "concat channels", cy, t, 2 * 3 * 4 * 12, "cat");

    void *aa = FIX("add_a"), *ab = FIX("add_b");
    CHECK_OK(cuda_add(ctx, aa, aa, ab, t, 1000));
    gpu_check_fixture(ctx, "add in place", aa, t, 1000, "add");

    void *bx = FIX("bias_x"), *bb = FIX("bias_b");
    CHECK_OK(cuda_add_bias(ctx, bx, bb, t, 2, 12, 16));
    gpu_check_fixture(ctx, "bias per batch", bx, t, 2 * 12 * 16, "bias");

    void *px = FIX("perm_x"), *py = OUT(2 * 5 * 21), *pz = OUT(2 * 5 * 21);
    CHECK_OK(cuda_nchw_to_nhwc(ctx, py, px, t, 2, 5, 21));
    gpu_check_fixture(ctx, "NCHW -> NHWC", py, t, 2 * 5 * 21, "perm");
    CHECK_OK(cuda_nhwc_to_nchw(ctx, pz, py, t, 2, 5, 21));
    gpu_check_fixture(ctx, "NHWC -> NCHW (back)", pz, t, 2 * 5 * 21, "perm_back");
    cuda_arena_reset(ctx, mark);
}

static void test_attention(dtype t) {
    size_t mark = cuda_arena_mark(ctx);
    void *q = FIX("attn_q"), *k = FIX("attn_k"), *v = FIX("attn_v"), *o = OUT(2 * 37 * 120);
    cuda_attention_params p = {.batch = 2, .heads = 3, .head_dim = 40, .n_q = 37, .n_kv = 45, .type = t};
    CHECK_OK(cuda_attention(ctx, o, q, k, v, &p));
    gpu_check_fixture(ctx, "attention 3 heads of 40", o, t, 2 * 37 * 120, "attn");

    void *qkv = FIX("attn_qkv"), *so = OUT(2 * 29 * 128);
    int64_t width = (int64_t)dtype_size(t) * 128;
    cuda_attention_params s = {.batch = 2, .heads = 2, .head_dim = 64, .n_q = 29, .n_kv = 29,
                               .q_stride = 384, .k_stride = 384, .v_stride = 384, .type = t};
    CHECK_OK(cuda_attention(ctx, so, qkv, (char *)qkv + width, (char *)qkv + 2 * width, &s));
    gpu_check_fixture(ctx, "attention over a fused QKV (strides)", so, t, 2 * 29 * 128, "attn_qkv_out");

    void *cq = FIX("attn_gqa_q"), *ck = FIX("attn_gqa_k"), *cv = FIX("attn_gqa_v"), *co = OUT(20 * 256);
    cuda_attention_params c = {.batch = 1, .heads = 4, .kv_heads = 2, .head_dim = 64, .n_q = 20, .n_kv = 29,
                               .causal = true, .type = t};
    CHECK_OK(cuda_attention(ctx, co, cq, ck, cv, &c));
    gpu_check_fixture(ctx, "attention causal, grouped-query", co, t, 20 * 256, "attn_gqa");

    void *wq = FIX("attn_wide_q"), *wk = FIX("attn_wide_k"), *wv = FIX("attn_wide_v"), *wo = OUT(50 * 320);
    cuda_attention_params w = {.batch = 1, .heads = 2, .head_dim = 160, .n_q = 50, .n_kv = 70, .type = t};
    CHECK_OK(cuda_attention(ctx, wo, wq, wk, wv, &w));
    gpu_check_fixture(ctx, "attention 2 heads of 160", wo, t, 50 * 320, "attn_wide");

    cuda_attention_params bad = p;
    bad.head_dim = 300;
    CHECK(cuda_attention(ctx, o, q, k, v, &bad) == -1 && strstr(ts_last_error(), "width"), "%s", ts_last_error());
    cuda_arena_reset(ctx, mark);
}

int main(void) {
    TEST_BEGIN();
    ctx = gpu_test_context((size_t)64 << 20);
    const dtype types[] = {DT_F32, DT_F16, DT_BF16};
    for (int i = 0; i < 3; i++) {
        dtype t = types[i];
        printf("%s\n", dtype_name(t));
        if (wanted("gemm")) test_gemm(t);
        if (wanted("conv")) test_conv(t);
        if (wanted("norm")) test_norm(t);
        if (wanted("elementwise")) test_elementwise(t);
        if (wanted("attention")) test_attention(t);
    }
    CHECK_OK(cuda_synchronize(ctx));
    cuda_context_destroy(&ctx);
    return TEST_END();
}
