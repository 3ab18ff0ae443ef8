#!/usr/bin/env python3
"""gen_llm_bos_fixtures.py — which special tokens a model file says to add, and NUL bytes
in generated text (tests/fixtures/llm_bos/, for tests/parity/test_llm_codec.c).

Tokenizers: the tiny byte-level BPEs of tests/fixtures/llm_tokenizer (Qwen2's and Llama 3's
pre-tokenizer regexes, 800 tokens), in two forms each:
  qwen2.gguf    a tiny random Qwen2 model (Q8_0) with the vocabulary as GGUF metadata and
                tokenizer.ggml.add_bos_token = false, as llama.cpp's converter writes Qwen2;
  llama3.gguf   a tiny random Llama model with tokenizer.ggml.add_bos_token = true (BOS
                <|endoftext|>, the tiny vocabulary's only document token);
  hf_qwen2/     tokenizer.json without a post-processor + tokenizer_config.json (bos_token
                null), as Qwen2's Hugging Face files are;
  hf_llama3/    tokenizer.json whose post_processor is Sequence[ByteLevel,
                TemplateProcessing("<|endoftext|> $A")], as Llama 3's is;
  hf_llama3_nobos/  the same with tokenizer_config.json add_bos_token = false.
Expected ids: transformers' AutoTokenizer on the folders, add_special_tokens=True (what a
raw prompt gets) and apply_chat_template (a chat: the template's own specials only). The
GGUF files must give the ids of the folder with the same BOS rule (llama.cpp adds BOS
exactly when add_bos_token is true).

  nul.gguf      a Llama model with a SentencePiece vocabulary (<unk>, <s>, </s>, the 256
                <0xXX> byte tokens, a few pieces) whose weights make greedy decoding emit
                <0x00> after any prompt: every embedding is e_0, the blocks add nothing
                (zero output projections), and only <0x00>'s output row is non-zero. The
                text of n such tokens is n NUL bytes (the byte token's definition).

Run from the repository root:  python3 tools/gen_llm_bos_fixtures.py
"""
import json
import os
import shutil
import sys

import numpy as np
import gguf
import torch
from transformers import AutoTokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import gen_llm_fixtures as base  # noqa: E402

TOK = os.path.join(HERE, "..", "tests", "fixtures", "llm_tokenizer")
OUT = os.path.join(HERE, "..", "tests", "fixtures", "llm_bos")

# raw prompts (tessera complete reads special-token text as plain text, so none here)
STRINGS = ["Once upon a time", "Hello world", " leading space", "a cat wearing armor, 4k", "line\nbreak", ""]
CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Describe a red circle"}]
CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
          "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")


def write_tokenizer_metadata(w, tj, pre, add_bos):
    vocab = tj["model"]["vocab"]
    inv = sorted(vocab.items(), key=lambda kv: kv[1])
    specials = {t["content"] for t in tj["added_tokens"] if t.get("special")}
    merges = [m if isinstance(m, str) else " ".join(m) for m in tj["model"]["merges"]]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre)
    w.add_token_list([t for t, _ in inv])
    w.add_token_types([gguf.TokenType.CONTROL if t in specials else gguf.TokenType.NORMAL for t, _ in inv])
    w.add_token_merges(merges)
    w.add_bos_token_id(vocab["<|endoftext|>"])
    w.add_eos_token_id(vocab["<|im_end|>"])
    w.add_add_bos_token(add_bos)
    w.add_chat_template(CHATML)


