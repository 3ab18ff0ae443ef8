"""renderer_parity.py — Tessera against diffusers on one demo renderer folder: the same prompt,
seed (CPU torch.Generator), DDIM 20 steps, guidance 4, 48x48; prints the largest difference of
the final latents (diffusers output_type="latent" vs `tessera txt2img --save-latent`) and of
the decoded images. Run after retraining a renderer (issue 19 used it on the 3-level U-Net):

    python tools/shapes/renderer_parity.py demo/model-descriptive build/release/tessera
"""
import sys, subprocess, numpy as np, torch, warnings
warnings.filterwarnings("ignore")
from diffusers import StableDiffusionPipeline
from PIL import Image
model, tessera = sys.argv[1], sys.argv[2]
bad = 0
torch.set_num_threads(1)
pipe = StableDiffusionPipeline.from_pretrained(model, torch_dtype=torch.float32)
pipe.set_progress_bar_config(disable=True)
for seed, prompt in [(0, "A large red circle in the top left, a small blue square in the bottom right, on a white background."),
                     (3, "two green triangles and a circle")]:
    lat = pipe(prompt, height=48, width=48, num_inference_steps=20, guidance_scale=4.0,
               generator=torch.Generator().manual_seed(seed), output_type="latent").images[0].numpy()
    img = np.asarray(pipe(prompt, height=48, width=48, num_inference_steps=20, guidance_scale=4.0,
               generator=torch.Generator().manual_seed(seed)).images[0]).astype(int)
    subprocess.run([tessera, "-q", "txt2img", "-m", model, "-p", prompt, "--seed", str(seed), "--sampler", "ddim",
                    "--steps", "20", "--cfg-scale", "4", "-W", "48", "-H", "48", "-t", "1", "--truncate",
                    "-o", "/tmp/renderer_parity.png", "--save-latent", "/tmp/renderer_parity.npy"], check=True)
    tl = np.load("/tmp/renderer_parity.npy").reshape(lat.shape)
    ti = np.asarray(Image.open("/tmp/renderer_parity.png").convert("RGB")).astype(int)
    sf = pipe.vae.config.scaling_factor
    d1 = np.abs(tl - lat).max(); d2 = np.abs(tl / sf - lat).max()
    print(f"seed {seed}: latent max|diff| {min(d1, d2):.2e} (of max {np.abs(lat).max():.2f}); "
          f"image max|diff| {np.abs(ti - img).max()}/255, share >1: {(np.abs(ti - img) > 1).mean():.4f}")
    bad += min(d1, d2) > 1e-3 * max(1.0, np.abs(lat).max()) or (np.abs(ti - img) > 1).mean() > 1e-3
print("PASS" if not bad else "FAIL")
sys.exit(1 if bad else 0)
