"""bpe.py — trains the two small BPE vocabularies the bundle carries, from the world's captions.

  CLIP format (text encoder):  vocab.json + merges.txt exactly as openai/clip-vit-*:
      lower-cased, CLIP's pre-tokenizer regex, byte-to-unicode symbols, the last symbol of
      each word carries "</w>"; vocab = 256 bytes, 256 bytes+"</w>", one entry per merge,
      then <|startoftext|> and <|endoftext|>; merges.txt starts with "#version: 0.2".
  GPT-2 format (expander GGUF): GPT-2's pre-tokenizer regex (a word keeps its leading
      space as "Ġ"), byte-to-unicode symbols, no end-of-word marker; vocab = 256 bytes,
      one entry per merge, then the special tokens.
Merges are learnt greedily (most frequent pair, ties broken by the pair's text) until every
word of the corpus is one token, so the world's words each cost one token.
"""
import collections
import json
import os

import regex as re

CLIP_PAT = re.compile(r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
                      re.IGNORECASE)
GPT2_PAT = re.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")


def bytes_to_unicode():
    """GPT-2's reversible byte -> printable character table (as in CLIP and GPT-2)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b); cs.append(256 + n); n += 1
    return dict(zip(bs, map(chr, cs)))


def learn_merges(word_counts):
    """word_counts: {tuple of symbols: count}. Returns the merges, in order."""
    words = dict(word_counts)
    merges = []
    while True:
        pairs = collections.Counter()
        for w, c in words.items():
            for a, b in zip(w, w[1:]):
                pairs[(a, b)] += c
        if not pairs:
            return merges
        best = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))[0]
        merges.append(best)
        new = {}
        for w, c in words.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == best:
                    out.append(w[i] + w[i + 1]); i += 2
                else:
                    out.append(w[i]); i += 1
            new[tuple(out)] = new.get(tuple(out), 0) + c
        words = new


def _write(out_dir, vocab, merges):
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "vocab.json"), "w") as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(os.path.join(out_dir, "merges.txt"), "w") as f:
        f.write("#version: 0.2\n")
        for a, b in merges:
            f.write(f"{a} {b}\n")


def train_clip(texts, out_dir):
    b2u = bytes_to_unicode()
    counts = collections.Counter()
    for t in texts:
        for tok in CLIP_PAT.findall(" ".join(t.lower().split())):
            sym = [b2u[b] for b in tok.encode("utf-8")]
            counts[tuple(sym[:-1]) + (sym[-1] + "</w>",)] += 1
    merges = learn_merges(counts)
    base = list(b2u.values())
    tokens = base + [v + "</w>" for v in base] + ["".join(m) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
    vocab = {t: i for i, t in enumerate(tokens)}
    _write(out_dir, vocab, merges)
    return vocab, merges


def train_gpt2(texts, specials):
    """Returns (tokens, merges) for a GGUF 'gpt2' tokenizer; specials are appended last."""
    b2u = bytes_to_unicode()
    counts = collections.Counter()
    for t in texts:
        for tok in GPT2_PAT.findall(t):
            counts[tuple(b2u[b] for b in tok.encode("utf-8"))] += 1
    merges = learn_merges(counts)
    tokens = list(b2u.values()) + ["".join(m) for m in merges] + list(specials)
    return tokens, merges
