/*
 * test_unet_parallel.c — the split U-Net (unet.h, unet_parallel.h) under mpirun against the
 * same U-Net on one rank and against diffusers (fixtures of tools/gen_unet_fixtures.py and
 * tools/gen_unet_tp_fixtures.py).
 *
 * Run by ctest it checks, on one rank, the refusals (head, group counts that do not divide,
 * a context whose group is not the split's) and the plan's totals, then starts itself under
 *   mpirun -np N --allow-run-as-root --oversubscribe   for N = 2, 3, 4
 * where every rank, for each tiny model whose heads and groups divide by N (sd1: 2, 4; sd2: 2;
 * sd1_tp: 2, 3; sdxl_tp: 2, 3, 4; sdxl: none):
 *   - tensor parallelism: the output equals the one-rank U-Net within 1e-5 and diffusers'
 *     within the U-Net parity tolerance (3e-5), the same bits on every rank;
 *   - each rank holds 1/N of the split layers' bytes (printed), their sum over ranks is the
 *     one-rank U-Net's;
 *   - the batch split (CFG-parallel at N = 2: uncond on rank 0, cond on rank 1) equals the
 *     batched forward within 1e-5, and a batch that does not divide runs whole;
 *   - a led group (rank 0 calls, the others serve in unet_follow) gives rank 0 one rank's
 *     output, survives a refused call, and stops when rank 0 destroys its U-Net;
 *   - a split into P pieces (unet_split.pieces, P = N and 2N where the model divides) gives
 *     the same bits over N ranks as one rank computing all P pieces on its threads.
 * On one rank it also checks the pieces alone: P = 2, 4 on one rank against diffusers and the
 * one-rank U-Net, on the check backend (a device's rules) the CPU's bits, and the refusals
 * (pieces not a multiple of the ranks, pieces with the batch split).
 */
#include "models/diffusion/unet.h"
#include "models/diffusion/unet_parallel.h"
#include "models/formats/model_files.h"
#include "kernels/comm.h"
#include "tests/test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>


/* The tiny U-Nets (tests/fixtures/unet/NAME): heads and groups per model decide the T it splits into. */
static const char *families[] = {"sd1", "sd2", "sdxl", "sd1_tp", "sdxl_tp"};

typedef struct {
    tensor xs, cs;
    float *x, *t, *ctx, *text, *ids, *want;
    size_t n_out;
} inputs;

static bool load_inputs(const char *family, inputs *in) {
    char p[128];
    memset(in, 0, sizeof *in);
    tensor s;
#define LOAD(field, file, shape) (snprintf(p, sizeof p, "unet/%s/%s", family, file), in->field = fixture_npy(p, shape))
    LOAD(x, "x.npy", &in->xs);
    LOAD(t, "t.npy", &s);
    LOAD(ctx, "context.npy", &in->cs);
    LOAD(want, "out.npy", &s);
    in->n_out = in->want ? (size_t)tensor_numel(&s) : 0;
    if (strncmp(family, "sdxl", 4) == 0) {
        LOAD(text, "text_embeds.npy", &s);
        LOAD(ids, "time_ids.npy", &s);
        if (!in->text || !in->ids) return false;
    }
#undef LOAD
    return in->x && in->t && in->ctx && in->want;
}

static void free_inputs(inputs *in) { free(in->x), free(in->t), free(in->ctx), free(in->text), free(in->ids), free(in->want); }

static int run(unet *u, ts_ctx *ctx, const inputs *in, int B, float *out) {
    return unet_forward(u, ctx, in->x, B, (int)in->xs.shape[2], (int)in->xs.shape[3], in->t, in->ctx, (int)in->cs.shape[1],
                        in->text, in->ids, out);
}

static uint64_t fnv1a(const void *p, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ ((const uint8_t *)p)[i]) * 1099511628211ull;
    return h;
}

/* ---- one rank ---- */

