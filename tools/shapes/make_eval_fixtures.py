"""make_eval_fixtures.py — ground truth for the C scorer's test (tests/unit/test_shapes_eval.c).

Renders 200 held-out scenes of the shapes world (seed 3) as PNGs, with their short and
descriptive captions (one a line, in image order) and the scenes themselves (scenes.json:
shape, colour, size, cell of every object), into tests/fixtures/shapes/; and the first 100
again through PIL's GaussianBlur(0.8) into blurred/, the soft edges a VAE decoder draws.

    python tools/shapes/make_eval_fixtures.py
"""
import json
import os

from PIL import Image, ImageFilter

import world

N, SEED = 200, 3
N_BLURRED, BLUR_RADIUS = 100, 0.8
OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures", "shapes")


def main():
    img_dir, blur_dir = os.path.join(OUT, "images"), os.path.join(OUT, "blurred")
    os.makedirs(img_dir, exist_ok=True)
    os.makedirs(blur_dir, exist_ok=True)
    shorts, descs, scenes = [], [], []
    for i in range(N):
        scene, img, short, desc = world.sample(SEED, i)
        Image.fromarray(img).save(os.path.join(img_dir, f"{i:05d}.png"), optimize=True)
        if i < N_BLURRED:
            Image.fromarray(img).filter(ImageFilter.GaussianBlur(BLUR_RADIUS)).save(
                os.path.join(blur_dir, f"{i:05d}.png"), optimize=True)
        shorts.append(short); descs.append(desc)
        scenes.append([{k: o[k] for k in ("shape", "colour", "size", "cell")} for o in scene])
    with open(os.path.join(OUT, "short.txt"), "w") as f:
        f.write("\n".join(shorts) + "\n")
    with open(os.path.join(OUT, "descriptive.txt"), "w") as f:
        f.write("\n".join(descs) + "\n")
    with open(os.path.join(OUT, "scenes.json"), "w") as f:
        json.dump(scenes, f)


if __name__ == "__main__":
    main()
