#!/usr/bin/python3
"""Live-vs-simulator check for kvstream streaming (called by scripts/bench_stream.sh).

For each (trace, policy): start `kvstream send` on the context directory and a fresh
`kvstream relay` shaping it with the trace (so that trace time 0 = this connection), fetch the
context with `kvstream recv --json`, then simulate the SAME plan (policy plan:<levels the live run
chose>, paced as the live policy paced it: --pacing-of adaptive for adaptive runs) over the same
trace and delay with `kvstream simulate --json`, and compare TTFTs. Also
reports the decode/transfer overlap: TTFT - last byte vs the largest per-chunk decode time.

Usage: stream_live_check.py --kvstream BIN --dir DIR --kvs DIR/story.kvs --bench bench.json
         --trace T [--trace T ...] [--policy P ...] [--delay-ms D] [--prefill-rate R] -o out.json
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time


def start(cmd, pattern):
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    deadline = time.time() + 20
    while time.time() < deadline:
        line = p.stdout.readline()
        if not line:
            break
        m = re.search(pattern, line)
        if m:
            return p, int(m.group(1))
    p.kill()
    raise SystemExit("could not start: " + " ".join(cmd))


def stop(p):
    p.terminate()
    try:
        p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kvstream", required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--kvs", required=True)
    ap.add_argument("--bench", required=True, help="bench stream JSON (for each trace's SLO)")
    ap.add_argument("--trace", action="append", required=True)
    ap.add_argument("--policy", action="append")
    ap.add_argument("--delay-ms", type=float, default=5)
    ap.add_argument("--slo-fraction", type=float, default=0.33, help="the bench case's SLO fraction of q8's TTFT")
    ap.add_argument("--prefill-rate", type=float, default=2000)
    ap.add_argument("--profile-dir", default="out/stream/profile-cache")
    ap.add_argument("--model", help="llama2.c checkpoint for text recompute (recv --model)")
    ap.add_argument("-o", "--output", required=True)
    a = ap.parse_args()
    policies = a.policy or ["adaptive", "q8", "cachegen"]
    bench = json.load(open(a.bench))
    # the bench cases of this delay and SLO fraction, by trace file name
    cases = {os.path.basename(c["trace"]): c for c in bench["cases"]
             if abs(c["delay_ms"] - a.delay_ms) < 1e-6 and abs(c["slo_fraction"] - a.slo_fraction) < 1e-6}
    slo = {name: c["slo_ms"] for name, c in cases.items()}
    kv = a.kvstream
    sender, sport = start([kv, "send", "--listen", "127.0.0.1:0", "--dir", a.dir, "--insecure", "--quiet"], r"on [^ ]*:(\d+)")
    rows = []
    try:
        # One unmeasured fetch straight from the sender: its first REQUEST loads and parses the
        # context (the simulator models a sender that has it in memory, as every later run finds it).
        subprocess.run([kv, "recv", "--connect", "127.0.0.1:%d" % sport, "--context", "story", "--policy", "q8", "--slo-ms", "1000",
                        "--profile-dir", a.profile_dir], capture_output=True, text=True, timeout=120, check=True)
        for trace in a.trace:
            name = os.path.basename(trace)
            slo_ms = slo.get(name)
            if slo_ms is None:
                print("skip %s: not in the bench JSON" % name)
                continue
            for pol in policies:
                relay, rport = start([kv, "relay", "--trace", trace, "--listen", "127.0.0.1:0",
                                      "--connect", "127.0.0.1:%d" % sport, "--delay-ms", str(a.delay_ms)],
                                     r"listening on [^ ]*:(\d+)")
                try:
                    live = subprocess.run([kv, "recv", "--connect", "127.0.0.1:%d" % rport, "--context", "story",
                                           "--slo-ms", "%.3f" % slo_ms, "--policy", pol, "--prefill-rate",
                                           str(a.prefill_rate), "--profile-dir", a.profile_dir, "--json"]
                                          + (["--model", a.model] if a.model else []),
                                          capture_output=True, text=True, timeout=120)
                finally:
                    stop(relay)
                if live.returncode != 0:
                    print("recv failed on %s %s: %s" % (name, pol, live.stderr.strip()))
                    rows.append({"trace": name, "policy": pol, "error": live.stderr.strip()})
                    continue
                L = json.loads(live.stdout)
                sim = subprocess.run([kv, "simulate", "--kvs", a.kvs, "--trace", trace, "--slo-ms", "%.3f" % slo_ms,
                                      "--policy", "plan:" + L["plan"], "--prefill-rate", str(a.prefill_rate),
                                      "--delay-ms", str(a.delay_ms), "--json"]
                                     + (["--pacing-of", "adaptive"] if pol == "adaptive" else []),
                                     capture_output=True, text=True,
                                     timeout=120, check=True)
                S = json.loads(sim.stdout)
                max_decode = max(c["decode_ms"] for c in L["chunks"] if c["level"] != "text") if any(
                    c["level"] != "text" for c in L["chunks"]) else 0.0
                last_kv = [c for c in L["chunks"] if c["level"] != "text"]
                row = {
                    "trace": name, "policy": pol, "slo_ms": slo_ms, "plan": L["plan"],
                    "live_ttft_ms": L["ttft_ms"], "sim_ttft_ms": S["ttft_ms"],
                    "ttft_error_pct": 100.0 * (L["ttft_ms"] - S["ttft_ms"]) / S["ttft_ms"],
                    "live_last_byte_ms": L["last_byte_ms"], "sim_last_byte_ms": S["last_byte_ms"],
                    "live_slo_met": L["slo_met"], "sim_slo_met": S["slo_met"],
                    "ttft_minus_last_byte_ms": L["ttft_ms"] - L["last_byte_ms"],
                    "max_chunk_decode_ms": max_decode,
                    "last_chunk_is_text": L["chunks"][-1]["level"] == "text",
                    "first_token_ms": L.get("first_token_ms", 0.0),
                    "bytes": L["bytes"],
                    "estimate_sources": L.get("estimate_sources"),
                }
                # The simulator's own run of this policy (not a replay): did it choose the same plan?
                B = cases[name]["policies"].get(pol)
                if B is not None:
                    row["bench_sim_plan"] = B["plan"]
                    row["bench_sim_ttft_ms"] = B["ttft_ms"]
                    row["same_plan_as_bench_sim"] = B["plan"] == L["plan"]
                # Overlap check: with only KV chunks after the last byte, TTFT - last byte must be at
                # most one chunk's decode (+ the first token); text chunks add their recompute.
                row["overlap_ok"] = (row["ttft_minus_last_byte_ms"] <= max_decode + row["first_token_ms"] + 0.5
                                     if not any(c["level"] == "text" and c["ready_ms"] > L["last_byte_ms"]
                                                for c in L["chunks"]) else None)
                rows.append(row)
                print("%-45s %-9s live %7.1f ms  sim %7.1f ms  (%+5.1f%%)  ttft-lastbyte %5.2f ms  max decode %5.2f ms"
                      % (name[:45], pol, L["ttft_ms"], S["ttft_ms"], row["ttft_error_pct"],
                         row["ttft_minus_last_byte_ms"], max_decode))
    finally:
        stop(sender)
    ok = [r for r in rows if "error" not in r]
    summary = {
        "runs": len(rows), "failed": len(rows) - len(ok),
        "within_10pct": sum(abs(r["ttft_error_pct"]) <= 10 for r in ok),
        "max_abs_error_pct": max((abs(r["ttft_error_pct"]) for r in ok), default=None),
        "mean_abs_error_pct": (sum(abs(r["ttft_error_pct"]) for r in ok) / len(ok)) if ok else None,
        "overlap_checked": sum(r["overlap_ok"] is not None for r in ok),
        "overlap_ok": sum(bool(r["overlap_ok"]) for r in ok),
        "same_plan_as_bench_sim": sum(bool(r.get("same_plan_as_bench_sim")) for r in ok),
        "live_slo_met": sum(bool(r["live_slo_met"]) for r in ok),
        "bench_sim_slo_met": sum(r.get("bench_sim_ttft_ms", 1e300) <= r["slo_ms"] for r in ok),
    }
    json.dump({"config": vars(a), "runs": rows, "summary": summary}, open(a.output, "w"), indent=2)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    sys.exit(main())
