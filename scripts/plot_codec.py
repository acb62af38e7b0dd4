#!/usr/bin/python3
"""Size/quality front of the codec: ppl change and top-1 agreement vs bits/value, from the JSON of
`kvstream eval --json` (and optionally the profile's candidate grid).
Usage: /usr/bin/python3 scripts/plot_codec.py eval_codec.json [grid.json] -o docs/codec_front.png"""
import argparse
import json

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

ap = argparse.ArgumentParser()
ap.add_argument("eval_json")
ap.add_argument("grid_json", nargs="?", help="candidate grid (profile provenance) to draw as the front")
ap.add_argument("-o", "--output", default="docs/codec_front.png")
a = ap.parse_args()
ev = json.load(open(a.eval_json))
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
if a.grid_json:
    grid = json.load(open(a.grid_json))
    xs = [g["bits_per_value"] for g in grid]
    ax1.scatter(xs, [abs(g["ppl_delta_pct"]) for g in grid], s=10, c="0.7", label="profile candidates (selection set)")
    ax2.scatter(xs, [g["greedy_agreement"] for g in grid], s=10, c="0.7", label="profile candidates (selection set)")
for e in ev["entries"]:
    if e["name"] in ("text", "fp16", "zstd-fp16"):
        continue
    lvl = e["kind"] == "level"
    kw = dict(marker="o" if lvl else "s", color="C0" if lvl else "C3", zorder=3)
    y1 = max(abs(e["ppl_delta_pct"]), 1e-3)
    ax1.scatter(e["bits_per_value"], y1, **kw)
    ax1.annotate(e["name"], (e["bits_per_value"], y1), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax2.scatter(e["bits_per_value"], e["greedy_agreement"], **kw)
    ax2.annotate(e["name"], (e["bits_per_value"], e["greedy_agreement"]), textcoords="offset points",
                 xytext=(4, -10), fontsize=8)
ax1.set_yscale("log")
ax1.axhline(1.0, ls="--", c="0.5", lw=0.8)
ax1.axhline(0.5, ls=":", c="0.5", lw=0.8)
ax1.set_xlabel("bits per K/V value (side info included)")
ax1.set_ylabel("|perplexity change| %  (log)")
ax2.axhline(0.95, ls="--", c="0.5", lw=0.8)
ax2.axhline(0.99, ls=":", c="0.5", lw=0.8)
ax2.set_xlabel("bits per K/V value (side info included)")
ax2.set_ylabel("top-1 agreement")
ax2.set_ylim(0.8, 1.002)
for ax in (ax1, ax2):
    ax.grid(alpha=0.3)
ax1.set_title(f"stories260K, {ev['contexts']} held-out contexts: levels (o) vs baselines (s)", fontsize=9)
if a.grid_json:
    ax2.legend(fontsize=8, loc="lower right")
fig.tight_layout()
fig.savefig(a.output, dpi=120)
print("wrote", a.output)
