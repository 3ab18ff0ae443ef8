/* libFuzzer target: PNG decoding and the A1111 parameters parser must refuse or accept any
 * bytes without crashing. The first byte picks the target, the rest is its input. */
#include "models/formats/image_png.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    if (data[0] & 1) {
        uint8_t *rgb = NULL;
        int w, h;
        char *text = NULL;
        if (image_png_decode(data + 1, size - 1, "fuzz.png", &rgb, &w, &h, &text) == 0 && text) {
            gen_parameters p;
            if (gen_parameters_parse(text, &p) == 0) gen_parameters_clear(&p);
        }
        free(rgb);
        free(text);
    } else {
        char *text = malloc(size);
        memcpy(text, data + 1, size - 1);
        text[size - 1] = 0;
        gen_parameters p;
        if (gen_parameters_parse(text, &p) == 0) {
            char *again = gen_parameters_format(&p);   /* format what was parsed: no crash either */
            free(again);
            gen_parameters_clear(&p);
        }
        free(text);
    }
    return 0;
}
