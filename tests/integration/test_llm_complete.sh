#!/usr/bin/env bash
# `tessera complete` as llama.cpp runs a GGUF file: the prompt gets a BOS token only where
# the file's tokenizer.ggml.add_bos_token asks (Qwen2-style false, Llama-style true; token
# counts from transformers' ids in tests/fixtures/llm_bos/cases.json), and the NUL bytes of
# generated <0x00> tokens reach stdout, and serve-llm's JSON as \u0000.
set -u
T=${TESSERA_BIN:?}
F=${TESSERA_FIXTURES:?}/llm_bos
dir=$(mktemp -d)
server=
trap '[ -n "$server" ] && kill "$server" 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"' EXIT
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

# serve-llm: the reply's content is three U+0000 characters (python3 parses the JSON)
"$T" serve-llm -m "$F/nul.gguf" --port 0 > "$dir/srv.out" 2> "$dir/srv.err" &
server=$!
PORT=
for _ in $(seq 1 100); do
  PORT=$(sed -n 's#.*127.0.0.1:\([0-9]*\).*#\1#p' "$dir/srv.out")
  [ -n "$PORT" ] && break
  sleep 0.1
done
if [ -n "$PORT" ]; then
  curl -s -m 10 "http://127.0.0.1:$PORT/v1/chat/completions" \
    -d '{"messages":[{"role":"user","content":"a cat"}],"max_tokens":3,"temperature":0}' > "$dir/reply.json"
  content=$(python3 -c 'import json,sys; print(repr(json.load(open(sys.argv[1]))["choices"][0]["message"]["content"]))' "$dir/reply.json" 2>&1)
  [ "$content" = "'\x00\x00\x00'" ] && ok || bad "serve-llm content $content: $(head -c 300 "$dir/reply.json")"
else
  bad "serve-llm did not start: $(cat "$dir/srv.err")"
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ] && [ "$pass" -gt 0 ]
