#!/usr/bin/env python3
"""gen_clip_fixtures.py — reference fixtures for the CLIP tokenizer and text encoders.

Expected values come only from transformers (never from Tessera):

  tokenizer   tests/fixtures/clip/tokenizer_ids.json: >= 300 varied strings with the ids of
              transformers' *slow* CLIPTokenizer (4.x, Python, run WITHOUT ftfy so it falls
              back to BasicTokenizer cleaning) and of the tokenizers-backed CLIPTokenizer
              (transformers 5.x / CLIPTokenizerFast), over the real SD 1.5 vocabulary in
              ../shared/data/clip_tokenizer_sd15. Where the two disagree both are kept.
  models      tiny random CLIPTextModel / CLIPTextModelWithProjection in the real
              architecture, saved as diffusers folders and as CompVis single files for
              SD 1.x, SD 2.x and SDXL, with reference hidden states (see write_models).

The slow tokenizer no longer exists in transformers 5; this script imports it from a
transformers 4.x tree given by --tf4 (made with
  pip install --no-deps --target /tmp/tf4 "transformers==4.57.1").

Run:  python3 tools/gen_clip_fixtures.py --tf4 /tmp/tf4 [tokenizer] [models]
"""
import argparse
import json
import os
import random
import sys
import types

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OUT = os.path.join(ROOT, "tests", "fixtures", "clip")
DATA = os.path.join(ROOT, "..", "shared", "data")
VOCAB_DIR = os.path.join(DATA, "clip_tokenizer_sd15")


def slow_tokenizer_class(tf4):
    """transformers 4.x's Python CLIPTokenizer, imported from a side tree without
    disturbing the installed transformers 5 (its version check is skipped)."""
    saved = {k: v for k, v in sys.modules.items() if k == "transformers" or k.startswith("transformers.")}
    for k in saved:
        del sys.modules[k]
    sys.path.insert(0, tf4)
    stub = types.ModuleType("transformers.dependency_versions_check")
    stub.dep_version_check = lambda *a, **k: None
    sys.modules["transformers.dependency_versions_check"] = stub
    import transformers
    from transformers.models.clip.tokenization_clip import CLIPTokenizer
    assert transformers.__version__.startswith("4."), transformers.__version__
    sys.path.remove(tf4)
    for k in [k for k in sys.modules if k == "transformers" or k.startswith("transformers.")]:
        del sys.modules[k]
    sys.modules.update(saved)
    return CLIPTokenizer


