#!/usr/bin/env bash
# test_expand_check.sh — `expand.check: keep-words` through `tessera run` with the real demo
# expander (demo/expander.gguf) and renderer: prompts whose greedy expansion moves or doubles
# an object fall back to the short prompt as "unfaithful" when no retry is allowed (the
# manifest says so per record and stats.json counts it), and are sampled again with retries;
# the same job twice gives the same expansions (deterministic retry seeds); a bad check
# name is refused naming it.
set -euo pipefail
SRC=${TESSERA_SOURCE:-$(cd "$(dirname "$0")/../.." && pwd)}
BIN=${TESSERA_BIN:-$SRC/build/release/tessera}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# The demo expander decodes under the shapes grammar (expand_grammar.h), which keeps every
# prompt it can read; these first three say "at the", outside that grammar, so they are
# decoded freely, and the greedy expansion moves or adds objects (the check's case for any
# expander); the last is in the grammar and kept.
cat > "$WORK/prompts.txt" <<'P'
a purple circle at the bottom left
a red circle at the center right
a large blue square at the top right
a yellow circle
P
run() {   # run OUT RETRIES
    "$BIN" -q run --kind=generate --dataset.path="$WORK/prompts.txt" --dataset.format=txt \
        --models.expander="$SRC/demo/expander.gguf" --models.diffusion="$SRC/demo/model-descriptive" \
        --sampler.name=dpm++2m --sampler.steps=4 --sampler.width=48 --sampler.height=48 \
        --output.dir="$1" --output.layout=files --workers.backend=model --workers.render=1 \
        --expand.check=keep-words --expand.retries="$2"
}
run "$WORK/none" 0
run "$WORK/some" 16
run "$WORK/again" 16
python3 - "$WORK" <<'PY'
import json, sys
w = sys.argv[1]
def job(name):
    recs = {r["id"]: r for r in map(json.loads, open(f"{w}/{name}/manifest.jsonl"))}
    stats = json.load(open(f"{w}/{name}/stats.json"))
    return recs, stats.get("expand_fallbacks_by_reason", {})
none, fb_none = job("none")
some, fb_some = job("some")
again, _ = job("again")
unfaithful = [i for i, r in none.items() if r.get("expand_fallback") == "unfaithful"]
print("no retries: unfaithful", sorted(unfaithful), "stats", fb_none)
assert len(unfaithful) >= 2, unfaithful
assert fb_none.get("unfaithful") == len(unfaithful), fb_none
for i in unfaithful:
    assert none[i]["expanded"] in ("", none[i]["prompt"]), none[i]      # the short prompt is rendered
kept = [i for i, r in some.items() if not r.get("expand_fallback")]
print("16 retries: kept", sorted(kept), "stats", fb_some)
assert len(kept) > len(none) - len(unfaithful), "retries found no faithful sample"
assert sum(fb_some.values()) == len(some) - len(kept), fb_some
assert all(some[i]["expanded"] == again[i]["expanded"] for i in some), "retries are not deterministic"
print("ok")
PY
if "$BIN" -q run --kind=generate --dataset.path="$WORK/prompts.txt" --output.dir="$WORK/bad" \
        --expand.check=keep-nouns 2> "$WORK/err"; then
    echo "FAIL: expand.check=keep-nouns was accepted" >&2; exit 1
fi
grep -q "keep-nouns" "$WORK/err" || { echo "FAIL: the error does not name the value:" >&2; cat "$WORK/err" >&2; exit 1; }
echo "ok: expand.check"
