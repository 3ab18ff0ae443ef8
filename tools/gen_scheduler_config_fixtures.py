#!/usr/bin/env python3
"""Fixtures for how a pipeline configures its sampler from scheduler_config.json (issue 11.2).

diffusers fills a key missing from the file with the default of the class that reads it
(SomeScheduler.from_config: each class has its own defaults), and then the pipeline class
applies its own fix-ups: StableDiffusionPipeline.__init__ forces steps_offset=1 and
clip_sample=False on the scheduler it is given; StableDiffusionXLPipeline has none.

Written here, all computed by diffusers (never by Tessera):
  published/sd15_scheduler_config.json   the files the reference models publish, written
  published/sd21_scheduler_config.json   from their known contents (runwayml SD 1.5,
  published/sdxl_scheduler_config.json   stabilityai SD 2.1 (768, v), SDXL base 1.0).
  pipeline_configs.json + pipeline_configs_expected.npy
      for every sampler x base file x (the whole file, and the file missing each one of its
      keys) x pipeline family (sd: StableDiffusionPipeline, sdxl: StableDiffusionXLPipeline):
      the file's text, the settings the pipeline's scheduler ends up with, its timesteps, and
      the final latents of 4 steps of the real pipeline with the fake U-Net of
      gen_sampler_fixtures.py (out = 0.5 x + 0.2 tanh(x) + 0.3 t/1000 + ctx[b, c]).
      Base files: the three published ones, and each class's own complete config (as
      SomeScheduler(**SD schedule).save_config writes it) so every key the class has is
      missing once.

Run from the repository root:  .venv/bin/python tools/gen_scheduler_config_fixtures.py
"""
import inspect
import json
import os
import warnings

import numpy as np
import torch
from torch import nn

import diffusers
from diffusers import (DDIMScheduler, DPMSolverMultistepScheduler, EulerAncestralDiscreteScheduler,
                       EulerDiscreteScheduler, LCMScheduler, StableDiffusionPipeline, StableDiffusionXLPipeline)
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin

warnings.filterwarnings("ignore")
diffusers.utils.logging.set_verbosity_error()   # "config attributes ... will be ignored": expected here
torch.set_num_threads(1)
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "samplers")
os.makedirs(os.path.join(OUT, "published"), exist_ok=True)

# scheduler/scheduler_config.json as the reference models publish them
PUBLISHED = {
    "sd15": {  # runwayml/stable-diffusion-v1-5
        "_class_name": "PNDMScheduler",
        "_diffusers_version": "0.6.0",
        "beta_end": 0.012,
        "beta_schedule": "scaled_linear",
        "beta_start": 0.00085,
        "num_train_timesteps": 1000,
        "set_alpha_to_one": False,
        "skip_prk_steps": True,
        "steps_offset": 1,
        "trained_betas": None,
        "clip_sample": False,
    },
    "sd21": {  # stabilityai/stable-diffusion-2-1 (768, v prediction)
        "_class_name": "DDIMScheduler",
        "_diffusers_version": "0.8.0",
        "beta_end": 0.012,
        "beta_schedule": "scaled_linear",
        "beta_start": 0.00085,
        "clip_sample": False,
        "num_train_timesteps": 1000,
        "prediction_type": "v_prediction",
        "set_alpha_to_one": False,
        "skip_prk_steps": True,
        "steps_offset": 1,
        "trained_betas": None,
    },
    "sdxl": {  # stabilityai/stable-diffusion-xl-base-1.0
        "_class_name": "EulerDiscreteScheduler",
        "_diffusers_version": "0.19.0.dev0",
        "beta_end": 0.012,
        "beta_schedule": "scaled_linear",
        "beta_start": 0.00085,
        "clip_sample": False,
        "interpolation_type": "linear",
        "num_train_timesteps": 1000,
        "prediction_type": "epsilon",
        "sample_max_value": 1.0,
        "set_alpha_to_one": False,
        "skip_prk_steps": True,
        "steps_offset": 1,
        "timestep_spacing": "leading",
        "trained_betas": None,
        "use_karras_sigmas": False,
    },
}
SD_SCHEDULE = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear"}
CLASSES = {
    "ddim": DDIMScheduler,
    "euler": EulerDiscreteScheduler,
    "euler_a": EulerAncestralDiscreteScheduler,
    "dpm++2m": DPMSolverMultistepScheduler,
    "lcm": LCMScheduler,
}
# the settings Tessera's scheduler_config holds, compared where the class has them
SETTINGS = ["num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "prediction_type", "timestep_spacing",
            "steps_offset", "set_alpha_to_one", "clip_sample", "clip_sample_range", "use_karras_sigmas",
            "final_sigmas_type", "lower_order_final", "euler_at_final", "original_inference_steps",
            "timestep_scaling", "rescale_betas_zero_snr", "sigma_min", "sigma_max"]


