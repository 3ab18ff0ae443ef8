/* libFuzzer target: the GGUF parser must refuse or accept any bytes without crashing; every
 * accepted key and array element must be readable and every tensor must lie inside the
 * buffer. Seeds: tests/fuzz/seeds/fuzz_gguf (small GGUF files from the LLM fixtures). */
#include "models/formats/gguf.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    gguf *g = gguf_open_buffer(data, size, "fuzz");
    if (!g) return 0;
    volatile uint64_t sink = 0;
    for (int i = 0; i < gguf_kv_count(g); i++) {
        gguf_str k = gguf_kv_key(g, i);
        char *key = gguf_strdup(k);
        int64_t v;
        double f;
        gguf_str s;
        if (gguf_kv_type(g, i) == GGUF_ARRAY) {
            gguf_type et;
            uint64_t n;
            if (gguf_get_array(g, key, &et, &n) != 0) abort();
            for (uint64_t j = 0; j < n && j < 4096; j++) {
                if (et == GGUF_STRING) { if (gguf_array_string(g, key, j, &s) == 0) sink += s.len ? (uint8_t)s.ptr[s.len - 1] : 0; }
                else if (gguf_array_float(g, key, j, &f) == 0) sink += (uint64_t)(f != 0);
            }
        } else if (gguf_kv_type(g, i) == GGUF_STRING) {
            if (gguf_get_string(g, key, &s) == 0 && s.len) sink += (uint8_t)s.ptr[s.len - 1];
        } else if (gguf_get_int(g, key, &v) == 0) sink += (uint64_t)v;
        else if (gguf_get_float(g, key, &f) == 0) sink += (uint64_t)(f != 0);
        free(key);
    }
    for (int i = 0; i < gguf_tensor_count(g); i++) {
        const gguf_tensor *t = gguf_tensor_at(g, i);
        const uint8_t *p = t->data;
        if (p < data || p + t->nbytes > data + size) abort();
        if (t->nbytes) sink += p[0] + p[t->nbytes - 1];
        dtype qt;
        if (gguf_tensor_dtype(g, t, &qt) == 0 && t->ndim == 2) {
            float row[4096];
            if (t->shape[1] <= 4096) dequantize_row(qt, p, row, t->shape[1]);
        }
    }
    (void)sink;
    gguf_close(&g);
    return 0;
}
