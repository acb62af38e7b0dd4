#!/usr/bin/env bash
# kvstream demo, end to end on real data (a few minutes on a fresh machine after setup):
#   1. prefill a 448-token TinyStories passage with stories260K and show its greedy continuation,
#   2. build the codec profile once (cached in out/stream) and encode the passage's KV cache into a
#      .kvs container (6 quantized levels + fp16/q8/q4/zstd baselines + text, 64-token chunks),
#   3. start `kvstream send` with authentication on (tenant "demo": its key in out/stream/keys, its
#      contexts in out/stream/serve/demo/, store keys under out/stream/store-secret) and, per
#      policy, a fresh `kvstream relay` on a Mahimahi trace,
#   4. fetch the context with every policy (`kvstream recv`, quality measured against the original
#      KV with the model), SLO = 1/3 of the TTFT q8 needs on this trace (simulated),
#   5. print a side-by-side table and draw out/stream/demo.png (trace capacity, chunk transfers
#      coloured by level, SLO line),
#   6. the next turn from the store: the adaptive receiver saved what it fetched back into the
#      sender's KV store (`recv --save-back`, after its TTFT); fetch that entry again by its key.
# Env: TRACE (default TMobile-UMTS-driving.down), DELAY_MS (5), PREFILL_RATE (2000 tok/s).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
if [ -z "${KVSTREAM:-}" ]; then
  "$root/scripts/setup.sh"
  KVSTREAM="$root/build/bin/kvstream"
fi
kv="$KVSTREAM"
data="${KVSTREAM_DATA:-$root/data}"
model="$data/models/stories260K/stories260K.bin"
tok="$data/models/stories260K/tok512.bin"
out="$root/out/stream"
trace="${TRACE:-$data/traces/mahimahi/TMobile-UMTS-driving.down}"
delay="${DELAY_MS:-5}"
rate="${PREFILL_RATE:-2000}"

echo "== 1-2. context: prefill, profile (cached), encode"
KVSTREAM="$kv" "$root/scripts/stream_context.sh" "$out"
echo "passage (first 200 characters of $out/passage.txt):"
head -c 200 "$out/passage.txt"; echo " ..."
if "$kv" generate --help >/dev/null 2>&1; then
  "$kv" generate --model "$model" --tokenizer "$tok" --prompt "$(head -c 300 "$out/passage.txt")" --steps 120 2>/dev/null \
    | tail -n 3 || true
fi

echo "== 3. sender (authenticated, tenant demo) + relay on $(basename "$trace") (one-way delay ${delay} ms)"
# The deployment's secrets, made once: tenant demo's key and the store keys' secret (mode 600).
keys="$out/keys"
secret="$out/store-secret"
[ -f "$keys" ] || "$kv" keygen --keys "$keys" --tenant demo > /dev/null
[ -f "$secret" ] || "$kv" keygen --secret-file "$secret" > /dev/null
mkdir -p "$out/serve/demo"  # tenant demo's directory: the context and its profile
ln -sf "$out/story.kvs" "$out/serve/demo/story.kvs"
for p in "$out"/*.kvprofile; do ln -sf "$p" "$out/serve/demo/$(basename "$p")"; done
auth=(--tenant demo --keys "$keys")
q8_ttft=$("$kv" simulate --kvs "$out/story.kvs" --trace "$trace" --slo-ms 100000 --policy q8 \
  --prefill-rate "$rate" --delay-ms "$delay" --json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["ttft_ms"])')
slo=$(/usr/bin/python3 -c "print(round($q8_ttft / 3, 1))")
echo "q8 needs ${q8_ttft} ms here (simulated) -> SLO ${slo} ms"
# Each log is emptied HERE before its process starts: the redirect of a background command runs in
# the child, possibly after the wait loop below has already read the previous run's log (and port).
: > "$out/send.log"
rm -rf "$out/store"
"$kv" send --listen 127.0.0.1:0 --dir "$out/serve" --keys "$keys" --store "$out/store" --store-secret-file "$secret" \
  --quiet > "$out/send.log" 2>&1 &
send_pid=$!
relay_pid=""
cleanup() {
  [ -n "$relay_pid" ] && kill "$relay_pid" 2>/dev/null || true
  kill "$send_pid" 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 300); do grep -q "serving" "$out/send.log" 2>/dev/null && break; sleep 0.1; done
sport=$(sed -n 's/.*serving .* on [^ ]*:\([0-9]*\).*/\1/p' "$out/send.log")
[ -n "$sport" ] || { echo "demo: the sender did not start:"; cat "$out/send.log"; exit 1; }

