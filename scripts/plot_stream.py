#!/usr/bin/python3
"""Draw one or more kvstream fetches (recv/simulate --json results) over their trace.

Usage: scripts/plot_stream.py --trace TRACE [--scale S] [--delay-ms D] -o out.png result.json [more.json ...]

One panel per result: the trace's capacity over time (Mbit/s, 10 ms bins, shifted by the one-way
delay so it lines up with arrivals), each chunk's transfer as a bar from its first to its last
byte coloured by level (text hatched), each chunk's ready time as a tick, the SLO as a dashed red
line and the TTFT as a solid black line. A result file may also hold {"results": [...]}.
"""
import argparse
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def load_trace(path, scale):
    """Returns (times_s, bytes) delivery opportunities over one period, and the period."""
    if path.startswith("const:"):
        rate = path[6:].lower()
        mult = {"gbit": 1e9, "mbit": 1e6, "kbit": 1e3, "bit": 1.0}
        for unit, m in mult.items():
            if rate.endswith(unit):
                bps = float(rate[: -len(unit)]) * m
                break
        else:
            raise SystemExit("bad const trace " + path)
        step = 12000.0 / bps
        n = int(10.0 / step)
        return [i * step for i in range(n)], [1500.0 * scale] * n, n * step
    lines = [l.split() for l in open(path) if l.strip() and not l.startswith("#")]
    if len(lines[0]) == 1:  # Mahimahi: ms timestamps, 1500 B each
        t = [int(l[0]) / 1e3 for l in lines]
        return t, [1500.0 * scale] * len(t), max(t[-1], 1e-3)
    # Pensieve cooked: time_s, Mbit/s held until the next sample
    ts = [float(l[0]) for l in lines]
    bw = [float(l[1]) for l in lines]
    t0 = ts[0]
    ts = [x - t0 for x in ts]
    out_t, out_b = [], []
    dt = 0.001
    for i in range(len(ts)):
        end = ts[i + 1] if i + 1 < len(ts) else ts[i] + (ts[i] - ts[i - 1] if i else 1.0)
        x = ts[i]
        while x < end:
            out_t.append(x)
            out_b.append(bw[i] * 1e6 / 8 * dt * scale)
            x += dt
    return out_t, out_b, end


def capacity_series(times, nbytes, period, horizon_s, delay_s, bin_s=0.01):
    nb = int(horizon_s / bin_s) + 1
    bins = [0.0] * nb
    loop = 0
    while loop * period < horizon_s:
        for t, b in zip(times, nbytes):
            x = t + loop * period + delay_s
            if x >= horizon_s:
                break
            bins[int(x / bin_s)] += b
        loop += 1
    return [i * bin_s * 1e3 for i in range(nb)], [b * 8 / bin_s / 1e6 for b in bins]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--trace", required=True)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--delay-ms", type=float, default=0.0, help="one-way delay (shifts capacity to arrival time)")
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--title", default="")
    ap.add_argument("results", nargs="+")
    a = ap.parse_args()
    results = []
    for p in a.results:
        j = json.load(open(p))
        results.extend(j["results"] if isinstance(j, dict) and "results" in j else [j])
    horizon = max(max(r["ttft_ms"], r["slo_ms"]) for r in results) * 1.1 / 1e3
    times, nbytes, period = load_trace(a.trace, a.scale)
    cx, cy = capacity_series(times, nbytes, period, horizon, a.delay_ms / 1e3)
    levels = []
    for r in results:
        for c in r["chunks"]:
            if c["level"] not in levels:
                levels.append(c["level"])
    cmap = plt.get_cmap("tab10")
    colour = {lv: cmap(i % 10) for i, lv in enumerate(levels)}
    fig, axes = plt.subplots(len(results), 1, figsize=(10, 2.4 * len(results) + 0.6), sharex=True, squeeze=False)
    for ax, r in zip(axes[:, 0], results):
        ax.fill_between(cx, cy, step="post", color="0.85", label="trace capacity")
        ax.set_ylabel("Mbit/s")
        top = max(cy) if cy else 1.0
        ax2 = ax.twinx()
        n = len(r["chunks"])
        for c in r["chunks"]:
            y = c["index"]
            w = max(c["end_ms"] - c["start_ms"], 0.3)
            ax2.barh(y, w, left=c["start_ms"], height=0.7, color=colour[c["level"]],
                     hatch="//" if c["level"] == "text" else None, edgecolor="black", linewidth=0.3)
            if "ready_ms" in c:
                ax2.plot([c["ready_ms"]] * 2, [y - 0.4, y + 0.4], color="black", linewidth=1)
        ax2.set_ylim(-0.8, n - 0.2)
        ax2.set_ylabel("chunk")
        ax.axvline(r["slo_ms"], color="red", linestyle="--", label="SLO")
        ax.axvline(r["ttft_ms"], color="black", label="TTFT")
        q = r.get("quality", {})
        ax.set_title("%s: TTFT %.0f ms (SLO %.0f ms %s), %d bytes, top-1 %.3f" % (
            r["policy"], r["ttft_ms"], r["slo_ms"], "met" if r["slo_met"] else "MISSED", r["bytes"],
            q.get("greedy_agreement", float("nan"))), fontsize=9)
        ax.set_ylim(0, top * 1.1)
    axes[-1, 0].set_xlabel("ms since the request")
    handles = [plt.Rectangle((0, 0), 1, 1, color=colour[lv], hatch="//" if lv == "text" else None) for lv in levels]
    fig.legend(handles + [plt.Line2D([], [], color="red", linestyle="--"), plt.Line2D([], [], color="black")],
               levels + ["SLO", "TTFT"], loc="upper right", ncol=min(len(levels) + 2, 8), fontsize=8)
    if a.title:
        fig.suptitle(a.title, x=0.01, ha="left", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.savefig(a.output, dpi=110)
    print("wrote", a.output)


if __name__ == "__main__":
    sys.exit(main())
