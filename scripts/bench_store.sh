#!/usr/bin/env bash
# Benchmarks the hierarchical KV store (issue 7) and writes JSON:
#   1. a ShareGPT-like workload (kvstream workload gen: SESSIONS sessions, seed SEED, TinyStories
#      text from the second half of the file, think times THINK_DIST = exponential (default) or
#      lognormal with THINK_SIGMA, mean 60 s either way),
#   2. a codec profile (kvstream profile on the first 35% of the text, disjoint from the workload)
#      unless PROFILE names one,
#   3. kvstream replay with lru, fifo and scheduler at each capacity in CAPS ("MEM:DISK" pairs),
#      prefill rate PREFILL_RATE tok/s (default 4000, a 7B-class GPU), real tiers in a temp dir;
#      every run reports both TTFT models (serial load-then-prefill and layer-wise pre-loading),
#   4. kvstream store truncation-eval on TRUNC_CONTEXTS conversations that overflow the window
#      (TRUNC_CONTEXTS=0 skips it).
# Output: $OUT_DIR/bench_store.json (all results) plus one JSON per run beside it.
# Env: KVSTREAM_BIN (default build/bin/kvstream), KVSTREAM_DATA (default data/), OUT_DIR.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="${KVSTREAM_BIN:-$root/build/bin/kvstream}"
data="${KVSTREAM_DATA:-$root/data}"
out="${OUT_DIR:-$root/out/bench_store}"
sessions="${SESSIONS:-200}"
seed="${SEED:-1}"
rate="${PREFILL_RATE:-4000}"
caps="${CAPS:-2MB:6MB 3MB:9MB 3584KB:10752KB 4MB:12MB}"
trunc_contexts="${TRUNC_CONTEXTS:-32}"
think_dist="${THINK_DIST:-exponential}"
think_sigma="${THINK_SIGMA:-1.5}"
model="$data/models/stories260K/stories260K.bin"
tok="$data/models/stories260K/tok512.bin"
text="$data/text/tinystories_val.txt"
mkdir -p "$out"
[ -x "$bin" ] || { echo "bench_store: $bin not found (build first: scripts/setup.sh)" >&2; exit 1; }

profile="${PROFILE:-$out/stories260K.kvprofile}"
if [ ! -f "$profile" ]; then
  "$bin" profile --model "$model" --tokenizer "$tok" --text-file "$text" -o "$profile" >&2
fi
"$bin" workload gen --sessions "$sessions" --seed "$seed" --text-file "$text" \
  --think-dist "$think_dist" --think-sigma "$think_sigma" -o "$out/workload.json" >&2

runs=()
for cap in $caps; do
  mem="${cap%%:*}"; disk="${cap##*:}"
  for policy in lru fifo scheduler; do
    f="$out/replay_${policy}_${mem}_${disk}.json"
    "$bin" replay --workload "$out/workload.json" --policy "$policy" --mem-bytes "$mem" --disk-bytes "$disk" \
      --profile "$profile" --prefill-rate "$rate" --model "$model" --tokenizer "$tok" --json > "$f"
    echo "bench_store: $policy mem $mem disk $disk -> $f" >&2
    runs+=("$f")
  done
done
rm -f "$out/truncation.json"
if [ "$trunc_contexts" -gt 0 ]; then
  "$bin" store truncation-eval --model "$model" --tokenizer "$tok" --text-file "$text" \
    --contexts "$trunc_contexts" --json > "$out/truncation.json"
fi

/usr/bin/python3 - "$out" "$sessions" "$seed" "$rate" "$think_dist" "$think_sigma" "${runs[@]}" <<'PY'
import json, os, sys
out, sessions, seed, rate = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
think_dist, think_sigma, runs = sys.argv[5], float(sys.argv[6]), sys.argv[7:]
res = {"workload": {"sessions": sessions, "seed": seed, "think_dist": think_dist,
                    "think_sigma": think_sigma if think_dist == "lognormal" else None},
       "prefill_rate_tok_s": rate, "replay": [], "truncation": None}
for f in runs:
    r = json.load(open(f))
    res["replay"].append({k: r[k] for k in ["policy", "turns", "eligible_turns", "hit_rate", "hit_rate_mem",
        "hit_rate_disk", "mean_ttft_ms", "recompute_mean_ttft_ms", "ttft_reduction", "load_overlap",
        "pipeline_layers", "mean_ttft_serial_ms", "mean_ttft_layerwise_ms", "ttft_reduction_serial",
        "ttft_reduction_layerwise", "mean_decode_ms",
        "prefill_tokens_saved", "bytes_read_mem", "bytes_read_disk", "bytes_prefetched_disk",
        "mean_entry_bytes", "prefetch_window", "eviction_window"]} | {
        "mem_bytes": r["settings"]["mem_bytes"], "disk_bytes": r["settings"]["disk_bytes"]})
if os.path.exists(out + "/truncation.json"):
    res["truncation"] = json.load(open(out + "/truncation.json"))
json.dump(res, open(out + "/bench_store.json", "w"), indent=2)
print(f"{'mem':>9} {'disk':>9} {'policy':>10} {'hit':>6} {'mem':>6} {'disk':>6} {'serial':>8} {'layerw':>8} "
      f"{'recomp':>8} {'drop ser':>8} {'drop lw':>8}")
for r in res["replay"]:
    print(f"{r['mem_bytes']:>9} {r['disk_bytes']:>9} {r['policy']:>10} {r['hit_rate']:6.3f} {r['hit_rate_mem']:6.3f} "
          f"{r['hit_rate_disk']:6.3f} {r['mean_ttft_serial_ms']:8.2f} {r['mean_ttft_layerwise_ms']:8.2f} "
          f"{r['recompute_mean_ttft_ms']:8.2f} {r['ttft_reduction_serial']:8.3f} {r['ttft_reduction_layerwise']:8.3f}")
for m in (res["truncation"] or {}).get("methods", []):
    print(f"{m['method']:<55} ppl {m['perplexity']:.4f}  |dppl| {m['mean_abs_ppl_diff_vs_recompute']:.4f}  top1 {m['top1_agreement_vs_recompute']:.3f}")
print("wrote", out + "/bench_store.json")
PY
