#!/usr/bin/env bash
# Coordinator and workers on separate network hosts: three network namespaces made by the
# test (ip netns, veth pairs, addresses the test assigns), so they talk over real interfaces,
# CURVE over TCP, not over 127.0.0.1. The coordinator's host has a link to each worker host;
# the output folder is shared (the namespaces share the file system). Mid-run the link to
# worker host 1 is cut (ip link set ... down) for longer than a lease, then restored.
# Checked: worker 1's leases come back (expired or given up as lost) and worker 2 carries on;
# worker 1 reconnects and works again, its stats in one row; the job finishes with every record exactly once
# (a late result of a lease that came back is stale and dropped), and --verify agrees.
set -u
SRC=${TESSERA_SOURCE:?}
T=${TESSERA_BIN:?}
id=$$
C=tsc$id W1=tsw1$id W2=tsw2$id
ip netns add "$C" 2>/dev/null || { echo "cannot make network namespaces here (needs root / CAP_NET_ADMIN)"; exit 77; }
D=$(mktemp -d /tmp/tessera-netns.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  for n in "$C" "$W1" "$W2"; do ip netns del "$n" 2>/dev/null; done
  rm -rf "$D"
}
trap cleanup EXIT
pass=0; fail=0
ok()  { pass=$((pass+1)); }
bad() { echo "FAIL: $*"; fail=$((fail+1)); }

# hosts and links: C:10.77.1.1 <-> W1:10.77.1.2, C:10.77.2.1 <-> W2:10.77.2.2
ip netns add "$W1" && ip netns add "$W2" && ok || bad "netns add"
for i in 1 2; do
  w=$W1; [ $i = 2 ] && w=$W2
  ip link add "c$i-$id" type veth peer name "w$i-$id" &&
  ip link set "c$i-$id" netns "$C" && ip link set "w$i-$id" netns "$w" &&
  ip -n "$C" addr add "10.77.$i.1/24" dev "c$i-$id" && ip -n "$w" addr add "10.77.$i.2/24" dev "w$i-$id" &&
  ip -n "$C" link set "c$i-$id" up && ip -n "$w" link set "w$i-$id" up && ip -n "$w" link set lo up && ok || bad "link $i"
done
ip -n "$C" link set lo up
ip -n "$W1" route get 10.77.1.1 >/dev/null && ip -n "$W2" route get 10.77.2.1 >/dev/null &&
  ok || bad "worker hosts have no route to the coordinator's host"
ip -n "$W1" route get 10.77.2.2 >/dev/null 2>&1 && bad "worker hosts should not see each other" || ok
ip netns exec "$W1" "$T" version >/dev/null 2>&1 && ok || bad "cannot run tessera in a namespace"

K=$D/keys OUT=$D/out N=120
mkdir -p "$K/allow"
"$T" keygen server --dir "$K" >/dev/null && "$T" keygen worker --dir "$K" >/dev/null && cp "$K/worker.cert" "$K/allow/" && ok || bad keygen
seq 1 $N | sed 's/^/a prompt across the network /' > "$D/prompts.txt"
ip netns exec "$C" "$T" coordinator "$SRC/jobs/demo.yaml" --kind=render --dataset.path="$D/prompts.txt" \
  --output.dir="$OUT" --endpoint=tcp://*:5555 --keys="$K" --task_size=2 --output.shard_size=40 \
  --lease_seconds=2 --heartbeat_seconds=0.3 --retries=20 > "$D/coord.log" 2>&1 &
coord=$!; pids+=($coord)
for i in 1 2; do
  w=$W1; [ $i = 2 ] && w=$W2
  TESSERA_RENDER_LOG=$D/rendered$i.log ip netns exec "$w" "$T" worker render --connect "tcp://10.77.$i.1:5555" --cert "$K/worker.cert_secret" \
    --server-cert "$K/server.cert" --model sleep:100 --heartbeat 0.3 --reconnect-max 1 --name "host$i" > "$D/w$i.log" 2>&1 &
  pids+=($!)
done
done_now() { wc -l 2>/dev/null < "$OUT/manifest.jsonl" || echo 0; }
for _ in $(seq 1 100); do [ "$(done_now)" -ge 20 ] && break; sleep 0.1; done
cut_at=$(done_now)
[ "$cut_at" -ge 20 ] && [ "$cut_at" -lt $((N / 2)) ] && ok || bad "not mid-run when cutting the link ($cut_at done)"
ip -n "$C" link set "c1-$id" down && ok || bad "link down"
sleep 4 # two leases: worker 1's tasks must come back
during=$(done_now)
[ "$during" -gt "$cut_at" ] && ok || bad "no progress while worker 1 was cut off ($cut_at -> $during)"
ip -n "$C" link set "c1-$id" up && ok || bad "link up"
w1_at_up=$(wc -l < "$D/rendered1.log")
for _ in $(seq 1 300); do kill -0 $coord 2>/dev/null || break; sleep 0.1; done
wait $coord; rc=$?
[ $rc -eq 0 ] && ok || bad "coordinator exit $rc: $(tail -5 "$D/coord.log")"
ids=$(python3 -c "
import json, sys, collections
ids = [json.loads(l)['id'] for l in open(sys.argv[1])]
print(len(set(ids)), sum(1 for v in collections.Counter(ids).values() if v > 1))" "$OUT/manifest.jsonl" 2>/dev/null)
[ "$ids" = "$N 0" ] && ok || bad "unique/duplicated ids: $ids"
python3 - "$OUT/stats.json" <<'PY' && ok || bad "stats after the cut: $(cat "$OUT/stats.json")"
import json, sys
s = json.load(open(sys.argv[1]))
assert s["complete"] and s["records_done"] == 120 and s["records_dead"] == 0, s
back = s["leases_expired"] + s["failures_by_reason"].get("worker lost", 0)
assert back >= 1, "no lease came back from the cut-off host"
w = {x["name"]: x for x in s["workers"]}
assert w["host2"]["records"] > 0, w
PY
# worker 1 reconnected after the link came back (a new identity, the same name: its row of
# stats goes on) and rendered more
[ "$(wc -l < "$D/rendered1.log")" -gt "$w1_at_up" ] && ok || bad "worker 1 rendered nothing after the link came back"
[ "$(grep -c 'worker .* (host1) joined' "$D/coord.log")" -ge 2 ] && ok || bad "worker 1 did not reconnect: $(grep joined "$D/coord.log")"
python3 - "$OUT/stats.json" <<'PY' && ok || bad "worker 1's stats after the reconnect: $(cat "$OUT/stats.json")"
import json, sys
# one row for host1 across its two connections; not "connected": at the end of the job the
# final stats may be written after the workers were told to shut down and left
w = [x for x in json.load(open(sys.argv[1]))["workers"] if x["name"] == "host1"]
assert len(w) == 1 and w[0]["records"] > 0, w
PY
"$T" status "$OUT" --verify > "$D/verify.txt" && ok || bad "verify: $(cat "$D/verify.txt")"
echo "cut at $cut_at/$N records, $during done while cut off"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
