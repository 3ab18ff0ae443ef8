#!/usr/bin/env bash
# A job array on a real Slurm (cluster/slurm-dev.sh): `sbatch --array=0-2 jobs/tessera.sbatch`
# with TESSERA_DATASETS naming 3 datasets of different sizes (one with bad lines). Checked:
# each array task writes its own output folder and journal with every record of its dataset
# exactly once, and `tessera status --summary` merges them: its sums equal the sums of the
# three folders counted directly (manifest lines, rejects lines).
source "$(dirname "$0")/slurm_common.inc" array
mkdir -p "$D/keys/allow" "$D/out"
"$T" keygen server --dir "$D/keys" >/dev/null && "$T" keygen worker --dir "$D/keys" >/dev/null &&
  cp "$D/keys/worker.cert" "$D/keys/allow/" && ok || bad "keygen"
# three datasets: 12 txt lines, 20 jsonl records + 2 malformed lines, 7 csv rows
seq 1 12 | sed 's/^/array prompt /' > "$D/a.txt"
{ for i in $(seq 1 20); do echo "{\"id\": \"b$i\", \"prompt\": \"jsonl prompt $i\"}"; done
  echo '{"id": "broken", "prompt": '; echo 'not json at all'; } > "$D/b.jsonl"
{ echo "id,prompt"; for i in $(seq 1 7); do echo "c$i,csv prompt $i"; done; } > "$D/c.csv"
printf '%s\n' "$D/a.txt" "$D/b.jsonl" "$D/c.csv" > "$D/datasets.txt"

TESSERA=$T TESSERA_OUT=$D/out TESSERA_KEYS=$D/keys TESSERA_DATASETS=$D/datasets.txt TESSERA_EXPANDERS=0 \
  TESSERA_PORT=$((SLURM_DEV_CTLD_PORT + 5)) timeout 100 sbatch --wait --array=0-2 --ntasks=2 \
  -o "$D/job-%a.log" "$SRC/jobs/tessera.sbatch" "$SRC/jobs/demo.yaml" --kind=render --task_size=3 >/dev/null &&
  ok || bad "array job failed: $(tail -3 "$D"/job-*.log)"
want=(12 20 7)
sum_lines=0; sum_rejects=0
for i in 0 1 2; do
  o=$D/out/task-$i
  [ -f "$o/journal.tsj" ] && ok || bad "array task $i has no journal of its own in $o"
  ids=$(python3 -c "
import json, sys, collections
ids = [json.loads(l)['id'] for l in open(sys.argv[1])]
print(len(set(ids)), sum(1 for v in collections.Counter(ids).values() if v > 1))" "$o/manifest.jsonl" 2>/dev/null)
  [ "$ids" = "${want[$i]} 0" ] && ok || bad "array task $i: unique/duplicated ids $ids, want ${want[$i]} 0"
  grep -q "array task $i" "$D/job-$i.log" && ok || bad "array task $i's log does not name it"
  sum_lines=$((sum_lines + $(wc -l < "$o/manifest.jsonl")))
  sum_rejects=$((sum_rejects + $(wc -l < "$o/rejects.jsonl")))
done
[ $sum_rejects -eq 2 ] && ok || bad "the jsonl's 2 bad lines should be rejected, $sum_rejects rejects in all"
"$T" status --summary "$D"/out/task-* > "$D/summary.txt"; rc=$?
[ $rc -eq 0 ] && ok || bad "status --summary exit $rc"
grep -Eq "^total \(3 jobs, 3 complete\) +$sum_lines +0 +$sum_lines +$sum_rejects " "$D/summary.txt" && ok ||
  bad "summary total line should sum to $sum_lines done, $sum_rejects rejected: $(cat "$D/summary.txt")"
"$T" status --summary --json "$D"/out/task-* > "$D/summary.json"
python3 - "$D/summary.json" $sum_lines $sum_rejects <<'PY' && ok || bad "JSON summary: $(cat "$D/summary.json")"
import json, sys
s = json.load(open(sys.argv[1]))
lines, rejects = int(sys.argv[2]), int(sys.argv[3])
t, jobs = s["total"], s["jobs"]
assert len(jobs) == 3 and t["jobs"] == 3 and t["complete"] == 3, t
assert t["records_done"] == lines == sum(j["records_done"] for j in jobs), t
assert t["records_total"] == lines and t["rejected_lines"] == rejects, t
assert sorted(j["records_done"] for j in jobs) == [7, 12, 20], jobs
PY
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
