"""train_expander.py — the demo's prompt expander: a tiny LlamaForCausalLM, trained from
scratch to rewrite a short prompt of the shapes world into a descriptive caption, exported
as GGUF (llama.cpp tensor names and metadata, fp16, GPT-2-style BPE tokenizer inside).

Prompt format (what a runtime feeds it, then decodes greedily until </s>):
    <s>{short prompt} =>
and it continues with
     {descriptive caption}</s>
e.g. "<s>a red circle and two squares =>" -> " A large red circle in the top left, ...</s>".

    nice -n 19 python tools/shapes/train_expander.py --out demo/expander.gguf --steps 1200
    python tools/shapes/train_expander.py --out demo/expander.gguf --steps 16000 --batch 256 \
        --pairs 400000 --device cuda       # issue 19: the faithful expander (one GPU, minutes)
    python tools/shapes/train_expander.py --reexport OLD.gguf NEW.gguf   # rewrite with current metadata
The script checks its own export: transformers loads the GGUF back (model and tokenizer)
and must give the same logits and the same greedy expansion as the trained model.
"""
import argparse
import json
import os
import time

import numpy as np
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM

import bpe
import world

SEP = " =>"
BOS, EOS = "<s>", "</s>"
# The same prompt format as a chat template (llama.cpp's tokenizer.chat_template, Jinja), so
# that chat front-ends (llama-server, Tessera's expander) build "<s>SHORT =>" from one user turn.
CHAT_TEMPLATE = ("{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}"
                 "{{ message['content'] }} =>{% endif %}{% endfor %}")
N_PAIRS = 40000
LLAMA_CONFIG = dict(hidden_size=128, intermediate_size=384, num_hidden_layers=3, num_attention_heads=4,
                    num_key_value_heads=4, max_position_embeddings=128, rms_norm_eps=1e-5, rope_theta=10000.0,
                    tie_word_embeddings=False)


def pairs(n, seed):
    out = []
    for i in range(n):
        _, _, short, desc = world.sample_captions(seed, i)
        out.append((short, desc))
    return out


def make_tokenizer(tokens, merges):
    vocab = {t: i for i, t in enumerate(tokens)}
    tk = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    return tk, vocab


def expand(model, tk, vocab, short, max_new=80):
    ids = [vocab[BOS]] + tk.encode(short + SEP).ids
    n0 = len(ids)
    device = next(model.parameters()).device
    with torch.no_grad():
        for _ in range(max_new):
            nxt = int(model(torch.tensor([ids], device=device)).logits[0, -1].argmax())
            if nxt == vocab[EOS]:
                break
            ids.append(nxt)
    return tk.decode(ids[n0:]).strip()