def test_strings():
    """Varied strings: every category the issue names, hand-written and generated (seeded)."""
    s = [
        "", " ", "   \t\n  ", "a", "A", "a photo of a cat", "A Photo Of A CAT",
        "a photograph of an astronaut riding a horse",
        "masterpiece, best quality, 1girl, solo, looking at viewer",
        "(masterpiece:1.2), ((best quality)), [worst quality], {blurry}",
        "hello!!! world??? ...", "wait... what?!?!", "!!!", "?!.,;:-_", "--- *** +++ ===",
        "a,b,c,d", "a , b , c", "foo.bar.baz", "e-mail me at someone@example.com",
        "https://example.com/path?q=1&r=2#frag", "C:\\Users\\name\\file.txt", "#hashtag @mention",
        "3.14159", "1,000,000", "0.5 1.25 100.0 -7 +3", "1234567890", "2024-01-31 12:34:56",
        "v1.5 sd2.1 sdxl1.0", "50% off", "$9.99 €5 £3 ¥100", "1st 2nd 3rd 4th", "x2 2x 4k 8k uhd",
        "it's", "It's", "IT'S", "don't won't can't shouldn't", "we're they've I'm you'll he'd",
        "'s 't 're 've 'm 'll 'd", "rock 'n' roll", "the cat's whiskers' length", "o'clock O'Neil",
        "it’s curly", "“smart quotes” and ‘single’", "l'été d'un café", "''double'' '''triple'''",
        "café", "cafe\u0301", "naïve résumé", "Crème Brûlée", "São Paulo", "Zürich Straße",
        "ÀÉÎÕÜ àéîõü", "Ångström", "ñandú", "Ærøskøbing", "Łódź", "İstanbul", "ıi İI",
        "ΟΔΟΣ", "ΟΔΟΣ ΣΑΣ", "Σ", "ΑΣ.", "ΑΣΑ", "Ὀδυσσεύς", "Москва и ПЕТЕРБУРГ", "Київ",
        "😀", "😀😀😀", "a 😀 b", "🐱 cat", "👍🏽", "👨‍👩‍👧‍👦 family", "🏳️‍🌈", "❤️", "★☆✓✗", "©®™",
        "中文", "我爱北京天安门", "汉字 and latin", "日本語のテキスト", "ひらがな カタカナ", "한국어 텍스트",
        "中文English混合", "全角ＡＢＣ１２３", "。，、！？",
        "العربية", "مرحبا بالعالم", "שלום עולם", "हिन्दी", "ภาษาไทย", "ქართული", "Ελληνικά",
        "&amp; &lt;tag&gt; &quot;q&quot; &#39; &#x27; &nbsp;", "<b>bold</b> <i>it</i>", "&amp;amp;",
        "a  b", "a   b", "a\tb", "a\nb", "a\r\nb", "a\u00a0b", "a\u2003b", "a\u3000b", "a\u2028b",
        "a\u200bb", "a\u200db", "a\u00adb", "a\ufeffb", "a\x00b", "a\x07b", "a\x1fb", "a\x7fb",
        "a\ufffdb", "a\ue000b", "a\x0bb\x0cc", "  leading", "trailing  ", "\n\nnewlines\n\n",
        "<|startoftext|>", "<|endoftext|>", "a <|endoftext|> b", "<|ENDOFTEXT|>", "x<|startoftext|>y",
        "<|endoftext|><|endoftext|>", "<|notspecial|>", "< | >",
        "ＦＵＬＬＷＩＤＴＨ", "ﬁ ligature", "Ⅻ ½ ² ³", "①②③", "٣٤٥ arabic digits", "१२३",
        "𝐁𝐨𝐥𝐝 𝕕𝕠𝕦𝕓𝕝𝕖", "Ⓐⓑ", "ǅungla", "ß ẞ", "K\u212a", "µ", "ſ", "\u0130i\u0307",
        "a" * 300, "ab" * 100, "supercalifragilisticexpialidocious", "pneumonoultramicroscopicsilicovolcanoconiosis",
        "word " * 80, "a, " * 60, "1 2 3 4 5 6 7 8 9 10 11 12",
        "lorem_ipsum-dolor.sit+amet", "snake_case CamelCase kebab-case", "UPPER lower MiXeD",
        "hyper-realistic, 8k, octane render, trending on artstation, by greg rutkowski",
        "portrait of a woman, (freckles:0.8), soft light, 85mm, f/1.8, bokeh",
        "landscape | mountains | lake | sunrise", "cyberpunk city at night, neon lights, rain",
        "a bowl of 🍜 ramen with 🥚 and chopsticks", "A red apple ; a green pear ; a yellow banana",
        "the quick brown fox jumps over the lazy dog", "THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG",
    ]
    rng = random.Random(1234)
    words = ("a an the of in on with and photo painting portrait landscape city forest river "
             "mountain cat dog woman man child old young red blue green golden dark light "
             "beautiful detailed intricate cinematic dramatic soft sharp highly realistic "
             "digital art oil canvas watercolor sketch night day sunset sunrise rain snow fog "
             "castle dragon knight robot spaceship ocean wave flower garden tree sky cloud star").split()
    pieces = ["café", "naïve", "中", "日本", "😀", "🌸", "ΣΟΦΙΑ", "Ørsted", "x2", "3.5", "it's",
              "we'll", "&amp;", "!!", "...", "(", ")", "[", "]", ":1.3", "—", "–", "…", "«", "»",
              "\u00a0", "\t", "  ", "\u200d", "مرحبا", "привет", "Ünïcödé", "ǲ", "İ"]
    # Random prompts mixing vocabulary words, punctuation and unicode pieces.
    while len(s) < 290:
        n = rng.randint(1, 40)
        toks = []
        for _ in range(n):
            r = rng.random()
            if r < 0.7:
                w = rng.choice(words)
                toks.append(w.upper() if rng.random() < 0.1 else w.capitalize() if rng.random() < 0.1 else w)
            elif r < 0.9:
                toks.append(rng.choice(pieces))
            else:
                toks.append(str(rng.randint(0, 10000)) if rng.random() < 0.5 else "%.2f" % rng.uniform(0, 100))
        sep = rng.choice([" ", ", ", " ", "  ", ",", " | "])
        s.append(sep.join(toks))
    # Random code points from many blocks (valid UTF-8, no surrogates).
    blocks = [(0x20, 0x7e), (0xa0, 0x24f), (0x370, 0x3ff), (0x400, 0x4ff), (0x590, 0x6ff),
              (0x900, 0x97f), (0xe00, 0xe7f), (0x1e00, 0x1fff), (0x2000, 0x206f), (0x2100, 0x27bf),
              (0x3000, 0x30ff), (0x4e00, 0x9fff), (0xac00, 0xd7a3), (0xff00, 0xffef), (0x1f300, 0x1faff),
              (0x1d400, 0x1d7ff), (0x20000, 0x2a6df)]
    for _ in range(20):
        chars = []
        for _ in range(rng.randint(1, 30)):
            lo, hi = rng.choice(blocks)
            chars.append(chr(rng.randint(lo, hi)))
        s.append("".join(chars))
    # Long single words: many merges in one word (checks the heap-ordered BPE).
    for n in (300, 1200, 2500):
        s.append("".join(rng.choice("abcdefghijklmnopqrstuvwxyzéü") for _ in range(n)))
    # 500-word paragraphs.
    for k in range(3):
        para = []
        for i in range(500):
            w = rng.choice(words)
            if rng.random() < 0.05:
                w = rng.choice(pieces)
            para.append(w)
            if rng.random() < 0.1:
                para[-1] += rng.choice([",", ".", ";", "!"])
        s.append(" ".join(para))
    return s


