"""gen_demo_renderer_fixtures.py — diffusers' output for the two demo renderers (demo/model-short,
demo/model-descriptive: the 3-level U-Net of issue 19, its own CLIP vocabulary and VAE) on
two prompts each: DDIM, 20 steps, guidance 4, 48x48, seed through a CPU torch.Generator, the
prompt truncated at 77 tokens as diffusers does. Written to tests/fixtures/demo_renderer/:
NAME_sSEED_latent.npy (float32 [1, 4, 12, 12], the final latents before the VAE's scaling) and
NAME_sSEED_image.npy (uint8 [48, 48, 3], the decoded image), prompts.txt (NAME SEED PROMPT).
parity/test_demo_renderer.sh runs `tessera txt2img` on the same and compares. Run again
after retraining a renderer:

    .venv/bin/python tools/gen_demo_renderer_fixtures.py
"""
import os
import numpy as np
import torch
from diffusers import DDIMScheduler, StableDiffusionPipeline

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "demo_renderer")
CASES = [("model-descriptive", 0, "A large red circle in the top left, a small blue square in the bottom right, on a white background."),
         ("model-descriptive", 3, "two green triangles and a circle"),
         ("model-short", 1, "a purple square and two yellow circles"),
         ("model-short", 5, "a small orange triangle")]

torch.set_num_threads(1)
os.makedirs(OUT, exist_ok=True)
lines = []
for name, seed, prompt in CASES:
    pipe = StableDiffusionPipeline.from_pretrained(os.path.join(ROOT, "demo", name), torch_dtype=torch.float32,
                                                   safety_checker=None, requires_safety_checker=False)
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    kw = dict(height=48, width=48, num_inference_steps=20, guidance_scale=4.0)
    lat = pipe(prompt, generator=torch.Generator().manual_seed(seed), output_type="latent", **kw).images
    img = pipe(prompt, generator=torch.Generator().manual_seed(seed), output_type="np", **kw).images[0]
    img = (img * 255).round().clip(0, 255).astype(np.uint8)   # as diffusers' numpy_to_pil rounds
    np.save(os.path.join(OUT, f"{name}_s{seed}_latent.npy"), lat.numpy().astype(np.float32))
    np.save(os.path.join(OUT, f"{name}_s{seed}_image.npy"), img)
    lines.append(f"{name} {seed} {prompt}")
    print(name, seed, "latent max", float(lat.abs().max()))
with open(os.path.join(OUT, "prompts.txt"), "w") as f:
    f.write("\n".join(lines) + "\n")
