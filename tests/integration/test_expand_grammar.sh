#!/usr/bin/env bash
# The demo expander under its grammar (models/llm/expand_grammar.h, constrained decoding) keeps
# every one of 200 short prompts of the shapes world (tests/fixtures/shapes/short.txt, world
# seed 3), as the world's reference tools/shapes/expansion_check.py judges it, and passes the
# keep-words check without a retry; the same model without the grammar does not (so the
# reference can tell). `tessera expand` and the embedded LLM, end to end.
set -u
T=${TESSERA_BIN:?}
S=${TESSERA_SOURCE:?}
P=${TESSERA_FIXTURES:?}/shapes/short.txt
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pass=0 fail=0
ok() { echo "ok: $1"; pass=$((pass + 1)); }
bad() { echo "FAIL: $1"; fail=$((fail + 1)); }
check() { python3 "$S/tools/shapes/expansion_check.py" "$P" "$1" | tail -1 | awk '{print $1}'; }

"$T" -q expand -m "$S/demo/expander.gguf" -f "$P" --check keep-words --check-retries 0 > "$work/grammar.txt" \
  || bad "tessera expand (grammar)"
kept=$(check "$work/grammar.txt")
[ "$kept" = 200 ] && ok "grammar: 200 of 200 expansions keep their prompt" || bad "grammar: $kept of 200 keep their prompt"
same=$(paste -d '\n' "$P" "$work/grammar.txt" | awk 'NR % 2 == 1 { s = $0 } NR % 2 == 0 && $0 == s { n++ } END { print n + 0 }')
[ "$same" = 0 ] && ok "no keep-words fallback under the grammar" || bad "$same expansions fell back to the short prompt"
"$T" -q expand -m "$S/demo/expander.gguf" -f "$P" --grammar none > "$work/free.txt" || bad "tessera expand (no grammar)"
kept=$(check "$work/free.txt")
[ "$kept" -lt 200 ] && ok "without the grammar: $kept of 200 keep their prompt (the reference sees the difference)" \
  || bad "without the grammar all 200 keep their prompt: this test cannot tell"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