def write_tokenizer(tf4):
    from transformers import CLIPTokenizer as FastCLIPTokenizer
    SlowCLIPTokenizer = slow_tokenizer_class(tf4)
    vocab, merges = os.path.join(VOCAB_DIR, "vocab.json"), os.path.join(VOCAB_DIR, "merges.txt")
    slow = SlowCLIPTokenizer(vocab, merges)
    assert slow.fix_text is None, "ftfy is installed: uninstall it (the fixture is for transformers without ftfy)"
    fast = FastCLIPTokenizer.from_pretrained(VOCAB_DIR)
    slow_pad0 = SlowCLIPTokenizer(vocab, merges, pad_token="!")  # SD 2.x / SDXL tokenizer_2
    cases = []
    differ = 0
    for text in test_strings():
        ids_slow = slow(text)["input_ids"]
        ids_fast = fast(text)["input_ids"]
        case = {"text": text, "ids": ids_slow}
        if "\x00" in text:  # JSON readers in C stop at NUL: give the bytes too
            case["hex"] = text.encode("utf-8").hex()
        if ids_fast != ids_slow:
            case["ids_fast"] = ids_fast
            differ += 1
        cases.append(case)
    # Padding and truncation to 77, as diffusers calls the tokenizer.
    padded = []
    for text in ["a photo of a cat", "", "word " * 100, test_strings()[-1]]:
        for tok, pad in ((slow, "eos"), (slow_pad0, "zero")):
            ids = tok(text, padding="max_length", max_length=77, truncation=True)["input_ids"]
            padded.append({"text": text, "pad": pad, "ids": ids})
    doc = {
        "about": "ids from transformers %s slow CLIPTokenizer without ftfy (ids) and the "
                 "tokenizers-backed CLIPTokenizer (ids_fast, only where different); vocabulary "
                 "../shared/data/clip_tokenizer_sd15; made by tools/gen_clip_fixtures.py" % "4.57.1",
        "cases": cases,
        "padded": padded,
    }
    path = os.path.join(OUT, "tokenizer_ids.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False, separators=(",", ":"))
    print("%s: %d strings, %d where the fast tokenizer differs, %d bytes"
          % (path, len(cases), differ, os.path.getsize(path)))


# ---- tiny text encoders -------------------------------------------------------------

# (name, class, hidden, heads, layers, intermediate, act, projection). Widths are small so each
# file stays < 2 MB; hidden / heads = 64 where a CompVis single file is made from the model,
# because single files carry no config and Tessera infers 64-wide heads as in the real models.
V = 256                   # vocabulary of the id-level models: BOS 254, EOS 255
BOS, EOS = V - 2, V - 1


def tiny_config(hidden, heads, layers, intermediate, act, vocab=V, projection=0):
    from transformers import CLIPTextConfig
    return CLIPTextConfig(vocab_size=vocab, hidden_size=hidden, num_attention_heads=heads,
                          num_hidden_layers=layers, intermediate_size=intermediate, hidden_act=act,
                          max_position_embeddings=77, projection_dim=projection or 512,
                          layer_norm_eps=1e-5, eos_token_id=2, bos_token_id=0, pad_token_id=1,
                          attn_implementation="eager")


def make_model(config, with_projection, seed):
    import torch
    from transformers import CLIPTextModel, CLIPTextModelWithProjection
    torch.manual_seed(seed)
    cls = CLIPTextModelWithProjection if with_projection else CLIPTextModel
    m = cls(config).eval()
    with torch.no_grad():  # random init is near-degenerate (LN weight 1, bias 0): spread it out
        for name, p in m.named_parameters():
            if "norm" in name:
                p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.2 * torch.randn_like(p))
            elif "embedding" in name:
                p.copy_(0.5 * torch.randn_like(p))
            else:
                p.copy_(torch.randn_like(p) / p.shape[-1] ** 0.5)
    return m


