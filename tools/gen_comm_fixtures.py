#!/usr/bin/env python3
"""Collective fixtures for tests/unit/test_comm.c: per-rank inputs and what the collectives
must give, computed by numpy (never by Tessera's comm).

For up to 4 ranks:
  x{L}_r{R}.npy        float32 input of rank R, length L (0, 1, 13, 1001, 10007: odd sizes,
                       small and over MPI's eager/segmented thresholds)
  sum{L}_np{N}.npy     float32 sum over ranks 0..N-1 (summed in float64, rounded once)
  int4099_r{R}.npy     small integers as float32; int4099_np{N}.npy their exact sum
  bytes_r{R}.npy       37 uint8 of rank R; gather_bytes_np{N}.npy the concatenation, rank order
  gather13_np{N}.npy   the x13 of ranks 0..N-1 concatenated (float all-gather)
  bcast.npy            100003 uint8 that the last rank broadcasts
  split_{mod2|div2}_np{N}_c{C}.npy   sum of x1001 over the ranks of group C when the world of
                       N ranks is split by color R % 2 or R // 2
Run: /work/main/.venv/bin/python tools/gen_comm_fixtures.py
"""
import os

import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "comm")
os.makedirs(OUT, exist_ok=True)
rng = np.random.default_rng(1315)
RANKS = 4
LENGTHS = [0, 1, 13, 1001, 10007]


def save(name, a):
    np.save(os.path.join(OUT, name + ".npy"), a)


def float_sum(arrays):
    return np.sum(np.stack([a.astype(np.float64) for a in arrays]), axis=0).astype(np.float32)


for n in LENGTHS:
    xs = [rng.standard_normal(n).astype(np.float32) * (r + 1) for r in range(RANKS)]
    for r, x in enumerate(xs):
        save(f"x{n}_r{r}", x)
    for world in (2, 3, 4):
        save(f"sum{n}_np{world}", float_sum(xs[:world]))
    if n == 13:
        for world in (2, 3, 4):
            save(f"gather13_np{world}", np.concatenate(xs[:world]))
    if n == 1001:
        for world in (2, 3, 4):
            for kind, color_of in (("mod2", lambda r: r % 2), ("div2", lambda r: r // 2)):
                for color in sorted({color_of(r) for r in range(world)}):
                    members = [xs[r] for r in range(world) if color_of(r) == color]
                    save(f"split_{kind}_np{world}_c{color}", float_sum(members))

ints = [rng.integers(-1000, 1000, 4099).astype(np.float32) for _ in range(RANKS)]
for r, x in enumerate(ints):
    save(f"int4099_r{r}", x)
for world in (2, 3, 4):
    save(f"int4099_np{world}", np.sum(np.stack(ints[:world]), axis=0, dtype=np.int64).astype(np.float32))

chunks = [rng.integers(0, 256, 37).astype(np.uint8) for _ in range(RANKS)]
for r, b in enumerate(chunks):
    save(f"bytes_r{r}", b)
for world in (2, 3, 4):
    save(f"gather_bytes_np{world}", np.concatenate(chunks[:world]))

save("bcast", rng.integers(0, 256, 100003).astype(np.uint8))
print("wrote", OUT)