class FakeUNet(ModelMixin, ConfigMixin):
    """gen_sampler_fixtures.py's fake U-Net, with what StableDiffusionXLPipeline checks."""

    @register_to_config
    def __init__(self, in_channels=4, sample_size=8, time_cond_proj_dim=None, addition_time_embed_dim=1,
                 pooled_dim=4):
        super().__init__()
        self.add_embedding = nn.Module()
        self.add_embedding.linear_1 = nn.Linear(6 * addition_time_embed_dim + pooled_dim, 1)

    def forward(self, sample, timestep, encoder_hidden_states, timestep_cond=None, cross_attention_kwargs=None,
                added_cond_kwargs=None, return_dict=True):
        t = torch.as_tensor(timestep).to(torch.float32) / 1000
        ctx = encoder_hidden_states[:, 0, :].reshape(sample.shape[0], sample.shape[1], 1, 1)
        return (0.5 * sample + 0.2 * torch.tanh(sample) + 0.3 * t + ctx,)


def class_keys(cls):
    return set(inspect.signature(cls.__init__).parameters) - {"self"}


def base_files():
    bases = {name: dict(cfg) for name, cfg in PUBLISHED.items()}
    for sampler, cls in CLASSES.items():
        full = dict(cls.from_config(SD_SCHEDULE).config)   # everything the class has, as saved
        full = {k: v for k, v in full.items() if not k.startswith("_")}
        full["_class_name"] = cls.__name__
        bases["full_" + sampler] = full
    return bases


def main():
    for name, cfg in PUBLISHED.items():
        with open(os.path.join(OUT, "published", name + "_scheduler_config.json"), "w") as f:
            json.dump(cfg, f, indent=2)
            f.write("\n")

    batch, ch, size, steps, w = 2, 4, 8, 4, 7.5
    init = torch.randn((batch, ch, size, size), generator=torch.Generator().manual_seed(2024))
    save = lambda name, a: np.save(os.path.join(OUT, name), np.ascontiguousarray(a, dtype=np.float32))
    save("pipeline_configs_init_noise.npy", init.numpy())
    cond = torch.tensor([[[0.30, -0.20, 0.10, 0.05]], [[-0.10, 0.25, -0.30, 0.20]]])
    uncond = torch.tensor([[[0.05, 0.02, -0.04, 0.01]], [[-0.03, 0.01, 0.02, -0.05]]])
    pooled = torch.zeros((batch, 4))

    cases, results = [], []
    for base_name, base in base_files().items():
        variants = [("", base)] + [(k, {kk: vv for kk, vv in base.items() if kk != k})
                                   for k in sorted(base) if not k.startswith("_")]
        for missing, config in variants:
            for sampler, cls in CLASSES.items():
                if base_name.startswith("full_") and base_name != "full_" + sampler:
                    continue   # a class's own file: for that class
                for pipeline in ["sd", "sdxl"]:
                    scheduler = cls.from_config(config)
                    if pipeline == "sd":
                        pipe = StableDiffusionPipeline(vae=None, text_encoder=None, tokenizer=None, unet=FakeUNet(),
                                                       scheduler=scheduler, safety_checker=None,
                                                       feature_extractor=None, requires_safety_checker=False)
                        extra = {}
                    else:
                        pipe = StableDiffusionXLPipeline(vae=None, text_encoder=None, text_encoder_2=None,
                                                         tokenizer=None, tokenizer_2=None, unet=FakeUNet(),
                                                         scheduler=scheduler)
                        extra = dict(pooled_prompt_embeds=pooled.clone(), negative_pooled_prompt_embeds=pooled.clone())
                    pipe.set_progress_bar_config(disable=True)
                    latents = pipe(prompt_embeds=cond.clone(), negative_prompt_embeds=uncond.clone(), height=size * 8,
                                   width=size * 8, num_inference_steps=steps, guidance_scale=w,
                                   generator=torch.Generator().manual_seed(1234), latents=init.clone(),
                                   output_type="latent", **extra).images
                    effective = {k: pipe.scheduler.config[k] for k in SETTINGS
                                 if k in class_keys(cls) and k in pipe.scheduler.config}
                    cases.append({"index": len(results), "base": base_name, "missing": missing, "sampler": sampler,
                                  "pipeline": pipeline, "config": json.dumps(config),
                                  "effective": effective,
                                  "timesteps": [float(t) for t in pipe.scheduler.timesteps]})
                    results.append(latents.numpy().reshape(-1))
    save("pipeline_configs_expected.npy", np.stack(results))
    with open(os.path.join(OUT, "pipeline_configs.json"), "w") as f:
        json.dump({"diffusers": diffusers.__version__, "batch": batch, "channels": ch, "size": size, "steps": steps,
                   "w": w, "seed": 1234, "cond": cond[:, 0, :].tolist(), "uncond": uncond[:, 0, :].tolist(),
                   "init_noise": "pipeline_configs_init_noise.npy", "expected": "pipeline_configs_expected.npy",
                   "cases": cases}, f, indent=0)
    print(f"wrote {len(cases)} cases to {OUT}")


if __name__ == "__main__":
    main()