def rounded(model, dtype):
    """The model with weights rounded to dtype and back (what Tessera reads from such a file)."""
    import copy
    import torch
    m = copy.deepcopy(model)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(p.to(dtype).to(torch.float32))
    return m


def hf_state(model, dtype):
    """State dict under the names real files use: "text_model." + ... (transformers 5 drops
    that prefix from CLIPTextModel's own state dict), "text_projection.weight"."""
    out = {}
    for k, v in model.state_dict().items():
        if k.endswith("position_ids"):
            continue
        if not k.startswith("text_model.") and not k.startswith("text_projection"):
            k = "text_model." + k
        out[k] = v.detach().to(dtype).contiguous()
    return out


def final_layer_norm(model):
    return (model.text_model if hasattr(model, "text_model") else model).final_layer_norm


def openclip_state(model, dtype, prefix):
    """HF CLIP text names -> OpenCLIP names as in SD 2.x / SDXL CompVis checkpoints: the
    inverse of diffusers' convert_open_clip_checkpoint (fused in_proj, x @ text_projection)."""
    import torch
    sd = hf_state(model, torch.float32)
    out = {}
    L = model.config.num_hidden_layers
    put = lambda k, v: out.__setitem__(prefix + k, v.detach().to(dtype).contiguous())
    put("token_embedding.weight", sd["text_model.embeddings.token_embedding.weight"])
    put("positional_embedding", sd["text_model.embeddings.position_embedding.weight"])
    put("ln_final.weight", sd["text_model.final_layer_norm.weight"])
    put("ln_final.bias", sd["text_model.final_layer_norm.bias"])
    if "text_projection.weight" in sd:
        put("text_projection", sd["text_projection.weight"].T)
    put("logit_scale", torch.tensor(4.6052))
    for i in range(L):
        h, o = "text_model.encoder.layers.%d." % i, "transformer.resblocks.%d." % i
        put(o + "ln_1.weight", sd[h + "layer_norm1.weight"])
        put(o + "ln_1.bias", sd[h + "layer_norm1.bias"])
        put(o + "attn.in_proj_weight", torch.cat([sd[h + "self_attn.%s_proj.weight" % x] for x in "qkv"]))
        put(o + "attn.in_proj_bias", torch.cat([sd[h + "self_attn.%s_proj.bias" % x] for x in "qkv"]))
        put(o + "attn.out_proj.weight", sd[h + "self_attn.out_proj.weight"])
        put(o + "attn.out_proj.bias", sd[h + "self_attn.out_proj.bias"])
        put(o + "ln_2.weight", sd[h + "layer_norm2.weight"])
        put(o + "ln_2.bias", sd[h + "layer_norm2.bias"])
        put(o + "mlp.c_fc.weight", sd[h + "mlp.fc1.weight"])
        put(o + "mlp.c_fc.bias", sd[h + "mlp.fc1.bias"])
        put(o + "mlp.c_proj.weight", sd[h + "mlp.fc2.weight"])
        put(o + "mlp.c_proj.bias", sd[h + "mlp.fc2.bias"])
    return out


