#!/usr/bin/env bash
# test_demo_quality.sh — end-to-end image quality: renders the demo prompts with the bundled
# demo model through `tessera txt2img` and scores them with `tessera eval shapes`; a regression
# anywhere in the runtime (tokenizer, CLIP, U-Net, sampler, VAE, PNG) shows up as a drop in
# prompt-following accuracy.
#
# Prompts: demo/prompts.txt (16 short prompts, world seed 4) as upsampled by the bundled
# expander (demo/prompts_expanded.txt, made by tools/shapes/ablation.py --demo-prompts with
# transformers' GGUF reader; tests/parity/test_demo_expander.sh checks tessera expand gives the
# same), rendered by demo/model-descriptive, scored against the short prompts.
# Everything is seeded, so the score only moves when the runtime's numbers move; MIN_ACCURACY
# is the measured value less a margin (see demo/README.md). DEMO_MODEL overrides the model.
# Skips (exit 0) while `tessera txt2img` does not exist.
set -euo pipefail
SRC=${TESSERA_SOURCE:-$(cd "$(dirname "$0")/../.." && pwd)}
BIN=${TESSERA_BIN:-$SRC/build/release/tessera}
MIN_ACCURACY=${MIN_ACCURACY:-0.25}   # measured 0.375 (6 of 16) on 2026-11-24; margin 2 prompts
DEMO=$SRC/demo
MODEL=${DEMO_MODEL:-$DEMO/model-descriptive}

if ! "$BIN" help txt2img >/dev/null 2>&1; then
    echo "skipped: 'tessera txt2img' is not available in $BIN yet"
    exit 0
fi
for f in "$DEMO/prompts.txt" "$DEMO/prompts_expanded.txt" "$MODEL/model_index.json"; do
    [ -e "$f" ] || { echo "test_demo_quality: missing $f" >&2; exit 1; }
done

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/images"
i=0
while IFS= read -r prompt; do
    [ -n "$prompt" ] || continue
    # Same settings as the ablation: 48x48, 20 steps, guidance 4, seed = prompt index.
    "$BIN" -q txt2img -m "$MODEL" -p "$prompt" --seed "$i" --sampler dpm++2m \
        --steps 20 --cfg-scale 4 -W 48 -H 48 -t 2 -o "$WORK/images/$(printf %05d $i).png"
    i=$((i + 1))
done < "$DEMO/prompts_expanded.txt"

"$BIN" eval shapes --images "$WORK/images" --prompts "$DEMO/prompts.txt" --list --min-accuracy "$MIN_ACCURACY"
