#!/usr/bin/env bash
# The HTTP expander backend against a real `tessera serve-llm` on localhost: answers match
# the embedded runtime's; 503s are retried; a stalled server times out and the prompt falls
# back (counted, with its reason); the API key never appears in any log.
set -u
T=${TESSERA_BIN:?}
M=${TESSERA_FIXTURES:?}/expander_tiny
dir=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
pass=0; fail=0
ok()  { pass=$((pass+1)); }
bad() { echo "FAIL: $*"; fail=$((fail+1)); }

# start_server NAME ARGS...: serve-llm on a free port; sets PORT
start_server() {
  local name=$1; shift
  "$T" serve-llm -m "$M" --port 0 "$@" > "$dir/$name.out" 2> "$dir/$name.err" &
  pids+=($!)
  for _ in $(seq 1 100); do
    PORT=$(sed -n 's#.*127.0.0.1:\([0-9]*\).*#\1#p' "$dir/$name.out")
    [ -n "$PORT" ] && return 0
    sleep 0.1
  done
  bad "$name: server did not start: $(cat "$dir/$name.err")"; return 1
}
EXPAND=(--system "$M/system.txt" --examples "$M/examples.txt" --temp 0 --repeat-penalty 1 --max-tokens 20 --show-raw
        -p "a red circle" -p "a cat wearing armor")

start_server plain || exit 1
body=$(curl -s -m 10 "http://127.0.0.1:$PORT/v1/chat/completions" \
       -d '{"messages":[{"role":"user","content":"hello"}],"max_tokens":4,"temperature":0}')
echo "$body" | grep -q '"object":"chat.completion"' && ok || bad "completion JSON: $body"
echo "$body" | grep -q '"finish_reason"' && ok || bad "finish_reason: $body"
code=$(curl -s -o /dev/null -w '%{http_code}' -m 10 "http://127.0.0.1:$PORT/v1/chat/completions" -d 'not json')
[ "$code" = 400 ] && ok || bad "bad JSON answered $code"

# The same conversation through HTTP and through the embedded runtime gives the same replies.
OPENAI_API_KEY=sekrit-key-123 "$T" -v expand --server "http://127.0.0.1:$PORT" "${EXPAND[@]}" \
  > "$dir/http.txt" 2> "$dir/http.err" && ok || bad "expand over HTTP failed: $(cat "$dir/http.err")"
"$T" expand -m "$M" "${EXPAND[@]}" > "$dir/embedded.txt" 2> "$dir/embedded.err" && ok || bad "embedded expand"
cmp -s "$dir/http.txt" "$dir/embedded.txt" && ok || bad "HTTP and embedded replies differ: $(diff "$dir/http.txt" "$dir/embedded.txt" | head -5)"
grep -q "fell back" "$dir/http.err" && ok || bad "random-model replies should be reported as fallbacks"
! grep -rq "sekrit-key-123" "$dir"/*.err "$dir"/*.out && ok || bad "the API key was logged"

# 503 twice, then 200: retried and answered.
start_server flaky --fault-503 2 || exit 1
"$T" -v expand --server "http://127.0.0.1:$PORT" --retries 3 --concurrency 1 "${EXPAND[@]:0:13}" \
  > "$dir/flaky.txt" 2> "$dir/flaky.err" && ok || bad "expand with retries exited $?: $(cat "$dir/flaky.err")"
grep -q "(failed)" "$dir/flaky.err" && bad "503s were not retried: $(cat "$dir/flaky.err")" || ok
grep -q "retrying" "$dir/flaky.err" && ok || bad "no retry was logged"
# Without retries the 503 is a failure, recorded as a fallback with its reason.
start_server flaky2 --fault-503 5 || exit 1
"$T" expand --server "http://127.0.0.1:$PORT" --retries 0 -p "a red circle" > "$dir/f2.txt" 2> "$dir/f2.err" \
  && ok || bad "a fallback is no error, but expand exited $?"
grep -q "(failed)" "$dir/f2.err" && grep -q "HTTP 503" "$dir/f2.err" && ok || bad "503 without retries: $(cat "$dir/f2.err")"
[ "$(cat "$dir/f2.txt")" = "a red circle" ] && ok || bad "fallback text: $(cat "$dir/f2.txt")"

# A stalled server: the request times out, the prompt falls back, and we do not wait for it.
start_server stall --fault-stall-ms 8000 || exit 1
start=$(date +%s)
"$T" expand --server "http://127.0.0.1:$PORT" --timeout 1 --retries 0 -p "a red circle" > "$dir/s.txt" 2> "$dir/s.err" \
  && ok || bad "a timed-out prompt falls back, but expand exited $?"
took=$(( $(date +%s) - start ))
grep -q "(failed)" "$dir/s.err" && grep -qi "timeout\|timed out" "$dir/s.err" && ok || bad "stall: $(cat "$dir/s.err")"
[ "$took" -le 5 ] && ok || bad "timeout took ${took}s"
[ "$(cat "$dir/s.txt")" = "a red circle" ] && ok || bad "stall fallback text: $(cat "$dir/s.txt")"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
