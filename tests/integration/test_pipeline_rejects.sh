#!/usr/bin/env bash
# Malformed dataset lines (bad JSON, missing prompt, invalid UTF-8, a 10 MB line) go to
# rejects.jsonl with their line numbers; `tessera run` finishes the rest; a rerun of a
# finished job does nothing again; unknown job keys are errors naming the key.
source "$(dirname "$0")/test_pipeline_common.inc"
python3 - "$W/d.jsonl" <<'PY'
import sys
with open(sys.argv[1], "wb") as f:
    for i in range(1, 101):
        if i == 10: f.write(b'{"id": "10", "prompt": "broken\n')
        elif i == 20: f.write(b'{"id": "20", "negative": "no prompt"}\n')
        elif i == 30: f.write(b'{"id": "30", "prompt": "bad \xff utf8"}\n')
        elif i == 40: f.write(b'{"id": "40", "prompt": "' + b"x" * (10 << 20) + b'"}\n')
        else: f.write(b'{"id": "%d", "prompt": "prompt %d"}\n' % (i, i))
PY
cat > "$W/job.yaml" <<EOF2
kind: generate
dataset:
  path: $W/d.jsonl
output:
  dir: $W/out
  layout: tar
task_size: 3
workers:
  expand: 1
  render: 2
EOF2
"$T" -q run "$W/job.yaml" 2> "$W/progress.txt" || fail "run failed: $(cat "$W/progress.txt")"
tail -1 "$W/progress.txt" | grep -q '"complete":true' || fail "no final JSON progress line"
python3 - "$W/out" <<'PY'
import json, sys
rej = [json.loads(l) for l in open(sys.argv[1] + "/rejects.jsonl")]
assert [r["line"] for r in rej] == [10, 20, 30, 40], rej
ids = [json.loads(l)["id"] for l in open(sys.argv[1] + "/manifest.jsonl")]
assert sorted(ids, key=int) == [str(i) for i in range(1, 101) if i not in (10, 20, 30, 40)], ids
print("rejects:", [(r["line"], r["reason"]) for r in rej])
PY
"$T" -q run "$W/job.yaml" 2>/dev/null || fail "rerun of a finished job failed"
[ "$(wc -l < "$W/out/manifest.jsonl")" -eq 96 ] || fail "rerun changed the manifest"
if "$T" run "$W/job.yaml" --output.dirr=x 2> "$W/err.txt"; then fail "unknown key accepted"; fi
grep -q "output.dirr" "$W/err.txt" || fail "error does not name the key: $(cat "$W/err.txt")"
echo "bogus: 1" >> "$W/job.yaml"
if "$T" run "$W/job.yaml" 2> "$W/err.txt"; then fail "unknown key in file accepted"; fi
grep -q "'bogus'" "$W/err.txt" || fail "error does not name the key: $(cat "$W/err.txt")"
echo "PASS"
