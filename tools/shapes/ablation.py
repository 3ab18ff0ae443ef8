"""ablation.py — the DALL·E 3 table in miniature: does a renderer trained on descriptive
captions, fed prompts upsampled by the expander, follow short prompts better than one
trained on short captions?

Over 200 held-out short prompts of the shapes world (seed 2) it renders
  (a) model-short        on the short prompts
  (b) model-descriptive  on the short prompts
  (c) model-descriptive  on the prompts expanded by demo/expander.gguf (greedy)
and scores every image against its *short* prompt with `tessera eval shapes`.

    python tools/shapes/ablation.py --out /tmp/shapes-ablation [--runtime diffusers]
    python tools/shapes/ablation.py --out /tmp/x --demo-prompts   # demo/prompts_expanded.txt

--runtime diffusers renders with diffusers' StableDiffusionPipeline and expands with
transformers' GGUF reader (the reference implementations; an interim result until Tessera's
own runtime renders). --runtime tessera expands with `tessera expand --prompt-format "{prompt} =>"` and renders with
`tessera txt2img`.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import torch

import world

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
N_PROMPTS, HELDOUT_SEED = 200, 2
STEPS, GUIDANCE = 20, 4.0
SEP, BOS, EOS = " =>", "<s>", "</s>"


def heldout_prompts(n=N_PROMPTS):
    return [world.sample_captions(HELDOUT_SEED, i)[2] for i in range(n)]


def expand_reference(gguf_path, prompts):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    d, f = os.path.split(os.path.abspath(gguf_path))
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    eos = tok.convert_tokens_to_ids(EOS)
    out = []
    with torch.no_grad():
        for p in prompts:
            ids = tok(p + SEP).input_ids          # the tokenizer adds <s>
            n0 = len(ids)
            for _ in range(96):
                nxt = int(model(torch.tensor([ids])).logits[0, -1].argmax())
                if nxt == eos:
                    break
                ids.append(nxt)
            out.append(tok.decode(ids[n0:]).strip())
    return out


def render_reference(model_dir, prompts, out_dir, batch=50):
    from diffusers import StableDiffusionPipeline
    from diffusers import DPMSolverMultistepScheduler
    pipe = StableDiffusionPipeline.from_pretrained(model_dir, torch_dtype=torch.float32)
    pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)      # DPM++ 2M
    pipe.set_progress_bar_config(disable=True)
    os.makedirs(out_dir, exist_ok=True)
    for start in range(0, len(prompts), batch):
        chunk = prompts[start:start + batch]
        gens = [torch.Generator().manual_seed(start + i) for i in range(len(chunk))]   # seed = prompt index
        images = pipe(chunk, height=48, width=48, num_inference_steps=STEPS, guidance_scale=GUIDANCE,
                      generator=gens).images
        for i, img in enumerate(images):
            img.save(os.path.join(out_dir, f"{start + i:05d}.png"))


def expand_tessera(tessera, gguf_path, prompts, work):
    """`tessera expand` with the expander's raw prompt format, greedy, until </s>."""
    src = os.path.join(work, "expand_input.txt")
    open(src, "w").write("\n".join(prompts) + "\n")
    r = subprocess.run([tessera, "-q", "expand", "-m", gguf_path, "--prompt-format", "{prompt}" + SEP, "-f", src,
                        "--temp", "0", "--repeat-penalty", "1"], check=True, capture_output=True, text=True,
                       env=dict(os.environ, OMP_NUM_THREADS="1"))
    out = r.stdout.rstrip("\n").split("\n")
    assert len(out) == len(prompts), (len(out), len(prompts))
    return out


def render_tessera(tessera, model_dir, prompts, out_dir):
    """`tessera txt2img`, one call per prompt, the same settings and seeds as diffusers."""
    os.makedirs(out_dir, exist_ok=True)
    for i, p in enumerate(prompts):
        subprocess.run([tessera, "-q", "txt2img", "-m", model_dir, "-p", p, "--seed", str(i), "--sampler", "dpm++2m",
                        "--steps", str(STEPS), "--cfg-scale", str(GUIDANCE), "-W", "48", "-H", "48", "-t", "1",
                        "-o", os.path.join(out_dir, f"{i:05d}.png")], check=True, capture_output=True,
                       env=dict(os.environ, OMP_NUM_THREADS="1"))


