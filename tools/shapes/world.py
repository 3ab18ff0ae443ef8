"""world.py — the shapes world: seeded scenes of 1-3 flat shapes, their images and captions.

A scene is a list of objects, each (shape, colour, size, cell) with cell in a 3x3 grid and
at most one object per cell, on a white background. Every scene has two captions:
  short        the way people write prompts: names some objects, mostly shape and colour,
               counts repeated ones ("two red circles and a square")
  descriptive  names every object with every attribute, in a fixed grammar:
               "A large red circle in the top left, a small blue square in the bottom
                right, on a white background."
The grammar is the contract with the C scorer (eval/shapes_eval.c): keep them in step.
This file is that scorer's reference: the world's definition, written apart from the C code.

    python tools/shapes/world.py --n 8 --seed 1 --out /tmp/shapes   # writes PNGs + captions
    python tools/shapes/world.py --n 16 --seed 4 --short-prompts > demo/prompts.txt
"""
import argparse
import json
import os
import random

# numpy and PIL are imported where images are made, so that the captions and the grammar
# (expansion_check.py) need nothing but Python itself.

IMAGE_SIZE = 48                      # pixels; 16 per grid cell
CELL = IMAGE_SIZE // 3
SHAPES = ["circle", "square", "triangle"]
PLURAL = {"circle": "circles", "square": "squares", "triangle": "triangles"}
COLOURS = {                          # flat RGB; the scorer uses the same palette
    "red": (220, 30, 30),
    "green": (30, 160, 50),
    "blue": (30, 60, 220),
    "yellow": (240, 210, 20),
    "purple": (140, 50, 180),
    "orange": (245, 130, 20),
}
BACKGROUND = (255, 255, 255)
SIZES = {"small": 7, "large": 13}    # bounding-box side in pixels
ROWS = ["top", "center", "bottom"]
COLS = ["left", "center", "right"]
NUMBERS = {2: "two", 3: "three"}


def cell_name(cell):
    """0..8, row-major -> "top left", "center", "bottom center", ..."""
    row, col = ROWS[cell // 3], COLS[cell % 3]
    if row == "center" and col == "center":
        return "center"
    return f"{row} {col}"


def random_scene(rng):
    n = rng.choice([1, 2, 3])
    cells = rng.sample(range(9), n)
    scene = []
    for cell in cells:
        # Repeats of one (colour, shape) are made likelier than chance so counting is learnt.
        if scene and rng.random() < 0.25:
            shape, colour = scene[-1]["shape"], scene[-1]["colour"]
        else:
            shape, colour = rng.choice(SHAPES), rng.choice(list(COLOURS))
        scene.append({"shape": shape, "colour": colour, "size": rng.choice(list(SIZES)),
                      "cell": cell, "jx": rng.randint(-1, 1), "jy": rng.randint(-1, 1)})
    return scene


def render(scene):
    """The scene as an RGB uint8 array (IMAGE_SIZE x IMAGE_SIZE x 3), no anti-aliasing."""
    import numpy as np
    from PIL import Image, ImageDraw
    img = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), BACKGROUND)
    draw = ImageDraw.Draw(img)
    for o in scene:
        side = SIZES[o["size"]]
        cx = (o["cell"] % 3) * CELL + CELL // 2 + o["jx"]
        cy = (o["cell"] // 3) * CELL + CELL // 2 + o["jy"]
        x0, y0 = cx - side // 2, cy - side // 2
        x1, y1 = x0 + side - 1, y0 + side - 1
        fill = COLOURS[o["colour"]]
        if o["shape"] == "circle":
            draw.ellipse([x0, y0, x1, y1], fill=fill)
        elif o["shape"] == "square":
            draw.rectangle([x0, y0, x1, y1], fill=fill)
        else:
            draw.polygon([(cx, y0), (x1, y1), (x0, y1)], fill=fill)
    return np.asarray(img, dtype=np.uint8)


def descriptive_caption(scene):
    parts = [f"{'an' if o['size'][0] in 'aeiou' else 'a'} {o['size']} {o['colour']} {o['shape']} "
             f"in the {cell_name(o['cell'])}" for o in scene]
    text = ", ".join(parts) + ", on a white background."
    return text[0].upper() + text[1:]


def _matches(o, d):
    return all(o[k] == v for k, v in d.items() if k in ("shape", "colour", "size", "cell"))


def short_caption(scene, rng):
    """Names a subset of the objects with a subset of attributes; repeated descriptors
    are counted over the whole scene, so a count word is always true of the image, and
    no object is named by two phrases, so the phrases' counts add up."""
    named = scene if rng.random() < 0.6 else rng.sample(scene, rng.randint(1, len(scene)))
    phrases, seen = [], set()
    for o in named:
        d = {"shape": o["shape"]}
        if rng.random() < 0.85:
            d["colour"] = o["colour"]
        if rng.random() < 0.2:
            d["size"] = o["size"]
        if rng.random() < 0.15:
            d["cell"] = o["cell"]
        covered = {i for i, x in enumerate(scene) if _matches(x, d)}
        if covered & seen:           # each object is named once: no "two circles and a red circle"
            continue
        seen |= covered
        n = len(covered)
        words = []
        if n >= 2 and "cell" not in d:
            words.append(NUMBERS[n])
        else:
            words.append("a")
        if "size" in d:
            words.append(d["size"])
        if "colour" in d:
            words.append(d["colour"])
        words.append(PLURAL[d["shape"]] if words[0] in NUMBERS.values() else d["shape"])
        if "cell" in d:
            words.append(f"in the {cell_name(d['cell'])}")
        if words[0] == "a" and words[1][0] in "aeiou":
            words[0] = "an"
        phrases.append(" ".join(words))
    if len(phrases) == 1:
        return phrases[0]
    return ", ".join(phrases[:-1]) + " and " + phrases[-1]


def sample_captions(seed, index):
    """Like sample() without drawing the image: (scene, None, short, descriptive)."""
    rng = random.Random(seed * 1_000_003 + index)
    scene = random_scene(rng)
    return scene, None, short_caption(scene, rng), descriptive_caption(scene)


def sample(seed, index):
    """Sample `index` of the stream `seed`: (scene, image, short, descriptive). Deterministic."""
    rng = random.Random(seed * 1_000_003 + index)
    scene = random_scene(rng)
    return scene, render(scene), short_caption(scene, rng), descriptive_caption(scene)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", help="folder for NNNNN.png and captions.jsonl")
    ap.add_argument("--short-prompts", action="store_true", help="print only the short captions, one a line")
    args = ap.parse_args()
    if args.short_prompts:
        for i in range(args.n):
            print(sample_captions(args.seed, i)[2])
        return
    if not args.out:
        ap.error("--out is required")
    from PIL import Image
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "captions.jsonl"), "w") as f:
        for i in range(args.n):
            scene, img, short, desc = sample(args.seed, i)
            name = f"{i:05d}.png"
            Image.fromarray(img).save(os.path.join(args.out, name))
            f.write(json.dumps({"file": name, "short": short, "descriptive": desc, "scene": scene}) + "\n")


if __name__ == "__main__":
    main()
