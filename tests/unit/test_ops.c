/*
 * test_ops.c — every op in kernels/ops.h against expected values made by torch/numpy
 * (tools/gen_op_fixtures.py -> tests/fixtures/ops). Convolution runs on every backend.
 */
#include "kernels/ops.h"
#include "tests/test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define TOL 1e-5f

/* Loads fixture ops/NAME.npy (as float32); *n gets the element count. */
static float *load(const char *name, tensor *shape) {
    char rel[256];
    snprintf(rel, sizeof rel, "ops/%s.npy", name);
    tensor t;
    float *f = fixture_npy(rel, &t);
    if (!f) { fprintf(stderr, "missing fixture %s\n", rel); exit(1); }
    if (shape) *shape = t;
    return f;
}

/* A fixture of raw uint16 bit patterns, viewed as a tensor of dtype `type` with the fixture's shape. */
static tensor load_bits(const char *name, dtype type) {
    tensor s;
    float *f = load(name, &s);
    int64_t n = tensor_numel(&s);
    uint16_t *bits = ts_malloc((size_t)n * 2);
    for (int64_t i = 0; i < n; i++) bits[i] = (uint16_t)f[i];
    free(f);
    return tensor_view(bits, type, s.ndim, s.shape);
}

static tensor load_tensor(const char *name) {
    tensor s;
    float *f = load(name, &s);
    return tensor_view(f, DT_F32, s.ndim, s.shape);
}

static void expect(const float *got, const char *name, const char *what) {
    tensor s;
    float *want = load(name, &s);
    float scale, diff = test_max_abs_diff(got, want, (size_t)tensor_numel(&s), &scale);
    printf("  %-28s max abs diff %.3g (scale %.3g)\n", what, diff, scale);
    CHECK_CLOSE_ARRAYS(got, want, (size_t)tensor_numel(&s), TOL, what);
    free(want);
}

/* Same inputs as hash_floats() in tools/gen_op_fixtures.py. */
static float *hash_floats(int64_t n, uint32_t salt, float scale) {
    float *f = ts_aligned_alloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) {
        uint32_t u = (uint32_t)((uint64_t)i * 2654435761u + (uint64_t)salt * 40503u);
        f[i] = ((float)u * 0x1p-32f - 0.5f) * scale;
    }
    return f;
}

static void test_gemm(void) {
    float *A = load("gemm_a", NULL), *B = load("gemm_b", NULL), *C0 = load("gemm_c0", NULL);
    float C[15], At[35], Bt[21];
    gemm(test_ctx(), false, false, 5, 3, 7, 1.0f, A, 7, B, 3, 0.0f, C, 3);
    expect(C, "gemm_c", "gemm");
    for (int i = 0; i < 5; i++) for (int k = 0; k < 7; k++) At[k * 5 + i] = A[i * 7 + k];
    for (int k = 0; k < 7; k++) for (int j = 0; j < 3; j++) Bt[j * 7 + k] = B[k * 3 + j];
    memcpy(C, C0, sizeof C);
    gemm(test_ctx(), true, true, 5, 3, 7, 0.5f, At, 5, Bt, 7, 2.0f, C, 3);
    expect(C, "gemm_tt", "gemm transposed alpha beta");
    free(A); free(B); free(C0);

    float *BA = load("gemm_batched_a", NULL), *BB = load("gemm_batched_b", NULL), BC[60];
    gemm_batched(test_ctx(), 3, false, false, 4, 5, 6, 1.0f, BA, 6, 24, BB, 5, 30, 0.0f, BC, 5, 20);
    expect(BC, "gemm_batched_c", "gemm_batched");
    free(BA); free(BB);

    /* large enough for BLAS to use its threads: plain, then A^T B^T */
    float *X = hash_floats(150 * 400, 11, 1.0f), *Y = hash_floats(400 * 40, 12, 1.0f);
    float *Z = ts_malloc(150 * 40 * sizeof(float));
    gemm(test_ctx(), false, false, 150, 40, 400, 1.0f, X, 400, Y, 40, 0.0f, Z, 40);
    expect(Z, "gemm_split_rows", "gemm 150x40x400");
    free(X); free(Y);
    X = hash_floats(400 * 40, 13, 1.0f), Y = hash_floats(150 * 400, 14, 1.0f);
    gemm(test_ctx(), true, true, 40, 150, 400, 1.0f, X, 40, Y, 400, 0.0f, Z, 150);
    expect(Z, "gemm_split_cols_tt", "gemm 40x150x400 A^T B^T");
    free(X); free(Y); free(Z);
}

