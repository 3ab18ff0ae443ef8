#!/usr/bin/env bash
# The Slurm dev cluster: a real munged + slurmctld + slurmd on localhost accepts a batch
# job with two tasks and runs the tessera program inside it.
set -u
SRC=${TESSERA_SOURCE:?}
T=${TESSERA_BIN:?}
export SLURM_DEV_DIR=$(mktemp -d /tmp/tessera-slurm-test.XXXXXX)
# ports of our own, so a developer's running dev cluster does not collide with the test
export SLURM_DEV_CTLD_PORT=$((20000 + $$ % 10000)) SLURM_DEV_D_PORT=$((30000 + $$ % 10000))
cleanup() { bash "$SRC/cluster/slurm-dev.sh" stop >/dev/null 2>&1; rm -rf "$SLURM_DEV_DIR"; }
trap cleanup EXIT
pass=0; fail=0
ok()  { pass=$((pass+1)); }
bad() { echo "FAIL: $*"; fail=$((fail+1)); }

bash "$SRC/cluster/slurm-dev.sh" start && ok || { bad "cluster start"; echo "$pass passed, $fail failed"; exit 1; }
eval "$(bash "$SRC/cluster/slurm-dev.sh" env)"

cat > "$SLURM_DEV_DIR/job.sh" <<JOB
#!/usr/bin/env bash
#SBATCH --ntasks=2
#SBATCH --time=2
srun bash -c 'echo "task \$SLURM_PROCID of \$SLURM_NTASKS"; "$T" version | head -1'
JOB
timeout 60 sbatch --wait -o "$SLURM_DEV_DIR/job.out" "$SLURM_DEV_DIR/job.sh" >/dev/null && ok || bad "sbatch --wait"
out=$(cat "$SLURM_DEV_DIR/job.out" 2>/dev/null)
echo "$out" | grep -q "task 0 of 2" && ok || bad "task 0 missing: $out"
echo "$out" | grep -q "task 1 of 2" && ok || bad "task 1 missing: $out"
[ "$(echo "$out" | grep -c '^tessera ')" -eq 2 ] && ok || bad "tessera did not run in both tasks: $out"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
