#!/usr/bin/env python3
"""Fixtures for the samplers, classifier-free guidance and torch's CPU generator.

Everything expected here is computed by torch and diffusers, never by Tessera:
  randn.json + randn_*.npy     torch.randn from torch.Generator().manual_seed(s): fresh
                               generators for many sizes (both the n < 16 scalar path and the
                               n >= 16 vectorised path) and consecutive draws from one generator.
  alphas_cumprod.npy           the SD training schedule as diffusers builds it.
  schedules.json               timesteps, sigmas and init_noise_sigma from set_timesteps for
                               every sampler, spacing and Karras option at many step counts.
  loops.json + loops_*.npy     final latents of diffusers' real StableDiffusionPipeline after
                               4 steps (a few cases 8-20), with a fake U-Net that both sides implement identically:
                                 out = 0.5*x + 0.2*tanh(x) + 0.3*(t/1000) + ctx[b, c]
                               where ctx is the (negative-)prompt embedding [B, 1, 4] as a
                               per-channel offset, so cond and uncond differ and CFG matters.
                               Cases cover every sampler and spacing, Karras sigmas, epsilon and
                               v prediction, w = 1 / 7.5, guidance_rescale, DDIM eta, given
                               initial latents and seeded ones, one generator or one per image.

Run from the repository root:  python3 tools/gen_sampler_fixtures.py
"""
import json
import os

import numpy as np
import torch
from torch import nn

import diffusers
from diffusers import (DDIMScheduler, DPMSolverMultistepScheduler, EulerAncestralDiscreteScheduler,
                       EulerDiscreteScheduler, LCMScheduler, StableDiffusionPipeline)
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin

torch.set_num_threads(1)
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "samplers")
os.makedirs(OUT, exist_ok=True)

# Stable Diffusion 1.x's scheduler/scheduler_config.json (SD 2.x and SDXL ship the same schedule).
SD_CONFIG = {
    "_class_name": "PNDMScheduler",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "trained_betas": None,
    "clip_sample": False,
}
CLASSES = {
    "ddim": DDIMScheduler,
    "euler": EulerDiscreteScheduler,
    "euler_a": EulerAncestralDiscreteScheduler,
    "dpm++2m": DPMSolverMultistepScheduler,
    "lcm": LCMScheduler,
}


def save(name, array):
    np.save(os.path.join(OUT, name), np.ascontiguousarray(array, dtype=np.float32))


def make_scheduler(sampler, overrides):
    config = dict(SD_CONFIG)
    config.update(overrides)
    return CLASSES[sampler].from_config(config), config


# ---- torch.randn ------------------------------------------------------------------------

def gen_randn():
    cases = []
    fresh_sizes = [1, 2, 7, 15, 16, 17, 31, 32, 33, 100, 4 * 8 * 8, 4 * 64 * 64 + 0, 2 * 4 * 96 * 96]
    for seed in [0, 1, 42, 1234, 2**32 + 5, 2**64 - 1]:
        sizes = fresh_sizes if seed in (0, 42, 2**64 - 1) else fresh_sizes[:-2]
        parts = [torch.randn(n, generator=torch.Generator().manual_seed(seed)).numpy() for n in sizes]
        name = f"randn_fresh_{len(cases)}.npy"
        save(name, np.concatenate(parts))
        cases.append({"seed": str(seed), "fresh": True, "sizes": sizes, "file": name})
    # shapes as diffusers asks for them: a 4-D tensor is drawn exactly like its flat size
    g = torch.Generator().manual_seed(7)
    a = torch.randn((2, 4, 96, 96), generator=torch.Generator().manual_seed(7)).numpy().ravel()
    assert np.array_equal(a.view(np.uint32), torch.randn(2 * 4 * 96 * 96, generator=g).numpy().view(np.uint32))
    for seed, sizes in [(5, [1, 3, 16, 5, 1, 17, 2, 256, 1, 1, 15, 4 * 8 * 8]),
                        (123456789, [4 * 64 * 64, 1, 4 * 64 * 64, 7, 100])]:
        g = torch.Generator().manual_seed(seed)
        parts = [torch.randn(n, generator=g).numpy() for n in sizes]
        name = f"randn_stream_{len(cases)}.npy"
        save(name, np.concatenate(parts))
        cases.append({"seed": str(seed), "fresh": False, "sizes": sizes, "file": name})
    with open(os.path.join(OUT, "randn.json"), "w") as f:
        json.dump({"torch": torch.__version__, "cases": cases}, f, indent=1)


