#!/usr/bin/env bash
# `tessera inspect`: lists a good file; refuses each malformed file with a one-line error
# and a non-zero exit, never a crash (exit status >= 128 would mean a signal).
set -u
T=${TESSERA_BIN:?}
F=${TESSERA_FIXTURES:?}/safetensors
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail=0; pass=0
ok()  { pass=$((pass+1)); }
bad() { echo "FAIL: $*"; fail=$((fail+1)); }

out=$("$T" inspect "$F/good.safetensors") && ok || bad "good file"
echo "$out" | grep -q "conv.weight *F32 *\[4, 3, 3, 3\] *432" && ok || bad "listing: $out"
echo "$out" | grep -q "metadata note = fixture" && ok || bad "metadata"

# truncated: cut the good file in the middle of its data
head -c 900 "$F/good.safetensors" > "$dir/truncated.safetensors"
# header that lies about offsets
python_free_header() { printf "$1" > "$dir/h"; n=$(stat -c %s "$dir/h");
  printf "$(printf '\\x%02x' $((n&255)) $(((n>>8)&255)) 0 0 0 0 0 0)" > "$2"; cat "$dir/h" >> "$2"; head -c "${3:-0}" /dev/zero >> "$2"; }
python_free_header '{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,4096]}}' "$dir/lying.safetensors" 16
python_free_header 'this is not json' "$dir/notjson.safetensors" 0
# a 10 GB header length in a tiny file
printf '\x00\x00\x00\x80\x02\x00\x00\x00{}' > "$dir/huge.safetensors"

for f in truncated lying notjson huge; do
  err=$("$T" inspect "$dir/$f.safetensors" 2>&1 >/dev/null); rc=$?
  if [ $rc -ne 0 ] && [ $rc -lt 128 ]; then ok; else bad "$f: exit $rc"; fi
  [ "$(printf '%s\n' "$err" | wc -l)" -eq 1 ] && ok || bad "$f: not one line: $err"
  echo "$err" | grep -q "$f.safetensors" && ok || bad "$f: message does not name the file: $err"
  echo "  $f: $err"
done
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
