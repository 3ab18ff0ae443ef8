#!/usr/bin/env bash
# Issue 12, defect 3 on a real full disk: the output folder is an 8 MiB tmpfs, which a
# 2,000-record files-layout job (about 24 MiB) fills a third of the way in. The run stops
# with exit 2 and one line naming ENOSPC, the journal holds no good entry after a torn one,
# a second run on the still-full disk stops the same way, and once the tmpfs is grown
# (space is back) a third run finishes with nothing lost or duplicated. Needs root (mount);
# CI runs as root. The injector tests (test_storage_full_disk, test_storage_faults) cover
# the same paths without mounting.
source "$(dirname "$0")/test_pipeline_common.inc"
source "$(dirname "$0")/storage_checks.inc"
MNT="$W/mnt"
mkdir -p "$MNT"
if [ "$(id -u)" != 0 ] || ! mount -t tmpfs -o size=8m tmpfs "$MNT" 2>"$W/mount.err"; then
  echo "SKIP: cannot mount a tmpfs here: $(cat "$W/mount.err")"
  exit 77
fi
trap 'umount -l "$MNT" 2>/dev/null; cleanup' EXIT
local_keys "$W/k"
N=2000
make_txt $N "$W/d.txt"
seq 1 $N | sed 's/.*/"&"/' > "$W/ids.txt"
O="$MNT/out"
run() {
  "$T" -q run --kind=render --dataset.path="$W/d.txt" --output.dir="$O" --output.layout=files \
      --output.shard_size=500 --task_size=4 --keys="$W/k/keys" 2>"$W/err"
}
for attempt in 1 2; do
  rc=0; run || rc=$?
  last=$(grep -v '^{"event"' "$W/err" | tail -1)
  [ $rc -eq 2 ] || fail "run $attempt on a full disk: exit $rc ($last)"
  [ "$(grep -vc '^{"event"' "$W/err")" -eq 1 ] || fail "run $attempt: more than one line: $(grep -v '^{"event"' "$W/err")"
  [[ "$last" == "tessera run: "*"No space left on device"* ]] || fail "run $attempt: last line: $last"
  torn_then_good "$O/journal.tsj"
  echo "run $attempt: $(df -k "$MNT" | awk 'NR==2 {print $3 " KiB used of " $2}'), $("$T" status "$O" | sed -n 2p)"
  echo "run $attempt: $last"
done
mount -o remount,size=64m "$MNT" || fail "cannot grow the tmpfs"
run || fail "the run once space was back: exit $? ($(tail -2 "$W/err"))"
check_output "$O" "$W/ids.txt"
"$T" status "$O" --verify > "$W/status" || fail "verify: $(cat "$W/status")"
grep -q "^job:       complete" "$W/status" || fail "$(cat "$W/status")"
echo "PASS"