static void test_refusals(void) {
    /* sd2's level 0 has 2 heads: no 4-way split; sdxl's level 2 has 3: no 2-way split */
    unet *u = unet_load_split(fixture_path("unet/sd2"), (unet_split){UNET_PARALLEL_TP, 0, 4, 0});
    CHECK(!u && strstr(ts_last_error(), "level 0 has 2 attention heads"), "sd2 over 4 ranks: %s", ts_last_error());
    u = unet_load_split(fixture_path("unet/sdxl"), (unet_split){UNET_PARALLEL_TP, 1, 2, 0});
    CHECK(!u && strstr(ts_last_error(), "level 2 has 3 attention heads"), "sdxl over 2 ranks: %s", ts_last_error());
    u = unet_load_split(fixture_path("unet/sd1"), (unet_split){UNET_PARALLEL_TP, 0, 3, 0});
    CHECK(!u && strstr(ts_last_error(), "norm_num_groups 8"), "sd1 over 3 ranks: %s", ts_last_error());
    u = unet_load_split(fixture_path("unet/sd1"), (unet_split){UNET_PARALLEL_TP, 2, 2, 0});
    CHECK(!u && strstr(ts_last_error(), "rank 2 of 2"), "rank 2 of 2: %s", ts_last_error());
    /* a split U-Net run in a context without its group */
    u = unet_load_split(fixture_path("unet/sd1"), (unet_split){UNET_PARALLEL_TP, 0, 2, 0});
    CHECK(u != NULL, "%s", ts_last_error());
    inputs in;
    if (u && load_inputs("sd1", &in)) {
        float *out = calloc(in.n_out, sizeof(float));
        CHECK(run(u, test_ctx(), &in, 2, out) == -1 && strstr(ts_last_error(), "rank 0 of a 2-rank split"),
              "split U-Net without its group: %s", ts_last_error());
        free(out);
        free_inputs(&in);
    }
    unet_destroy(&u);

    /* The full-size presets: SD 1.5 splits 2, 4, 8 ways; SD 2.1 (5 heads at level 0) and
     * SDXL over 4 (10 heads at level 1) are refused by name. */
    unet_config c;
    CHECK_OK(unet_config_preset("sd15", &c));
    CHECK(unet_tp_check(&c, 2) == 0 && unet_tp_check(&c, 4) == 0 && unet_tp_check(&c, 8) == 0, "sd15: %s", ts_last_error());
    CHECK_OK(unet_config_preset("sd21", &c));
    CHECK(unet_tp_check(&c, 2) == -1 && strstr(ts_last_error(), "level 0 has 5 attention heads"), "sd21: %s", ts_last_error());
    CHECK_OK(unet_config_preset("sdxl", &c));
    CHECK(unet_tp_check(&c, 2) == 0, "sdxl over 2: %s", ts_last_error());
    CHECK(unet_tp_check(&c, 4) == -1 && strstr(ts_last_error(), "level 1 has 10 attention heads"), "sdxl over 4: %s",
          ts_last_error());

    /* The plan: SD 1.5 has 16 transformers of depth 1 and 22 ResNets: 3 * 16 + 22 all-reduces;
     * its FLOPs are unet_forward_flops's. */
    CHECK_OK(unet_config_preset("sd15", &c));
    int n = 0;
    unet_plan_row *rows = unet_plan(&c, 2, 64, 64, 77, &n);
    CHECK(rows != NULL, "%s", ts_last_error());
    if (rows) {
        unet_plan_total t = unet_plan_sum(rows, n);
        CHECK(t.all_reduces == 3 * 16 + 22, "sd15: %d all-reduces per forward", t.all_reduces);
        unet *r = unet_new_random(&c, DT_F16, 1);
        double f = r ? unet_forward_flops(r, 2, 64, 64, 77) : 0;
        CHECK(fabs(f - (t.flops_split + t.flops_replicated)) <= 1e-9 * f, "plan FLOPs %g, forward %g",
              t.flops_split + t.flops_replicated, f);
        printf("sd15 512^2 batch 2: %d all-reduces, %.1f MB per forward; %.0f%% of %.0f GFLOP split\n", t.all_reduces,
               t.reduce_bytes / 1e6, 100 * t.flops_split / f, f / 1e9);
        unet_destroy(&r);
        free(rows);
    }
}

/* One rank computing every piece of a P-piece split (threads): diffusers' output within the
 * parity tolerance, one piece's within 1e-5, the same bits on a second call, and all of the
 * split layers held. */