def write_model_gguf(path, family, model, tj, pre, add_bos):
    cfg = model.config
    arch = "llama" if family == "llama" else "qwen2"
    w = gguf.GGUFWriter(path, arch)
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_rope_freq_base(10000.0)
    w.add_rope_dimension_count(cfg.hidden_size // cfg.num_attention_heads)
    w.add_vocab_size(cfg.vocab_size)
    write_tokenizer_metadata(w, tj, pre, add_bos)
    for name, p in model.state_dict().items():
        if name == "lm_head.weight" and cfg.tie_word_embeddings:
            continue
        t = p.detach().float().numpy()
        if t.ndim == 1:
            w.add_tensor(base.gguf_name(name), t.astype(np.float32))
        else:
            w.add_tensor(base.gguf_name(name), gguf.quants.quantize(t, gguf.GGMLQuantizationType.Q8_0),
                         raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def hf_folder(name, tj, post_processor, config):
    path = os.path.join(OUT, name)
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    tj = dict(tj)
    tj["post_processor"] = post_processor
    with open(os.path.join(path, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tj, f, ensure_ascii=False)
    config = dict(config, chat_template=CHATML, tokenizer_class="PreTrainedTokenizerFast")
    with open(os.path.join(path, "tokenizer_config.json"), "w") as f:
        json.dump(config, f, indent=1)
    tok = AutoTokenizer.from_pretrained(path)
    ids = [tok(s, add_special_tokens=True)["input_ids"] for s in STRINGS]
    chat = tok.apply_chat_template(CHAT, add_generation_prompt=True, tokenize=True)
    if isinstance(chat, dict) or hasattr(chat, "keys"):
        chat = chat["input_ids"]
    return ids, list(chat)


def nul_model():
    """A Llama GGUF (SentencePiece vocabulary) whose greedy continuation is <0x00> forever."""
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)] + ["\u2581a", "\u2581cat", "a", "c", "t"] + \
        ["<|im_start|>", "<|im_end|>"]   # a ChatML model, for serve-llm
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL] + \
        [gguf.TokenType.BYTE] * 256 + [gguf.TokenType.NORMAL] * 5 + [gguf.TokenType.CONTROL] * 2
    V, D, F = len(tokens), 32, 64
    nul = tokens.index("<0x00>")
    w = gguf.GGUFWriter(os.path.join(OUT, "nul.gguf"), "llama")
    w.add_context_length(64)
    w.add_embedding_length(D)
    w.add_block_count(1)
    w.add_feed_forward_length(F)
    w.add_head_count(2)
    w.add_head_count_kv(2)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0)
    w.add_rope_dimension_count(D // 2)
    w.add_vocab_size(V)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores([0.0] * V)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(True)
    w.add_chat_template(CHATML)
    emb = np.zeros((V, D), np.float32)
    emb[:, 0] = 1.0
    out = np.zeros((V, D), np.float32)
    out[nul, 0] = 1.0
    rng = np.random.default_rng(7)
    w.add_tensor("token_embd.weight", emb)
    w.add_tensor("output_norm.weight", np.ones(D, np.float32))
    w.add_tensor("output.weight", out)
    w.add_tensor("blk.0.attn_norm.weight", np.ones(D, np.float32))
    w.add_tensor("blk.0.ffn_norm.weight", np.ones(D, np.float32))
    for n, shape in [("attn_q", (D, D)), ("attn_k", (D, D)), ("attn_v", (D, D)), ("ffn_gate", (F, D)), ("ffn_up", (F, D))]:
        w.add_tensor(f"blk.0.{n}.weight", (0.1 * rng.standard_normal(shape)).astype(np.float32))
    w.add_tensor("blk.0.attn_output.weight", np.zeros((D, D), np.float32))
    w.add_tensor("blk.0.ffn_down.weight", np.zeros((D, F), np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return nul


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.set_num_threads(1)
    qtj = json.load(open(os.path.join(TOK, "qwen2-tokenizer.json"), encoding="utf-8"))
    ltj = json.load(open(os.path.join(TOK, "llama3-tokenizer.json"), encoding="utf-8"))
    V = len(qtj["model"]["vocab"])
    qwen = base.make_model("qwen2", base.qwen2_config(64, 128, V), 31)
    write_model_gguf(os.path.join(OUT, "qwen2.gguf"), "qwen2", qwen, qtj, "qwen2", False)
    llama = base.make_model("llama", base.llama_config(64, 128, len(ltj["model"]["vocab"])), 32)
    write_model_gguf(os.path.join(OUT, "llama3.gguf"), "llama", llama, ltj, "llama-bpe", True)
    bos = ltj["model"]["vocab"]["<|endoftext|>"]
    template = {"type": "Sequence", "processors": [
        {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
        {"type": "TemplateProcessing",
         "single": [{"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
         "pair": [{"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                  {"SpecialToken": {"id": "<|endoftext|>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
         "special_tokens": {"<|endoftext|>": {"id": "<|endoftext|>", "ids": [bos], "tokens": ["<|endoftext|>"]}}}]}
    cases = []
    for name, tj, pp, cfg, gguf_file in [
            ("hf_qwen2", qtj, None, {"bos_token": None, "eos_token": "<|im_end|>"}, "qwen2.gguf"),
            ("hf_llama3", ltj, template, {"bos_token": "<|endoftext|>", "eos_token": "<|im_end|>"}, "llama3.gguf"),
            ("hf_llama3_nobos", ltj, template, {"bos_token": "<|endoftext|>", "eos_token": "<|im_end|>",
                                                "add_bos_token": False}, None)]:
        ids, chat = hf_folder(name, tj, pp, cfg)
        print(name, "first ids:", ids[0], "chat starts", chat[:4])
        cases.append({"folder": name, "gguf": gguf_file, "ids": ids, "chat_ids": chat})
    nul = nul_model()
    with open(os.path.join(OUT, "cases.json"), "w", encoding="utf-8") as f:
        json.dump({"generated_by": "tools/gen_llm_bos_fixtures.py", "strings": STRINGS, "chat": CHAT,
                   "cases": cases, "nul_model": "nul.gguf", "nul_token": nul}, f, ensure_ascii=False, indent=1)


if __name__ == "__main__":
    main()
