#!/usr/bin/env bash
# test_clip_cli.sh — `tessera tokenize` and `tessera encode-text` end to end: ids equal to
# transformers' (tests/fixtures/clip/tokenizer_ids.json), bad UTF-8 refused with its offset,
# the context written as .npy with the chunked shape.
set -u
BIN=${TESSERA_BIN:?}; FIX=${TESSERA_FIXTURES:?}; DATA=${TESSERA_DATA:?}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail=0
check() { if eval "$2"; then echo "ok   $1"; else echo "FAIL $1"; fail=1; fi; }

want=$(python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
print(" ".join(map(str, next(c["ids"] for c in d["padded"] if c["text"] == "a photo of a cat" and c["pad"] == "eos"))))
' "$FIX/clip/tokenizer_ids.json")
check "transformers' ids were read" '[ -n "$want" ]'
got=$("$BIN" tokenize --tokenizer "$DATA/clip/bpe_simple_vocab_16e6.txt.gz" "a photo of a cat")
check "tokenize (bpe .gz) matches transformers" '[ "$got" = "$want" ]'
got=$("$BIN" tokenize --tokenizer "$DATA/clip_tokenizer_sd15" "a photo of a cat")
check "tokenize (vocab.json) matches transformers" '[ "$got" = "$want" ]'
long=$(printf 'word %.0s' $(seq 100))
check "a 100-word prompt is two chunks" '[ "$("$BIN" tokenize --tokenizer "$DATA/clip_tokenizer_sd15" "$long" | wc -l)" -eq 2 ]'
check "--truncate gives one chunk" '[ "$("$BIN" tokenize --truncate --tokenizer "$DATA/clip_tokenizer_sd15" "$long" | wc -l)" -eq 1 ]'
"$BIN" tokenize --tokenizer "$DATA/clip_tokenizer_sd15" $'caf\xc3 x' >/dev/null 2>"$tmp/err"; rc=$?
check "invalid UTF-8 is refused with its offset" '[ $rc -ne 0 ] && grep -q "invalid UTF-8 at byte 3" "$tmp/err"'
"$BIN" tokenize --tokenizer /nonexistent "x" >/dev/null 2>"$tmp/err"; rc=$?
check "a missing vocabulary is named" '[ $rc -ne 0 ] && grep -q "/nonexistent" "$tmp/err"'

cmd=encode-text
"$BIN" help encode-text >/dev/null 2>&1 || cmd=encode_text
prompt=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["positive"])' "$FIX/clip/sd1_prompt/prompts.json")
check "the fixture prompt was read" '[ -n "$prompt" ]'
"$BIN" $cmd -m "$FIX/clip/sd1_prompt" --tokenizer "$DATA/clip_tokenizer_sd15" -p "$prompt" -n "" -o "$tmp/ctx.npy"; rc=$?
check "encode-text writes [2, 154, 16]" '[ $rc -eq 0 ] && head -c 128 "$tmp/ctx.npy" | grep -Eq "\(2, 154, 16,?\)"'
"$BIN" $cmd -m "$FIX/clip/sd1_prompt" --tokenizer "$DATA/clip_tokenizer_sd15" -p "$prompt" --truncate -o "$tmp/ctx.npy"; rc=$?
check "encode-text --truncate writes [1, 77, 16]" '[ $rc -eq 0 ] && head -c 128 "$tmp/ctx.npy" | grep -Eq "\(1, 77, 16,?\)"'
"$BIN" $cmd -m "$FIX/clip/sd1_prompt" --tokenizer "$DATA/clip_tokenizer_sd15" -p "x" -o "$tmp/ctx.npy" \
  --pooled "$tmp/p.npy" 2>"$tmp/err"; rc=$?
check "encode-text refuses --pooled for SD 1.x, saying why" '[ $rc -ne 0 ] && grep -q "only SDXL has a pooled output" "$tmp/err"'
exit $fail