def compvis_clip_state(model, dtype, prefix):
    """HF names under a CompVis prefix (SD 1.x cond_stage_model.transformer., SDXL
    conditioner.embedders.0.transformer.), with the position_ids buffer real files carry."""
    import torch
    out = {prefix + k: v for k, v in hf_state(model, dtype).items()}
    out[prefix + "text_model.embeddings.position_ids"] = torch.arange(77, dtype=torch.int64)[None]
    return out


def save_folder(path, components, special_pads, t5_names=False):
    """diffusers layout: COMPONENT/config.json + weights; tokenizer*/special_tokens_map.json.
    t5_names: CLIPTextModel keys without "text_model.", as transformers 5 saves them."""
    from safetensors.torch import save_file
    for comp, (model, dtype, layers) in components.items():
        d = os.path.join(path, comp)
        os.makedirs(d, exist_ok=True)
        cfg = model.config.to_dict()
        cfg["architectures"] = [type(model).__name__]
        cfg["num_hidden_layers"] = layers
        cfg.pop("attn_implementation", None)
        cfg.pop("_attn_implementation_autoset", None)
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(cfg, f, indent=2, sort_keys=True)
        state = hf_state(model, dtype)
        state = {k: v for k, v in state.items()
                 if not any(k.startswith("text_model.encoder.layers.%d." % i) for i in range(layers, 99))}
        # diffusers' fp16 variant name; bf16 weights go in the plain name, as some repos ship them
        if t5_names and type(model).__name__ == "CLIPTextModel":
            state = {k[len("text_model."):]: v for k, v in state.items()}
        name = "model.fp16.safetensors" if dtype == __import__("torch").float16 else "model.safetensors"
        save_file(state, os.path.join(d, name))
    for tok, pad in special_pads.items():
        d = os.path.join(path, tok)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "special_tokens_map.json"), "w") as f:
            json.dump({"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "pad_token": pad,
                       "unk_token": "<|endoftext|>"}, f, indent=2)


def random_chunks(rng, pad, count, chunks, lengths):
    """ids [count, chunks, 77]: BOS, random tokens, EOS, pad — prompts of the given lengths
    cut into 75-token chunks as text_conditioning does."""
    import numpy as np
    out = np.zeros((count, chunks, 77), dtype=np.int32)
    for b in range(count):
        toks = [rng.randint(1, BOS - 1) for _ in range(lengths[b])]
        for c in range(chunks):
            part = toks[75 * c: 75 * (c + 1)]
            row = [BOS] + part + [EOS]
            out[b, c] = row + [pad] * (77 - len(row))
    return out


