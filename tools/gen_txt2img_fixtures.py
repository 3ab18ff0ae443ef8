#!/usr/bin/env python3
"""End-to-end txt2img fixtures (tests/parity/test_txt2img.c), made with diffusers.

A tiny random StableDiffusionPipeline in SD 1.x's real architecture (CLIPTextModel with the
real SD 1.5 vocabulary of 49,408 tokens, UNet2DConditionModel with cross-attention,
AutoencoderKL with 4 levels = factor 8, the SD scheduler) is saved with save_pretrained into
tests/fixtures/tiny_sd/, weights rounded to and stored as fp16 (each file < 2 MB).
The tokenizer/ folder is NOT kept (it is public data: ../shared/data/clip_tokenizer_sd15;
tests pass it with --tokenizer).

Expected outputs, from a CPU torch.Generator, float32:
  tiny_sd_expected/{ddim,euler_a}.npy       uint8 [H, W, 3]  (round(image * 255))
  tiny_sd_expected/{ddim,euler_a}_f32.npy   float32 [H, W, 3] in [0, 1] (diagnostics)
  tiny_sd_expected/{ddim,euler_a}_latents.npy  final latents before 1/scaling_factor
  tiny_sd_expected/cases.json               prompt, negative, seed, steps, cfg, size
Also a tiny random TAESD in diffusers' AutoencoderTiny layout (width 16, 4 latent channels):
  tiny_taesd/diffusion_pytorch_model.safetensors (+ config.json), and for the TAESD parity test
  tiny_taesd/{image,latent_expected,decoded_expected}.npy (image in [0, 1], decoded in [0, 1]);
  tiny_sd_expected/ddim_taesd.npy: the ddim case decoded by it (pipeline vae = AutoencoderTiny).
Run: python3 tools/gen_txt2img_fixtures.py   (seeded; ~10 s on one core)
"""
import json
import os
import shutil

import numpy as np
import torch
from diffusers import (AutoencoderKL, AutoencoderTiny, DDIMScheduler, EulerAncestralDiscreteScheduler, StableDiffusionPipeline,
                       UNet2DConditionModel)
from safetensors.torch import load_file, save_file
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

torch.set_num_threads(1)
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
OUT = os.path.join(ROOT, "tests", "fixtures", "tiny_sd")
EXPECTED = os.path.join(ROOT, "tests", "fixtures", "tiny_sd_expected")
TAESD_OUT = os.path.join(ROOT, "tests", "fixtures", "tiny_taesd")
TOKENIZER = os.path.join(ROOT, "..", "shared", "data", "clip_tokenizer_sd15")

CASES = [
    dict(name="ddim", sampler="ddim", prompt="a photograph of an astronaut riding a horse",
         negative="blurry, low quality", seed=1234, steps=8, cfg=7.5, width=64, height=48),
    dict(name="euler_a", sampler="euler_a", prompt="a red cube on a blue table, studio light",
         negative="", seed=42, steps=8, cfg=5.0, width=64, height=48),
]


def randomize(module, gain=1.0):
    """Random weights with unit-ish activations (diffusers' init leaves some at zero)."""
    torch.manual_seed(sum(map(ord, type(module).__name__)))
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.ndim > 1:
                p.copy_(torch.randn_like(p) * gain / p[0].numel() ** 0.5)
            elif "norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            else:
                p.copy_(0.05 * torch.randn_like(p))
        module.half().float()   # the values the fp16 files hold exactly


