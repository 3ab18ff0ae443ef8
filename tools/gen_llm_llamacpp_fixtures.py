#!/usr/bin/env python3
"""gen_llm_llamacpp_fixtures.py — GGUF files written by llama.cpp's own quantizer
(tests/fixtures/llm_llamacpp/), and the cross-check against llama.cpp itself.

A tiny random Qwen2ForCausalLM 384 wide (rows not a multiple of 256, like Qwen2.5-0.5B's 896
and SmolLM2's 576/960) with a real byte-level BPE vocabulary (tests/fixtures/llm_tokenizer,
800 tokens) is written as an F32 GGUF the way llama.cpp's converter names it, then quantized
by llama.cpp (llama-cpp-python's llama_model_quantize) with its presets: Q4_0, Q4_1, Q5_0,
Q5_1, Q8_0, Q2_K, Q3_K_M, Q4_K_M, Q5_K_M, Q6_K, IQ4_NL, IQ4_XS. For each file:
  - reference: transformers in float32 on gguf.quants.dequantize of the blocks llama.cpp
    wrote (logits of a prompt at every position, greedy continuations);
  - llama.cpp's own logits of the same prompt (Llama(logits_all=True)), compared with the
    reference and printed (llama.cpp multiplies by 8-bit-quantized activations, so it is
    only near the reference), with its greedy ids.
The presets listed in KEEP are written to the fixture folder with a cases.json that
tests/parity/test_llm.c runs; the others are only measured.

Needs llama-cpp-python (it compiles llama.cpp) besides transformers and gguf. If it is
installed in another environment, point LLAMA_CPP_SITE at a folder holding its llama_cpp
package: LLAMA_CPP_SITE=/path/site-packages python3 tools/gen_llm_llamacpp_fixtures.py
"""
import ctypes
import json
import os
import sys
import tempfile

import numpy as np
import gguf
import torch
from transformers import Qwen2Config

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import gen_llm_fixtures as base  # noqa: E402

if os.environ.get("LLAMA_CPP_SITE"):
    sys.path.append(os.environ["LLAMA_CPP_SITE"])
import llama_cpp  # noqa: E402

OUT = os.path.join(HERE, "..", "tests", "fixtures", "llm_llamacpp")
TOK = os.path.join(HERE, "..", "tests", "fixtures", "llm_tokenizer", "qwen2-tokenizer.json")
PRESETS = ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K_M", "Q4_K_M", "Q5_K_M", "Q6_K", "IQ4_NL", "IQ4_XS"]
KEEP = ["Q4_K_M", "Q3_K_M"]


def write_f32(path, model, tj):
    cfg = model.config
    w = gguf.GGUFWriter(path, "qwen2")
    w.add_name("tessera-test-qwen2-384")
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_rope_freq_base(float(cfg.rope_theta if hasattr(cfg, "rope_theta") else 1e6))
    w.add_file_type(0)
    vocab = tj["model"]["vocab"]
    inv = sorted(vocab.items(), key=lambda kv: kv[1])
    specials = {t["content"] for t in tj["added_tokens"] if t.get("special")}
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("qwen2")
    w.add_token_list([t for t, _ in inv])
    w.add_token_types([gguf.TokenType.CONTROL if t in specials else gguf.TokenType.NORMAL for t, _ in inv])
    w.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in tj["model"]["merges"]])
    w.add_bos_token_id(vocab["<|endoftext|>"])
    w.add_eos_token_id(vocab["<|im_end|>"])
    w.add_add_bos_token(False)
    for name, p in model.state_dict().items():
        if name == "lm_head.weight" and cfg.tie_word_embeddings:
            continue
        w.add_tensor(base.gguf_name(name), p.detach().float().numpy())
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def held_weights(path, model):
    """The file's matrices as transformers state (gguf.quants.dequantize), by HF name."""
    r = gguf.GGUFReader(path)
    by_name = {t.name: t for t in r.tensors}
    held, types = {}, set()
    for name, p in model.state_dict().items():
        gname = base.gguf_name(name if name != "lm_head.weight" else "model.embed_tokens.weight")
        if name == "lm_head.weight" and "output.weight" in by_name:
            gname = "output.weight"
        t = by_name[gname]
        types.add(t.tensor_type.name)
        held[name] = gguf.quants.dequantize(t.data, t.tensor_type).reshape(p.shape).astype(np.float32)
    return held, sorted(types)


