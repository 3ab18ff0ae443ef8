/* test_image_png.c — PNG read/write through libspng and the A1111 "parameters" text, against
 * PNGs written by Pillow the way the A1111 web UI writes them (tools/gen_png_fixtures.py). */
#include "models/formats/image_png.h"
#include "models/formats/npy.h"
#include "tests/test.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void check_a1111_file(const char *rel, const char *want_prompt) {
    uint8_t *rgb = NULL;
    int w = 0, h = 0;
    char *text = NULL;
    CHECK_OK(image_png_read(fixture_path(rel), &rgb, &w, &h, &text));
    CHECK(w == 40 && h == 24, "%s: size %dx%d", rel, w, h);
    tensor px;
    float *want = fixture_npy("image/a1111_pixels.npy", &px);
    if (rgb && want && w == 40 && h == 24) {
        int bad = 0;
        for (int i = 0; i < 40 * 24 * 3; i++) bad += rgb[i] != (uint8_t)want[i];
        CHECK(bad == 0, "%s: %d pixel values differ from Pillow's", rel, bad);
    }
    free(want);
    CHECK(text != NULL, "%s: no parameters chunk", rel);
    if (text) {
        gen_parameters p;
        CHECK_OK(gen_parameters_parse(text, &p));
        CHECK(strcmp(p.prompt, want_prompt) == 0, "%s: prompt '%s'", rel, p.prompt);
        CHECK(strcmp(p.negative, "blurry, low quality") == 0, "negative '%s'", p.negative);
        CHECK(p.steps == 20, "steps %d", p.steps);
        CHECK(strcmp(p.sampler, "Euler a") == 0, "sampler '%s'", p.sampler);
        CHECK(strcmp(p.schedule, "Karras") == 0, "schedule '%s'", p.schedule);
        CHECK(p.cfg_scale == 7.5f, "cfg %g", (double)p.cfg_scale);
        CHECK(p.seed == 1234567890123LL, "seed %lld", (long long)p.seed);
        CHECK(p.width == 40 && p.height == 24, "size %dx%d", p.width, p.height);
        CHECK(strcmp(p.model, "tiny-sd") == 0, "model '%s' (quoted values with commas must not confuse it)", p.model);
        CHECK(p.clip_skip == 2, "clip skip %d", p.clip_skip);
        gen_parameters_clear(&p);
    }
    free(text);
    free(rgb);
}

int main(void) {
    TEST_BEGIN();
    check_a1111_file("image/a1111.png", "a photo of a cat, sitting on a mat");
    check_a1111_file("image/a1111_latin1.png", "caf\xc3\xa9, cr\xc3\xa8me br\xc3\xbbl\xc3\xa9\x65");
    check_a1111_file("image/a1111_utf8.png", "\xe7\x8c\xab caf\xc3\xa9");

    /* write then read back: pixels and parameters survive; multi-line prompt; UTF-8 */
    gen_parameters p = {.prompt = "line one\nline two \xe7\x8c\xab", .negative = "ugly", .steps = 7,
                        .sampler = "DDIM", .cfg_scale = 5, .seed = -1, .width = 33, .height = 17,
                        .model = "tiny_sd"};
    char *text = gen_parameters_format(&p);
    CHECK(strstr(text, "\nNegative prompt: ugly\nSteps: 7, Sampler: DDIM, CFG scale: 5, Seed: -1, Size: 33x17, Model: tiny_sd") != NULL,
          "format: %s", text);
    uint8_t rgb[33 * 17 * 3];
    for (int i = 0; i < (int)sizeof rgb; i++) rgb[i] = (uint8_t)(i * 7 + 3);
    char path[64];
    snprintf(path, sizeof path, "test_image_png_%d.png", (int)getpid());
    CHECK_OK(image_png_write(path, rgb, 33, 17, text));
    uint8_t *back = NULL;
    int w, h;
    char *text_back = NULL;
    CHECK_OK(image_png_read(path, &back, &w, &h, &text_back));
    CHECK(back && w == 33 && h == 17 && memcmp(back, rgb, sizeof rgb) == 0, "pixels round trip");
    CHECK(text_back && strcmp(text_back, text) == 0, "parameters round trip: %s", text_back ? text_back : "(none)");
    gen_parameters q;
    if (text_back && gen_parameters_parse(text_back, &q) == 0) {
        CHECK(strcmp(q.prompt, p.prompt) == 0, "prompt back '%s'", q.prompt);
        CHECK(strcmp(q.negative, "ugly") == 0 && q.steps == 7 && q.seed == -1 && q.width == 33, "fields back");
        gen_parameters_clear(&q);
    }
    free(back), free(text_back), free(text);
    unlink(path);

    /* empty negative: no Negative prompt line, parses back as "" */
    p.negative = "";
    text = gen_parameters_format(&p);
    CHECK(strstr(text, "Negative prompt") == NULL, "empty negative omitted");
    CHECK_OK(gen_parameters_parse(text, &q));
    CHECK(strcmp(q.negative, "") == 0 && strcmp(q.prompt, p.prompt) == 0, "no negative parse");
    gen_parameters_clear(&q);
    free(text);

    /* what reproduces image 3 of a batch: batch size and position, DDIM eta, guidance rescale,
     * truncation and clip-skip mode, each read back to the same value (floats exactly) */
    gen_parameters b = {.prompt = "x", .negative = "", .steps = 4, .sampler = "DDIM", .cfg_scale = 7.1f, .seed = 9,
                        .width = 8, .height = 8, .model = "m", .clip_skip = 2, .clip_skip_positive_only = true,
                        .truncate = true, .guidance_rescale = 0.7f, .eta = 0.3f, .batch_size = 4, .batch_pos = 2};
    text = gen_parameters_format(&b);
    CHECK(strstr(text, "CFG scale: 7.1, Seed: 9, Size: 8x8, Model: m, Batch size: 4, Batch pos: 2, Clip skip: 2, "
                       "Clip skip mode: positive, Truncate prompts: True, Guidance rescale: 0.7, Eta DDIM: 0.3") != NULL,
          "format: %s", text);
    CHECK_OK(gen_parameters_parse(text, &q));
    CHECK(q.batch_size == 4 && q.batch_pos == 2 && q.clip_skip == 2 && q.clip_skip_positive_only && q.truncate &&
          q.guidance_rescale == b.guidance_rescale && q.eta == b.eta && q.cfg_scale == b.cfg_scale,
          "batch/eta/rescale/truncate/clip skip mode back: %s", text);
    gen_parameters_clear(&q);
    free(text);
    b.batch_size = 1, b.eta = 0, b.guidance_rescale = 0, b.truncate = false, b.clip_skip = 0;
    text = gen_parameters_format(&b);
    CHECK(!strstr(text, "Batch") && !strstr(text, "Eta") && !strstr(text, "rescale") && !strstr(text, "Truncate") &&
          !strstr(text, "Clip skip"), "defaults are not written: %s", text);
    free(text);

    /* bad input: clear errors, no crash */
    CHECK(gen_parameters_parse("just a prompt", &q) < 0, "no Steps line refused");
    uint8_t junk[64] = {0x89, 'P', 'N', 'G'};
    uint8_t *px;
    CHECK(image_png_decode(junk, sizeof junk, "junk.png", &px, &w, &h, NULL) < 0, "junk refused");
    CHECK(strstr(ts_last_error(), "junk.png") != NULL, "error names the file: %s", ts_last_error());
    CHECK(image_png_read("/nonexistent/x.png", &px, &w, &h, NULL) < 0, "missing file refused");
    return TEST_END();
}
