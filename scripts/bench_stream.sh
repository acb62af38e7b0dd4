#!/usr/bin/env bash
# Streaming benchmark (issue 5), JSON out:
#   1. simulator over the 46 bundled traces (6 Mahimahi + 40 fcc-norway), --prefill-rate 2000, SLO on
#      each trace = 1/3 of the TTFT q8 needs there; policies adaptive, cachegen, oracle, q8, text
#      -> out/stream/bench_stream.json ("summary.goal" holds the pass/fail of each goal)
#   2. live over the trace-shaped relay vs the simulator's prediction for the same trace and plan,
#      and the decode/transfer overlap (TTFT - last byte vs one chunk's decode)
#      -> out/stream/bench_stream_live.json
# Usage: scripts/bench_stream.sh [--no-live]. KVSTREAM=path/to/kvstream skips the build (setup.sh).
# Env: DELAY_MS (one-way delay, default 5), LIVE_TRACES (space-separated paths).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
if [ -z "${KVSTREAM:-}" ]; then
  "$root/scripts/setup.sh" >/dev/null
  export KVSTREAM="$root/build/bin/kvstream"
fi
out="$root/out/stream"
delay="${DELAY_MS:-5}"
"$root/scripts/stream_context.sh" "$out"

traces_dir="${KVSTREAM_DATA:-$root/data}/traces"
traces=()
for f in "$traces_dir"/mahimahi/*.down "$traces_dir"/mahimahi/*.up "$traces_dir"/fcc-norway/*; do traces+=("$f"); done
echo "bench_stream: ${#traces[@]} traces, one-way delay ${delay} ms, prefill rate 2000 tok/s"
"$KVSTREAM" bench stream --kvs "$out/story.kvs" --trace "${traces[@]}" --prefill-rate 2000 \
  --delay-ms "$delay" --slo-fraction 0.333333333333 -o "$out/bench_stream.json"

if [ "${1:-}" != "--no-live" ]; then
  live_traces=(${LIVE_TRACES:-"$traces_dir/mahimahi/TMobile-LTE-short.down" "$traces_dir/mahimahi/Verizon-LTE-short.down" \
    "$traces_dir/mahimahi/TMobile-UMTS-driving.down" "$traces_dir/fcc-norway/norway_norway_tram_8_0" \
    "$traces_dir/fcc-norway/fcc_trace_866_http---www.amazon.com_1280"})
  # warm the receiver's profile cache so the live runs match the simulation (no profile fetch)
  /usr/bin/python3 "$root/scripts/stream_live_check.py" --kvstream "$KVSTREAM" --dir "$out" --kvs "$out/story.kvs" \
    --bench "$out/bench_stream.json" --trace "${live_traces[0]}" --policy q8 --delay-ms "$delay" \
    --profile-dir "$out/profile-cache" -o "$out/warmup.json" >/dev/null
  /usr/bin/python3 "$root/scripts/stream_live_check.py" --kvstream "$KVSTREAM" --dir "$out" --kvs "$out/story.kvs" \
    --bench "$out/bench_stream.json" $(printf -- "--trace %s " "${live_traces[@]}") \
    --policy adaptive --policy q8 --policy cachegen --policy text --delay-ms "$delay" \
    --profile-dir "$out/profile-cache" --model "${KVSTREAM_DATA:-$root/data}/models/stories260K/stories260K.bin" \
    -o "$out/bench_stream_live.json"
fi
echo "bench_stream: wrote $out/bench_stream.json"
