#!/usr/bin/env bash
# Job kinds and failures: a record whose render fails every time is dead-lettered after
# `retries` attempts with every reason, the rest of the job completes; a recaption job
# writes {id, caption, expanded} lines; a JSON job spec works like YAML.
source "$(dirname "$0")/test_pipeline_common.inc"
for i in $(seq 1 30); do
  if [ $i -eq 7 ] || [ $i -eq 19 ]; then echo "{\"id\":\"r$i\",\"prompt\":\"please [[fail]] $i\"}"
  else echo "{\"id\":\"r$i\",\"prompt\":\"prompt $i\"}"; fi
done > "$W/d.jsonl"
"$T" -q run --kind=render --dataset.path="$W/d.jsonl" --output.dir="$W/out" --task_size=1 --retries=3 2>/dev/null \
  || fail "job with poison records did not complete"
python3 - "$W/out" <<'PY'
import json, sys
out = sys.argv[1]
dead = [json.loads(l) for l in open(out + "/dead_letter.jsonl")]
assert sorted(d["ids"][0] for d in dead) == ["r19", "r7"], dead
for d in dead:
    assert d["attempts"] == 3 and d["reasons"].count("null renderer") == 3, d
ids = [json.loads(l)["id"] for l in open(out + "/manifest.jsonl")]
assert len(ids) == 28 and "r7" not in ids and "r19" not in ids, ids
s = json.load(open(out + "/stats.json"))
assert s["records_dead"] == 2 and s["records_done"] == 28 and s["failures_by_reason"]["null renderer"] == 6, s
print("dead letters:", [(d["ids"], d["attempts"]) for d in dead])
PY
"$T" status "$W/out" > "$W/status.txt"
grep -Eq '^records: +28 done, 2 dead-lettered, of 30 ' "$W/status.txt" \
  || fail "status does not count dead letters: $(cat "$W/status.txt")"

cat > "$W/job.json" <<EOF2
{"kind": "recaption", "dataset": {"path": "$W/c.csv", "prompt_field": "caption"},
 "output": {"dir": "$W/rc"}, "task_size": 4, "workers": {"expand": 2}}
EOF2
printf 'id,caption\nc1,"a dog, running"\nc2,a cat\nc3,"a ""quoted"" bird"\n' > "$W/c.csv"
"$T" -q run "$W/job.json" 2>/dev/null || fail "recaption job failed"
python3 - "$W/rc" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1] + "/manifest.jsonl")]
got = {r["id"]: (r["caption"], r["expanded"]) for r in rows}
assert got == {"c1": ("a dog, running", "a dog, running, detailed"), "c2": ("a cat", "a cat, detailed"),
               "c3": ('a "quoted" bird', 'a "quoted" bird, detailed')}, got
print("recaption:", got)
PY
[ -z "$(find "$W/rc" -name '*.tar')" ] || fail "a recaption job wrote image shards"
echo "PASS"
