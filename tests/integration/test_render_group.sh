#!/usr/bin/env bash
# test_render_group.sh — render workers as MPI groups sharing a U-Net (issue 15, part 2):
#   1. a coordinator and `mpirun -np 4 tessera worker render --tp 2`: two groups of two ranks,
#      the coordinator sees two workers (its stats), every record exactly once, each image
#      within 1/255 of what one-rank workers make of the same job (the split sums in another
#      order: the count of differing values is printed);
#   1b. the same job with --tp-pieces 2 (the U-Net cut into 2 pieces whatever the ranks, summed
#      in one order) on both sides: every PNG byte-identical to a one-rank worker's;
#   2. two groups in one `mpirun --enable-recovery`, kill -9 of group 0's follower mid-job: that
#      group alone ends (its rank 0 hands its tasks back at once, running ones included), the
#      other group of the same mpirun finishes the job; every record exactly once, no temp file
#      left, mpirun ends after the job;
#   3. the same with group 0's rank 0 killed: its follower ends, the leases expire.
#   Fails on the old behaviour (group 0's rank 0 waited in its collective for good; without
#   --enable-recovery mpirun took every rank down with the killed one).
# Model: demo/model-short (4 heads, 16 groups).
source "$(dirname "$0")/test_pipeline_common.inc"
command -v mpirun >/dev/null || { echo "no mpirun"; exit 77; }
S=${TESSERA_SOURCE:-.}
MODEL="$S/demo/model-short"
[ -d "$MODEL" ] || fail "demo model missing: $MODEL"
N=8
make_txt "$N" "$W/p.txt"
SAMPLER=(--sampler.name=dpm++2m --sampler.steps=6 --sampler.cfg=4 --sampler.width=48 --sampler.height=48 --seed=5)
MPI=(mpirun --allow-run-as-root --oversubscribe --timeout 600)

coordinator() {   # coordinator OUT ENDPOINT [options]: starts one in the background, pid in $coord
  local out=$1 ep=$2
  shift 2
  "$T" -q coordinator --kind=render --dataset.path="$W/p.txt" --output.dir="$out" --output.layout=files \
    --task_size=1 --endpoint="$ep" "${SAMPLER[@]}" "$@" 2>"$out.err" &
  coord=$!
  PIDS+=("$coord")
}

# The reference: two plain workers. A dead writer's temporary file appears after the
# coordinator's start-up sweep (its socket is bound after it), as a kill -9 mid-write leaves
# one mid-job: the completed job's folder must not keep it.
coordinator "$W/one" "ipc://$W/one.ipc"
for i in $(seq 1 300); do [ -S "$W/one.ipc" ] && break; sleep 0.1; done
echo "torn" >"$W/one/dead-writer.png.tmp.99999"
for k in 1 2; do
  "$T" -q worker render --connect "ipc://$W/one.ipc" --backend model --model "$MODEL" --name "one-$k" 2>"$W/one.w$k.err" &
  PIDS+=("$!")
done
wait_exit "$coord" 300 || fail "coordinator (plain workers) failed: $(tail -3 "$W/one.err")"
check_exactly_once "$W/one" "$N"
[ ! -e "$W/one/dead-writer.png.tmp.99999" ] || fail "a dead writer's temporary file outlived the completed job"

group_run() {   # group_run NAME [worker options]: the job through two groups of `--tp 2` in one mpirun
  local name=$1
  shift
  coordinator "$W/$name" "ipc://$W/$name.ipc"
  OMP_NUM_THREADS=1 "${MPI[@]}" -np 4 "$T" -q worker render --tp 2 "$@" --connect "ipc://$W/$name.ipc" --backend model \
    --model "$MODEL" --name grp 2>"$W/$name.mpi.err" &
  mpi=$!
  PIDS+=("$mpi")
  wait_exit "$coord" 300 || fail "coordinator ($name) failed: $(tail -3 "$W/$name.err")"
  wait_exit "$mpi" 60 || fail "mpirun ($name): $(tail -5 "$W/$name.mpi.err")"
  check_exactly_once "$W/$name" "$N"
}

