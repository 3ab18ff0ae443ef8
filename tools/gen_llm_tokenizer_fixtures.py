#!/usr/bin/env python3
"""Fixtures for the LLM tokenizers (tests/parity/test_llm_tokenizer.c).

Expected ids come from transformers / tokenizers / sentencepiece, never from Tessera:
  gpt2.json        GPT-2 byte-level BPE: ../shared/data/fooocus_expansion vocab.json + merges.txt
  llama2.json      Llama 2 SentencePiece (real tokenizer.model in ../shared/data/llama2c,
                   encoded by the sentencepiece library with BOS),
                   and llama2-vocab.gguf: the same vocabulary as GGUF tokenizer metadata
  qwen2.json       tiny byte-level BPEs trained here with the families' pre-tokenizer
  llama3.json      regexes, saved as tokenizer.json and as GGUF metadata (*.gguf)
Run: python3 tools/gen_llm_tokenizer_fixtures.py   (needs transformers, tokenizers,
sentencepiece, gguf)
"""
import json
import os
import random

import gguf
import sentencepiece as spm
from tokenizers import Tokenizer, models, pre_tokenizers, decoders, trainers, Regex
from transformers import AutoTokenizer, PreTrainedTokenizerFast

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "..", "shared", "data")
OUT = os.path.join(HERE, "..", "tests", "fixtures", "llm_tokenizer")
os.makedirs(OUT, exist_ok=True)

QWEN2_REGEX = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
LLAMA3_REGEX = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""


def test_strings():
    rnd = random.Random(1234)
    s = [
        "", " ", "a", "Hello world", "hello  world", " leading space", "trailing space ",
        "a cat wearing armor", "A photo of an astronaut riding a horse on Mars, 4k, detailed",
        "It's, we're, they've, I'm, you'll, he'd", "IT'S WE'RE THEY'VE", "don't can't won't",
        "3.14159 and 2,718 and 1000000", "12345678901234567890", "version 1.2.3-rc4",
        "tabs\tand\nnewlines\n\n\r\nmixed", "   multiple   spaces   ", "\n\n\n", "\t",
        "punctuation!!! ??? ... ;;; --- ***", "(parentheses) [brackets] {braces} <angles>",
        "email@example.com https://example.org/path?q=1&r=2#frag",
        "café naïve résumé façade", "Ünïcödé ÀÉÎÕÜ", "ß straße", "Ελληνικά κείμενο", "Кириллица текст",
        "日本語のテキスト", "中文文本测试", "한국어 텍스트", "العربية نص", "עברית", "हिन्दी पाठ",
        "emoji 😀🎉👍🏽 and 👨‍👩‍👧‍👦 family", "mixed 中文 and English and 123",
        "&amp; &lt;tag&gt; &#39;", "C:\\path\\to\\file.txt", "x^2 + y_1 = z", "€100 £50 ¥1000",
        "    indented code:\n        return x", "def f(x):\n    return x * 2\n",
        "Sure, here is a detailed description:", "\"quoted\" 'single' `back`",
    ]
    words = ("the a red blue green large small circle square triangle painting light shadow "
             "golden hour cinematic portrait of woman man dog cat city forest mountain river "
             "sky cloud 2024 8k 35mm f/1.8 bokeh, . ! ? ; : - ' \" ( )").split()
    for _ in range(40):
        s.append(" ".join(rnd.choice(words) for _ in range(rnd.randint(3, 30))))
    s.append(" ".join(rnd.choice(words) for _ in range(500)))
    return s


def save(name, strings, ids):
    with open(os.path.join(OUT, name), "w", encoding="utf-8") as f:
        json.dump({"strings": strings, "ids": ids}, f, ensure_ascii=False)


def gpt2(strings):
    tok = AutoTokenizer.from_pretrained(os.path.join(DATA, "fooocus_expansion"))
    save("gpt2.json", strings, [tok.encode(s) for s in strings])


def llama2(strings):
    # sentencepiece itself is the reference for Llama 2 / Mistral tokenizers
    model = os.path.join(DATA, "llama2c", "tokenizer.model")
    sp = spm.SentencePieceProcessor(model_file=model)
    save("llama2.json", strings, [[sp.bos_id()] + sp.encode(s) for s in strings])
    w = gguf.GGUFWriter(os.path.join(OUT, "llama2-vocab.gguf"), "llama")
    tokens, scores, types = [], [], []
    for i in range(sp.get_piece_size()):
        tokens.append(sp.id_to_piece(i).encode("utf-8"))
        scores.append(sp.get_score(i))
        t = gguf.TokenType.NORMAL
        if sp.is_unknown(i): t = gguf.TokenType.UNKNOWN
        elif sp.is_control(i): t = gguf.TokenType.CONTROL
        elif sp.is_unused(i): t = gguf.TokenType.UNUSED
        elif sp.is_byte(i): t = gguf.TokenType.BYTE
        types.append(t)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(sp.bos_id())
    w.add_eos_token_id(sp.eos_id())
    w.add_unk_token_id(sp.unk_id())
    w.add_add_bos_token(True)
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()


def byte_level(name, regex, pre_name, strings):
    """Trains a tiny byte-level BPE with a family's pre-tokenizer, as tokenizer.json and GGUF."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(regex), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    trainer = trainers.BpeTrainer(vocab_size=800, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    corpus = strings * 3 + ["The quick brown fox jumps over the lazy dog. " * 5]
    tok.train_from_iterator(corpus, trainer)
    path = os.path.join(OUT, name + "-tokenizer.json")
    tok.save(path)
    fast = PreTrainedTokenizerFast(tokenizer_file=path)
    test = strings + ["<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n"]
    save(name + ".json", test, [fast.encode(s) for s in test])
    # the same vocabulary as GGUF metadata, the way llama.cpp's converter writes it
    vocab = tok.get_vocab()
    inv = sorted(vocab.items(), key=lambda kv: kv[1])
    data = json.load(open(path, encoding="utf-8"))
    merges = [m if isinstance(m, str) else " ".join(m) for m in data["model"]["merges"]]
    w = gguf.GGUFWriter(os.path.join(OUT, name + "-vocab.gguf"), "qwen2" if name == "qwen2" else "llama")
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre_name)
    w.add_token_list([t for t, _ in inv])
    w.add_token_types([gguf.TokenType.CONTROL if t in specials else gguf.TokenType.NORMAL for t, _ in inv])
    w.add_token_merges(merges)
    w.add_bos_token_id(vocab["<|endoftext|>"])
    w.add_eos_token_id(vocab["<|im_end|>"])
    w.add_add_bos_token(False)
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()


if __name__ == "__main__":
    strings = test_strings()
    gpt2(strings)
    llama2(strings)
    byte_level("qwen2", QWEN2_REGEX, "qwen2", strings)
    byte_level("llama3", LLAMA3_REGEX, "llama-bpe", strings)
    for f in sorted(os.listdir(OUT)):
        print(f, os.path.getsize(os.path.join(OUT, f)))
