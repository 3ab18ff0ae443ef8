/* GGUF reader and quantized kernels: tensors and metadata read as the gguf package wrote
 * them; every block type dequantizes to gguf.quants.dequantize's values and its dot
 * products and matmuls (row and gemm paths) match numpy's; malformed files are refused
 * with a message naming the key or tensor. Fixtures: tools/gen_llm_fixtures.py. */
#include "kernels/ops.h"
#include "kernels/quant.h"
#include "models/formats/gguf.h"
#include "models/formats/model_files.h"
#include "tests/test.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static void check_quant_rows(void) {
    size_t size;
    char *text = read_text_file(fixture_path("llm/quant_rows.json"), &size);
    CHECK(text != NULL, "%s", ts_last_error());
    gguf *g = gguf_open(fixture_path("llm/quant_rows.gguf"));
    CHECK(g != NULL, "%s", ts_last_error());
    if (!text || !g) { free(text); gguf_close(&g); return; }
    cJSON *root = cJSON_Parse(text);
    const int cols = cJSON_GetObjectItem(root, "cols")->valueint, rows = cJSON_GetObjectItem(root, "rows")->valueint;
    float *x = ts_malloc((size_t)cols * QMATMUL_GEMM_MIN_ROWS * sizeof(float));
    for (int i = 0; i < cols; i++) x[i] = (float)cJSON_GetArrayItem(cJSON_GetObjectItem(root, "x"), i)->valuedouble;
    for (int j = 1; j < QMATMUL_GEMM_MIN_ROWS; j++) memcpy(x + (size_t)j * cols, x, (size_t)cols * sizeof(float));
    const cJSON *types = cJSON_GetObjectItem(root, "types"), *t;
    int seen = 0;
    cJSON_ArrayForEach(t, types) {
        const gguf_tensor *gt = gguf_find_tensor(g, t->string);
        CHECK(gt != NULL, "tensor %s in quant_rows.gguf", t->string);
        if (!gt) continue;
        dtype qt;
        CHECK_OK(gguf_tensor_dtype(g, gt, &qt));
        CHECK(strcmp(dtype_name(qt), t->string) == 0 && gt->shape[0] == rows && gt->shape[1] == cols,
              "%s: type %s shape [%lld, %lld]", t->string, dtype_name(qt), (long long)gt->shape[0], (long long)gt->shape[1]);
        qmatrix m;
        CHECK_OK(qmatrix_view(&m, qt, rows, cols, gt->data, t->string));
        CHECK(qmatrix_nbytes(&m) == gt->nbytes, "%s: %zu bytes, file says %zu", t->string, qmatrix_nbytes(&m), gt->nbytes);
        float *got = ts_malloc((size_t)cols * sizeof(float)), *want = ts_malloc((size_t)cols * sizeof(float));
        float dots[3], y[QMATMUL_GEMM_MIN_ROWS * 3], ydot[3];
        for (int r = 0; r < rows; r++) {
            const cJSON *row = cJSON_GetArrayItem(cJSON_GetObjectItem(t, "dequantized"), r);
            for (int i = 0; i < cols; i++) want[i] = (float)cJSON_GetArrayItem(row, i)->valuedouble;
            qmatrix_row(&m, r, got);
            char what[64];
            snprintf(what, sizeof what, "%s row %d dequantized", t->string, r);
            CHECK_CLOSE_ARRAYS(got, want, (size_t)cols, 1e-6f, what);
            dots[r] = (float)cJSON_GetArrayItem(cJSON_GetObjectItem(t, "dot"), r)->valuedouble;
            ydot[r] = quant_dot(qt, (const uint8_t *)gt->data + (size_t)r * m.row_bytes, x, cols);
        }
        CHECK_CLOSE_ARRAYS(ydot, dots, 3, 1e-5f, t->string);
        for (int n = 1; n <= QMATMUL_GEMM_MIN_ROWS; n += QMATMUL_GEMM_MIN_ROWS - 1) { /* row dots; slab + gemm */
            qmatmul(test_ctx(), y, x, n, &m);
            for (int j = 0; j < n; j++) CHECK_CLOSE_ARRAYS(y + j * rows, dots, 3, 1e-5f, "qmatmul");
        }
        qmatmul(test_ctx(), y, x, 7, &m);                  /* 7: one dequantized row against 4 + 3 rows of x */
        for (int j = 0; j < 7; j++) CHECK_CLOSE_ARRAYS(y + j * rows, dots, 3, 1e-5f, "qmatmul n=7");
        free(got);
        free(want);
        seen++;
    }
    CHECK(seen == 7, "7 block types in the fixture, saw %d", seen);
    free(x);
    cJSON_Delete(root);
    free(text);
    gguf_close(&g);
}

