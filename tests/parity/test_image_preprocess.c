/* Image decoding and CLIP preprocessing against Pillow and transformers' CLIPImageProcessor
 * (Pillow backend) / LlavaImageProcessor with do_pad: PNG (RGB, grey, RGBA), JPEG (4:2:0,
 * 4:4:4, grey, progressive), WebP (lossless, lossy) decoded byte for byte as Pillow decodes
 * them, then pixel values within 1e-5 for several sizes, aspect ratios and crops, on the
 * synthetic fixtures and on the sample photos in $TESSERA_DATA/images. Corrupt and truncated
 * files are refused with the reason. Fixtures: tools/gen_caption_fixtures.py. */
#include "models/formats/image_decode.h"
#include "models/formats/model_files.h"
#include "models/vision/image_preprocess.h"
#include "tests/test.h"

#include <cjson/cJSON.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

static const char *case_path(const char *file) {
    static char rel[256];
    snprintf(rel, sizeof rel, "caption/%s", file);
    return strncmp(file, "DATA:", 5) == 0 ? data_path(file + 5) : fixture_path(rel);
}

static void *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *buf = ts_malloc((size_t)size + 1);
    *n = fread(buf, 1, (size_t)size, f);
    fclose(f);
    return buf;
}

static void check_case(const cJSON *c) {
    const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
    const char *file = cJSON_GetObjectItem(c, "file")->valuestring;
    image_rgb8 img;
    int rc = image_read(case_path(file), &img);
    CHECK(rc == 0, "%s: %s", name, ts_last_error());
    if (rc) return;
    CHECK(img.width == cJSON_GetObjectItem(c, "width")->valueint && img.height == cJSON_GetObjectItem(c, "height")->valueint,
          "%s: decoded %dx%d", name, img.width, img.height);
    /* decoded bytes: identical to Pillow's */
    size_t nbytes = (size_t)img.width * img.height * 3;
    unsigned char hash[crypto_hash_sha256_BYTES];
    char hex[2 * crypto_hash_sha256_BYTES + 1];
    crypto_hash_sha256(hash, img.rgb, nbytes);
    sodium_bin2hex(hex, sizeof hex, hash, sizeof hash);
    bool same = strcmp(hex, cJSON_GetObjectItem(c, "decoded_sha256")->valuestring) == 0;
    CHECK(same, "%s: decoded pixels differ from Pillow's", name);
    char rel[256];
    snprintf(rel, sizeof rel, "caption/%s.decoded.npy", name);
    tensor shape;
    float *want_rgb = fopen(fixture_path(rel), "rb") ? fixture_npy(rel, &shape) : NULL;
    if (want_rgb && !same) {
        int differ = 0, worst = 0;
        for (size_t i = 0; i < nbytes; i++) {
            int d = abs((int)img.rgb[i] - (int)want_rgb[i]);
            differ += d != 0;
            if (d > worst) worst = d;
        }
        fprintf(stderr, "  %s: %d of %zu bytes differ from Pillow's, by at most %d\n", name, differ, nbytes, worst);
    }
    free(want_rgb);
    /* preprocessing */
    const cJSON *crop = cJSON_GetObjectItem(c, "crop");
    image_preprocess_config cfg = image_preprocess_clip(cJSON_GetObjectItem(c, "shortest_edge")->valueint);
    cfg.crop_h = cJSON_GetArrayItem(crop, 0)->valueint;
    cfg.crop_w = cJSON_GetArrayItem(crop, 1)->valueint;
    cfg.pad_to_square = cJSON_IsTrue(cJSON_GetObjectItem(c, "pad_to_square"));
    float *px;
    int H, W;
    rc = image_preprocess(&img, &cfg, &px, &H, &W);
    CHECK(rc == 0, "%s: %s", name, ts_last_error());
    snprintf(rel, sizeof rel, "caption/%s.pixels.npy", name);
    float *want = fixture_npy(rel, &shape);
    CHECK(want && shape.ndim == 3 && shape.shape[1] == H && shape.shape[2] == W, "%s: pixel_values shape", name);
    if (rc == 0 && want && shape.shape[1] == H && shape.shape[2] == W) {
        float mw, err = test_max_abs_diff(px, want, (size_t)3 * H * W, &mw);
        CHECK(err <= 1e-5f, "%s: max |pixel - CLIPImageProcessor| = %g", name, (double)err);
        printf("  %-22s %4dx%-4d -> %dx%d%s  max error %.3g\n", name, img.width, img.height, W, H,
               cfg.pad_to_square ? " (padded)" : "", (double)err);
    }
    free(px), free(want);
    image_rgb8_clear(&img);
}

