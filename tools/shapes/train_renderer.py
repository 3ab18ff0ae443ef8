"""train_renderer.py — the demo's two renderers, each a tiny CLIP text encoder (with the
bundle's own BPE vocabulary) and a tiny U-Net trained together from scratch by the diffusion
loss on the shapes world's latents, saved with StableDiffusionPipeline.save_pretrained (fp16):

    OUT/model-short         trained on short captions only
    OUT/model-descriptive   trained on 95 % descriptive + 5 % short captions (DALL·E 3's blend)

They train in lockstep in one process, on the same images, noise and timesteps, from the same
initial weights, and share the VAE: the same budget by construction. The saved weights are an
exponential moving average (--ema) of the trained ones.

    nice -n 19 python tools/shapes/train_renderer.py --vae /tmp/tessera-shapes/vae --out demo --steps 1500

--levels 3 gives the U-Net a 3x3 level (one latent per grid cell) and, with --init from a
2-level pair, grows it (the old weights where the shapes match); --snr-floor weights the
noisiest steps' loss up; --save-every writes checkpoints. demo/README.md has the runs.
--high-t, --cell-noise and --zero-snr are issue 19's attempts at positions (position_probe.py
measures them): the layout of a noisy latent must stop telling where the objects are before
the text can.
"""
import argparse
import copy
import json
import os
import shutil
import time

import numpy as np
import torch
from diffusers import (AutoencoderKL, DDIMScheduler, DDPMScheduler,
                       StableDiffusionPipeline, UNet2DConditionModel)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

import bpe
import data

N_TRAIN = 20000
MAX_TOKENS = 77
TEXT_CONFIG = dict(hidden_size=64, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
                   max_position_embeddings=MAX_TOKENS, hidden_act="quick_gelu", projection_dim=64)
UNET_CONFIG = dict(        # ~1.0 M parameters; cross-attention at 6x6 only (2x2 latents per grid cell)
    sample_size=12, in_channels=4, out_channels=4, layers_per_block=1,
    block_out_channels=[32, 64], norm_num_groups=16, cross_attention_dim=64, attention_head_dim=4,
    down_block_types=["DownBlock2D", "CrossAttnDownBlock2D"],
    up_block_types=["CrossAttnUpBlock2D", "UpBlock2D"],
)
# --levels 3 (issue 19): one level more, 3x3 latents, i.e. one latent per grid cell. A 3x3
# convolution with zero padding tells each of the nine cells from the others, so the
# cross-attention there can bind "in the top left" to a place; at 6x6 the first U-Net had
# no such cue (its positions were at chance, 11-15 %, while colours and sizes were learnt).
# The new level is 32 channels wide, so that the U-Net stays as small (1.03 M parameters).
UNET_CONFIG_3 = dict(UNET_CONFIG, block_out_channels=[32, 64, 32],
                     down_block_types=["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
                     up_block_types=["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"])
SCHEDULER = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                 prediction_type="epsilon", steps_offset=1, clip_sample=False, set_alpha_to_one=False)


def latents_of(vae, images, cache):
    if os.path.exists(cache):
        return torch.from_numpy(np.load(cache))
    out = []
    with torch.no_grad():
        for i in range(0, len(images), 250):
            x = torch.from_numpy(images[i:i + 250]).permute(0, 3, 1, 2).float() / 127.5 - 1
            out.append(vae.encode(x).latent_dist.mean * vae.config.scaling_factor)
    z = torch.cat(out)
    np.save(cache, z.numpy())
    return z


