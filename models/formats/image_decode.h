/*
 * image_decode.h — any image file (JPEG, PNG, WebP) to RGB8, as Pillow's
 * Image.open(f).convert("RGB") gives it, for the captioner's preprocessing.
 *
 * The format is told by the magic bytes, not the file name (web datasets mislabel).
 * A corrupt or truncated image is refused with one line naming the label and the reason
 * ("shard-00003.tar:000123.jpg: JPEG: premature end of data"), so a job can write it to
 * its rejects and go on.
 */
#ifndef TESSERA_IMAGE_DECODE_H
#define TESSERA_IMAGE_DECODE_H

#include "kernels/base.h"

typedef struct {
    uint8_t *rgb;          /* [height][width][3], malloc'd */
    int width, height;
} image_rgb8;

typedef enum { IMAGE_UNKNOWN = 0, IMAGE_JPEG, IMAGE_PNG, IMAGE_WEBP } image_format;

image_format image_sniff(const void *data, size_t size);
const char *image_format_name(image_format f);

/* Decodes data (any supported format). label names the source in messages. */
int image_decode(const void *data, size_t size, const char *label, image_rgb8 *out);
/* Reads and decodes a file. */
int image_read(const char *path, image_rgb8 *out);
void image_rgb8_clear(image_rgb8 *img);

/* RGBA8 -> RGB8 over an opaque white background, rounded as Pillow's alpha_composite. */
void image_composite_on_white(const uint8_t *rgba, size_t pixels, uint8_t *rgb);

/* The per-format decoders (image_jpeg.c, image_webp.c; PNG is image_png.c). */
int image_jpeg_decode(const void *data, size_t size, const char *label, image_rgb8 *out);
int image_webp_decode(const void *data, size_t size, const char *label, image_rgb8 *out);

#endif