# ---- schedules --------------------------------------------------------------------------

def gen_schedules():
    sched, _ = make_scheduler("ddim", {})
    save("alphas_cumprod.npy", sched.alphas_cumprod.numpy())
    entries = []
    for sampler in CLASSES:
        spacings = ["leading"] if sampler == "lcm" else ["leading", "trailing", "linspace"]
        karras_options = [False, True] if sampler in ("euler", "dpm++2m") else [False]
        for spacing in spacings:
            for karras in karras_options:
                for steps in [1, 2, 3, 4, 5, 7, 10, 20, 25, 30, 50]:
                    if sampler == "dpm++2m" and karras and steps == 1:
                        continue   # diffusers' karras ramp needs two points
                    overrides = {"timestep_spacing": spacing}
                    if karras:
                        overrides["use_karras_sigmas"] = True
                    sched, config = make_scheduler(sampler, overrides)
                    sched.set_timesteps(steps)
                    sigmas = getattr(sched, "sigmas", None)
                    entry = {
                        "sampler": sampler, "schedule": "karras" if karras else "discrete", "steps": steps,
                        "config": config,
                        "timesteps": [float(t) for t in sched.timesteps],
                        "sigmas": None if sampler in ("ddim", "lcm") else [float(s) for s in sigmas],
                        "init_noise_sigma": float(sched.init_noise_sigma),
                    }
                    entries.append(entry)
    with open(os.path.join(OUT, "schedules.json"), "w") as f:
        json.dump({"diffusers": diffusers.__version__, "entries": entries}, f)


# ---- the denoising loop -----------------------------------------------------------------

class FakeUNet(ModelMixin, ConfigMixin):
    """A deterministic stand-in for the U-Net that tests/parity/test_sampler_loop.c mirrors."""

    @register_to_config
    def __init__(self, in_channels=4, sample_size=8, time_cond_proj_dim=None):
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(1))

    def forward(self, sample, timestep, encoder_hidden_states, timestep_cond=None,
                cross_attention_kwargs=None, added_cond_kwargs=None, return_dict=True):
        t = torch.as_tensor(timestep).to(torch.float32) / 1000
        ctx = encoder_hidden_states[:, 0, :].reshape(sample.shape[0], sample.shape[1], 1, 1)
        out = 0.5 * sample + 0.2 * torch.tanh(sample) + 0.3 * t + ctx
        return (out,)


