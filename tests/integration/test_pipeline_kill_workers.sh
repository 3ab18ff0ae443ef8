#!/usr/bin/env bash
# kill -9 a random render worker every 0.7 s (and start a fresh one): the job still
# completes with every record exactly once, and expired leases were requeued. A worker
# stopped with SIGTERM hands its queued tasks back.
source "$(dirname "$0")/test_pipeline_common.inc"
make_txt 2000 "$W/d.txt"
EP="ipc://$W/c.ipc"
"$T" -q coordinator --kind=render --dataset.path="$W/d.txt" --output.dir="$W/out" --endpoint="$EP" \
  --output.layout=files --task_size=4 --lease_seconds=1 --heartbeat_seconds=0.2 --retries=100 & C=$!; PIDS+=($C)
start_worker() { "$T" -q worker render --connect "$EP" --heartbeat 0.2 --model sleep:5 & WORKERS+=($!); PIDS+=($!); }
WORKERS=()
for i in 1 2 3 4; do start_worker; done
# a slow worker holding several tasks, stopped with SIGTERM in round 2: it hands back the
# queued ones, finishes the running one and exits 0 promptly
"$T" -q worker render --connect "$EP" --heartbeat 0.2 --model sleep:30 --credit 6 & G=$!; PIDS+=($G)
# and one stopped with SIGUSR1 (Slurm's preemption signal) in round 4, the same way
"$T" -q worker render --connect "$EP" --heartbeat 0.2 --model sleep:30 --credit 6 & U=$!; PIDS+=($U)
# signals only once they are handled (not before main installs the handlers) and the workers
# have had a moment to take tasks they can hand back
wait_catching $G 15 30 || fail "the slow worker never installed its SIGTERM handler"
wait_catching $U 10 30 || fail "the slow worker never installed its SIGUSR1 handler"
sleep 1
kills=0
for round in $(seq 1 12); do
  sleep 0.7
  if [ $round -eq 2 ]; then kill -TERM $G; wait_exit $G 5 || fail "worker exit status after SIGTERM: $?"; fi
  if [ $round -eq 4 ]; then kill -USR1 $U; wait_exit $U 5 || fail "worker exit status after SIGUSR1: $?"; fi
  kill -0 $C 2>/dev/null || break
  idx=$((RANDOM % ${#WORKERS[@]}))
  kill -9 "${WORKERS[$idx]}" 2>/dev/null && kills=$((kills + 1)) || true
  WORKERS[$idx]=""; WORKERS=(${WORKERS[@]}); start_worker
done
wait_exit $C 90 || fail "coordinator exit status $?"
echo "killed $kills workers"
[ $kills -ge 3 ] || fail "the job ended before enough kills ($kills)"
check_exactly_once "$W/out" 2000
python3 -c "import json; s=json.load(open('$W/out/stats.json')); print('leases expired', s['leases_expired']); assert s['leases_expired']>0 and s['records_dead']==0 and s['handed_back']>0, s"
echo "PASS"
