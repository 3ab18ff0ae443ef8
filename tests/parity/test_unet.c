/*
 * test_unet.c — the U-Net against diffusers' UNet2DConditionModel (fixtures from
 * tools/gen_unet_fixtures.py): SD1-, SD2- and SDXL-like tiny models, diffusers folder and
 * CompVis single-file layouts, F32, F16 and BF16 weights; plus config inference from a
 * single file and the refusals of bad input. And a one-rank group (issue 15): with a comm on
 * the context the U-Net's all-reduces run (a copy at one rank) — the host comm (through host
 * copies on a device) and, on a GPU with NCCL, NCCL on the context's stream — and the output
 * is the same bits as without a group: the device path of a T > 1 split, at T = 1.
 */
#include "models/diffusion/unet.h"
#include "models/formats/model_files.h"
#include "models/diffusion/unet_internal.h"
#include "kernels/comm_nccl.h"
#include "kernels/ops.h"
#include "tests/test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    tensor xs, ts, cs, es, is;
    float *x, *t, *ctx, *text, *ids;
} inputs;

static bool load_inputs(const char *family, inputs *in) {
    char p[128];
    memset(in, 0, sizeof *in);
    snprintf(p, sizeof p, "unet/%s/x.npy", family);
    in->x = fixture_npy(p, &in->xs);
    snprintf(p, sizeof p, "unet/%s/t.npy", family);
    in->t = fixture_npy(p, &in->ts);
    snprintf(p, sizeof p, "unet/%s/context.npy", family);
    in->ctx = fixture_npy(p, &in->cs);
    if (strcmp(family, "sdxl") == 0) {
        snprintf(p, sizeof p, "unet/%s/text_embeds.npy", family);
        in->text = fixture_npy(p, &in->es);
        snprintf(p, sizeof p, "unet/%s/time_ids.npy", family);
        in->ids = fixture_npy(p, &in->is);
        if (!in->text || !in->ids) return false;
    }
    return in->x && in->t && in->ctx;
}

static void free_inputs(inputs *in) {
    free(in->x), free(in->t), free(in->ctx), free(in->text), free(in->ids);
}

static float worst = 0;

/* Runs the U-Net loaded from (weights, config) and compares with the fixture `want`. */
static void check_model(const char *label, unet *u, const inputs *in, int batch, const char *want_rel, float tol) {
    CHECK(u != NULL, "%s: %s", label, ts_last_error());
    if (!u) return;
    tensor ws;
    float *want = fixture_npy(want_rel, &ws);
    CHECK(want != NULL, "%s", ts_last_error());
    if (!want) return;
    int B = batch, C = (int)in->xs.shape[1], H = (int)in->xs.shape[2], W = (int)in->xs.shape[3], T = (int)in->cs.shape[1];
    size_t n = (size_t)B * unet_out_channels(u) * H * W;
    float *out = calloc(n, sizeof(float));
    CHECK_OK(unet_forward(u, test_ctx(), in->x, B, H, W, in->t, in->ctx, T, in->text, in->ids, out));
    CHECK(C == unet_in_channels(u), "%s: in_channels %d", label, unet_in_channels(u));
    float max_want, err = test_max_abs_diff(out, want, n, &max_want);
    if (!(err <= tol)) err = INFINITY;  /* NaN counts as failure */
    if (err > worst && tol <= 3e-5f) worst = err;
    printf("%-34s batch %d  max |err| %.3g  (max |want| %.3g)\n", label, B, err, max_want);
    CHECK(err <= tol, "%s: max abs error %g > %g", label, err, tol);
    free(out);
    free(want);
}

