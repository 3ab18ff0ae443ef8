/* safetensors: values match what the reference library wrote; every malformed header is
 * refused with a message naming the problem; the writer round-trips. */
#include "models/formats/safetensors.h"
#include "tests/test.h"

#include <stdlib.h>
#include <string.h>

static void check_tensor_matches_npy(safetensors *st, const char *name) {
    tensor t, want_shape;
    CHECK_OK(safetensors_get(st, name, &t));
    char rel[256];
    snprintf(rel, sizeof rel, "safetensors/%s.npy", name);
    float *want = fixture_npy(rel, &want_shape);
    CHECK(want != NULL, "fixture %s", rel);
    if (!want) return;
    CHECK(tensor_numel(&t) == tensor_numel(&want_shape), "%s: element count", name);
    float *got = ts_malloc((size_t)tensor_numel(&t) * sizeof(float));
    tensor_copy_to_f32(got, &t);
    CHECK_CLOSE_ARRAYS(got, want, (size_t)tensor_numel(&t), 0.0f, name);
    free(got);
    free(want);
}

/* Builds a file image: 8-byte length, header text, then data_len zero bytes. */
static uint8_t *make_file(const char *header, uint64_t claimed_len, size_t data_len, size_t *size) {
    size_t hl = strlen(header);
    *size = 8 + hl + data_len;
    uint8_t *b = ts_calloc(1, *size);
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(claimed_len >> (8 * i));
    memcpy(b + 8, header, hl);
    return b;
}

static void expect_refused(const char *header, uint64_t claimed_len, size_t data_len, const char *needle) {
    size_t size;
    uint8_t *b = make_file(header, claimed_len ? claimed_len : strlen(header), data_len, &size);
    safetensors *st = safetensors_open_buffer(b, size, "bad.safetensors");
    CHECK(st == NULL, "header %.60s should be refused", header);
    CHECK(strstr(ts_last_error(), needle) != NULL, "message '%s' should mention '%s'", ts_last_error(), needle);
    CHECK(strchr(ts_last_error(), '\n') == NULL, "one line: %s", ts_last_error());
    safetensors_close(&st);
    free(b);
}

int main(void) {
    TEST_BEGIN();
    safetensors *st = safetensors_open(fixture_path("safetensors/good.safetensors"));
    CHECK(st != NULL, "%s", ts_last_error());
    if (st) {
        CHECK(safetensors_count(st) == 5, "count %d", safetensors_count(st));
        const char *names[] = {"conv.weight", "norm.bias", "proj.weight", "position_ids", "scalar"};
        for (int i = 0; i < 5; i++) check_tensor_matches_npy(st, names[i]);
        tensor t;
        CHECK_OK(safetensors_get(st, "norm.bias", &t));
        CHECK(t.type == DT_F16 && t.ndim == 1 && t.shape[0] == 5, "norm.bias is F16 [5]");
        CHECK_OK(safetensors_get(st, "proj.weight", &t));
        CHECK(t.type == DT_BF16 && t.shape[0] == 6 && t.shape[1] == 7, "proj.weight is BF16 [6, 7]");
        CHECK(safetensors_get(st, "missing", &t) == -1 && strstr(ts_last_error(), "no tensor 'missing'"),
              "missing tensor: %s", ts_last_error());
        CHECK(safetensors_get_shaped(st, "conv.weight", &t, 2, (int64_t[]){4, 27}) == -1 &&
                  strstr(ts_last_error(), "[4, 3, 3, 3]"), "shape check: %s", ts_last_error());
        const char *note = safetensors_metadata_get(st, "note");
        CHECK(note && strcmp(note, "fixture") == 0, "metadata note");
        safetensors_close(&st);
    }

    /* Malformed files: each refused with a message that says what is wrong. */
    expect_refused("{}", 10ull << 30, 0, "exceeds the file size");                       /* 10 GB header length */
    expect_refused("not json at all", 0, 0, "not valid JSON");
    expect_refused("[1, 2]", 0, 0, "not a JSON object");
    expect_refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 0, 4, "run past the end");
    expect_refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 0, 8, "needs 12");
    expect_refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                   "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 0, 12, "overlap");
    expect_refused("{\"a\":{\"dtype\":\"Q7\",\"shape\":[2],\"data_offsets\":[0,8]}}", 0, 8, "unsupported dtype");
    /* GGUF's block types are dtypes, but no safetensors tensor's (found by fuzz_safetensors:
     * a division by their element size of 0) */
    expect_refused("{\"a\":{\"dtype\":\"Q5_0\",\"shape\":[32],\"data_offsets\":[0,22]}}", 0, 22, "unsupported dtype");
    expect_refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 0, 8, "shape entry 0");
    expect_refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 0, 8, "bad data_offsets");
    expect_refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,1e300]}}", 0, 8, "bad data_offsets");
    expect_refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,8]}}",
                   0, 8, "overflows");
    expect_refused("{\"__metadata__\":{\"k\":1}}", 0, 0, "not a string");
    expect_refused("{\"__metadata__\":{},\"__metadata__\":{}}", 0, 0, "appears twice"); /* found by the fuzzer */
    {
        size_t size = 5;
        uint8_t tiny[5] = {1, 2, 3, 4, 5};
        CHECK(safetensors_open_buffer(tiny, size, "tiny") == NULL && strstr(ts_last_error(), "too short"),
              "5-byte file: %s", ts_last_error());
    }
    CHECK(safetensors_open("/nonexistent/x.safetensors") == NULL && strstr(ts_last_error(), "cannot open"),
          "missing file: %s", ts_last_error());

    /* Writer round trip, with a strided (transposed) view as input. */
    float m[6] = {1, 2, 3, 4, 5, 6};
    tensor a = tensor_f32(m, 2, 3, 0, 0), at;
    tensor_transpose(&at, &a, 0, 1);
    const char *path = "test_safetensors_roundtrip.safetensors";
    safetensors_writer *w = safetensors_writer_new(path);
    CHECK_OK(safetensors_writer_add(w, "t", &at));
    CHECK_OK(safetensors_writer_metadata(w, "format", "pt"));
    CHECK_OK(safetensors_writer_finish(&w));
    st = safetensors_open(path);
    CHECK(st != NULL, "%s", ts_last_error());
    if (st) {
        tensor r;
        CHECK_OK(safetensors_get_shaped(st, "t", &r, 2, (int64_t[]){3, 2}));
        float got[6];
        tensor_copy_to_f32(got, &r);
        float want[6] = {1, 4, 2, 5, 3, 6};
        CHECK_CLOSE_ARRAYS(got, want, 6, 0.0f, "transposed round trip");
        safetensors_close(&st);
    }
    remove(path);
    return TEST_END();
}