# 1. Two groups of two ranks.
group_run grp
python3 - "$W" "$N" <<'PY'
import json, os, sys
sys.path.insert(0, os.environ["TESSERA_SOURCE"] + "/tests/integration")
from png_rgb import pixels
w, n = sys.argv[1], int(sys.argv[2])

runs = {r: {x["id"]: x for x in map(json.loads, open(os.path.join(w, r, "manifest.jsonl")))} for r in ("one", "grp")}
same = worst = differ = 0
for rid, row in runs["one"].items():
    got = runs["grp"][rid]
    if got["sha256"] == row["sha256"]:
        same += 1
        continue
    a, b = pixels(os.path.join(w, "one", row["file"])), pixels(os.path.join(w, "grp", got["file"]))
    worst = max(worst, max(abs(x - y) for x, y in zip(a, b)))
    differ += sum(x != y for x, y in zip(a, b))
print(f"groups of 2: {same}/{n} PNGs byte-identical to one-rank workers; the others: max |diff| {worst}/255, "
      f"{differ} values differ")
assert worst <= 1
stats = json.load(open(os.path.join(w, "grp", "stats.json")))
names = json.dumps(stats)
assert "grp-g0" in names and "grp-g1" in names, "the coordinator does not see one worker per group"
PY

# 1b. --tp-pieces 2: the groups' PNGs are the one-rank worker's, byte for byte.
coordinator "$W/one_p2" "ipc://$W/one_p2.ipc"
"$T" -q worker render --connect "ipc://$W/one_p2.ipc" --backend model --model "$MODEL" --tp-pieces 2 --name one-p2 \
  2>"$W/one_p2.w.err" &
PIDS+=("$!")
wait_exit "$coord" 300 || fail "coordinator (one rank, 2 pieces) failed: $(tail -3 "$W/one_p2.err")"
check_exactly_once "$W/one_p2" "$N"
group_run grp_p2 --tp-pieces 2
python3 - "$W" "$N" <<'PY'
import json, os, sys
w, n = sys.argv[1], int(sys.argv[2])
runs = {r: {x["id"]: x["sha256"] for x in map(json.loads, open(os.path.join(w, r, "manifest.jsonl")))}
        for r in ("one_p2", "grp_p2")}
same = sum(runs["grp_p2"][rid] == sha for rid, sha in runs["one_p2"].items())
print(f"--tp-pieces 2: {same}/{n} PNGs of the groups byte-identical to the one-rank worker's")
assert same == n
PY

