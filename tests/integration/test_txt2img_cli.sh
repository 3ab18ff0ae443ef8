#!/usr/bin/env bash
# test_txt2img_cli.sh — `tessera txt2img` on the tiny pipeline (tests/fixtures/tiny_sd) writes
# PNGs whose A1111 "parameters" chunk reads back with the values given. The PNGs are parsed
# here with Python's standard library (struct + zlib), independently of Tessera's reader.
set -euo pipefail
: "${TESSERA_BIN:?}" "${TESSERA_FIXTURES:?}" "${TESSERA_DATA:?}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
tok="$TESSERA_DATA/clip_tokenizer_sd15"

"$TESSERA_BIN" -q txt2img -m "$TESSERA_FIXTURES/tiny_sd" --tokenizer "$tok" \
    -p "a red cube, studio light" -n "blurry" --steps 3 --cfg-scale 5.5 --sampler ddim \
    --seed 77 -W 64 -H 48 -b 2 -o "$tmp/img_%d.png" --save-latent "$tmp/lat.npy" >"$tmp/out.txt"
grep -qx "$tmp/img_1.png" "$tmp/out.txt"
grep -qx "$tmp/img_2.png" "$tmp/out.txt"

python3 - "$tmp" <<'PY'
import struct, sys, zlib
tmp = sys.argv[1]
want = ("a red cube, studio light\nNegative prompt: blurry\n"
        "Steps: 3, Sampler: DDIM, CFG scale: 5.5, Seed: 77, Size: 64x48, Model: tiny_sd")
for i in (1, 2):
    data = open(f"{tmp}/img_{i}.png", "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, texts, ihdr = 8, {}, None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        assert zlib.crc32(kind + body) == struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])[0], "bad CRC"
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBB", body[:10])
        elif kind == b"tEXt":
            k, v = body.split(b"\0", 1)
            texts[k.decode("latin-1")] = v.decode("latin-1")
        pos += 12 + n
    assert ihdr == (64, 48, 8, 2), ihdr          # 64x48, 8-bit, truecolour
    # each image of the batch says where it is in it (A1111's keys), so it can be made again
    assert texts.get("parameters") == want + f", Batch size: 2, Batch pos: {i - 1}", repr(texts.get("parameters"))
hdr = open(f"{tmp}/lat.npy", "rb").read(128).decode("latin-1")
import ast
meta = ast.literal_eval(hdr[hdr.index('{'):hdr.index('}') + 1])
assert meta['shape'] == (2, 4, 6, 8) and meta['descr'] == '<f4', hdr
print("parameters read back:", want.replace("\n", " | "))
PY

# a negative seed picks a random one, and says which
"$TESSERA_BIN" -q txt2img -m "$TESSERA_FIXTURES/tiny_sd" --tokenizer "$tok" -p "x" --steps 1 \
    -W 64 -H 48 --seed -1 -o "$tmp/r.png" 2>"$tmp/err.txt" >/dev/null
grep -q "seed [0-9]" "$tmp/err.txt"

# bad input: a clear message and a non-zero exit, no crash
if "$TESSERA_BIN" txt2img -m "$TESSERA_FIXTURES/tiny_sd" -p x -W 63 -o "$tmp/bad.png" 2>"$tmp/err.txt"; then
    echo "size 63 accepted"; exit 1
fi
grep -q "multiples of 8" "$tmp/err.txt"
if "$TESSERA_BIN" txt2img -m "$tmp/no-such-model" -p x -o "$tmp/bad.png" 2>"$tmp/err.txt"; then
    echo "missing model accepted"; exit 1
fi
grep -q "no-such-model" "$tmp/err.txt"
echo "ok"
