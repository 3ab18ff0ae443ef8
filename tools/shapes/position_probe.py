"""position_probe.py — does a shapes renderer place an object where its caption says? A cheap
check (issue 19's diagnosis; ~20 s a model on one thread) of:

  text     how much the text encoder's states differ between captions that differ only in the
           cell ("top left" vs "bottom right" ...), per token and overall
  x0       the U-Net's prediction of the clean image at t = 900 from pure noise (4 draws), as
           in the first sampling step: the share of its ink in the named cell
  sampled  "A large red circle in the CELL, on a white background." for the 9 cells x K seeds
           (20 DPM-Solver++ steps, guidance 4, diffusers): the cell with the most ink, tallied
           against the named one (chance: 1/9)
  data     (--data) the training data itself: the cells holding ink in the first 500 images of
           data.py's cache against the cells their descriptive captions name, the cache
           against world.sample, and the cached latents against a fresh encoding
  leak     (--leak) one-object training images noised to t = 999, 950, 900, 800: how often the
           x0 predicted without text, and with the caption, has its most ink in the object's
           cell, i.e. how much of the layout the noisy latent itself still shows (at t = 999
           of the scaled-linear schedule sqrt(alpha_bar) = 0.068, and a cell pools 64 latents)

    python tools/shapes/position_probe.py demo/model-descriptive [--seeds 6]
"""
import argparse
import os
import sys
import warnings

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import world

warnings.filterwarnings("ignore")


def ink_cells(img):
    """img: [48, 48, 3] in 0..1 -> ink (darkness) per cell, 9 values, row-major."""
    ink = np.clip(3.0 - img.sum(-1), 0, 3)
    return ink.reshape(3, 16, 3, 16).sum((1, 3)).flatten()


def main():
    from diffusers import DPMSolverMultistepScheduler, StableDiffusionPipeline
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="a renderer folder (model-descriptive)")
    ap.add_argument("--seeds", type=int, default=6)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--t", type=int, default=900, help="timestep of the x0 check")
    ap.add_argument("--data", action="store_true", help="also the data check (data.py's cache)")
    ap.add_argument("--leak", action="store_true", help="also the leak check on 60 training images (data.py's cache)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    pipe = StableDiffusionPipeline.from_pretrained(args.model, torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    tok, te, unet, vae = pipe.tokenizer, pipe.text_encoder, pipe.unet, pipe.vae
    names = [world.cell_name(c) for c in range(9)]
    caps = [f"A large red circle in the {n}, on a white background." for n in names]
    enc = lambda texts: te(tok(texts, padding="max_length", max_length=77, truncation=True,
                               return_tensors="pt").input_ids)[0]
    with torch.no_grad():
        h = enc(caps)
        # text: top left (0) vs bottom right (8): same token count, differ from the cell words on
        rel = ((h[0] - h[8]).norm(dim=-1) / h[0].norm(dim=-1))[:20].numpy()
        off = [((h[a] - h[b]).norm() / h[a].norm()).item() for a in range(9) for b in range(9)
               if a != b and 4 not in (a, b)]
        print(f"text: rel. difference top left / bottom right per token (first 20): {' '.join(f'{v:.3f}' for v in rel)}")
        print(f"text: mean rel. difference of whole states between two-word cells: {np.mean(off):.3f}")
        # x0 at t = 900 (--t) from pure noise
        t = args.t
        ab = pipe.scheduler.alphas_cumprod[t]
        n = torch.randn(4, 4, 12, 12, generator=torch.Generator().manual_seed(0))
        share = []
        for c in range(9):
            eps = unet(n, t, encoder_hidden_states=h[c:c + 1].expand(4, -1, -1)).sample
            if pipe.scheduler.config.prediction_type == "v_prediction":
                x0 = ab.sqrt() * n - (1 - ab).sqrt() * eps
            else:
                x0 = (n - (1 - ab).sqrt() * eps) / ab.sqrt()
            img = (vae.decode(x0 / vae.config.scaling_factor).sample.clamp(-1, 1) + 1) / 2
            ink = sum(ink_cells(im.permute(1, 2, 0).numpy()) for im in img)
            share.append(ink[c] / ink.sum())
        print(f"x0 at t={t}: share of ink in the named cell: {' '.join(f'{v:.3f}' for v in share)} "
              f"(mean {np.mean(share):.3f}; 0.111 = no preference)")
        # sampled
        pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)
        hits = np.zeros((9, 9), int)
        for c in range(9):
            gens = [torch.Generator().manual_seed(s) for s in range(args.seeds)]
            ims = pipe([caps[c]] * args.seeds, height=48, width=48, num_inference_steps=20, guidance_scale=4.0,
                       generator=gens, output_type="np").images
            for im in ims:
                hits[c, int(ink_cells(im).argmax())] += 1
    print("sampled: rows the named cell, columns the cell with the most ink:")
    print("\n".join("  " + " ".join(f"{v:2d}" for v in row) + f"   {names[i]}" for i, row in enumerate(hits)))
    print(f"sampled: placed in the named cell {np.trace(hits)} of {hits.sum()} "
          f"({100 * np.trace(hits) / hits.sum():.1f} %; chance 11.1 %)")
    if args.data:
        check_data(pipe.vae, names)
    if args.leak:
        leak(pipe, enc, names)


