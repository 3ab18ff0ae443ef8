#!/usr/bin/env bash
# Preemption on a real Slurm (cluster/slurm-dev.sh): jobs/tessera.sbatch runs a render job;
# mid-run the batch shell gets USR1 (`scancel --batch --signal=USR1`, what --signal=B:USR1@120
# sends before a time limit). The coordinator leases nothing more, the workers hand back or
# finish, the job requeues itself and the second run finishes. Checked: every record exactly
# once in the manifest, no record rendered twice (the workers' render log), the journal shows
# both runs (restart=0, restart=1), the drain took less than its grace, the time from signal
# to exit is printed. While the job runs, `tessera status` shows rate, ETA and per-worker
# throughput, and the coordinator's Prometheus endpoint answers curl with the text format.
source "$(dirname "$0")/slurm_common.inc" preempt
OUT=$D/out
mkdir -p "$OUT/keys/allow"
"$T" keygen server --dir "$OUT/keys" >/dev/null && "$T" keygen worker --dir "$OUT/keys" >/dev/null &&
  cp "$OUT/keys/worker.cert" "$OUT/keys/allow/" && ok || bad "keygen"
N=100
seq 1 $N | sed 's/^/a preempted prompt /' > "$D/prompts.txt"
PORT=$((SLURM_DEV_CTLD_PORT + 3)) MPORT=$((SLURM_DEV_CTLD_PORT + 4))
GRACE=30
# 2 renderers at 300 ms a record, tasks of 2: about 15 s of work in all
J=$(TESSERA=$T TESSERA_OUT=$OUT TESSERA_PORT=$PORT TESSERA_METRICS_PORT=$MPORT TESSERA_EXPANDERS=0 \
    TESSERA_DIFFUSION_MODEL=sleep:300 TESSERA_DRAIN_SECONDS=$GRACE TESSERA_RENDER_LOG=$D/rendered.log \
    sbatch --parsable --ntasks=3 -o "$D/job.log" "$SRC/jobs/tessera.sbatch" "$SRC/jobs/demo.yaml" \
    --kind=render --dataset.path="$D/prompts.txt" --task_size=2 --output.shard_size=10)
[ -n "$J" ] && ok || bad "sbatch"
done_now() { wc -l 2>/dev/null < "$OUT/manifest.jsonl" || echo 0; }
for _ in $(seq 1 150); do n=$(done_now); [ "${n:-0}" -ge 16 ] && break; sleep 0.2; done
[ "${n:-0}" -ge 16 ] && [ "${n:-0}" -lt $N ] && ok || bad "job was not mid-run ($n records done): $(tail -5 "$D/job.log")"

# monitoring a running job: from the shared folder, and over HTTP
sleep 5.5 # stats.json is rewritten every 5 s
st=$("$T" status "$OUT")
echo "$st" | grep -q '^job: *running' && ok || bad "status does not say running: $st"
echo "$st" | grep -Eq '^rate: +[1-9][0-9.]* records/s' && ok || bad "status has no rate: $st"
echo "$st" | grep -Eq '^eta: +[0-9]+ s' && ok || bad "status has no ETA: $st"
[ "$(echo "$st" | grep -Ec '^ +render-[^ ]+ +render +[1-9][0-9]* ')" -eq 2 ] && ok || bad "status lacks the 2 render workers' throughput: $st"
m=$(curl -s --max-time 5 "http://127.0.0.1:$MPORT/metrics")
hdr=$(curl -s --max-time 5 -o /dev/null -w '%{http_code} %{content_type}' "http://127.0.0.1:$MPORT/metrics")
[ "${hdr%% *}" = 200 ] && echo "$hdr" | grep -q 'text/plain; version=0.0.4' && ok || bad "metrics HTTP answer: $hdr"
for name in tessera_tasks_done_total tessera_tasks_failed_total tessera_tasks_leased tessera_images_per_second \
            'tessera_queue_depth{stage="render"}' tessera_records_done_total; do
  echo "$m" | grep -Eq "^$(printf '%s' "$name" | sed 's/[{}]/\\&/g') [0-9.e+-]+$" && ok || bad "metric $name missing: $(echo "$m" | head -30)"
done
echo "$m" | grep -q '^# TYPE tessera_tasks_done_total counter$' && ok || bad "no TYPE line for tasks_done"
mdone=$(echo "$m" | awk '/^tessera_records_done_total /{print $2}')
[ "${mdone:-0}" -ge 16 ] && [ "${mdone:-0}" -le $N ] && ok || bad "tessera_records_done_total is $mdone"
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$MPORT/other")" = 404 ] && ok || bad "a path other than /metrics is not 404"

# preempt: USR1 to the batch shell, as --signal=B:USR1@120 sends it
before=$(done_now)
[ "$before" -lt $N ] && ok || bad "job finished before the signal; make it slower"
scancel --batch --signal=USR1 "$J" && ok || bad "scancel --signal=USR1"
for _ in $(seq 1 200); do [ -z "$(squeue -h -j "$J" 2>/dev/null)" ] && break; sleep 0.5; done
[ -z "$(squeue -h -j "$J" 2>/dev/null)" ] && ok || bad "job did not finish after the requeue: $(squeue -j "$J"; tail -5 "$D/job.log")"
scontrol show job "$J" | grep -Eq 'Restarts=1( |$)' && ok || bad "job was not restarted once: $(scontrol show job "$J" | grep -o 'Restarts=[0-9]*')"
ids=$(python3 -c "
import json, sys, collections
ids = [json.loads(l)['id'] for l in open(sys.argv[1])]
print(len(set(ids)), sum(1 for v in collections.Counter(ids).values() if v > 1))" "$OUT/manifest.jsonl")
[ "$ids" = "$N 0" ] && ok || bad "unique / duplicated ids in the manifest: $ids"
renders=$(sort "$D/rendered.log" | uniq -d | wc -l)
[ "$renders" -eq 0 ] && ok || bad "$renders records were rendered twice (finished work redone)"
[ "$(sort -u "$D/rendered.log" | wc -l)" -eq $N ] && ok || bad "render log has $(sort -u "$D/rendered.log" | wc -l) ids"
log=$(cat "$D/job.log")
echo "$log" | grep -q 'SLURM_RESTART_COUNT=0' && echo "$log" | grep -q 'SLURM_RESTART_COUNT=1' && ok || bad "the log lacks the restart counts: $log"
took=$(echo "$log" | sed -n 's/.*drained in \([0-9.]*\) s (signal to exit).*/\1/p' | head -1)
[ -n "$took" ] && awk -v t="$took" -v g=$GRACE 'BEGIN {exit !(t < g)}' && ok || bad "signal-to-exit time '$took' not printed or not under the grace $GRACE s: $log"
echo "$log" | grep -Eq 'drained in [0-9.]+ s: [0-9]+ tasks were leased' && ok || bad "the coordinator did not report its drain: $log"
"$T" status "$OUT" --journal > "$D/status.txt"
grep -Eq '^runs: +2 ' "$D/status.txt" && ok || bad "journal should show two runs: $(grep runs "$D/status.txt")"
grep -q "start .*slurm_job=$J restart=0" "$D/status.txt" && grep -q "start .*slurm_job=$J restart=1" "$D/status.txt" && ok ||
  bad "journal starts lack restart=0 / restart=1: $(grep start "$D/status.txt")"
grep -q '^job: *complete' "$D/status.txt" && ok || bad "status after the job: $(grep job: "$D/status.txt")"
echo "preempted at $before/$N records; signal to exit ${took:-?} s"; grep -E "drained in|USR1" "$D/job.log"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