static void check_family(const char *family) {
    inputs in;
    CHECK(load_inputs(family, &in), "%s inputs: %s", family, ts_last_error());
    char a[128], b[128], c[128], want[128], want16[128], label[128];
    snprintf(c, sizeof c, "unet/%s/unet/config.json", family);
    snprintf(want, sizeof want, "unet/%s/out.npy", family);
    snprintf(want16, sizeof want16, "unet/%s/out_fp16.npy", family);

    snprintf(a, sizeof a, "unet/%s", family);
    unet *u = unet_load(fixture_path(a));
    snprintf(label, sizeof label, "%s diffusers F32", family);
    check_model(label, u, &in, 2, want, 3e-5f);
    /* Batch 1 must give the first image's output: nothing leaks across the batch. */
    if (u) {
        tensor ws;
        float *full = fixture_npy(want, &ws);
        int H = (int)in.xs.shape[2], W = (int)in.xs.shape[3];
        size_t n = (size_t)unet_out_channels(u) * H * W;
        float *one = calloc(n, sizeof(float));
        CHECK_OK(unet_forward(u, test_ctx(), in.x, 1, H, W, in.t, in.ctx, (int)in.cs.shape[1], in.text, in.ids, one));
        float mw, err = test_max_abs_diff(one, full, n, &mw);
        printf("%-34s batch 1  max |err| %.3g\n", family, err);
        CHECK(err <= 3e-5f, "%s batch 1: max abs error %g", family, err);
        free(one);
        free(full);
    }
    unet_destroy(&u);

    snprintf(a, sizeof a, "unet/%s_fp16", family);
    u = unet_load(fixture_path(a));
    snprintf(label, sizeof label, "%s diffusers F16", family);
    check_model(label, u, &in, 2, want16, 3e-5f);
    unet_destroy(&u);

    snprintf(b, sizeof b, "unet/%s_single.safetensors", family);
    u = unet_load_files(fixture_path(b), fixture_path(c));
    snprintf(label, sizeof label, "%s CompVis single-file F32", family);
    check_model(label, u, &in, 2, want, 3e-5f);
    unet_destroy(&u);

    snprintf(b, sizeof b, "unet/%s_single_fp16.safetensors", family);
    u = unet_load_files(fixture_path(b), fixture_path(c));
    snprintf(label, sizeof label, "%s CompVis single-file F16", family);
    check_model(label, u, &in, 2, want16, 3e-5f);
    unet_destroy(&u);

    if (strcmp(family, "sdxl") == 0) {
        u = unet_load_files(fixture_path("unet/sdxl_single_bf16.safetensors"), fixture_path(c));
        check_model("sdxl CompVis single-file BF16", u, &in, 2, "unet/sdxl/out_bf16.npy", 3e-5f);
        /* SDXL without its added conditioning is refused, not run. */
        if (u) {
            float out[4];
            CHECK(unet_forward(u, test_ctx(), in.x, 1, 16, 12, in.t, in.ctx, 7, NULL, NULL, out) == -1, "SDXL without text_embeds ran");
            CHECK(strstr(ts_last_error(), "text_embeds") != NULL, "message: %s", ts_last_error());
        }
        unet_destroy(&u);
    }

    /* What the single file's shapes say must agree with config.json wherever shapes can say it. */
    safetensors *st = safetensors_open(fixture_path(b));
    CHECK(st != NULL, "%s", ts_last_error());
    unet_config inferred, want_cfg;
    char *json = read_text_file(fixture_path(c), NULL);
    if (st && json) {
        CHECK_OK(unet_config_parse_json(json, c, &want_cfg));
        unet_config_infer(st, "model.diffusion_model.", &inferred); /* may refuse: tiny group counts */
        CHECK(inferred.levels == want_cfg.levels && inferred.layers_per_block == want_cfg.layers_per_block,
              "%s: inferred %d levels x %d", family, inferred.levels, inferred.layers_per_block);
        for (int l = 0; l < want_cfg.levels; l++) {
            CHECK(inferred.block_out_channels[l] == want_cfg.block_out_channels[l], "%s level %d channels", family, l);
            CHECK(inferred.down_attention[l] == want_cfg.down_attention[l], "%s level %d down attention", family, l);
            CHECK(inferred.up_attention[l] == want_cfg.up_attention[l], "%s level %d up attention", family, l);
            if (want_cfg.down_attention[l] || l == want_cfg.levels - 1)
                CHECK(inferred.transformer_depth[l] == want_cfg.transformer_depth[l], "%s level %d depth %d", family, l,
                      inferred.transformer_depth[l]);
        }
        CHECK(inferred.cross_attention_dim == want_cfg.cross_attention_dim, "%s cross dim", family);
        CHECK(inferred.use_linear_projection == want_cfg.use_linear_projection, "%s linear projection", family);
        CHECK(inferred.text_time == want_cfg.text_time, "%s text_time", family);
        CHECK(inferred.in_channels == want_cfg.in_channels && inferred.out_channels == want_cfg.out_channels, "%s channels", family);
        if (want_cfg.text_time)
            CHECK(inferred.projection_class_embeddings_input_dim == want_cfg.projection_class_embeddings_input_dim, "%s add dim", family);
    }
    free(json);
    safetensors_close(&st);
    free_inputs(&in);
}

/* 32x32 latents (one GEMM per image for the first level) with both ways of sharing products
 * among threads forced, F32 and F16 weights: every threaded path against diffusers. */
