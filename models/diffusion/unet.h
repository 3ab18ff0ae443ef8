/*
 * unet.h — the Stable Diffusion U-Net with cross-attention (diffusers' UNet2DConditionModel),
 * for SD 1.x, SD 2.x and SDXL, built from a config rather than per-model code.
 *
 * Loading:
 *   unet *u = unet_load("path/to/model");         // diffusers folder (MODEL/unet/...) or
 *                                                  // a single-file CompVis checkpoint
 *   unet *u = unet_load_files(weights, config);    // explicit files; config NULL: infer it
 * The config comes from unet/config.json, or, for a single file, from the tensor shapes
 * (see unet_config_infer; the head count cannot be seen in shapes and follows the SD
 * convention: 8 heads when the cross-attention width is 768 (SD 1.x), else 64-wide heads).
 * Weights stay in the file's dtype (F32/F16/BF16, memory-mapped) and are widened per layer.
 *
 * Evaluating (one call per sampler step; batch = cond and uncond together for CFG):
 *   unet_forward(u, ctx, x, B, H, W, timesteps, context, T, text_embeds, time_ids, out);
 *     x           [B, in_channels, H, W] latents (H, W multiples of 2^(levels-1))
 *     timesteps   [B] (float: samplers may pass fractional timesteps)
 *     context     [B, T, cross_attention_dim] text encoder hidden states
 *     text_embeds [B, unet_text_embeds_dim(u)] pooled text (SDXL only, else NULL)
 *     time_ids    [B, 6] original size, crop top-left, target size (SDXL only, else NULL)
 *     out         [B, out_channels, H, W] the model output (ε or v: the scheduler knows which)
 * The forward pass allocates its activations from an arena owned by the U-Net, so it does
 * no malloc in its loops; it is not re-entrant (one forward at a time per unet).
 *
 * Architecture: a table of blocks (conv_in, ResNet, Transformer2D, Downsample, Upsample,
 * conv_out; skips pushed and popped by flags) built once from the config and walked by
 * unet_forward. unet_new_random builds the same table with random weights (benchmarks).
 */
#ifndef TESSERA_UNET_H
#define TESSERA_UNET_H

#include "kernels/backend.h"

#define UNET_MAX_LEVELS 6

typedef struct {
    int in_channels, out_channels, sample_size;
    int levels;                                  /* len(block_out_channels) */
    int block_out_channels[UNET_MAX_LEVELS];
    int layers_per_block;
    bool down_attention[UNET_MAX_LEVELS];        /* per level: CrossAttnDownBlock2D */
    bool up_attention[UNET_MAX_LEVELS];          /* per level (level 0 = outermost): CrossAttnUpBlock2D */
    int heads[UNET_MAX_LEVELS];                  /* attention heads per level (diffusers' attention_head_dim) */
    int transformer_depth[UNET_MAX_LEVELS];      /* transformer_layers_per_block; the mid block uses the last */
    int cross_attention_dim;
    bool use_linear_projection;                  /* proj_in/out linear (SD2, SDXL) or 1x1 conv (SD1) */
    bool upcast_attention;                       /* no effect here: attention is always fp32 */
    int norm_num_groups;
    float norm_eps;
    bool flip_sin_to_cos;
    float freq_shift;
    int conv_in_kernel, conv_out_kernel, downsample_padding;
    bool text_time;                              /* addition_embed_type "text_time" (SDXL) */
    int addition_time_embed_dim;                 /* 256 for SDXL */
    int projection_class_embeddings_input_dim;   /* 2816 for SDXL: pooled 1280 + 6 * 256 */
} unet_config;

typedef struct unet unet;

/* Presets of the published architectures ("sd15", "sd21", "sdxl"); -1 if unknown. */
int unet_config_preset(const char *name, unet_config *out);
/* Parses a diffusers unet/config.json; refuses what this U-Net does not implement. */
int unet_config_parse_json(const char *json, const char *label, unet_config *out);

unet *unet_load(const char *model);
unet *unet_load_files(const char *weights_path, const char *config_json_path);
/* All weights of dtype wtype (F32/F16/BF16) filled with seeded random values. */
unet *unet_new_random(const unet_config *config, dtype wtype, uint64_t seed);
void unet_destroy(unet **self);

/*
 * Parallel rendering: one U-Net shared by the ranks of a group (unet_parallel.h has the plan
 * and its cost model).
 *   UNET_PARALLEL_TP     tensor parallelism (Megatron): each rank holds and computes 1/T of
 *                        the attention heads, GEGLU columns and ResNet channels (GroupNorm
 *                        groups whole), one all-reduce per row-parallel layer; proj_in/out,
 *                        the time embedding, conv_in/out and the up/downsamplers replicated.
 *                        Head or group counts that do not divide by T are refused by name.
 *   UNET_PARALLEL_BATCH  the batch split: whole weights on every rank, rank r computes rows
 *                        [r B/T, (r+1) B/T) and one all-gather joins the outputs: CFG-parallel
 *                        for a [uncond, cond] batch at T = 2, data-parallel for more images.
 *                        A batch that does not divide by T runs whole on every rank.
 * The group is the context's comm at unet_forward (ts_ctx_set_comm): its size and this rank's
 * index must be the split's. Every rank passes the whole batch and gets the whole output,
 * the same bits on every rank.
 */