/* Every block type llama.cpp's quantize presets write (random block bytes, see
 * tools/gen_llm_quant_fixtures.py): dequantized values bit-identical to
 * gguf.quants.dequantize; dots and every qmatmul path within float rounding of float64. */
static void check_all_block_types(void) {
    char *text = read_text_file(fixture_path("llm_quant/quant_rows.json"), NULL);
    gguf *g = gguf_open(fixture_path("llm_quant/quant_rows.gguf"));
    tensor shape;
    float *want = fixture_npy("llm_quant/quant_rows.npy", &shape);
    CHECK(text && g && want, "llm_quant fixtures: %s", ts_last_error());
    if (!text || !g || !want) { free(text); gguf_close(&g); free(want); return; }
    cJSON *root = cJSON_Parse(text);
    const int cols = cJSON_GetObjectItem(root, "cols")->valueint, rows = cJSON_GetObjectItem(root, "rows")->valueint;
    float *x = ts_malloc((size_t)cols * QMATMUL_GEMM_MIN_ROWS * sizeof(float));
    for (int i = 0; i < cols; i++) x[i] = (float)cJSON_GetArrayItem(cJSON_GetObjectItem(root, "x"), i)->valuedouble;
    for (int j = 1; j < QMATMUL_GEMM_MIN_ROWS; j++) memcpy(x + (size_t)j * cols, x, (size_t)cols * sizeof(float));
    float *got = ts_malloc((size_t)cols * sizeof(float)), *y = ts_malloc((size_t)QMATMUL_GEMM_MIN_ROWS * rows * sizeof(float));
    const cJSON *t;
    int k = 0;
    cJSON_ArrayForEach(t, cJSON_GetObjectItem(root, "types")) {
        const char *name = cJSON_GetObjectItem(t, "name")->valuestring;
        const gguf_tensor *gt = gguf_find_tensor(g, name);
        dtype qt;
        qmatrix m;
        CHECK(gt && gguf_tensor_dtype(g, gt, &qt) == 0 && strcmp(dtype_name(qt), name) == 0, "%s: %s", name, ts_last_error());
        if (!gt || gguf_tensor_dtype(g, gt, &qt) != 0) { k++; continue; }
        CHECK_OK(qmatrix_view(&m, qt, rows, cols, gt->data, name));
        CHECK(qmatrix_nbytes(&m) == gt->nbytes, "%s: %zu bytes, file says %zu", name, qmatrix_nbytes(&m), gt->nbytes);
        float dots[8], err = 0;
        for (int r = 0; r < rows; r++) {
            const float *w = want + ((size_t)k * rows + r) * cols;
            qmatrix_row(&m, r, got);
            int differ = 0;
            for (int i = 0; i < cols; i++) differ += memcmp(&got[i], &w[i], sizeof(float)) != 0;
            CHECK(differ == 0, "%s row %d: %d of %d dequantized values differ from gguf.quants.dequantize", name, r, differ, cols);
            dots[r] = (float)cJSON_GetArrayItem(cJSON_GetObjectItem(t, "dot"), r)->valuedouble;
            float d = quant_dot(qt, (const uint8_t *)gt->data + (size_t)r * m.row_bytes, x, cols);
            err = fmaxf(err, fabsf(d - dots[r]) / (1.0f + fabsf(dots[r])));
        }
        CHECK(err <= 1e-5f, "%s: quant_dot relative error %g", name, err);
        for (int n = 1; n <= QMATMUL_GEMM_MIN_ROWS; n += 6) {   /* 1: row dots; 7..31: 4-row dots; 31+: slab + gemm */
            int nn = n > QMATMUL_GEMM_MIN_ROWS - 6 ? QMATMUL_GEMM_MIN_ROWS : n;
            qmatmul(test_ctx(), y, x, nn, &m);
            float e = 0;
            for (int j = 0; j < nn; j++)
                for (int r = 0; r < rows; r++) e = fmaxf(e, fabsf(y[j * rows + r] - dots[r]) / (1.0f + fabsf(dots[r])));
            CHECK(e <= 1e-5f, "%s: qmatmul n=%d relative error %g", name, nn, e);
        }
        k++;
    }
    CHECK(k == 15 && shape.shape[0] == 15, "15 types in llm_quant/quant_rows, saw %d", k);
    free(got); free(y); free(x); free(want);
    cJSON_Delete(root);
    free(text);
    gguf_close(&g);
}