#ifdef TESSERA_HAVE_CPU_BACKEND
static void check_threaded_paths(const char *family) {
    inputs in;
    CHECK(load_inputs(family, &in), "%s inputs: %s", family, ts_last_error());
    char rel[128];
    snprintf(rel, sizeof rel, "unet/%s/x_big.npy", family);
    tensor xs;
    float *x = fixture_npy(rel, &xs);
    CHECK(x != NULL, "%s", ts_last_error());
    ts_ctx *ctx = ts_ctx_new("cpu", 2);   /* several threads, so both ways of sharing a product out run */
    for (int fp16 = 0; fp16 <= 1 && x; fp16++) {
        snprintf(rel, sizeof rel, "unet/%s%s", family, fp16 ? "_fp16" : "");
        unet *u = unet_load(fixture_path(rel));
        CHECK(u != NULL, "%s", ts_last_error());
        snprintf(rel, sizeof rel, "unet/%s/out_big%s.npy", family, fp16 ? "_fp16" : "");
        tensor ws;
        float *want = fixture_npy(rel, &ws);
        size_t n = (size_t)2 * 4 * 32 * 32;
        float *out = calloc(n, sizeof(float));
        for (int mode = 0; mode <= 2 && u && want; mode++) {
            cpu_debug_force_split(ctx, mode);
            memset(out, 0, n * sizeof(float));
            CHECK_OK(unet_forward(u, ctx, x, 2, 32, 32, in.t, in.ctx, (int)in.cs.shape[1], in.text, in.ids, out));
            float mw, err = test_max_abs_diff(out, want, n, &mw);
            if (!(err <= 3e-5f)) err = INFINITY;
            if (err > worst) worst = err;
            printf("%-6s 32x32 %s split mode %d              max |err| %.3g\n", family, fp16 ? "F16" : "F32", mode, err);
            CHECK(err <= 3e-5f, "%s 32x32 %s mode %d: max abs error %g", family, fp16 ? "F16" : "F32", mode, err);
        }
        free(out);
        free(want);
        unet_destroy(&u);
    }
    ts_ctx_destroy(&ctx);
    free(x);
    free_inputs(&in);
}
#endif

static void check_one_rank_group(void) {
    inputs in;
    CHECK(load_inputs("sd1", &in), "sd1 inputs: %s", ts_last_error());
    unet *u = unet_load(fixture_path("unet/sd1"));
    CHECK(u != NULL, "%s", ts_last_error());
    if (!u) { free_inputs(&in); return; }
    size_t n = (size_t)tensor_numel(&in.xs);
    float *alone = calloc(n, sizeof(float)), *got = calloc(n, sizeof(float));
    ts_ctx *ctx = test_ctx();
    int B = (int)in.xs.shape[0], H = (int)in.xs.shape[2], W = (int)in.xs.shape[3], T = (int)in.cs.shape[1];
    unet_profile_enable(u, true);
    CHECK_OK(unet_forward(u, ctx, in.x, B, H, W, in.t, in.ctx, T, NULL, NULL, alone));
    /* without a group (the context's default single rank) no collective runs: nothing to copy */
    CHECK(unet_get_profile(u)->comm_calls == 0, "%d collectives without a group", (int)unet_get_profile(u)->comm_calls);
    comm *host = comm_new_single(), *nccl = NULL;
    int device;
    void *stream = ts_ctx_device_stream(ctx, &device);
    if (device >= 0 && comm_have_nccl() && !(nccl = comm_new_nccl(host, device, stream)))
        CHECK(false, "NCCL on device %d: %s", device, ts_last_error());
    comm *groups[2] = {host, nccl};
    for (int i = 0; i < 2 && groups[i]; i++) {
        ts_ctx_set_comm(ctx, groups[i]);
        memset(got, 0, n * sizeof(float));
        unet_profile_enable(u, true);
        CHECK_OK(unet_forward(u, ctx, in.x, B, H, W, in.t, in.ctx, T, NULL, NULL, got));
        CHECK(unet_get_profile(u)->comm_calls > 0, "no collective ran in a one-rank %s group", comm_kind(groups[i]));
        bool same = memcmp(got, alone, n * sizeof(float)) == 0;
        printf("sd1 in a one-rank %s group on %s: %s\n", comm_kind(groups[i]), test_device(),
               same ? "the same bits as alone" : "DIFFERS");
        CHECK(same, "sd1 in a one-rank %s group: output differs from the U-Net alone", comm_kind(groups[i]));
    }
    if (device >= 0 && !comm_have_nccl()) printf("sd1 one-rank NCCL group: not built with NCCL\n");
    ts_ctx_set_comm(ctx, NULL);
    /* 2 pieces on one rank (unet_split.pieces: a thread and a context like ctx each, the sums
     * through the host in piece order): diffusers' output, the same bits twice */
    tensor ws;
    float *want = fixture_npy("unet/sd1/out.npy", &ws), *again = calloc(n, sizeof(float));
    unet *p = unet_load_split(fixture_path("unet/sd1"), (unet_split){UNET_PARALLEL_TP, 0, 1, 2});
    CHECK(p && want, "%s", ts_last_error());
    if (p && want) {
        CHECK_OK(unet_forward(p, ctx, in.x, B, H, W, in.t, in.ctx, T, NULL, NULL, got));
        CHECK_OK(unet_forward(p, ctx, in.x, B, H, W, in.t, in.ctx, T, NULL, NULL, again));
        float err = test_max_abs_diff(got, want, n, NULL);
        if (!(err <= 3e-5f)) err = INFINITY;
        printf("sd1 in 2 pieces on %s: max |err| %.3g vs diffusers\n", test_device(), err);
        CHECK(err <= 3e-5f, "sd1 in 2 pieces: max |err| %g vs diffusers", err);
        CHECK(memcmp(got, again, n * sizeof(float)) == 0, "sd1 in 2 pieces: two calls differ");
    }
    unet_destroy(&p);
    free(want), free(again);
    comm_destroy(&nccl);
    comm_destroy(&host);
    free(alone), free(got);
    free_inputs(&in);
    unet_destroy(&u);
}

