#!/usr/bin/env bash
# The coordinator freezes (SIGSTOP) long enough for every worker to give up on it and
# reconnect under a new identity. Tasks it had leased to the old identities must go back to
# the queue as soon as those are forgotten, not after the 60 s lease, and the job must still
# finish with every record exactly once.
source "$(dirname "$0")/test_pipeline_common.inc"
make_txt 400 "$W/d.txt"
EP="ipc://$W/c.ipc"
"$T" -q coordinator --dataset.path="$W/d.txt" --output.dir="$W/out" --endpoint="$EP" --task_size=2 \
  --output.shard_size=100 --heartbeat_seconds=0.2 --lease_seconds=60 --retries=10 --models.diffusion=sleep:10 \
  & C=$!; PIDS+=($C)
"$T" -q worker expand --connect "$EP" --heartbeat 0.2 & PIDS+=($!)
for i in 1 2; do "$T" -q worker render --connect "$EP" --heartbeat 0.2 --credit 3 --model sleep:10 & PIDS+=($!); done
for _ in $(seq 1 100); do n=$(wc -l < "$W/out/manifest.jsonl" 2>/dev/null || echo 0); [ "${n:-0}" -ge 40 ] && break; sleep 0.1; done
start=$(date +%s)
kill -STOP $C; sleep 2.5; kill -CONT $C
wait_exit $C 50 || fail "coordinator exit status $?"
took=$(( $(date +%s) - start ))
[ $took -lt 40 ] || fail "the job took ${took}s after the freeze: leases of lost workers waited to expire"
check_exactly_once "$W/out" 400
python3 -c "import json; s=json.load(open('$W/out/stats.json')); assert s['complete'] and s['records_done']==400, s"
echo "PASS (finished ${took}s after the freeze)"
