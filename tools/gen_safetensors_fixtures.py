#!/usr/bin/env python3
"""Fixtures for the safetensors reader, written by the reference `safetensors` library.

good.safetensors holds tensors of several dtypes and metadata; each tensor's values are
also saved as <name>.npy (float32, by numpy) so the C test compares what it reads against
what the reference wrote. Run: python3 tools/gen_safetensors_fixtures.py
"""
import os
import numpy as np
import torch
from safetensors.torch import save_file

out = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "safetensors")
os.makedirs(out, exist_ok=True)
g = torch.Generator().manual_seed(7)
tensors = {
    "conv.weight": torch.randn(4, 3, 3, 3, generator=g),                 # F32, 4-D
    "norm.bias": torch.randn(5, generator=g).half(),                     # F16
    "proj.weight": torch.randn(6, 7, generator=g).bfloat16(),            # BF16
    "position_ids": torch.arange(11, dtype=torch.int64).reshape(1, 11),  # I64
    "scalar": torch.tensor(3.5),                                         # 0-D
}
save_file(tensors, os.path.join(out, "good.safetensors"), metadata={"format": "pt", "note": "fixture"})
for name, t in tensors.items():
    np.save(os.path.join(out, name + ".npy"), t.float().numpy().reshape(t.shape if t.dim() else (1,)))
print("wrote", out)
