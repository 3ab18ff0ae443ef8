#!/usr/bin/env python3
"""gen_llm_quant_fixtures.py — reference fixtures for every GGUF block type llama.cpp's
quantize presets write (tests/fixtures/llm_quant/).

  quant_rows.gguf / .json / .npy
      Rows in each of F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K,
      Q5_K, Q6_K, IQ4_NL, IQ4_XS. The block bytes are random (every bit pattern of the
      packed fields gets exercised, which a quantizer would not do), with the f16 scale
      fields set to finite values of a sane size. The .npy holds the gguf package's
      gguf.quants.dequantize of those bytes (float32, to be matched bit for bit); the
      .json, the dot products of each row with a random x in float64.
  <family>_<type>.gguf + .logits.npy, cases.json
      Tiny random Llama / Qwen2 models (transformers) whose matrices are stored in one of
      the new types (random blocks as above), and qwen2_q4_k_m_384.gguf: a Qwen2 model
      384 wide laid out as llama.cpp's Q4_K_M preset lays out such a model (rows not a
      multiple of 256 fall back to Q5_0 / Q8_0; ffn_down in Q6_K and Q4_K). References:
      transformers in float32 on the gguf package's dequantization of the stored bytes,
      as in tools/gen_llm_fixtures.py (whose helpers this script uses).

Run from the repository root:  python3 tools/gen_llm_quant_fixtures.py
"""
import json
import os
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as QT

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
base = None  # gen_llm_fixtures (imports transformers), loaded by main()

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "llm_quant")

# Per type: block bytes and the f16 fields (byte offset, largest magnitude, may be negative)
# chosen so that dequantized values stay within about +-0.2.
F16_FIELDS = {
    QT.Q8_0: [(0, 0.2 / 127, True)],
    QT.Q4_0: [(0, 0.2 / 8, True)],
    QT.Q4_1: [(0, 0.2 / 15, False), (2, 0.1, True)],
    QT.Q5_0: [(0, 0.2 / 16, True)],
    QT.Q5_1: [(0, 0.2 / 31, False), (2, 0.1, True)],
    QT.Q2_K: [(80, 0.2 / 45, False), (82, 0.1 / 15, False)],
    QT.Q3_K: [(108, 0.2 / 128, True)],
    QT.Q4_K: [(0, 0.2 / 945, False), (2, 0.1 / 63, False)],
    QT.Q5_K: [(0, 0.2 / 1953, False), (2, 0.1 / 63, False)],
    QT.Q6_K: [(208, 0.2 / 4096, True)],
    QT.IQ4_NL: [(0, 0.2 / 127, True)],
    QT.IQ4_XS: [(0, 0.2 / 4064, True)],
}
ROW_TYPES = [QT.F32, QT.F16, QT.BF16, QT.Q8_0, QT.Q4_0, QT.Q4_1, QT.Q5_0, QT.Q5_1, QT.Q2_K, QT.Q3_K,
             QT.Q4_K, QT.Q5_K, QT.Q6_K, QT.IQ4_NL, QT.IQ4_XS]


def random_blocks(rng, qt, rows, cols, scale=1.0):
    """Random block bytes [rows, row bytes] of type qt with sane f16 scales, and the
    gguf package's dequantization of them (float32 [rows, cols])."""
    block_size, type_size = gguf.GGML_QUANT_SIZES[qt]
    assert cols % block_size == 0, (qt.name, cols)
    nb = rows * cols // block_size
    data = rng.integers(0, 256, size=(nb, type_size), dtype=np.uint8)
    for off, mag, signed in F16_FIELDS[qt]:
        v = rng.uniform(0.25, 1.0, size=nb) * mag * scale
        if signed:
            v *= rng.choice([-1.0, 1.0], size=nb)
        data[:, off:off + 2] = v.astype(np.float16).view(np.uint8).reshape(nb, 2)
    data = data.reshape(rows, -1)
    deq = gguf.quants.dequantize(data, qt).reshape(rows, cols).astype(np.float32)
    assert np.isfinite(deq).all()
    return data, deq


