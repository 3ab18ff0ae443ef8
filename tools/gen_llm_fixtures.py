#!/usr/bin/env python3
"""gen_llm_fixtures.py — reference fixtures for the LLM runtime (tests/fixtures/llm/).

Builds tiny random-weight LlamaForCausalLM and Qwen2ForCausalLM models with transformers
and writes them
  - as GGUF files in every type Tessera reads (F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K),
    with gguf.GGUFWriter, llama.cpp's tensor names and metadata keys, and llama.cpp's
    q/k row permutation for the "llama" architecture (convert_hf_to_gguf.py);
  - as Hugging Face folders (config.json + model.safetensors; Llama in F32, Qwen2 in BF16).
For each artifact it records, from transformers running in float32 on the weights exactly
as the file holds them (gguf.quants.dequantize of the stored blocks, or the F16/BF16
rounding), the logits of a prompt at every position and greedy continuations of prompts
of different lengths.

The gguf package cannot quantize Q4_K or Q6_K, so this script packs those blocks itself
(a plain min/max quantizer, not llama.cpp's search); the reference is still the gguf
package's dequantization of the bytes written, so a packing mistake here shows up as a
large quantization error (checked below) rather than a wrong expected value.

Token ids: the models are random, so prompts are random ids inside the vocabulary; the
runtime tests need only ids (tokenizers are tested separately).

Also writes the fuzz seeds in tests/fuzz/seeds/fuzz_gguf/, quant_rows.gguf + quant_rows.json: random rows in each block type, with the
gguf package's dequantization and dot products with a random vector (float64 numpy), for
the kernel unit test; and stories260K.json, the documented llama2.c outputs.

Run from the repository root:  python3 tools/gen_llm_fixtures.py
"""
import json
import os
import shutil

import numpy as np
import torch
import gguf
from gguf import GGMLQuantizationType as QT
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

torch.set_num_threads(1)
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "llm")

# ---------------------------------------------------------------------------- quantizers

def f16(x):
    return np.asarray(x, dtype=np.float32).astype(np.float16)


def quantize_q4_k(w):
    """w [rows, cols] float32, cols % 256 == 0 -> uint8 [rows, cols/256*144]."""
    rows, cols = w.shape
    b = w.reshape(-1, 8, 32).astype(np.float32)                # blocks x sub-blocks x values
    mn = np.minimum(b.min(axis=2), 0.0)
    mx = b.max(axis=2)
    scale = (mx - mn) / 15.0
    mins = -mn
    d = f16(scale.max(axis=1) / 63.0)
    dmin = f16(mins.max(axis=1) / 63.0)
    df, dminf = d.astype(np.float32), dmin.astype(np.float32)
    sc = np.where(df[:, None] > 0, np.rint(scale / np.where(df > 0, df, 1)[:, None]), 0).clip(0, 63).astype(np.uint8)
    m = np.where(dminf[:, None] > 0, np.rint(mins / np.where(dminf > 0, dminf, 1)[:, None]), 0).clip(0, 63).astype(np.uint8)
    eff_scale = df[:, None] * sc
    eff_min = dminf[:, None] * m
    q = np.where(eff_scale[:, :, None] > 0,
                 np.rint((b + eff_min[:, :, None]) / np.where(eff_scale > 0, eff_scale, 1)[:, :, None]), 0)
    q = q.clip(0, 15).astype(np.uint8)
    scales = np.zeros((b.shape[0], 12), np.uint8)
    for j in range(4):
        scales[:, j] = (sc[:, j] & 63) | ((sc[:, j + 4] >> 4) << 6)
        scales[:, j + 4] = (m[:, j] & 63) | ((m[:, j + 4] >> 4) << 6)
        scales[:, j + 8] = (sc[:, j + 4] & 0xF) | ((m[:, j + 4] & 0xF) << 4)
    qs = np.zeros((b.shape[0], 128), np.uint8)
    for c in range(4):
        qs[:, c * 32:(c + 1) * 32] = q[:, 2 * c] | (q[:, 2 * c + 1] << 4)
    blocks = np.concatenate([d.view(np.uint8).reshape(-1, 2), dmin.view(np.uint8).reshape(-1, 2), scales, qs], axis=1)
    return blocks.reshape(rows, -1)


