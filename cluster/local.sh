#!/usr/bin/env bash
# cluster/local.sh — a local Tessera cluster on one machine, as separate processes:
# one coordinator and N expander + M render workers over TCP, CURVE on.
#
#   cluster/local.sh JOB.yaml [-e N] [-r M] [-p PORT] [-- --KEY=VALUE ...]
#
# Keys: OUT/keys is made on first use (server pair, one worker pair, allow/ with its public
# half), like `tessera run`. Stop with Ctrl-C (coordinator and workers stop cleanly; run
# again to resume). Logs: OUT/logs/. Exit status: the coordinator's.
set -euo pipefail
T=${TESSERA:-$(dirname "$0")/../build/release/tessera}
[ $# -ge 1 ] || { sed -n '2,10p' "$0"; exit 2; }
JOB=$1; shift
EXPAND=1 RENDER=2 PORT=5555
while [ $# -gt 0 ]; do
  case $1 in
    -e) EXPAND=$2; shift 2 ;;
    -r) RENDER=$2; shift 2 ;;
    -p) PORT=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "local.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
# the output folder, after overrides
OUT=$(python3 - "$JOB" "$@" <<'PY'
import sys, json, re
out = None
for a in sys.argv[2:]:
    if a.startswith("--output.dir="): out = a.split("=", 1)[1]
if out is None:
    text = open(sys.argv[1]).read()
    if sys.argv[1].endswith(".json"):
        j = json.loads(text); out = j.get("output.dir") or j.get("output", {}).get("dir")
    else:
        m = re.search(r"^\s*dir:\s*(\S+)", text, re.M) or re.search(r"^output\.dir:\s*(\S+)", text, re.M)
        out = m and m.group(1)
print(out or "")
PY
)
[ -n "$OUT" ] || { echo "local.sh: the job has no output.dir" >&2; exit 2; }
K="$OUT/keys"
mkdir -p "$K/allow" "$OUT/logs"
[ -f "$K/server.cert_secret" ] || "$T" keygen server --dir "$K" >/dev/null
[ -f "$K/worker.cert_secret" ] || { "$T" keygen worker --dir "$K" >/dev/null; cp "$K/worker.cert" "$K/allow/"; }

PIDS=()
stop() { for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; }
trap stop INT TERM
"$T" coordinator "$JOB" --endpoint="tcp://127.0.0.1:$PORT" --keys="$K" "$@" 2> "$OUT/logs/coordinator.log" & C=$!
for i in $(seq 1 "$EXPAND"); do
  "$T" worker expand --connect "tcp://127.0.0.1:$PORT" --cert "$K/worker.cert_secret" --server-cert "$K/server.cert" \
    2> "$OUT/logs/expand-$i.log" & PIDS+=($!)
done
for i in $(seq 1 "$RENDER"); do
  "$T" worker render --connect "tcp://127.0.0.1:$PORT" --cert "$K/worker.cert_secret" --server-cert "$K/server.cert" \
    2> "$OUT/logs/render-$i.log" & PIDS+=($!)
done
PIDS+=($C)
rc=0; wait $C || rc=$?
for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
wait 2>/dev/null || true
"$T" status "$OUT"
exit $rc