def grow_state(src, dst, levels_src, levels_dst):
    """The weights of a U-Net with levels_src levels as a start for one with levels_dst: the
    outer levels keep theirs (down block l and the up block that mirrors it), the new inner
    ones take the innermost old ones' where the shapes match; the rest keep dst's own init.
    Returns the state dict and the count of tensors copied."""
    extra = levels_dst - levels_src
    out, copied = dict(dst), 0
    for name, t in dst.items():
        parts = name.split(".")
        cand = [name]
        if parts[0] == "down_blocks" and int(parts[1]) >= levels_src:
            cand = [".".join(["down_blocks", str(levels_src - 1)] + parts[2:])]
        elif parts[0] == "up_blocks":
            i = int(parts[1]) - extra      # mirror of the same outer level
            cand = [".".join(["up_blocks", str(max(i, 0))] + parts[2:])]
        for c in cand:
            if c in src and src[c].shape == t.shape:
                out[name], copied = src[c].clone(), copied + 1
                break
    return out, copied


def schedule_of(args):
    if not args.zero_snr:
        return dict(SCHEDULER)
    return dict(SCHEDULER, prediction_type="v_prediction", rescale_betas_zero_snr=True, timestep_spacing="trailing")


def save(args, renderers, vae, tokenizer, tok_dir, out_dir, step, t0):
    # DDIM's config, as SD checkpoints ship a plain one: DPMSolverMultistepScheduler's would
    # hold "-Infinity" (lambda_min_clipped), which is not JSON. Samplers are picked at run time.
    scheduler = DDIMScheduler(**schedule_of(args))
    for kind, r in renderers.items():
        out = os.path.join(out_dir, f"model-{kind}")
        # copies: .to(float16) converts in place, and training may go on after a checkpoint
        pipe = StableDiffusionPipeline(vae=copy.deepcopy(vae), text_encoder=copy.deepcopy(r["ema"]["te"]),
                                       tokenizer=tokenizer, unet=copy.deepcopy(r["ema"]["unet"]),
                                       scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                       requires_safety_checker=False)
        pipe.to(torch.float16).save_pretrained(out, safe_serialization=True)
        for name in ("vocab.json", "merges.txt"):    # transformers 5 saves only tokenizer.json
            shutil.copy(os.path.join(tok_dir, name), os.path.join(out, "tokenizer", name))
        with open(os.path.join(out, "train_log.json"), "w") as f:
            json.dump({"captions": kind if kind == "short" else "95% descriptive + 5% short", "steps": step,
                       "planned_steps": args.steps, "init": args.init, "seed": args.seed, "batch": args.batch, "lr": args.lr, "ema": args.ema,
                       "n_train": args.n, "levels": args.levels, "snr_floor": args.snr_floor,
                       "high_t": args.high_t, "high_t_from": args.high_t_from, "cell_noise": args.cell_noise, "zero_snr": args.zero_snr, "final_loss_ema": r["loss"], "seconds": time.time() - t0,
                       "loss_ema": r["log"]}, f, indent=1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vae", required=True)
    ap.add_argument("--out", required=True, help="folder for model-short/ and model-descriptive/")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--ema", type=float, default=0.99, help="decay of the weight average that is saved")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--n", type=int, default=N_TRAIN, help="training samples of the world")
    ap.add_argument("--init", help="folder with model-short/ and model-descriptive/ to continue from")
    ap.add_argument("--seed", type=int, default=0, help="data-order seed (give a stage 2 a new one)")
    ap.add_argument("--levels", type=int, default=2, choices=(2, 3),
                    help="U-Net levels: 2 (12x12, 6x6; the first bundle) or 3 (down to 3x3, one latent per cell)")
    ap.add_argument("--snr-floor", type=float, default=0.0,
                    help="weight each sample's eps-loss by max(1, F/SNR(t)): the x0 error of the noisiest steps, "
                         "where the layout is decided, counts as if its SNR were F (0: the plain eps-loss)")
    ap.add_argument("--high-t", type=float, default=0.0,
                    help="share of each batch whose timestep is drawn from [--high-t-from, 999] instead of [0, 999]: "
                         "more of the steps where the layout is decided (0: uniform)")
    ap.add_argument("--high-t-from", type=int, default=600)
    ap.add_argument("--cell-noise", type=float, default=0.0,
                    help="add this much noise that is constant over each grid cell (4x4 latents) to the training "
                         "noise: the cell-level content of a noisy latent then no longer tells where the objects "
                         "are, so the layout must come from the text (offset noise at the scale of a cell)")
    ap.add_argument("--zero-snr", action="store_true",
                    help="v-prediction on a schedule rescaled to zero terminal SNR (Lin et al. 2024), trailing "
                         "timesteps: at t = 999 the latent is pure noise, as at the first sampling step")
    ap.add_argument("--kinds", default="short,descriptive",
                    help="renderers to train (experiments only: the ablation needs both, in lockstep)")
    ap.add_argument("--save-every", type=int, default=0, help="also save both renderers to OUT/step-N every N steps")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    t0 = time.time()

    images, shorts, descs = data.load(args.n)
    # One vocabulary for both renderers, trained on both caption kinds, so that they differ
    # only in the captions they were trained on.
    tok_dir = os.path.join(data.CACHE, "clip_tokenizer")
    if args.init:                  # a continuation keeps its vocabulary (token ids index its embeddings)
        tok_dir = os.path.join(args.init, f"model-{args.kinds.split(',')[0]}", "tokenizer")
    else:
        bpe.train_clip(shorts + descs, tok_dir)
    tokenizer = CLIPTokenizer(os.path.join(tok_dir, "vocab.json"), os.path.join(tok_dir, "merges.txt"),
                              model_max_length=MAX_TOKENS, pad_token="<|endoftext|>")
    vocab = tokenizer.get_vocab()
    vae = AutoencoderKL.from_pretrained(args.vae)
    z_all = latents_of(vae, images, os.path.join(data.CACHE, f"latents_n{args.n}_{os.path.basename(os.path.normpath(args.vae))}.npy"))

    def ids_of(texts):
        return tokenizer(texts, padding="max_length", max_length=MAX_TOKENS, truncation=True,
                         return_tensors="pt").input_ids

    # The two renderers train in lockstep on the same images, noise, timesteps and caption
    # dropout; only the captions differ. Same budget by construction.
    renderers = {}
    for kind in args.kinds.split(","):
        torch.manual_seed(0)       # same initial weights too
        te = CLIPTextModel(CLIPTextConfig(vocab_size=len(vocab), bos_token_id=vocab["<|startoftext|>"],
                                          eos_token_id=vocab["<|endoftext|>"], pad_token_id=vocab["<|endoftext|>"],
                                          **TEXT_CONFIG))
        unet = UNet2DConditionModel(**(UNET_CONFIG_3 if args.levels == 3 else UNET_CONFIG))
        if args.init:              # continue from a saved pair (a second stage, fresh optimiser)
            src = os.path.join(args.init, f"model-{kind}")
            te.load_state_dict(CLIPTextModel.from_pretrained(src, subfolder="text_encoder").float().state_dict())
            old = UNet2DConditionModel.from_pretrained(src, subfolder="unet").float()
            levels_src = len(old.config.block_out_channels)
            if levels_src == args.levels:
                unet.load_state_dict(old.state_dict())
            else:                  # grown: a level more, the old weights where they fit
                state, copied = grow_state(old.state_dict(), unet.state_dict(), levels_src, args.levels)
                unet.load_state_dict(state)
                print(f"{kind}: grown from {levels_src} to {args.levels} levels, {copied} of {len(state)} tensors "
                      f"from {src}", flush=True)
        params = list(unet.parameters()) + list(te.parameters())
        opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=1e-2)
        lr_sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.steps, pct_start=0.05)
        ema = {"te": copy.deepcopy(te).requires_grad_(False), "unet": copy.deepcopy(unet).requires_grad_(False)}
        renderers[kind] = dict(te=te, unet=unet, params=params, opt=opt, sched=lr_sched, ema=ema, loss=None, log=[])
    print(f"unet params {sum(p.numel() for p in unet.parameters())} text params "
          f"{sum(p.numel() for p in te.parameters())} latents {tuple(z_all.shape)} std {z_all.std():.3f}", flush=True)

    noise_sched = DDPMScheduler(**{k: v for k, v in schedule_of(args).items() if k != "set_alpha_to_one"})
    # The eps-loss is the x0 error weighted by SNR(t): at the noisiest steps, where objects are
    # placed (later steps can no longer move a blob that is visible), it is 0.005-0.1, so the
    # text-to-place binding gets almost no signal (issue 19: positions stayed at chance while
    # colours were learnt). --snr-floor F raises that weight to F there.
    ab = noise_sched.alphas_cumprod
    snr = ab / (1 - ab)
    g = torch.Generator().manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    stop_file = os.path.join(args.out, "STOP")
    for step in range(1, args.steps + 1):
        idx = torch.randint(0, len(z_all), (args.batch,), generator=g)
        blend_short = rng.random(args.batch) < 0.05      # the descriptive renderer's 5 % short captions
        dropped = rng.random(args.batch) < 0.1           # caption dropout, for classifier-free guidance
        z0 = z_all[idx]
        noise = torch.randn(z0.shape, generator=g)
        if args.cell_noise > 0:
            cells = torch.randn(z0.shape[0], z0.shape[1], 3, 3, generator=g)
            noise = noise + args.cell_noise * cells.repeat_interleave(z0.shape[2] // 3, 2).repeat_interleave(z0.shape[3] // 3, 3)
        t = torch.randint(0, noise_sched.config.num_train_timesteps, (args.batch,), generator=g)
        if args.high_t > 0:
            t_high = torch.randint(args.high_t_from, noise_sched.config.num_train_timesteps, (args.batch,), generator=g)
            t = torch.where(torch.rand(args.batch, generator=g) < args.high_t, t_high, t)
        zt = noise_sched.add_noise(z0, noise, t)
        target = noise_sched.get_velocity(z0, noise, t) if args.zero_snr else noise
        for kind, r in renderers.items():
            texts = []
            for j, i in enumerate(idx.tolist()):
                use_short = kind == "short" or blend_short[j]
                texts.append("" if dropped[j] else (shorts[i] if use_short else descs[i]))
            cond = r["te"](ids_of(texts))[0]
            err = (r["unet"](zt, t, encoder_hidden_states=cond).sample - target).pow(2).mean(dim=(1, 2, 3))
            if args.snr_floor > 0 and not args.zero_snr:
                err = err * torch.clamp(args.snr_floor / snr[t], min=1.0)
            loss = err.mean()
            r["opt"].zero_grad(); loss.backward()
            torch.nn.utils.clip_grad_norm_(r["params"], 1.0)
            r["opt"].step(); r["sched"].step()
            with torch.no_grad():
                for name in ("te", "unet"):
                    for pe, p in zip(r["ema"][name].parameters(), r[name].parameters()):
                        pe.lerp_(p, 1 - args.ema)
            r["loss"] = loss.item() if r["loss"] is None else 0.98 * r["loss"] + 0.02 * loss.item()
        if step % 50 == 0 or step == 1:
            print(f"step {step} " + " ".join(f"{k} {r['loss']:.4f}" for k, r in renderers.items()) +
                  f" {time.time()-t0:.0f}s", flush=True)
            for r in renderers.values():
                r["log"].append((step, r["loss"]))
        if args.save_every and step % args.save_every == 0 and step < args.steps:
            save(args, renderers, vae, tokenizer, tok_dir, os.path.join(args.out, f"step-{step}"), step, t0)
        if os.path.exists(stop_file):      # touch OUT/STOP to end early (both at this step) and save
            print(f"stopped early at step {step}", flush=True)
            os.remove(stop_file)
            break

    save(args, renderers, vae, tokenizer, tok_dir, args.out, step, t0)
    print("done", {k: r["loss"] for k, r in renderers.items()}, time.time() - t0, flush=True)


if __name__ == "__main__":
    main()
