#!/usr/bin/env python3
"""Fixtures for the tensor-parallel U-Net (models/diffusion/unet_parallel.c), by diffusers.

The tiny U-Nets of tools/gen_unet_fixtures.py do not all split by 3: their head and
GroupNorm group counts are 2, 4 and 8. This adds two whose counts divide by 2 and 3
in the SD 1.x and SDXL architectures, so tensor parallelism is tested at T = 3 (sdxl_tp at 4 too):
  sd1_tp   SD 1.x-like: conv proj_in/out, 6 heads, 6 groups, a CrossAttnDownBlock2D level
  sdxl_tp  SDXL-like: the first level attention-free, 12 heads (3 wide) at level 1 with two
           transformer layers, 12 groups, addition_embed_type "text_time"
Written as tests/fixtures/unet/<name>/unet/{config.json, diffusion_pytorch_model.safetensors}
(F32) with the inputs and diffusers' output (x, t, context[, text_embeds, time_ids], out.npy),
the way gen_unet_fixtures.py writes its families (same randomisation, same input shapes).

Run: python3 tools/gen_unet_tp_fixtures.py
"""
import os
import sys

import numpy as np
import torch
from diffusers import UNet2DConditionModel

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_unet_fixtures as g  # noqa: E402

torch.set_num_threads(1)

FAMILIES = {
    "sd1_tp": dict(
        sample_size=16, in_channels=4, out_channels=4, cross_attention_dim=32, norm_num_groups=6,
        block_out_channels=(24, 36),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        attention_head_dim=6,
    ),
    "sdxl_tp": dict(
        sample_size=16, in_channels=4, out_channels=4, cross_attention_dim=32, norm_num_groups=12,
        block_out_channels=(12, 36),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(12, 12),
        transformer_layers_per_block=(1, 2),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=g.TEXT_EMBED_DIM + 6 * 8,
    ),
}


def main():
    for seed, (name, cfg) in enumerate(FAMILIES.items()):
        torch.manual_seed(50 + seed)
        model = UNet2DConditionModel(**cfg).eval()
        g.randomise(model, 150 + seed)
        d = g.inputs("sdxl" if name.startswith("sdxl") else name, 250 + seed)
        base = os.path.join(g.ROOT, name)
        os.makedirs(base, exist_ok=True)
        for k, v in d.items():
            np.save(os.path.join(base, k + ".npy"), v.numpy().astype(np.float32))
        out = g.run(model, d)
        np.save(os.path.join(base, "out.npy"), out.numpy())
        g.save_folder(model, base, torch.float32)
        n = sum(p.numel() for p in model.parameters())
        print(f"{name}: {n} parameters, |out| max {out.abs().max():.3f}")


if __name__ == "__main__":
    main()
