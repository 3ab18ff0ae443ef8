/*
 * taesd.h — TAESD, the tiny autoencoder (madebyollin/taesd): a fast, small stand-in for
 * the VAE, good for previews and cheap decodes.
 *
 * Both halves are nn.Sequential stacks of 3x3 convs, ReLU, Blocks (conv-relu-conv-relu-conv
 * plus skip, then ReLU), stride-2 convs (encoder), nearest 2x upsampling (decoder) and a
 * soft clamp tanh(x/3)*3 on the decoder input. The FLUX.2 variant (taef2) adds a `pool`
 * branch to some Blocks: x += conv1x1(relu(groupnorm4(conv1x1(x)))) before the Block.
 * The latent channel count (4 for SD, 16, 32 for FLUX.2) and the Block width (64 in the
 * published weights) are read from the weights.
 *
 * Weights: safetensors with the Sequential's own names ("3.conv.0.weight"), optionally
 * under "encoder." / "decoder.", or diffusers' AutoencoderTiny layout ("encoder.layers.N",
 * "decoder.layers.N-1": its decoder Sequential has no Clamp entry). Convert madebyollin's
 * .pth files with tools/pth_to_safetensors.py.
 *
 * TAESD works in the *scaled* latent space the U-Net sees (no division by the VAE's
 * scaling factor). Images are NCHW float in [0, 1] (not [-1, 1] as for the VAE).
 */
#ifndef TESSERA_TAESD_H
#define TESSERA_TAESD_H

#include "kernels/backend.h"

typedef struct taesd taesd;

/* encoder_path or decoder_path may be NULL (that half is then unavailable). Both may name
 * the same file when it holds both halves under "encoder." / "decoder." prefixes. */
taesd *taesd_load(const char *encoder_path, const char *decoder_path);
void taesd_destroy(taesd **self);

int taesd_latent_channels(const taesd *self);
bool taesd_has_encoder(const taesd *self);
bool taesd_has_decoder(const taesd *self);

/* image [N, 3, H, W] in [0, 1] (H, W multiples of 8) -> latent [N, L, H/8, W/8] */
int taesd_encode(taesd *self, ts_ctx *ctx, const float *image, int N, int H, int W, float *latent);
/* latent [N, L, h, w] -> image [N, 3, 8h, 8w], clamped to [0, 1] as the reference does */
int taesd_decode(taesd *self, ts_ctx *ctx, const float *latent, int N, int h, int w, float *image);

#endif
