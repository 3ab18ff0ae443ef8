#!/usr/bin/env bash
# A recaption job over the images themselves: three img2dataset-style WebDataset shards
# (key.jpg/.png/.webp + key.txt + key.json) read by dataset.format images, captioned by the
# "caption" backend (the tiny LlavaForConditionalGeneration fixture). A member that is not
# an image and a tar member cut short go to the rejects with their reasons; an image damaged
# inside its data is captioned as a fallback with the decoder's reason; every good record is
# captioned exactly once, also after the job is run again (resume). Then `tessera caption
# --write-shards` adds key.short.txt beside each captioned record in copies of the shards.
source "$(dirname "$0")/test_pipeline_common.inc"
FIX=${TESSERA_FIXTURES:?}/caption
mkdir -p "$W/shards"
python3 - "$FIX" "$W/shards" <<'PY'
import io, json, sys, tarfile
fix, out = sys.argv[1], sys.argv[2]
def read(name): return open(f"{fix}/{name}", "rb").read()
zeroed = bytearray(read("jpeg_444.jpg")); zeroed[20:-20] = bytes(len(zeroed) - 40)   # SOI + EOI kept
shards = [
    [("000000000", "jpg", read("jpeg_420.jpg"), "a striped pattern"), ("000000001", "png", read("png_down.png"), "waves"),
     ("000000002", "webp", read("webp_lossy.webp"), "")],
    [("000000003", "jpg", read("jpeg_444.jpg"), "stripes"), ("000000004", "jpg", b"<html>404 Not Found</html>", "broken link"),
     ("000000005", "jpg", bytes(zeroed), "damaged"), ("000000006", "png", read("png_up.png"), "a small picture")],
    [("000000007", "jpg", read("jpeg_progressive.jpg"), "progressive"), ("000000008", "jpg", read("jpeg_grey.jpg"), "grey")],
]
for s, records in enumerate(shards):
    path = f"{out}/{s:05d}.tar"
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as t:
        for key, ext, data, alt in records:
            for name, payload in ((f"{key}.{ext}", data), (f"{key}.txt", alt.encode()),
                                  (f"{key}.json", json.dumps({"key": key, "caption": alt, "status": "success"}).encode())):
                info = tarfile.TarInfo(name); info.size = len(payload)
                t.addfile(info, io.BytesIO(payload))
    if s == 2:   # cut the last shard inside the data of 000000008.jpg
        with tarfile.open(path) as t:
            m = t.getmember("000000008.jpg")
        data = open(path, "rb").read()
        open(path, "wb").write(data[: m.offset_data + m.size // 2])
PY
run_job() {
  "$T" -q run --kind=recaption --dataset.path="$W/shards" --dataset.format=images --workers.backend=caption \
    --models.expander="$FIX/llava_tiny" --output.dir="$W/out" --task_size=3 --caption.style=ssc 2>"$W/err.txt" \
    || fail "recaption job failed: $(tail -5 "$W/err.txt")"
}
run_job
check() {
python3 - "$W/out" <<'PY'
import json, sys, collections
out = sys.argv[1]
rows = [json.loads(l) for l in open(out + "/manifest.jsonl")]
count = collections.Counter(r["id"] for r in rows)
good = ["000000000", "000000001", "000000002", "000000003", "000000005", "000000006", "000000007"]
assert sorted(count) == good and all(v == 1 for v in count.values()), count
by = {r["id"]: r for r in rows}
for k in good:
    r = by[k]
    assert r["params"]["style"] == "ssc" and r["params"]["image"].endswith(".tar") and r["params"]["size"] > 0, r
    if k == "000000005":
        assert r.get("expand_fallback", "").startswith("image:") and "JPEG" in r["expand_fallback"], r
        assert r["expanded"] == "damaged", r
    else:
        assert "expand_fallback" not in r and r["expanded"], r
assert by["000000000"]["caption"] == "a striped pattern" and by["000000000"]["params"]["meta"]["key"] == "000000000"
rejects = [json.loads(l) for l in open(out + "/rejects.jsonl")]
reasons = {r["text"].rsplit("/", 1)[-1]: r["reason"] for r in rejects}
assert len(rejects) == 2, rejects
assert reasons["00001.tar:000000004.jpg"] == "not a JPEG, PNG or WebP image", reasons
assert reasons["00002.tar:000000008.jpg"].startswith("truncated tar member"), reasons
print("captioned:", {k: by[k]["expanded"][:24] for k in good})
print("rejects:", reasons)
PY
}
check || fail "first run"
run_job   # again: resumes from the journal, nothing doubles
check > /dev/null || fail "after a second run"

# the captions back into copies of the shards, beside each record's members
"$T" -q caption --write-shards "$W/out/manifest.jsonl" -o "$W/recaptioned" > "$W/ws.txt" 2>"$W/ws_err.txt" \
  || fail "--write-shards: $(cat "$W/ws_err.txt")"
grep -q "^3 shards written to .*, 6 captions added (some input shards were cut short" "$W/ws.txt" || fail "--write-shards: $(cat "$W/ws.txt")"
python3 - "$W/shards" "$W/recaptioned" "$W/out/manifest.jsonl" <<'PY'
import json, sys, tarfile
src, dst, manifest = sys.argv[1:]
rows = {r["id"]: r for r in map(json.loads, open(manifest))}
for s in ("00000.tar", "00001.tar", "00002.tar"):
    out = tarfile.open(f"{dst}/{s}")
    names = out.getnames()
    with tarfile.open(f"{src}/{s}") as t:
        try:
            members = [(m.name, t.extractfile(m).read()) for m in t.getmembers()]
        except tarfile.ReadError:
            members = []
    if s == "00002.tar":   # cut inside 000000008.jpg: copied up to its last whole member
        members = [m for m in members if not m[0].startswith("000000008")]
        with tarfile.open(f"{src}/{s}", ignore_zeros=True) as t:
            members = []
            for m in t:
                if m.name.startswith("000000008"): break
                members.append((m.name, t.extractfile(m).read()))
    for name, data in members:
        assert out.extractfile(name).read() == data, (s, name)
    added = [n for n in names if n.endswith(".short.txt")]
    for n in added:
        key = n.split(".")[0]
        assert out.extractfile(n).read().decode() == rows[key]["expanded"], n
        # right after the record's own members
        i = names.index(n)
        assert names[i - 1].startswith(key) and (i + 1 == len(names) or not names[i + 1].startswith(key)), names
    want = sorted(k for k, r in rows.items() if r["params"]["image"].endswith("/" + s) and "expand_fallback" not in r)
    assert sorted(n.split(".")[0] for n in added) == want, (s, added, want)
    assert len(names) == len(members) + len(added), (s, names)
print("shards re-written with the captions beside their records")
PY
echo "PASS"
