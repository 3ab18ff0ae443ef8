#!/usr/bin/env bash
# CURVE: a worker whose key is not in the coordinator's allow-list gets nothing and can
# submit nothing; a worker with an allowed key then completes the job.
source "$(dirname "$0")/test_pipeline_common.inc"
make_txt 50 "$W/d.txt"
mkdir -p "$W/keys/allow"
"$T" keygen server --dir "$W/keys" >/dev/null
"$T" keygen good --dir "$W/keys" >/dev/null
"$T" keygen intruder --dir "$W/other" >/dev/null
cp "$W/keys/good.cert" "$W/keys/allow/"
EP="ipc://$W/c.ipc"
"$T" -q coordinator --kind=render --dataset.path="$W/d.txt" --output.dir="$W/out" --endpoint="$EP" \
  --keys="$W/keys" --output.layout=files --heartbeat_seconds=0.2 & C=$!; PIDS+=($C)
"$T" -q worker render --connect "$EP" --cert "$W/other/intruder.cert_secret" --server-cert "$W/keys/server.cert" --heartbeat 0.2 & B=$!; PIDS+=($B)
sleep 2
[ ! -s "$W/out/manifest.jsonl" ] || fail "the intruder got work done"
[ ! -e "$W/out/00000" ] || fail "the intruder wrote files"
"$T" status "$W/out" > "$W/status.txt"
grep -Eq '^records: +0 done, 0 dead-lettered, ' "$W/status.txt" && grep -Eq '^tasks: +0 done, 0 dead, ' "$W/status.txt" \
  || fail "journal shows work before an allowed worker came: $(cat "$W/status.txt")"
"$T" -q worker render --connect "$EP" --cert "$W/keys/good.cert_secret" --server-cert "$W/keys/server.cert" --heartbeat 0.2 & PIDS+=($!)
wait_exit $C 30 || fail "coordinator exit status $?"
check_exactly_once "$W/out" 50
python3 -c "import json,sys; s=json.load(open('$W/out/stats.json')); assert s['complete'] and s['records_done']==50 and s['records_dead']==0, s"
echo "PASS"