/* linear on all 6 fixture rows (widen + sgemm) and on the first 2 (the few-rows path). */
static void check_linear(const float *x, const tensor *W, const tensor *b, const char *fixture, const char *what) {
    float y[60], y2[20];
    CHECK_OK(linear(test_ctx(), y, x, 6, W, b));
    expect(y, fixture, what);
    CHECK_OK(linear(test_ctx(), y2, x, 2, W, b));
    tensor s;
    float *want = load(fixture, &s);
    char label[96];
    snprintf(label, sizeof label, "%s, 2 rows", what);
    float scale, diff = test_max_abs_diff(y2, want, 20, &scale);
    printf("  %-28s max abs diff %.3g (scale %.3g)\n", label, diff, scale);
    CHECK_CLOSE_ARRAYS(y2, want, 20, TOL, label);
    free(want);
}

static void test_linear(void) {
    float *x = load("linear_x", NULL), y[60];
    tensor W = load_tensor("linear_w"), b = load_tensor("linear_b");
    check_linear(x, &W, &b, "linear_y", "linear f32");
    tensor W16 = load_bits("linear_w_f16", DT_F16);
    check_linear(x, &W16, &b, "linear_y_f16", "linear f16 weight");
    tensor Wb = load_bits("linear_w_bf16", DT_BF16), bb = load_bits("linear_b_bf16", DT_BF16);
    check_linear(x, &Wb, &bb, "linear_y_bf16", "linear bf16 weight+bias");
    tensor bad = tensor_f32(b.data, 9, 0, 0, 0);
    CHECK(linear(test_ctx(), y, x, 4, &W, &bad) == -1 && strstr(ts_last_error(), "bias"), "bad bias refused: %s", ts_last_error());
    free(x); free(W.data); free(b.data); free(W16.data); free(Wb.data); free(bb.data);
}

static const char *conv_names[] = {"conv_basic", "conv_stride2", "conv_groups", "conv_1x1", "conv_rect",
                                   "conv_depthwise", "conv_oddpad", "conv_wide", "conv_bf16", "conv_k4s2"};