static void check_metadata(void) {
    gguf *g = gguf_open(fixture_path("llm/llama_f32.gguf"));
    CHECK(g != NULL, "%s", ts_last_error());
    if (!g) return;
    CHECK(gguf_version(g) == 3, "version %u", gguf_version(g));
    gguf_str s;
    CHECK_OK(gguf_get_string(g, "general.architecture", &s));
    CHECK(gguf_str_eq(s, "llama"), "architecture '%.*s'", (int)s.len, s.ptr);
    int64_t v;
    CHECK_OK(gguf_get_int(g, "llama.block_count", &v));
    CHECK(v == 2, "block_count %lld", (long long)v);
    double f;
    CHECK_OK(gguf_get_float(g, "llama.attention.layer_norm_rms_epsilon", &f));
    CHECK(fabs(f - 1e-5) < 1e-12, "rms eps %g", f);
    gguf_type et;
    uint64_t count;
    CHECK_OK(gguf_get_array(g, "tokenizer.ggml.tokens", &et, &count));
    CHECK(et == GGUF_STRING && count == 256, "token list %d x %llu", et, (unsigned long long)count);
    CHECK_OK(gguf_array_string(g, "tokenizer.ggml.tokens", 5, &s));
    CHECK(gguf_str_eq(s, "<t5>"), "token 5 '%.*s'", (int)s.len, s.ptr);
    CHECK(gguf_array_string(g, "tokenizer.ggml.tokens", 256, &s) == -1 && strstr(ts_last_error(), "index 256"),
          "index past the end refused: %s", ts_last_error());
    CHECK(gguf_get_int(g, "general.architecture", &v) == -1 && strstr(ts_last_error(), "general.architecture"),
          "string read as int refused: %s", ts_last_error());
    CHECK(gguf_get_int(g, "no.such.key", &v) == -1 && strstr(ts_last_error(), "no.such.key"), "%s", ts_last_error());
    const gguf_tensor *t = gguf_find_tensor(g, "blk.1.ffn_down.weight");
    CHECK(t && t->ndim == 2 && t->shape[0] == 64 && t->shape[1] == 128 && t->ggml_type == GGML_F32, "ffn_down info");
    CHECK(gguf_find_tensor(g, "blk.2.ffn_down.weight") == NULL, "absent tensor");
    gguf_close(&g);
}

/* ---- malformed files ---- */

static uint8_t *file_bytes(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *size = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = ts_malloc(*size);
    if (fread(b, 1, *size, f) != *size) { free(b); b = NULL; }
    fclose(f);
    return b;
}

static size_t find_bytes(const uint8_t *b, size_t n, const char *s) {
    size_t k = strlen(s);
    for (size_t i = 0; i + k <= n; i++)
        if (memcmp(b + i, s, k) == 0) return i;
    return 0;
}

static void expect_refused(const uint8_t *orig, size_t size, size_t at, const void *patch, size_t plen,
                           const char *needle, const char *what) {
    uint8_t *b = ts_malloc(size);
    memcpy(b, orig, size);
    memcpy(b + at, patch, plen);
    gguf *g = gguf_open_buffer(b, size, "bad.gguf");
    CHECK(g == NULL, "%s: should be refused", what);
    CHECK(strstr(ts_last_error(), needle) != NULL, "%s: message '%s' should mention '%s'", what, ts_last_error(), needle);
    gguf_close(&g);
    free(b);
}

