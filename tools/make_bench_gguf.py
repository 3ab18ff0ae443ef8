#!/usr/bin/env python3
"""make_bench_gguf.py — a random-weight, Qwen2-0.5B-shaped GGUF for `tessera bench llm`.

Qwen2.5-0.5B's shapes (hidden 896, 24 layers, 14 heads of 64, 2 KV heads, feed-forward
4864, vocabulary 151936, tied embeddings, q/k/v biases), random N(0, 0.02) weights, every
matrix in the chosen type (default Q8_0) via gguf.quants.quantize, written with
gguf.GGUFWriter under llama.cpp's names. About 0.5 GB; made at bench time, never committed.

    python3 tools/make_bench_gguf.py build/bench/qwen2-0.5b-random-q8_0.gguf [--type Q8_0]
"""
import argparse
import os

import numpy as np
import gguf
from gguf import GGMLQuantizationType as QT

SHAPE = dict(hidden=896, layers=24, heads=14, kv_heads=2, ffn=4864, vocab=151936, ctx=32768)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--type", default="Q8_0", choices=["F32", "F16", "BF16", "Q8_0", "Q4_0"])
    args = ap.parse_args()
    qt = QT[args.type]
    s = SHAPE
    hd = s["hidden"] // s["heads"]
    rng = np.random.default_rng(0)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    w = gguf.GGUFWriter(args.out, "qwen2")
    w.add_name("random-qwen2-0.5b-shape")
    w.add_context_length(s["ctx"])
    w.add_embedding_length(s["hidden"])
    w.add_block_count(s["layers"])
    w.add_feed_forward_length(s["ffn"])
    w.add_head_count(s["heads"])
    w.add_head_count_kv(s["kv_heads"])
    w.add_layer_norm_rms_eps(1e-6)
    w.add_rope_freq_base(1000000.0)
    w.add_bos_token_id(151643)
    w.add_eos_token_id(151645)

    def matrix(name, rows, cols):
        m = (rng.standard_normal((rows, cols), dtype=np.float32) * 0.02)
        if qt == QT.F32:
            w.add_tensor(name, m)
        elif qt == QT.F16:
            w.add_tensor(name, m.astype(np.float16))
        else:
            w.add_tensor(name, gguf.quants.quantize(m, qt), raw_dtype=qt)

    def vector(name, n, base):
        w.add_tensor(name, (base + 0.02 * rng.standard_normal(n, dtype=np.float32)).astype(np.float32))

    D, kv = s["hidden"], s["kv_heads"] * hd
    matrix("token_embd.weight", s["vocab"], D)
    vector("output_norm.weight", D, 1.0)
    for l in range(s["layers"]):
        p = f"blk.{l}."
        vector(p + "attn_norm.weight", D, 1.0)
        matrix(p + "attn_q.weight", D, D)
        matrix(p + "attn_k.weight", kv, D)
        matrix(p + "attn_v.weight", kv, D)
        vector(p + "attn_q.bias", D, 0.0)
        vector(p + "attn_k.bias", kv, 0.0)
        vector(p + "attn_v.bias", kv, 0.0)
        matrix(p + "attn_output.weight", D, D)
        vector(p + "ffn_norm.weight", D, 1.0)
        matrix(p + "ffn_gate.weight", s["ffn"], D)
        matrix(p + "ffn_up.weight", s["ffn"], D)
        matrix(p + "ffn_down.weight", D, s["ffn"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"{args.out}: {os.path.getsize(args.out) / 1e6:.0f} MB")


if __name__ == "__main__":
    main()