def run_family(family, encoders, ids, clip_skip):
    """Context [B, 77*chunks, dim] (and SDXL pooled) computed from transformers' outputs the
    way diffusers' pipelines use them, chunk by chunk, concatenated on the sequence axis."""
    import torch
    B, C, T = ids[0].shape
    torch.set_grad_enabled(False)
    ctx, pooled = [], None
    for c in range(C):
        parts = []
        for e, model in enumerate(encoders):
            x = torch.from_numpy(ids[e][:, c].astype("int64"))
            with torch.no_grad():
                out = model(x, output_hidden_states=True)
            hs = out.hidden_states
            if family == "sd1":
                h = out.last_hidden_state if clip_skip == 0 else final_layer_norm(model)(hs[-(clip_skip + 1)])
            elif family == "sd2":  # the full OpenCLIP model: penultimate, then ln_final
                h = final_layer_norm(model)(hs[-(clip_skip + 2)])
            else:  # sdxl
                h = hs[-(clip_skip + 2)]
                if e == 1 and c == 0:
                    pooled = out.text_embeds
            parts.append(h)
        ctx.append(torch.cat(parts, dim=-1))
    ctx = torch.cat(ctx, dim=1).detach().numpy().astype("float32")
    return ctx, (pooled.detach().numpy().astype("float32") if pooled is not None else None)


def write_models():
    import numpy as np
    import torch
    from safetensors.torch import save_file
    torch.set_num_threads(1)
    rng = random.Random(7)
    families = {
        # family: [(hidden, heads, layers, intermediate, act, projection)], pads, seed
        "sd1": ([(128, 2, 2, 256, "quick_gelu", 0)], [EOS]),
        "sd2": ([(128, 2, 3, 128, "gelu", 0)], [0]),
        "sdxl": ([(64, 1, 2, 128, "quick_gelu", 0), (128, 2, 3, 128, "gelu", 64)], [EOS, 0]),
    }
    summary = {}
    for fi, (family, (specs, pads)) in enumerate(families.items()):
        encoders = [make_model(tiny_config(h, nh, L, I, act, projection=proj), proj > 0, 100 + 10 * fi + e)
                    for e, (h, nh, L, I, act, proj) in enumerate(specs)]
        ids = [random_chunks(rng, pad, 2, 2, [120, 9]) for pad in pads]
        for e in range(1, len(ids)):  # same prompt through both tokenizers: only the pad differs
            ids[e] = np.where(ids[e] == pads[e], pads[e], ids[0]).astype(np.int32)
            ids[e][ids[0] == pads[0]] = pads[e]
        d = os.path.join(OUT, family)
        os.makedirs(d, exist_ok=True)
        for e in range(len(ids)):
            np.save(os.path.join(d, "ids%s.npy" % ("" if e == 0 else "_2")), ids[e])
        for variant, dtype in (("", torch.float32), ("_fp16", torch.float16), ("_bf16", torch.bfloat16)):
            if variant and (family, variant) not in (("sd1", "_fp16"), ("sdxl", "_bf16")):
                continue
            models = [rounded(m, dtype) for m in encoders] if variant else encoders
            for clip_skip in (0, 1):
                ctx, pooled = run_family(family, models, ids, clip_skip)
                tag = variant + ("" if clip_skip == 0 else "_skip1")
                np.save(os.path.join(d, "context%s.npy" % tag), ctx)
                if pooled is not None:
                    np.save(os.path.join(d, "pooled%s.npy" % tag), pooled)
            # Single file (CompVis names).
            state = {}
            if family == "sd1":
                state.update(compvis_clip_state(encoders[0], dtype, "cond_stage_model.transformer."))
            elif family == "sd2":
                state.update(openclip_state(encoders[0], dtype, "cond_stage_model.model."))
            else:
                state.update(compvis_clip_state(encoders[0], dtype, "conditioner.embedders.0.transformer."))
                state.update(openclip_state(encoders[1], dtype, "conditioner.embedders.1.model."))
            path = os.path.join(OUT, "%s%s.safetensors" % (family, variant))
            save_file(state, path)
            # diffusers folder (SD 2.x: the last layer dropped, as diffusers' conversion does).
            comps = {"text_encoder": (encoders[0], dtype, encoders[0].config.num_hidden_layers - (family == "sd2"))}
            if family == "sdxl":
                comps["text_encoder_2"] = (encoders[1], dtype, encoders[1].config.num_hidden_layers)
            pads_map = {"tokenizer": "<|endoftext|>" if pads[0] == EOS else "!"}
            if family == "sdxl":
                pads_map["tokenizer_2"] = "!"
            save_folder(os.path.join(OUT, family + variant), comps, pads_map, t5_names=(family + variant == "sd1_fp16"))
            summary[family + variant] = os.path.getsize(path)
    # Prompt level: the real vocabulary (49408 x 16 in fp16 = 1.6 MB), prompts through the
    # slow tokenizer, chunked as text_conditioning does.
    write_prompt_model()
    print("models:", summary)