# 2. kill -9 of one rank of group 0 mid-job, two groups in one `mpirun --enable-recovery`: only
#    group 0 ends; group 1 of the same mpirun renders the rest; nothing else joins the job, and
#    mpirun ends once the job is done (the ranks leave without MPI_Finalize, whose job-wide
#    fence waited forever for a dead world rank 0).
#    kill_one_rank 1: the follower; group 0's rank 0 hands its tasks back (lease_seconds is long,
#                     so only a hand back returns them in time).
#    kill_one_rank 0: the leader; its follower ends, the leases expire (lease_seconds 4).
N2=16
make_txt "$N2" "$W/p2.txt"
rank_pid() {   # rank_pid ENDPOINT R: the pid of world rank R of the mpirun serving ENDPOINT
  local p
  for p in $(pgrep -f "worker render --tp 2 --connect $1" || true); do
    grep -qz "^OMPI_COMM_WORLD_RANK=$2\$" "/proc/$p/environ" 2>/dev/null && { echo "$p"; return; }
  done
}
# The coordinator tells the workers to leave once the job is done, then commits, writes its stats
# and exits: group 1 and mpirun may end a moment before it does (under load that failed the test,
# "mpirun ended before the job was done" with the job complete). So a group or mpirun found gone
# fails the test only if the coordinator then does not finish: with no worker left it never would.
finishes() {   # finishes: the coordinator ($coord) ends within 30 s
  local i
  for i in $(seq 1 300); do kill -0 "$coord" 2>/dev/null || return 0; sleep 0.1; done
  return 1
}
kill_one_rank() {
  local victim=$1 other=$((1 - $1)) out="$W/kill$1" ep="ipc://$W/kill$1.ipc" lease=600
  [ "$victim" = 0 ] && lease=4
  coordinator "$out" "$ep" --lease_seconds=$lease --dataset.path="$W/p2.txt"
  OMP_NUM_THREADS=1 "${MPI[@]}" --enable-recovery -np 4 "$T" -q worker render --tp 2 --connect "$ep" \
    --backend model --model "$MODEL" --name dur 2>"$out.mpi.err" &
  mpi=$!
  PIDS+=("$mpi")
  for i in $(seq 1 600); do   # until the job has rendered something
    [ -s "$out/manifest.jsonl" ] && break
    sleep 0.1
  done
  [ -s "$out/manifest.jsonl" ] || fail "nothing rendered in 60 s: $(tail -5 "$out.mpi.err")"
  local rv=$(rank_pid "$ep" "$victim") ro=$(rank_pid "$ep" "$other") r2=$(rank_pid "$ep" 2)
  [ -n "$rv" ] && [ -n "$ro" ] && [ -n "$r2" ] || fail "ranks 0-2 not found"
  local before=$(wc -l <"$out/manifest.jsonl")
  kill -9 "$rv"
  # the other rank of group 0 ends (within 30 s) while the coordinator and group 1 go on
  for i in $(seq 1 300); do
    kill -0 "$ro" 2>/dev/null || break
    kill -0 "$mpi" 2>/dev/null || finishes ||
      fail "mpirun ended with the killed rank (every group taken down): $(tail -5 "$out.mpi.err")"
    sleep 0.1
  done
  kill -0 "$ro" 2>/dev/null && fail "group 0's rank $other still running 30 s after rank $victim was killed"
  kill -0 "$r2" 2>/dev/null || finishes || fail "group 1's rank 0 ended with group 0 (the job still had work)"
  # mpirun forwards the ranks' stderr in its own time: give the line a moment to arrive
  for i in $(seq 1 50); do grep -q "rank $victim of .* ended without leaving" "$out.mpi.err" && break; sleep 0.1; done
  grep -q "rank $victim of .* ended without leaving" "$out.mpi.err" || fail "group 0's rank $other did not say why it ended: $(tail -5 "$out.mpi.err")"
  # the coordinator finishes with group 1 alone; mpirun must not end before the job is done
  while kill -0 "$coord" 2>/dev/null && kill -0 "$mpi" 2>/dev/null; do sleep 0.1; done
  finishes || fail "mpirun ended before the job was done: $(tail -5 "$out.mpi.err")"
  wait "$coord" || fail "coordinator (kill $victim) failed: $(tail -3 "$out.err")"
  wait_exit "$mpi" 60 || true   # mpirun must end; its status after a lost rank says nothing more
  check_exactly_once "$out" "$N2"
  [ -z "$(find "$out" -name '*.tmp.*')" ] || fail "a half-written file was left: $(find "$out" -name '*.tmp.*')"
  python3 - "$out/stats.json" "$N2" "$before" "$victim" <<'PY'
import json, sys
stats = json.load(open(sys.argv[1]))
n, before, victim = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rows = {w["name"]: w["records"] for w in stats["workers"]}
back, expired = stats["handed_back"], stats["leases_expired"]
print(f"kill -9 of world rank {victim} (group 0) after {before} records: group 0 rendered {rows.get('dur-g0', 0)}, "
      f"group 1 {rows.get('dur-g1', 0)}; tasks handed back {back}, leases expired {expired}")
assert set(rows) <= {"dur-g0", "dur-g1"}, rows
assert rows.get("dur-g0", 0) + rows.get("dur-g1", 0) == n, rows
if victim == 1:
    assert back >= 1 and expired == 0, "group 0's rank 0 handed nothing back (its lease would only have expired)"
PY
}
kill_one_rank 1
kill_one_rank 0
echo "PASS"