def quantize_q6_k(w):
    """w [rows, cols] float32, cols % 256 == 0 -> uint8 [rows, cols/256*210]."""
    rows, cols = w.shape
    b = w.reshape(-1, 16, 16).astype(np.float32)
    s = np.abs(b).max(axis=2) / 31.0
    d = f16(s.max(axis=1) / 127.0)
    df = d.astype(np.float32)
    sc = np.where(df[:, None] > 0, np.rint(s / np.where(df > 0, df, 1)[:, None]), 0).clip(-128, 127).astype(np.int8)
    eff = df[:, None] * sc.astype(np.float32)
    q = np.where(eff[:, :, None] != 0, np.rint(b / np.where(eff != 0, eff, 1)[:, :, None]), 0)
    q = (q.clip(-32, 31) + 32).astype(np.uint8).reshape(-1, 256)
    ql = np.zeros((q.shape[0], 128), np.uint8)
    qh = np.zeros((q.shape[0], 64), np.uint8)
    for h in range(2):
        for k in range(4):
            vals = q[:, 128 * h + 32 * k:128 * h + 32 * k + 32]
            lo = vals & 0xF
            at = 64 * h + 32 * (k & 1)
            ql[:, at:at + 32] |= lo if k < 2 else (lo << 4)
            qh[:, 32 * h:32 * h + 32] |= (vals >> 4) << (2 * k)
    blocks = np.concatenate([ql, qh, sc.view(np.uint8), d.view(np.uint8).reshape(-1, 2)], axis=1)
    return blocks.reshape(rows, -1)


def quantize(w, qt):
    """-> (stored array for GGUFWriter, the values it holds as float32)."""
    if qt == QT.F32:
        return w.astype(np.float32), w.astype(np.float32)
    if qt == QT.Q4_K:
        data = quantize_q4_k(w)
    elif qt == QT.Q6_K:
        data = quantize_q6_k(w)
    else:
        data = gguf.quants.quantize(w.astype(np.float32), qt)
    deq = gguf.quants.dequantize(data, qt).reshape(w.shape).astype(np.float32)
    err = np.abs(deq - w).max() / max(np.abs(w).max(), 1e-12)
    assert err < 0.2, f"{qt.name}: relative quantization error {err} (packing bug?)"
    return data, deq

# ---------------------------------------------------------------------------- models

def llama_config(hidden, inter, vocab):
    return LlamaConfig(hidden_size=hidden, intermediate_size=inter, num_hidden_layers=2, num_attention_heads=4,
                       num_key_value_heads=2, vocab_size=vocab, max_position_embeddings=256, rms_norm_eps=1e-5,
                       tie_word_embeddings=False, initializer_range=0.1, bos_token_id=1, eos_token_id=2,
                       rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                     "high_freq_factor": 4.0, "original_max_position_embeddings": 32,
                                     "rope_theta": 10000.0})


def qwen2_config(hidden, inter, vocab):
    return Qwen2Config(hidden_size=hidden, intermediate_size=inter, num_hidden_layers=2, num_attention_heads=4,
                       num_key_value_heads=2, vocab_size=vocab, max_position_embeddings=256, rms_norm_eps=1e-6,
                       tie_word_embeddings=True, initializer_range=0.1, bos_token_id=1, eos_token_id=2,
                       rope_theta=1000000.0)


def make_model(family, cfg, seed):
    torch.manual_seed(seed)
    model = (LlamaForCausalLM if family == "llama" else Qwen2ForCausalLM)(cfg).float().eval()
    with torch.no_grad():  # norms and biases away from their 1/0 init, so they are tested
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.copy_((1.0 if name.endswith("norm.weight") else 0.0) + 0.3 * torch.randn_like(p))
    return model


def rope_factors(cfg, head_dim):
    """llama.cpp's rope_freqs.weight for llama3 scaling (convert_hf_to_gguf.py)."""
    rp = getattr(cfg, "rope_parameters", None) or getattr(cfg, "rope_scaling", None)
    if not rp or rp.get("rope_type") != "llama3":
        return None
    base = rp.get("rope_theta", 10000.0)
    factor, low, high, old = rp["factor"], rp["low_freq_factor"], rp["high_freq_factor"], rp["original_max_position_embeddings"]
    freqs = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    low_wl, high_wl = old / low, old / high
    out = []
    for f in freqs.tolist():
        wl = 2 * np.pi / f
        if wl < high_wl:
            out.append(1.0)
        elif wl > low_wl:
            out.append(factor)
        else:
            smooth = (old / wl - low) / (high - low)
            out.append(1.0 / ((1 - smooth) / factor + smooth))
    return np.array(out, dtype=np.float32)