PROMPTS = [
    "a photo of an astronaut riding a horse on the moon",
    "masterpiece, best quality, (detailed:1.2), a castle on a hill at sunset, dramatic clouds, "
    "volumetric light, highly detailed, intricate, 8k, octane render, trending on artstation, "
    "by greg rutkowski and alphonse mucha, golden hour, cinematic composition, wide angle lens, "
    "reflections in a lake, birds in the sky, lush green forest, winding river, mist over the "
    "valley, snow capped mountains in the distance, warm colors, soft shadows, bokeh",
    "",
]


def write_prompt_model():
    import numpy as np
    import torch
    from safetensors.torch import save_file
    from transformers import CLIPTokenizer
    tok = CLIPTokenizer.from_pretrained(VOCAB_DIR)
    model = make_model(tiny_config(16, 2, 2, 32, "quick_gelu", vocab=49408), False, 999)
    model16 = rounded(model, torch.float16)
    d = os.path.join(OUT, "sd1_prompt")
    save_folder(d, {"text_encoder": (model, torch.float16, 2)}, {"tokenizer": "<|endoftext|>"})
    prompts = {"positive": PROMPTS[1], "negative": PROMPTS[0]}
    raw = {k: tok(v)["input_ids"][1:-1] for k, v in prompts.items()}
    chunks = max(1, max((len(r) + 74) // 75 for r in raw.values()))
    ids = np.full((2, chunks, 77), 49407, dtype=np.int32)
    for b, k in enumerate(["negative", "positive"]):
        for c in range(chunks):
            part = raw[k][75 * c: 75 * (c + 1)]
            row = [49406] + part + [49407]
            ids[b, c, :len(row)] = row
    ctx, _ = run_family("sd1", [model16], [ids], 0)
    trunc = tok([prompts["negative"], prompts["positive"]], padding="max_length", max_length=77,
                truncation=True, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        ctx_trunc = model16(trunc).last_hidden_state.numpy().astype("float32")
    np.save(os.path.join(d, "context_chunked.npy"), ctx)
    np.save(os.path.join(d, "context_truncated.npy"), ctx_trunc)
    with open(os.path.join(d, "prompts.json"), "w") as f:
        json.dump({"negative": prompts["negative"], "positive": prompts["positive"], "chunks": chunks,
                   "token_counts": [len(raw["negative"]), len(raw["positive"])]}, f, indent=2)
    print("prompt model: %d tokens -> %d chunks" % (len(raw["positive"]), chunks))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tf4", default="/tmp/tf4", help="a transformers 4.x tree (for the slow tokenizer)")
    ap.add_argument("what", nargs="*", default=["tokenizer", "models"])
    a = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    if "tokenizer" in a.what:
        write_tokenizer(a.tf4)
    if "models" in a.what:
        write_models()


if __name__ == "__main__":
    main()