def draw_exactly(captions, out_dir):
    """Draws descriptive captions with the world's own renderer: what a perfect renderer would
    make of them. Scored against the short prompts, this is the expander's ceiling."""
    import re
    from PIL import Image
    names = [world.cell_name(c) for c in range(9)]
    pat = re.compile(r"an? (small|large) (\w+) (circle|square|triangle) in the ([a-z ]+?)(?=,|\.|$)")
    os.makedirs(out_dir, exist_ok=True)
    for i, cap in enumerate(captions):
        scene = [{"size": m[0], "colour": m[1], "shape": m[2], "cell": names.index(m[3]), "jx": 0, "jy": 0}
                 for m in pat.findall(cap.lower()) if m[1] in world.COLOURS and m[3] in names]
        Image.fromarray(world.render(scene)).save(os.path.join(out_dir, f"{i:05d}.png"))


def score(tessera, images, prompts_file):
    js = images + ".json"
    subprocess.run([tessera, "eval", "shapes", "--images", images, "--prompts", prompts_file, "--json", js],
                   check=True, stdout=subprocess.DEVNULL)
    return json.load(open(js))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--runtime", choices=["diffusers", "tessera"], default="diffusers")
    ap.add_argument("--demo", default=os.path.join(ROOT, "demo"))
    ap.add_argument("--tessera", default=None, help="the tessera program (default: build/release/tessera)")
    ap.add_argument("--n", type=int, default=N_PROMPTS)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--demo-prompts", action="store_true",
                    help="only expand demo/prompts.txt into demo/prompts_expanded.txt (for the CI test)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.demo_prompts:
        shorts = [l.strip() for l in open(os.path.join(args.demo, "prompts.txt")) if l.strip()]
        expanded = expand_reference(os.path.join(args.demo, "expander.gguf"), shorts)
        open(os.path.join(args.demo, "prompts_expanded.txt"), "w").write("\n".join(expanded) + "\n")
        return 0
    tessera = args.tessera or os.path.join(ROOT, "build", "release", "tessera")
    os.makedirs(args.out, exist_ok=True)
    t0 = time.time()
    shorts = heldout_prompts(args.n)
    short_file = os.path.join(args.out, "short_prompts.txt")
    open(short_file, "w").write("\n".join(shorts) + "\n")
    expander = os.path.join(args.demo, "expander.gguf")
    if args.runtime == "diffusers":
        expanded = expand_reference(expander, shorts)
    else:
        expanded = expand_tessera(tessera, expander, shorts, args.out)
    open(os.path.join(args.out, "expanded_prompts.txt"), "w").write("\n".join(expanded) + "\n")
    print(f"expanded {len(expanded)} prompts in {time.time()-t0:.0f}s", flush=True)
    if args.runtime == "diffusers":
        render = render_reference
    else:
        def render(model_dir, prompts, out_dir):
            render_tessera(tessera, model_dir, prompts, out_dir)
    rows = [("a", "short-caption model, short prompts", "model-short", shorts),
            ("b", "descriptive model, short prompts", "model-descriptive", shorts),
            ("c", "descriptive model, expanded prompts", "model-descriptive", expanded)]
    results = {}
    for key, label, model, prompts in rows:
        images = os.path.join(args.out, key)
        render(os.path.join(args.demo, model), prompts, images)
        results[key] = score(tessera, images, short_file)
        print(f"({key}) {label}: overall {results[key]['overall']:.3f} ({time.time()-t0:.0f}s)", flush=True)
    draw_exactly(expanded, os.path.join(args.out, "c_exact"))
    results["c*"] = score(tessera, os.path.join(args.out, "c_exact"), short_file)
    rows.append(("c*", "expanded prompts drawn exactly by the world's renderer (expander's ceiling)", None, None))
    attrs = list(results["a"]["attributes"])
    lines = [f"Runtime: {args.runtime}; {args.n} held-out short prompts (world seed {HELDOUT_SEED}); "
             f"{STEPS} DPM-Solver++ steps, guidance {GUIDANCE}, seed = prompt index; scored against the short prompt.", "",
             "| | " + " | ".join(attrs) + " | checks | **overall** |",
             "|---|" + "---|" * (len(attrs) + 2)]
    for key, label, _, _ in rows:
        r = results[key]
        cells = [f"{100 * r['attributes'][a]['accuracy']:.1f}" if r["attributes"][a]["total"] else "–" for a in attrs]
        lines.append(f"| ({key}) {label} | " + " | ".join(cells) +
                     f" | {100 * r['checks_accuracy']:.1f} | **{100 * r['overall']:.1f}** |")
    table = "\n".join(lines)
    open(os.path.join(args.out, "table.md"), "w").write(table + "\n")
    json.dump(results, open(os.path.join(args.out, "results.json"), "w"), indent=1)
    print(table)


if __name__ == "__main__":
    sys.exit(main())
