"""install_renderer.py — put a retrained renderer into the demo bundle: its U-Net, text encoder
and scheduler config are copied over demo/model-KIND (the VAE and tokenizer must be the
bundle's own, bit for bit: the renderers share them), and its train_log.json becomes the chain
of training runs that made it, newest first, with the bundle's previous log kept as "before".

    python tools/shapes/install_renderer.py KIND RUN_DIR [RUN_DIR ...]   # oldest run first

Each RUN_DIR is a train_renderer.py --out folder; the last one's weights are installed.
Afterwards: tools/gen_demo_renderer_fixtures.py, and the demo's EXPECTED_SCORE measured again.
"""
import filecmp
import json
import os
import shutil
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def same_tree(a, b):
    cmp = filecmp.dircmp(a, b)
    return not (cmp.left_only or cmp.right_only or cmp.diff_files or cmp.funny_files) and \
        all(filecmp.cmp(os.path.join(a, f), os.path.join(b, f), shallow=False) for f in cmp.common_files)


def main():
    kind, runs = sys.argv[1], sys.argv[2:]
    if kind not in ("short", "descriptive") or not runs:
        sys.exit(__doc__)
    dst = os.path.join(ROOT, "demo", f"model-{kind}")
    src = os.path.join(runs[-1], f"model-{kind}")
    vae = "diffusion_pytorch_model.safetensors"
    if not filecmp.cmp(os.path.join(src, "vae", vae), os.path.join(dst, "vae", vae), shallow=False):
        sys.exit(f"{src}: its VAE is not the bundle's")
    if not same_tree(os.path.join(src, "tokenizer"), os.path.join(dst, "tokenizer")):
        sys.exit(f"{src}: its tokenizer is not the bundle's")
    for part in ("unet", "text_encoder", "scheduler"):
        shutil.rmtree(os.path.join(dst, part))
        shutil.copytree(os.path.join(src, part), os.path.join(dst, part))
    stages = [json.load(open(os.path.join(r, f"model-{kind}", "train_log.json"))) for r in runs]
    for r, s in zip(runs, stages):
        s["run"] = os.path.basename(os.path.normpath(r))
    before = json.load(open(os.path.join(dst, "train_log.json")))
    log = {"note": f"{len(runs)} train_renderer.py runs, newest first (demo/README.md, 'Reproducing'); "
                   "'before' is the log of the weights they started from",
           "stages": stages[::-1], "before": before}
    with open(os.path.join(dst, "train_log.json"), "w") as f:
        json.dump(log, f, indent=1)
    print(f"installed {src} into {dst}")


if __name__ == "__main__":
    main()
