#!/usr/bin/env bash
# netsim benchmark (issue 4): a >= 10 s bulk transfer through the shaping relay (real loopback
# sockets, in-process) over every bundled Mahimahi trace and const 10/100/1000 Mbit/s, its achieved
# throughput against the trace's capacity over the same interval, and the simulator's completion
# time side by side; the same for one generated trace of each `netsim gen` family (rate segments);
# plus simulator speed over all bundled traces, and the load time and memory (`netsim stats`, wall
# time and max RSS of the process) of the largest traces generated: an hour of 10 Gbit/s in 10 ms
# lines and an hour of the jitter family in 20 ms lines. Writes JSON (default out/bench_netsim.json).
# Runs sequentially (~170 s) so transfers do not compete for the 2 cores.
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
gen="$(dirname "$out")/netsim_traces"
mkdir -p "$gen"
for fam in fast slow-start steps long-rtt jitter markov; do
  "$bin" netsim gen --family "$fam" --seed 1 -o "$gen/$fam.trace" 2>/dev/null
  args+=(--trace "$gen/$fam.trace")
done
sim=()
for f in "$traces"/mahimahi/*.down "$traces"/mahimahi/*.up "$traces"/fcc-norway/*; do sim+=(--sim-trace "$f"); done
set +e
"$bin" bench netsim "${args[@]}" "${sim[@]}" --seconds 10.5 --delay-ms 20 --queue-bytes 4194304 --jobs 1 --out "$out" "$@"
rc=$?
set -e
# the largest generated traces: load time and memory
/usr/bin/python3 -c '
import random, sys
r = random.Random(1)
with open(sys.argv[1], "w") as f:
    for i in range(360000): f.write("%.2f %.3f\n" % (i / 100, 10000 * (1 + 0.1 * r.uniform(-1, 1))))
' "$gen/hour_10gbit.trace"
"$bin" netsim gen --family jitter --duration-s 3600 --seed 1 -o "$gen/hour_jitter.trace" 2>/dev/null
/usr/bin/python3 - "$out" "$bin" "$gen/hour_10gbit.trace" "$gen/hour_jitter.trace" <<'PY'
import json, os, subprocess, sys, time
out, kv = sys.argv[1], sys.argv[2]
j = json.load(open(out))
j["trace_load"] = []
for f in sys.argv[3:]:
    t0 = time.monotonic()
    p = subprocess.Popen([kv, "netsim", "stats", "--trace", f, "--json"], stdout=subprocess.PIPE)
    text = p.stdout.read()
    _, status, ru = os.wait4(p.pid, 0)  # this child's own rusage
    wall = time.monotonic() - t0
    assert status == 0, f"netsim stats {f} failed"
    st, rss_kb = json.loads(text), ru.ru_maxrss
    j["trace_load"].append({"trace": os.path.basename(f), "file_bytes": os.path.getsize(f), "segments": st["segments"],
                            "mean_mbps": st["mean_mbps"], "duration_s": st["duration_s"],
                            "netsim_stats_wall_s": wall, "max_rss_mb": rss_kb / 1024})
json.dump(j, open(out, "w"), indent=2)
PY
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
for t in j.get("trace_load", []):
    print(f"{t['trace']}: {t['file_bytes']:,} B, {t['segments']:,} segments, mean {t['mean_mbps']:.1f} Mbit/s over "
          f"{t['duration_s']:.0f} s: netsim stats {t['netsim_stats_wall_s']:.2f} s, max RSS {t['max_rss_mb']:.1f} MB")
PY
exit $rc
