#!/usr/bin/env bash
# Streaming benchmark (issues 5 and 14), JSON out:
#   1. the matrix: link families x one-way delay x SLO fraction, every policy simulated
#      (adaptive, cachegen, oracle, text, q8, fixed:L for every level), --prefill-rate 2000,
#      SLO = fraction x the TTFT q8 needs on each (trace, delay). Families: GEN_SEEDS seeded traces
#      of each `kvstream netsim gen` family (fast, slow-start, steps, long-rtt, jitter, markov),
#      and the bundled real traces (mahimahi: 6, fcc-norway: 40). One cell per family x delay x
#      fraction; "summary.goals" holds the pass/fail of each goal of issue 14; "ablation" the
#      first-estimate sources off in turn.
#      -> out/stream/bench_stream.json
#   2. live over the trace-shaped relay vs the simulator for the same trace and plan (and vs the
#      simulator's own choice), at LIVE_DELAY_MS and SLO fraction LIVE_FRACTION
#      -> out/stream/bench_stream_live.json
# Usage: scripts/bench_stream.sh [--no-live]. KVSTREAM=path/to/kvstream skips the build (setup.sh).
# Env: GEN_SEEDS (traces per generated family, default 20), DELAYS_MS (default 5,40,100),
#      FRACTIONS (default 0.2,0.33,0.5,1.0), LIVE_DELAY_MS (5), LIVE_FRACTION (0.33),
#      LIVE_TRACES (space-separated paths).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
if [ -z "${KVSTREAM:-}" ]; then
  "$root/scripts/setup.sh" >/dev/null
  export KVSTREAM="$root/build/bin/kvstream"
fi
out="$root/out/stream"
seeds="${GEN_SEEDS:-20}"
delays="${DELAYS_MS:-5,40,100}"
fractions="${FRACTIONS:-0.2,0.33,0.5,1.0}"
live_delay="${LIVE_DELAY_MS:-5}"
live_fraction="${LIVE_FRACTION:-0.33}"
"$root/scripts/stream_context.sh" "$out"

traces_dir="${KVSTREAM_DATA:-$root/data}/traces"
gen="$out/gen"
families=()
for fam in fast slow-start steps long-rtt jitter markov; do
  rm -rf "$gen/$fam"
  mkdir -p "$gen/$fam"
  for seed in $(seq 1 "$seeds"); do
    "$KVSTREAM" netsim gen --family "$fam" --seed "$seed" -o "$gen/$fam/$fam-$seed.trace" 2>/dev/null
  done
  families+=(--family "$fam=$gen/$fam")
done
join() { local IFS=,; echo "$*"; }
families+=(--family "mahimahi=$(join "$traces_dir"/mahimahi/*.down "$traces_dir"/mahimahi/*.up)"
  --family "fcc-norway=$(join "$traces_dir"/fcc-norway/*)")
echo "bench_stream: 6 generated families x $seeds seeds + the real traces, delays $delays ms, SLO fractions $fractions"
"$KVSTREAM" bench stream --kvs "$out/story.kvs" "${families[@]}" --prefill-rate 2000 \
  --delays-ms "$delays" --slo-fractions "$fractions" --ablation --jobs 2 -o "$out/bench_stream.json"

if [ "${1:-}" != "--no-live" ]; then
  live_traces=(${LIVE_TRACES:-"$traces_dir/mahimahi/TMobile-LTE-short.down" "$traces_dir/mahimahi/Verizon-LTE-short.down" \
    "$traces_dir/mahimahi/TMobile-UMTS-driving.down" "$traces_dir/fcc-norway/norway_norway_tram_8_0" \
    "$traces_dir/fcc-norway/fcc_trace_866_http---www.amazon.com_1280" "$gen/fast/fast-2.trace" \
    "$gen/slow-start/slow-start-1.trace" "$gen/steps/steps-1.trace" "$gen/markov/markov-1.trace"})
  # warm the receiver's profile cache so the live runs match the simulation (no profile fetch)
  /usr/bin/python3 "$root/scripts/stream_live_check.py" --kvstream "$KVSTREAM" --dir "$out" --kvs "$out/story.kvs" \
    --bench "$out/bench_stream.json" --trace "${live_traces[0]}" --policy q8 --delay-ms "$live_delay" \
    --slo-fraction "$live_fraction" --profile-dir "$out/profile-cache" -o "$out/warmup.json" >/dev/null
  /usr/bin/python3 "$root/scripts/stream_live_check.py" --kvstream "$KVSTREAM" --dir "$out" --kvs "$out/story.kvs" \
    --bench "$out/bench_stream.json" $(printf -- "--trace %s " "${live_traces[@]}") \
    --policy adaptive --policy q8 --policy cachegen --policy text --delay-ms "$live_delay" \
    --slo-fraction "$live_fraction" \
    --profile-dir "$out/profile-cache" --model "${KVSTREAM_DATA:-$root/data}/models/stories260K/stories260K.bin" \
    -o "$out/bench_stream_live.json"
fi
echo "bench_stream: wrote $out/bench_stream.json"
