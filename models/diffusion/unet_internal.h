/*
 * unet_internal.h — what unet.c and unet_config.c share; not for other callers.
 */
#ifndef TESSERA_UNET_INTERNAL_H
#define TESSERA_UNET_INTERNAL_H

#include "models/formats/safetensors.h"
#include "models/diffusion/unet.h"

/* Checks a config's consistency (channels split into groups and heads, ...). */
int unet_config_check(const unet_config *c, const char *label);
/* Reads a config from the tensor shapes of a CompVis checkpoint whose U-Net names start
 * with prefix ("model.diffusion_model." or ""). */
int unet_config_infer(const safetensors *st, const char *prefix, unet_config *c);

/* Parameters a config's U-Net has (the table's weight shapes, nothing allocated); -1 on a
 * bad config. Tests compare it with diffusers' count for the full-size presets. */
int64_t unet_config_param_count(const unet_config *config);

#endif
