/* image_decode.c — picks the decoder by the magic bytes (see image_decode.h). */
#include "models/formats/image_decode.h"
#include "models/formats/image_png.h"

#include <errno.h>
#include <spng.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

image_format image_sniff(const void *data, size_t size) {
    const uint8_t *b = data;
    if (size >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF) return IMAGE_JPEG;
    if (size >= 8 && memcmp(b, "\x89PNG\r\n\x1a\n", 8) == 0) return IMAGE_PNG;
    if (size >= 12 && memcmp(b, "RIFF", 4) == 0 && memcmp(b + 8, "WEBP", 4) == 0) return IMAGE_WEBP;
    return IMAGE_UNKNOWN;
}

const char *image_format_name(image_format f) {
    switch (f) {
    case IMAGE_JPEG: return "JPEG";
    case IMAGE_PNG: return "PNG";
    case IMAGE_WEBP: return "WebP";
    default: return "unknown";
    }
}

void image_composite_on_white(const uint8_t *rgba, size_t pixels, uint8_t *rgb) {
    /* Pillow's ImagingAlphaComposite (7 extra bits, rounded divisions by 255) with an opaque
     * white destination, where its out-alpha is always 255*255; checked against Pillow for
     * every (value, alpha) pair. */
    for (size_t i = 0; i < pixels; i++) {
        uint32_t a = rgba[i * 4 + 3];
        uint32_t coef1 = a << 7, coef2 = (255u << 7) - coef1;
        for (int c = 0; c < 3; c++) {
            uint32_t t = rgba[i * 4 + c] * coef1 + 255u * coef2 + (0x80u << 7);
            rgb[i * 3 + c] = (uint8_t)(((((t >> 8) + t) >> 8)) >> 7);
        }
    }
}

/* PNG: libspng (image_png.c) when opaque; with an alpha channel or a tRNS chunk, RGBA8
 * (tRNS applied) composited onto white, as transformers' convert_to_rgb does. */
static int png_decode(const void *data, size_t size, const char *label, image_rgb8 *out) {
    spng_ctx *ctx = spng_ctx_new(0);
    if (!ctx) return ts_fail("%s: out of memory", label);
    spng_set_crc_action(ctx, SPNG_CRC_ERROR, SPNG_CRC_ERROR);
    spng_set_image_limits(ctx, 1 << 15, 1 << 15);
    spng_set_chunk_limits(ctx, 1 << 26, 1 << 28);
    struct spng_ihdr ihdr;
    struct spng_trns trns;
    int err = spng_set_png_buffer(ctx, data, size);
    if (!err) err = spng_get_ihdr(ctx, &ihdr);
    bool alpha = !err && (ihdr.color_type == SPNG_COLOR_TYPE_GRAYSCALE_ALPHA || ihdr.color_type == SPNG_COLOR_TYPE_TRUECOLOR_ALPHA ||
                          spng_get_trns(ctx, &trns) == 0);
    if (err || !alpha) {
        spng_ctx_free(ctx);
        return image_png_decode(data, size, label, &out->rgb, &out->width, &out->height, NULL);
    }
    size_t n = 0;
    uint8_t *rgba = NULL;
    err = spng_decoded_image_size(ctx, SPNG_FMT_RGBA8, &n);
    if (!err) {
        rgba = ts_malloc(n);
        err = spng_decode_image(ctx, rgba, n, SPNG_FMT_RGBA8, SPNG_DECODE_TRNS);
    }
    spng_ctx_free(ctx);
    if (err) {
        free(rgba);
        return ts_fail("%s: not a readable PNG: %s", label, spng_strerror(err));
    }
    out->width = (int)ihdr.width, out->height = (int)ihdr.height;
    out->rgb = ts_malloc((size_t)out->width * out->height * 3);
    image_composite_on_white(rgba, (size_t)out->width * out->height, out->rgb);
    free(rgba);
    return 0;
}

int image_decode(const void *data, size_t size, const char *label, image_rgb8 *out) {
    memset(out, 0, sizeof *out);
    switch (image_sniff(data, size)) {
    case IMAGE_JPEG: return image_jpeg_decode(data, size, label, out);
    case IMAGE_WEBP: return image_webp_decode(data, size, label, out);
    case IMAGE_PNG: return png_decode(data, size, label, out);
    default:
        if (size == 0) return ts_fail("%s: empty file", label);
        return ts_fail("%s: not a JPEG, PNG or WebP image (first bytes %02x %02x %02x %02x)", label,
                       ((const uint8_t *)data)[0], size > 1 ? ((const uint8_t *)data)[1] : 0,
                       size > 2 ? ((const uint8_t *)data)[2] : 0, size > 3 ? ((const uint8_t *)data)[3] : 0);
    }
}

int image_read(const char *path, image_rgb8 *out) {
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) return ts_fail("%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0, got;
    uint8_t *buf = ts_malloc(cap);
    while ((got = fread(buf + n, 1, cap - n, f)) > 0)
        if ((n += got) == cap) buf = ts_realloc(buf, cap *= 2);
    bool failed = ferror(f);
    fclose(f);
    int rc = failed ? ts_fail("%s: read error", path) : image_decode(buf, n, path, out);
    free(buf);
    return rc;
}

void image_rgb8_clear(image_rgb8 *img) {
    free(img->rgb);
    memset(img, 0, sizeof *img);
}
