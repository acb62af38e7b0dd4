#!/usr/bin/env bash
# The model-free profile (`kvstream profile --kv`) against the model-based one (`kvstream profile`)
# on stories260K, JSON out (out/kvprofile/bench_kv_profile.json):
#   1. KV dumps: 80 passages of the calibration range (the text's first 35%, as the model-based
#      profiler uses), each prefilled to 384 tokens (`kvstream prefill`),
#   2. model-free profiles from those dumps alone: rms and uniform weighting (levels by SNR),
#   3. the model-based profile (cached: out/stream/stories260K.kvprofile, scripts/stream_context.sh),
#   4. `kvstream eval` of every profile on the same contexts of the evaluation half (--contexts 32),
#   5. size at equal measured quality: for each model-based level, the bits per value a model-free
#      profile needs for the same perplexity change (linear interpolation between its levels, in
#      bits vs log |ppl delta|) and for the same greedy agreement (the fewest bits at which its
#      levels, linearly interpolated in bits, reach it), and the ratios of the sizes.
# Usage: scripts/bench_kv_profile.sh. KVSTREAM=path/to/kvstream skips the build. Env: CONTEXTS (32).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
if [ -z "${KVSTREAM:-}" ]; then
  "$root/scripts/setup.sh" >/dev/null
  KVSTREAM="$root/build/bin/kvstream"
fi
kv="$KVSTREAM"
data="${KVSTREAM_DATA:-$root/data}"
model="$data/models/stories260K/stories260K.bin"
tok="$data/models/stories260K/tok512.bin"
text="$data/text/tinystories_val.txt"
out="$root/out/kvprofile"
contexts="${CONTEXTS:-32}"
mkdir -p "$out/dumps"

echo "== 1. KV dumps of the calibration range"
/usr/bin/python3 - "$text" "$out/dumps" <<'PY'
import pathlib, sys
text = pathlib.Path(sys.argv[1]).read_text()
hi = int(0.35 * len(text))
n = 80
for i in range(n):
    start = text.find("\n\n", hi * i // n)
    while text[start].isspace():
        start += 1
    pathlib.Path(sys.argv[2], f"p{i:02d}.txt").write_text(text[start:start + 3000])
PY
for p in "$out"/dumps/p*.txt; do
  f="${p%.txt}.safetensors"
  [ -s "$f" ] || "$kv" prefill --model "$model" --tokenizer "$tok" --prompt "$(cat "$p")" --max-tokens 384 -o "$f" >/dev/null
done

echo "== 2. model-free profiles (no model: KV dumps only)"
for w in rms uniform; do
  "$kv" profile --kv "$out"/dumps/p*.safetensors --weighting "$w" -o "$out/kv_$w.kvprofile" | tee "$out/kv_$w.log"
done

echo "== 3. the model-based profile"
KVSTREAM="$kv" "$root/scripts/stream_context.sh" "$root/out/stream" >/dev/null
cp "$root/out/stream/stories260K.kvprofile" "$out/model.kvprofile"

echo "== 4. eval on $contexts contexts of the evaluation half"
for p in model kv_rms kv_uniform; do
  "$kv" eval --model "$model" --tokenizer "$tok" --profile "$out/$p.kvprofile" --text-file "$text" \
    --contexts "$contexts" --json > "$out/eval_$p.json"
done

echo "== 5. size at equal quality"
/usr/bin/python3 - "$out" "$contexts" <<'PY'
import json, math, sys
out, contexts = sys.argv[1], int(sys.argv[2])
def levels(name):
    ev = json.load(open(f"{out}/eval_{name}.json"))
    return [{"name": e["name"], "bits_per_value": e["bits_per_value"], "ppl_delta_pct": e["ppl_delta_pct"],
             "greedy_agreement": e["greedy_agreement"]} for e in ev["entries"] if e["kind"] == "level"]
def bits_at(curve, ppl):
    """Bits per value a profile needs for |ppl delta| = ppl: linear in bits vs log|ppl| between its levels."""
    pts = sorted((math.log(max(abs(l["ppl_delta_pct"]), 1e-4)), l["bits_per_value"]) for l in curve)
    x = math.log(max(abs(ppl), 1e-4))
    if x < pts[0][0] or x > pts[-1][0]:
        return None  # outside the profile's measured range
    for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
        if x0 <= x <= x1:
            return y0 if x1 == x0 else y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return pts[-1][1]
def bits_at_greedy(curve, g):
    """Fewest bits per value at which the profile's levels (linear between them, by bits) reach greedy agreement g."""
    pts = sorted((l["bits_per_value"], l["greedy_agreement"]) for l in curve)
    best = None
    for (b0, g0), (b1, g1) in zip(pts, pts[1:]):
        b = b0 if g0 >= g else (b0 + (g - g0) / (g1 - g0) * (b1 - b0) if g1 >= g else None)
        if b is not None and (best is None or b < best):
            best = b
    if pts and pts[0][1] >= g:
        best = pts[0][0]  # its smallest level already reaches it (an upper bound)
    return best
model = levels("model")
res = {"contexts": contexts, "profiles": {n: levels(n) for n in ("model", "kv_rms", "kv_uniform")}, "equal_quality": []}
for l in model:
    row = {"level": l["name"], "ppl_delta_pct": l["ppl_delta_pct"], "greedy_agreement": l["greedy_agreement"],
           "model_bits": l["bits_per_value"]}
    for n in ("kv_rms", "kv_uniform"):
        b = bits_at(res["profiles"][n], l["ppl_delta_pct"])
        row[f"{n}_bits"] = b
        row[f"{n}_size_ratio"] = None if b is None else b / l["bits_per_value"]
        g = bits_at_greedy(res["profiles"][n], l["greedy_agreement"])
        row[f"{n}_bits_at_greedy"] = g
        row[f"{n}_size_ratio_at_greedy"] = None if g is None else g / l["bits_per_value"]
    res["equal_quality"].append(row)
json.dump(res, open(f"{out}/bench_kv_profile.json", "w"), indent=2)
print(f"{'model level':<15}{'ppl %':>8}{'model b/v':>11}{'kv-rms b/v':>12}{'ratio':>7}{'kv-unif b/v':>13}{'ratio':>7}")
f = lambda v, w=7: f"{v:>{w}.3f}" if v is not None else f"{'-':>{w}}"
for r in res["equal_quality"]:
    print(f"{r['level']:<15}{r['ppl_delta_pct']:>8.3f}{r['model_bits']:>11.3f}{f(r['kv_rms_bits'], 12)}"
          f"{f(r['kv_rms_size_ratio'])}{f(r['kv_uniform_bits'], 13)}{f(r['kv_uniform_size_ratio'])}")
print("at equal greedy agreement:")
print(f"{'model level':<15}{'greedy':>8}{'model b/v':>11}{'kv-rms b/v':>12}{'ratio':>7}{'kv-unif b/v':>13}{'ratio':>7}")
for r in res["equal_quality"]:
    print(f"{r['level']:<15}{r['greedy_agreement']:>8.4f}{r['model_bits']:>11.3f}{f(r['kv_rms_bits_at_greedy'], 12)}"
          f"{f(r['kv_rms_size_ratio_at_greedy'])}{f(r['kv_uniform_bits_at_greedy'], 13)}{f(r['kv_uniform_size_ratio_at_greedy'])}")
print(f"-> {out}/bench_kv_profile.json")
PY
