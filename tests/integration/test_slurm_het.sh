#!/usr/bin/env bash
# A heterogeneous job on a real three-node Slurm (cluster/slurm-dev.sh with SLURM_DEV_NODES=3:
# slurmd n1 n2 n3 on this machine): jobs/tessera-het.sbatch runs the coordinator as component
# 0, an expander as component 1 and two diffusion ranks as component 2 under srun --mpi=pmix.
# The coordinator binds a free port and publishes its address and CURVE public key in the
# output folder; the workers find it there. Checked: a 500-record generate job completes with
# every record exactly once; each component ran on its own node; the diffusion ranks got
# PMIx ranks 0 and 1; the published key is the coordinator's; both render ranks did work.
# Mid-run the job's steps get USR1 (scancel --signal=USR1): it drains, requeues itself and
# finishes, no record rendered twice.
export SLURM_DEV_NODES=3
source "$(dirname "$0")/slurm_common.inc" het
[ "$(sinfo -h -N -o %N | sort -u | tr '\n' ' ')" = "n1 n2 n3 " ] && ok || bad "nodes: $(sinfo -h -N -o %N)"
OUT=$D/out
mkdir -p "$D/keys/allow"
"$T" keygen server --dir "$D/keys" >/dev/null && "$T" keygen worker --dir "$D/keys" >/dev/null &&
  cp "$D/keys/worker.cert" "$D/keys/allow/" && ok || bad "keygen"
N=500
seq 1 $N | sed 's/^/a heterogeneous prompt /' > "$D/prompts.txt"
J=$(TESSERA=$T TESSERA_OUT=$OUT TESSERA_KEYS=$D/keys TESSERA_DIFFUSION_MODEL=sleep:20 TESSERA_RENDER_LOG=$D/rendered.log \
  sbatch --parsable -o "$D/job.log" "$SRC/jobs/tessera-het.sbatch" "$SRC/jobs/demo.yaml" --dataset.path="$D/prompts.txt" \
  --task_size=5 --output.shard_size=100)
[ -n "$J" ] && ok || bad "sbatch"
# preempted mid-run with USR1 to the job's steps (not the batch shell): the coordinator drains
# and exits 3, the script requeues the job, the second run finishes
for _ in $(seq 1 300); do n=$(wc -l 2>/dev/null < "$OUT/manifest.jsonl" || echo 0); [ "${n:-0}" -ge 100 ] && break; sleep 0.1; done
[ "${n:-0}" -ge 100 ] && [ "${n:-0}" -lt $N ] && ok || bad "job was not mid-run ($n done): $(tail -5 "$D/job.log")"
scancel --signal=USR1 "$J" && ok || bad "scancel --signal=USR1"
for _ in $(seq 1 200); do [ -z "$(squeue -h -j "$J" 2>/dev/null)" ] && break; sleep 0.5; done
[ -z "$(squeue -h -j "$J" 2>/dev/null)" ] && ok || bad "het job did not finish: $(squeue -j "$J"; tail -5 "$D/job.log")"
scontrol show job "$J" | grep -Eq 'Restarts=1( |$)' && ok || bad "not restarted once: $(scontrol show job "$J" | grep -o 'Restarts=[0-9]*' | head -1)"
[ "$(sort "$D/rendered.log" | uniq -d | wc -l)" -eq 0 ] && ok || bad "records rendered twice after the drain"
log=$(cat "$D/job.log")
echo "$log" | grep -q 'the coordinator drained' && echo "$log" | grep -q 'SLURM_RESTART_COUNT=1' && ok || bad "no drain and restart in the log: $log"
echo "$log" | grep -q 'coordinator n1, expanders n2, diffusion n3' && ok || bad "components not on their own nodes: $log"
echo "$log" | grep -q 'expand task 0 on n2' && ok || bad "expander did not run on n2: $log"
echo "$log" | grep -q 'render task 0 on n3, PMIx rank 0 of ' && echo "$log" | grep -q 'render task 1 on n3, PMIx rank 1 of ' &&
  ok || bad "diffusion ranks did not run under PMIx on n3: $log"
ids=$(python3 -c "
import json, sys, collections
ids = [json.loads(l)['id'] for l in open(sys.argv[1])]
print(len(set(ids)), sum(1 for v in collections.Counter(ids).values() if v > 1))" "$OUT/manifest.jsonl" 2>/dev/null)
[ "$ids" = "$N 0" ] && ok || bad "unique/duplicated ids: $ids"
"$T" status "$OUT" | grep -q '^job: *complete' && ok || bad "status: $("$T" status "$OUT" | head -3)"
# from another node of the cluster, as a Slurm step there
timeout 30 srun -N1 -n1 --nodelist=n2 "$T" status "$OUT" | grep -q '^job: *complete' && ok || bad "tessera status on n2 failed"
grep -q "^tcp://$(hostname):[0-9]\+$" "$OUT/coordinator/endpoint" && ok || bad "published endpoint: $(cat "$OUT/coordinator/endpoint")"
key() { sed -n 's/.*public-key = "\(.*\)"/\1/p' "$1"; }
[ -n "$(key "$D/keys/server.cert")" ] && [ "$(key "$OUT/coordinator/server.cert")" = "$(key "$D/keys/server.cert")" ] && ok ||
  bad "published public key differs from the coordinator's"
python3 - "$OUT/stats.json" <<'PY' && ok || bad "per-worker stats: $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["workers"])' "$OUT/stats.json")"
import json, sys
w = {x["name"]: x for x in json.load(open(sys.argv[1]))["workers"]}
# the second run's workers (stats.json is per run): both render ranks did work
assert "expand-n2-0" in w, w  # (its expansions may all be journalled by the first run)
assert w["render-n3-0"]["records"] > 0 and w["render-n3-1"]["records"] > 0, w
PY
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
