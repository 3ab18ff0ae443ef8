"""gen_demo_renderer_fixtures.py — diffusers' output for the two demo renderers (demo/model-short,
demo/model-descriptive: the 3-level U-Net of issue 19, its own CLIP vocabulary and VAE) on
three prompts each: 20 steps, guidance 4, 48x48, seed through a CPU torch.Generator, the
prompt truncated at 77 tokens as diffusers does; DDIM, and DPM-Solver++ 2M (the sampler
`make demo` and the ablation use; it treats the zero-terminal-SNR schedule's ends, ᾱ = 0 at
t = 999 and the last step to σ = 0, with code of its own, apart from DDIM's). Written to tests/fixtures/demo_renderer/:
NAME_sSEED_latent.npy (float32 [1, 4, 12, 12], the final latents before the VAE's scaling) and
NAME_sSEED_image.npy (uint8 [48, 48, 3], the decoded image), prompts.txt (NAME SEED SAMPLER
PROMPT, SAMPLER as `tessera txt2img --sampler` names it).
parity/test_demo_renderer.sh runs `tessera txt2img` on the same and compares. Run again
after retraining a renderer:

    .venv/bin/python tools/gen_demo_renderer_fixtures.py [MODELS_DIR OUT_DIR]

(MODELS_DIR, OUT_DIR: to check a candidate pair before it is installed, with
DEMO_DIR=MODELS_DIR TESSERA_FIXTURES=... for the test; default demo/ and the fixtures.)
"""
import os
import sys
import numpy as np
import torch
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, StableDiffusionPipeline

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "demo")
OUT = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "tests", "fixtures", "demo_renderer")
CASES = [("model-descriptive", 0, "ddim", "A large red circle in the top left, a small blue square in the bottom right, on a white background."),
         ("model-descriptive", 3, "ddim", "two green triangles and a circle"),
         ("model-descriptive", 7, "dpm++2m", "A small green triangle in the bottom center, on a white background."),
         ("model-short", 1, "ddim", "a purple square and two yellow circles"),
         ("model-short", 5, "ddim", "a small orange triangle"),
         ("model-short", 2, "dpm++2m", "a blue circle in the top right")]
SCHEDULERS = {"ddim": DDIMScheduler, "dpm++2m": DPMSolverMultistepScheduler}   # DPM++ 2M is its default

torch.set_num_threads(1)
os.makedirs(OUT, exist_ok=True)
lines = []
for name, seed, sampler, prompt in CASES:
    pipe = StableDiffusionPipeline.from_pretrained(os.path.join(MODELS, name), torch_dtype=torch.float32,
                                                   safety_checker=None, requires_safety_checker=False)
    pipe.scheduler = SCHEDULERS[sampler].from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    kw = dict(height=48, width=48, num_inference_steps=20, guidance_scale=4.0)
    lat = pipe(prompt, generator=torch.Generator().manual_seed(seed), output_type="latent", **kw).images
    img = pipe(prompt, generator=torch.Generator().manual_seed(seed), output_type="np", **kw).images[0]
    img = (img * 255).round().clip(0, 255).astype(np.uint8)   # as diffusers' numpy_to_pil rounds
    np.save(os.path.join(OUT, f"{name}_s{seed}_latent.npy"), lat.numpy().astype(np.float32))
    np.save(os.path.join(OUT, f"{name}_s{seed}_image.npy"), img)
    lines.append(f"{name} {seed} {sampler} {prompt}")
    print(name, seed, sampler, "latent max", float(lat.abs().max()))
with open(os.path.join(OUT, "prompts.txt"), "w") as f:
    f.write("\n".join(lines) + "\n")
