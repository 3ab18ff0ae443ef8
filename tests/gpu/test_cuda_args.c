/*
 * test_cuda_args.c — what kernels/cuda checks before it touches a GPU, so it runs (never
 * skips) wherever the CUDA library is built, CI included: bad shapes, types and leading
 * dimensions are refused with a message naming them; no device gives a clear error, not
 * a crash; the output-size arithmetic matches torch's conv2d formula.
 */
#include "kernels/cuda/cuda.h"
#include "tests/test.h"

#include <string.h>

int main(void) {
    TEST_BEGIN();
    int devices = cuda_device_count();
    CHECK(devices >= 0, "device count %d", devices);
    CHECK(cuda_context_new(devices, 0) == NULL && strstr(ts_last_error(), "the driver sees"), "%s", ts_last_error());
    CHECK(cuda_context_new(-1, 0) == NULL, "device -1");
    char desc[64];
    CHECK(cuda_device_describe(devices, desc, sizeof desc) == -1, "describing a device past the last");

    /* every check below fails before the context is used, so none is needed */
    cuda_gemm_params g = {.M = 4, .N = 5, .K = 6, .alpha = 1, .lda = 6, .ldb = 5, .ldc = 5,
                          .ab_type = DT_F16, .c_type = DT_BF16};
    CHECK(cuda_gemm(NULL, &g) == -1 && strstr(ts_last_error(), "C of type BF16"), "%s", ts_last_error());
    g.c_type = DT_F32, g.ldb = 4;
    CHECK(cuda_gemm(NULL, &g) == -1 && strstr(ts_last_error(), "ldb 4"), "%s", ts_last_error());
    g.ldb = 5, g.trans_b = true;   /* B stored [N, K]: ldb must be >= K */
    CHECK(cuda_gemm(NULL, &g) == -1 && strstr(ts_last_error(), "leading dimensions"), "%s", ts_last_error());
    g.trans_b = false, g.ab_type = DT_I8;
    CHECK(cuda_gemm(NULL, &g) == -1 && strstr(ts_last_error(), "I8"), "%s", ts_last_error());
    g.ab_type = DT_F16, g.epilogue = CUDA_EPILOGUE_BIAS;
    CHECK(cuda_gemm(NULL, &g) == -1 && strstr(ts_last_error(), "without a bias"), "%s", ts_last_error());

    cuda_conv_params c = {.N = 1, .H = 8, .W = 8, .C = 6, .OC = 4, .KH = 3, .KW = 3, .stride = 2, .pad = 1, .groups = 4,
                          .type = DT_F16};
    int OH, OW;
    cuda_conv2d_out_size(&c, &OH, &OW);
    CHECK(OH == 4 && OW == 4, "8x8, 3x3, stride 2, pad 1 -> %dx%d (torch: 4x4)", OH, OW);
    CHECK(cuda_conv2d(NULL, NULL, NULL, NULL, NULL, &c) == -1 && strstr(ts_last_error(), "groups"), "%s", ts_last_error());
    c.groups = 1, c.KH = 11, c.pad = 0;
    CHECK(cuda_conv2d(NULL, NULL, NULL, NULL, NULL, &c) == -1 && strstr(ts_last_error(), "bad shape"), "%s", ts_last_error());
    c.KH = 3, c.type = DT_F64;
    CHECK(cuda_conv2d(NULL, NULL, NULL, NULL, NULL, &c) == -1 && strstr(ts_last_error(), "F64"), "%s", ts_last_error());

    CHECK(cuda_group_norm(NULL, NULL, NULL, DT_F32, 1, 16, 30, 4, NULL, NULL, 1e-5f, false) == -1 &&
          strstr(ts_last_error(), "30 channels"), "%s", ts_last_error());
    CHECK(cuda_layer_norm(NULL, NULL, NULL, DT_U8, 1, 16, NULL, NULL, 1e-5f) == -1, "U8 layer norm");

    cuda_attention_params a = {.batch = 1, .heads = 6, .kv_heads = 4, .head_dim = 64, .n_q = 8, .n_kv = 8, .type = DT_F16};
    CHECK(cuda_attention(NULL, NULL, NULL, NULL, NULL, &a) == -1 && strstr(ts_last_error(), "6 heads over 4"), "%s",
          ts_last_error());
    a.kv_heads = 0, a.head_dim = 257;
    CHECK(cuda_attention(NULL, NULL, NULL, NULL, NULL, &a) == -1 && strstr(ts_last_error(), "width 257"), "%s",
          ts_last_error());
    a.head_dim = 64, a.type = DT_I32;
    CHECK(cuda_attention(NULL, NULL, NULL, NULL, NULL, &a) == -1 && strstr(ts_last_error(), "I32"), "%s", ts_last_error());
    return TEST_END();
}
