#!/usr/bin/env bash
# Issue 12, minor defects: temporary files of writers that died (KEY.png.tmp.PID, a packer's
# NNNNN.tar.tmp, stats.json.tmp) are removed when a coordinator starts; `tessera status` says
# complete only when the manifest, shards and journal agree, and --verify checks every record
# against the manifest's sha256 (exit 1 naming the file when one is missing or different).
source "$(dirname "$0")/test_pipeline_common.inc"
source "$(dirname "$0")/storage_checks.inc"
make_fast_dir
make_txt 120 "$W/d.txt"
for layout in files tar; do
  O="$FAST/$layout"
  if [ $layout = files ]; then mkdir -p "$O/00000" && touch "$O/00000/7.png.tmp.4242"
  else mkdir -p "$O/.staging/00001" && touch "$O/.staging/00001/x.json.tmp.99" "$O/00003.tar.tmp"; fi
  touch "$O/stats.json.tmp"
  "$T" -q run --kind=render --dataset.path="$W/d.txt" --output.dir="$O" --output.layout=$layout \
      --output.shard_size=50 --task_size=4 2>"$W/err" || fail "$layout: $(tail -2 "$W/err")"
  left=$(find "$O" -name '*.tmp*')
  [ -z "$left" ] || fail "$layout: temporary files left: $left"
  check_exactly_once "$O" 120
  "$T" status "$O" --verify > "$W/status" || fail "$layout: verify failed: $(cat "$W/status")"
  grep -q "^job:       complete" "$W/status" || fail "$layout: $(cat "$W/status")"
  grep -q "^verify:    120 records: 0 missing, 0 sha256 mismatches" "$W/status" || fail "$layout: $(cat "$W/status")"
  # a manifest line the journal does not vouch for: not complete
  echo '{"id":"x"}' >> "$O/manifest.jsonl"
  "$T" status "$O" | grep -q "^job:       not complete: manifest.jsonl has" || fail "$layout: $("$T" status "$O")"
  "$T" -q run --kind=render --dataset.path="$W/d.txt" --output.dir="$O" --output.layout=$layout \
      --output.shard_size=50 --task_size=4 2>"$W/err" || fail "$layout rerun: $(tail -2 "$W/err")"
  "$T" status "$O" | grep -q "^job:       complete" || fail "$layout: after the rerun: $("$T" status "$O")"
done
# a record's image changed, one removed: --verify names both and exits 1
printf 'x' >> "$FAST/files/00001/60.png"
rm "$FAST/files/00002/101.png"
rc=0; "$T" status "$FAST/files" --verify > "$W/status" || rc=$?
[ $rc -eq 1 ] && grep -q "00001/60.png: sha256" "$W/status" && grep -q "00002/101.png: in the manifest, not in the shards" "$W/status" \
  || fail "verify of a damaged output: exit $rc, $(cat "$W/status")"
echo "PASS"
