#!/usr/bin/env bash
# `tessera mpi-info --tp T`: the world splits into consecutive groups of T ranks, each group's
# rank 0 leads it; under mpirun -np 4 --tp 2 that is 2 groups of 2 led by world ranks 0 and 2.
# A size that does not divide is refused on every rank by name, and plain `tessera` (no
# launcher) is a world of one rank that never starts MPI. Also: `tessera bench comm` runs.
set -u
T=${TESSERA_BIN:?}
fail=0; pass=0
ok()  { pass=$((pass+1)); }
bad() { echo "FAIL: $*"; fail=$((fail+1)); }
# As test_comm.c: under the ASan build, OpenMPI's own exit-time allocations are not our leaks.
export OMPI_MCA_mca_base_component_disable_dlclose=1
export LSAN_OPTIONS="${LSAN_OPTIONS:+$LSAN_OPTIONS:}suppressions=${TESSERA_SOURCE:-.}/tests/unit/test_comm_lsan.supp:fast_unwind_on_malloc=0:print_suppressions=0"
mpirun_n() { local n=$1; shift; timeout 300 mpirun -np "$n" --allow-run-as-root --oversubscribe --timeout 120 "$@"; }

out=$("$T" mpi-info 2>&1) && ok || bad "alone: exit $?: $out"
echo "$out" | grep -q "^world: 1 rank over single; groups of 1: 1 group$" && ok || bad "alone: $out"
echo "$out" | grep -q "^rank 0: group 0, rank 0 of 1, leader rank 0 (this rank)" && ok || bad "alone: $out"
err=$("$T" mpi-info --tp 2 2>&1 >/dev/null); rc=$?
[ $rc -eq 1 ] && echo "$err" | grep -q "size 1 does not divide into groups of 2" && ok || bad "alone --tp 2: exit $rc: $err"
err=$("$T" mpi-info --tp 0 2>&1 >/dev/null); rc=$?
[ $rc -eq 2 ] && echo "$err" | grep -q "\-\-tp wants a whole number" && ok || bad "--tp 0: exit $rc: $err"

if ! "$T" version | grep -q "mpi=yes"; then
  echo "tessera was built without MPI: the mpirun cases cannot run"; exit 77
fi

out=$(mpirun_n 4 "$T" mpi-info --tp 2 2>&1) && ok || bad "np 4 tp 2: exit $?: $out"
echo "$out" | grep -q "^world: 4 ranks over mpi; groups of 2: 2 groups$" && ok || bad "np 4 tp 2 summary: $out"
for want in "rank 0: group 0, rank 0 of 2, leader rank 0 (this rank)" \
            "rank 1: group 0, rank 1 of 2, leader rank 0," \
            "rank 2: group 1, rank 0 of 2, leader rank 2 (this rank)" \
            "rank 3: group 1, rank 1 of 2, leader rank 2,"; do
  echo "$out" | grep -q "^$want" && ok || bad "np 4 tp 2: no line '$want' in: $out"
done
[ "$(echo "$out" | grep -c '^rank ')" -eq 4 ] && ok || bad "np 4 tp 2: not 4 rank lines: $out"

out=$(mpirun_n 4 "$T" mpi-info --tp 4 2>&1) && ok || bad "np 4 tp 4: exit $?: $out"
echo "$out" | grep -q "^world: 4 ranks over mpi; groups of 4: 1 group$" && ok || bad "np 4 tp 4: $out"
[ "$(echo "$out" | grep -c 'leader rank 0')" -eq 4 ] && ok || bad "np 4 tp 4: one leader: $out"

out=$(mpirun_n 3 "$T" mpi-info --tp 2 2>&1); rc=$?
[ $rc -ne 0 ] && [ $rc -lt 124 ] && ok || bad "np 3 tp 2: exit $rc"
[ "$(echo "$out" | grep -c 'split into groups: size 3 does not divide into groups of 2')" -eq 3 ] && ok \
  || bad "np 3 tp 2: every rank names the problem: $out"

# tessera bench comm runs (a smoke test: its figures are timings, checked by no one here).
out=$(mpirun_n 2 "$T" bench comm --reps 1 --max-mib 0.01 2>&1) && ok || bad "bench comm: exit $?: $out"
echo "$out" | grep -q "^all-reduce (sum, F32) over 2 ranks (mpi)" && ok || bad "bench comm: $out"
[ "$(echo "$out" | grep -cE '^ +(4|64|1024)( +[0-9.]+){6}$')" -eq 3 ] && ok || bad "bench comm sizes: $out"

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