def check_data(vae, names, n=500):
    import data
    images, _, descs = data.load(20000)
    bad = 0
    for i in range(n):
        named = sorted(c for c in range(9) if f"in the {names[c]}," in descs[i] or f"in the {names[c]}." in descs[i])
        inked = [c for c in range(9) if ink_cells(images[i] / 255.0)[c] > 5]
        bad += named != inked
    same = all((world.sample(data.TRAIN_SEED, i)[1] == images[i]).all() and world.sample(data.TRAIN_SEED, i)[3] == descs[i]
               for i in (0, 1, n - 1))
    z = torch.from_numpy(np.load(os.path.join(data.CACHE, "latents_n20000_vae.npy"))[:8])
    with torch.no_grad():
        x = torch.from_numpy(images[:8]).permute(0, 3, 1, 2).float() / 127.5 - 1
        diff = (vae.encode(x).latent_dist.mean * vae.config.scaling_factor - z).abs().max().item()
    print(f"data: inked cells = named cells in {n - bad} of {n} training images; cache = world.sample: {same}; "
          f"cached latents vs a fresh encoding: max difference {diff:.1e}")


def leak(pipe, enc, names):
    import data
    unet, vae = pipe.unet, pipe.vae
    images, _, descs = data.load(20000)
    del images
    # the latents train_renderer.py cached with --vae demo/model-descriptive/vae (the bundle's VAE)
    z = torch.from_numpy(np.load(os.path.join(data.CACHE, "latents_n20000_vae.npy")))
    idx = [i for i in range(19000, 20000) if descs[i].count(" in the ") == 1][:60]
    cells = [next(c for c in range(9) if f"in the {names[c]}," in descs[i]) for i in idx]
    sched = pipe.scheduler
    ab_all = sched.alphas_cumprod
    with torch.no_grad():
        conds = {"no text": enc([""]).expand(len(idx), -1, -1), "caption": enc([str(descs[i]) for i in idx])}
        n = torch.randn(len(idx), 4, 12, 12, generator=torch.Generator().manual_seed(1))
        for t in (999, 950, 900, 800):
            ab = ab_all[t]
            zt = ab.sqrt() * z[idx] + (1 - ab).sqrt() * n
            row = []
            for name, h in conds.items():
                out = unet(zt, t, encoder_hidden_states=h).sample
                if sched.config.prediction_type == "v_prediction":
                    x0 = ab.sqrt() * zt - (1 - ab).sqrt() * out
                else:
                    x0 = (zt - (1 - ab).sqrt() * out) / ab.sqrt()
                img = ((vae.decode(x0 / vae.config.scaling_factor).sample.clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1)
                hit = np.mean([int(ink_cells(im.numpy()).argmax()) == c for im, c in zip(img, cells)])
                row.append(f"{name} {100 * hit:.0f} %")
            print(f"leak: t={t} (sqrt(alpha_bar) {ab.sqrt():.3f}): x0's most-inked cell is the object's in "
                  + ", ".join(row) + f" of {len(idx)} one-object training images")



if __name__ == "__main__":
    main()
