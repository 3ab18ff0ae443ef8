#!/usr/bin/env bash
# Issue 12, defect 2: a closed shard is never rewritten. A finished 1,000-record tar job
# (shard_size 100) has its journal cut 5 bytes into a done entry a few entries before shard
# 4's J_SHARD: the rerun redoes those tasks, and 00004.tar used to be replaced by a tar of
# just the redone records. Then a byte in the middle of the journal is damaged: the records
# after it are redone too, checked against the closed shards, and nothing is lost, doubled
# or rewritten (every tar keeps its bytes). Last, a record missing from a closed shard (its
# member deleted from the tar) is written to a new shard beside it, not lost.
source "$(dirname "$0")/test_pipeline_common.inc"
source "$(dirname "$0")/storage_checks.inc"
make_fast_dir
O="$FAST/out"
make_txt 1000 "$W/d.txt"
seq 1 1000 | sed 's/.*/"&"/' > "$W/ids.txt"
run() { "$T" ${QUIET-"-q"} run --kind=render --dataset.path="$W/d.txt" --output.dir="$O" --output.shard_size=100 2>"$W/err" \
          || fail "run exit $? ($(tail -2 "$W/err"))"; }
run
check_output "$O" "$W/ids.txt"
sums() { (cd "$O" && sha256sum [0-9]*.tar); }
sums > "$W/tars.before"
# 1. the journal cut 5 bytes into the 3rd done entry before shard 4's J_SHARD (type 7)
journal_entries "$O/journal.tsj" > "$W/entries"
cut=$(python3 - "$W/entries" <<'PY'
import sys
e = [tuple(map(int, l.split())) for l in open(sys.argv[1])]
i = next(k for k, (off, typ, task) in enumerate(e) if typ == 7 and task == 4)
dones = [k for k in range(i) if e[k][1] == 3]
print(e[dones[-3]][0] + 5)
PY
)
truncate -s "$cut" "$O/journal.tsj"
run
check_output "$O" "$W/ids.txt"
python3 - "$O" <<'PY'
import tarfile, sys
n = sum(1 for m in tarfile.open(sys.argv[1] + "/00004.tar").getnames() if m.endswith(".png"))
assert n == 100, f"00004.tar holds {n} records, not 100"
PY
sums | diff "$W/tars.before" - || fail "a closed shard was rewritten"
# 2. a byte damaged in the middle of the journal (inside the 40th entry)
off=$(sed -n 40p "$W/entries" | cut -d' ' -f1)
printf '\xff' | dd of="$O/journal.tsj" bs=1 seek=$((off + 20)) conv=notrunc status=none
run
check_output "$O" "$W/ids.txt"
sums | diff "$W/tars.before" - || fail "a closed shard was rewritten after damage in the middle"
# 3. a record missing from a closed shard, with the journal cut before its task's done entry:
#    written to a new shard, said loudly
python3 - "$O/00007.tar" <<'PY'
import tarfile, sys, os
p = sys.argv[1]
src = tarfile.open(p)
keep = [(m, src.extractfile(m).read()) for m in src.getmembers() if not m.name.startswith("750.")]
src.close()
with tarfile.open(p + ".new", "w", format=tarfile.PAX_FORMAT) as dst:
    for m, data in keep:
        import io
        dst.addfile(m, io.BytesIO(data))
os.replace(p + ".new", p)
PY
journal_entries "$O/journal.tsj" > "$W/entries"
cut=$(python3 - "$W/entries" <<'PY'
import sys
e = [tuple(map(int, l.split())) for l in open(sys.argv[1])]
print(next(off for off, typ, task in e if typ == 3 and task == 749 // 8))  # record 750's task
PY
)
truncate -s "$cut" "$O/journal.tsj"
QUIET="" run
grep -q "00007.tar is closed but lacks" "$W/err" || fail "the missing record was not reported: $(cat "$W/err")"
[ -f "$O/00007-r1.tar" ] || fail "no repair shard 00007-r1.tar"
check_output "$O" "$W/ids.txt"
echo "PASS"