static void test_pieces_one_rank(void) {
    inputs in;
    CHECK(load_inputs("sd1", &in), "sd1 inputs: %s", ts_last_error());
    unet *whole = unet_load(fixture_path("unet/sd1"));
    CHECK(whole != NULL, "%s", ts_last_error());
    if (!whole) { free_inputs(&in); return; }
    float *ref = calloc(in.n_out, sizeof(float)), *got = calloc(in.n_out, sizeof(float)), *again = calloc(in.n_out, sizeof(float));
    ts_ctx *cpu = ts_ctx_new("cpu", 0);   /* pieces run on host backends */
    CHECK_OK(run(whole, cpu, &in, 2, ref));
    for (int P = 2; P <= 4; P += 2) {
        unet *u = unet_load_split(fixture_path("unet/sd1"), (unet_split){UNET_PARALLEL_TP, 0, 1, P});
        CHECK(u != NULL, "sd1 in %d pieces: %s", P, ts_last_error());
        if (!u) continue;
        CHECK_OK(run(u, cpu, &in, 2, got));
        CHECK_OK(run(u, cpu, &in, 2, again));
        float max_want, err = test_max_abs_diff(got, ref, in.n_out, &max_want);
        float err_ref = test_max_abs_diff(got, in.want, in.n_out, &max_want);
        printf("sd1      %d pieces on 1 rank: max |err| %.3g vs unsplit, %.3g vs diffusers; split layers %zu of %zu bytes\n",
               P, err, err_ref, unet_split_weight_bytes(u), unet_split_weight_bytes(whole));
        CHECK(err <= 1e-5f, "sd1 %d pieces: max |err| %g vs unsplit", P, err);
        CHECK(err_ref <= 3e-5f, "sd1 %d pieces: max |err| %g vs diffusers", P, err_ref);
        CHECK(memcmp(got, again, in.n_out * sizeof(float)) == 0, "sd1 %d pieces: two calls differ", P);
        CHECK(unet_split_weight_bytes(u) == unet_split_weight_bytes(whole), "sd1 %d pieces: %zu split bytes, %zu whole", P,
              unet_split_weight_bytes(u), unet_split_weight_bytes(whole));
        unet_destroy(&u);
    }
    /* refused by name: pieces that are not a multiple of the ranks, pieces with the batch split,
     * pieces the heads do not divide into */
    unet *u = unet_load_split(fixture_path("unet/sd1"), (unet_split){UNET_PARALLEL_TP, 0, 2, 3});
    CHECK(!u && strstr(ts_last_error(), "3 pieces over 2 ranks"), "3 pieces over 2: %s", ts_last_error());
    u = unet_load_split(fixture_path("unet/sd1"), (unet_split){UNET_PARALLEL_BATCH, 0, 2, 2});
    CHECK(!u && strstr(ts_last_error(), "tensor parallelism"), "pieces with the batch split: %s", ts_last_error());
    u = unet_load_split(fixture_path("unet/sd2"), (unet_split){UNET_PARALLEL_TP, 0, 1, 4});
    CHECK(!u && strstr(ts_last_error(), "level 0 has 2 attention heads"), "sd2 in 4 pieces: %s", ts_last_error());
    /* on a device's rules (check: each piece its own context like the caller's, every sum through
     * a host copy) the CPU's bits, on a second call too */
    ts_ctx *dev = ts_ctx_new("check", 1);
    u = dev ? unet_load_split(fixture_path("unet/sd1"), (unet_split){UNET_PARALLEL_TP, 0, 1, 2}) : NULL;
    CHECK(u != NULL, "%s", ts_last_error());
    for (int call = 0; call < 2 && u; call++) {
        memset(again, 0, in.n_out * sizeof(float));
        CHECK_OK(run(u, dev, &in, 2, again));
        CHECK_OK(run(u, cpu, &in, 2, got));
        CHECK(memcmp(got, again, in.n_out * sizeof(float)) == 0, "sd1 2 pieces on check, call %d: not the CPU's bits", call);
    }
    unet_destroy(&u);
    ts_ctx_destroy(&dev);
    ts_ctx_destroy(&cpu);
    free(ref), free(got), free(again);
    free_inputs(&in);
    unet_destroy(&whole);
}

/* ---- every rank, under mpirun ---- */

/* P pieces over the np ranks give the same bits as one rank computing all P. */
static void test_pieces(comm *world, ts_ctx *alone, ts_ctx *group, const char *family, const char *dir, const inputs *in,
                        int P) {
    int rank = comm_rank(world), np = comm_size(world);
    unet *u = unet_load_split(fixture_path(dir), (unet_split){UNET_PARALLEL_TP, rank, np, P});
    unet *one = unet_load_split(fixture_path(dir), (unet_split){UNET_PARALLEL_TP, 0, 1, P});
    CHECK(u && one, "%s in %d pieces: %s", family, P, ts_last_error());
    if (u && one) {
        float *got = calloc(in->n_out, sizeof(float)), *want = calloc(in->n_out, sizeof(float));
        CHECK_OK(run(u, group, in, 2, got));
        CHECK_OK(run(one, alone, in, 2, want));
        size_t differ = 0;
        for (size_t i = 0; i < in->n_out; i++) differ += memcmp(&got[i], &want[i], sizeof(float)) != 0;
        if (rank == 0)
            printf("%-8s %d pieces over %d ranks: %zu of %zu values differ from 1 rank's %d pieces\n", family, P, np, differ,
                   in->n_out, P);
        CHECK(differ == 0, "%s %d pieces over %d ranks, rank %d: %zu values differ from one rank's", family, P, np, rank, differ);
        free(got), free(want);
    }
    unet_destroy(&u);
    unet_destroy(&one);
}


