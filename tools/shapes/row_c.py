"""row_c.py — row (c) of the ablation alone, for checkpoints: a descriptive renderer (or two,
paired) through diffusers (20 DPM-Solver++ steps, guidance 4, seed = prompt index, as
ablation.py) on the expansions a Tessera ablation run wrote, scored with `tessera eval shapes`
against its short prompts. Minutes instead of the full ablation's ten; issue 19 used it on the
position experiments (demo/README.md, "Why positions are not learnt").

    python tools/shapes/row_c.py ABLATION_OUT 200 demo/model-descriptive /tmp/x/model-descriptive
"""
import os
import sys
import warnings

import torch

import ablation

warnings.filterwarnings("ignore")


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    run, n, models = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    torch.set_num_threads(1)
    exp = [l.rstrip("\n") for l in open(os.path.join(run, "expanded_prompts.txt"))][:n]
    short = [l.rstrip("\n") for l in open(os.path.join(run, "short_prompts.txt"))][:n]
    if len(exp) != n or len(short) != n:
        sys.exit(f"row_c: {run} holds {len(exp)} expansions and {len(short)} short prompts, {n} asked for")
    out = os.environ.get("ROW_C_OUT", "/tmp/row_c")
    os.makedirs(out, exist_ok=True)
    sf = os.path.join(out, f"short{n}.txt")
    open(sf, "w").write("\n".join(short) + "\n")
    tessera = os.path.join(ablation.ROOT, "build", "release", "tessera")
    res = {}
    for m in models:
        d = os.path.join(out, m.strip("/").replace("/", "_"))
        ablation.render_reference(m, exp, d)
        r = res[m] = ablation.score(tessera, d, sf)
        a = {k: 100 * v["accuracy"] for k, v in r["attributes"].items()}
        print(f"{m}: strict {100 * r['strict']:.1f} lenient {100 * r['lenient']:.1f} position {a['position']:.1f} "
              f"colour {a['colour']:.1f} shape {a['shape']:.1f} count {a['count']:.1f} size {a['size']:.1f} "
              f"extra objects {r['extra_objects']}", flush=True)
    if len(models) == 2:
        for k, name in ((0, "strict"), (1, "lenient")):
            w, l, p = ablation.mcnemar([v[k] for v in res[models[1]]["verdicts"]],
                                       [v[k] for v in res[models[0]]["verdicts"]])
            print(f"{name}: second vs first {w} / {l}, exact McNemar p = {p:.2g}")


if __name__ == "__main__":
    main()
