#!/usr/bin/env bash
# Same seed, same image (issue 11): every record of a render job gets the PNG bytes that
# `tessera txt2img` gives for its prompt and seed alone, however the job is run:
#   - `tessera run` with 1, 2 and 4 render workers as threads of one process,
#   - a coordinator with 2 separate `tessera worker render` processes.
# Two pipelines in one process once shared OpenBLAS's process-wide thread count (one made
# it single-threaded around its U-Net while the other's GEMM ran): whole different images.
# This test is also run under ThreadSanitizer (label `threaded`).
source "$(dirname "$0")/test_pipeline_common.inc"
S=${TESSERA_SOURCE:-.}
MODEL="$S/demo/model-short"
N=${SAME_SEED_RECORDS:-32}
[ -d "$MODEL" ] || fail "demo model missing: $MODEL"

python3 - "$N" > "$W/p.txt" <<'PY'
import itertools, sys
colors = ["red", "green", "blue", "yellow"]
shapes = ["circle", "square", "triangle"]
sizes = ["small", "large"]
cells = list(itertools.product(sizes, colors, shapes))
for i in range(int(sys.argv[1])):
    size, color, shape = cells[(i * 7) % len(cells)]
    print(f"a {size} {color} {shape}")
PY

SAMPLER=(--sampler.name=dpm++2m --sampler.steps=12 --sampler.cfg=4 --sampler.width=48 --sampler.height=48 --seed=5)

run_threads() {   # run_threads OUT RENDER_WORKERS
  "$T" -q run --kind=render --dataset.path="$W/p.txt" --output.dir="$1" --output.layout=files --task_size=2 \
    --workers.backend=model --models.diffusion="$MODEL" --workers.render="$2" "${SAMPLER[@]}" 2>"$1.err" \
    || fail "tessera run with $2 render workers failed: $(tail -3 "$1.err")"
}

run_processes() {  # run_processes OUT: a coordinator and two worker processes
  local out=$1 ep="ipc://$W/coord.ipc"
  "$T" -q coordinator --kind=render --dataset.path="$W/p.txt" --output.dir="$out" --output.layout=files \
    --task_size=2 --endpoint="$ep" "${SAMPLER[@]}" 2>"$out.err" &
  local coord=$!
  PIDS+=("$coord")
  for k in 1 2; do
    "$T" -q worker render --connect "$ep" --backend model --model "$MODEL" --name "proc-$k" 2>"$out.w$k.err" &
    PIDS+=("$!")
  done
  wait_exit "$coord" 300 || fail "coordinator failed: $(tail -3 "$out.err")"
}

for w in 1 2 4; do run_threads "$W/t$w" "$w"; done
run_processes "$W/procs"

# The reference: txt2img alone, one process per record.
python3 - "$W" "$T" "$MODEL" "$N" t1 t2 t4 procs <<'PY'
import hashlib, json, os, subprocess, sys
w, tessera, model, n, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5:]
manifests = {}
for r in runs:
    rows = [json.loads(l) for l in open(os.path.join(w, r, "manifest.jsonl"))]
    ids = [x["id"] for x in rows]
    assert len(ids) == n and len(set(ids)) == n, f"{r}: {len(set(ids))} distinct of {len(ids)} manifest lines, want {n}"
    manifests[r] = {x["id"]: x for x in rows}
bad = {r: [] for r in runs}
for rid, row in sorted(manifests["t1"].items(), key=lambda kv: int(kv[0])):
    png = os.path.join(w, f"ref-{rid}.png")
    subprocess.run([tessera, "-q", "txt2img", "-m", model, "-p", row["prompt"], "--seed", str(row["seed"]),
                    "--steps", "12", "--cfg-scale", "4", "--sampler", "dpm++2m", "-W", "48", "-H", "48",
                    "-o", png], check=True)
    want = hashlib.sha256(open(png, "rb").read()).hexdigest()
    for r in runs:
        got = manifests[r][rid]
        assert got["seed"] == row["seed"], f"{r}: record {rid} has seed {got['seed']}, run t1 {row['seed']}"
        path = os.path.join(w, r, got["file"])
        disk = hashlib.sha256(open(path, "rb").read()).hexdigest()
        assert disk == got["sha256"], f"{r}: {path} does not match its manifest sha256"
        if disk != want:
            bad[r].append(rid)
for r in runs:
    print(f"{r}: {n - len(bad[r])}/{n} PNGs byte-identical to txt2img")
failed = {r: ids for r, ids in bad.items() if ids}
assert not failed, "records whose image differs from txt2img's: " + "; ".join(f"{r}: {ids}" for r, ids in failed.items())
PY
echo "PASS"
