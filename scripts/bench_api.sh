#!/usr/bin/env bash
# TTFT of fetching through the public API into a paged fp16 layout (kvstream::Transfer) against
# today's receiver (streamer::receive into its own fp32 cache), side by side, alternating rep by
# rep (`kvstream bench api`), JSON out in out/api/:
#   bench_api_loopback_<level>.json  plain loopback (the decode/copy cost is the whole difference),
#                                    the best level and q8
#   bench_api_const400.json          a constant 400 Mbit/s relay, fixed:q8 (a link fast relative to
#                                    the KV: 7 chunks in ~3 ms, so decode and conversion matter)
#   bench_api_trace.json             a trace-shaped relay (Verizon LTE, 5 ms one-way), fixed:q8
# The context is scripts/stream_context.sh's (448 tokens, 7 chunks, model-based profile; cached).
# Usage: scripts/bench_api.sh. KVSTREAM=path/to/kvstream skips the build. Env: REPS (40).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
if [ -z "${KVSTREAM:-}" ]; then
  "$root/scripts/setup.sh" >/dev/null
  KVSTREAM="$root/build/bin/kvstream"
fi
reps="${REPS:-40}"
ctx="$root/out/stream"
out="$root/out/api"
mkdir -p "$out"
KVSTREAM="$KVSTREAM" "$root/scripts/stream_context.sh" "$ctx" >/dev/null
best=$(/usr/bin/python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[0]['name'])" "$ctx/ladder.json")
for level in "$best" q8; do
  "$KVSTREAM" bench api --dir "$ctx" --policy "fixed:$level" --reps "$reps" --profile-dir "$out/profile-cache" \
    -o "$out/bench_api_loopback_$level.json"
done
"$KVSTREAM" bench api --dir "$ctx" --policy fixed:q8 --reps "$reps" --profile-dir "$out/profile-cache" \
  --trace const:400mbit --delay-ms 1 -o "$out/bench_api_const400.json"
"$KVSTREAM" bench api --dir "$ctx" --policy fixed:q8 --reps "$reps" --profile-dir "$out/profile-cache" \
  --trace "${KVSTREAM_DATA:-$root/data}/traces/mahimahi/Verizon-LTE-short.down" --delay-ms 5 \
  -o "$out/bench_api_trace.json"