def store(rng, w, qt):
    """-> (array for GGUFWriter, float32 values the file holds) for a [rows, cols] matrix."""
    if qt == QT.F32:
        return w.astype(np.float32), w.astype(np.float32)
    if qt == QT.F16:
        h = w.astype(np.float16)
        return h, h.astype(np.float32)
    if qt == QT.BF16:
        data = gguf.quants.quantize(w.astype(np.float32), QT.BF16)
        return data, gguf.quants.dequantize(data, QT.BF16).reshape(w.shape).astype(np.float32)
    return random_blocks(rng, qt, w.shape[0], w.shape[1])


def add(writer, name, data, qt):
    if qt in (QT.F32, QT.F16):
        writer.add_tensor(name, data)
    else:
        writer.add_tensor(name, data, raw_dtype=qt)


def write_quant_rows(rng):
    cols, rows = 512, 3
    x = rng.standard_normal(cols).astype(np.float32)
    w = gguf.GGUFWriter(os.path.join(OUT, "quant_rows.gguf"), "tessera-quant-test")
    deqs, doc = [], {"generated_by": "tools/gen_llm_quant_fixtures.py", "cols": cols, "rows": rows,
                     "x": x.astype(np.float64).tolist(), "types": []}
    for qt in ROW_TYPES:
        m = (rng.standard_normal((rows, cols)) * rng.uniform(0.01, 3.0, size=(rows, 1))).astype(np.float32)
        data, deq = store(rng, m, qt)
        add(w, qt.name, data, qt)
        deqs.append(deq)
        doc["types"].append({"name": qt.name, "dot": (deq.astype(np.float64) @ x.astype(np.float64)).tolist()})
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    np.save(os.path.join(OUT, "quant_rows.npy"), np.stack(deqs).astype(np.float32))
    with open(os.path.join(OUT, "quant_rows.json"), "w") as f:
        json.dump(doc, f)


def q4_k_m_type(name, layer, cols):
    """llama.cpp's Q4_K_M choice for a small model (llama-quant.cpp), with its fallback
    for rows that are not a multiple of 256: Q4_K -> Q5_0, Q6_K -> Q8_0."""
    want = QT.Q4_K
    if name.endswith("v_proj.weight") or (name.endswith("down_proj.weight") and layer == 0):
        want = QT.Q6_K
    if cols % 256:
        return {QT.Q4_K: QT.Q5_0, QT.Q6_K: QT.Q8_0}[want]
    return want


