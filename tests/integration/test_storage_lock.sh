#!/usr/bin/env bash
# Issue 12, defect 4: one coordinator per output folder. A second coordinator started on the
# same folder (another port, as a double sbatch on shared storage does) refused nothing and
# redid the whole job; now it exits non-zero naming the first one's host, pid and endpoint.
# While the first runs, `tessera status` says running, never complete. A lock whose holder
# is gone (held here by a Python process posing as a coordinator on another host) refuses
# until --force-unlock; --force-unlock is refused while the holder lives on this host.
source "$(dirname "$0")/test_pipeline_common.inc"
source "$(dirname "$0")/storage_checks.inc"
make_fast_dir
O="$FAST/out"
make_txt 200 "$W/d.txt"
EP="ipc://$W/c1.ipc"
ARGS=(--kind=render --dataset.path="$W/d.txt" --output.dir="$O" --task_size=4 --heartbeat_seconds=0.2)
"$T" -q coordinator "${ARGS[@]}" --endpoint="$EP" 2>"$W/a.err" & A=$!; PIDS+=($A)
for i in $(seq 1 100); do [ -s "$O/coordinator.lock" ] && [ -s "$O/journal.tsj" ] && break; sleep 0.1; done
"$T" status "$O" > "$W/status.txt"
grep -q "^job:       running (coordinator host=.* pid=$A endpoint=$EP" "$W/status.txt" || fail "status while running: $(cat "$W/status.txt")"
rc=0
timeout 20 "$T" -q coordinator "${ARGS[@]}" --endpoint="ipc://$W/c2.ipc" 2>"$W/b.err" || rc=$?
[ $rc -ne 0 ] && [ $rc -ne 124 ] || fail "a second coordinator on the folder was not refused (exit $rc)"
grep -q "is in use by another coordinator (host=.* pid=$A endpoint=$EP" "$W/b.err" || fail "refusal: $(cat "$W/b.err")"
echo "second coordinator refused: $(tail -1 "$W/b.err")"
"$T" -q worker render --connect "$EP" --heartbeat 0.2 --reconnect-max 0.5 & PIDS+=($!)
wait_exit $A 60 || fail "first coordinator: exit $?"
check_exactly_once "$O" 200
"$T" status "$O" | grep -q "^job:       complete" || fail "status after the job: $("$T" status "$O")"

# hold(DIR, HOST, PID): a process holding DIR's lock (a POSIX lock, which conflicts with the
# coordinator's OFD lock) with that holder line; prints its pid once the lock is held
hold() {
  mkdir -p "$1"
  python3 - "$1/coordinator.lock" "$2" "$3" > "$W/holder.pid" <<'PY' &
import fcntl, os, sys, time
f = open(sys.argv[1], "w")
fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
f.write(f"host={sys.argv[2]} pid={sys.argv[3] if sys.argv[3] != 'self' else os.getpid()} endpoint=tcp://gone:1 since=then\n")
f.flush()
print(os.getpid(), flush=True)
time.sleep(120)
PY
  PIDS+=($!)
  for i in $(seq 1 50); do [ -s "$W/holder.pid" ] && break; sleep 0.1; done
}
RUN=(--kind=render --dataset.path="$W/d.txt" --task_size=4)
hold "$FAST/stale" elsewhere 4242
rc=0; timeout 20 "$T" -q run "${RUN[@]}" --output.dir="$FAST/stale" 2>"$W/c.err" || rc=$?
[ $rc -eq 2 ] && grep -q "host=elsewhere pid=4242" "$W/c.err" && grep -q -- "--force-unlock" "$W/c.err" \
  || fail "stale lock: exit $rc, $(cat "$W/c.err")"
timeout 30 "$T" -q run "${RUN[@]}" --output.dir="$FAST/stale" --force-unlock 2>"$W/d.err" || fail "--force-unlock: $(cat "$W/d.err")"
check_exactly_once "$FAST/stale" 200
hold "$FAST/live" "$(hostname)" self
rc=0; timeout 20 "$T" -q run "${RUN[@]}" --output.dir="$FAST/live" --force-unlock 2>"$W/e.err" || rc=$?
[ $rc -eq 2 ] && grep -q "still running on this host" "$W/e.err" || fail "--force-unlock of a live holder: exit $rc, $(cat "$W/e.err")"
echo "PASS"
