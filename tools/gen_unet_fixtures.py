#!/usr/bin/env python3
"""Fixtures for the U-Net (models/diffusion/unet.c), written by diffusers' UNet2DConditionModel.

Three tiny random U-Nets in the real architectures:
  sd1   SD 1.x-like: conv proj_in/out, attention_head_dim=8 (diffusers' quirk: 8 heads),
        layers_per_block 2, a DownBlock2D/UpBlock2D level without attention
  sd2   SD 2.x-like: linear proj_in/out, heads per level (2, 4), upcast_attention
  sdxl  SDXL-like: three levels, transformer_layers_per_block (1, 2, 2) with the first
        level attention-free, addition_embed_type "text_time" (pooled text + time ids)

Each is written in both layouts and two dtypes:
  tests/fixtures/unet/<name>/unet/{config.json, diffusion_pytorch_model.safetensors}  (F32)
  tests/fixtures/unet/<name>_fp16/unet/...                                             (F16)
  tests/fixtures/unet/<name>_single.safetensors       CompVis layout, model.diffusion_model.* (F32)
  tests/fixtures/unet/<name>_single_fp16.safetensors  CompVis layout (F16)
  tests/fixtures/unet/sdxl_single_bf16.safetensors    CompVis layout (BF16)
The CompVis names come from inverting diffusers' own single-file converter; the script
checks that diffusers' convert_ldm_unet_checkpoint maps every tensor back unchanged.

Inputs (x, t, context, text_embeds, time_ids) and outputs are .npy files in
tests/fixtures/unet/<name>/: out.npy for the F32 weights, out_fp16.npy for the same model
with its weights rounded to F16 (computed in F32, as Tessera does), out_bf16.npy likewise;
x_big.npy (32x32 latents) with out_big.npy and out_big_fp16.npy exercise the threaded paths.

preset_param_counts.json: diffusers' parameter count of the full-size SD 1.5, SD 2.1 and SDXL
U-Nets (built on the meta device), against which the test checks the presets' block table.

Run: python3 tools/gen_unet_fixtures.py
"""
import json
import os
import re

import numpy as np
import torch
from diffusers import UNet2DConditionModel
from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint
from safetensors.torch import save_file

torch.set_num_threads(1)
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "unet")

COMMON = dict(sample_size=16, in_channels=4, out_channels=4, cross_attention_dim=32, norm_num_groups=8)

FAMILIES = {
    "sd1": dict(
        COMMON,
        block_out_channels=(16, 32),
        layers_per_block=2,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        attention_head_dim=8,
    ),
    "sd2": dict(
        COMMON,
        block_out_channels=(16, 32),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        upcast_attention=True,
    ),
    "sdxl": dict(
        {k: v for k, v in COMMON.items() if k != "norm_num_groups"},
        block_out_channels=(8, 16, 24),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 2, 3),
        norm_num_groups=4,
        transformer_layers_per_block=(1, 2, 2),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=24 + 6 * 8,
    ),
}
TEXT_EMBED_DIM = 24  # SDXL-like pooled text width (projection input = 24 + 6 * 8)


