"""ablation.py — the DALL·E 3 table in miniature: does a renderer trained on descriptive
captions, fed prompts upsampled by the expander, follow short prompts better than one
trained on short captions?

Over 200 held-out short prompts of the shapes world (seed 2) it renders
  (a) model-short        on the short prompts
  (b) model-descriptive  on the short prompts
  (c) model-descriptive  on the prompts expanded by demo/expander.gguf
  (c*) the accepted expansions drawn exactly by the world's renderer (the expander's ceiling)
and scores every image against its *short* prompt with `tessera eval shapes`, strict (exact
counts) and lenient, with exact McNemar tests on the paired per-prompt verdicts.

    python tools/shapes/ablation.py --out /tmp/shapes-ablation [--runtime diffusers]
    python tools/shapes/ablation.py --out /tmp/x --demo-prompts   # demo/prompts_expanded{,_hf}.txt

--runtime tessera (issue 19) runs every row as a `tessera run` job: kind render for (a) and
(b), kind generate with `expand.check: keep-words` (expand.retries 16) for (c); seed = prompt
index (the dataset's seed field), 20 DPM-Solver++ steps, guidance 4. --runtime diffusers
renders with diffusers' StableDiffusionPipeline and expands greedily with transformers' GGUF
reader (the reference implementations; no faithfulness check there).
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
    """Scores a folder against a prompt file; per-image verdicts in file-name order."""
    js = images + ".json"
    subprocess.run([tessera, "eval", "shapes", "--images", images, "--prompts", prompts_file, "--json", js],
                   check=True, stdout=subprocess.DEVNULL)
    r = json.load(open(js))
    r["verdicts"] = [(im["strict"], im["lenient"]) for im in r["images"]]
    return r


def run_job(tessera, work, model_dir, prompts, expander=None, retries=16):
    """One `tessera run` job over the prompts (seed = index); returns its manifest records by
    index and its score (per-image verdicts by index) against the short prompts."""
    os.makedirs(work, exist_ok=True)
    dataset = os.path.join(work, "dataset.jsonl")
    with open(dataset, "w") as f:
        for i, p in enumerate(prompts):
            f.write(json.dumps({"id": f"p{i:05d}", "prompt": p, "seed": i}) + "\n")
    out = os.path.join(work, "job")
    args = [tessera, "-q", "run", f"--kind={'generate' if expander else 'render'}", f"--dataset.path={dataset}",
            "--dataset.format=jsonl", f"--models.diffusion={model_dir}", "--sampler.name=dpm++2m",
            f"--sampler.steps={STEPS}", f"--sampler.cfg={GUIDANCE}", "--sampler.width=48", "--sampler.height=48",
            f"--output.dir={out}", "--output.layout=files", "--workers.backend=model", "--workers.render=2"]
    if expander:
        args += [f"--models.expander={expander}", "--expand.check=keep-words", f"--expand.retries={retries}"]
    subprocess.run(args, check=True, capture_output=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    manifest = os.path.join(out, "manifest.jsonl")
    records = {}
    for line in open(manifest):
        r = json.loads(line)
        records[int(r["id"][1:])] = r
    assert sorted(records) == list(range(len(prompts))), "the job did not render every prompt once"
    js = os.path.join(work, "score.json")
    subprocess.run([tessera, "eval", "shapes", "--manifest", manifest, "--json", js], check=True,
                   stdout=subprocess.DEVNULL)
    result = json.load(open(js))
    by_index = {}
    for im in result["images"]:
        by_index[int(os.path.basename(im["file"])[1:].split(".")[0])] = (im["strict"], im["lenient"])
    result["verdicts"] = [by_index[i] for i in range(len(prompts))]
    return records, result


FAITHFULNESS_ROWS = (("none", None), ("none", 0), ("none", 4), ("none", 16), ("shapes", None), ("shapes", 16))


def expander_faithfulness(tessera, expander, shorts, out, rows=FAITHFULNESS_ROWS):
    """What the expander keeps of the short prompts: `tessera expand` greedy, without the
    grammar (--grammar none) and with the keep-words check and 0/4/16 retries (None: no
    check), then under the shapes grammar. The accepted expansions are drawn exactly and
    scored against their short prompts; fallbacks (the short prompt itself) are counted
    apart; "kept" is expansion_check.py's verdict (the world's meaning). Returns markdown
    table lines."""
    import expansion_check
    src = os.path.join(out, "short_prompts.txt")
    open(src, "w").write("\n".join(shorts) + "\n")
    lines = ["| expander | fell back | object | shape | colour | count | position | size | checks | strict "
             "| kept (expansion_check.py) |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for grammar, r in rows:
        args = [tessera, "-q", "expand", "-m", expander, "--prompt-format", "{prompt}" + SEP, "-f", src,
                "--temp", "0", "--repeat-penalty", "1", "--grammar", grammar]
        if r is not None:
            args += ["--check", "keep-words", "--check-retries", str(r)]
        got = subprocess.run(args, check=True, capture_output=True, text=True,
                             env=dict(os.environ, OMP_NUM_THREADS="1")).stdout.rstrip("\n").split("\n")
        assert len(got) == len(shorts)
        accepted = [i for i in range(len(shorts)) if got[i] != shorts[i]]
        name = ("greedy" if r is None else f"keep-words, {r} retries") + \
            (", shapes grammar" if grammar != "none" else ", no grammar")
        d = os.path.join(out, "faithfulness", name.replace(" ", "_").replace(",", ""))
        os.makedirs(d, exist_ok=True)
        acc = os.path.join(d, "short.txt")
        open(acc, "w").write("\n".join(shorts[i] for i in accepted) + "\n")
        open(os.path.join(d, "expanded.txt"), "w").write("\n".join(got) + "\n")
        draw_exactly([got[i] for i in accepted], os.path.join(d, "images"))
        sc = score(tessera, os.path.join(d, "images"), acc)
        kept = sum(expansion_check.keeps(shorts[i], got[i]) for i in accepted)
        cells = [f"{100 * sc['attributes'][a]['accuracy']:.1f}" if sc["attributes"][a]["total"] else "–" for a in
                 ("object", "shape", "colour", "count", "position", "size")]
        lines.append(f"| {name} | {len(shorts) - len(accepted)} | " + " | ".join(cells) +
                     f" | {100 * sc['checks_accuracy']:.1f} | {100 * sc['strict']:.1f} | {kept} of {len(shorts)} |")
    return lines


def mcnemar(x, y):
    """Exact two-sided McNemar test on paired booleans: (x right & y wrong, y right & x wrong, p)."""
    from math import comb
    b = sum(1 for u, v in zip(x, y) if u and not v)
    c = sum(1 for u, v in zip(x, y) if v and not u)
    n, k = b + c, min(b, c)
    p = 1.0 if n == 0 else min(1.0, 2 * sum(comb(n, i) for i in range(k + 1)) / 2 ** n)
    return b, c, p


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--runtime", choices=["diffusers", "tessera"], default="diffusers")
    ap.add_argument("--demo", default=os.path.join(ROOT, "demo"))
    ap.add_argument("--tessera", default=None, help="the tessera program (default: build/release/tessera)")
    ap.add_argument("--n", type=int, default=N_PROMPTS)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--retries", type=int, default=16, help="expand.retries of the keep-words check")
    ap.add_argument("--baseline-expander", default=None,
                    help="(runtime tessera) also row (c0): the expander in this file, e.g. the demo's before it "
                         "named a grammar, with the same check and retries")
    ap.add_argument("--compare-demo", default=None,
                    help="(runtime tessera) also row (cp): row (c) with the renderer of this bundle (e.g. the one "
                         "before a retraining: `git show` it into a folder), paired with (c)")
    ap.add_argument("--demo-prompts", action="store_true",
                    help="only expand demo/prompts.txt into demo/prompts_expanded.txt (tessera, as the demo "
                         "does) and demo/prompts_expanded_hf.txt (transformers, greedy, no grammar) for the CI tests")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    tessera = args.tessera or os.path.join(ROOT, "build", "release", "tessera")
    if args.demo_prompts:
        # transformers' greedy expansions (no grammar), and what `tessera expand` makes of the
        # prompts as the file says (under its grammar): tests/parity/test_demo_expander.sh
        # holds the second to the first wherever the first keeps its prompt.
        src = os.path.join(args.demo, "prompts.txt")
        shorts = [l.strip() for l in open(src) if l.strip()]
        expanded = expand_reference(os.path.join(args.demo, "expander.gguf"), shorts)
        open(os.path.join(args.demo, "prompts_expanded_hf.txt"), "w").write("\n".join(expanded) + "\n")
        got = subprocess.run([tessera, "-q", "expand", "-m", os.path.join(args.demo, "expander.gguf"), "-f", src],
                             check=True, capture_output=True, text=True).stdout
        open(os.path.join(args.demo, "prompts_expanded.txt"), "w").write(got)
        return 0
    os.makedirs(args.out, exist_ok=True)
    t0 = time.time()
    shorts = heldout_prompts(args.n)
    short_file = os.path.join(args.out, "short_prompts.txt")
    open(short_file, "w").write("\n".join(shorts) + "\n")
    expander = os.path.join(args.demo, "expander.gguf")
    results, fallbacks = {}, []
    rows = [("a", "short-caption model, short prompts", "model-short", False),
            ("b", "descriptive model, short prompts", "model-descriptive", False),
            ("c", "descriptive model, expanded prompts", "model-descriptive", True)]
    if args.runtime == "diffusers":
        expanded = expand_reference(expander, shorts)
        for key, label, model, use_expanded in rows:
            images = os.path.join(args.out, key)
            render_reference(os.path.join(args.demo, model), expanded if use_expanded else shorts, images)
            results[key] = score(tessera, images, short_file)
            print(f"({key}) {label}: strict {results[key]['strict']:.3f} ({time.time()-t0:.0f}s)", flush=True)
    else:
        for key, label, model, use_expanded in rows:
            records, results[key] = run_job(tessera, os.path.join(args.out, key), os.path.join(args.demo, model),
                                            shorts, expander if use_expanded else None, args.retries)
            if use_expanded:
                expanded = [records[i].get("expanded") or shorts[i] for i in range(len(shorts))]
                fallbacks = [records[i].get("expand_fallback") for i in range(len(shorts))]
            print(f"({key}) {label}: strict {results[key]['strict']:.3f} ({time.time()-t0:.0f}s)", flush=True)
        if args.baseline_expander:
            records0, results["c0"] = run_job(tessera, os.path.join(args.out, "c0"), os.path.join(args.demo,
                                              "model-descriptive"), shorts, args.baseline_expander, args.retries)
            n_fb0 = sum(1 for i in range(len(shorts)) if records0[i].get("expand_fallback"))
            rows.append(("c0", f"descriptive model, expanded by {os.path.basename(args.baseline_expander)} "
                               f"(keep-words, {args.retries} retries; {n_fb0} fell back)", None, None))
            print(f"(c0) strict {results['c0']['strict']:.3f} ({time.time()-t0:.0f}s)", flush=True)
        if args.compare_demo:
            _, results["cp"] = run_job(tessera, os.path.join(args.out, "cp"), os.path.join(args.compare_demo,
                                       "model-descriptive"), shorts, expander, args.retries)
            rows.append(("cp", f"row (c) with the descriptive model of {args.compare_demo}", None, None))
            print(f"(cp) strict {results['cp']['strict']:.3f} ({time.time()-t0:.0f}s)", flush=True)
    open(os.path.join(args.out, "expanded_prompts.txt"), "w").write("\n".join(expanded) + "\n")
    # (c*): the accepted expansions drawn exactly, scored against their short prompts.
    accepted = [i for i in range(len(shorts)) if not (fallbacks and fallbacks[i])]
    acc_short = os.path.join(args.out, "c_exact_short_prompts.txt")
    open(acc_short, "w").write("\n".join(shorts[i] for i in accepted) + "\n")
    draw_exactly([expanded[i] for i in accepted], os.path.join(args.out, "c_exact"))
    results["c*"] = score(tessera, os.path.join(args.out, "c_exact"), acc_short)
    n_fb = len(shorts) - len(accepted)
    rows.append(("c*", f"accepted expansions drawn exactly by the world's renderer ({len(accepted)}; the expander's "
                       f"ceiling)", None, None))
    attrs = list(results["a"]["attributes"])
    lines = [f"Runtime: {args.runtime}; {args.n} held-out short prompts (world seed {HELDOUT_SEED}); "
             f"{STEPS} DPM-Solver++ steps, guidance {GUIDANCE}, seed = prompt index; scored against the short prompt "
             f"by `tessera eval shapes` (strict: exact counts; lenient: at least)."
             + (f" Expander: keep-words check, {args.retries} retries; {n_fb} of {len(shorts)} prompts fell back to "
                f"the short prompt." if args.runtime == "tessera" else ""), "",
             "| | " + " | ".join(attrs) + " | checks | extra objects | **strict** | lenient |",
             "|---|" + "---|" * (len(attrs) + 4)]
    for key, label, _, _ in rows:
        r = results[key]
        cells = [f"{100 * r['attributes'][a]['accuracy']:.1f}" if r["attributes"][a]["total"] else "–" for a in attrs]
        lines.append(f"| ({key}) {label} | " + " | ".join(cells) + f" | {100 * r['checks_accuracy']:.1f} | "
                     f"{r['extra_objects']} | **{100 * r['strict']:.1f}** | {100 * r['lenient']:.1f} |")
    lines += ["", "Paired over the same prompts and seeds (exact McNemar test on per-prompt verdicts):", "",
              "| | strict: wins / losses | p | lenient: wins / losses | p |", "|---|---|---|---|---|"]
    for x, y in [("c", "a"), ("b", "a"), ("c", "b")] + ([("c", "c0")] if "c0" in results else []) \
            + ([("c", "cp")] if "cp" in results else []):
        cells = []
        for k in (0, 1):
            w, l, p = mcnemar([v[k] for v in results[x]["verdicts"]], [v[k] for v in results[y]["verdicts"]])
            cells += [f"{w} / {l}", f"{p:.2g}"]
        lines.append(f"| ({x}) vs ({y}) | " + " | ".join(cells) + " |")
    if args.runtime == "tessera":
        lines += ["", "The expander alone: its accepted expansions drawn exactly by the world's renderer, scored "
                  "against the short prompts (`tessera expand`, greedy first):", ""]
        lines += expander_faithfulness(tessera, expander, shorts, args.out)
    table = "\n".join(lines)
    open(os.path.join(args.out, "table.md"), "w").write(table + "\n")
    json.dump(results, open(os.path.join(args.out, "results.json"), "w"), indent=1)
    print(table)

if __name__ == "__main__":
    sys.exit(main())
