#!/usr/bin/env bash
# `make demo`: the main job on the embedded default — `tessera run` on the bundled shapes-world
# demo (demo/): every short prompt of demo/prompts.txt is expanded by the demo LLM, rendered by
# the demo diffusion model, written to out/demo/ (images, manifest.jsonl, stats.json), and the
# images are scored for prompt following with `tessera eval shapes`.
set -euo pipefail
TESSERA=${1:-build/release/tessera}
OUT=${DEMO_OUT:-out/demo}
"$TESSERA" run demo/job.yaml --output.dir="$OUT"
echo
echo "demo: images, manifest.jsonl and stats.json are in $OUT/"
echo "demo: expansions (short prompt => what was rendered):"
python3 - "$OUT/manifest.jsonl" <<'PY' 2>/dev/null || true
import json, sys
for line in list(open(sys.argv[1]))[:4]:
    r = json.loads(line)
    print(f"  {r['prompt']}\n    => {r.get('expanded', '')}")
PY
echo
echo "demo: prompt following (each image against its short prompt):"
"$TESSERA" eval shapes --manifest "$OUT/manifest.jsonl" --json "$OUT/score.json"
python3 - "$OUT/score.json" "$OUT/stats.json" <<'PY' 2>/dev/null || true
import json, sys
s, st = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
fb = st.get("expand_fallbacks_by_reason", {})
print(f"demo: strict score {s['strict_correct']}/{s['prompts']} prompts fully right ({100 * s['strict']:.1f} %, "
      f"exact counts; lenient {100 * s['lenient']:.1f} %); expansions that fell back: {sum(fb.values())} {fb or ''}")
PY
