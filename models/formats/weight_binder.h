/*
 * weight_binder.h — the one place a network's weights come from: names looked up in a
 * weight file (safetensors file, a Hugging Face folder of shards, or GGUF), checked against
 * the shape the network's table expects, and handed out as tensors — whole, or as this rank's
 * shard for tensor parallelism. Random weights (benchmarks) and shape-only counting come
 * through the same calls, so a network binds its table once, whatever the source.
 *
 *   weight_binder *b = weight_binder_open("unet/diffusion_pytorch_model.safetensors");
 *   tensor w;
 *   if (weight_binder_get(b, &w, SHARD_NONE_SPEC, 4, (int64_t[]){320, 4, 3, 3}, "conv_in.weight")) ...
 *   shard_spec cols = {SHARD_COLS, rank, ranks};   // this rank's input columns
 *   weight_binder_get(b, &w, cols, 2, (int64_t[]){320, 1280}, "...ff.net.2.weight");
 *   weight_binder_destroy(&b);   // after the network: tensors point into the binder
 *
 * Names are the caller's: each network's table knows its spellings (diffusers, CompVis,
 * OpenCLIP) and asks for them; the binder maps a name to bytes. Shapes: a weight stored as
 * [a, b, 1, 1] is accepted where [a, b] is asked and the other way round (1x1 convolutions
 * and linears are interchangeable, as in CompVis attention). Types: F32, F16, BF16; a
 * block-quantized GGUF tensor is refused by name.
 *
 * Shards: SHARD_ROWS splits dim 0 (output features) into `ranks` equal parts and gives part
 * `rank`: a view into the mapped file, no copy, so a rank only ever touches its pages.
 * SHARD_COLS splits dim 1 (input features): the part is copied into memory the binder owns,
 * contiguous. A dimension that does not divide is refused, naming the tensor.
 */
#ifndef TESSERA_WEIGHT_BINDER_H
#define TESSERA_WEIGHT_BINDER_H

#include "kernels/tensor.h"

typedef enum { SHARD_NONE = 0, SHARD_ROWS, SHARD_COLS } shard_axis;
typedef struct { shard_axis axis; int rank, ranks; } shard_spec;
#define SHARD_NONE_SPEC ((shard_spec){SHARD_NONE, 0, 1})

typedef struct weight_binder weight_binder;

/* A .safetensors file, a folder holding model.safetensors or an index of shards, or a GGUF
 * file (by its magic, whatever its name). */
weight_binder *weight_binder_open(const char *path);
/* Weights drawn at random in the shapes asked (benchmarks): NAME.bias uniform in +-0.02,
 * other 1-D weights (norms) 1 +- 0.02, the rest uniform in +-sqrt(3 / fan_in); stored as
 * `type`. A block of values is drawn once and repeated: only timings use these. */
weight_binder *weight_binder_random(dtype type, uint64_t seed);
/* Shapes only: tensors come back with data NULL (parameter counts of a config). */
weight_binder *weight_binder_counting(void);
void weight_binder_destroy(weight_binder **self);

/* The file's path ("random" / "counting" otherwise), for messages. */
const char *weight_binder_path(const weight_binder *self);
bool weight_binder_has(const weight_binder *self, const char *name);
/* The stored shape of `name` (a file's; -1 with a message when absent or not a file). */
int weight_binder_shape(const weight_binder *self, const char *name, int *ndim, int64_t shape[TENSOR_MAX_DIMS]);
/* A source that names tensors (a file), as opposed to random or counting. */
bool weight_binder_is_file(const weight_binder *self);

/* `name` with the full shape `shape[ndim]` checked, as this rank's shard (see above).
 * -1 with "FILE: tensor 'NAME' ..." when it is missing, mis-shaped, of another type or does
 * not split. */
int weight_binder_get(weight_binder *self, tensor *out, shard_spec shard, int ndim, const int64_t *shape,
                      const char *name);

/* As weight_binder_get, but GGUF's block-quantized types are taken too (an LLM's matrices);
 * only row shards of those, along whole rows. */
int weight_binder_get_quantized(weight_binder *self, tensor *out, shard_spec shard, int ndim, const int64_t *shape,
                                const char *name);
/* The GGUF file behind a GGUF binder (its metadata: architecture, tokenizer), else NULL. */
struct gguf *weight_binder_gguf(const weight_binder *self);

/* `name` whole, in the shape the file stores it (networks whose widths are read off the
 * file: TAESD, the captioner's vision tower). */
int weight_binder_get_stored(weight_binder *self, tensor *out, const char *name);

/* What was bound so far: bytes of the tensors handed out (shards: only their part) and their
 * element count. */
size_t weight_binder_bytes(const weight_binder *self);
int64_t weight_binder_params(const weight_binder *self);

#endif
