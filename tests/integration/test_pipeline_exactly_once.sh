#!/usr/bin/env bash
# A 2000-record generate job over real processes (coordinator, one expander, three render
# workers, tar shards): every record is in the manifest and in the shards exactly once.
source "$(dirname "$0")/test_pipeline_common.inc"
make_txt 2000 "$W/d.txt"
EP="ipc://$W/c.ipc"
"$T" -q coordinator --dataset.path="$W/d.txt" --output.dir="$W/out" --endpoint="$EP" \
  --task_size=5 --output.shard_size=300 --heartbeat_seconds=0.2 --retries=10 & C=$!; PIDS+=($C)
"$T" -q worker expand --connect "$EP" --heartbeat 0.2 & PIDS+=($!)
for i in 1 2 3; do "$T" -q worker render --connect "$EP" --heartbeat 0.2 --credit 3 & PIDS+=($!); done
wait_exit $C 120 || fail "coordinator exit status $?"
check_exactly_once "$W/out" 2000
ls "$W/out"/*.tar | wc -l | grep -qx 7 || fail "expected 7 shards of 300"
python3 -c "import json,sys; s=json.load(open('$W/out/stats.json')); assert s['complete'] and s['records_done']==2000, s"
grep -q '"expanded":"a photo of thing 17, detailed"' "$W/out/manifest.jsonl" || fail "expanded prompt missing"
"$T" status "$W/out" > "$W/status.txt"
grep -Eqx 'job: +complete' "$W/status.txt" || fail "status does not say complete: $(cat "$W/status.txt")"
echo "PASS"
