#!/usr/bin/env python3
"""Fixtures for the VAE parity test (tests/parity/test_vae.c), made with diffusers.

A tiny random AutoencoderKL in SD's real architecture (4 levels, factor 8, GroupNorm 32,
single-head mid-block attention) is saved in both layouts Tessera reads:
  tests/fixtures/vae/diffusers/vae/{config.json,diffusion_pytorch_model.safetensors}
  tests/fixtures/vae/compvis_vae.safetensors   (first_stage_model.* keys, 1x1 conv attention)
The CompVis file is checked by converting it back with diffusers' own single-file converter.
Weights are rounded to fp16 and stored as fp16; expected outputs are computed in fp32:
  decode_latent.npy  -> decode_expected.npy       (vae.decode, untiled)
  decode_tiled_expected.npy                        (vae.tiled_decode, 64-pixel tiles)
  encode_input.npy   -> encode_mean_expected.npy   (vae.encode(x).latent_dist.mean)
Run: python3 tools/gen_vae_fixtures.py   (seeded; a few seconds on one core)
"""
import json
import os
import sys

import numpy as np
import torch
from diffusers import AutoencoderKL
from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint
from safetensors.torch import save_file

torch.set_num_threads(1)
torch.manual_seed(1234)
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "vae")

BLOCKS = (32, 32, 32, 64)
CONFIG = dict(
    in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1, norm_num_groups=32,
    block_out_channels=BLOCKS, down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4, sample_size=64, scaling_factor=0.18215,
)


def diffusers_to_compvis(sd):
    """diffusers AutoencoderKL keys -> CompVis first_stage_model.* keys (inverse of
    diffusers' convert_ldm_vae_checkpoint; checked against it below)."""
    n = len(BLOCKS)
    out = {}
    for k, v in sd.items():
        c = k
        for side in ("encoder", "decoder"):
            if not c.startswith(side + "."):
                continue
            rest = c[len(side) + 1:]
            parts = rest.split(".")
            if parts[0] == "down_blocks":
                i = parts[1]
                if parts[2] == "resnets":
                    rest = f"down.{i}.block.{parts[3]}." + ".".join(parts[4:])
                else:  # downsamplers.0.conv.*
                    rest = f"down.{i}.downsample." + ".".join(parts[4:])
            elif parts[0] == "up_blocks":
                i = n - 1 - int(parts[1])
                if parts[2] == "resnets":
                    rest = f"up.{i}.block.{parts[3]}." + ".".join(parts[4:])
                else:
                    rest = f"up.{i}.upsample." + ".".join(parts[4:])
            elif parts[0] == "mid_block":
                if parts[1] == "resnets":
                    rest = f"mid.block_{int(parts[2]) + 1}." + ".".join(parts[3:])
                else:  # attentions.0.X
                    name = ".".join(parts[3:])
                    table = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
                    for a, b in table.items():
                        if name.startswith(a + "."):
                            name = b + name[len(a):]
                            break
                    rest = "mid.attn_1." + name
                    if v.ndim == 2:
                        v = v[:, :, None, None]
            elif parts[0] == "conv_norm_out":
                rest = "norm_out." + ".".join(parts[1:])
            rest = rest.replace("conv_shortcut", "nin_shortcut")
            c = side + "." + rest
        out["first_stage_model." + c] = v.contiguous()
    return out


def main():
    os.makedirs(os.path.join(OUT, "diffusers", "vae"), exist_ok=True)
    vae = AutoencoderKL(**CONFIG).eval()
    with torch.no_grad():
        for name, p in vae.named_parameters():   # random, GroupNorm affine included
            if p.ndim > 1:
                fan_in = p[0].numel()
                p.copy_(torch.randn_like(p) / fan_in ** 0.5)
            elif "norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            else:
                p.copy_(0.1 * torch.randn_like(p))
        vae.half().float()                  # the values the fp16 files hold exactly
    vae.save_pretrained(os.path.join(OUT, "diffusers", "vae"), safe_serialization=True)
    # store fp16 weights (half the size; exercises the fp16 path)
    sd = {k: v.half() for k, v in vae.state_dict().items()}
    save_file(sd, os.path.join(OUT, "diffusers", "vae", "diffusion_pytorch_model.safetensors"))

    compvis = diffusers_to_compvis(vae.state_dict())
    back = convert_ldm_vae_checkpoint(compvis, dict(vae.config))
    ref = vae.state_dict()
    assert set(back) == set(ref), set(back) ^ set(ref)
    for k in ref:
        assert torch.equal(back[k].reshape(ref[k].shape), ref[k]), k
    save_file({k: v.half() for k, v in compvis.items()}, os.path.join(OUT, "compvis_vae.safetensors"))

    g = torch.Generator().manual_seed(7)
    z = torch.randn(1, 4, 12, 20, generator=g)
    x = torch.rand(1, 3, 64, 96, generator=g) * 2 - 1
    with torch.no_grad():
        dec = vae.decode(z).sample
        vae.enable_tiling()
        vae.tile_sample_min_size = 64
        vae.tile_latent_min_size = 8
        dec_tiled = vae.decode(z).sample
        vae.disable_tiling()
        mean = vae.encode(x).latent_dist.mean
    save = lambda n, t: np.save(os.path.join(OUT, n), t.numpy().astype(np.float32))
    save("decode_latent.npy", z)
    save("decode_expected.npy", dec)
    save("decode_tiled_expected.npy", dec_tiled)
    save("encode_input.npy", x)
    save("encode_mean_expected.npy", mean)
    with open(os.path.join(OUT, "tiling.json"), "w") as f:
        json.dump({"tile_sample_min_size": 64, "tile_latent_min_size": 8, "tile_overlap_factor": 0.25}, f)
    for root, _, files in os.walk(OUT):
        for n in files:
            os.chmod(os.path.join(root, n), 0o644)
    diff = (dec - dec_tiled).abs().max().item()
    print(f"params {sum(p.numel() for p in vae.parameters())}, tiled-vs-untiled max diff {diff:.4f}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