/* cache_weights: run each case twice with the weight cache on (the second run hits it). */
static void test_conv(conv2d_backend backend, bool cache_weights) {
    if (!conv2d_backend_available(backend)) return;
    conv2d_set_backend(test_ctx(), backend);
    conv2d_weight_cache(test_ctx(), cache_weights ? (size_t)1 << 30 : 0);
    printf(" conv2d backend %s%s\n", backend == CONV_BACKEND_AUTO ? "auto" : conv2d_backend_name(conv2d_get_backend(test_ctx())),
           cache_weights ? ", weights cached" : "");
    tensor ps;
    float *params = load("conv_params", &ps);
    int cases = (int)ps.shape[0], cols = (int)ps.shape[1];
    CHECK(cases == (int)(sizeof conv_names / sizeof *conv_names), "conv case count %d", cases);
    for (int c = 0; c < cases; c++) {
        const float *r = params + c * cols;
        int N = (int)r[0], C = (int)r[1], H = (int)r[2], W = (int)r[3], has_bias = (int)r[12], wdt = (int)r[13];
        conv2d_params p = {.stride_h = (int)r[7], .stride_w = (int)r[8], .pad_h = (int)r[9], .pad_w = (int)r[10],
                           .groups = (int)r[11]};
        char name[64];
        snprintf(name, sizeof name, "%s_x", conv_names[c]);
        float *x = load(name, NULL);
        snprintf(name, sizeof name, "%s_w", conv_names[c]);
        tensor w = wdt == 0 ? load_tensor(name) : load_bits(name, wdt == 1 ? DT_F16 : DT_BF16);
        tensor b = {0};
        if (has_bias) { snprintf(name, sizeof name, "%s_b", conv_names[c]); b = load_tensor(name); }
        int OH, OW;
        conv2d_out_size(H, W, &w, p, &OH, &OW);
        float *y = ts_malloc((size_t)N * (size_t)r[4] * OH * OW * sizeof(float));
        snprintf(name, sizeof name, "%s_y", conv_names[c]);
        for (int round = 0; round < (cache_weights ? 2 : 1); round++) {
            memset(y, 0, (size_t)N * (size_t)r[4] * OH * OW * sizeof(float));
            CHECK_OK(conv2d(test_ctx(), y, x, N, C, H, W, &w, has_bias ? &b : NULL, p));
            expect(y, name, conv_names[c]);
        }
        free(x); free(y); free(w.data); free(b.data);
    }
    free(params);

    /* 32 channels at 180x180: im2col has to work in bands of output rows */
    {
        size_t n_out = (size_t)8 * 180 * 180, count = 0;
        float *bx = hash_floats(32 * 180 * 180, 21, 1.0f), *bw = hash_floats(8 * 32 * 9, 22, 0.2f);
        float *by = ts_malloc(n_out * sizeof(float)), *picked = ts_malloc((n_out / 97 + 1) * sizeof(float));
        tensor wt_big = tensor_f32(bw, 8, 32, 3, 3);
        CHECK_OK(conv2d(test_ctx(), by, bx, 1, 32, 180, 180, &wt_big, NULL, (conv2d_params){.pad_h = 1, .pad_w = 1}));
        for (size_t i = 0; i < n_out; i += 97) picked[count++] = by[i];
        expect(picked, "conv_big_y_every97", "conv 32@180x180 (im2col in bands)");
        free(bx); free(bw); free(by); free(picked);
    }
    /* 256 channels in and out at 12x11: the automatic choice takes Winograd here */
    {
        size_t n_out = (size_t)256 * 12 * 11, count = 0;
        float *cx = hash_floats(256 * 12 * 11, 41, 1.0f), *cw = hash_floats(256 * 256 * 9, 42, 0.05f);
        float *cb = hash_floats(256, 43, 1.0f);
        float *cy = ts_malloc(n_out * sizeof(float)), *picked = ts_malloc((n_out / 7 + 1) * sizeof(float));
        tensor wt_c = tensor_f32(cw, 256, 256, 3, 3), bt_c = tensor_f32(cb, 256, 0, 0, 0);
        CHECK_OK(conv2d(test_ctx(), cy, cx, 1, 256, 12, 11, &wt_c, &bt_c, (conv2d_params){.pad_h = 1, .pad_w = 1}));
        for (size_t i = 0; i < n_out; i += 7) picked[count++] = cy[i];
        expect(picked, "conv_c256_y_every7", "conv 256@12x11");
        free(cx); free(cw); free(cb); free(cy); free(picked);
    }

    /* bad shapes are refused with a message */
    float w[2 * 3 * 3 * 3] = {0}, x[3 * 16] = {0}, y[64];
    tensor wt = tensor_f32(w, 2, 3, 3, 3);
    CHECK(conv2d(test_ctx(), y, x, 1, 4, 4, 4, &wt, NULL, (conv2d_params){0}) == -1, "channel mismatch refused");
    CHECK(conv2d(test_ctx(), y, x, 1, 3, 2, 2, &wt, NULL, (conv2d_params){0}) == -1 && strstr(ts_last_error(), "kernel"),
          "kernel larger than input refused: %s", ts_last_error());
    conv2d_weight_cache_clear(test_ctx());
    conv2d_weight_cache(test_ctx(), 0);
    conv2d_set_backend(test_ctx(), CONV_BACKEND_AUTO);
}

