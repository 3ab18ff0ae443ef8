#!/usr/bin/env bash
# `tessera complete` as llama.cpp runs a GGUF file: the prompt gets a BOS token only where
# the file's tokenizer.ggml.add_bos_token asks (Qwen2-style false, Llama-style true; token
# counts from transformers' ids in tests/fixtures/llm_bos/cases.json), and the NUL bytes of
# generated <0x00> tokens reach stdout.
set -u
T=${TESSERA_BIN:?}
F=${TESSERA_FIXTURES:?}/llm_bos
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
pass=0; fail=0
ok()  { pass=$((pass+1)); }
bad() { echo "FAIL: $*"; fail=$((fail+1)); }

want_count() {  # number of transformers ids for "Once upon a time" in the case of GGUF $1
  python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); c=[c for c in d["cases"] if c["gguf"]==sys.argv[2]][0]; print(len(c["ids"][d["strings"].index("Once upon a time")]))' "$F/cases.json" "$1"
}

for model in qwen2.gguf llama3.gguf; do
  if "$T" complete -m "$F/$model" -p "Once upon a time" -n 1 > "$dir/out" 2> "$dir/err"; then
    got=$(sed -n 's/.*: \([0-9]*\) prompt + .*/\1/p' "$dir/err")
    want=$(want_count "$model")
    if [ -n "$got" ] && [ "$got" = "$want" ]; then ok; else bad "$model: $got prompt tokens, transformers gives $want"; fi
  else
    bad "$model: tessera complete failed: $(tail -1 "$dir/err")"
  fi
done

# nul.gguf's greedy continuation is <0x00> tokens: three NUL bytes after the prompt
if "$T" complete -m "$F/nul.gguf" -p "a cat" -n 3 > "$dir/nul" 2> "$dir/err"; then
  printf 'a cat\0\0\0\n' > "$dir/want"
  if cmp -s "$dir/nul" "$dir/want"; then ok; else bad "nul.gguf: output $(od -An -c "$dir/nul" | tr -s ' ')"; fi
else
  bad "nul.gguf: tessera complete failed: $(tail -1 "$dir/err")"
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ] && [ "$pass" -gt 0 ]
