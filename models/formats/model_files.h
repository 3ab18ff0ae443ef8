/*
 * model_files.h — where a model's parts live on disk, in either layout.
 *
 * A user gives `-m MODEL`: either a diffusers folder (model_index.json, unet/, vae/,
 * text_encoder/, tokenizer/, scheduler/ ...) or one single-file CompVis checkpoint
 * (.safetensors holding model.diffusion_model.*, first_stage_model.*, cond_stage_model.*
 * or conditioner.embedders.*). Loaders ask here for a component's weights and config.
 */
#ifndef TESSERA_MODEL_FILES_H
#define TESSERA_MODEL_FILES_H

#include "kernels/base.h"

bool model_is_folder(const char *model);

/* Weights of a component ("unet", "vae", "text_encoder", "text_encoder_2") of a
 * diffusers folder: tries diffusion_pytorch_model.safetensors, model.safetensors,
 * then their .fp16 variants. For a single file, the file itself.
 * Writes the path into out; -1 with a message naming what was looked for. */
int model_component_weights(const char *model, const char *component, char *out, size_t size);

/* MODEL/component/name (e.g. "unet", "config.json") if it exists; -1 otherwise
 * (no message: absence is often normal). */
int model_component_file(const char *model, const char *component, const char *name, char *out, size_t size);

/* Parses a config.json as Python's json module writes it: besides standard JSON it has
 * NaN, Infinity and -Infinity (diffusers writes "lambda_min_clipped": -Infinity), which
 * become null, inf and -inf. NULL with "LABEL: invalid JSON near '...'" if it is not JSON. */
struct cJSON *json_parse_config(const char *text, const char *label);

/* Reads a whole (small) text file; NULL with a message on failure. free() it. */
char *read_text_file(const char *path, size_t *size_out);

/* A Hugging Face folder's weights: FOLDER/model.safetensors, or every shard named in
 * FOLDER/model.safetensors.index.json, each opened once. *shards and *count hold what was
 * opened even on failure (-1 with a message): the caller closes them either way. */
struct safetensors;
int safetensors_open_folder(const char *folder, struct safetensors ***shards, int *count);

#endif