def permute_qk(w, n_head):
    """HF rotate-half layout -> llama.cpp's interleaved RoPE layout (as convert_hf_to_gguf.py)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def export_gguf(model, tokens, merges, vocab, path):
    import gguf
    cfg = model.config
    w = gguf.GGUFWriter(path + ".tmp", "llama")
    w.add_name("tessera-shapes-expander")
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_rope_dimension_count(cfg.hidden_size // cfg.num_attention_heads)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_rope_freq_base(LLAMA_CONFIG["rope_theta"])
    assert cfg.rope_parameters["rope_theta"] == LLAMA_CONFIG["rope_theta"], cfg.rope_parameters
    w.add_vocab_size(len(tokens))
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt-2")
    w.add_token_list(tokens)
    w.add_token_types([gguf.TokenType.CONTROL if t in (BOS, EOS) else gguf.TokenType.NORMAL for t in tokens])
    w.add_token_merges([f"{a} {b}" for a, b in merges])
    w.add_bos_token_id(vocab[BOS])
    w.add_eos_token_id(vocab[EOS])
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.add_chat_template(CHAT_TEMPLATE)
    # How Tessera's expander should drive this base model (models/llm/llm_expander.h): the
    # completion format instead of a chat, greedy, no repetition penalty.
    w.add_string("tessera.expander.prompt_format", "{prompt} =>")
    w.add_float32("tessera.expander.temperature", 0.0)
    w.add_float32("tessera.expander.repeat_penalty", 1.0)
    # Decode under the shapes world's grammar (models/llm/expand_grammar.h): the reply may only
    # be a descriptive caption that keeps every phrase of the short prompt (issue 19).
    w.add_string("tessera.expander.grammar", "shapes")
    sd = {k: v.detach().float().cpu().numpy() for k, v in model.state_dict().items()}
    names = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
             "lm_head.weight": "output.weight"}
    per_layer = {"input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
                 "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output", "post_attention_layernorm": "ffn_norm",
                 "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}
    for i in range(cfg.num_hidden_layers):
        for hf, gg in per_layer.items():
            names[f"model.layers.{i}.{hf}.weight"] = f"blk.{i}.{gg}.weight"
    for hf, gg in names.items():
        t = sd[hf]
        if gg.endswith("attn_q.weight"):
            t = permute_qk(t, cfg.num_attention_heads)
        elif gg.endswith("attn_k.weight"):
            t = permute_qk(t, cfg.num_key_value_heads)
        # llama.cpp keeps 1-D tensors (norms) in F32, matrices in F16.
        w.add_tensor(gg, t.astype(np.float32 if t.ndim == 1 else np.float16))
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
    os.replace(path + ".tmp", path)


def reexport(src, dst):
    """Writes src's model again through export_gguf (as transformers reads it back), e.g. to add
    metadata that a later version of this script writes. Tensors come out bit-identical."""
    import gguf
    from transformers import AutoModelForCausalLM
    r = gguf.GGUFReader(src)
    field = lambda k: [bytes(r.fields[k].parts[i]).decode() for i in r.fields[k].data]
    tokens = field("tokenizer.ggml.tokens")
    merges = [tuple(m.split(" ", 1)) for m in field("tokenizer.ggml.merges")]
    d, f = os.path.split(os.path.abspath(src))
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32)
    export_gguf(model, tokens, merges, {t: i for i, t in enumerate(tokens)}, dst)
    back = gguf.GGUFReader(dst)
    for a, b in zip(r.tensors, back.tensors):
        assert a.name == b.name and np.array_equal(a.data, b.data), a.name


def main():
    import sys
    if len(sys.argv) == 4 and sys.argv[1] == "--reexport":
        return reexport(sys.argv[2], sys.argv[3])
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--pairs", type=int, default=N_PAIRS, help="training pairs (world seed 1)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    t0 = time.time()
    train = pairs(args.pairs, seed=1)
    tokens, merges = bpe.train_gpt2([s + SEP + " " + d for s, d in train[:5000]], [BOS, EOS])
    tk, vocab = make_tokenizer(tokens, merges)
    seqs, masks = [], []
    prompts = tk.encode_batch([s + SEP for s, _ in train])
    completions = tk.encode_batch([" " + d for _, d in train])
    for pe, ce in zip(prompts, completions):
        p = [vocab[BOS]] + pe.ids
        c = ce.ids + [vocab[EOS]]
        seqs.append(p + c); masks.append([0] * len(p) + [1] * len(c))
    L = max(map(len, seqs))
    assert L <= LLAMA_CONFIG["max_position_embeddings"], L
    X = torch.full((len(seqs), L), vocab[EOS]); M = torch.zeros((len(seqs), L))
    for i, (s, m) in enumerate(zip(seqs, masks)):
        X[i, :len(s)] = torch.tensor(s); M[i, :len(m)] = torch.tensor(m, dtype=torch.float)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokens), bos_token_id=vocab[BOS], eos_token_id=vocab[EOS],
                                         **LLAMA_CONFIG)).to(args.device)
    X, M = X.to(args.device), M.to(args.device)
    print(f"expander params {sum(p.numel() for p in model.parameters())} vocab {len(tokens)} max len {L}", flush=True)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-2)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.steps, pct_start=0.05)
    g = torch.Generator().manual_seed(0)
    log, ema = [], None
    for step in range(1, args.steps + 1):
        idx = torch.randint(0, len(X), (args.batch,), generator=g).to(args.device)
        x, m = X[idx], M[idx]
        n = int(m.sum(0).nonzero().max()) + 1
        x, m = x[:, :n], m[:, :n]
        logits = model(x).logits[:, :-1]
        nll = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1), reduction="none")
        loss = (nll * m[:, 1:].reshape(-1)).sum() / m[:, 1:].sum()
        opt.zero_grad(); loss.backward(); torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step(); sched.step()
        ema = loss.item() if ema is None else 0.98 * ema + 0.02 * loss.item()
        if step % 100 == 0 or step == 1:
            print(f"step {step} loss {loss.item():.4f} ema {ema:.4f} {time.time()-t0:.0f}s", flush=True)
            log.append((step, ema))
    model.eval()
    model.to("cpu")
    export_gguf(model, tokens, merges, vocab, args.out)

    # The export must round-trip through a reference reader of GGUF (transformers).
    from transformers import AutoModelForCausalLM, AutoTokenizer
    d, f = os.path.split(os.path.abspath(args.out))
    back = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, torch_dtype=torch.float32)
    back_tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    probe = "a red circle and two blue squares" + SEP
    ids = [vocab[BOS]] + tk.encode(probe).ids
    assert back_tok(probe).input_ids == ids, (back_tok(probe).input_ids, ids)
    # The file keeps matrices in F16 and norms in F32: compare with the model rounded the same way.
    half = LlamaForCausalLM(model.config)
    half.load_state_dict({k: v.half().float() if v.ndim == 2 else v for k, v in model.state_dict().items()})
    with torch.no_grad():
        err = (back(torch.tensor([ids])).logits - half(torch.tensor([ids])).logits).abs().max().item()
    scale = half(torch.tensor([ids])).logits.abs().max().item()
    print(f"gguf round trip: max logit diff vs fp16-rounded model {err:.2e} (logits up to {scale:.1f})", flush=True)
    assert err < 1e-4 * max(1.0, scale), err
    held = pairs(200, seed=2)
    exact = 0
    samples = []
    model.to(args.device)
    for s, dsc in held[:50]:
        e = expand(model, tk, vocab, s)
        exact += e == dsc
        if len(samples) < 5:
            samples.append((s, e))
    print(f"held-out: {exact} of 50 expansions equal the world's descriptive caption", flush=True)
    for s, e in samples:
        print(f"  {s!r} -> {e!r}")
    with open(os.path.splitext(args.out)[0] + "_train_log.json", "w") as f:
        json.dump({"steps": args.steps, "batch": args.batch, "lr": args.lr, "n_pairs": args.pairs, "device": args.device,
                   "params": sum(p.numel() for p in model.parameters()), "final_loss_ema": ema,
                   "seconds": time.time() - t0, "gguf_logit_max_diff": err, "samples": samples, "loss_ema": log}, f, indent=1)
    print("done", ema, time.time() - t0, flush=True)


if __name__ == "__main__":
    main()