static void check_malformed(void) {
    size_t size;
    uint8_t *b = file_bytes(fixture_path("llm/llama_q8_0.gguf"), &size);
    CHECK(b != NULL, "read llama_q8_0.gguf");
    if (!b) return;
    gguf *ok = gguf_open_buffer(b, size, "good.gguf");
    CHECK(ok != NULL, "the untouched copy opens: %s", ts_last_error());
    gguf_close(&ok);

    /* every truncation is refused (all tensors need their data) */
    int refused = 0, tried = 0;
    for (size_t n = 0; n < size; n += n < 4096 ? 7 : 4093, tried++) {
        gguf *g = gguf_open_buffer(b, n, "short.gguf");
        if (!g && ts_last_error()[0]) refused++;
        gguf_close(&g);
    }
    CHECK(refused == tried, "%d of %d truncations refused", refused, tried);

    uint32_t u32;
    uint64_t u64;
    expect_refused(b, size, 0, "GGML", 4, "magic", "bad magic");
    u32 = 1;
    expect_refused(b, size, 4, &u32, 4, "version 1", "version 1");
    u64 = (uint64_t)1 << 60;
    expect_refused(b, size, 8, &u64, 8, "tensor count", "huge tensor count");
    expect_refused(b, size, 16, &u64, 8, "key count", "huge key count");

    /* the first key: u64 length at 24, then its name, then its u32 type */
    uint64_t klen;
    memcpy(&klen, b + 24, 8);
    u32 = 77;
    expect_refused(b, size, 32 + klen, &u32, 4, "unknown value type 77", "bad value type");
    expect_refused(b, size, 24, &u64, 8, "string length", "huge key length");

    /* tensor info of token_embd.weight: name, u32 ndim, ndim x u64, u32 type, u64 offset */
    size_t name_at = find_bytes(b, size, "token_embd.weight");
    CHECK(name_at > 0, "token_embd.weight in the header");
    size_t nd_at = name_at + strlen("token_embd.weight");
    uint32_t nd;
    memcpy(&nd, b + nd_at, 4);
    size_t type_at = nd_at + 4 + 8 * nd, off_at = type_at + 4;
    u32 = 99;
    expect_refused(b, size, type_at, &u32, 4, "tensor 'token_embd.weight': unknown ggml type 99", "unknown tensor type");
    u32 = 5;
    expect_refused(b, size, nd_at, &u32, 4, "token_embd.weight", "5 dimensions");
    u64 = (uint64_t)1 << 40;
    expect_refused(b, size, off_at, &u64, 8, "tensor 'token_embd.weight': data", "offset past the end");
    memcpy(&u64, b + off_at, 8);
    u64 += 1;
    expect_refused(b, size, off_at, &u64, 8, "alignment", "misaligned offset");
    u64 = 33;  /* row of 33 values is not a whole number of Q8_0 blocks */
    expect_refused(b, size, nd_at + 4, &u64, 8, "not a multiple", "partial block");
    u64 = 0;
    expect_refused(b, size, nd_at + 4, &u64, 8, "zero or too large", "zero dimension");
    /* point the second tensor at the first one's data: overlap */
    size_t second = find_bytes(b, size, "output_norm.weight");
    if (second) {
        size_t nd2 = second + strlen("output_norm.weight");
        uint32_t d2;
        memcpy(&d2, b + nd2, 4);
        uint64_t first_off;
        memcpy(&first_off, b + off_at, 8);
        expect_refused(b, size, nd2 + 4 + 8 * d2 + 4, &first_off, 8, "overlaps", "overlapping tensors");
    }
    free(b);

    gguf *g = gguf_open("/nonexistent/model.gguf");
    CHECK(g == NULL && strstr(ts_last_error(), "/nonexistent/model.gguf"), "missing file: %s", ts_last_error());
}

int main(void) {
    TEST_BEGIN();
    check_quant_rows();
    check_all_block_types();
    check_metadata();
    check_malformed();
    return TEST_END();
}
