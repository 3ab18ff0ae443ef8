#!/usr/bin/env bash
# tessera run whose local workers cannot start (a device that is not there, a model that does
# not load): it stops within seconds with exit 2, names the cause and says nothing is lost,
# instead of waiting forever for workers that will never come; the journal resumes after the
# fix. (Before: it printed progress with 0 workers until killed.)
set -u
T=${TESSERA_BIN:?}
SRC=${TESSERA_SOURCE:?}
D=$(mktemp -d /tmp/tessera-setup.XXXXXX)
trap 'rm -rf "$D"' EXIT
pass=0; fail=0
ok()  { pass=$((pass+1)); }
bad() { echo "FAIL: $*"; fail=$((fail+1)); }
printf 'a red circle\na blue square\na green triangle\n' > "$D/p.txt"
ARGS=("$SRC/jobs/demo.yaml" --kind=render --dataset.path="$D/p.txt" --output.dir="$D/out" --workers.render=2)

# cuda:99: no machine has it (and a build without CUDA has no cuda backend at all)
timeout 120 "$T" run "${ARGS[@]}" --workers.backend=model --models.diffusion="$SRC/demo/model-short" \
  --workers.device=cuda:99 2> "$D/run1.log"
rc=$?
[ $rc -eq 2 ] && ok || bad "exit status $rc with an absent device, want 2 (124: it waited): $(grep -v progress "$D/run1.log" | tail -3)"
grep -q "cuda" "$D/run1.log" && grep -q 'every local render worker failed' "$D/run1.log" &&
  ok || bad "messages: $(grep -v progress "$D/run1.log" | tail -3)"

timeout 120 "$T" run "${ARGS[@]}" --workers.backend=model --models.diffusion="$D/no-such-model" 2> "$D/run2.log"
rc=$?
[ $rc -eq 2 ] && grep -q 'no-such-model' "$D/run2.log" && ok || bad "missing model: exit $rc: $(grep -v progress "$D/run2.log" | tail -3)"

# a generate job whose expander cannot start on its device: the expand stage is named
timeout 120 "$T" run "$SRC/jobs/demo.yaml" --dataset.path="$D/p.txt" --output.dir="$D/out-gen" --workers.backend=model \
  --models.expander="$SRC/demo/expander.gguf" --models.diffusion="$SRC/demo/model-short" --workers.device=cuda:99 \
  2> "$D/run4.log"
rc=$?
[ $rc -eq 2 ] && grep -q 'every local expand worker failed' "$D/run4.log" &&
  ok || bad "expander on an absent device: exit $rc: $(grep -v progress "$D/run4.log" | tail -3)"

# fixed: the same output folder resumes and finishes (the null backend: no model needed)
timeout 120 "$T" run "${ARGS[@]}" 2> "$D/run3.log"
rc=$?
[ $rc -eq 0 ] && [ "$(wc -l < "$D/out/manifest.jsonl")" -eq 3 ] && ok || bad "resume after the fix: exit $rc: $(tail -3 "$D/run3.log")"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
