#!/usr/bin/env bash
# The trained demo expander (demo/expander.gguf, a base Llama with a GPT-2-style BPE) through
# Tessera's GGUF reader, tokenizer, runtime and expander gives, greedily, exactly the
# expansions transformers gives for the demo prompts, driven only by the tessera.expander.*
# keys in the file (completion format, greedy) (demo/prompts_expanded.txt, written by
# tools/shapes/train_expander.py with transformers' GGUF loader).
set -u
T=${TESSERA_BIN:?}
D=${TESSERA_SOURCE:?}/demo
out=$(mktemp)
trap 'rm -f "$out"' EXIT
"$T" -q expand -m "$D/expander.gguf" -f "$D/prompts.txt" > "$out" \
  || { echo "FAIL: tessera expand"; echo "0 passed, 1 failed"; exit 1; }
if diff "$out" "$D/prompts_expanded.txt"; then
  echo "$(wc -l < "$out") expansions identical to transformers'"
  echo "1 passed, 0 failed"
else
  echo "FAIL: expansions differ from transformers'"
  echo "0 passed, 1 failed"
  exit 1
fi