# The codec profile is per model, not per context: a receiver fetches it once and caches it by hash.
# Fetch it here, directly from the sender, so that no policy's TTFT below pays for it.
"$kv" recv --connect "127.0.0.1:$sport" --context story --slo-ms 100000 --policy fixed:min "${auth[@]}" \
  --profile-dir "$out/profile-cache" --json > /dev/null

# A fresh relay per fetch (trace time 0 = its connection); sets rport.
start_relay() {
  : > "$out/relay.log"
  "$kv" relay --trace "$trace" --listen 127.0.0.1:0 --connect "127.0.0.1:$sport" --delay-ms "$delay" \
    > "$out/relay.log" 2>&1 &
  relay_pid=$!
  for _ in $(seq 300); do grep -q "listening" "$out/relay.log" 2>/dev/null && break; sleep 0.1; done
  rport=$(sed -n 's/.*listening on [^ ]*:\([0-9]*\) .*/\1/p' "$out/relay.log")
  [ -n "$rport" ] || { echo "demo: the relay did not start:"; cat "$out/relay.log"; exit 1; }
}
stop_relay() {
  kill "$relay_pid" 2>/dev/null || true
  wait "$relay_pid" 2>/dev/null || true
  relay_pid=""
}

echo "== 4. fetch with each policy"
results=()
for policy in adaptive cachegen q8 text fixed:min; do
  start_relay
  name=$(echo "$policy" | tr ':' '_')
  save=()
  [ "$policy" = adaptive ] && save=(--save-back "$out/store" --store-secret-file "$secret")
  echo "-- $policy"
  "$kv" recv --connect "127.0.0.1:$rport" --context story --slo-ms "$slo" --policy "$policy" "${auth[@]}" \
    --prefill-rate "$rate" --model "$model" --tokenizer "$tok" --reference "$out/story.safetensors" \
    --profile-dir "$out/profile-cache" --json -o "$out/recv_$name.safetensors" "${save[@]}" > "$out/demo_$name.json"
  stop_relay
  results+=("$out/demo_$name.json")
done
"$kv" simulate --kvs "$out/story.kvs" --trace "$trace" --slo-ms "$slo" --policy oracle --prefill-rate "$rate" \
  --delay-ms "$delay" --json > "$out/demo_oracle_sim.json"

echo "== 5. results ($(basename "$trace"), SLO ${slo} ms, prefill rate ${rate} tok/s)"
/usr/bin/python3 - "${results[@]}" "$out/demo_oracle_sim.json" <<'PY'
import json, sys
print("%-16s %10s %8s %10s %10s %9s %9s  %s" % ("policy", "TTFT ms", "SLO", "top-1", "ppl d%", "bytes", "quality", "plan"))
for p in sys.argv[1:]:
    r = json.load(open(p))
    q = r["quality"]
    name = r["policy"] + (" (sim)" if "trace" in r else "")
    print("%-16s %10.1f %8s %10.4f %+10.2f %9d %9s  %s" % (name, r["ttft_ms"], "met" if r["slo_met"] else "MISSED",
          q["greedy_agreement"], q["ppl_delta_pct"], r["bytes"], q["source"], r["plan"]))
PY
/usr/bin/python3 "$root/scripts/plot_stream.py" --trace "$trace" --delay-ms "$delay" -o "$out/demo.png" \
  --title "kvstream demo: $(basename "$trace"), SLO ${slo} ms" "${results[@]}"

echo "== 6. the next turn, from the store"
key=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["save_back"]["key"])' "$out/demo_adaptive.json")
echo "adaptive saved its KV cache back into tenant demo's store ($out/store/demo) as $key; fetching it by key:"
start_relay
"$kv" recv --connect "127.0.0.1:$rport" --context "$key" --slo-ms "$slo" --policy adaptive "${auth[@]}" \
  --prefill-rate "$rate" --model "$model" --reference "$out/story.safetensors" \
  --profile-dir "$out/profile-cache" --json > "$out/demo_store_turn.json" 2>/dev/null
stop_relay
/usr/bin/python3 - "$out/demo_store_turn.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
q = r["quality"]
print("from the store: TTFT %.1f ms (SLO %s), top-1 %.4f, ppl d %+.2f%%, %d bytes, plan %s"
      % (r["ttft_ms"], "met" if r["slo_met"] else "MISSED", q["greedy_agreement"], q["ppl_delta_pct"], r["bytes"], r["plan"]))
PY
