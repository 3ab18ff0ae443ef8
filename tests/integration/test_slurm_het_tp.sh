#!/usr/bin/env bash
# The heterogeneous job with its diffusion component as one MPI tensor-parallel group of two
# ranks (issue 17 on issue 15's render groups): jobs/tessera-het.sbatch with TESSERA_TP=2 on
# a real three-node Slurm, component 2 started by `srun --het-group=2 --mpi=pmix` as
# `tessera worker render --tp 2`. Rank 0 of the group holds the connection and writes the
# images; rank 1 holds the other half of the U-Net's split layers. Model: the demo's
# (demo/model-short). Checked: every record exactly once; the coordinator saw one render
# worker, the group (render-n3-0-g0), which rendered all of them; both ranks ran under PMIx.
export SLURM_DEV_NODES=3
source "$(dirname "$0")/slurm_common.inc" het-tp
MODEL=$SRC/demo/model-short
[ -d "$MODEL" ] || { bad "demo model missing: $MODEL"; echo "$pass passed, $fail failed"; exit 1; }
OUT=$D/out
mkdir -p "$D/keys/allow"
"$T" keygen server --dir "$D/keys" >/dev/null && "$T" keygen worker --dir "$D/keys" >/dev/null &&
  cp "$D/keys/worker.cert" "$D/keys/allow/" && ok || bad "keygen"
N=8
seq 1 $N | sed 's/^/a red circle and a blue square, number /' > "$D/prompts.txt"
J=$(OMP_NUM_THREADS=1 TESSERA=$T TESSERA_OUT=$OUT TESSERA_KEYS=$D/keys TESSERA_TP=2 TESSERA_RENDER_BACKEND=model \
  TESSERA_DIFFUSION_MODEL=$MODEL sbatch --parsable -o "$D/job.log" "$SRC/jobs/tessera-het.sbatch" "$SRC/jobs/demo.yaml" \
  --kind=render --dataset.path="$D/prompts.txt" --task_size=2)
[ -n "$J" ] && ok || bad "sbatch"
for _ in $(seq 1 600); do [ -z "$(squeue -h -j "$J" 2>/dev/null)" ] && break; sleep 0.5; done
[ -z "$(squeue -h -j "$J" 2>/dev/null)" ] && ok || bad "het job did not finish: $(squeue -j "$J"; tail -5 "$D/job.log")"
log=$(cat "$D/job.log")
echo "$log" | grep -q 'render task 0 on n3, PMIx rank 0 of ' && echo "$log" | grep -q 'render task 1 on n3, PMIx rank 1 of ' &&
  ok || bad "the group's ranks did not run under PMIx on n3: $log"
ids=$(python3 -c "
import json, sys, collections
ids = [json.loads(l)['id'] for l in open(sys.argv[1])]
print(len(set(ids)), sum(1 for v in collections.Counter(ids).values() if v > 1))" "$OUT/manifest.jsonl" 2>/dev/null)
[ "$ids" = "$N 0" ] && ok || bad "unique/duplicated ids: $ids ($(tail -5 "$D/job.log"))"
python3 - "$OUT/stats.json" $N <<'PY' && ok || bad "workers: $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["workers"])' "$OUT/stats.json" 2>&1)"
import json, sys
s = json.load(open(sys.argv[1]))
render = [w for w in s["workers"] if w["name"].startswith("render-")]
assert [w["name"] for w in render] == ["render-n3-0-g0"], render   # one worker: the group
assert render[0]["records"] == int(sys.argv[2]) and s["complete"], (render, s["complete"])
PY
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
