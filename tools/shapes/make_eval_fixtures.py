"""make_eval_fixtures.py — ground truth for the C scorer's test (tests/unit/test_shapes_eval.c).

Renders 200 held-out scenes of the shapes world (seed 3) as PNGs, with their short and
descriptive captions (one a line, in image order) and the scenes themselves (scenes.json:
shape, colour, size, cell of every object), into tests/fixtures/shapes/; and all 200 again
through PIL's GaussianBlur at radius 0.8, 1.0 and 1.5 into blur0.8/, blur1.0/, blur1.5/: the
soft edges a VAE decoder draws, at and beyond what the demo's decoder does; and all 200
through the demo's own VAE (diffusers) into vae/.

world.py is the scorer's reference: it is the world's definition (what a caption means, how
each shape is drawn), written before and apart from the C scorer, and PIL does the blurring.

    python tools/shapes/make_eval_fixtures.py
"""
import json
import os
import shutil

from PIL import Image, ImageFilter

import world

N, SEED = 200, 3
BLUR_RADII = (0.8, 1.0, 1.5)
OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures", "shapes")


def vae_round_trip(src, dst, model=os.path.join(os.path.dirname(__file__), "..", "..", "demo", "model-descriptive")):
    """The ground truth through the demo's own VAE (diffusers' AutoencoderKL, encoder mean,
    fp32): the decoder's real softening, which is not a Gaussian blur."""
    import numpy as np
    import torch
    from diffusers import AutoencoderKL
    vae = AutoencoderKL.from_pretrained(model, subfolder="vae", torch_dtype=torch.float32).eval()
    os.makedirs(dst, exist_ok=True)
    with torch.no_grad():
        for i in range(N):
            x = np.asarray(Image.open(os.path.join(src, f"{i:05d}.png")).convert("RGB"), dtype=np.float32)
            x = torch.from_numpy(x / 127.5 - 1).permute(2, 0, 1)[None]
            y = vae.decode(vae.encode(x).latent_dist.mean).sample[0].permute(1, 2, 0).clamp(-1, 1)
            Image.fromarray(((y + 1) * 127.5).round().byte().numpy()).save(os.path.join(dst, f"{i:05d}.png"),
                                                                           optimize=True)


def main():
    img_dir = os.path.join(OUT, "images")
    os.makedirs(img_dir, exist_ok=True)
    shutil.rmtree(os.path.join(OUT, "blurred"), ignore_errors=True)   # the old 100-image 0.8 set
    blur_dirs = {r: os.path.join(OUT, f"blur{r}") for r in BLUR_RADII}
    for d in blur_dirs.values():
        os.makedirs(d, exist_ok=True)
    shorts, descs, scenes = [], [], []
    for i in range(N):
        scene, img, short, desc = world.sample(SEED, i)
        Image.fromarray(img).save(os.path.join(img_dir, f"{i:05d}.png"), optimize=True)
        for r, d in blur_dirs.items():
            Image.fromarray(img).filter(ImageFilter.GaussianBlur(r)).save(os.path.join(d, f"{i:05d}.png"),
                                                                         optimize=True)
        shorts.append(short); descs.append(desc)
        scenes.append([{k: o[k] for k in ("shape", "colour", "size", "cell")} for o in scene])
    vae_round_trip(img_dir, os.path.join(OUT, "vae"))
    with open(os.path.join(OUT, "short.txt"), "w") as f:
        f.write("\n".join(shorts) + "\n")
    with open(os.path.join(OUT, "descriptive.txt"), "w") as f:
        f.write("\n".join(descs) + "\n")
    with open(os.path.join(OUT, "scenes.json"), "w") as f:
        json.dump(scenes, f)


if __name__ == "__main__":
    main()