static void test_family(comm *world, ts_ctx *alone, ts_ctx *group, const char *family) {
    int rank = comm_rank(world), np = comm_size(world);
    char dir[128];
    snprintf(dir, sizeof dir, "unet/%s", family);
    unet *whole = unet_load(fixture_path(dir));
    CHECK(whole != NULL, "%s: %s", family, ts_last_error());
    if (!whole) return;
    bool splits = unet_tp_check(unet_get_config(whole), np) == 0;
    inputs in;
    CHECK(load_inputs(family, &in), "%s inputs: %s", family, ts_last_error());
    float *ref = calloc(in.n_out, sizeof(float)), *got = calloc(in.n_out, sizeof(float));
    CHECK_OK(run(whole, alone, &in, 2, ref));
    float max_want, err;

    if (splits) {
        unet *u = unet_load_split(fixture_path(dir), (unet_split){UNET_PARALLEL_TP, rank, np, 0});
        CHECK(u != NULL, "%s over %d: %s", family, np, ts_last_error());
        if (u) {
            CHECK_OK(run(u, group, &in, 2, got));
            err = test_max_abs_diff(got, ref, in.n_out, &max_want);
            float err_ref = test_max_abs_diff(got, in.want, in.n_out, &max_want);
            if (!(err <= 1e-5f)) err = INFINITY;
            if (!(err_ref <= 3e-5f)) err_ref = INFINITY;
            /* every rank computes the same bits (the all-reduce gives each the same sums) */
            uint64_t h = fnv1a(got, in.n_out * sizeof(float)), hs[64];
            CHECK_OK(comm_all_gather(world, &h, hs, sizeof h));
            bool same = true;
            for (int r = 0; r < np; r++) same = same && hs[r] == h;
            /* 1/np of the split layers on each rank; their sum over the ranks is the whole U-Net's */
            size_t split1 = unet_split_weight_bytes(whole), split = unet_split_weight_bytes(u), sum = 0, parts[64];
            CHECK_OK(comm_all_gather(world, &split, parts, sizeof split));
            for (int r = 0; r < np; r++) sum += parts[r];
            printf("%-8s tp %d rank %d: max |err| %.3g vs 1 rank, %.3g vs diffusers; holds %zu of %zu weight bytes, split "
                   "layers %zu of %zu (1/%d: %zu)\n",
                   family, np, rank, err, err_ref, unet_weight_bytes(u), unet_weight_bytes(whole), split, split1, np,
                   split1 / np);
            CHECK(err <= 1e-5f, "%s tp %d rank %d: max |err| %g vs 1 rank", family, np, rank, err);
            CHECK(err_ref <= 3e-5f, "%s tp %d rank %d: max |err| %g vs diffusers", family, np, rank, err_ref);
            CHECK(same, "%s tp %d: the ranks' outputs differ", family, np);
            CHECK(split * (size_t)np == split1, "%s tp %d rank %d: %zu split bytes, 1/%d of %zu expected", family, np, rank,
                  split, np, split1);
            CHECK(sum == split1, "%s tp %d: the ranks hold %zu split bytes together, one rank %zu", family, np, sum, split1);
            CHECK(unet_weight_bytes(u) < unet_weight_bytes(whole), "%s tp %d: no bytes saved", family, np);
        }
        unet_destroy(&u);
        test_pieces(world, alone, group, family, dir, &in, np);
        if (unet_tp_check(unet_get_config(whole), 2 * np) == 0) test_pieces(world, alone, group, family, dir, &in, 2 * np);
    } else if (rank == 0) {
        printf("%-8s tp %d: refused (%s)\n", family, np, ts_last_error());
    }

    /* The batch split: CFG-parallel at np = 2 (rank 0 the first row, rank 1 the second);
     * batch 2 at np = 3 or 4 does not divide and runs whole on every rank. */
    unet *b = unet_load_split(fixture_path(dir), (unet_split){UNET_PARALLEL_BATCH, rank, np, 0});
    CHECK(b != NULL, "%s batch split: %s", family, ts_last_error());
    if (b) {
        memset(got, 0, in.n_out * sizeof(float));
        CHECK_OK(run(b, group, &in, 2, got));
        err = test_max_abs_diff(got, ref, in.n_out, &max_want);
        if (!(err <= 1e-5f)) err = INFINITY;
        if (rank == 0) printf("%-8s batch split over %d: max |err| %.3g vs the batched forward\n", family, np, err);
        CHECK(err <= 1e-5f, "%s batch split over %d rank %d: max |err| %g", family, np, rank, err);
    }
    unet_destroy(&b);
    free(ref), free(got);
    free_inputs(&in);
    unet_destroy(&whole);
}