def permute_qk(w, n_head):
    """llama.cpp LlamaModel.permute: HF rotate_half halves -> interleaved pairs."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


HF_TO_GGUF = [
    ("model.embed_tokens.weight", "token_embd.weight"),
    ("model.norm.weight", "output_norm.weight"),
    ("lm_head.weight", "output.weight"),
]
LAYER_NAMES = [
    ("input_layernorm.weight", "attn_norm.weight"), ("self_attn.q_proj.weight", "attn_q.weight"),
    ("self_attn.k_proj.weight", "attn_k.weight"), ("self_attn.v_proj.weight", "attn_v.weight"),
    ("self_attn.q_proj.bias", "attn_q.bias"), ("self_attn.k_proj.bias", "attn_k.bias"),
    ("self_attn.v_proj.bias", "attn_v.bias"), ("self_attn.o_proj.weight", "attn_output.weight"),
    ("post_attention_layernorm.weight", "ffn_norm.weight"), ("mlp.gate_proj.weight", "ffn_gate.weight"),
    ("mlp.up_proj.weight", "ffn_up.weight"), ("mlp.down_proj.weight", "ffn_down.weight"),
]


def gguf_name(hf):
    for a, b in HF_TO_GGUF:
        if hf == a:
            return b
    parts = hf.split(".")
    layer, rest = parts[2], ".".join(parts[3:])
    for a, b in LAYER_NAMES:
        if rest == a:
            return f"blk.{layer}.{b}"
    raise KeyError(hf)


FILE_TYPES = {QT.F32: 0, QT.F16: 1, QT.Q4_0: 2, QT.Q8_0: 7, QT.Q4_K: 15, QT.Q6_K: 18, QT.BF16: 32}


def write_gguf(path, family, model, qt):
    """Writes the model; returns the state dict (HF names) as the file holds it, in float32."""
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
    w.add_file_type(FILE_TYPES[qt])
    w.add_vocab_size(cfg.vocab_size)
    # A placeholder vocabulary (the ids are what the tests use): "<t0>", "<t1>", ...
    w.add_tokenizer_model("gpt2")
    w.add_token_list([f"<t{i}>" for i in range(cfg.vocab_size)])
    w.add_bos_token_id(cfg.bos_token_id)
    w.add_eos_token_id(cfg.eos_token_id)
    factors = rope_factors(cfg, head_dim)
    if factors is not None:
        w.add_tensor("rope_freqs.weight", factors)
    held = {}
    for name, p in model.state_dict().items():
        if name == "lm_head.weight" and cfg.tie_word_embeddings:
            continue
        t = p.detach().float().numpy()
        stored = t
        if arch == "llama" and name.endswith("q_proj.weight"):
            stored = permute_qk(t, cfg.num_attention_heads)
        elif arch == "llama" and name.endswith("k_proj.weight"):
            stored = permute_qk(t, cfg.num_key_value_heads)
        if t.ndim == 1:
            w.add_tensor(gguf_name(name), stored.astype(np.float32))
            held[name] = t
            continue
        data, deq = quantize(stored, qt)
        if qt == QT.F32:
            w.add_tensor(gguf_name(name), data)
        elif qt == QT.F16:
            w.add_tensor(gguf_name(name), data.astype(np.float16))
        else:
            w.add_tensor(gguf_name(name), data, raw_dtype=qt)
        # undo the permutation: the reference runs HF's layout
        if stored is not t:
            n = cfg.num_attention_heads if name.endswith("q_proj.weight") else cfg.num_key_value_heads
            deq = deq.reshape(n, deq.shape[0] // n // 2, 2, -1).swapaxes(1, 2).reshape(t.shape)
            assert qt != QT.F32 or np.array_equal(deq, t)
        held[name] = deq
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    if cfg.tie_word_embeddings:
        held["lm_head.weight"] = held["model.embed_tokens.weight"]
    return held

# ---------------------------------------------------------------------------- references

def reference(family, cfg, state, prompt, greedy_prompts, n_new):
    model = (LlamaForCausalLM if family == "llama" else Qwen2ForCausalLM)(cfg).float().eval()
    sd = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()}
    missing, unexpected = model.load_state_dict(sd, strict=False)
    assert not unexpected and all("lm_head" in m for m in missing), (missing, unexpected)
    if cfg.tie_word_embeddings:
        model.tie_weights()
    with torch.no_grad():
        logits = model(torch.tensor([prompt])).logits[0].float().numpy()
        conts, margin = [], np.inf
        for p in greedy_prompts:
            ids = list(p)
            for _ in range(n_new):
                last = model(torch.tensor([ids])).logits[0, -1].double().numpy()
                top = np.sort(last)[-2:]
                margin = min(margin, top[1] - top[0])
                ids.append(int(np.argmax(last)))
            conts.append(ids[len(p):])
    return logits, conts, float(margin)


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(1234)
    cases = []
    small = {"llama": llama_config(64, 128, 256), "qwen2": qwen2_config(64, 128, 256)}
    kq = {"llama": llama_config(256, 256, 256), "qwen2": qwen2_config(256, 256, 256)}
    types = [QT.F32, QT.F16, QT.BF16, QT.Q8_0, QT.Q4_0, QT.Q4_K, QT.Q6_K]
    for fi, family in enumerate(["llama", "qwen2"]):
        models = {"small": make_model(family, small[family], 10 + fi), "kq": make_model(family, kq[family], 20 + fi)}
        prompt = rng.integers(3, 256, size=12).tolist()
        greedy_prompts = [rng.integers(3, 256, size=n).tolist() for n in (1, 5, 11)]
        for qt in types:
            size = "kq" if qt in (QT.Q4_K, QT.Q6_K) else "small"
            model = models[size]
            name = f"{family}_{qt.name.lower()}"
            held = write_gguf(os.path.join(OUT, name + ".gguf"), family, model, qt)
            logits, conts, margin = reference(family, model.config, held, prompt, greedy_prompts, 12)
            np.save(os.path.join(OUT, name + ".logits.npy"), logits.astype(np.float32))
            orig = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
            qerr = max(float(np.abs(held[k] - orig[k]).max()) for k in orig)
            cases.append({"name": name, "model": name + ".gguf", "family": family, "type": qt.name,
                          "prompt": prompt, "logits": name + ".logits.npy",
                          "greedy": [{"prompt": p, "continuation": c} for p, c in zip(greedy_prompts, conts)],
                          "greedy_min_top2_margin": margin, "max_weight_quantization_error": qerr})
            print(f"{name}: margin {margin:.4f}, weight error {qerr:.4g}, {os.path.getsize(os.path.join(OUT, name + '.gguf'))} bytes")
        # Hugging Face folders: Llama in F32, Qwen2 in BF16
        model = models["small"]
        folder = f"hf_{family}"
        path = os.path.join(OUT, folder)
        shutil.rmtree(path, ignore_errors=True)
        dtype = torch.float32 if family == "llama" else torch.bfloat16
        model.to(dtype).save_pretrained(path, safe_serialization=True)
        os.chmod(os.path.join(path, "model.safetensors"), 0o644)
        for extra in ("generation_config.json",):
            if os.path.exists(os.path.join(path, extra)):
                os.remove(os.path.join(path, extra))
        held = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
        model.float()
        logits, conts, margin = reference(family, model.config, held, prompt, greedy_prompts, 12)
        np.save(os.path.join(OUT, folder + ".logits.npy"), logits.astype(np.float32))
        cases.append({"name": folder, "model": folder, "family": family, "type": "F32" if family == "llama" else "BF16",
                      "prompt": prompt, "logits": folder + ".logits.npy",
                      "greedy": [{"prompt": p, "continuation": c} for p, c in zip(greedy_prompts, conts)],
                      "greedy_min_top2_margin": margin, "max_weight_quantization_error": 0.0})
        print(f"{folder}: margin {margin:.4f}")
    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump({"generated_by": "tools/gen_llm_fixtures.py", "tolerance_logits_max_abs": 1e-3, "cases": cases}, f, indent=1)
    write_quant_rows(rng)
    write_stories260k()
    write_fuzz_seed()


def write_fuzz_seed():
    """A tiny GGUF (keys of several types, a string array, F32 and Q8_0 tensors) seeding
    tests/fuzz/fuzz_gguf.c; quant_rows.gguf is copied there as a second seed."""
    seeds = os.path.join(OUT, "..", "..", "fuzz", "seeds", "fuzz_gguf")
    os.makedirs(seeds, exist_ok=True)
    w = gguf.GGUFWriter(os.path.join(seeds, "tiny.gguf"), "llama")
    w.add_block_count(1)
    w.add_token_list(["a", "bc", "d"])
    w.add_float32("x.f", 1.5)
    w.add_tensor("t.f32", np.arange(8, dtype=np.float32).reshape(2, 4))
    w.add_tensor("t.q8", gguf.quants.quantize(np.ones((1, 32), np.float32), QT.Q8_0), raw_dtype=QT.Q8_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    shutil.copy(os.path.join(OUT, "quant_rows.gguf"), os.path.join(seeds, "quant_rows.gguf"))


def write_quant_rows(rng):
    """Random rows in each type, the gguf package's dequantization, and dots with x."""
    w = gguf.GGUFWriter(os.path.join(OUT, "quant_rows.gguf"), "tessera-quant-test")
    cols, rows = 512, 3
    x = rng.standard_normal(cols).astype(np.float32)
    out = {"cols": cols, "rows": rows, "x": x.tolist(), "types": {}}
    for qt in [QT.F32, QT.F16, QT.BF16, QT.Q8_0, QT.Q4_0, QT.Q4_K, QT.Q6_K]:
        m = (rng.standard_normal((rows, cols)) * rng.uniform(0.01, 3.0, size=(rows, 1))).astype(np.float32)
        data, deq = quantize(m, qt)
        if qt == QT.F16:
            w.add_tensor(qt.name, data.astype(np.float16))
        elif qt == QT.F32:
            w.add_tensor(qt.name, data)
        else:
            w.add_tensor(qt.name, data, raw_dtype=qt)
        out["types"][qt.name] = {"dequantized": deq.astype(np.float64).tolist(),
                                 "dot": (deq.astype(np.float64) @ x.astype(np.float64)).tolist()}
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with open(os.path.join(OUT, "quant_rows.json"), "w") as f:
        json.dump(out, f)