def diffusers_to_ldm(sd, config):
    """Inverse of diffusers' convert_ldm_unet_checkpoint for the plain U-Net."""
    lpb = config["layers_per_block"]
    fixed = {
        "time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
        "add_embedding.linear_1": "label_emb.0.0", "add_embedding.linear_2": "label_emb.0.2",
        "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2",
    }
    resnet_inner = [("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("norm2", "out_layers.0"),
                    ("conv2", "out_layers.3"), ("time_emb_proj", "emb_layers.1"),
                    ("conv_shortcut", "skip_connection")]

    def ren(kind, rest):
        if kind == "resnets":
            for a, b in resnet_inner:
                if rest.startswith(a + "."):
                    return b + rest[len(a):]
        return rest

    has_attn_up = {}
    for k in sd:
        m = re.match(r"up_blocks\.(\d+)\.attentions\.", k)
        if m:
            has_attn_up[int(m.group(1))] = True
    out = {}
    for k, v in sd.items():
        new = None
        for a, b in fixed.items():
            if k.startswith(a + "."):
                new = b + k[len(a):]
        m = re.match(r"down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.*)", k)
        if m:
            i, kind, j, rest = int(m.group(1)), m.group(2), int(m.group(3)), m.group(4)
            n = 1 + i * (lpb + 1) + j
            new = f"input_blocks.{n}.{0 if kind == 'resnets' else 1}.{ren(kind, rest)}"
        m = re.match(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.*)", k)
        if m:
            i = int(m.group(1))
            new = f"input_blocks.{1 + i * (lpb + 1) + lpb}.0.op.{m.group(2)}"
        m = re.match(r"mid_block\.(resnets|attentions)\.(\d+)\.(.*)", k)
        if m:
            j = int(m.group(2))
            new = f"middle_block.{2 * j if m.group(1) == 'resnets' else 1 + 2 * j}.{ren(m.group(1), m.group(3))}"
        m = re.match(r"up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.*)", k)
        if m:
            i, kind, j, rest = int(m.group(1)), m.group(2), int(m.group(3)), m.group(4)
            new = f"output_blocks.{i * (lpb + 1) + j}.{0 if kind == 'resnets' else 1}.{ren(kind, rest)}"
        m = re.match(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.*)", k)
        if m:
            i = int(m.group(1))
            sub = 2 if has_attn_up.get(i) else 1
            new = f"output_blocks.{i * (lpb + 1) + lpb}.{sub}.conv.{m.group(2)}"
        assert new is not None, k
        out["model.diffusion_model." + new] = v
    return out


def randomise(model, seed):
    """Replace diffusers' init (which zeroes some layers) with values that make every weight matter."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim >= 2:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g) / fan_in ** 0.5)
            elif name.endswith("weight"):
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.2 * torch.randn(p.shape, generator=g))


def inputs(name, seed):
    g = torch.Generator().manual_seed(seed)
    B, H, W, T = 2, 16, 12, 7  # non-square latents, odd token count
    x = torch.randn(B, 4, H, W, generator=g)
    t = torch.tensor([999.0, 37.5])
    ctx = torch.randn(B, T, 32, generator=g)
    d = dict(x=x, t=t, context=ctx)
    if name == "sdxl":
        d["text_embeds"] = torch.randn(B, TEXT_EMBED_DIM, generator=g)
        d["time_ids"] = torch.tensor([[1024.0, 768, 0, 16, 1024, 1024], [512, 512, 32, 0, 768, 1024]])
    return d


def run(model, d):
    kw = {}
    if "text_embeds" in d:
        kw["added_cond_kwargs"] = {"text_embeds": d["text_embeds"], "time_ids": d["time_ids"]}
    with torch.no_grad():
        return model(d["x"], d["t"], encoder_hidden_states=d["context"], **kw).sample


def save_folder(model, path, dtype):
    os.makedirs(os.path.join(path, "unet"), exist_ok=True)
    sd = {k: v.to(dtype).contiguous() for k, v in model.state_dict().items()}
    save_file(sd, os.path.join(path, "unet", "diffusion_pytorch_model.safetensors"))
    cfg = dict(model.config)
    cfg["_class_name"] = "UNet2DConditionModel"
    cfg = {k: v for k, v in cfg.items() if not k.startswith("_") or k == "_class_name"}
    with open(os.path.join(path, "unet", "config.json"), "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)


# The full-size architectures of the presets in models/diffusion/unet_config.c, as diffusers builds them.
PRESETS = {
    "sd15": dict(sample_size=64, cross_attention_dim=768, attention_head_dim=8),
    "sd21": dict(sample_size=96, cross_attention_dim=1024, attention_head_dim=[5, 10, 20, 20],
                 use_linear_projection=True, upcast_attention=True),
    "sdxl": dict(sample_size=128, cross_attention_dim=2048, attention_head_dim=[5, 10, 20],
                 use_linear_projection=True, block_out_channels=(320, 640, 1280),
                 down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                 up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
                 transformer_layers_per_block=[1, 2, 10], addition_embed_type="text_time",
                 addition_time_embed_dim=256, projection_class_embeddings_input_dim=2816),
}


def main():
    counts = {}
    with torch.device("meta"):   # shapes only: nothing is allocated
        for name, cfg in PRESETS.items():
            counts[name] = sum(p.numel() for p in UNet2DConditionModel(**cfg).parameters())
    with open(os.path.join(ROOT, "preset_param_counts.json"), "w") as f:
        json.dump(counts, f, indent=2)

    for seed, (name, cfg) in enumerate(FAMILIES.items()):
        torch.manual_seed(seed)
        model = UNet2DConditionModel(**cfg).eval()
        randomise(model, 100 + seed)
        d = inputs(name, 200 + seed)
        base = os.path.join(ROOT, name)
        os.makedirs(base, exist_ok=True)
        for k, v in d.items():
            np.save(os.path.join(base, k + ".npy"), v.numpy().astype(np.float32))
        np.save(os.path.join(base, "out.npy"), run(model, d).numpy())
        save_folder(model, base, torch.float32)
        # 32x32 latents too: large enough for the multi-threaded and per-image paths
        big = dict(d, x=torch.randn(2, 4, 32, 32, generator=torch.Generator().manual_seed(300 + seed)))
        np.save(os.path.join(base, "x_big.npy"), big["x"].numpy())
        np.save(os.path.join(base, "out_big.npy"), run(model, big).numpy())

        # The single-file layout, checked against diffusers' own converter.
        sd = model.state_dict()
        ldm = diffusers_to_ldm(sd, dict(model.config))
        back = convert_ldm_unet_checkpoint(ldm, dict(model.config))
        assert set(back) == set(sd), set(back) ^ set(sd)
        for k in sd:
            assert torch.equal(back[k], sd[k]), k
        save_file({k: v.contiguous() for k, v in ldm.items()}, os.path.join(ROOT, name + "_single.safetensors"))

        for dt, tag in [(torch.float16, "fp16"), (torch.bfloat16, "bf16")]:
            if dt == torch.bfloat16 and name != "sdxl":
                continue
            rounded = UNet2DConditionModel(**cfg).eval()
            rounded.load_state_dict({k: v.to(dt).float() for k, v in sd.items()})
            np.save(os.path.join(base, f"out_{tag}.npy"), run(rounded, d).numpy())
            if dt == torch.float16:
                np.save(os.path.join(base, "out_big_fp16.npy"), run(rounded, big).numpy())
            if dt == torch.float16:
                save_folder(rounded, base + "_fp16", dt)
            save_file({k: v.to(dt).contiguous() for k, v in ldm.items()},
                      os.path.join(ROOT, f"{name}_single_{tag}.safetensors"))
        n = sum(p.numel() for p in model.parameters())
        print(f"{name}: {n} parameters, |out| max {run(model, d).abs().max():.3f}")
    print("wrote", os.path.normpath(ROOT))


if __name__ == "__main__":
    main()
