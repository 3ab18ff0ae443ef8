#!/usr/bin/env bash
# Tessera waits passively in OpenMP unless the user chose (cli/main.c): with libgomp's default
# spinning, a batched render worker's three stage teams collapsed when anything else wanted the
# cores (README, "Two commands").
# libgomp's own report (OMP_DISPLAY_ENV) of the process that runs the command is what counts;
# the last report printed is that process's.
set -euo pipefail
T=${TESSERA_BIN:?}
fail() { echo "FAIL: $*" >&2; exit 1; }

spin_count() {   # the GOMP_SPINCOUNT libgomp reports for `tessera --version` in this environment
    "$@" OMP_DISPLAY_ENV=verbose "$T" --version 2>&1 | sed -n "s/^ *GOMP_SPINCOUNT = '\([0-9]*\)'.*/\1/p" | tail -1
}
n=$(spin_count env -u OMP_WAIT_POLICY)
[ "$n" = 0 ] || fail "OMP_WAIT_POLICY unset: libgomp spins $n turns, expected 0 (passive)"
n=$(spin_count env OMP_WAIT_POLICY=active)
[ -n "$n" ] && [ "$n" != 0 ] || fail "OMP_WAIT_POLICY=active: spin count '$n', the user's choice was not kept"
n=$(spin_count env OMP_WAIT_POLICY=passive)
[ "$n" = 0 ] || fail "OMP_WAIT_POLICY=passive: spin count '$n'"
# the command still gets its arguments after the restart
v=$(env -u OMP_WAIT_POLICY "$T" --version | head -1)
case "$v" in "tessera "*) ;; *) fail "--version after the restart printed '$v'" ;; esac
# under mpirun each rank restarts itself (same pid, so the launcher still knows it) and joins
if command -v mpirun >/dev/null; then
    out=$(env -u OMP_WAIT_POLICY OMP_DISPLAY_ENV=verbose timeout 120 mpirun --allow-run-as-root --oversubscribe \
        -np 2 -x OMP_DISPLAY_ENV "$T" mpi-info 2>&1) || fail "mpirun mpi-info failed: $out"
    [ "$(grep -c "GOMP_SPINCOUNT = '0'" <<<"$out")" = 2 ] || fail "mpirun: not both ranks passive: $out"
    grep -q '^world: 2 ranks' <<<"$out" || fail "mpirun: the ranks did not form a world of 2: $out"
    echo "5 passed, 0 failed"
else
    echo "4 passed, 0 failed (no mpirun)"
fi
