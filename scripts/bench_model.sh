#!/usr/bin/env bash
# Reference-model benchmark (issue 2), JSON out: prefill speed of stories260K over a 512-token
# TinyStories context, batched (one prefill call) vs token by token (one call per token, same
# work), measured side by side in one run (interleaved, best of REPEATS), single-threaded; plus
# the time of one score_continuation() call (64 tokens after 448), the codec's quality probe.
# Writes the JSON to stdout and to out/bench_model.json (or $1).
# Env: KVSTREAM=path/to/kvstream skips the build; TOKENS (512), REPEATS (7).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
[ -n "${KVSTREAM:-}" ] && KVSTREAM="$(realpath "$KVSTREAM")"
cd "$root"
if [ -z "${KVSTREAM:-}" ]; then
  "$root/scripts/setup.sh" >/dev/null
  KVSTREAM="$root/build/bin/kvstream"
fi
data="${KVSTREAM_DATA:-$root/data}"
out="${1:-$root/out/bench_model.json}"
mkdir -p "$(dirname "$out")"
"$KVSTREAM" bench model --model "$data/models/stories260K/stories260K.bin" \
  --tokenizer "$data/models/stories260K/tok512.bin" --text-file "$data/text/tinystories_val.txt" \
  --tokens "${TOKENS:-512}" --repeats "${REPEATS:-7}" --json > "$out.tmp"
mv "$out.tmp" "$out"
cat "$out"
/usr/bin/python3 - "$out" >&2 <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
print("bench_model: %d-token prefill: batched %.0f tok/s, token-by-token %.0f tok/s, speedup %.2fx (KV %s)"
      % (j["context_tokens"], j["batched"]["tokens_per_s"], j["token_by_token"]["tokens_per_s"], j["speedup"],
         "bit-identical" if j["identical_kv"] else "DIFFERENT"))
PY
