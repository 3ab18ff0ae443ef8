/* libFuzzer target: the safetensors header parser must refuse or accept any bytes
 * without crashing, and every accepted tensor view must lie inside the buffer. */
#include "models/formats/safetensors.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    safetensors *st = safetensors_open_buffer(data, size, "fuzz");
    if (!st) return 0;
    for (int i = 0; i < safetensors_count(st); i++) {
        tensor t;
        if (safetensors_get(st, safetensors_name_at(st, i), &t) != 0) abort();
        const uint8_t *p = t.data;
        size_t n = tensor_nbytes(&t);
        if (p < data || p + n > data + size) abort();
        volatile uint8_t sink = 0;
        for (size_t k = 0; k < n; k++) sink ^= p[k];   /* ASan flags any read outside */
        (void)sink;
    }
    safetensors_close(&st);
    return 0;
}
