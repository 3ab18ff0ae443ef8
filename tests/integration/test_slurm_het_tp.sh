#!/usr/bin/env bash
# Issue 17's first test, as written: "Het job, 3 components, MPI group of 2 ranks: a
# 500-record generate job completes exactly once." jobs/tessera-het.sbatch on a real
# three-node Slurm: the coordinator is component 0 (n1), the expander component 1 (n2), and
# component 2 (n3) is ONE MPI tensor-parallel group of two ranks, started by
# `srun --het-group=2 --mpi=pmix tessera worker render --tp 2` (TESSERA_TP=2). Rank 0 of the
# group holds the connection and writes the images; rank 1 holds the other half of the
# U-Net's split layers. The job is the demo's (demo/job.yaml: a generate job; the demo
# expander, under its grammar, expands each short prompt, the descriptive demo model renders
# it at 48x48) with the settings a user picks for a quick job: 10 dpm++2m steps instead of
# 20, and batches of 8 records sharing each U-Net call (TESSERA_BATCH=8,
# TESSERA_UNET_SHARED=1: one tensor-parallel U-Net call a step for 8 records, so 8 times
# fewer all-reduces). Checked: every record exactly once in manifest.jsonl, each expanded and
# its PNG's sha256 right (tessera status --verify); none rendered twice (the worker's render
# log); the coordinator saw one render worker, the group (render-n3-0-g0), which rendered all
# of them, and one expander, which expanded all of them; both ranks ran under PMIx on n3 and
# split the U-Net. HET_TP_RECORDS overrides the count (500, the issue's figure).
export SLURM_DEV_NODES=3
source "$(dirname "$0")/slurm_common.inc" het-tp
N=${HET_TP_RECORDS:-500}
MODEL=$SRC/demo/model-descriptive
EXPANDER=$SRC/demo/expander.gguf
[ -d "$MODEL" ] && [ -f "$EXPANDER" ] || { bad "demo models missing: $MODEL, $EXPANDER"; echo "$pass passed, $fail failed"; exit 1; }
OUT=$D/out
mkdir -p "$D/keys/allow"
"$T" keygen server --dir "$D/keys" >/dev/null && "$T" keygen worker --dir "$D/keys" >/dev/null &&
  cp "$D/keys/worker.cert" "$D/keys/allow/" && ok || bad "keygen"
# N short prompts: the demo's 16, over and over (each record its own id and seed)
for _ in $(seq 1 $(( (N + 15) / 16 ))); do cat "$SRC/demo/prompts.txt"; done | head -n "$N" > "$D/prompts.txt"
start=$(date +%s)
J=$(TESSERA=$T TESSERA_OUT=$OUT TESSERA_KEYS=$D/keys TESSERA_TP=2 TESSERA_BACKEND=model TESSERA_EXPANDER_MODEL=$EXPANDER \
  TESSERA_DIFFUSION_MODEL=$MODEL TESSERA_BATCH=8 TESSERA_UNET_SHARED=1 TESSERA_RENDER_LOG=$D/rendered.log \
  sbatch --parsable -o "$D/job.log" "$SRC/jobs/tessera-het.sbatch" "$SRC/demo/job.yaml" \
  --dataset.path="$D/prompts.txt" --sampler.steps=10 --task_size=8)
[ -n "$J" ] && ok || bad "sbatch"
for _ in $(seq 1 1200); do [ -z "$(squeue -h -j "$J" 2>/dev/null)" ] && break; sleep 0.5; done
[ -z "$(squeue -h -j "$J" 2>/dev/null)" ] && ok || bad "het job did not finish: $(squeue -j "$J"; tail -5 "$D/job.log")"
echo "the $N-record job took $(( $(date +%s) - start )) s from sbatch to its end"
log=$(cat "$D/job.log")
echo "$log" | grep -q 'coordinator n1, expanders n2, diffusion n3' && ok || bad "components not on their own nodes: $log"
echo "$log" | grep -q 'expand task 0 on n2' && ok || bad "expander did not run on n2: $log"
echo "$log" | grep -q 'render task 0 on n3, PMIx rank 0 of ' && echo "$log" | grep -q 'render task 1 on n3, PMIx rank 1 of ' &&
  ok || bad "the group's ranks did not run under PMIx on n3: $log"
echo "$log" | grep -q 'U-Net: rank 0 of 2 (tp)' && echo "$log" | grep -q 'U-Net: rank 1 of 2 (tp)' &&
  ok || bad "the U-Net was not split over the two ranks: $log"
scontrol show job "$J" | grep -Eq 'Restarts=0( |$)' && ok || bad "the job was restarted: $(scontrol show job "$J" | grep -o 'Restarts=[0-9]*' | head -1)"
python3 - "$OUT/manifest.jsonl" "$D/prompts.txt" "$N" <<'PY' && ok || bad "manifest: $(tail -5 "$D/job.log")"
import collections, json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
prompts = open(sys.argv[2]).read().splitlines()
n = int(sys.argv[3])
ids = collections.Counter(r["id"] for r in lines)
assert len(lines) == n and len(ids) == n and max(ids.values()) == 1, (len(lines), len(ids), ids.most_common(2))
assert sorted(ids) == sorted(str(i) for i in range(1, n + 1)), "ids are not the dataset's lines"
for r in lines:
    assert r["prompt"] == prompts[int(r["id"]) - 1], r
    assert r["expanded"] and r["expanded"] != r["prompt"] and "expand_fallback" not in r, r   # the expander's own text
    assert r["file"].endswith(".png") and len(r["sha256"]) == 64, r
PY
"$T" status "$OUT" --verify >"$D/verify.txt" 2>&1 && grep -q '^job: *complete' "$D/verify.txt" &&
  grep -Eq "^verify: +$N records: 0 missing, 0 sha256 mismatches, 0 ids listed twice, 0 images stored twice" "$D/verify.txt" && ok ||
  bad "status --verify: $(head -20 "$D/verify.txt")"
# each record rendered once: the group's rank 0 logs every record it rendered
[ "$(wc -l < "$D/rendered.log")" -eq "$N" ] && [ "$(sort "$D/rendered.log" | uniq -d | wc -l)" -eq 0 ] && ok ||
  bad "render log: $(wc -l < "$D/rendered.log") lines, $(sort "$D/rendered.log" | uniq -d | wc -l) rendered twice"
python3 - "$OUT/stats.json" "$N" <<'PY' && ok || bad "workers: $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["workers"])' "$OUT/stats.json" 2>&1)"
import json, sys
s = json.load(open(sys.argv[1]))
n = int(sys.argv[2])
render = [w for w in s["workers"] if w["stage"] == "render"]
expand = [w for w in s["workers"] if w["stage"] == "expand"]
assert [w["name"] for w in render] == ["render-n3-0-g0"], render   # one render worker: the group
assert render[0]["records"] == n and render[0]["failures"] == 0, render
assert [w["name"] for w in expand] == ["expand-n2-0"] and expand[0]["records"] == n, expand
assert s["complete"], s
PY
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