static void test_norms(void) {
    tensor s;
    float *x = load("group_norm_x", &s), y[240];
    tensor g = load_tensor("group_norm_gamma"), b = load_tensor("group_norm_beta");
    CHECK_OK(group_norm(test_ctx(), y, x, 2, 8, 15, 4, &g, &b, 1e-5f));
    expect(y, "group_norm_y", "group_norm");
    CHECK_OK(group_norm(test_ctx(), x, x, 2, 8, 15, 4, &g, &b, 1e-5f));   /* in place */
    expect(x, "group_norm_y", "group_norm in place");
    CHECK(group_norm(test_ctx(), y, x, 2, 8, 15, 3, &g, &b, 1e-5f) == -1, "8 channels in 3 groups refused");
    free(x); free(g.data); free(b.data);
    x = load("group_norm_offset_x", NULL);
    CHECK_OK(group_norm(test_ctx(), y, x, 2, 8, 15, 2, NULL, NULL, 1e-6f));
    expect(y, "group_norm_offset_y", "group_norm mean 1000");
    free(x);

    float ly[5 * 33];
    x = load("layer_norm_x", NULL);
    g = load_tensor("layer_norm_gamma"), b = load_tensor("layer_norm_beta");
    CHECK_OK(layer_norm(test_ctx(), ly, x, 5, 33, &g, &b, 1e-5f));
    expect(ly, "layer_norm_y", "layer_norm");
    CHECK_OK(layer_norm(test_ctx(), ly, x, 5, 33, NULL, NULL, 1e-6f));
    expect(ly, "layer_norm_plain_y", "layer_norm no affine");
    tensor gb = load_bits("layer_norm_bf16_gamma", DT_BF16);
    CHECK_OK(layer_norm(test_ctx(), ly, x, 5, 33, &gb, &b, 1e-5f));
    expect(ly, "layer_norm_bf16_y", "layer_norm bf16 gamma");
    CHECK(layer_norm(test_ctx(), ly, x, 5, 32, &g, &b, 1e-5f) == -1 && strstr(ts_last_error(), "gamma"), "gamma size checked");
    free(x); free(g.data); free(b.data); free(gb.data);

    float ry[160];
    x = load("rms_norm_x", NULL);
    tensor w = load_tensor("rms_norm_w"), w16 = load_bits("rms_norm_w_f16", DT_F16);
    CHECK_OK(rms_norm(test_ctx(), ry, x, 4, 40, &w, 1e-6f));
    expect(ry, "rms_norm_y", "rms_norm");
    CHECK_OK(rms_norm(test_ctx(), ry, x, 4, 40, &w16, 1e-6f));
    expect(ry, "rms_norm_f16_y", "rms_norm f16 weight");
    free(x); free(w.data); free(w16.data);
}

static void test_activations(void) {
    static const char *sets[] = {"act", "act_big"};
    float *x;
    for (int k = 0; k < 2; k++) {
        tensor s;
        char name[64], what[64];
        snprintf(name, sizeof name, "%s_x", sets[k]);
        x = load(name, &s);
        int64_t n = tensor_numel(&s);
        float *y = ts_malloc((size_t)n * sizeof(float));
        static const char *fn_names[] = {"silu", "gelu_erf", "gelu_tanh", "quick_gelu"};
        void (*fns[])(ts_ctx *, float *, const float *, int64_t) = {silu, gelu_erf, gelu_tanh, quick_gelu};
        for (int f = 0; f < 4; f++) {
            fns[f](test_ctx(), y, x, n);
            snprintf(name, sizeof name, "%s_%s", sets[k], fn_names[f]);
            snprintf(what, sizeof what, "%s (%s)", fn_names[f], sets[k]);
            expect(y, name, what);
        }
        memcpy(y, x, (size_t)n * sizeof(float));
        silu(test_ctx(), y, y, n);
        snprintf(name, sizeof name, "%s_silu", sets[k]);
        expect(y, name, "silu in place");
        free(x); free(y);
    }

    x = load("softmax_x", NULL);
    softmax_rows(test_ctx(), x, 6, 37);
    expect(x, "softmax_y", "softmax_rows");
    free(x);

    float out[60];
    x = load("geglu_x", NULL);
    geglu(test_ctx(), out, x, 3, 20); expect(out, "geglu_y", "geglu");
    free(x);
    float *g = load("swiglu_gate", NULL), *u = load("swiglu_up", NULL);
    swiglu(test_ctx(), out, g, u, 3, 17); expect(out, "swiglu_y", "swiglu");
    free(g); free(u);
}

