/*
 * image_jpeg.c — JPEG to RGB8 through libjpeg(-turbo)'s classic API, set up the way
 * Pillow's JpegDecode.c sets it up (integer slow DCT, fancy upsampling, libjpeg's own
 * YCbCr->RGB), so the pixels match Pillow's for the same libjpeg-turbo algorithms.
 *
 * libjpeg reports a truncated file only as a warning and fills the rest with grey; a
 * dataset must not caption half an image, so "premature end of data" is an error here
 * (as Pillow's "image file is truncated"). Other warnings (extraneous bytes) are let
 * through, as Pillow lets them through.
 */
#include "models/formats/image_decode.h"

#include <stdio.h>   /* before jpeglib.h, which uses FILE */
#include <jpeglib.h>
#include <jerror.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    struct jpeg_error_mgr base;
    jmp_buf escape;
    char message[JMSG_LENGTH_MAX];
} jpeg_errors;

static void on_error(j_common_ptr cinfo) {
    jpeg_errors *e = (jpeg_errors *)cinfo->err;
    cinfo->err->format_message(cinfo, e->message);
    longjmp(e->escape, 1);
}

static void on_message(j_common_ptr cinfo, int level) {
    if (level >= 0) return;                       /* trace messages */
    if (cinfo->err->msg_code == JWRN_JPEG_EOF) {  /* truncated: fatal for us */
        jpeg_errors *e = (jpeg_errors *)cinfo->err;
        snprintf(e->message, sizeof e->message, "premature end of data (truncated file)");
        longjmp(e->escape, 1);
    }
    cinfo->err->num_warnings++;
}

int image_jpeg_decode(const void *data, size_t size, const char *label, image_rgb8 *out) {
    memset(out, 0, sizeof *out);
    struct jpeg_decompress_struct cinfo;
    jpeg_errors err;
    memset(&err, 0, sizeof err);
    cinfo.err = jpeg_std_error(&err.base);
    err.base.error_exit = on_error;
    err.base.emit_message = on_message;
    uint8_t *volatile rgb = NULL;
    if (setjmp(err.escape)) {
        jpeg_destroy_decompress(&cinfo);
        free(rgb);
        return ts_fail("%s: JPEG: %s", label, err.message);
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, (const unsigned char *)data, (unsigned long)size);
    jpeg_read_header(&cinfo, TRUE);
    if (cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK) {
        jpeg_destroy_decompress(&cinfo);
        return ts_fail("%s: JPEG: CMYK images are not supported", label);
    }
    if ((uint64_t)cinfo.image_width * cinfo.image_height > (1ull << 28)) {
        int w = (int)cinfo.image_width, h = (int)cinfo.image_height;
        jpeg_destroy_decompress(&cinfo);
        return ts_fail("%s: JPEG: %dx%d is too large", label, w, h);
    }
    cinfo.out_color_space = JCS_RGB;   /* greyscale is replicated, as convert("RGB") does */
    cinfo.dct_method = JDCT_ISLOW;
    cinfo.do_fancy_upsampling = TRUE;
    jpeg_start_decompress(&cinfo);
    size_t stride = (size_t)cinfo.output_width * 3;
    rgb = ts_malloc(stride * cinfo.output_height);
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = rgb + stride * cinfo.output_scanline;
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_decompress(&cinfo);
    out->rgb = rgb;
    out->width = (int)cinfo.output_width;
    out->height = (int)cinfo.output_height;
    jpeg_destroy_decompress(&cinfo);
    return 0;
}
