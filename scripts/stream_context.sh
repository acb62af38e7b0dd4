#!/usr/bin/env bash
# Prepares the streaming context used by demo.sh and bench_stream.sh (idempotent, cached):
#   OUT/stories260K.kvprofile  codec profile (`kvstream profile`, calibration text = first 35%)
#   OUT/eval.json              measured quality of every level and baseline (`kvstream eval`,
#                              contexts from the text's last half)
#   OUT/ladder.json            the container ladder: profile levels + fp16/q8/q4/zstd-fp16 + text,
#                              each with its measured quality
#   OUT/passage.txt            a TinyStories passage from the evaluation half of the text
#   OUT/story.safetensors      its 448-token KV cache (stories260K prefill)
#   OUT/story.kvs              the container served as context "story" (64-token chunks)
# Usage: scripts/stream_context.sh [OUT]   (default out/stream); KVSTREAM=path/to/kvstream.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$root/out/stream}"
kv="${KVSTREAM:-$root/build/bin/kvstream}"
data="${KVSTREAM_DATA:-$root/data}"
model="$data/models/stories260K/stories260K.bin"
tok="$data/models/stories260K/tok512.bin"
text="$data/text/tinystories_val.txt"
mkdir -p "$out"

if [ ! -s "$out/stories260K.kvprofile" ]; then
  echo "stream_context: building the codec profile (once; cached in $out)"
  "$kv" profile --model "$model" --tokenizer "$tok" --text-file "$text" -o "$out/stories260K.kvprofile.tmp"
  mv "$out/stories260K.kvprofile.tmp" "$out/stories260K.kvprofile"
fi
if [ ! -s "$out/eval.json" ] || [ "$out/eval.json" -ot "$out/stories260K.kvprofile" ]; then
  echo "stream_context: measuring level and baseline quality (once)"
  "$kv" eval --model "$model" --tokenizer "$tok" --profile "$out/stories260K.kvprofile" --text-file "$text" \
    --contexts 8 --json > "$out/eval.json.tmp"
  mv "$out/eval.json.tmp" "$out/eval.json"
fi
/usr/bin/python3 - "$out/eval.json" "$out/ladder.json" <<'EOF'
import json, sys
ev = json.load(open(sys.argv[1]))
ladder, level = [], 0
for e in ev["entries"]:
    q = {k: e.get(k, 0) for k in ("bits_per_value", "ratio_vs_q8", "ppl_delta_pct", "greedy_agreement")}
    q["contexts"] = ev["contexts"]
    if e["kind"] == "level":
        ladder.append(dict(name=e["name"], method="quant", profile_level=level, **q)); level += 1
    elif e["name"] in ("fp16", "q8", "q4", "zstd-fp16"):
        ladder.append(dict(name=e["name"], method=e["name"], profile_level=-1, **q))
ladder.append(dict(name="text", method="text", profile_level=-1, bits_per_value=0, ratio_vs_q8=0,
                   ppl_delta_pct=0, greedy_agreement=1.0, contexts=ev["contexts"]))
new = json.dumps(ladder, indent=1)
try:
    old = open(sys.argv[2]).read()
except OSError:
    old = None
if new != old:
    open(sys.argv[2], "w").write(new)
EOF
if [ ! -s "$out/passage.txt" ]; then
  # a passage from the evaluation half (never seen by the profile), starting at a story boundary
  /usr/bin/python3 - "$text" "$out/passage.txt" <<'EOF'
import sys
t = open(sys.argv[1], encoding="utf-8").read()
i = t.index("\n\n", int(len(t) * 0.75)) + 2
open(sys.argv[2], "w", encoding="utf-8").write(t[i:i + 4000])
EOF
fi
if [ ! -s "$out/story.safetensors" ]; then
  "$kv" prefill --model "$model" --tokenizer "$tok" --text-file "$out/passage.txt" --max-tokens 448 \
    -o "$out/story.safetensors"
fi
if [ ! -s "$out/story.kvs" ] || [ "$out/story.kvs" -ot "$out/ladder.json" ]; then
  "$kv" encode "$out/story.safetensors" --profile "$out/stories260K.kvprofile" --ladder "$out/ladder.json" \
    --chunk-tokens 64 -o "$out/story.kvs"
fi
echo "stream_context: $out/story.kvs ready"
