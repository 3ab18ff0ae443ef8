#!/usr/bin/env bash
# A real one-node Slurm cluster on localhost for tests and demos: munged, slurmctld and
# slurmd, each with its own state under $SLURM_DEV_DIR (default /tmp/tessera-slurm).
#
#   cluster/slurm-dev.sh start    # start munge + slurmctld + slurmd; wait until the node is idle
#   cluster/slurm-dev.sh env      # print the exports that point sbatch/squeue at it
#   cluster/slurm-dev.sh stop
#
# Needs root (daemons run as root here) and the slurm-wlm + munge packages
# (tools/install-deps.sh installs them).
set -euo pipefail
DIR=${SLURM_DEV_DIR:-/tmp/tessera-slurm}
CONF=$DIR/slurm.conf
HOST=$(hostname -s)

write_config() {
  mkdir -p "$DIR"/{state,spool,log,munge,run}
  local cpus mem
  # Advertise more CPUs than the machine has (config_overrides), so a test can run a
  # coordinator and several workers as separate Slurm tasks on a 2-core machine.
  cpus=$(( $(nproc) * 8 ))
  mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
  cat > "$CONF" <<CONF
ClusterName=tessera-dev
SlurmctldHost=$HOST
SlurmctldPort=${SLURM_DEV_CTLD_PORT:-16817}
SlurmdPort=${SLURM_DEV_D_PORT:-16818}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# cred_expire also sets how long a requeued job waits before it may start again (default 120 s)
AuthInfo=socket=$DIR/munge/munge.socket,cred_expire=5
CryptoType=crypto/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
SlurmdParameters=config_overrides
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
InactiveLimit=0
KillWait=5
MinJobAge=60
SlurmctldTimeout=30
SlurmdTimeout=30
NodeName=$HOST CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
CONF
  # Slurm's plugins read cgroup.conf only for cgroup plugins; none are used here.
}

start_munge() {
  local key=$DIR/munge/munge.key sock=$DIR/munge/munge.socket
  if [ -S "$sock" ] && MUNGE_SOCKET=$sock munge -n -S "$sock" >/dev/null 2>&1; then return; fi
  [ -f "$key" ] || { dd if=/dev/urandom of="$key" bs=1024 count=1 status=none; chmod 400 "$key"; }
  chmod 755 "$DIR/munge"
  munged --force -S "$sock" --key-file="$key" --pid-file="$DIR/munge/munged.pid" \
         --log-file="$DIR/munge/munged.log" --seed-file="$DIR/munge/munged.seed"
}

env_lines() {
  echo "export SLURM_CONF=$CONF"
}

case "${1:-}" in
  start)
    command -v slurmctld >/dev/null || { echo "slurm-dev: slurmctld not installed (run tools/install-deps.sh)" >&2; exit 1; }
    write_config
    start_munge
    # slurm talks to munge through libmunge, which reads the socket path from the env var.
    export MUNGE_SOCKET=$DIR/munge/munge.socket SLURM_CONF=$CONF
    if ! scontrol ping >/dev/null 2>&1 || ! scontrol ping 2>/dev/null | grep -q UP; then
      slurmctld -f "$CONF" -c
      slurmd -f "$CONF"
    fi
    for _ in $(seq 1 60); do
      state=$(sinfo -h -o %t 2>/dev/null | head -1 || true)
      case "$state" in idle|mix|alloc) echo "slurm-dev: node $HOST is $state"; exit 0;; esac
      sleep 0.5
    done
    echo "slurm-dev: cluster did not come up; logs in $DIR/log" >&2
    tail -n 5 "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log" >&2 || true
    exit 1
    ;;
  env) env_lines ;;
  stop)
    for p in slurmd slurmctld; do
      [ -f "$DIR/run/$p.pid" ] && kill "$(cat "$DIR/run/$p.pid")" 2>/dev/null || true
    done
    [ -f "$DIR/munge/munged.pid" ] && kill "$(cat "$DIR/munge/munged.pid")" 2>/dev/null || true
    sleep 1
    ;;
  *) echo "usage: $0 start|env|stop" >&2; exit 2 ;;
esac
