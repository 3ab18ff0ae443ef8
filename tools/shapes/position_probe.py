"""position_probe.py — does a shapes renderer place an object where its caption says? A cheap
check (issue 19's diagnosis; ~20 s a model on one thread) of three things:

  text     how much the text encoder's states differ between captions that differ only in the
           cell ("top left" vs "bottom right" ...), per token and overall
  x0       the U-Net's prediction of the clean image at t = 900 from pure noise (4 draws), as
           in the first sampling step: the share of its ink in the named cell
  sampled  "A large red circle in the CELL, on a white background." for the 9 cells x K seeds
           (20 DPM-Solver++ steps, guidance 4, diffusers): the cell with the most ink, tallied
           against the named one (chance: 1/9)

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
        # x0 at t = 900 from pure noise
        t = 900
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


if __name__ == "__main__":
    main()
