#!/usr/bin/env python3
"""Idealised eviction simulation for the store's workloads (issue 7): no bytes, no tiers, no codec.

Reads workload JSONs (`kvstream workload gen`) and replays their turn times against a cache of K
equally sized entries, one entry per conversation (a turn's save replaces its conversation's entry,
as in `kvstream replay`). A turn with history hits if its conversation's entry is still cached.
Policies: LRU (evict least recently saved/used), FIFO (evict the conversation inserted first; a new
turn keeps its place, a re-insert after eviction is a new insertion) and OPT (Belady: evict the
entry whose next turn is furthest away, knowing the future: the upper bound the scheduler-aware
policy approximates with its look-ahead queue). Prints hit rates per capacity K, and for FIFO how
often its victim is also the least recently used entry of the same cache contents.
Usage: sim_store_policies.py [--caps 24,32,48,64] WORKLOAD.json [WORKLOAD.json ...]
"""
import argparse
import json
from collections import OrderedDict


def events(w):
    ev = []
    for s, sess in enumerate(w["sessions"]):
        for k, t in enumerate(sess["turns"]):
            ev.append((t["time_s"], s, k))
    ev.sort()
    # next turn time of each (session, turn)
    nxt = {}
    for sess_i, sess in enumerate(w["sessions"]):
        ts = [t["time_s"] for t in sess["turns"]]
        for k in range(len(ts)):
            nxt[(sess_i, k)] = ts[k + 1] if k + 1 < len(ts) else float("inf")
    return ev, nxt


def simulate(w, K, policy):
    """Returns (hit rate, fraction of evictions whose victim is also the least recently used)."""
    ev, nxt = events(w)
    cache = OrderedDict()  # session -> next-use time (OPT) / order (LRU, FIFO)
    last = {}              # session -> time of its last turn
    hits = eligible = evictions = lru_same = 0
    for t, s, k in ev:
        if k > 0:
            eligible += 1
            hits += s in cache
        if s in cache and policy == "lru":
            cache.move_to_end(s)
        cache[s] = nxt[(s, k)]  # save after the turn (FIFO/LRU: an existing key keeps its place)
        last[s] = t
        while len(cache) > K:
            if policy == "opt":
                victim = max(cache, key=lambda x: cache[x])
            else:
                victim = next(iter(cache))
            evictions += 1
            lru_same += victim == min(cache, key=lambda x: last[x])
            del cache[victim]
    return hits / max(1, eligible), lru_same / max(1, evictions)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--caps", default="24,32,48,64")
    ap.add_argument("workloads", nargs="+")
    a = ap.parse_args()
    caps = [int(c) for c in a.caps.split(",")]
    print("| workload (think time) | K entries | LRU | FIFO | FIFO - LRU | OPT | FIFO victim = LRU victim |")
    print("|---|---|---|---|---|---|---|")
    for f in a.workloads:
        w = json.load(open(f))
        o = w.get("options", {})
        dist = o.get("think_dist", "exponential")
        label = f"{dist}" + (f" sigma {o.get('think_sigma')}" if dist == "lognormal" else "")
        if o.get("turns_dist", "geometric") != "geometric":
            label += f"; turns {o['turns_dist']} sigma {o.get('turns_sigma')}"
        for K in caps:
            (lru, _), (fifo, same), (opt, _) = (simulate(w, K, p) for p in ("lru", "fifo", "opt"))
            print(f"| {label} | {K} | {100*lru:.1f}% | {100*fifo:.1f}% | {100*(fifo-lru):+.1f} | {100*opt:.1f}% "
                  f"| {100*same:.0f}% |")


if __name__ == "__main__":
    main()
