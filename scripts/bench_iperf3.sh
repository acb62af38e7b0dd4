#!/usr/bin/env bash
# iperf3 (a client nobody here wrote) through `kvstream relay` on constant-rate links and on every
# bundled Mahimahi trace plus two FCC/Norway traces: in the direction the relay shapes (iperf3 -R)
# its goodput must reach the trace's capacity over the same window within 5 %; one run in the
# other direction shows that direction is not shaped. One run at a time (scripts/iperf3_relay.sh).
# Writes out/bench_iperf3.json ({"runs": [...], "summary": {...}}) and prints a table.
# The relay's queue is 4 MiB (as in bench_netsim.sh): at least the bandwidth-delay product of the
# fastest link here (1 Gbit/s x 10 ms RTT = 1.25 MB), which a single TCP flow needs to keep the link
# busy through its congestion-window cuts.
# Env: SECONDS_PER_RUN (20), DELAY_MS (5), QUEUE_BYTES (4194304), KVSTREAM (binary; default:
# setup.sh builds build/).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -z "${KVSTREAM:-}" ]; then
  "$root/scripts/setup.sh"
  export KVSTREAM="$root/build/bin/kvstream"
fi
data="${KVSTREAM_DATA:-$root/data}"
secs="${SECONDS_PER_RUN:-20}"
export QUEUE_BYTES="${QUEUE_BYTES:-4194304}"
out="$root/out"
mkdir -p "$out"
traces=(const:10mbit const:50mbit const:200mbit const:1gbit
        "$data"/traces/mahimahi/*.down "$data"/traces/mahimahi/*.up
        "$data/traces/fcc-norway/fcc_trace_806172_http---www.amazon.com_0"
        "$data/traces/fcc-norway/norway_norway_tram_8_0")
runs="$out/bench_iperf3.jsonl"
trap 'rm -f "$runs"' EXIT
: > "$runs"
for t in "${traces[@]}"; do
  echo "iperf3 -R through the relay on $(basename "$t") for $secs s" >&2
  DIRECTION=down "$root/scripts/iperf3_relay.sh" "$t" "$secs" >> "$runs"
done
echo "iperf3 (no -R: the unshaped direction) on const:50mbit for 5 s" >&2
DIRECTION=up "$root/scripts/iperf3_relay.sh" const:50mbit 5 >> "$runs"

/usr/bin/python3 - "$runs" "$out/bench_iperf3.json" "$secs" <<'PY'
import json, os, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
shaped = [r for r in runs if r["shaped"]]
ok = [abs(r["ratio"] - 1) <= 0.05 for r in shaped]
summary = {"goal": "shaped direction: |achieved / capacity - 1| <= 0.05", "shaped_runs": len(shaped),
           "within_5pct": sum(ok), "all_ok": all(ok),
           "min_ratio": min(r["ratio"] for r in shaped), "max_ratio": max(r["ratio"] for r in shaped)}
json.dump({"seconds_per_run": float(sys.argv[3]), "runs": runs, "summary": summary}, open(sys.argv[2], "w"), indent=2)
print("%-44s %5s %10s %10s %8s %10s" % ("trace", "dir", "iperf3", "capacity", "ratio", "sender"))
for r in runs:
    print("%-44s %5s %10.3f %10.3f %8.4f %10.3f" % (os.path.basename(r["trace"])[:44], r["direction"], r["achieved_mbps"],
          r["capacity_mbps"], r["ratio"], r["iperf3_sender_mbps"]))
print("shaped runs within 5 %%: %d/%d (ratio %.4f .. %.4f) -> %s" % (summary["within_5pct"], len(shaped),
      summary["min_ratio"], summary["max_ratio"], sys.argv[2]))
sys.exit(0 if summary["all_ok"] else 1)
PY
