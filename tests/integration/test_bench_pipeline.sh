#!/usr/bin/env bash
# test_bench_pipeline.sh — `tessera bench pipeline` on a small job: the coordinator and 1, 8
# and 64 in-process null workers (threads of one process, over inproc://) finish every task,
# and the RSS children (fresh processes) finish theirs. Not a timing test: it is here so the
# threaded coordinator code of the benchmark runs under ThreadSanitizer (label `threaded`).
set -euo pipefail
T=${TESSERA_BIN:?}
TASKS=300
BIG=10000   # the RSS children's datasets: 1e4 records each, run to the end
out=$(mktemp)
trap 'rm -f "$out"' EXIT
"$T" bench pipeline --tasks $TASKS --big $BIG > "$out"
cat "$out"
python3 - "$out" $TASKS $BIG <<'PY'
import re, sys
text = open(sys.argv[1]).read()
tasks, big = int(sys.argv[2]), int(sys.argv[3])
rows = {int(m[1]): int(m[2]) for m in re.finditer(r"^(\d+) +(\d+) +\d+ +[\d.]+$", text, re.M)}
assert rows == {1: tasks, 8: tasks, 64: tasks}, f"tasks done per worker count: {rows}, want {tasks} each"
children = [int(n) for n in re.findall(r"^peak RSS, (\d+) tasks of a ", text, re.M)]
assert children == [10000, big], f"tasks done by the RSS children: {children}"
print(f"every task done with 1, 8 and 64 in-process workers ({tasks} each); RSS children {children}")
PY
