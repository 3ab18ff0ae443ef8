#!/usr/bin/env bash
# `tessera caption` end to end against transformers: the tiny LlavaForConditionalGeneration
# folder (with its tokenizer.json), an image file, a prompt -> the greedy ids that
# LlavaProcessor + generate() give (tools/gen_caption_fixtures.py); text output; a damaged
# image among good ones is reported and the others are still captioned.
set -euo pipefail
BIN=${TESSERA_BIN:?}; FIX=${TESSERA_FIXTURES:?}/caption
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
py() { python3 -c "import json,sys; m=json.load(open('$FIX/cases.json'))['llava']; $1"; }

want=$(py "print(' '.join(map(str, m['cli']['greedy'])))")
prompt=$(py "sys.stdout.write(m['cli']['prompt'])")
got=$("$BIN" -q caption -m "$FIX/llava_tiny" -i "$FIX/png_down.png" --prompt "$prompt" -n 10 --print-ids)
[ "$got" = "$want" ] || { echo "FAIL: caption ids '$got', transformers '$want'"; exit 1; }
echo "ok: greedy caption ids identical to transformers' ($want)"

text=$("$BIN" -q caption -m "$FIX/llava_tiny" -i "$FIX/png_down.png" --style ssc --alt-text "a cat" -n 8)
[ -n "$text" ] || { echo "FAIL: empty caption text"; exit 1; }
echo "ok: text caption '$text'"

# a truncated JPEG between two good images
head -c 1500 "$FIX/jpeg_420.jpg" > "$tmp/cut.jpg"
set +e
"$BIN" -q caption -m "$FIX/llava_tiny" -i "$FIX/png_up.png" -i "$tmp/cut.jpg" -i "$FIX/webp_lossy.webp" \
    --prompt "$prompt" -n 3 --print-ids > "$tmp/out" 2> "$tmp/err"
rc=$?
set -e
[ $rc -eq 1 ] || { echo "FAIL: exit status $rc with a damaged image"; exit 1; }
grep -q "cut.jpg: JPEG: premature end of data" "$tmp/err" || { echo "FAIL: no reason for the damaged image:"; cat "$tmp/err"; exit 1; }
[ "$(wc -l < "$tmp/out")" -eq 2 ] && grep -q "png_up.png	" "$tmp/out" && grep -q "webp_lossy.webp	" "$tmp/out" ||
    { echo "FAIL: the good images were not all captioned:"; cat "$tmp/out"; exit 1; }
echo "ok: damaged image reported ($(cat "$tmp/err")), the others captioned"
