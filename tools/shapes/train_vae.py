"""train_vae.py — a tiny KL VAE (diffusers AutoencoderKL, downsample 4: 48x48x3 <-> 12x12x4)
trained from scratch on the shapes world; both renderers share it.

    nice -n 19 python tools/shapes/train_vae.py --out /tmp/tessera-shapes/vae --steps 1500
"""
import argparse
import json
import os
import time

import numpy as np
import torch
from diffusers import AutoencoderKL

import data

VAE_CONFIG = dict(
    in_channels=3, out_channels=3, latent_channels=4, sample_size=48, layers_per_block=1,
    down_block_types=["DownEncoderBlock2D"] * 3, up_block_types=["UpDecoderBlock2D"] * 3,
    block_out_channels=[32, 64, 64], norm_num_groups=16,
)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--init", help="continue from this VAE folder instead of random weights")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    images, _, _ = data.load(args.n)
    x_all = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1
    vae = AutoencoderKL.from_pretrained(args.init) if args.init else AutoencoderKL(**VAE_CONFIG)
    print("vae params", sum(p.numel() for p in vae.parameters()), flush=True)
    opt = torch.optim.AdamW(vae.parameters(), lr=args.lr, weight_decay=0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.steps, pct_start=0.05)
    g = torch.Generator().manual_seed(0)
    t0 = time.time()
    for step in range(1, args.steps + 1):
        x = x_all[torch.randint(0, len(x_all), (args.batch,), generator=g)]
        post = vae.encode(x).latent_dist
        rec = vae.decode(post.sample(generator=g)).sample
        mse = torch.nn.functional.mse_loss(rec, x)
        kl = post.kl().mean() / x[0].numel()
        # L1 keeps the flat colours exact and the edges sharp; MSE alone blurs them.
        loss = mse + (rec - x).abs().mean() + 1e-4 * kl
        opt.zero_grad(); loss.backward(); opt.step(); sched.step()
        if os.path.exists(args.out + ".stop"):   # touch OUT.stop to end early and save
            print(f"stopped early at step {step}", flush=True)
            args.steps = step
            break
        if step % 50 == 0 or step == 1:
            print(f"step {step} mse {mse.item():.5f} kl {kl.item():.3f} {time.time()-t0:.0f}s", flush=True)
    vae.eval()
    with torch.no_grad():   # scaling_factor makes the latents unit-variance, as SD does
        z = vae.encode(x_all[:500]).latent_dist.mean
        vae.register_to_config(scaling_factor=float(1.0 / z.std()))
        rec = vae.decode(z[:500]).sample
        final_mse = torch.nn.functional.mse_loss(rec, x_all[:500]).item()
    vae.save_pretrained(args.out)
    json.dump({"steps": args.steps, "batch": args.batch, "lr": args.lr, "init": args.init, "final_mse": final_mse, "seconds": time.time() - t0,
               "scaling_factor": float(1.0 / z.std())}, open(args.out + "/train_log.json", "w"), indent=1)
    print("done", final_mse, time.time() - t0, flush=True)


if __name__ == "__main__":
    main()
