#!/usr/bin/env bash
# `tessera run` of a generate job: SIGINT stops cleanly (exit status 1, journal intact),
# running it again resumes and completes with every record exactly once, and no task's
# prompts are expanded twice (one J_EXPANDED per task in the journal). Record ids that try to escape the
# output folder ('/', '..', control characters) stay inside it.
source "$(dirname "$0")/test_pipeline_common.inc"
make_txt 600 "$W/d.txt"
ARGS=(--kind=generate --dataset.path="$W/d.txt" --output.dir="$W/out" --task_size=2 --output.shard_size=100
      --workers.render=2 --models.diffusion=sleep:5 --heartbeat_seconds=0.2)
"$T" -q run "${ARGS[@]}" 2> "$W/progress1.txt" & R=$!; PIDS+=($R)
for i in $(seq 1 200); do   # stop once some records are done (bounded wait)
  [ -f "$W/out/manifest.jsonl" ] && [ "$(wc -l < "$W/out/manifest.jsonl")" -ge 10 ] && break
  sleep 0.1
done
kill -INT $R
rc=0; wait_exit $R 20 || rc=$?
[ $rc -eq 1 ] || fail "run after SIGINT exited with $rc, want 1"
grep -q '"complete":false' "$W/progress1.txt" || fail "no progress lines before the stop"
done1=$(wc -l < "$W/out/manifest.jsonl")
echo "records done before SIGINT: $done1"
[ "$done1" -gt 0 ] && [ "$done1" -lt 600 ] || fail "SIGINT came at the wrong time ($done1 done)"
"$T" -q run "${ARGS[@]}" --models.diffusion=sleep:0 2>/dev/null || fail "resumed run failed"
check_exactly_once "$W/out" 600
"$T" status "$W/out" > "$W/status.txt"
grep -Eq '^runs: +2 ' "$W/status.txt" || fail "status does not show two runs: $(cat "$W/status.txt")"
"$T" status "$W/out" --journal > "$W/journal.txt"
python3 - "$W/journal.txt" <<'PY'
import sys, collections
exp = collections.Counter(l.split()[2] for l in open(sys.argv[1]) if l.split()[1:2] == ["expanded"])
assert len(exp) == 300 and max(exp.values()) == 1, f"{len(exp)} tasks expanded, max {max(exp.values())} times"
print("300 tasks, each expanded once across the two runs")
PY

# hostile ids
printf '%s\n' '{"id":"../../escape","prompt":"a"}' '{"id":"a/b/c","prompt":"b"}' \
  '{"id":"..","prompt":"c"}' '{"id":"ctl\u0001\u001fx","prompt":"d"}' '{"id":"/abs","prompt":"e"}' > "$W/ids.jsonl"
"$T" -q run --kind=render --dataset.path="$W/ids.jsonl" --output.dir="$W/ids/out" --output.layout=files 2>/dev/null || fail "ids job failed"
[ "$(find "$W" -name '*.png' -not -path "$W/ids/out/*" -not -path "$W/out/*" | wc -l)" -eq 0 ] || fail "a file escaped the output folder"
[ "$(find "$W/ids/out" -name '*.png' | wc -l)" -eq 5 ] || fail "want 5 images for 5 hostile ids"
python3 - "$W/ids/out" <<'PY'
import json, sys, os
files = [json.loads(l)["file"] for l in open(sys.argv[1] + "/manifest.jsonl")]
assert len(set(files)) == 5, files
for f in files:
    assert ".." not in f and not f.startswith("/") and f.count("/") == 1, f
    assert os.path.exists(os.path.join(sys.argv[1], f)), f
print("hostile ids kept inside:", files)
PY
echo "PASS"