static void check_binary(const char *prefix, tensor *a, tensor *b, int ndim, const int64_t *shape) {
    int64_t n = 1;
    for (int d = 0; d < ndim; d++) n *= shape[d];
    float *o = ts_malloc((size_t)n * sizeof(float));
    tensor out = tensor_view(o, DT_F32, ndim, shape);
    char name[64], what[64];
    CHECK_OK(tensor_add(test_ctx(), &out, a, b));
    snprintf(name, sizeof name, "%s_add", prefix);
    snprintf(what, sizeof what, "tensor_add %s", prefix);
    expect(o, name, what);
    CHECK_OK(tensor_mul(test_ctx(), &out, a, b));
    snprintf(name, sizeof name, "%s_mul", prefix);
    snprintf(what, sizeof what, "tensor_mul %s", prefix);
    expect(o, name, what);
    free(o);
}

static void test_elementwise(void) {
    tensor a = load_tensor("bcast1_a"), b = load_tensor("bcast1_b");
    check_binary("bcast1", &a, &b, 4, (int64_t[]){2, 3, 4, 5});
    float junk[120];
    tensor wrong = tensor_f32(junk, 2, 3, 4, 4);
    CHECK(tensor_add(test_ctx(), &wrong, &a, &b) == -1 && strstr(ts_last_error(), "broadcast"), "wrong out shape refused");
    free(a.data); free(b.data);
    a = load_tensor("bcast2_a"), b = load_tensor("bcast2_b");
    check_binary("bcast2", &a, &b, 2, (int64_t[]){4, 3});
    free(a.data); free(b.data);
    a = load_tensor("bcast3_a"), b = load_tensor("bcast3_b");
    tensor at;
    CHECK_OK(tensor_transpose(&at, &a, 1, 2));
    check_binary("bcast3", &at, &b, 3, (int64_t[]){2, 3, 4});
    tensor bad = tensor_f32(b.data, 3, 0, 0, 0);
    float o[24];
    tensor out = tensor_f32(o, 2, 3, 4, 0);
    CHECK(tensor_add(test_ctx(), &out, &at, &bad) == -1, "[3] does not broadcast against [2,3,4]");
    free(a.data); free(b.data);
    a = load_tensor("bcast4_a"), b = load_bits("bcast4_b_bf16", DT_BF16);
    check_binary("bcast4", &a, &b, 3, (int64_t[]){2, 5, 6});
    free(a.data); free(b.data);

    float *x = load("row_bias_x", NULL);
    tensor rb = load_tensor("row_bias_b");
    add_row_bias(test_ctx(), x, 4, 6, &rb);
    expect(x, "row_bias_y", "add_row_bias");
    free(x); free(rb.data);
    x = load("channel_bias_x", NULL);
    float *cb = load("channel_bias_b", NULL);
    tensor cbt = tensor_f32(cb, 2, 3, 0, 0);   /* one bias per image */
    CHECK_OK(add_channel_bias(test_ctx(), x, 2, 3, 10, &cbt));
    expect(x, "channel_bias_y", "add_channel_bias");
    free(x); free(cb);

    float v[5] = {1, 2, 3, 4, 5}, w[5] = {0.5f, -1, 2, 0, 1};
    add_inplace(test_ctx(), v, w, 5);
    scale_inplace(test_ctx(), v, 2.0f, 5);
    CHECK(v[0] == 3 && v[1] == 2 && v[2] == 10 && v[3] == 8 && v[4] == 12, "add_inplace/scale_inplace");
}

