#!/usr/bin/env python3
"""make_bench_llava.py — a random-weight LLaVA folder for `tessera bench caption`.

Writes a LlavaForConditionalGeneration folder (config.json + model.safetensors, F16 by
default) with a CLIP ViT-L/14-336 vision tower (24 layers, width 1024, 16 heads, 577
positions) and a Qwen2-0.5B-shaped LLM (24 layers, width 896, 14 heads / 2 KV heads,
feed-forward 4864, vocabulary 151936, tied embeddings), joined by LLaVA-1.5's two-layer
projector (1024 -> 896 -> 896), in transformers 5's tensor names. The weights are random
(numpy, fixed seed): the benchmark measures speed, not captions. No tokenizer is written.

    .venv/bin/python tools/make_bench_llava.py /tmp/llava-bench [--dtype f32] [--small]

--small writes ViT-B/16-224 + a 4-layer 0.5B-width LLM, for a quick run on few cores.
"""
import argparse
import json
import os

import numpy as np
from safetensors.numpy import save_file


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--dtype", default="f16", choices=["f16", "f32"])
    ap.add_argument("--small", action="store_true")
    a = ap.parse_args()
    dt = np.float16 if a.dtype == "f16" else np.float32
    rng = np.random.default_rng(0)
    if a.small:
        v = dict(hidden=768, inter=3072, layers=12, heads=12, image=224, patch=16)
        t = dict(hidden=896, inter=4864, layers=4, heads=14, kv=2, vocab=151936)
    else:
        v = dict(hidden=1024, inter=4096, layers=24, heads=16, image=336, patch=14)
        t = dict(hidden=896, inter=4864, layers=24, heads=14, kv=2, vocab=151936)

    def w(*shape, scale=None):
        fan_in = shape[-1] if len(shape) > 1 else 1
        s = scale if scale is not None else 1.0 / np.sqrt(fan_in)
        return (rng.standard_normal(shape, dtype=np.float32) * s).astype(dt)

    T = {}
    vp, n_pos = "vision_tower.", (v["image"] // v["patch"]) ** 2 + 1
    D, I = v["hidden"], v["inter"]
    T[vp + "embeddings.patch_embedding.weight"] = w(D, 3, v["patch"], v["patch"], scale=0.02)
    T[vp + "embeddings.class_embedding"] = w(D, scale=0.02)
    T[vp + "embeddings.position_embedding.weight"] = w(n_pos, D, scale=0.02)
    for n in ("pre_layrnorm", "post_layernorm"):
        T[vp + n + ".weight"] = np.ones(D, dt)
        T[vp + n + ".bias"] = np.zeros(D, dt)
    for l in range(v["layers"]):
        p = f"{vp}encoder.layers.{l}."
        for n in ("q_proj", "k_proj", "v_proj", "out_proj"):
            T[p + f"self_attn.{n}.weight"] = w(D, D)
            T[p + f"self_attn.{n}.bias"] = np.zeros(D, dt)
        T[p + "mlp.fc1.weight"], T[p + "mlp.fc1.bias"] = w(I, D), np.zeros(I, dt)
        T[p + "mlp.fc2.weight"], T[p + "mlp.fc2.bias"] = w(D, I), np.zeros(D, dt)
        for n in ("layer_norm1", "layer_norm2"):
            T[p + n + ".weight"], T[p + n + ".bias"] = np.ones(D, dt), np.zeros(D, dt)
    H = t["hidden"]
    T["multi_modal_projector.linear_1.weight"], T["multi_modal_projector.linear_1.bias"] = w(H, D), np.zeros(H, dt)
    T["multi_modal_projector.linear_2.weight"], T["multi_modal_projector.linear_2.bias"] = w(H, H), np.zeros(H, dt)
    lp, hd = "language_model.model.", H // t["heads"]
    T[lp + "embed_tokens.weight"] = w(t["vocab"], H, scale=0.02)
    T[lp + "norm.weight"] = np.ones(H, dt)
    for l in range(t["layers"]):
        p = f"{lp}layers.{l}."
        T[p + "input_layernorm.weight"] = np.ones(H, dt)
        T[p + "post_attention_layernorm.weight"] = np.ones(H, dt)
        T[p + "self_attn.q_proj.weight"], T[p + "self_attn.q_proj.bias"] = w(H, H), np.zeros(H, dt)
        T[p + "self_attn.k_proj.weight"], T[p + "self_attn.k_proj.bias"] = w(t["kv"] * hd, H), np.zeros(t["kv"] * hd, dt)
        T[p + "self_attn.v_proj.weight"], T[p + "self_attn.v_proj.bias"] = w(t["kv"] * hd, H), np.zeros(t["kv"] * hd, dt)
        T[p + "self_attn.o_proj.weight"] = w(H, H)
        T[p + "mlp.gate_proj.weight"], T[p + "mlp.up_proj.weight"] = w(t["inter"], H), w(t["inter"], H)
        T[p + "mlp.down_proj.weight"] = w(H, t["inter"])
    os.makedirs(a.out, exist_ok=True)
    save_file(T, os.path.join(a.out, "model.safetensors"))
    cfg = {"architectures": ["LlavaForConditionalGeneration"], "model_type": "llava", "image_token_index": 151646,
           "projector_hidden_act": "gelu", "vision_feature_layer": -2, "vision_feature_select_strategy": "default",
           "vision_config": {"model_type": "clip_vision_model", "hidden_size": D, "intermediate_size": I,
                             "num_hidden_layers": v["layers"], "num_attention_heads": v["heads"],
                             "image_size": v["image"], "patch_size": v["patch"], "hidden_act": "quick_gelu"},
           "text_config": {"model_type": "qwen2", "hidden_size": H, "intermediate_size": t["inter"],
                           "num_hidden_layers": t["layers"], "num_attention_heads": t["heads"],
                           "num_key_value_heads": t["kv"], "vocab_size": t["vocab"], "max_position_embeddings": 32768,
                           "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "tie_word_embeddings": True,
                           "bos_token_id": 151643, "eos_token_id": 151645}}
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    n = sum(x.size for x in T.values())
    print(f"{a.out}: {n / 1e6:.0f}M parameters ({a.dtype})")


if __name__ == "__main__":
    main()
