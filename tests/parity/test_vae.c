/* test_vae.c — AutoencoderKL decode / encode / tiled decode against diffusers
 * (fixtures from tools/gen_vae_fixtures.py), in both checkpoint layouts. */
#include "models/diffusion/vae.h"
#include "tests/test.h"

#include <stdlib.h>
#include <string.h>

static void check_model(const char *model, const char *label) {
    vae *v = vae_load(model, VAE_SCALING_SDXL);
    CHECK(v != NULL, "%s: %s", label, ts_last_error());
    if (!v) return;
    const vae_config *c = vae_get_config(v);
    CHECK(c->levels == 4 && c->block_out[3] == 64 && c->block_out[0] == 32 && c->layers_per_block == 1 &&
              c->latent_channels == 4 && c->has_encoder,
          "%s: config inferred wrong", label);
    CHECK(vae_downscale(v) == 8, "%s: factor", label);

    tensor zs, ws, ts, xs, ms;
    float *z = fixture_npy("vae/decode_latent.npy", &zs);
    float *want = fixture_npy("vae/decode_expected.npy", &ws);
    float *want_tiled = fixture_npy("vae/decode_tiled_expected.npy", &ts);
    float *x = fixture_npy("vae/encode_input.npy", &xs);
    float *want_mean = fixture_npy("vae/encode_mean_expected.npy", &ms);
    CHECK(z && want && want_tiled && x && want_mean, "fixtures missing: %s", ts_last_error());
    if (z && want && want_tiled && x && want_mean) {
        int h = (int)zs.shape[2], w = (int)zs.shape[3];
        size_t n = (size_t)tensor_numel(&ws);
        float *got = calloc(n, sizeof(float));
        CHECK_OK(vae_decode(v, test_ctx(), z, 1, h, w, got, NULL));
        CHECK_CLOSE_ARRAYS(got, want, n, 1e-5f, label);
        float mx, dd = test_max_abs_diff(got, want, n, &mx);
        fprintf(stderr, "%s: decode max |diff| %.3g (max |want| %.3g)\n", label, dd, mx);

        /* tiling enabled but tiles larger than the latent: identical to untiled */
        vae_tiling big = {.enabled = true, .tile_latent = 64};
        float *got2 = calloc(n, sizeof(float));
        CHECK_OK(vae_decode(v, test_ctx(), z, 1, h, w, got2, &big));
        CHECK(memcmp(got, got2, n * sizeof(float)) == 0, "%s: tiling with one big tile differs from untiled", label);

        vae_tiling small = {.enabled = true, .tile_latent = 8, .overlap = 0.25f};
        CHECK_OK(vae_decode(v, test_ctx(), z, 1, h, w, got2, &small));
        CHECK_CLOSE_ARRAYS(got2, want_tiled, n, 1e-5f, "tiled decode vs diffusers tiled_decode");
        fprintf(stderr, "%s: tiled decode max |diff| %.3g\n", label, test_max_abs_diff(got2, want_tiled, n, &mx));
        float mw, d = test_max_abs_diff(got2, want, n, &mw);
        CHECK(d > 1e-2f, "tiled output should differ from untiled (diff %g): test is not testing tiles", d);
        free(got), free(got2);

        size_t nm = (size_t)tensor_numel(&ms);
        float *mean = calloc(nm, sizeof(float));
        CHECK_OK(vae_encode_mean(v, test_ctx(), x, 1, (int)xs.shape[2], (int)xs.shape[3], mean));
        CHECK_CLOSE_ARRAYS(mean, want_mean, nm, 1e-5f, "encode mean");
        fprintf(stderr, "%s: encode mean max |diff| %.3g\n", label, test_max_abs_diff(mean, want_mean, nm, &mx));
        CHECK(vae_encode_mean(v, test_ctx(), x, 1, 63, 96, mean) < 0, "odd size must be refused");
        free(mean);
    }
    free(z), free(want), free(want_tiled), free(x), free(want_mean);
    vae_destroy(&v);
}

int main(void) {
    TEST_BEGIN();
    check_model(fixture_path("vae/diffusers"), "diffusers folder");
    vae *v = vae_load(fixture_path("vae/diffusers"), VAE_SCALING_SDXL);
    if (v) CHECK(vae_scaling_factor(v) == 0.18215f, "scaling_factor from config.json: %g", (double)vae_scaling_factor(v));
    vae_destroy(&v);

    check_model(fixture_path("vae/compvis_vae.safetensors"), "CompVis single file");
    v = vae_load(fixture_path("vae/compvis_vae.safetensors"), VAE_SCALING_SDXL);
    if (v) CHECK(vae_scaling_factor(v) == VAE_SCALING_SDXL, "family default scaling");
    vae_destroy(&v);

    CHECK(vae_load(fixture_path("vae/decode_latent.npy"), VAE_SCALING_SD) == NULL, "non-safetensors refused");
    CHECK(strstr(ts_last_error(), "VAE") != NULL, "error names the VAE: %s", ts_last_error());

    /* random weights build (the benchmark path) */
    vae_config rc = {.in_channels = 3, .out_channels = 3, .latent_channels = 4, .levels = 2,
                     .block_out = {32, 64}, .layers_per_block = 1, .norm_groups = 32, .quant_conv = true,
                     .post_quant_conv = true, .has_encoder = true, .scaling_factor = 0.18215f, .sample_size = 32};
    v = vae_new_random(&rc, 42);
    CHECK(v != NULL, "random vae: %s", ts_last_error());
    if (v) {
        float z[4 * 4 * 4], img[3 * 8 * 8];
        for (int i = 0; i < 64; i++) z[i] = (float)(i % 7) * 0.1f;
        CHECK_OK(vae_decode(v, test_ctx(), z, 1, 4, 4, img, NULL));
        bool finite = true;
        for (int i = 0; i < 192; i++) finite = finite && img[i] == img[i];
        CHECK(finite, "random decode finite");
    }
    vae_destroy(&v);
    return TEST_END();
}
