#!/usr/bin/env bash
# tessera run drains on SIGUSR1 (what a preempted Slurm job's coordinator gets): nothing more
# is leased, the tasks the render threads hold finish and are journalled, it exits 3 and says
# so; the same command again finishes the job. Every record exactly once, none rendered
# twice (the workers' render log), two runs in the journal, --verify clean.
set -u
T=${TESSERA_BIN:?}
SRC=${TESSERA_SOURCE:?}
D=$(mktemp -d /tmp/tessera-drain.XXXXXX)
P=
trap '[ -n "$P" ] && kill $P 2>/dev/null; rm -rf "$D"' EXIT
pass=0; fail=0
ok()  { pass=$((pass+1)); }
bad() { echo "FAIL: $*"; fail=$((fail+1)); }
N=150
seq 1 $N | sed 's/^/a drained prompt /' > "$D/p.txt"
export TESSERA_RENDER_LOG=$D/rendered.log
ARGS=("$SRC/jobs/demo.yaml" --kind=render --dataset.path="$D/p.txt" --output.dir="$D/out" --task_size=2
      --output.shard_size=50 --workers.render=2 --workers.credit=3)
"$T" run "${ARGS[@]}" --models.diffusion=sleep:60 2> "$D/run1.log" &
P=$!
for _ in $(seq 1 200); do [ "$(wc -l 2>/dev/null < "$D/out/manifest.jsonl" || echo 0)" -ge 20 ] && break; sleep 0.05; done
before=$(wc -l < "$D/out/manifest.jsonl")
kill -USR1 $P
wait $P; rc=$?
[ $rc -eq 3 ] && ok || bad "exit status $rc after SIGUSR1, want 3: $(tail -3 "$D/run1.log")"
grep -q 'tessera run: drained; run the same command again' "$D/run1.log" && ok || bad "no 'drained' message: $(tail -3 "$D/run1.log")"
grep -Eq 'drained in [0-9.]+ s: [0-9]+ tasks were leased: [0-9]+ finished, [0-9]+ handed back, 0 still out' "$D/run1.log" &&
  ok || bad "drain report: $(grep drain "$D/run1.log")"
after=$(wc -l < "$D/out/manifest.jsonl")
[ "$after" -lt $N ] && ok || bad "the job finished before the drain; make it slower"
[ "$after" -ge "$before" ] && ok || bad "manifest shrank"
"$T" run "${ARGS[@]}" --models.diffusion=sleep:1 2> "$D/run2.log"; rc=$?
[ $rc -eq 0 ] && ok || bad "second run exit $rc: $(tail -3 "$D/run2.log")"
"$T" status "$D/out" --verify > "$D/status.txt"; rc=$?
[ $rc -eq 0 ] && grep -q '^job: *complete' "$D/status.txt" && ok || bad "status: $(cat "$D/status.txt")"
grep -Eq "^verify: +$N records: 0 missing, 0 sha256 mismatches, 0 ids listed twice" "$D/status.txt" && ok || bad "verify: $(grep verify "$D/status.txt")"
grep -Eq '^runs: +2 ' "$D/status.txt" && ok || bad "runs: $(grep runs "$D/status.txt")"
[ "$(sort "$D/rendered.log" | uniq -d | wc -l)" -eq 0 ] && ok || bad "$(sort "$D/rendered.log" | uniq -d | wc -l) records rendered twice"
[ "$(sort -u "$D/rendered.log" | wc -l)" -eq $N ] && ok || bad "rendered $(sort -u "$D/rendered.log" | wc -l) of $N"
echo "drained at $after/$N records"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
