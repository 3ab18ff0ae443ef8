#!/usr/bin/env bash
# Issue 12: storage faults at random moments over a 2,000-record tar job. Each round runs the
# job under the LD_PRELOAD injector (tests/faults/storage_faults.c) with a fault at a random
# counted write (ENOSPC, EIO, EDQUOT or EROFS; the disk stays broken, or heals after a random
# number of operations); a run that met a fault must end 2 with one line naming the error
# (one that met none may finish, 0), and leave no good journal entry after a torn one. After the rounds a clean run finishes
# the job: 0 records lost, 0 duplicated, every sha256 as in the manifest.
# TESSERA_FAULT_SEED repeats a sequence (the seed is printed).
source "$(dirname "$0")/test_pipeline_common.inc"
source "$(dirname "$0")/storage_checks.inc"
make_fast_dir
build_fault_injector
local_keys "$W/k"
N=2000
make_txt $N "$W/d.txt"
seq 1 $N | sed 's/.*/"&"/' > "$W/ids.txt"
O="$FAST/out"
SEED=${TESSERA_FAULT_SEED:-$RANDOM}
echo "fault seed: $SEED (TESSERA_FAULT_SEED=$SEED repeats it)"
python3 - "$SEED" > "$W/plan" <<'PY'
import random, sys
r = random.Random(int(sys.argv[1]))
for _ in range(40):
    at = r.randint(1, 2500)
    length = 0 if r.random() < 0.5 else r.randint(1, 200)
    print(at, length, r.choice(["ENOSPC", "ENOSPC", "EIO", "EDQUOT", "EROFS"]))
PY
run() {
  env "$@" "$T" -q run --kind=render --dataset.path="$W/d.txt" --output.dir="$O" --output.shard_size=100 \
      --task_size=4 --keys="$W/k/keys" 2>"$W/err"
}
rounds=0 faulted=0
while read -r at len errno; do
  rounds=$((rounds + 1))
  : > "$W/faults.now"
  rc=0
  run LD_PRELOAD="$FAULTS" TESSERA_FAULT_DIR="$O" TESSERA_FAULT_AT=$at TESSERA_FAULT_LEN=$len \
      TESSERA_FAULT_ERRNO=$errno TESSERA_FAULT_LOG="$W/faults.now" || rc=$?
  cat "$W/faults.now" >> "$W/faults.all"
  lines=$(grep -vc '^{"event"' "$W/err" || true)
  if [ $rc -eq 2 ]; then
    last=$(grep -v '^{"event"' "$W/err" | tail -1)
    [ "$lines" -eq 1 ] || fail "round $rounds ($at $len $errno): $lines lines: $(grep -v '^{"event"' "$W/err")"
    [[ "$last" == "tessera run: "* ]] && grep -qE "No space left on device|Input/output error|Disk quota exceeded|Read-only file system" <<< "$last" \
      || fail "round $rounds ($at $len $errno): unclear last line: $last"
    [ -s "$W/faults.now" ] || fail "round $rounds: exit 2 without an injected fault: $last"
    faulted=$((faulted + 1))
  elif [ $rc -ne 0 ]; then
    fail "round $rounds ($at $len $errno): exit $rc: $(tail -3 "$W/err")"
  elif [ -s "$W/faults.now" ]; then
    fail "round $rounds ($at $len $errno): exit 0 after $(wc -l < "$W/faults.now") injected faults"
  fi
  [ -f "$O/journal.tsj" ] && { torn_then_good "$O/journal.tsj" > /dev/null || fail "round $rounds: torn journal"; }
  [ $rc -eq 0 ] && break
  [ $faulted -ge 15 ] && break
done < "$W/plan"
run || run || fail "the clean run failed: $(tail -3 "$W/err")"
check_output "$O" "$W/ids.txt"
"$T" status "$O" --verify > "$W/status" || fail "verify: $(cat "$W/status")"
grep -q "^job:       complete" "$W/status" || fail "$(cat "$W/status")"
python3 - "$O" "$W/ids.txt" "$W/faults.all" $rounds $faulted <<'PY'
import collections, json, sys
out, idfile, faults, rounds, faulted = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
want = {json.loads(l) for l in open(idfile)}
ids = collections.Counter(json.loads(l)["id"] for l in open(out + "/manifest.jsonl"))
lost = len(want - set(ids))
dup = sum(v - 1 for v in ids.values())
kinds = collections.Counter()
ops = collections.Counter()
for l in open(faults):
    op, err, _ = l.split(" ", 2)
    kinds[{"28": "ENOSPC", "5": "EIO", "122": "EDQUOT", "30": "EROFS"}.get(err, err)] += 1
    ops[op] += 1
print(f"records {len(want)}; runs {rounds} with the injector, {faulted} stopped by a fault; "
      f"faults injected {sum(kinds.values())} ({dict(kinds)}; by call {dict(ops)}); lost {lost}; duplicated {dup}")
assert lost == 0 and dup == 0
PY
echo "PASS"
