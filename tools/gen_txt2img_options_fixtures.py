#!/usr/bin/env python3
"""Fixtures for txt2img's diffusers settings (tests/parity/test_txt2img_options.c, issue 11).

Runs diffusers on the tiny models that gen_txt2img_fixtures.py / gen_txt2img_sdxl_fixtures.py
saved (tests/fixtures/tiny_sd, tiny_sdxl; run those first), from the files as saved:
  clip skip, diffusers' way    pipe(clip_skip=1): the positive prompt one layer earlier, the
                               negative at the usual layer (Tessera --clip-skip 2
                               --clip-skip-mode positive)
  clip skip, A1111's way       both prompts one layer earlier: prompt_embeds and
                               negative_prompt_embeds (+ SDXL's pooled) each from diffusers'
                               own encode_prompt(text, clip_skip=1) (Tessera's default mode)
  truncate                     a prompt past 77 tokens: diffusers cuts it (Tessera --truncate)
  guidance rescale, eta        pipe(guidance_rescale=0.7, eta=0.5) with DDIM
  batch position               num_images_per_prompt=3 from one generator: image 2 (Tessera
                               -b 3 --batch-pos 2, made alone)
  SDXL + DDIM                  DDIMScheduler.from_config(pipe.scheduler.config) on tiny_sdxl,
                               whose scheduler file (Euler ancestral's) has no clip_sample:
                               DDIM's default clip_sample=True applies (issue 11.2)
Writes tests/fixtures/tiny_sd_expected/options_cases.json and options_<name>{,_latents}.npy
(uint8 image [H, W, 3] of the image compared, and its final latents), and
options_tokenize.json: transformers' ids for "-a prompt" (tests/integration/test_txt2img_cli.sh).
Run: .venv/bin/python tools/gen_txt2img_options_fixtures.py
"""
import json
import os
import types
import warnings

import numpy as np
import torch
from diffusers import DDIMScheduler, StableDiffusionPipeline, StableDiffusionXLPipeline
from transformers import CLIPTokenizer

warnings.filterwarnings("ignore")
torch.set_num_threads(1)
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
FIX = os.path.join(ROOT, "tests", "fixtures")
EXPECTED = os.path.join(FIX, "tiny_sd_expected")
TOKENIZER = os.path.join(ROOT, "..", "shared", "data", "clip_tokenizer_sd15")

LONG = ("a very detailed painting of a quiet harbour town at dawn, fishing boats with red and blue hulls, "
        "gulls over the water, a lighthouse on the rocks, wet cobblestones, warm light in the windows, "
        "mist over the hills behind, a church tower, nets drying on the quay, an old man with a pipe, "
        "a dog asleep by the door, crates of fish, ropes, barrels, a bicycle against a wall, flower boxes, "
        "a cat on the roof, smoke from the chimneys")
BASE = dict(seed=1234, steps=6, cfg=7.5, width=64, height=48, clip_skip=0, clip_skip_mode="both", truncate=False,
            guidance_rescale=0.0, eta=0.0, batch=1, batch_pos=-1)
CASES = [
    dict(name="sd_clip_skip_positive", model="tiny_sd", sampler="ddim", prompt="a red cube on a blue table",
         negative="blurry, low quality", clip_skip=2, clip_skip_mode="positive"),
    dict(name="sd_clip_skip_both", model="tiny_sd", sampler="ddim", prompt="a red cube on a blue table",
         negative="blurry, low quality", clip_skip=2, clip_skip_mode="both"),
    dict(name="sd_truncate", model="tiny_sd", sampler="ddim", prompt=LONG, negative="", truncate=True),
    dict(name="sd_rescale_eta", model="tiny_sd", sampler="ddim", prompt="a lighthouse at dusk", negative="fog",
         guidance_rescale=0.7, eta=0.5),
    dict(name="sd_batch_pos", model="tiny_sd", sampler="euler_a", prompt="three green spheres", negative="",
         cfg=5.0, batch=3, batch_pos=2),
    dict(name="sdxl_clip_skip_positive", model="tiny_sdxl", sampler="euler_a", prompt="a red cube on a blue table",
         negative="blurry, low quality", clip_skip=2, clip_skip_mode="positive", cfg=6.0),
    dict(name="sdxl_clip_skip_both", model="tiny_sdxl", sampler="euler_a", prompt="a red cube on a blue table",
         negative="blurry, low quality", clip_skip=2, clip_skip_mode="both", cfg=6.0),
    dict(name="sdxl_ddim", model="tiny_sdxl", sampler="ddim", prompt="a photograph of an astronaut riding a horse",
         negative="", cfg=6.0),
]


