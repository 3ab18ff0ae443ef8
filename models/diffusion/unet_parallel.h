/*
 * unet_parallel.h — the U-Net's parallel plan: which layers split over the ranks of a group,
 * what that costs in communication, and which form of parallelism a link makes worthwhile.
 *
 * Tensor parallelism over T ranks (Megatron; unet.c binds and runs it):
 *   Transformer2D layers   q, k, v by output features (heads / T heads per rank), the
 *                          out-projections by input features; GEGLU's proj by output columns
 *                          (the value and gate chunks alike), ff.net.2 by input features:
 *                          3 all-reduces of [B*HW, C] per BasicTransformerBlock.
 *   ResNet blocks          conv1, time_emb_proj and norm2 by output channels (norm2's groups
 *                          whole on one rank: groups / T per rank), conv2 by input channels:
 *                          1 all-reduce of [B, C, HW]. The 1x1 shortcut runs on rank 0.
 *   replicated             conv_in, conv_out and its norm, the time (and SDXL added)
 *                          embedding, down/upsamplers, the transformers' GroupNorm and
 *                          proj_in/proj_out (cheap next to the split layers; splitting them
 *                          would cost another collective per block).
 * The batch split (CFG-parallel / data-parallel inside a group) costs one all-gather of the
 * output per forward.
 */
#ifndef TESSERA_UNET_PARALLEL_H
#define TESSERA_UNET_PARALLEL_H

#include "models/diffusion/unet.h"

/* 0 when config c splits over `ranks` tensor-parallel ranks; else -1 naming what does not
 * divide ("level 0 has 5 attention heads, which do not split over 2 ranks"). */
int unet_tp_check(const unet_config *c, int ranks);

/* One block of the table in a forward of batch B at latent H x W with `tokens` text tokens. */
typedef struct {
    char name[64];                 /* diffusers' name of the block */
    const char *kind;              /* "resnet", "transformer", "conv_in", ... */
    int all_reduces;               /* under tensor parallelism, per forward */
    double reduce_floats;          /* floats in each of them */
    double flops_split;            /* FLOPs of the layers split over the ranks (whole model) */
    double flops_replicated;       /* FLOPs every rank computes whole */
} unet_plan_row;
/* The rows of config c's table (a new array, *count rows; free it). NULL on a bad config. */
unet_plan_row *unet_plan(const unet_config *c, int B, int H, int W, int tokens, int *count);

/* Totals of a plan. */
typedef struct {
    double flops_split, flops_replicated;
    int all_reduces;
    double reduce_bytes;           /* per forward, F32 */
} unet_plan_total;
unet_plan_total unet_plan_sum(const unet_plan_row *rows, int count);

/* A link between the ranks: bandwidth (bytes/s per direction) and latency per message. */
typedef struct {
    const char *name;
    double bytes_per_s, latency_s;
} unet_link;
/* NVLink 4 (450 GB/s), PCIe 5 x16 (64 GB/s), 200 Gb/s InfiniBand (25 GB/s); NULL-named end. */
extern const unet_link unet_links[];

/* Ring all-reduce of `bytes` over T ranks: 2 (T-1)/T bytes / bandwidth + 2 (T-1) latencies. */
double unet_link_all_reduce_seconds(const unet_link *l, int T, double bytes);
/* All-gather of T parts of `part_bytes`: (T-1) part_bytes / bandwidth + (T-1) latencies. */
double unet_link_all_gather_seconds(const unet_link *l, int T, double part_bytes);

/* The predicted seconds of one forward of the plan's batch, for a device computing at
 * flops_per_s, over link l:
 *   none  the whole forward on one rank
 *   tp    split FLOPs / T + replicated FLOPs + the all-reduces
 *   batch B / T of the rows on each rank + one all-gather of the output (needs B % T == 0) */
typedef struct {
    double none, tp, batch;
    double tp_comm, batch_comm;    /* their communication part */
} unet_prediction;
unet_prediction unet_predict(const unet_config *c, int B, int H, int W, int tokens, int T, double flops_per_s,
                             const unet_link *l);

/* --parallel auto: the mode with the least predicted time per forward for T ranks, among
 * those the config and batch allow (tp when unet_tp_check passes, batch when B % T == 0);
 * why (a sentence with the numbers) into why[n]. */
unet_parallel unet_parallel_choose(const unet_config *c, int B, int H, int W, int tokens, int T, double flops_per_s,
                                   const unet_link *l, char *why, size_t n);

/* "tp", "batch" ("cfg"/"dp" parse to batch), "none"; -1 when unknown. */
int unet_parallel_parse(const char *name, unet_parallel *out);
const char *unet_parallel_name(unet_parallel p);

#endif
