#!/usr/bin/env bash
# The Slurm dev cluster: a real munged + slurmctld + slurmd on localhost runs a two-task
# batch job, then jobs/tessera.sbatch runs a whole Tessera job (coordinator + expander +
# render workers as Slurm tasks, CURVE over TCP) with every record exactly once, and a job
# requeued mid-run (`scontrol requeue`) resumes from its journal without duplicates.
set -u
SRC=${TESSERA_SOURCE:?}
T=${TESSERA_BIN:?}
export SLURM_DEV_DIR=$(mktemp -d /tmp/tessera-slurm-test.XXXXXX)
# ports of our own, so a developer's running dev cluster does not collide with the test
# a block of 10 ports each (tests run side by side; their PIDs are close): slurmctld and the
# tessera ports CTLD+1.., slurmd and the nodes of a multi-node cluster D+1.. (all below the
# kernel's ephemeral ports, 32768 and up)
export SLURM_DEV_CTLD_PORT=$((20000 + $$ % 1000 * 10)) SLURM_DEV_D_PORT=$((10000 + $$ % 1000 * 10))
cleanup() { bash "$SRC/cluster/slurm-dev.sh" stop >/dev/null 2>&1; rm -rf "$SLURM_DEV_DIR"; }
trap cleanup EXIT
pass=0; fail=0
ok()  { pass=$((pass+1)); }
bad() { echo "FAIL: $*"; fail=$((fail+1)); }

bash "$SRC/cluster/slurm-dev.sh" start && ok || { bad "cluster start"; echo "$pass passed, $fail failed"; exit 1; }
eval "$(bash "$SRC/cluster/slurm-dev.sh" env)"

cat > "$SLURM_DEV_DIR/job.sh" <<JOB
#!/usr/bin/env bash
#SBATCH --ntasks=2
#SBATCH --time=2
srun bash -c 'echo "task \$SLURM_PROCID of \$SLURM_NTASKS"; "$T" version | head -1'
JOB
timeout 60 sbatch --wait -o "$SLURM_DEV_DIR/job.out" "$SLURM_DEV_DIR/job.sh" >/dev/null && ok || bad "sbatch --wait"
out=$(cat "$SLURM_DEV_DIR/job.out" 2>/dev/null)
echo "$out" | grep -q "task 0 of 2" && ok || bad "task 0 missing: $out"
echo "$out" | grep -q "task 1 of 2" && ok || bad "task 1 missing: $out"
[ "$(echo "$out" | grep -c '^tessera ')" -eq 2 ] && ok || bad "tessera did not run in both tasks: $out"

# A whole Tessera job as Slurm tasks: 0 = coordinator, 1 = expander, 2.. = renderers.
keys() { mkdir -p "$1/keys/allow"; "$T" keygen server --dir "$1/keys" >/dev/null;
         "$T" keygen worker --dir "$1/keys" >/dev/null; cp "$1/keys/worker.cert" "$1/keys/allow/"; }
unique_ids() { python3 -c "
import json, sys, collections
ids = [json.loads(l)['id'] for l in open(sys.argv[1])]
dup = [k for k, v in collections.Counter(ids).items() if v > 1]
print(len(set(ids)), len(dup))" "$1/manifest.jsonl" 2>/dev/null || echo "0 0"; }
seq 1 40 | sed 's/^/a prompt /' > "$SLURM_DEV_DIR/p40.txt"
OUT=$SLURM_DEV_DIR/job1; keys "$OUT"
TESSERA=$T TESSERA_OUT=$OUT TESSERA_PORT=$((SLURM_DEV_CTLD_PORT + 1)) timeout 120 sbatch --wait --ntasks=3 \
  -o "$SLURM_DEV_DIR/job1.log" "$SRC/jobs/tessera.sbatch" "$SRC/jobs/demo.yaml" \
  --dataset.path="$SLURM_DEV_DIR/p40.txt" --task_size=2 >/dev/null && ok || bad "tessera.sbatch job failed: $(tail -5 "$SLURM_DEV_DIR/job1.log")"
[ "$(unique_ids "$OUT")" = "40 0" ] && ok || bad "job1: unique/duplicated ids: $(unique_ids "$OUT")"

# Requeue mid-job: the second run resumes from the journal; nothing is lost or doubled.
seq 1 60 | sed 's/^/a prompt /' > "$SLURM_DEV_DIR/p60.txt"
OUT=$SLURM_DEV_DIR/job2; keys "$OUT"
J=$(TESSERA=$T TESSERA_OUT=$OUT TESSERA_PORT=$((SLURM_DEV_CTLD_PORT + 2)) TESSERA_DIFFUSION_MODEL=sleep:150 \
    sbatch --parsable --ntasks=3 -o "$SLURM_DEV_DIR/job2.log" "$SRC/jobs/tessera.sbatch" "$SRC/jobs/demo.yaml" \
    --dataset.path="$SLURM_DEV_DIR/p60.txt" --task_size=1)
for _ in $(seq 1 100); do
  n=$(wc -l < "$OUT/manifest.jsonl" 2>/dev/null || echo 0); [ "${n:-0}" -ge 5 ] && break; sleep 0.2
done
[ "${n:-0}" -ge 5 ] && [ "${n:-0}" -lt 60 ] && ok || bad "job2 was not mid-run when requeued ($n records done)"
scontrol requeue "$J" && ok || bad "scontrol requeue"
for _ in $(seq 1 120); do [ -z "$(squeue -h -j "$J" 2>/dev/null)" ] && break; sleep 1; done
[ -z "$(squeue -h -j "$J" 2>/dev/null)" ] && ok || bad "requeued job did not finish"
scontrol show job "$J" | grep -Eq 'Restarts=1( |$)' && ok || bad "job was not restarted: $(scontrol show job "$J" | grep Restarts)"
[ "$(unique_ids "$OUT")" = "60 0" ] && ok || bad "job2 after requeue: unique/duplicated ids: $(unique_ids "$OUT")"
"$T" status "$OUT" | grep -Eq '^runs: +2 ' && ok || bad "the journal should show two coordinator runs: $("$T" status "$OUT" | grep runs)"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
