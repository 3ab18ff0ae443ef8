/* libFuzzer target: any bytes as an image (JPEG, PNG, WebP by magic) must decode or be
 * refused without crashing, and whatever decodes must go through CLIP preprocessing
 * (resample, crop, pad) safely; the image's checks that a recaption job's reader makes
 * (image_bytes_problem) too. Seeds: tests/fixtures/caption's small images. */
#include "coordinator/dataset_images.h"
#include "models/formats/image_decode.h"
#include "models/vision/image_preprocess.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    (void)image_bytes_problem(data, size);
    image_rgb8 img;
    if (image_decode(data, size, "fuzz", &img) != 0) return 0;
    if ((size_t)img.width * (size_t)img.height <= 1u << 20) {   /* keep each run quick */
        image_preprocess_config c = image_preprocess_clip(24);
        int side = img.width > img.height ? img.width : img.height;
        c.pad_to_square = (size & 1) && side <= 1024;   /* the padded square is side^2 pixels */
        c.crop_h = 20 + (int)(size % 9);
        float *px;
        int h, w;
        if (image_preprocess(&img, &c, &px, &h, &w) == 0) free(px);
    }
    image_rgb8_clear(&img);
    return 0;
}
