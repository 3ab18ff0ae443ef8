"""finetune_decoder.py — trains the VAE's decoder further with its encoder frozen, so latents
already made by the encoder (and the renderers trained on them) stay valid. The loss weighs
shape pixels 5x against the white background, which otherwise dominates and lets the decoder
blur red, orange and yellow together.

    nice -n 19 python tools/shapes/finetune_decoder.py --vae /tmp/tessera-shapes/vae2 \
        --out /tmp/tessera-shapes/vae3 --steps 600
    python tools/shapes/finetune_decoder.py --install /tmp/tessera-shapes/vae3 demo/model-short demo/model-descriptive
The second line puts the fine-tuned VAE (fp16) into the renderers' pipeline folders.
"""
import argparse
import json
import os
import time

import numpy as np
import torch
from diffusers import AutoencoderKL

import data


def install(vae_dir, pipelines):
    vae = AutoencoderKL.from_pretrained(vae_dir).to(torch.float16)
    for p in pipelines:
        vae.save_pretrained(os.path.join(p, "vae"), safe_serialization=True)
        print("installed", vae_dir, "in", p)


def main():
    import sys
    if len(sys.argv) > 2 and sys.argv[1] == "--install":
        return install(sys.argv[2], sys.argv[3:])
    ap = argparse.ArgumentParser()
    ap.add_argument("--vae", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    t0 = time.time()
    images, _, _ = data.load(args.n)
    vae = AutoencoderKL.from_pretrained(args.vae)
    cache = os.path.join(data.CACHE, f"latents_n{args.n}_{os.path.basename(os.path.normpath(args.vae))}.npy")
    z_all = torch.from_numpy(np.load(cache)) / vae.config.scaling_factor     # the encoder's means
    x_all = torch.from_numpy(images).permute(0, 3, 1, 2)
    params = list(vae.decoder.parameters()) + list(vae.post_quant_conv.parameters())
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.steps, pct_start=0.05)
    g = torch.Generator().manual_seed(0)
    log = []
    for step in range(1, args.steps + 1):
        idx = torch.randint(0, len(z_all), (args.batch,), generator=g)
        x = x_all[idx].float() / 127.5 - 1
        weight = 1 + 4 * (x.min(dim=1, keepdim=True).values < 0.9).float()      # shape pixels x5
        rec = vae.decode(z_all[idx]).sample
        loss = (weight * ((rec - x).abs() + (rec - x) ** 2)).mean()
        opt.zero_grad(); loss.backward(); opt.step(); sched.step()
        if step % 50 == 0 or step == 1:
            print(f"step {step} loss {loss.item():.4f} {time.time()-t0:.0f}s", flush=True)
            log.append((step, loss.item()))
        if os.path.exists(args.out + ".stop"):
            print(f"stopped early at step {step}", flush=True)
            break
    vae.save_pretrained(args.out)
    json.dump({"from": args.vae, "steps": step, "planned_steps": args.steps, "batch": args.batch, "lr": args.lr,
               "seconds": time.time() - t0, "loss": log}, open(os.path.join(args.out, "train_log.json"), "w"), indent=1)
    print("done", time.time() - t0, flush=True)


if __name__ == "__main__":
    main()