static void test_layout(void) {
    float *x = load("upsample_x", NULL), y[480];
    upsample_nearest2x(test_ctx(), y, x, 2, 3, 4, 5);
    expect(y, "upsample_y", "upsample_nearest2x");
    free(x);

    tensor p[3] = {load_tensor("concat_p0"), load_tensor("concat_p1"), load_tensor("concat_p2")};
    float o[72];
    tensor out = tensor_f32(o, 2, 9, 4, 0);
    CHECK_OK(tensor_concat(test_ctx(), &out, p, 3, 1));
    expect(o, "concat_dim1", "concat dim 1");
    tensor small = tensor_f32(o, 2, 8, 4, 0);
    CHECK(tensor_concat(test_ctx(), &small, p, 3, 1) == -1, "concat size mismatch refused");
    /* the same with part 0 as a strided view: [2, 4, 3] memory seen transposed as [2, 3, 4] */
    float p0t[24];
    const float *p0 = p[0].data;
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 3; b++)
            for (int c = 0; c < 4; c++) p0t[a * 12 + c * 3 + b] = p0[a * 12 + b * 4 + c];
    tensor stored = tensor_f32(p0t, 2, 4, 3, 0), strided[3] = {p[0], p[1], p[2]};
    CHECK_OK(tensor_transpose(&strided[0], &stored, 1, 2));
    memset(o, 0, sizeof o);
    CHECK_OK(tensor_concat(test_ctx(), &out, strided, 3, 1));
    expect(o, "concat_dim1", "concat dim 1, strided part");
    for (int i = 0; i < 3; i++) free(p[i].data);
    tensor q[2] = {load_tensor("concat_q0"), load_tensor("concat_q1")};
    out = tensor_f32(o, 2, 3, 6, 0);
    CHECK_OK(tensor_concat(test_ctx(), &out, q, 2, 2));
    expect(o, "concat_dim2", "concat dim 2");
    free(q[0].data); free(q[1].data);

    float *c = load("nchw_x", NULL), t[120], back[120];
    nchw_to_nhwc(test_ctx(), t, c, 2, 5, 12);
    expect(t, "nhwc_y", "nchw_to_nhwc");
    nhwc_to_nchw(test_ctx(), back, t, 2, 5, 12);
    expect(back, "nchw_x", "nhwc_to_nchw");
    free(c);
}

static const char *attn_names[] = {"attn_cross", "attn_mask", "attn_causal", "attn_causal_kv", "attn_fused",
                                   "attn_gqa"};
/* head_dim 12 (the sgemm path) and 80 (the small-head kernel over three key tiles, masked) */
static const char *attn_more_names[] = {"attn_d12", "attn_d80"};