def load(model):
    tok = CLIPTokenizer.from_pretrained(TOKENIZER)
    path = os.path.join(FIX, model)
    if model == "tiny_sdxl":
        tok2 = CLIPTokenizer.from_pretrained(TOKENIZER, pad_token="!")
        pipe = StableDiffusionXLPipeline.from_pretrained(path, tokenizer=tok, tokenizer_2=tok2, torch_dtype=torch.float32)
    else:
        pipe = StableDiffusionPipeline.from_pretrained(path, tokenizer=tok, safety_checker=None, feature_extractor=None,
                                                       requires_safety_checker=False, torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    # transformers 5 flattened CLIPTextModel (no .text_model); diffusers' clip_skip path still
    # asks for text_encoder.text_model.final_layer_norm: point it at the same layer norm
    if not hasattr(pipe.text_encoder, "text_model"):
        pipe.text_encoder.text_model = types.SimpleNamespace(final_layer_norm=pipe.text_encoder.final_layer_norm)
    return pipe


def run(pipe, sdxl, c):
    if c["sampler"] == "ddim":
        pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    else:
        from diffusers import EulerAncestralDiscreteScheduler
        pipe.scheduler = EulerAncestralDiscreteScheduler.from_config(pipe.scheduler.config)
    skip = c["clip_skip"] - 1 if c["clip_skip"] > 1 else None   # A1111's 2 is diffusers' 1
    kw = dict(num_inference_steps=c["steps"], guidance_scale=c["cfg"], width=c["width"], height=c["height"],
              generator=torch.Generator("cpu").manual_seed(c["seed"]), guidance_rescale=c["guidance_rescale"],
              eta=c["eta"], num_images_per_prompt=c["batch"])
    if skip and c["clip_skip_mode"] == "both":
        # each prompt encoded by diffusers itself as a positive prompt with clip_skip
        enc = lambda text: pipe.encode_prompt(text, device="cpu", num_images_per_prompt=1,
                                              do_classifier_free_guidance=False, clip_skip=skip)
        if sdxl:
            pe, _, pp, _ = enc(c["prompt"])
            ne, _, npo, _ = enc(c["negative"])
            kw.update(prompt_embeds=pe, negative_prompt_embeds=ne, pooled_prompt_embeds=pp,
                      negative_pooled_prompt_embeds=npo)
        else:
            kw.update(prompt_embeds=enc(c["prompt"])[0], negative_prompt_embeds=enc(c["negative"])[0])
    else:
        kw.update(prompt=c["prompt"], negative_prompt=c["negative"] or None, clip_skip=skip)
    captured = {}

    def grab(p, i, t, k):
        captured["latents"] = k["latents"].clone()
        return k

    with torch.no_grad():
        images = pipe(output_type="np", callback_on_step_end=grab, **kw).images
    k = max(c["batch_pos"], 0)
    return images[k], captured["latents"][k:k + 1]


def main():
    # `tessera tokenize -- "-a prompt"`: transformers' ids for a text that starts with '-'
    tok = CLIPTokenizer.from_pretrained(TOKENIZER)
    ids = tok("-a prompt", padding="max_length", max_length=77).input_ids
    with open(os.path.join(EXPECTED, "options_tokenize.json"), "w") as f:
        json.dump({"text": "-a prompt", "ids": ids}, f)
    pipes = {}
    out = []
    for case in CASES:
        c = dict(BASE, **case)
        if c["model"] not in pipes:
            pipes[c["model"]] = load(c["model"])
        img, latents = run(pipes[c["model"]], c["model"] == "tiny_sdxl", c)
        np.save(os.path.join(EXPECTED, f"options_{c['name']}.npy"), (img * 255).round().astype(np.uint8))
        np.save(os.path.join(EXPECTED, f"options_{c['name']}_latents.npy"), latents.numpy().astype(np.float32))
        out.append(c)
        print(c["name"], img.shape, float(img.std()), float(latents.abs().max()))
    with open(os.path.join(EXPECTED, "options_cases.json"), "w") as f:
        json.dump(out, f, indent=1)
    for n in os.listdir(EXPECTED):
        os.chmod(os.path.join(EXPECTED, n), 0o644)


if __name__ == "__main__":
    main()
