/*
 * image_preprocess.h — an RGB8 image to the vision tower's pixel values, exactly as
 * transformers' CLIPImageProcessor (the slow, Pillow-based one) computes them:
 *
 *   [pad to square]  LLaVA-1.5's expand2square: centred on a square of mean*255 colour
 *   resize           shortest side to `shortest_edge`, long side int(s * long / short),
 *                    bicubic as Pillow's Image.resize computes it (image_resample_bicubic)
 *   center crop      crop_h x crop_w, top/left = (size - crop) // 2 (zero-padded if larger)
 *   rescale          x * (1/255) in double, then float32
 *   normalise        (x - mean) / std in float32
 *
 * Output is CHW float32 [3][crop_h][crop_w].
 */
#ifndef TESSERA_IMAGE_PREPROCESS_H
#define TESSERA_IMAGE_PREPROCESS_H

#include "models/formats/image_decode.h"

typedef struct {
    int shortest_edge;       /* 0: no resize */
    int crop_h, crop_w;      /* 0: no crop */
    bool pad_to_square;
    double rescale_factor;   /* 0: no rescale */
    float mean[3], std[3];   /* std 0: no normalisation */
} image_preprocess_config;

/* CLIP's defaults (OpenAI mean/std, 1/255) for a square input of `size` pixels. */
image_preprocess_config image_preprocess_clip(int size);

/* Pillow's Image.resize(..., Image.BICUBIC) of an RGB8 image (two separable passes,
 * 22-bit fixed-point weights, each pass rounded to 8 bits; pass order as Pillow 13). */
int image_resample_bicubic(const image_rgb8 *in, int out_w, int out_h, image_rgb8 *out);

/* The whole chain; *out is [3][H][W] floats (malloc'd), *out_h, *out_w its size. */
int image_preprocess(const image_rgb8 *img, const image_preprocess_config *cfg, float **out, int *out_h, int *out_w);

#endif