def main():
    tokenizer = CLIPTokenizer.from_pretrained(TOKENIZER)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=49408, hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
        max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=16)).eval()
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=16, attention_head_dim=8, norm_num_groups=32).eval()
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1, norm_num_groups=32,
        block_out_channels=(32, 32, 32, 64), down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4, sample_size=64).eval()
    randomize(text_encoder)
    randomize(unet)
    randomize(vae)
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    if os.path.exists(OUT):
        shutil.rmtree(OUT)
    pipe.save_pretrained(OUT, safe_serialization=True)
    shutil.rmtree(os.path.join(OUT, "tokenizer"))     # public data: read from ../shared/data
    for root, _, files in os.walk(OUT):                # store fp16 (values are fp16-exact already)
        for n in files:
            p = os.path.join(root, n)
            if n.endswith(".safetensors"):
                sd = load_file(p)
                if os.path.basename(root) == "text_encoder":
                    # transformers >= 5 saves CLIPTextModel without the "text_model." prefix that
                    # every published SD text_encoder/ has; store the published naming
                    sd = {(k if k.startswith("text_model.") else "text_model." + k): v for k, v in sd.items()}
                save_file({k: v.half().contiguous() for k, v in sd.items()}, p)
            os.chmod(p, 0o644)
            assert os.path.getsize(p) < 2_000_000, (p, os.path.getsize(p))

    # the reference runs on the files as saved (what Tessera reads), not on the objects in memory
    pipe = StableDiffusionPipeline.from_pretrained(OUT, tokenizer=tokenizer, safety_checker=None, feature_extractor=None,
                                                   requires_safety_checker=False, torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    os.makedirs(EXPECTED, exist_ok=True)
    for case in CASES:
        sched_cls = DDIMScheduler if case["sampler"] == "ddim" else EulerAncestralDiscreteScheduler
        pipe.scheduler = sched_cls.from_config(pipe.scheduler.config)
        captured = {}

        def grab(p, i, t, kw):
            captured["latents"] = kw["latents"].clone()
            return kw

        g = torch.Generator("cpu").manual_seed(case["seed"])
        with torch.no_grad():
            img = pipe(case["prompt"], negative_prompt=case["negative"] or None, num_inference_steps=case["steps"],
                       guidance_scale=case["cfg"], width=case["width"], height=case["height"], generator=g,
                       output_type="np", callback_on_step_end=grab).images[0]
        np.save(os.path.join(EXPECTED, case["name"] + "_f32.npy"), img.astype(np.float32))
        np.save(os.path.join(EXPECTED, case["name"] + ".npy"), (img * 255).round().astype(np.uint8))
        np.save(os.path.join(EXPECTED, case["name"] + "_latents.npy"), captured["latents"].numpy().astype(np.float32))
        print(case["name"], img.shape, float(img.min()), float(img.max()), float(img.std()))
    # tiny TAESD: its own parity fixture, then the ddim case decoded with it
    taesd = AutoencoderTiny(encoder_block_out_channels=(16,) * 4, decoder_block_out_channels=(16,) * 4,
                            latent_channels=4).eval()
    randomize(taesd, gain=1.2)
    taesd.save_pretrained(TAESD_OUT, safe_serialization=True)
    p = os.path.join(TAESD_OUT, "diffusion_pytorch_model.safetensors")
    save_file({k: v.half().contiguous() for k, v in load_file(p).items()}, p)
    g = torch.Generator().manual_seed(3)
    image = torch.rand(1, 3, 32, 48, generator=g)
    with torch.no_grad():
        latent = taesd.encode(image * 2 - 1).latents
        decoded = (taesd.decode(latent).sample / 2 + 0.5).clamp(0, 1)
    np.save(os.path.join(TAESD_OUT, "image.npy"), image.numpy())
    np.save(os.path.join(TAESD_OUT, "latent_expected.npy"), latent.numpy())
    np.save(os.path.join(TAESD_OUT, "decoded_expected.npy"), decoded.numpy())
    case = dict(CASES[0])
    pipe.vae = AutoencoderTiny.from_pretrained(TAESD_OUT, torch_dtype=torch.float32)
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    with torch.no_grad():
        img = pipe(case["prompt"], negative_prompt=case["negative"], num_inference_steps=case["steps"],
                   guidance_scale=case["cfg"], width=case["width"], height=case["height"],
                   generator=torch.Generator("cpu").manual_seed(case["seed"]), output_type="np").images[0]
    np.save(os.path.join(EXPECTED, "ddim_taesd.npy"), (img * 255).round().astype(np.uint8))
    for root in (TAESD_OUT, EXPECTED):
        for n in os.listdir(root):
            os.chmod(os.path.join(root, n), 0o644)
    print("ddim_taesd", img.shape, float(img.std()))
    with open(os.path.join(EXPECTED, "cases.json"), "w") as f:
        json.dump(CASES, f, indent=1)


if __name__ == "__main__":
    main()
