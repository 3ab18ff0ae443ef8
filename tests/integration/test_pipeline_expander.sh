#!/usr/bin/env bash
# A recaption job through the real expander backend (the embedded LLM on a tiny chat
# model, and the same model behind `tessera serve-llm`): every caption gets an expansion or
# a recorded fallback. The tiny model is random, so its replies are rejected: each record
# keeps its caption, the manifest says why, and stats.json counts the fallbacks by reason.
source "$(dirname "$0")/test_pipeline_common.inc"
M=${TESSERA_FIXTURES:?}/expander_tiny
printf 'id,caption\nc1,a dog running\nc2,a cat\nc3,a red circle and a blue square\nc4,lighthouse at dusk\n' > "$W/c.csv"

check() {
  python3 - "$1" <<'PY'
import json, sys
out = sys.argv[1]
rows = {r["id"]: r for r in (json.loads(l) for l in open(out + "/manifest.jsonl"))}
assert sorted(rows) == ["c1", "c2", "c3", "c4"], sorted(rows)
for r in rows.values():
    assert r["expanded"] == r["caption"], r            # fell back to the caption ...
    assert r.get("expand_fallback") in ("not_text", "runaway", "empty", "failed"), r  # ... and says why
stats = json.load(open(out + "/stats.json"))
assert sum(stats["expand_fallbacks_by_reason"].values()) == 4, stats["expand_fallbacks_by_reason"]
print("fallbacks:", stats["expand_fallbacks_by_reason"])
PY
}

"$T" -q run --kind=recaption --dataset.path="$W/c.csv" --dataset.prompt_field=caption --output.dir="$W/embedded" \
  --task_size=2 --workers.expand=1 --workers.backend=model --models.expander="$M" 2>"$W/e.err" \
  || fail "recaption with the embedded expander failed: $(tail -3 "$W/e.err")"
check "$W/embedded" || fail "embedded expander results"

"$T" serve-llm -m "$M" --port 0 > "$W/serve.out" 2>/dev/null &
PIDS+=($!)
for _ in $(seq 1 100); do PORT=$(sed -n 's#.*127.0.0.1:\([0-9]*\).*#\1#p' "$W/serve.out"); [ -n "$PORT" ] && break; sleep 0.1; done
[ -n "${PORT:-}" ] || fail "serve-llm did not start"
"$T" -q run --kind=recaption --dataset.path="$W/c.csv" --dataset.prompt_field=caption --output.dir="$W/http" \
  --task_size=2 --workers.expand=2 --workers.backend=model --models.expander="http://127.0.0.1:$PORT" 2>"$W/h.err" \
  || fail "recaption through serve-llm failed: $(tail -3 "$W/h.err")"
check "$W/http" || fail "HTTP expander results"
echo "PASS"
