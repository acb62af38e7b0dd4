#!/usr/bin/env bash
# Codec benchmark: prefills a held-out TinyStories context (from 60% into the text, never used for
# calibration), then runs `kvstream bench codec --json` and `kvstream eval --json`.
# Writes $OUT_DIR/bench_codec.json, bench_delta.json (anchor/delta study) and eval_codec.json
# (default build-codec/results).
# Needs a profile (PROFILE=..., default $OUT_DIR/stories260K.kvprofile, made if missing).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="${KVSTREAM_BIN:-$root/build/bin/kvstream}"
data="${KVSTREAM_DATA:-$root/data}"
out="${OUT_DIR:-$root/build-codec/results}"
mkdir -p "$out"
model="$data/models/stories260K/stories260K.bin"
tok="$data/models/stories260K/tok512.bin"
text="$data/text/tinystories_val.txt"
profile="${PROFILE:-$out/stories260K.kvprofile}"
if [ ! -f "$profile" ]; then
  "$bin" profile --model "$model" --tokenizer "$tok" --text-file "$text" -o "$profile"
fi
/usr/bin/python3 - "$text" "$out/ctx.txt" <<'PY'
import sys
t = open(sys.argv[1], encoding="utf-8", errors="replace").read()
i = t.find("\n\n", int(len(t) * 0.6))
open(sys.argv[2], "w").write(t[i + 2:i + 2 + 6000])
PY
"$bin" prefill --model "$model" --tokenizer "$tok" --text-file "$out/ctx.txt" --max-tokens 512 \
  -o "$out/kv512.safetensors" > /dev/null
"$bin" bench codec "$out/kv512.safetensors" --profile "$profile" --json > "$out/bench_codec.json"
"$bin" bench delta "$out/kv512.safetensors" --profile "$profile" --json > "$out/bench_delta.json"
"$bin" eval --model "$model" --tokenizer "$tok" --profile "$profile" --text-file "$text" \
  --contexts "${CONTEXTS:-32}" --json > "$out/eval_codec.json"
echo "wrote $out/bench_codec.json $out/bench_delta.json $out/eval_codec.json"