int main(void) {
    TEST_BEGIN();
#ifdef TESSERA_HAVE_CPU_BACKEND
    if (strcmp(test_device(), "cpu") == 0) {   /* the CPU's ways of sharing products among threads */
        check_threaded_paths("sd1");
        check_threaded_paths("sdxl");
    }
#endif
    check_family("sd1");
    check_family("sd2");
    check_family("sdxl");
    check_one_rank_group();
    printf("worst max |err| over all fixtures: %.3g (limit 3e-5)\n", worst);

    /* Bad input: named refusals, never a crash. */
    unet *u = unet_load_files(fixture_path("unet/sd1_single.safetensors"), fixture_path("unet/sd2/unet/config.json"));
    CHECK(u == NULL, "SD1 weights loaded under the SD2 config");
    /* (the binder takes 1x1 convs as linears, so SD1's conv proj_in passes; the next layer differs) */
    CHECK(strstr(ts_last_error(), "proj_in") != NULL || strstr(ts_last_error(), "shape") != NULL ||
              strstr(ts_last_error(), "no tensor") != NULL,
          "message: %s", ts_last_error());
    u = unet_load_files(fixture_path("safetensors/good.safetensors"), NULL);
    CHECK(u == NULL && strstr(ts_last_error(), "no U-Net") != NULL, "message: %s", ts_last_error());
    u = unet_load(fixture_path("unet/no-such-model"));
    CHECK(u == NULL && ts_last_error()[0], "missing model loaded");
    unet_config cfg;
    CHECK(unet_config_parse_json("{\"block_out_channels\": [32, 64], \"down_block_types\": [\"CrossAttnDownBlock2D\", \"DownBlock2D\"],"
                                 " \"up_block_types\": [\"UpBlock2D\", \"CrossAttnUpBlock2D\"], \"class_embed_type\": \"timestep\"}",
                                 "test.json", &cfg) == -1 && strstr(ts_last_error(), "class_embed_type"),
          "message: %s", ts_last_error());
    CHECK(unet_config_parse_json("[1, 2]", "test.json", &cfg) == -1, "a list parsed as a config");
    u = unet_load(fixture_path("unet/sd1"));
    if (u) {
        float x[4 * 10 * 10] = {0}, t[1] = {1}, ctx[32] = {0}, out[4 * 10 * 10];
        CHECK(unet_forward(u, test_ctx(), x, 1, 10, 9, t, ctx, 1, NULL, NULL, out) == -1 && strstr(ts_last_error(), "multiple"),
              "odd latent size: %s", ts_last_error());
    }
    unet_destroy(&u);

    /* The full-size tables have exactly diffusers' parameter count. */
    char *counts = read_text_file(fixture_path("unet/preset_param_counts.json"), NULL);
    CHECK(counts != NULL, "%s", ts_last_error());
    const char *presets[] = {"sd15", "sd21", "sdxl"};
    for (int i = 0; i < 3 && counts; i++) {
        unet_config pc;
        CHECK_OK(unet_config_preset(presets[i], &pc));
        char key[32];
        snprintf(key, sizeof key, "\"%s\": ", presets[i]);
        const char *at = strstr(counts, key);
        long long want = at ? atoll(at + strlen(key)) : -1;
        long long got = (long long)unet_config_param_count(&pc);
        printf("%s parameters: %lld (diffusers %lld)\n", presets[i], got, want);
        CHECK(got == want, "%s: %lld parameters, diffusers has %lld", presets[i], got, want);
    }
    free(counts);
    unet_config sd15;
    CHECK(unet_config_preset("sd9", &sd15) == -1, "unknown preset accepted");
    return TEST_END();
}