/* A led group: rank 0 alone calls unet_forward (twice, and once with a size the U-Net
 * refuses), the others serve in unet_follow; rank 0's outputs equal one rank's. */
static void test_led(comm *world, ts_ctx *alone, ts_ctx *group, const char *family, unet_parallel mode) {
    int rank = comm_rank(world), np = comm_size(world);
    char dir[128];
    snprintf(dir, sizeof dir, "unet/%s", family);
    unet *u = unet_load_split(fixture_path(dir), (unet_split){mode, rank, np, 0});
    CHECK(u != NULL, "%s: %s", family, ts_last_error());
    if (!u) return;
    if (rank != 0) {
        CHECK(unet_follow(u, group, world) == 0, "%s rank %d: follow: %s", family, rank, ts_last_error());
        unet_destroy(&u);
        return;
    }
    CHECK_OK(unet_lead(u, world));
    unet *whole = unet_load(fixture_path(dir));
    inputs in;
    CHECK(whole && load_inputs(family, &in), "%s: %s", family, ts_last_error());
    if (!whole) { unet_destroy(&u); return; }
    float *ref = calloc(in.n_out, sizeof(float)), *got = calloc(in.n_out, sizeof(float));
    for (int call = 0; call < 2; call++) {
        for (size_t i = 0; i < (size_t)tensor_numel(&in.xs); i++) in.x[i] *= call ? -0.5f : 1.0f;
        CHECK_OK(run(whole, alone, &in, 2, ref));
        CHECK_OK(run(u, group, &in, 2, got));
        float max_want, err = test_max_abs_diff(got, ref, in.n_out, &max_want);
        if (!(err <= 1e-5f)) err = INFINITY;
        printf("%-8s led %s over %d, call %d: max |err| %.3g vs 1 rank\n", family, unet_parallel_name(mode), np, call, err);
        CHECK(err <= 1e-5f, "%s led call %d: max |err| %g", family, call, err);
    }
    /* refused on every rank alike (before any collective); the group serves on */
    CHECK(unet_forward(u, group, in.x, 1, 10, 9, in.t, in.ctx, (int)in.cs.shape[1], in.text, in.ids, got) == -1 &&
              strstr(ts_last_error(), "multiple"),
          "odd size: %s", ts_last_error());
    CHECK_OK(run(u, group, &in, 2, got));
    CHECK(test_max_abs_diff(got, ref, in.n_out, NULL) <= 1e-5f, "%s: the call after a refused one", family);
    free(ref), free(got);
    free_inputs(&in);
    unet_destroy(&whole);
    unet_destroy(&u);   /* tells the followers to stop */
}

int main(void) {
    TEST_BEGIN();
    if (!comm_under_launcher()) {
        test_refusals();
        test_pieces_one_rank();
        if (comm_have_mpi())
            for (int np = 2; np <= 4; np++) CHECK(test_run_under_mpirun(np, 300), "mpirun -np %d: a rank failed", np);
        else
            fprintf(stderr, "test_unet_parallel: built without MPI, only the one-rank checks ran\n");
        return TEST_END();
    }
    comm *world = comm_new_world();
    CHECK(world, "%s", ts_last_error());
    if (!world) return TEST_END();
    /* the group computes on TESSERA_TEST_DEVICE (check: a device's memory, so every all-reduce
     * goes through a host copy to MPI); the one-rank reference on the CPU */
    ts_ctx *alone = ts_ctx_new("cpu", 1), *group = ts_ctx_new(test_device(), 1);
    ts_ctx_set_comm(group, world);
    for (size_t i = 0; i < sizeof families / sizeof *families; i++) test_family(world, alone, group, families[i]);
    test_led(world, alone, group, "sdxl_tp", UNET_PARALLEL_TP);
    test_led(world, alone, group, "sd1", UNET_PARALLEL_BATCH);
    ts_ctx_destroy(&alone);
    ts_ctx_destroy(&group);
    comm_destroy(&world);
    return TEST_END();
}
