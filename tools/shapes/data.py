"""data.py — the training set: N samples of the shapes world, cached as one .npz.

Images are uint8 [N, 48, 48, 3]; captions are parallel lists. The cache lives outside the
repo (default /tmp/tessera-shapes) and is rebuilt from (seed, n, world.py's text) when missing.
"""
import hashlib
import os

import numpy as np

import world

CACHE = os.environ.get("SHAPES_CACHE", "/tmp/tessera-shapes")
TRAIN_SEED = 1        # training stream; the held-out prompts use seed 2 (see ablation.py)


def load(n, seed=TRAIN_SEED):
    os.makedirs(CACHE, exist_ok=True)
    # Keyed on world.py's text too, so a changed generator never reuses a stale cache.
    version = hashlib.sha256(open(world.__file__, "rb").read()).hexdigest()[:10]
    path = os.path.join(CACHE, f"world_seed{seed}_n{n}_{version}.npz")
    if not os.path.exists(path):
        images, shorts, descs = [], [], []
        for i in range(n):
            _, img, short, desc = world.sample(seed, i)
            images.append(img); shorts.append(short); descs.append(desc)
        np.savez(path + ".tmp.npz", images=np.stack(images), short=np.array(shorts), descriptive=np.array(descs))
        os.replace(path + ".tmp.npz", path)
    d = np.load(path)
    return d["images"], list(d["short"]), list(d["descriptive"])
