#!/usr/bin/env bash
# The demo's two renderers (demo/model-short, demo/model-descriptive: issue 19's 3-level U-Net
# down to 3x3, their own CLIP vocabulary and VAE) through `tessera txt2img` against diffusers'
# StableDiffusionPipeline on the same prompts and seeds (DDIM and DPM-Solver++ 2M, 20 steps, guidance 4, 48x48;
# fixtures from tools/gen_demo_renderer_fixtures.py): final latents within 1e-4 (values up to
# ~6) and the decoded images within 1/255, at least 99.9 % of values equal. A retrained or
# re-architected demo renderer must pass this before it ships.
set -u
T=${TESSERA_BIN:?}
S=${TESSERA_SOURCE:?}
F=${TESSERA_FIXTURES:-$S/tests/fixtures}/demo_renderer
D=${DEMO_DIR:-$S/demo}        # another pair of renderers, checked before it is installed
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail=0
while read -r name seed sampler prompt; do
  "$T" -q txt2img -m "$D/$name" -p "$prompt" --seed "$seed" --sampler "$sampler" --steps 20 --cfg-scale 4 -W 48 -H 48 \
    -t 1 --truncate -o "$work/$name-$seed.png" --save-latent "$work/$name-$seed.npy" >/dev/null 2>"$work/err" ||
    { echo "FAIL: $name seed $seed: $(tail -2 "$work/err")"; fail=1; continue; }
  python3 - "$F/${name}_s${seed}_latent.npy" "$work/$name-$seed.npy" "$F/${name}_s${seed}_image.npy" \
    "$work/$name-$seed.png" "$name seed $seed $sampler" <<'PY' || fail=1
import os, struct, sys
sys.path.insert(0, os.environ["TESSERA_SOURCE"] + "/tests/integration")
from png_rgb import pixels

def npy(path):   # a little-endian float32 or uint8 .npy, flattened
    data = open(path, "rb").read()
    assert data[:6] == b"\x93NUMPY", path
    n = struct.unpack("<H", data[8:10])[0] if data[6] == 1 else struct.unpack("<I", data[8:12])[0]
    start = (10 if data[6] == 1 else 12) + n
    header, body = data[start - n:start].decode(), data[start:]
    if "'<f4'" in header:
        return struct.unpack(f"<{len(body) // 4}f", body)
    assert "'|u1'" in header, header
    return tuple(body)

want_lat, got_lat = npy(sys.argv[1]), npy(sys.argv[2])
want_img, got_img = npy(sys.argv[3]), pixels(sys.argv[4])
label = sys.argv[5]
assert len(want_lat) == len(got_lat) and len(want_img) == len(got_img), (label, len(want_lat), len(got_lat))
lerr = max(abs(a - b) for a, b in zip(want_lat, got_lat))
ierr = max(abs(a - b) for a, b in zip(want_img, got_img))
same = sum(a == b for a, b in zip(want_img, got_img)) / len(want_img)
print(f"{label}: latents max |diff| {lerr:.3g} (of {max(map(abs, want_lat)):.2f}), image max |diff| {ierr}/255, "
      f"{100 * same:.2f} % of values equal")
if not (lerr <= 1e-4 and ierr <= 1 and same >= 0.999):
    print(f"FAIL: {label}")
    sys.exit(1)
PY
done <"$F/prompts.txt"
[ $fail -eq 0 ] && echo "PASS"
exit $fail
