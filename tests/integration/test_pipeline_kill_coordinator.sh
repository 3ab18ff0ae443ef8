#!/usr/bin/env bash
# kill -9 the coordinator mid-job and start it again: the workers reconnect (Paranoid
# Pirate), the job completes exactly once, and the records finished before the kill are
# not rendered again (the journal shows two runs; the render log shows each once).
source "$(dirname "$0")/test_pipeline_common.inc"
make_txt 2000 "$W/d.txt"
EP="ipc://$W/c.ipc"
ARGS=(--kind=render --dataset.path="$W/d.txt" --output.dir="$W/out" --endpoint="$EP" --output.shard_size=500
      --task_size=4 --lease_seconds=2 --heartbeat_seconds=0.2)
export TESSERA_RENDER_LOG="$W/rendered.log"
"$T" -q coordinator "${ARGS[@]}" & C=$!; PIDS+=($C)
for i in 1 2 3; do "$T" -q worker render --connect "$EP" --heartbeat 0.2 --reconnect-max 0.5 --model sleep:2 & PIDS+=($!); done
# kill once at least 20 tasks are journalled as done (bounded wait)
for i in $(seq 1 200); do
  n=$("$T" status "$W/out" --journal 2>/dev/null | grep -c ' done ' || true)
  [ "$n" -ge 20 ] && break
  sleep 0.1
done
kill -9 $C; wait $C 2>/dev/null || true
"$T" status "$W/out" --journal > "$W/before.txt"
done_before=$(grep -c ' done ' "$W/before.txt" || true)
echo "tasks done before the kill: $done_before"
[ "$done_before" -ge 20 ] && [ "$done_before" -lt 500 ] || fail "kill came at the wrong time ($done_before tasks done)"
"$T" -q coordinator "${ARGS[@]}" & C=$!; PIDS+=($C)
wait_exit $C 60 || fail "restarted coordinator exit status $?"
check_exactly_once "$W/out" 2000
"$T" status "$W/out" --journal > "$W/after.txt"
grep -Eq '^runs: +2 ' "$W/after.txt" || fail "journal does not show two runs"
python3 - "$W/before.txt" "$W/after.txt" "$W/rendered.log" <<'PY'
import sys, collections
def done(path):
    return [l.split()[2] for l in open(path) if l.split()[1:2] == ["done"]]
before, after = done(sys.argv[1]), done(sys.argv[2])
assert len(after) == len(set(after)) == 500, f"{len(after)} done entries, {len(set(after))} tasks"
rendered = collections.Counter(l.strip() for l in open(sys.argv[3]))
# task t holds records t*4+1 .. t*4+4 (ids are line numbers)
for entry in before:
    t = int(entry.split("=")[1])
    for rid in range(t * 4 + 1, t * 4 + 5):
        assert rendered[str(rid)] == 1, f"record {rid} finished before the kill was rendered {rendered[str(rid)]} times"
print(f"{len(before)} tasks finished before the kill were not recomputed; {sum(rendered.values())} renders in all")
PY
echo "PASS"