typedef enum { UNET_PARALLEL_NONE = 0, UNET_PARALLEL_TP, UNET_PARALLEL_BATCH } unet_parallel;
typedef struct {
    unet_parallel mode;
    int rank, ranks;
    /* UNET_PARALLEL_TP only: 0 (one piece per rank), or the split's pieces P, a multiple of
     * ranks: each rank computes P / ranks pieces (a thread each) and every row-parallel sum
     * adds the P parts in piece order (kernels/piece_sum.h). The output is then the same bits
     * for every rank count that divides P, one rank included; the heads and groups must divide
     * by P. Costs a thread per piece and the replicated layers once per piece. */
    int pieces;
} unet_split;
#define UNET_SPLIT_NONE ((unet_split){UNET_PARALLEL_NONE, 0, 1, 0})

unet *unet_load_split(const char *model, unet_split split);
unet *unet_load_files_split(const char *weights_path, const char *config_json_path, unet_split split);
unet *unet_new_random_split(const unet_config *config, dtype wtype, uint64_t seed, unet_split split);
unet_split unet_get_split(const unet *self);
/*
 * Led groups: rank 0 alone runs the pipeline (text encoder, sampler, VAE); before each of its
 * unet_forward calls it broadcasts the call's inputs to the group, whose other ranks serve
 * them in unet_follow and hold nothing but their U-Net shards.
 *   unet_lead(u, group)      on rank 0 (group: the split's ranks; NULL: stop leading, silently)
 *                            unet_destroy, or
 *   unet_lead_stop(u),       tells the followers to return
 *   unet_follow(u, ctx, group)  on the other ranks: group the leader's (host memory: the
 *                            calls are announced on it), ctx's comm the same ranks for the
 *                            U-Net's collectives (the group itself, or NCCL over it on a GPU):
 *                            0 when the leader stops, -1 when the group fails
 * A follower's unet_forward calls mirror the leader's, so the collectives pair up.
 * On a device the context's comm may be NCCL (comm_device_buffers: the all-reduces stay on the
 * device) or a host comm (each all-reduce goes through a host copy).
 */
struct comm;
int unet_lead(unet *self, struct comm *group);
int unet_lead_stop(unet *self);
int unet_follow(unet *self, ts_ctx *ctx, struct comm *group);

/* The config of the U-Net unet_load(model) would load, without keeping its weights. */
int unet_config_load(const char *model, unet_config *out);

const unet_config *unet_get_config(const unet *self);
int unet_in_channels(const unet *self);
int unet_out_channels(const unet *self);
int unet_sample_size(const unet *self);          /* latent side the model was trained at */
int unet_cross_attention_dim(const unet *self);
int unet_text_embeds_dim(const unet *self);      /* SDXL pooled width; 0 without text_time */
size_t unet_weight_bytes(const unet *self);      /* what this rank holds (its shards) */
int64_t unet_param_count(const unet *self);      /* parameters this rank holds */
/* Of unet_weight_bytes, the tensor-parallel layers' (this rank's shards: 1/T of what a
 * T = 1 U-Net holds of them; the rest is replicated). */
size_t unet_split_weight_bytes(const unet *self);

int unet_forward(unet *self, ts_ctx *ctx, const float *x, int B, int H, int W, const float *timesteps,
                 const float *context, int T, const float *text_embeds, const float *time_ids,
                 float *out);

/* Time and FLOPs per layer type, summed over forward calls while profiling is on. */
typedef enum {
    UNET_OP_CONV3X3, UNET_OP_LINEAR, UNET_OP_ATTENTION, UNET_OP_NORM, UNET_OP_WIDEN, UNET_OP_OTHER,
    UNET_OP_COMM,                                /* collectives of a split U-Net (waiting included) */
    UNET_OP_COUNT
} unet_op;
typedef struct {
    double seconds[UNET_OP_COUNT];
    double flops[UNET_OP_COUNT];
    double comm_bytes;                           /* bytes this rank passed to all-reduce / all-gather */
    int64_t comm_calls;
} unet_profile;
const char *unet_op_name(unet_op op);
void unet_profile_enable(unet *self, bool on);   /* also clears the sums */
const unet_profile *unet_get_profile(const unet *self);
/* FLOPs of one forward at this size (multiply-add = 2), for GFLOP/s figures. */
double unet_forward_flops(const unet *self, int B, int H, int W, int T);

#endif
