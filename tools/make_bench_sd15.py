#!/usr/bin/env python3
"""make_bench_sd15.py — a random-weight, full-size SD 1.5 diffusers folder for
`tessera bench render` and the memory measurement of a whole `tessera txt2img` run.

Writes unet/, vae/, text_encoder/ (config.json + F16 safetensors), scheduler/ and
model_index.json in the layout of runwayml/stable-diffusion-v1-5, with diffusers' and
transformers' own random initialisation (fixed seed): UNet2DConditionModel with SD 1.5's
config (860 M parameters), AutoencoderKL (84 M), CLIPTextModel ViT-L/14 (123 M). No
tokenizer is written: tessera uses its built-in CLIP vocabulary. The images are noise; the
benchmark measures speed and memory, not pictures.

    .venv/bin/python tools/make_bench_sd15.py /tmp/sd15-bench [--dtype f32]
"""
import argparse
import json
import os

import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--dtype", default="f16", choices=["f16", "f32"])
    a = ap.parse_args()
    dt = torch.float16 if a.dtype == "f16" else torch.float32
    torch.manual_seed(0)
    torch.set_num_threads(1)
    os.makedirs(a.out, exist_ok=True)

    unet = UNet2DConditionModel(
        sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
        block_out_channels=(320, 640, 1280, 1280),
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        cross_attention_dim=768, attention_head_dim=8, norm_num_groups=32)
    unet.to(dt).save_pretrained(os.path.join(a.out, "unet"), safe_serialization=True)
    del unet

    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2, sample_size=512,
        block_out_channels=(128, 256, 512, 512),
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4)
    vae.to(dt).save_pretrained(os.path.join(a.out, "vae"), safe_serialization=True)
    del vae

    cfg = CLIPTextConfig(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                         num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu",
                         projection_dim=768, bos_token_id=49406, eos_token_id=49407, pad_token_id=1)
    text = CLIPTextModel(cfg)
    text.to(dt).save_pretrained(os.path.join(a.out, "text_encoder"), safe_serialization=True)
    del text

    sched = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                          clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    sched.save_pretrained(os.path.join(a.out, "scheduler"))
    index = {"_class_name": "StableDiffusionPipeline", "requires_safety_checker": False,
             "scheduler": ["diffusers", "DDIMScheduler"], "text_encoder": ["transformers", "CLIPTextModel"],
             "tokenizer": [None, None], "unet": ["diffusers", "UNet2DConditionModel"],
             "vae": ["diffusers", "AutoencoderKL"]}
    with open(os.path.join(a.out, "model_index.json"), "w") as f:
        json.dump(index, f, indent=2)
    print("wrote", a.out)


if __name__ == "__main__":
    main()