/* The cases of one parameter table (rows: batch, heads, head_dim, n_q, n_kv, kind) against torch. */
static void test_attention(const char *params_name, const char *const *names, int n_names) {
    tensor ps;
    float *params = load(params_name, &ps);
    int cases = (int)ps.shape[0], cols = (int)ps.shape[1];
    CHECK(cases == n_names, "%s: attention case count %d", params_name, cases);
    for (int c = 0; c < cases; c++) {
        const float *r = params + c * cols;
        int B = (int)r[0], H = (int)r[1], D = (int)r[2], kind = (int)r[5];
        int64_t nq = (int64_t)r[3], nkv = (int64_t)r[4];
        attention_params p = {.batch = B, .heads = H, .head_dim = D, .n_q = nq, .n_kv = nkv,
                              .scale = 1.0f / sqrtf((float)D), .causal = kind == 2 || kind == 4,
                              .kv_heads = kind == 4 ? H / 3 : 0};
        char name[64];
        float *q, *k, *v, *qkv = NULL, *mask = NULL;
        if (kind == 3) {                         /* one fused [B, n, 3*H*D] buffer, hash inputs */
            qkv = hash_floats((int64_t)B * nq * 3 * H * D, 31, 3.0f);
            q = qkv, k = qkv + H * D, v = qkv + 2 * H * D;
            p.q_stride = p.k_stride = p.v_stride = 3 * H * D;
        } else {
            snprintf(name, sizeof name, "%s_q", names[c]); q = load(name, NULL);
            snprintf(name, sizeof name, "%s_k", names[c]); k = load(name, NULL);
            snprintf(name, sizeof name, "%s_v", names[c]); v = load(name, NULL);
        }
        if (kind == 1) { snprintf(name, sizeof name, "%s_m", names[c]); p.mask = mask = load(name, NULL); }
        float *o = ts_malloc((size_t)B * nq * H * D * sizeof(float));
        attention(test_ctx(), o, q, k, v, p);
        snprintf(name, sizeof name, "%s_o", names[c]);
        expect(o, name, names[c]);
        free(o); free(mask);
        if (qkv) free(qkv);
        else { free(q); free(k); free(v); }
    }
    free(params);
}

static void test_attention_large(const char *name, int H, int D, int64_t nq, int64_t nkv, float qscale) {
    int HD = H * D;
    float *q = hash_floats(nq * HD, 1, qscale), *k = hash_floats(nkv * HD, 2, 1.0f), *v = hash_floats(nkv * HD, 3, 1.0f);
    float *o = ts_aligned_alloc((size_t)nq * HD * sizeof(float));
    attention_params p = {.batch = 1, .heads = H, .head_dim = D, .n_q = nq, .n_kv = nkv};   /* scale 0: 1/sqrt(D) */
    double t0 = ts_now();
    attention(test_ctx(), o, q, k, v, p);
    double ms = (ts_now() - t0) * 1e3;
    int64_t rows = (nq + 60) / 61;
    float *picked = ts_malloc((size_t)rows * HD * sizeof(float));
    for (int64_t r = 0; r < rows; r++) memcpy(picked + r * HD, o + r * 61 * HD, (size_t)HD * sizeof(float));
    char fixture[64], what[96];
    snprintf(fixture, sizeof fixture, "%s_rows", name);
    snprintf(what, sizeof what, "%s %lldx%lld (%.0f ms)", name, (long long)nq, (long long)nkv, ms);
    expect(picked, fixture, what);
    free(q); free(k); free(v); free(o); free(picked);
}

int main(void) {
    TEST_BEGIN();
    test_gemm();
    test_linear();
    test_conv(CONV_BACKEND_IM2COL, false);
    test_conv(CONV_BACKEND_ONEDNN, false);
    test_conv(CONV_BACKEND_ONEDNN, true);
    test_conv(CONV_BACKEND_WINOGRAD, false);
    for (int order = 1; order <= 2; order++) {   /* Winograd in many small chunks and blocks, both loop orders */
        printf(" (Winograd's small blocks, order %d)\n", order);
        cpu_debug_force_split(test_ctx(), order);
        test_conv(CONV_BACKEND_WINOGRAD, false);
    }
    cpu_debug_force_split(test_ctx(), 0);
    test_conv(CONV_BACKEND_AUTO, false);
    test_norms();
    test_activations();
    test_elementwise();
    test_layout();
    test_attention("attn_params", attn_names, (int)(sizeof attn_names / sizeof *attn_names));
    test_attention("attn_more_params", attn_more_names, (int)(sizeof attn_more_names / sizeof *attn_more_names));
    test_attention_large("attn_big_cross", 2, 40, 4096, 77, 4.0f);
    test_attention_large("attn_big_self", 2, 64, 1024, 1024, 8.0f);
    return TEST_END();
}
