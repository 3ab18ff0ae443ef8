#!/usr/bin/env bash
# Issue 12, defects 1 and 5: ids that are not plain ASCII, and ids built to clash.
# A tar job over non-ASCII ids finishes (it looped forever: libarchive could not convert
# 'café.json' in the C locale), and adversarial ids (a/b and the key a/b used to map to,
# case-only and normalisation-only differences, 255-byte ids, ids equal up to byte 300)
# each get their own files: no two keys are equal even after Unicode NFC + case folding,
# in the tar layout and the files layout. A duplicate id is rejected with its line number.
source "$(dirname "$0")/test_pipeline_common.inc"
source "$(dirname "$0")/storage_checks.inc"
make_fast_dir
python3 - "$W/d.jsonl" "$W/ids.txt" <<'PY'
import json, sys, unicodedata
ids = ["café", unicodedata.normalize("NFD", "café"), "a/b", "a_b-e09ffa510d0f158b", "a_b", "A", "a",
       "Photo", "photo", "PHOTO", "日本語", "x.png", "..", ".", "-", "_", "a\\b", "é" * 127, "e" * 255,
       "z" * 300 + "1", "z" * 300 + "2", "\u01c5", "\u01c6", "\u2126", "\u03a9", "\ufb01", "fi", "tab\there", "🙂"]
# the key the new mapping gives "a/b" (readable part + '-' + 32 hex of SHA-256), as an id too
import hashlib
ids.append("a_b-" + hashlib.sha256(b"a/b").hexdigest()[:32])
assert len(set(ids)) == len(ids)
with open(sys.argv[1], "w", encoding="utf-8") as f, open(sys.argv[2], "w", encoding="utf-8") as g:
    for i, x in enumerate(ids):
        f.write(json.dumps({"id": x, "prompt": f"prompt {i}"}, ensure_ascii=False) + "\n")
        g.write(json.dumps(x, ensure_ascii=False) + "\n")
    f.write(json.dumps({"id": "a/b", "prompt": "the same id again"}) + "\n")   # line len(ids)+1
PY
for layout in files tar; do
  O="$FAST/$layout"
  timeout 30 "$T" -q run --kind=render --dataset.path="$W/d.jsonl" --output.dir="$O" --output.layout=$layout \
      --output.shard_size=7 --task_size=3 2>"$W/$layout.err" || fail "$layout job: exit $? ($(tail -2 "$W/$layout.err"))"
  check_output "$O" "$W/ids.txt"
  python3 - "$O" "$layout" "$(wc -l < "$W/ids.txt")" <<'PY'
import json, os, sys, unicodedata, collections
out, layout, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
rows = [json.loads(l) for l in open(os.path.join(out, "manifest.jsonl"), encoding="utf-8")]
keys = [r["file"].split("/", 1)[1].rsplit(".", 1)[0] for r in rows]
assert len(set(keys)) == len(keys), "two ids share a key"
folded = collections.Counter(unicodedata.normalize("NFC", k).casefold() for k in keys)
clash = [k for k, v in folded.items() if v > 1]
assert not clash, f"keys equal on a case-insensitive, normalising file system: {clash}"
assert all(len((k + ".json.tmp.4194304").encode()) <= 255 for k in keys), "a file name over 255 bytes"
assert all("." not in k and "/" not in k for k in keys), keys
rej = [json.loads(l) for l in open(os.path.join(out, "rejects.jsonl"), encoding="utf-8")]
assert len(rej) == 1 and rej[0]["line"] == n + 1 and "duplicate id" in rej[0]["reason"] and "line 3" in rej[0]["reason"], rej
print(f"{layout}: {len(keys)} distinct keys, none equal after NFC + case folding; duplicate rejected: {rej[0]}")
PY
done
echo "PASS"
