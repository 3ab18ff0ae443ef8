#!/usr/bin/env bash
# test_txt2img_parallel.sh — `tessera txt2img` under mpirun with --tp / --parallel (issue 15):
# the tiny SD pipeline (tests/fixtures/tiny_sd: 8 heads, 32 groups) split 2 and 4 ways by
# tensor parallelism and 2 ways by the CFG split, and the tiny SDXL one (4 heads, 16 groups;
# the pooled text and size ids go to the followers too) 2 and 4 ways, give the image of one
# rank: final latents within 2e-4 (measured <= 6e-5) and pixels within 1/255 (the split sums
# in another order, so the bytes may differ in the last bit; the test prints how many values
# differ). Rank 0 alone writes.
# With --tp-pieces 4 (the U-Net cut into 4 pieces whatever the ranks, summed in one order) the
# PNGs of --tp 2 and --tp 4 are byte-identical to one rank's with --tp-pieces 4 (SD and SDXL).
# --device check (the CPU under a device's rules: every all-reduce through a host copy, as a
# GPU with MPI does it) at --tp 2 writes the CPU's --tp 2 bytes.
# The PNGs are decoded here with Python's standard library (zlib + PNG filters).
set -euo pipefail
: "${TESSERA_BIN:?}" "${TESSERA_FIXTURES:?}" "${TESSERA_DATA:?}"
command -v mpirun >/dev/null || { echo "no mpirun"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
tok="$TESSERA_DATA/clip_tokenizer_sd15"
args=(txt2img -m "$TESSERA_FIXTURES/tiny_sd" --tokenizer "$tok" -p "a red cube, studio light" -n "blurry"
      --steps 4 --cfg-scale 6 --seed 1234 -W 64 -H 48 -t 1)
mpi=(mpirun --allow-run-as-root --oversubscribe --timeout 300)

"$TESSERA_BIN" -q "${args[@]}" -o "$tmp/one.png" --save-latent "$tmp/one.npy" >/dev/null
"$TESSERA_BIN" -q "${args[@]}" -m "$TESSERA_FIXTURES/tiny_sdxl" -o "$tmp/xl.png" --save-latent "$tmp/xl.npy" >/dev/null
"$TESSERA_BIN" -q "${args[@]}" --tp-pieces 4 -o "$tmp/p4.png" >/dev/null
"$TESSERA_BIN" -q "${args[@]}" -m "$TESSERA_FIXTURES/tiny_sdxl" --tp-pieces 4 -o "$tmp/xl_p4.png" >/dev/null
for run in "tp2:2:--tp 2" "tp4:4:--tp 4" "cfg2:2:--parallel cfg" "auto2:2:--parallel auto" \
           "xl_tp2:2:--tp 2 -m $TESSERA_FIXTURES/tiny_sdxl" "xl_tp4:4:--tp 4 -m $TESSERA_FIXTURES/tiny_sdxl" \
           "tp2_p4:2:--tp 2 --tp-pieces 4" "tp4_p4:4:--tp 4 --tp-pieces 4" "tp2_check:2:--tp 2 --device check" \
           "xl_tp2_p4:2:--tp 2 --tp-pieces 4 -m $TESSERA_FIXTURES/tiny_sdxl"; do
    IFS=: read -r name np opt <<<"$run"
    # shellcheck disable=SC2086
    "${mpi[@]}" -np "$np" "$TESSERA_BIN" -q "${args[@]}" $opt -o "$tmp/$name.png" --save-latent "$tmp/$name.npy" \
        >"$tmp/$name.out" 2>"$tmp/$name.err" || { cat "$tmp/$name.err"; exit 1; }
    # rank 0 alone writes and prints the paths
    [ "$(grep -c "$tmp/$name.png" "$tmp/$name.out")" = 1 ] || { cat "$tmp/$name.out"; exit 1; }
done
grep -q "auto picks" "$tmp/auto2.err" || { cat "$tmp/auto2.err"; exit 1; }
for pair in "tp2_p4:p4" "tp4_p4:p4" "xl_tp2_p4:xl_p4" "tp2_check:tp2"; do
    IFS=: read -r name ref <<<"$pair"
    cmp -s "$tmp/$name.png" "$tmp/$ref.png" || { echo "FAIL: $name.png is not byte-identical to $ref.png"; exit 1; }
    echo "$name: byte-identical to $ref.png"
done

python3 - "$tmp" <<'PY'
import os, struct, sys
sys.path.insert(0, os.environ["TESSERA_SOURCE"] + "/tests/integration")
from png_rgb import pixels
tmp = sys.argv[1]

def latents(path):
    data = open(path, "rb").read()
    n = struct.unpack("<H", data[8:10])[0]
    body = data[10 + n:]
    return struct.unpack(f"<{len(body) // 4}f", body)

for name, ref in (("tp2", "one"), ("tp4", "one"), ("cfg2", "one"), ("auto2", "one"), ("xl_tp2", "xl"), ("xl_tp4", "xl")):
    one, lat = pixels(f"{tmp}/{ref}.png"), latents(f"{tmp}/{ref}.npy")
    got, gl = pixels(f"{tmp}/{name}.png"), latents(f"{tmp}/{name}.npy")
    worst = max(abs(a - b) for a, b in zip(one, got))
    differ = sum(a != b for a, b in zip(one, got))
    lerr = max(abs(a - b) for a, b in zip(lat, gl))
    print(f"{name}: pixels max |diff| {worst}/255 ({differ} of {len(one)} values differ), latents max |diff| {lerr:.3g}")
    assert len(got) == len(one) and worst <= 1, name
    assert lerr <= 2e-4, name
PY

# refusals: a size that is not the world's, a mode that does not exist
if "${mpi[@]}" -np 2 "$TESSERA_BIN" "${args[@]}" --tp 3 -o "$tmp/bad.png" >/dev/null 2>"$tmp/err.txt"; then
    echo "--tp 3 on 2 ranks accepted"; exit 1
fi
grep -q "mpirun -np 3" "$tmp/err.txt"
# rank 0 fails to load (no tokenizer) before its U-Net: the follower is told and exits, no hang
if "${mpi[@]}" -np 2 "$TESSERA_BIN" "${args[@]}" --tokenizer "$tmp/none" --tp 2 -o "$tmp/bad.png" >/dev/null 2>"$tmp/err.txt"; then
    echo "a missing tokenizer accepted"; exit 1
fi
grep -q "rank 1: txt2img: rank 0 of the group failed to load" "$tmp/err.txt" || { cat "$tmp/err.txt"; exit 1; }
if "$TESSERA_BIN" "${args[@]}" --parallel pipeline -o "$tmp/bad.png" >/dev/null 2>"$tmp/err.txt"; then
    echo "--parallel pipeline accepted"; exit 1
fi
grep -q "tp, cfg, dp or auto" "$tmp/err.txt"
echo "ok"