STORIES_GREEDY = (
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball. She wanted to play with it, but it was too high.\n"
    "Lily's mom said, \"Lily, let's go to the park.\" Lily was sad and didn't know what to do. She said, \"I want to play with your ball, but I can't find it.\"\n"
    "Lily was sad and didn't know what to do. She said, \"I'm sorry, Lily. I didn't know what to do.\"\n"
    "Lily didn't want to help her mom, so she said, \"I'm sorry, mom. I didn't know what to do.\" Her mom said, \"Don't worry, Lily. We can help you.\n"
)
STORIES_SAMPLED = (
    "Once upon a time, there was a little boy named Timmy. Timmy loved to play with his toys and eat sandwiches. One day, Timmy's mom told him it was time to rest for a while. Timmy's friend Billy came over and took him a down.\n"
    "Timmy's mom saw that Timmy was sad, but Timmy said, \"I didn't understand what is it! We need to find some leafs.\" Timmy thought about it and took a deep breath on a spoon. He hoped it was important to be kind and continued to find its image next time.\n"
    "After they finished getting, Timmy's dad came up to his house and promised to help Timmy.\n"
)


def write_stories260k():
    doc = {
        "source": "karpathy/llama2.c doc/stories260K.md (commit 1386edfd9090e2ef1da6636f3ba3220362079024), "
                  "the two run outputs quoted verbatim; run.c prints a final newline after the tokens",
        "checkpoint": "llama2c/stories260K.bin", "tokenizer": "llama2c/tok512.bin",
        "runs": [
            {"command": "./run stories260K/stories260K.bin -z stories260K/tok512.bin -t 0.0",
             "temperature": 0.0, "top_p": 0.9, "seed": 0, "steps": 256, "prompt": "", "output": STORIES_GREEDY},
            {"command": "./run stories260K/stories260K.bin -z stories260K/tok512.bin -t 1.0 -p 0.9 -s 133742",
             "temperature": 1.0, "top_p": 0.9, "seed": 133742, "steps": 256, "prompt": "", "output": STORIES_SAMPLED},
        ],
    }
    with open(os.path.join(OUT, "stories260K.json"), "w") as f:
        json.dump(doc, f, indent=1)


if __name__ == "__main__":
    main()
