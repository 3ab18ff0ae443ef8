/*
 * unet_parallel.c — the U-Net's parallel plan: the divisibility rules of tensor parallelism,
 * the totals of unet_plan's table, the link cost model and --parallel auto. The table itself
 * (unet_plan) lives in unet.c, next to the block table it walks. See unet_parallel.h.
 */
#include "models/diffusion/unet_parallel.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int unet_tp_check(const unet_config *c, int ranks) {
    if (ranks < 1) return ts_fail("tensor parallelism over %d ranks", ranks);
    if (ranks == 1) return 0;
    if (c->norm_num_groups % ranks)
        return ts_fail("U-Net tensor parallelism: norm_num_groups %d does not split over %d ranks (GroupNorm groups "
                       "stay whole on one rank)", c->norm_num_groups, ranks);
    for (int l = 0; l < c->levels; l++) {
        bool attention = c->down_attention[l] || c->up_attention[l] || l == c->levels - 1;   /* the mid block's */
        if (attention && c->heads[l] % ranks)
            return ts_fail("U-Net tensor parallelism: level %d has %d attention heads, which do not split over %d ranks",
                           l, c->heads[l], ranks);
        if (c->block_out_channels[l] % ranks)   /* implied by the groups; said for clarity */
            return ts_fail("U-Net tensor parallelism: level %d has %d channels, which do not split over %d ranks", l,
                           c->block_out_channels[l], ranks);
    }
    return 0;
}

unet_plan_total unet_plan_sum(const unet_plan_row *rows, int count) {
    unet_plan_total t = {0};
    for (int i = 0; i < count; i++) {
        t.flops_split += rows[i].flops_split;
        t.flops_replicated += rows[i].flops_replicated;
        t.all_reduces += rows[i].all_reduces;
        t.reduce_bytes += rows[i].all_reduces * rows[i].reduce_floats * sizeof(float);
    }
    return t;
}

const unet_link unet_links[] = {
    {"NVLink 4 (450 GB/s, 3 us)", 450e9, 3e-6},
    {"PCIe 5 x16 (64 GB/s, 5 us)", 64e9, 5e-6},
    {"InfiniBand 200 Gb/s (25 GB/s, 2 us)", 25e9, 2e-6},
    {NULL, 0, 0},
};

double unet_link_all_reduce_seconds(const unet_link *l, int T, double bytes) {
    if (T <= 1) return 0;
    return 2.0 * (T - 1) / T * bytes / l->bytes_per_s + 2.0 * (T - 1) * l->latency_s;
}

double unet_link_all_gather_seconds(const unet_link *l, int T, double part_bytes) {
    if (T <= 1) return 0;
    return (T - 1) * part_bytes / l->bytes_per_s + (T - 1) * l->latency_s;
}

unet_prediction unet_predict(const unet_config *c, int B, int H, int W, int tokens, int T, double flops_per_s,
                             const unet_link *l) {
    unet_prediction p = {0};
    int n = 0;
    unet_plan_row *rows = unet_plan(c, B, H, W, tokens, &n);
    if (!rows) return p;
    unet_plan_total t = unet_plan_sum(rows, n);
    double per_reduce = t.all_reduces ? t.reduce_bytes / t.all_reduces : 0;
    p.none = (t.flops_split + t.flops_replicated) / flops_per_s;
    p.tp_comm = t.all_reduces * unet_link_all_reduce_seconds(l, T, per_reduce);
    p.tp = (t.flops_split / T + t.flops_replicated) / flops_per_s + p.tp_comm;
    if (B % T == 0) {
        p.batch_comm = unet_link_all_gather_seconds(l, T, (double)B / T * c->out_channels * H * W * sizeof(float));
        p.batch = p.none / T + p.batch_comm;
    }
    free(rows);
    return p;
}

unet_parallel unet_parallel_choose(const unet_config *c, int B, int H, int W, int tokens, int T, double flops_per_s,
                                   const unet_link *l, char *why, size_t n) {
    if (T <= 1) {
        snprintf(why, n, "one rank: nothing to split");
        return UNET_PARALLEL_NONE;
    }
    unet_prediction p = unet_predict(c, B, H, W, tokens, T, flops_per_s, l);
    bool tp_ok = unet_tp_check(c, T) == 0, batch_ok = B % T == 0;
    char tp_text[160], batch_text[160];
    if (tp_ok)
        snprintf(tp_text, sizeof tp_text, "tp %.1f ms (%.1f ms of it all-reduces)", p.tp * 1e3, p.tp_comm * 1e3);
    else
        snprintf(tp_text, sizeof tp_text, "tp impossible (%s)", ts_last_error());
    if (batch_ok)
        snprintf(batch_text, sizeof batch_text, "batch split %.1f ms (%.2f ms gather)", p.batch * 1e3, p.batch_comm * 1e3);
    else
        snprintf(batch_text, sizeof batch_text, "batch split impossible (batch %d over %d ranks)", B, T);
    unet_parallel pick = UNET_PARALLEL_NONE;
    double best = p.none;
    if (batch_ok && p.batch < best) pick = UNET_PARALLEL_BATCH, best = p.batch;
    if (tp_ok && p.tp < best) pick = UNET_PARALLEL_TP, best = p.tp;
    snprintf(why, n, "%s: one rank %.1f ms, %s, %s per forward of batch %d at %dx%d latents, %d ranks at %.0f GFLOP/s over %s",
             unet_parallel_name(pick), p.none * 1e3, tp_text, batch_text, B, H, W, T, flops_per_s / 1e9, l->name);
    return pick;
}

int unet_parallel_parse(const char *name, unet_parallel *out) {
    if (strcmp(name, "tp") == 0) *out = UNET_PARALLEL_TP;
    else if (strcmp(name, "cfg") == 0 || strcmp(name, "dp") == 0 || strcmp(name, "batch") == 0) *out = UNET_PARALLEL_BATCH;
    else if (strcmp(name, "none") == 0) *out = UNET_PARALLEL_NONE;
    else return -1;
    return 0;
}

const char *unet_parallel_name(unet_parallel p) {
    return p == UNET_PARALLEL_TP ? "tp" : p == UNET_PARALLEL_BATCH ? "batch split (cfg/dp)" : "none";
}