static void sha256_hex(const uint8_t *data, size_t n, char hex[2 * crypto_hash_sha256_BYTES + 1]) {
    unsigned char hash[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(hash, data, n);
    sodium_bin2hex(hex, 2 * crypto_hash_sha256_BYTES + 1, hash, sizeof hash);
}

/* The resampler alone: Pillow's bytes exactly, for many output sizes. */
static void check_resample(const cJSON *c) {
    const char *file = cJSON_GetObjectItem(c, "file")->valuestring;
    int w = cJSON_GetObjectItem(c, "width")->valueint, h = cJSON_GetObjectItem(c, "height")->valueint;
    image_rgb8 img, out;
    if (image_read(case_path(file), &img)) { CHECK(false, "%s", ts_last_error()); return; }
    CHECK_OK(image_resample_bicubic(&img, w, h, &out));
    char hex[2 * crypto_hash_sha256_BYTES + 1];
    sha256_hex(out.rgb, (size_t)w * h * 3, hex);
    CHECK(strcmp(hex, cJSON_GetObjectItem(c, "sha256")->valuestring) == 0, "%s %dx%d -> %dx%d: not Pillow's bytes", file,
          img.width, img.height, w, h);
    image_rgb8_clear(&img);
    image_rgb8_clear(&out);
}

/* Damaged files: refused with a reason, never decoded into half an image. */
static void check_rejects(void) {
    size_t n;
    image_rgb8 img;
    uint8_t *jpg = slurp(fixture_path("caption/jpeg_420.jpg"), &n);
    CHECK(jpg != NULL, "jpeg fixture");
    if (jpg) {
        CHECK(image_decode(jpg, n / 2, "half.jpg", &img) < 0 && strstr(ts_last_error(), "half.jpg") &&
              strstr(ts_last_error(), "truncated"), "truncated JPEG: '%s'", ts_last_error());
        CHECK(image_decode(jpg, 200, "head.jpg", &img) < 0, "JPEG cut in its header");
        memset(jpg + 20, 0x00, n - 40);
        int rc = image_decode(jpg, n, "zeroed.jpg", &img);
        CHECK(rc < 0, "JPEG with its data zeroed decodes");
        if (rc == 0) image_rgb8_clear(&img);
        free(jpg);
    }
    uint8_t *png = slurp(fixture_path("caption/png_down.png"), &n);
    CHECK(png != NULL, "png fixture");
    if (png) {
        CHECK(image_decode(png, n - 100, "cut.png", &img) < 0 && strstr(ts_last_error(), "cut.png"), "truncated PNG: '%s'", ts_last_error());
        png[n / 2] ^= 0x55;
        CHECK(image_decode(png, n, "flipped.png", &img) < 0, "PNG with a flipped byte (CRC) decodes");
        free(png);
    }
    uint8_t *webp = slurp(fixture_path("caption/webp_lossy.webp"), &n);
    if (webp) {
        CHECK(image_decode(webp, n - 60, "cut.webp", &img) < 0 && strstr(ts_last_error(), "WebP"), "truncated WebP: '%s'", ts_last_error());
        free(webp);
    }
    CHECK(image_decode("GIF89a......", 12, "x.gif", &img) < 0 && strstr(ts_last_error(), "not a JPEG, PNG or WebP"),
          "GIF: '%s'", ts_last_error());
    CHECK(image_decode("", 0, "empty.jpg", &img) < 0 && strstr(ts_last_error(), "empty"), "empty: '%s'", ts_last_error());
    /* A 1x2000 strip would resize to 24x48000 before the crop (found by fuzz_image_decode: a
     * 10 s stall); refused with its shape instead. */
    uint8_t strip_px[2000 * 3] = {0};
    image_rgb8 strip = {.width = 1, .height = 2000, .rgb = strip_px};
    image_preprocess_config c = image_preprocess_clip(24);
    float *px = NULL;
    int h, w;
    CHECK(image_preprocess(&strip, &c, &px, &h, &w) < 0 && strstr(ts_last_error(), "1x2000") &&
          strstr(ts_last_error(), "too elongated"), "1x2000 strip: '%s'", ts_last_error());
    free(px);
    /* pad-to-square makes the whole square first: a 9000-wide strip would be 81 M pixels */
    uint8_t *wide_px = calloc((size_t)9000 * 2 * 3, 1);
    image_rgb8 wide = {.width = 9000, .height = 2, .rgb = wide_px};
    c.pad_to_square = true;
    px = NULL;
    CHECK(image_preprocess(&wide, &c, &px, &h, &w) < 0 && strstr(ts_last_error(), "9000x2") &&
          strstr(ts_last_error(), "pad to a square"), "9000x2 padded: '%s'", ts_last_error());
    free(px);
    free(wide_px);
}

int main(void) {
    TEST_BEGIN();
    CHECK(sodium_init() >= 0, "libsodium");
    size_t size;
    char *text = read_text_file(fixture_path("caption/cases.json"), &size);
    cJSON *root = text ? cJSON_Parse(text) : NULL;
    CHECK(root != NULL, "cases.json: %s", ts_last_error());
    if (root) {
        printf("reference: Pillow %s, libjpeg-turbo %s, libwebp %s\n", cJSON_GetObjectItem(root, "pillow")->valuestring,
               cJSON_GetObjectItem(root, "libjpeg_turbo")->valuestring, cJSON_GetObjectItem(root, "webp")->valuestring);
        const cJSON *c;
        cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "cases")) check_case(c);
        cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "resample")) check_resample(c);
    }
    check_rejects();
    cJSON_Delete(root);
    free(text);
    return TEST_END();
}