def write_model(rng, path, family, model, type_of):
    """Like gen_llm_fixtures.write_gguf, each matrix in type_of(hf_name, layer, cols)."""
    cfg = model.config
    arch = "llama" if family == "llama" else "qwen2"
    head_dim = cfg.hidden_size // cfg.num_attention_heads
    w = gguf.GGUFWriter(path, arch)
    w.add_name(f"tessera-test-{family}")
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    rp = getattr(cfg, "rope_parameters", None) or {}
    w.add_rope_freq_base(float(rp.get("rope_theta", getattr(cfg, "rope_theta", 10000.0))))
    w.add_rope_dimension_count(head_dim)
    w.add_vocab_size(cfg.vocab_size)
    w.add_tokenizer_model("gpt2")
    w.add_token_list([f"<t{i}>" for i in range(cfg.vocab_size)])
    w.add_bos_token_id(cfg.bos_token_id)
    w.add_eos_token_id(cfg.eos_token_id)
    factors = base.rope_factors(cfg, head_dim)
    if factors is not None:
        w.add_tensor("rope_freqs.weight", factors)
    held = {}
    for name, p in model.state_dict().items():
        if name == "lm_head.weight" and cfg.tie_word_embeddings:
            continue
        t = p.detach().float().numpy()
        if t.ndim == 1:
            w.add_tensor(base.gguf_name(name), t.astype(np.float32))
            held[name] = t
            continue
        layer = int(name.split(".")[2]) if name.startswith("model.layers.") else -1
        qt = type_of(name, layer, t.shape[1])
        permuted = arch == "llama" and (name.endswith("q_proj.weight") or name.endswith("k_proj.weight"))
        data, deq = store(rng, t, qt)    # the stored (permuted, for llama) matrix
        add(w, base.gguf_name(name), data, qt)
        if permuted:  # the reference runs HF's layout: undo llama.cpp's q/k row permutation
            n = cfg.num_attention_heads if name.endswith("q_proj.weight") else cfg.num_key_value_heads
            deq = deq.reshape(n, deq.shape[0] // n // 2, 2, -1).swapaxes(1, 2).reshape(t.shape)
        held[name] = deq
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    if cfg.tie_word_embeddings:
        held["lm_head.weight"] = held["model.embed_tokens.weight"]
    return held


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(20261128)
    write_quant_rows(rng)
    if "--rows-only" in sys.argv:
        return
    global base
    import gen_llm_fixtures as base  # noqa: E402
    small = {"llama": base.llama_config(64, 128, 256), "qwen2": base.qwen2_config(64, 128, 256)}
    kq = {"llama": base.llama_config(256, 256, 256), "qwen2": base.qwen2_config(256, 256, 256)}
    plan = [("llama", QT.Q4_1), ("qwen2", QT.Q5_0), ("llama", QT.Q5_1), ("qwen2", QT.IQ4_NL),
            ("qwen2", QT.Q2_K), ("llama", QT.Q3_K), ("qwen2", QT.Q5_K), ("llama", QT.IQ4_XS)]
    cases = []
    for i, (family, qt) in enumerate(plan):
        cfg = (kq if gguf.GGML_QUANT_SIZES[qt][0] == 256 else small)[family]
        cases.append(make_case(rng, family, cfg, 100 + i, f"{family}_{qt.name.lower()}", qt.name,
                               lambda name, layer, cols, qt=qt: qt))
    # Qwen2 384 wide as llama.cpp's Q4_K_M lays it out (Qwen2.5-0.5B is 896 wide, SmolLM2 576/960)
    cfg = base.qwen2_config(384, 512, 256)
    cases.append(make_case(rng, "qwen2", cfg, 200, "qwen2_q4_k_m_384", "Q4_K_M", q4_k_m_type))
    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump({"generated_by": "tools/gen_llm_quant_fixtures.py", "cases": cases}, f, indent=1)


def make_case(rng, family, cfg, seed, name, type_label, type_of):
    """Writes one model; retries seeds until the greedy continuations are far from ties."""
    for attempt in range(20):
        model = base.make_model(family, cfg, seed + 1000 * attempt)
        path = os.path.join(OUT, name + ".gguf")
        held = write_model(rng, path, family, model, type_of)
        prompt = rng.integers(3, cfg.vocab_size, size=12).tolist()
        greedy_prompts = [rng.integers(3, cfg.vocab_size, size=n).tolist() for n in (1, 5, 11)]
        logits, conts, margin = base.reference(family, model.config, held, prompt, greedy_prompts, 12)
        if margin > 1e-3:
            break
    np.save(os.path.join(OUT, name + ".logits.npy"), logits.astype(np.float32))
    types = sorted({t for t in (gguf.GGUFReader(path).tensors) for t in [t.tensor_type.name]})
    print(f"{name}: types {types}, greedy margin {margin:.4f}, {os.path.getsize(path)} bytes")
    return {"name": name, "model": name + ".gguf", "family": family, "type": type_label, "prompt": prompt,
            "logits": name + ".logits.npy",
            "greedy": [{"prompt": p, "continuation": c} for p, c in zip(greedy_prompts, conts)],
            "greedy_min_top2_margin": margin, "tensor_types": types}


if __name__ == "__main__":
    main()
