#!/usr/bin/env bash
# netsim benchmark (issue 4): a >= 10 s bulk transfer through the shaping relay (real loopback
# sockets, in-process) over every bundled Mahimahi trace and const 10/100/1000 Mbit/s, its achieved
# throughput against the trace's capacity over the same interval, and the simulator's completion
# time side by side; plus simulator speed over all bundled traces. Writes JSON (default
# out/bench_netsim.json). Runs sequentially (~100 s) so transfers do not compete for the 2 cores.
# Usage: scripts/bench_netsim.sh [OUT.json] [extra `kvstream bench netsim` options]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${BUILD_DIR:-$root/build}"
bin="$build/bin/kvstream"
[ -x "$bin" ] || cmake --build "$build" --target kvstream -j1
out="${1:-$root/out/bench_netsim.json}"
shift || true
mkdir -p "$(dirname "$out")"
traces="${KVSTREAM_DATA:-$root/data}/traces"
args=()
for f in "$traces"/mahimahi/*.down "$traces"/mahimahi/*.up; do args+=(--trace "$f"); done
for r in 10 100 1000; do args+=(--trace "const:${r}mbit"); done
sim=()
for f in "$traces"/mahimahi/*.down "$traces"/mahimahi/*.up "$traces"/fcc-norway/*; do sim+=(--sim-trace "$f"); done
set +e
"$bin" bench netsim "${args[@]}" "${sim[@]}" --seconds 10.5 --delay-ms 20 --queue-bytes 4194304 --jobs 1 --out "$out" "$@"
rc=$?
set -e
/usr/bin/python3 - "$out" <<'PY'
import json, os, sys
j = json.load(open(sys.argv[1]))
print("| trace | bytes | relay s | sim s | sim/relay | achieved Mbit/s | capacity Mbit/s | efficiency |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for r in j["runs"]:
    name = os.path.basename(r["spec"])
    if "error" in r:
        print(f"| {name} | error: {r['error']} |"); continue
    print(f"| {name} | {r['bytes']:,} | {r['relay_s']:.3f} | {r['sim_s']:.3f} | {r['sim_vs_relay']:.4f} | "
          f"{r['achieved_mbps']:.3f} | {r['capacity_mbps']:.3f} | {100*r['efficiency']:.2f}% |")
s = j["summary"]; v = j["simulator_speed"]
print(f"\nmin efficiency {100*s['min_efficiency']:.2f}%, max |sim/relay-1| {100*s['max_sim_deviation']:.2f}%, all_ok {s['all_ok']}")
print(f"simulator: {v['simulations']} simulations x {v['sends']//v['simulations']} sends in {v['simulate_s']*1e3:.1f} ms "
      f"({v['sends_per_s']:.3g} sends/s), trace loading {v['load_s']*1e3:.0f} ms")
PY
exit $rc
