#!/usr/bin/env bash
# Decode benchmark (issue 6), JSON out: `kvstream bench decode` on real stories260K chunks
# (a 512-token prefill of a TinyStories passage, every level of the stream profile), decoding
# >= 256 MB of fp16 output per run:
#   out/decode/bench_decode_cpu_<level>.json     CPU decoder (always)
#   out/decode/bench_decode_cuda_<level>.json    CUDA decoder (only when a CUDA device is present;
#                                                otherwise the reason is printed and it is skipped)
# Usage: scripts/bench_decode.sh [extra bench decode options, e.g. --symbols-per-stream 512].
# Env: KVSTREAM=path/to/kvstream skips the build (setup.sh); DEVICES="cpu cuda" (default both);
#      LEVELS="name ..." (default: every profile level).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
if [ -z "${KVSTREAM:-}" ]; then
  "$root/scripts/setup.sh" >/dev/null
  export KVSTREAM="$root/build/bin/kvstream"
fi
data="${KVSTREAM_DATA:-$root/data}"
out="$root/out/decode"
mkdir -p "$out"
# The codec profile is the one the streaming scripts build (cached in out/stream).
"$root/scripts/stream_context.sh" "$root/out/stream" >/dev/null
profile="$root/out/stream/stories260K.kvprofile"
kv="$out/passage512.safetensors"
if [ ! -s "$kv" ]; then
  # a passage from the evaluation half of the text (the profile calibrates on the first 35%)
  /usr/bin/python3 -c "import sys; t=open(sys.argv[1]).read(); print(t[len(t)*3//4:len(t)*3//4+8000])" \
    "$data/text/tinystories_val.txt" > "$out/passage.txt"
  "$KVSTREAM" prefill --model "$data/models/stories260K/stories260K.bin" \
    --tokenizer "$data/models/stories260K/tok512.bin" --text-file "$out/passage.txt" --max-tokens 512 -o "$kv"
fi
levels="${LEVELS:-$(/usr/bin/python3 -c "import json,sys; print(' '.join(l['name'] for l in json.load(open(sys.argv[1])) if l.get('method','quant')=='quant'))" "$root/out/stream/ladder.json")}"
for dev in ${DEVICES:-cpu cuda}; do
  for level in $levels; do
    f="$out/bench_decode_${dev}_${level}.json"
    rc=0
    "$KVSTREAM" bench decode --device "$dev" "$kv" --profile "$profile" --level "$level" -o "$f" "$@" || rc=$?
    if [ "$rc" = 0 ]; then
      echo "bench_decode: wrote $f"
    elif [ "$rc" = 2 ]; then
      echo "bench_decode: $dev output differs from the CPU decoder (see $f)" >&2; exit 2
    elif [ "$dev" = cuda ]; then
      echo "bench_decode: CUDA run skipped (see the message above)"; break
    else
      exit "$rc"
    fi
  done
done
