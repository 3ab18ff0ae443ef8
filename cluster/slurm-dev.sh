#!/usr/bin/env bash
# A real Slurm cluster on localhost for tests and demos: munged, slurmctld and slurmd,
# each with its own state under $SLURM_DEV_DIR (default /tmp/tessera-slurm).
#
#   cluster/slurm-dev.sh start    # start munge + slurmctld + slurmd; wait until the node is idle
#   cluster/slurm-dev.sh env      # print the exports that point sbatch/squeue (and Open MPI) at it
#   cluster/slurm-dev.sh stop     # cancel its jobs (their steps outlive slurmd), then stop the daemons
#
# SLURM_DEV_NODES=3 starts three nodes n1 n2 n3 instead of one (one slurmd each, `slurmd -N`,
# on ports SlurmdPort+1..3, all on this machine): what heterogeneous jobs need (a job's
# components get nodes of their own) and what `srun --mpi=pmix` across nodes is tested on.
# Each node has its own spool, log and TmpFS, so PMIx's per-node folders do not collide.
# The nodes share the file system: shared storage is any folder.
#
# Needs root (daemons run as root here) and the slurm-wlm + munge packages
# (tools/install-deps.sh installs them).
set -euo pipefail
DIR=${SLURM_DEV_DIR:-/tmp/tessera-slurm}
CONF=$DIR/slurm.conf
HOST=$(hostname -s)
# Open MPI names its shared-memory segments (/dev/shm/vader_segment.HOST.JOBHASH.RANK) after
# the job and step, and a fresh dev cluster numbers its jobs from 1 again: a rank killed with
# SIGKILL leaves its segment behind, and the same-numbered step of the next cluster attached
# to it and hung in its first collective (MPI_Comm_dup). So each cluster's segments live in a
# folder of its own (`env` exports it), removed by `stop`.
SHM=/dev/shm/$(basename "$DIR")

write_config() {
  mkdir -p "$DIR"/{state,spool,log,munge,run}
  local cpus mem nodes=${SLURM_DEV_NODES:-1}
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
# mpi/pmix: `srun --mpi=pmix` (OpenMPI programs find their ranks through it)
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
SlurmdParameters=config_overrides
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool/%n
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd-%n.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd-%n.log
TmpFS=$DIR/tmp/%n
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
# heterogeneous jobs are started by the backfill scheduler only: look every second, not every 30
SchedulerParameters=bf_interval=1
InactiveLimit=0
KillWait=5
MinJobAge=60
SlurmctldTimeout=30
SlurmdTimeout=30
CONF
  if [ "$nodes" -le 1 ]; then
    mkdir -p "$DIR/spool/$HOST" "$DIR/tmp/$HOST"
    echo "NodeName=$HOST CPUs=$cpus RealMemory=$mem State=UNKNOWN" >> "$CONF"
    echo "PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES" >> "$CONF"
  else
    local i
    for i in $(seq 1 "$nodes"); do
      mkdir -p "$DIR/spool/n$i" "$DIR/tmp/n$i"
      echo "NodeName=n$i NodeHostname=$HOST Port=$(( ${SLURM_DEV_D_PORT:-16818} + i )) CPUs=$cpus RealMemory=$(( mem / nodes )) State=UNKNOWN" >> "$CONF"
    done
    echo "PartitionName=debug Nodes=n[1-$nodes] Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES" >> "$CONF"
  fi
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
  echo "export OMPI_MCA_btl_vader_backing_directory=$SHM"
}

case "${1:-}" in
  start)
    command -v slurmctld >/dev/null || { echo "slurm-dev: slurmctld not installed (run tools/install-deps.sh)" >&2; exit 1; }
    write_config
    mkdir -p "$SHM"
    start_munge
    # slurm talks to munge through libmunge, which reads the socket path from the env var.
    export MUNGE_SOCKET=$DIR/munge/munge.socket SLURM_CONF=$CONF
    if ! scontrol ping >/dev/null 2>&1 || ! scontrol ping 2>/dev/null | grep -q UP; then
      slurmctld -f "$CONF" -c
      if [ "${SLURM_DEV_NODES:-1}" -le 1 ]; then slurmd -f "$CONF" -N "$HOST"
      else for i in $(seq 1 "$SLURM_DEV_NODES"); do slurmd -f "$CONF" -N "n$i"; done; fi
    fi
    want=${SLURM_DEV_NODES:-1}
    for _ in $(seq 1 60); do
      up=$(sinfo -h -N -o %t 2>/dev/null | grep -cE '^(idle|mix|alloc)' || true)
      [ "$up" -ge "$want" ] && { echo "slurm-dev: $up node(s) up: $(sinfo -h -o '%N %t' | head -1)"; exit 0; }
      sleep 0.5
    done
    echo "slurm-dev: cluster did not come up; logs in $DIR/log" >&2
    tail -n 5 "$DIR/log/slurmctld.log" "$DIR"/log/slurmd-*.log >&2 || true
    exit 1
    ;;
  env) env_lines ;;
  stop)
    # End this cluster's jobs first: slurmstepd and the tasks outlive their slurmd, so a test that
    # failed mid-job left its coordinator and ranks running (loading the tests after it).
    export MUNGE_SOCKET=$DIR/munge/munge.socket SLURM_CONF=$CONF
    if [ -f "$CONF" ] && [ -n "$(squeue -h -o %i 2>/dev/null)" ]; then
      scancel --user="$(id -un)" 2>/dev/null || true
      for _ in $(seq 1 40); do [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break; sleep 0.5; done
    fi
    for f in "$DIR"/run/slurmd-*.pid "$DIR/run/slurmctld.pid"; do
      [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true
    done
    [ -f "$DIR/munge/munged.pid" ] && kill "$(cat "$DIR/munge/munged.pid")" 2>/dev/null || true
    sleep 1
    rm -rf "$SHM"
    ;;
  *) echo "usage: $0 start|env|stop" >&2; exit 2 ;;
esac
