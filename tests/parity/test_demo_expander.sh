#!/usr/bin/env bash
# The trained demo expander (demo/expander.gguf, a base Llama with a GPT-2-style BPE) through
# Tessera's GGUF reader, tokenizer, runtime and expander, driven only by the tessera.expander.*
# keys in the file (completion format, greedy, the shapes grammar):
#   1. without the grammar (--grammar none) it gives exactly the greedy expansions of
#      transformers' GGUF reader (demo/prompts_expanded_hf.txt, tools/shapes/ablation.py
#      --demo-prompts);
#   2. under the grammar it gives the same wherever transformers' expansion keeps its prompt
#      (as tools/shapes/expansion_check.py, the world's reference, judges), and an expansion
#      that keeps it everywhere else;
#   3. and that is demo/prompts_expanded.txt, what `make demo` renders.
set -u
T=${TESSERA_BIN:?}
S=${TESSERA_SOURCE:?}
D=$S/demo
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pass=0 fail=0
ok() { echo "ok: $1"; pass=$((pass + 1)); }
bad() { echo "FAIL: $1"; fail=$((fail + 1)); }

if "$T" -q expand -m "$D/expander.gguf" --grammar none -f "$D/prompts.txt" > "$work/free.txt" \
   && diff "$work/free.txt" "$D/prompts_expanded_hf.txt"; then
  ok "$(wc -l < "$work/free.txt") expansions without the grammar identical to transformers'"
else
  bad "expansions without the grammar differ from transformers'"
fi
"$T" -q expand -m "$D/expander.gguf" -f "$D/prompts.txt" > "$work/grammar.txt" || bad "tessera expand"
if python3 - "$D/prompts.txt" "$D/prompts_expanded_hf.txt" "$work/grammar.txt" "$S/tools/shapes" <<'PY'
import sys
sys.path.insert(0, sys.argv[4])
import expansion_check as x
shorts, hf, got = ([l.rstrip("\n") for l in open(f)] for f in sys.argv[1:4])
assert len(shorts) == len(hf) == len(got), "line counts differ"
same = changed = 0
for s, h, g in zip(shorts, hf, got):
    if x.keeps(s, h):
        assert g == h, f"{s!r}: transformers' {h!r} keeps the prompt, the grammar gave {g!r}"
        same += 1
    else:
        assert x.keeps(s, g), f"{s!r}: the grammar gave {g!r}, which does not keep the prompt"
        changed += 1
print(f"{same} expansions as transformers' (they keep their prompt), {changed} changed by the grammar, all keep it")
PY
then ok "the grammar keeps every prompt and changes only what transformers' greedy did not keep"
else bad "grammar expansions against the reference"; fi
if diff "$work/grammar.txt" "$D/prompts_expanded.txt"; then ok "demo/prompts_expanded.txt is what the demo expands"
else bad "demo/prompts_expanded.txt differs from tessera expand's output"; fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
