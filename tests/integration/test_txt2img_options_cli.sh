#!/usr/bin/env bash
# test_txt2img_options_cli.sh — the command line of issue 11.3 on the tiny SD model:
#   - every image of `-b 3` records its Batch size and Batch pos, and is made again alone,
#     byte for byte, from its PNG (--from-png) or from flags (--batch-pos), with samplers
#     that draw noise at every step (Euler ancestral; DDIM with eta) and with the
#     --guidance-rescale / --clip-skip-mode / --truncate settings recorded and read back;
#   - options end at "--": `tessera tokenize -- "-a prompt"` gives transformers' ids
#     (tests/fixtures/tiny_sd_expected/options_tokenize.json,
#     from tools/gen_txt2img_options_fixtures.py), without "--" it is refused;
#   - bad combinations are refused with a message.
set -u
BIN=${TESSERA_BIN:?}; FIX=${TESSERA_FIXTURES:?}; DATA=${TESSERA_DATA:?}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail=0
check() { if eval "$2"; then echo "ok   $1"; else echo "FAIL $1"; fail=1; fi; }
TOK="$DATA/clip_tokenizer_sd15"
M="$FIX/tiny_sd"
gen() { "$BIN" txt2img -m "$M" --tokenizer "$TOK" -W 64 -H 48 --steps 4 -t 1 "$@" 2>>"$tmp/log"; }

for sampler in euler_a ddim; do
    extra=()
    [ $sampler = ddim ] && extra=(--eta 0.5 --guidance-rescale 0.7 --clip-skip 2 --clip-skip-mode positive --truncate)
    gen -p "three green spheres" -n "blur" -s 77 -b 3 --sampler $sampler "${extra[@]}" -o "$tmp/${sampler}_%d.png" >/dev/null
    check "$sampler: -b 3 writes 3 images" '[ -f "$tmp/${sampler}_1.png" ] && [ -f "$tmp/${sampler}_3.png" ]'
    for k in 0 1 2; do
        png="$tmp/${sampler}_$((k + 1)).png"
        check "$sampler: image $((k + 1)) records Batch size: 3, Batch pos: $k" \
            'grep -aq "Seed: 77, Size: 64x48, Model: tiny_sd, Batch size: 3, Batch pos: $k" "$png"'
        gen --from-png "$png" -o "$tmp/again.png" >/dev/null
        check "$sampler: image $((k + 1)) made again from its PNG alone is the same file" 'cmp -s "$png" "$tmp/again.png"'
    done
    gen -p "three green spheres" -n "blur" -s 77 -b 3 --batch-pos 1 --sampler $sampler "${extra[@]}" \
        -o "$tmp/pos1.png" >/dev/null
    check "$sampler: -b 3 --batch-pos 1 is image 2, byte for byte" 'cmp -s "$tmp/${sampler}_2.png" "$tmp/pos1.png"'
done
check "ddim: eta, rescale, clip skip mode and truncation are recorded" \
    'grep -aq "Clip skip: 2, Clip skip mode: positive, Truncate prompts: True, Guidance rescale: 0.7, Eta DDIM: 0.5" "$tmp/ddim_1.png"'
gen -p x -s 1 --steps 4 -o "$tmp/one.png" >/dev/null
check "a single image records no batch" '[ -f "$tmp/one.png" ] && ! grep -aq "Batch" "$tmp/one.png"'

gen -p x -b 3 --batch-pos 3 -o "$tmp/x.png" >/dev/null 2>"$tmp/err"; rc=$?
check "--batch-pos outside the batch is refused" '[ $rc -eq 2 ]'
gen -p x --sampler euler --eta 0.5 -o "$tmp/x.png" >/dev/null 2>&1; rc=$?
check "--eta with a sampler that has none is refused" '[ $rc -ne 0 ] && grep -q "eta is DDIM" "$tmp/log"'
gen -p x --clip-skip-mode negative -o "$tmp/x.png" >/dev/null 2>"$tmp/err"; rc=$?
check "an unknown --clip-skip-mode is refused" '[ $rc -eq 2 ]'

want=$(python3 -c 'import json,sys; print(" ".join(map(str, json.load(open(sys.argv[1]))["ids"])))' \
    "$FIX/tiny_sd_expected/options_tokenize.json")
got=$("$BIN" tokenize --tokenizer "$TOK" -- "-a prompt")
check "tokenize -- \"-a prompt\" gives transformers' ids" '[ -n "$want" ] && [ "$got" = "$want" ]'
"$BIN" tokenize --tokenizer "$TOK" "-a prompt" >/dev/null 2>"$tmp/err"; rc=$?
check "without --, \"-a prompt\" is an unknown option" '[ $rc -eq 2 ] && grep -q "goes after --" "$tmp/err"'
exit $fail
