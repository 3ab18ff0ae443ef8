#!/usr/bin/env python3
"""End-to-end SDXL txt2img fixture (tests/parity/test_txt2img.c), made with diffusers.

A tiny random StableDiffusionXLPipeline in SDXL's real architecture: CLIP-L-style text encoder
(quick_gelu) + OpenCLIP-bigG-style CLIPTextModelWithProjection (gelu, pooled projection), both
with the real 49,408-token vocabulary; a U-Net with linear projections, per-level head counts
depth and the "text_time" added conditioning (pooled text + 6 size/crop ids); the 4-level VAE
with SDXL's scaling factor 0.13025. Saved with save_pretrained into tests/fixtures/tiny_sdxl/
(fp16-exact weights stored as fp16, each file < 2 MB, no tokenizer folders: tests pass
../shared/data/clip_tokenizer_sd15). Expected output from a CPU generator, Euler ancestral,
no negative prompt (so diffusers zeroes the negative conditioning, force_zeros_for_empty_prompt):
  tiny_sd_expected/sdxl_euler_a.npy (uint8 [H, W, 3]), sdxl_euler_a_latents.npy, sdxl_cases.json
Run: python3 tools/gen_txt2img_sdxl_fixtures.py   (seeded; a few seconds on one core)
"""
import json
import os
import shutil

import numpy as np
import torch
from diffusers import AutoencoderKL, EulerAncestralDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
from safetensors.torch import load_file, save_file
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

from gen_txt2img_fixtures import EXPECTED, ROOT, TOKENIZER, randomize

torch.set_num_threads(1)
OUT = os.path.join(ROOT, "tests", "fixtures", "tiny_sdxl")
CASE = dict(name="sdxl_euler_a", sampler="euler_a", prompt="a lighthouse on a cliff at dusk", negative="",
            seed=2024, steps=6, cfg=6.0, width=64, height=48)


def main():
    tokenizer = CLIPTokenizer.from_pretrained(TOKENIZER)
    tokenizer_2 = CLIPTokenizer.from_pretrained(TOKENIZER, pad_token="!")     # SDXL's second tokenizer pads with "!"
    common = dict(vocab_size=49408, hidden_size=16, intermediate_size=32, num_hidden_layers=3, num_attention_heads=2,
                  max_position_embeddings=77, projection_dim=16)
    text_encoder = CLIPTextModel(CLIPTextConfig(hidden_act="quick_gelu", **common)).eval()
    text_encoder_2 = CLIPTextModelWithProjection(CLIPTextConfig(hidden_act="gelu", **common)).eval()
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 48),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4), use_linear_projection=True, addition_embed_type="text_time",
        addition_time_embed_dim=8, transformer_layers_per_block=(1, 1), projection_class_embeddings_input_dim=6 * 8 + 16,
        cross_attention_dim=32, norm_num_groups=16).eval()
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1, norm_num_groups=32,
        block_out_channels=(32, 32, 32, 64), down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4, sample_size=64, scaling_factor=0.13025).eval()
    for m in (text_encoder, text_encoder_2, unet, vae):
        randomize(m)
    scheduler = EulerAncestralDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                                steps_offset=1, timestep_spacing="leading")
    pipe = StableDiffusionXLPipeline(vae=vae, text_encoder=text_encoder, text_encoder_2=text_encoder_2,
                                     tokenizer=tokenizer, tokenizer_2=tokenizer_2, unet=unet, scheduler=scheduler)
    if os.path.exists(OUT):
        shutil.rmtree(OUT)
    pipe.save_pretrained(OUT, safe_serialization=True)
    for sub in ("tokenizer", "tokenizer_2"):
        shutil.rmtree(os.path.join(OUT, sub))
    for root, _, files in os.walk(OUT):
        for n in files:
            p = os.path.join(root, n)
            if n.endswith(".safetensors"):
                sd = load_file(p)
                if os.path.basename(root).startswith("text_encoder"):   # the published naming
                    sd = {(k if k.startswith("text_model.") or k == "text_projection.weight" else "text_model." + k): v
                          for k, v in sd.items()}
                save_file({k: v.half().contiguous() for k, v in sd.items()}, p)
            os.chmod(p, 0o644)
            assert os.path.getsize(p) < 2_000_000, (p, os.path.getsize(p))

    pipe = StableDiffusionXLPipeline.from_pretrained(OUT, tokenizer=tokenizer, tokenizer_2=tokenizer_2,
                                                     torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    captured = {}

    def grab(p, i, t, kw):
        captured["latents"] = kw["latents"].clone()
        return kw

    with torch.no_grad():
        img = pipe(CASE["prompt"], negative_prompt=None, num_inference_steps=CASE["steps"], guidance_scale=CASE["cfg"],
                   width=CASE["width"], height=CASE["height"], generator=torch.Generator("cpu").manual_seed(CASE["seed"]),
                   output_type="np", callback_on_step_end=grab).images[0]
    os.makedirs(EXPECTED, exist_ok=True)
    np.save(os.path.join(EXPECTED, "sdxl_euler_a.npy"), (img * 255).round().astype(np.uint8))
    np.save(os.path.join(EXPECTED, "sdxl_euler_a_latents.npy"), captured["latents"].numpy().astype(np.float32))
    with open(os.path.join(EXPECTED, "sdxl_cases.json"), "w") as f:
        json.dump([CASE], f, indent=1)
    print("sdxl", img.shape, float(img.std()), float(captured["latents"].abs().max()))


if __name__ == "__main__":
    main()
