/* image_webp.c — WebP (lossy, lossless, with or without alpha) to RGB8 through libwebp.
 * Alpha is dropped without compositing, as Pillow's convert("RGB") drops it. */
#include "models/formats/image_decode.h"

#include <stdlib.h>
#include <string.h>
#include <webp/decode.h>

int image_webp_decode(const void *data, size_t size, const char *label, image_rgb8 *out) {
    memset(out, 0, sizeof *out);
    WebPBitstreamFeatures f;
    VP8StatusCode st = WebPGetFeatures(data, size, &f);
    if (st != VP8_STATUS_OK) return ts_fail("%s: WebP: unreadable header (libwebp status %d)", label, (int)st);
    if (f.has_animation) return ts_fail("%s: WebP: animated images are not supported", label);
    if ((uint64_t)f.width * (uint64_t)f.height > (1ull << 28)) return ts_fail("%s: WebP: %dx%d is too large", label, f.width, f.height);
    size_t pixels = (size_t)f.width * (size_t)f.height, channels = f.has_alpha ? 4 : 3;
    uint8_t *px = ts_malloc(pixels * channels);
    uint8_t *ok = f.has_alpha ? WebPDecodeRGBAInto(data, size, px, pixels * 4, f.width * 4)
                              : WebPDecodeRGBInto(data, size, px, pixels * 3, f.width * 3);
    if (!ok) {
        free(px);
        return ts_fail("%s: WebP: corrupt or truncated image data", label);
    }
    uint8_t *rgb = px;
    if (f.has_alpha) {
        rgb = ts_malloc(pixels * 3);
        image_composite_on_white(px, pixels, rgb);
        free(px);
    }
    out->rgb = rgb, out->width = f.width, out->height = f.height;
    return 0;
}
