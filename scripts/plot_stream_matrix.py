#!/usr/bin/python3
"""Plot the streaming matrix (`kvstream bench stream` JSON, scripts/bench_stream.sh): one PNG per
link family, SLO hit ratio (cases that meet the SLO / cases) against the SLO fraction of q8's TTFT
for adaptive, cachegen and the oracle, one line style per one-way delay.

Usage: scripts/plot_stream_matrix.py out/stream/bench_stream.json -o out/stream/plots
Writes OUTDIR/<family>.png for every family in the JSON.
"""
import argparse
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

POLICIES = [("oracle", "black"), ("adaptive", "tab:blue"), ("cachegen", "tab:orange")]
STYLES = ["-", "--", ":", "-."]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bench")
    ap.add_argument("-o", "--outdir", required=True)
    a = ap.parse_args()
    j = json.load(open(a.bench))
    os.makedirs(a.outdir, exist_ok=True)
    cells = j["cells"]
    families = [f["name"] for f in j["config"]["families"]]
    delays = sorted({c["delay_ms"] for c in cells})
    for fam in families:
        fig, ax = plt.subplots(figsize=(5.5, 4))
        for di, d in enumerate(delays):
            cs = sorted((c for c in cells if c["family"] == fam and c["delay_ms"] == d), key=lambda c: c["slo_fraction"])
            if not cs:
                continue
            x = [c["slo_fraction"] for c in cs]
            for pol, colour in POLICIES:
                y = [c["hits"].get(pol, 0) / c["cases"] for c in cs]
                ax.plot(x, y, STYLES[di % len(STYLES)], color=colour, marker="o", markersize=3,
                        label="%s, %g ms" % (pol, d))
        n = max((c["cases"] for c in cells if c["family"] == fam), default=0)
        ax.set_title("%s (%d traces per cell)" % (fam, n))
        ax.set_xlabel("SLO / q8's TTFT")
        ax.set_ylabel("SLO hit ratio")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, ncol=len(delays))
        fig.tight_layout()
        path = os.path.join(a.outdir, fam + ".png")
        fig.savefig(path, dpi=120)
        plt.close(fig)
        print(path)


if __name__ == "__main__":
    sys.exit(main())