def quantize(src, dst, preset):
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{preset}")
    params.nthread = 1
    rc = llama_cpp.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(params))
    assert rc == 0, f"llama_model_quantize {preset}: {rc}"


def llama_cpp_run(path, prompt, greedy_prompts, n_new):
    m = llama_cpp.Llama(model_path=path, n_ctx=64, n_batch=64, logits_all=True, n_threads=1, verbose=False, seed=0,
                        type_k=0, type_v=0)   # an F32 KV cache (the default F16 one rounds K and V)
    m.eval(prompt)
    logits = np.array(m.scores[: len(prompt)], dtype=np.float32)
    conts = []
    for p in greedy_prompts:
        m.reset()
        ids = list(p)
        for _ in range(n_new):
            m.eval(ids[len(ids) - 1:] if m.n_tokens else ids)
            ids.append(int(np.argmax(m.scores[m.n_tokens - 1])))
        conts.append(ids[len(p):])
    return logits, conts


def main():
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    tj = json.load(open(TOK, encoding="utf-8"))
    V = len(tj["model"]["vocab"])
    cfg = Qwen2Config(hidden_size=384, intermediate_size=512, num_hidden_layers=2, num_attention_heads=6,
                      num_key_value_heads=2, vocab_size=V, max_position_embeddings=256, rms_norm_eps=1e-6,
                      tie_word_embeddings=True, initializer_range=0.1, bos_token_id=0, eos_token_id=2,
                      rope_theta=1000000.0)
    model = base.make_model("qwen2", cfg, 384)
    rng = np.random.default_rng(384)
    prompt = rng.integers(3, V, size=12).tolist()
    greedy_prompts = [rng.integers(3, V, size=n).tolist() for n in (1, 5, 11)]
    cases = []
    with tempfile.TemporaryDirectory() as tmp:
        f32 = os.path.join(tmp, "f32.gguf")
        write_f32(f32, model, tj)
        for preset in PRESETS:
            keep = preset in KEEP
            name = f"qwen2_384_{preset.lower()}"
            path = os.path.join(OUT if keep else tmp, name + ".gguf")
            quantize(f32, path, preset)
            held, types = held_weights(path, model)
            logits, conts, margin = base.reference("qwen2", model.config, held, prompt, greedy_prompts, 12)
            lc_logits, lc_conts = llama_cpp_run(path, prompt, greedy_prompts, 12)
            err = float(np.abs(lc_logits - logits).max())
            same = sum(a == b for a, b in zip(lc_conts, conts))
            print(f"{preset:7s} types {','.join(types):28s} llama.cpp vs transformers(dequantized): logits max abs "
                  f"{err:.3g} (logit range {np.abs(logits).max():.3g}), greedy continuations identical {same}/3, "
                  f"margin {margin:.3g}, {os.path.getsize(path)} bytes{' (kept)' if keep else ''}")
            if keep:
                np.save(os.path.join(OUT, name + ".logits.npy"), logits.astype(np.float32))
                cases.append({"name": name, "model": name + ".gguf", "family": "qwen2", "type": preset,
                              "prompt": prompt, "logits": name + ".logits.npy",
                              "greedy": [{"prompt": p, "continuation": c} for p, c in zip(greedy_prompts, conts)],
                              "greedy_min_top2_margin": margin, "tensor_types": types,
                              "llama_cpp_logits_max_abs_diff": err, "llama_cpp_greedy_identical": same})
    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump({"generated_by": "tools/gen_llm_llamacpp_fixtures.py",
                   "llama_cpp_python": getattr(llama_cpp, "__version__", "?"), "cases": cases}, f, indent=1)


if __name__ == "__main__":
    main()
