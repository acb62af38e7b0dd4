#!/usr/bin/env bash
# Per-stage profile of CPU decoding (issue 17): perf samples (the software cpu-clock event: this VM
# has no hardware counters) of `kvstream bench codec --level LEVEL --threads 1` decoding with the
# previous decoder alone (--decoders reference: format-2 blobs, bench/bench_reference.h) and with the
# current one alone (--decoders current), each grouped into stages by scripts/decode_stages.py
# (addr2line's inline chains; rules in that file). Prints one JSON object: {"reference": {...},
# "current": {...}} with each stage's share of the samples spent decoding.
# Usage: scripts/profile_decode.sh KV.safetensors PROFILE.kvprofile [LEVEL (standard)] [REPEATS (400)]
# Env: KVSTREAM (default build/bin/kvstream), OUT (work files, default out/profile_decode),
#      DECODE_PATH (auto | scalar | avx2 | avx512).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="${KVSTREAM:-$root/build/bin/kvstream}"
kv="$1" profile="$2" level="${3:-standard}" repeats="${4:-400}"
out="${OUT:-$root/out/profile_decode}"
mkdir -p "$out"
command -v perf > /dev/null || { echo "profile_decode: perf is not installed" >&2; exit 1; }
echo "{"
first=1
for which in reference current; do
  perf record -q -e cpu-clock -F 4999 -o "$out/$which.perf" -- "$bin" bench codec "$kv" --profile "$profile" --level "$level" \
    --threads 1 --repeats "$repeats" --decoders "$which" --decode-path "${DECODE_PATH:-auto}" --json > "$out/$which.bench.json"
  perf script -i "$out/$which.perf" -F ip,sym,symoff,dso --show-mmap-events 2> /dev/null > "$out/$which.samples"
  [ $first = 1 ] || echo ","
  first=0
  printf '"%s": ' "$which"
  /usr/bin/python3 "$root/scripts/decode_stages.py" "$bin" "$out/$which.samples"
done
echo "}"
