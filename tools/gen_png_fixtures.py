#!/usr/bin/env python3
"""Fixtures for tests/unit/test_image_png.c: PNGs written the way the A1111 web UI writes
them (Pillow, PngInfo.add_text("parameters", ...)), with their pixels as .npy.
  tests/fixtures/image/a1111.png        ASCII parameters -> tEXt
  tests/fixtures/image/a1111_latin1.png Latin-1 prompt -> tEXt in Latin-1 (Pillow's choice)
  tests/fixtures/image/a1111_utf8.png   prompt beyond Latin-1 -> iTXt in UTF-8
  tests/fixtures/image/a1111_pixels.npy uint8 [H, W, 3]
Run: python3 tools/gen_png_fixtures.py
"""
import os
import numpy as np
from PIL import Image, PngImagePlugin

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "image")
os.makedirs(OUT, exist_ok=True)
rng = np.random.default_rng(5)
pixels = rng.integers(0, 256, size=(24, 40, 3), dtype=np.uint8)
np.save(os.path.join(OUT, "a1111_pixels.npy"), pixels)
for name, prompt in (("a1111.png", "a photo of a cat, sitting on a mat"), ("a1111_latin1.png", "café, crème brûlée"),
                     ("a1111_utf8.png", "猫 café")):
    text = (f"{prompt}\nNegative prompt: blurry, low quality\n"
            "Steps: 20, Sampler: Euler a, Schedule type: Karras, CFG scale: 7.5, Seed: 1234567890123, "
            "Size: 40x24, Model hash: abcdef, Model: tiny-sd, Lora hashes: \"a: 1, b: 2\", Clip skip: 2")
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", text)
    Image.fromarray(pixels).save(os.path.join(OUT, name), pnginfo=info)
