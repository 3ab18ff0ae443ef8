/* test_taesd.c — TAESD (real FLUX.2 taef2 weights) against the reference taesd.py outputs in
 * ../shared/data/taesd/reference: latents, decoded images and the round-trip PSNR.
 *
 * The runtime reads safetensors only, so the test first converts the .pth files into the
 * build folder with tools/pth_to_safetensors.py (python3, standard library only); the
 * converted files are never committed. */
#include "models/diffusion/taesd.h"
#include "models/formats/npy.h"
#include "tests/test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* An .npy under ../shared/data as float32 (NULL on failure). */
static float *data_npy(const char *rel, tensor *shape_out) {
    tensor t;
    if (npy_load(data_path(rel), &t) != 0) return NULL;
    float *f = ts_malloc((size_t)tensor_numel(&t) * sizeof(float));
    tensor_copy_to_f32(f, &t);
    *shape_out = t;
    shape_out->data = f, shape_out->type = DT_F32, shape_out->owns_data = false;
    tensor_free(&t);
    return f;
}

static double psnr(const float *a, const float *b, size_t n) {
    double se = 0;
    for (size_t i = 0; i < n; i++) se += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    return 10.0 * log10(1.0 / (se / (double)n));
}

static int convert(const char *which, char *out, size_t size) {
    mkdir("taesd_converted", 0755);
    snprintf(out, size, "taesd_converted/taef2_%s.safetensors", which);
    const char *src = getenv("TESSERA_SOURCE");
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "python3 '%s/tools/pth_to_safetensors.py' '%s' '%s'", src ? src : ".",
             data_path(which[0] == 'e' ? "taesd/taef2_encoder.pth" : "taesd/taef2_decoder.pth"), out);
    return system(cmd) == 0 ? 0 : ts_fail("converter failed: %s", cmd);
}

/* reference.json's psnr_db for one image (a tiny scan: the file is ours to trust). */
static double reference_psnr(const char *image) {
    FILE *f = fopen(data_path("taesd/reference/reference.json"), "r");
    if (!f) return NAN;
    static char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strstr(buf, image);
    p = p ? strstr(p, "\"psnr_db\":") : NULL;
    return p ? strtod(p + 10, NULL) : NAN;
}

static void check_image(taesd *t, const char *name) {
    char rel[256];
    tensor xs, zs, ds;
    snprintf(rel, sizeof rel, "taesd/reference/%s_input.npy", name);
    float *x = data_npy(rel, &xs);
    snprintf(rel, sizeof rel, "taesd/reference/%s_latent.npy", name);
    float *want_z = data_npy(rel, &zs);
    snprintf(rel, sizeof rel, "taesd/reference/%s_decoded.npy", name);
    float *want_d = data_npy(rel, &ds);
    CHECK(x && want_z && want_d, "%s: reference arrays: %s", name, ts_last_error());
    if (x && want_z && want_d) {
        int H = (int)xs.shape[2], W = (int)xs.shape[3];
        size_t nz = (size_t)tensor_numel(&zs), nx = (size_t)tensor_numel(&xs);
        float *z = calloc(nz, sizeof(float)), *d = calloc(nx, sizeof(float));
        CHECK_OK(taesd_encode(t, test_ctx(), x, 1, H, W, z));
        CHECK_CLOSE_ARRAYS(z, want_z, nz, 1e-5f, "latent vs reference");
        float mw;
        fprintf(stderr, "%s: latent max |diff| %.3g\n", name, test_max_abs_diff(z, want_z, nz, &mw));
        CHECK_OK(taesd_decode(t, test_ctx(), z, 1, H / 8, W / 8, d));
        CHECK_CLOSE_ARRAYS(d, want_d, nx, 3e-5f, "decoded vs reference");
        fprintf(stderr, "%s: decoded max |diff| %.3g\n", name, test_max_abs_diff(d, want_d, nx, &mw));
        double ours = psnr(d, x, nx), ref = reference_psnr(name);
        fprintf(stderr, "%s: round-trip PSNR %.4f dB (reference %.4f dB, diff %.2g)\n", name, ours, ref, fabs(ours - ref));
        CHECK(ours >= ref - 0.1, "%s: PSNR %.4f < reference %.4f - 0.1", name, ours, ref);
        CHECK(fabs(ours - ref) < 3e-4, "%s: PSNR %.4f differs from the reference %.4f by >= 3e-4 dB", name, ours, ref);
        free(z), free(d);
    }
    free(x), free(want_z), free(want_d);
}

int main(void) {
    TEST_BEGIN();
    char enc[512], dec[512];
    CHECK_OK(convert("encoder", enc, sizeof enc));
    CHECK_OK(convert("decoder", dec, sizeof dec));
    taesd *t = taesd_load(enc, dec);
    CHECK(t != NULL, "%s", ts_last_error());
    if (t) {
        CHECK(taesd_latent_channels(t) == 32, "latent channels %d", taesd_latent_channels(t));
        check_image(t, "astronaut_256");
        check_image(t, "chelsea_256");
        float img[3 * 12 * 12];
        CHECK(taesd_encode(t, test_ctx(), img, 1, 12, 12, img) < 0, "size not a multiple of 8 refused");
    }
    taesd_destroy(&t);
    /* diffusers' AutoencoderTiny layout (encoder.layers.N / decoder.layers.N-1), tiny random
     * weights, 4 latent channels, both halves in one file (tools/gen_txt2img_fixtures.py) */
    const char *tiny = fixture_path("tiny_taesd/diffusion_pytorch_model.safetensors");
    t = taesd_load(tiny, tiny);
    CHECK(t != NULL, "AutoencoderTiny layout: %s", ts_last_error());
    if (t) {
        tensor xs, zs, ds;
        float *x = fixture_npy("tiny_taesd/image.npy", &xs), *wz = fixture_npy("tiny_taesd/latent_expected.npy", &zs);
        float *wd = fixture_npy("tiny_taesd/decoded_expected.npy", &ds);
        CHECK(taesd_latent_channels(t) == 4, "tiny latent channels %d", taesd_latent_channels(t));
        if (x && wz && wd) {
            size_t nz = (size_t)tensor_numel(&zs), nx = (size_t)tensor_numel(&xs);
            float *z = calloc(nz, sizeof(float)), *d = calloc(nx, sizeof(float)), mw;
            CHECK_OK(taesd_encode(t, test_ctx(), x, 1, (int)xs.shape[2], (int)xs.shape[3], z));
            CHECK_CLOSE_ARRAYS(z, wz, nz, 1e-5f, "AutoencoderTiny encode");
            fprintf(stderr, "AutoencoderTiny: latent max |diff| %.3g\n", test_max_abs_diff(z, wz, nz, &mw));
            CHECK_OK(taesd_decode(t, test_ctx(), wz, 1, (int)zs.shape[2], (int)zs.shape[3], d));
            CHECK_CLOSE_ARRAYS(d, wd, nx, 3e-5f, "AutoencoderTiny decode");
            fprintf(stderr, "AutoencoderTiny: decoded max |diff| %.3g\n", test_max_abs_diff(d, wd, nx, &mw));
            free(z), free(d);
        }
        free(x), free(wz), free(wd);
    }
    taesd_destroy(&t);

    /* halves swapped: the decoder file has no encoder layout */
    t = taesd_load(dec, NULL);
    CHECK(t == NULL, "decoder weights loaded as an encoder");
    CHECK(strstr(ts_last_error(), "TAESD") != NULL, "error: %s", ts_last_error());
    return TEST_END();
}