def gen_loops():
    batch, ch, size = 2, 4, 8
    init = torch.randn((batch, ch, size, size), generator=torch.Generator().manual_seed(2024))
    save("loop_init_noise.npy", init.numpy())
    cond = torch.tensor([[[0.30, -0.20, 0.10, 0.05]], [[-0.10, 0.25, -0.30, 0.20]]])
    uncond = torch.tensor([[[0.05, 0.02, -0.04, 0.01]], [[-0.03, 0.01, 0.02, -0.05]]])

    cases = []

    def case(sampler, overrides=None, schedule="discrete", w=7.5, rescale=0.0, eta=0.0, seeds=(1234,),
             given_latents=True, steps=4):
        overrides = dict(overrides or {})
        if schedule == "karras":
            overrides["use_karras_sigmas"] = True
        cases.append(dict(sampler=sampler, overrides=overrides, schedule=schedule, w=w, rescale=rescale,
                          eta=eta, seeds=list(seeds), given_latents=given_latents, steps=steps))

    for sampler in CLASSES:
        for spacing in (["leading"] if sampler == "lcm" else ["leading", "trailing", "linspace"]):
            case(sampler, {"timestep_spacing": spacing})
            case(sampler, {"timestep_spacing": spacing, "prediction_type": "v_prediction"})
        case(sampler, {"timestep_spacing": "trailing" if sampler != "lcm" else "leading"}, w=1.0)
        case(sampler, {"prediction_type": "v_prediction", "timestep_spacing": "trailing"
                       if sampler != "lcm" else "leading"}, rescale=0.7)
        case(sampler, {}, given_latents=False, seeds=(42,))            # seed -> initial noise
        case(sampler, {}, given_latents=False, seeds=(42, 43))         # one generator per image
    for spacing in ["leading", "linspace"]:
        case("euler", {"timestep_spacing": spacing}, schedule="karras")
        case("dpm++2m", {"timestep_spacing": spacing}, schedule="karras")
    case("euler", {"timestep_spacing": "leading", "prediction_type": "v_prediction"}, schedule="karras")
    case("euler", {"timestep_spacing": "trailing", "sigma_min": 0.1, "sigma_max": 10.0}, schedule="karras")
    case("dpm++2m", {"prediction_type": "v_prediction"}, schedule="karras", rescale=0.5)
    case("dpm++2m", {"final_sigmas_type": "sigma_min"})
    case("ddim", {"set_alpha_to_one": True})
    case("ddim", {"clip_sample": True, "prediction_type": "v_prediction"})
    case("ddim", {}, eta=0.5)
    case("ddim", {"timestep_spacing": "trailing", "prediction_type": "v_prediction"}, eta=1.0,
         given_latents=False, seeds=(7,))
    case("ddim", {}, eta=0.3, given_latents=False, seeds=(8, 9))
    # longer runs: DPM++'s second-order path over many steps and its lower_order_final rule
    # (which changes at 15 steps), and the noise streams over more draws
    case("dpm++2m", {"timestep_spacing": "leading"}, schedule="karras", steps=20, given_latents=False, seeds=(11,))
    case("dpm++2m", {"timestep_spacing": "linspace"}, steps=16)
    case("dpm++2m", {"timestep_spacing": "trailing", "final_sigmas_type": "sigma_min"}, steps=16)
    case("euler_a", {"timestep_spacing": "trailing"}, steps=10, given_latents=False, seeds=(12, 13))
    case("euler", {"timestep_spacing": "leading", "prediction_type": "v_prediction"}, schedule="karras", steps=12)
    case("ddim", {"timestep_spacing": "linspace"}, eta=0.5, steps=12, given_latents=False, seeds=(14,))
    case("lcm", {}, steps=8, given_latents=False, seeds=(15,))

    results = []
    for i, c in enumerate(cases):
        sched, config = make_scheduler(c["sampler"], c["overrides"])
        pipe = StableDiffusionPipeline(vae=None, text_encoder=None, tokenizer=None, unet=FakeUNet(),
                                       scheduler=sched, safety_checker=None, feature_extractor=None,
                                       requires_safety_checker=False)
        pipe.set_progress_bar_config(disable=True)
        # StableDiffusionPipeline.__init__ forces clip_sample=False and steps_offset=1 on the
        # scheduler it is given (StableDiffusionXLPipeline does not); put the scheduler back as
        # configured so the scheduler's own settings are what is tested.
        pipe.scheduler = make_scheduler(c["sampler"], c["overrides"])[0]
        gens = [torch.Generator().manual_seed(s) for s in c["seeds"]]
        kwargs = dict(prompt_embeds=cond.clone(), negative_prompt_embeds=uncond.clone(), height=size * 8,
                      width=size * 8, num_inference_steps=c["steps"], guidance_scale=c["w"],
                      guidance_rescale=c["rescale"], eta=c["eta"],
                      generator=gens[0] if len(gens) == 1 else gens, output_type="latent")
        if c["given_latents"]:
            kwargs["latents"] = init.clone()
        latents = pipe(**kwargs).images
        results.append(latents.numpy())
        c["config"] = config
        c["index"] = i
    save("loop_expected.npy", np.stack([r.reshape(-1) for r in results]))   # [case, N*C*H*W]
    with open(os.path.join(OUT, "loops.json"), "w") as f:
        json.dump({"diffusers": diffusers.__version__, "batch": batch, "channels": ch,
                   "size": size, "cond": cond[:, 0, :].tolist(), "uncond": uncond[:, 0, :].tolist(),
                   "init_noise": "loop_init_noise.npy", "expected": "loop_expected.npy",
                   "cases": cases}, f, indent=1)


if __name__ == "__main__":
    gen_randn()
    gen_schedules()
    gen_loops()
    print("wrote", OUT)
