#!/usr/bin/env bash
# Issue 12, defect 3: a full disk. The disk fills (ENOSPC, through the LD_PRELOAD injector
# tests/faults/storage_faults.c) for a few dozen writes of the journal, then has space again;
# before, the coordinator wrote entries after the torn one, exited 0 and lost records. Now
# the run stops with a non-zero status and one line naming the error, the journal holds no
# good entry after a torn one, and a rerun finishes with nothing lost or doubled. The same
# for EIO on the manifest's fsync, and for ENOSPC under the render workers (their tasks were
# dead-lettered within seconds).
source "$(dirname "$0")/test_pipeline_common.inc"
source "$(dirname "$0")/storage_checks.inc"
make_fast_dir
build_fault_injector
local_keys "$W/k"
make_txt 600 "$W/d.txt"
seq 1 600 | sed 's/.*/"&"/' > "$W/ids.txt"
# sleep:3 (3 ms a record) spreads the job over about 20 group commits, so the faults come mid-run
run() { # OUT [injector settings...]
  local out=$1; shift
  env "$@" "$T" -q run --kind=render --dataset.path="$W/d.txt" --output.dir="$out" --output.shard_size=50 \
      --task_size=4 --keys="$W/k/keys" --models.diffusion=sleep:3 2>"$W/err"
}
scenario() { # NAME ERRNO-TEXT injector settings...
  local name=$1 text=$2 out="$FAST/$1"; shift 2
  local rc=0
  run "$out" LD_PRELOAD="$FAULTS" TESSERA_FAULT_DIR="$out" TESSERA_FAULT_LOG="$W/$name.faults" "$@" || rc=$?
  [ -s "$W/$name.faults" ] || fail "$name: no fault was injected"
  [ $rc -ne 0 ] || fail "$name: the run exited 0 after $(wc -l < "$W/$name.faults") injected faults"
  local last
  last=$(grep -v '^{"event"' "$W/err" | tail -1)
  [[ "$last" == "tessera run: stopped on a storage failure: "*"$text"* ]] || fail "$name: last line: $last"
  [ "$(grep -vc '^{"event"' "$W/err")" -eq 1 ] || fail "$name: more than one line: $(grep -v '^{"event"' "$W/err")"
  torn_then_good "$out/journal.tsj"
  run "$out" || fail "$name: the rerun failed: $(tail -2 "$W/err")"
  check_output "$out" "$W/ids.txt"
  "$T" status "$out" | grep -q "job:       complete" || fail "$name: status: $("$T" status "$out")"
  echo "$name: exit $rc, $(wc -l < "$W/$name.faults") faults, then resumed: $last"
}
scenario journal "No space left on device" TESSERA_FAULT_MATCH=journal.tsj TESSERA_FAULT_AT=11 TESSERA_FAULT_LEN=30
scenario manifest "Input/output error" TESSERA_FAULT_MATCH=manifest.jsonl TESSERA_FAULT_AT=6 TESSERA_FAULT_LEN=5 TESSERA_FAULT_ERRNO=EIO
scenario workers "No space left on device" TESSERA_FAULT_MATCH=.staging TESSERA_FAULT_AT=300
echo "PASS"
