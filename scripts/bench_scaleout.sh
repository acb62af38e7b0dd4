#!/usr/bin/env bash
# Scale-out on Redis Cluster (issue 16): stateless senders serving the same stored contexts from a
# local Redis Cluster (scripts/redis_cluster.sh: 3 masters + 3 replicas, append-only files), with
# `kvstream bench serve` as RECEIVERS concurrent clients that fetch every chunk and check every
# byte against the original containers (wrong_kv). Steps (STEPS, default all):
#   serve     1, 2 and 4 senders (`send --store redis://...`, layout chunk (the default), no
#             memory tier: every chunk is a Redis read) and, side by side, one sender on a local disk tier (`send --store DIR
#             --store-mem-bytes 0`: every request reads its record file) and one on a local memory
#             tier (64 MiB, holds every context); REPS rounds, configurations alternating in each;
#             CPU time of the senders and Redis nodes per run (/proc), the clients' own
#   layout    2 senders: one hash tag per chunk (spread) vs per context (co-located), fetching
#             every context and then one hot context; the Redis CPU of each node per run
#   kill      a master SIGKILLed mid-stream (2 senders), while a writer stores contexts with WAIT 1;
#             after the failover every acknowledged write is read back and compared
#   restart   the whole cluster restarted mid-stream (2 senders), then a fetch round after it
#   replay    `kvstream replay` two-tier (memory + disk) vs the same capacities with the Redis tier
#             below them, per policy in REPLAY_POLICIES at REPLAY_CAPS
# Output: $OUT_DIR/bench_scaleout.json (everything) and one JSON per run beside it.
# Env: KVSTREAM_BIN (build/bin/kvstream), KVSTREAM_DATA (data/), OUT_DIR (out/bench_scaleout),
#   RECEIVERS (48), DURATION_S (8), SENDERS ("1 2 4"), REPS (2), CONTEXTS (8), LEVEL (0 = the
#   ladder's best level), WINDOW (1 request outstanding per client), PROFILE (a .kvprofile; default
#   out/stream/stories260K.kvprofile if present, else one is built), REPLAY_SESSIONS (200),
#   REPLAY_CAPS ("1536KB:4608KB"), REPLAY_POLICIES ("lru scheduler"), STEPS.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="${KVSTREAM_BIN:-$root/build/bin/kvstream}"
data="${KVSTREAM_DATA:-$root/data}"
out="${OUT_DIR:-$root/out/bench_scaleout}"
receivers="${RECEIVERS:-48}" duration="${DURATION_S:-8}" sender_counts="${SENDERS:-1 2 4}" reps="${REPS:-2}"
ncontexts="${CONTEXTS:-8}" level="${LEVEL:-0}" window="${WINDOW:-1}"
replay_sessions="${REPLAY_SESSIONS:-200}" replay_caps="${REPLAY_CAPS:-1536KB:4608KB}"
replay_policies="${REPLAY_POLICIES:-lru scheduler}" steps="${STEPS:-serve layout kill restart replay}"
model="$data/models/stories260K/stories260K.bin" tok="$data/models/stories260K/tok512.bin"
text="$data/text/tinystories_val.txt"
cluster="$root/scripts/redis_cluster.sh"
[ -x "$bin" ] || { echo "bench_scaleout: $bin not found (build first: scripts/setup.sh)" >&2; exit 1; }
mkdir -p "$out/ctx"
rm -f "$out"/*.json "$out"/acked.txt  # results of an earlier run (the contexts in ctx/ are kept)
log() { echo "bench_scaleout: $*" >&2; }

pids=()
cleanup() {
  for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  "$cluster" stop --dir "$out/cluster" >/dev/null 2>&1 || true
}
trap cleanup EXIT

# ---- contexts: CONTEXTS passages of the evaluation half, 448 tokens each, every profile level + text
profile="${PROFILE:-}"
[ -z "$profile" ] && [ -s "$root/out/stream/stories260K.kvprofile" ] && profile="$root/out/stream/stories260K.kvprofile"
if [ -z "$profile" ]; then
  profile="$out/stories260K.kvprofile"
  [ -s "$profile" ] || "$bin" profile --model "$model" --tokenizer "$tok" --text-file "$text" -o "$profile" >&2
fi
for i in $(seq 1 "$ncontexts"); do
  [ -s "$out/ctx/c$i.kvs" ] && continue
  /usr/bin/python3 - "$text" "$out/ctx/c$i.txt" "$i" "$ncontexts" <<'PY'
import sys
t = open(sys.argv[1], encoding="utf-8").read()
i, n = int(sys.argv[3]), int(sys.argv[4])
at = t.index("\n\n", int(len(t) * (0.55 + 0.4 * (i - 1) / n))) + 2  # a story boundary in the last 45%
open(sys.argv[2], "w", encoding="utf-8").write(t[at:at + 4000])
PY
  "$bin" prefill --model "$model" --tokenizer "$tok" --text-file "$out/ctx/c$i.txt" --max-tokens 448 \
    -o "$out/ctx/c$i.safetensors" >&2
  "$bin" encode "$out/ctx/c$i.safetensors" --profile "$profile" --chunk-tokens 64 -o "$out/ctx/c$i.kvs" >&2
done

# ---- the cluster, and the contexts stored in it (two layouts) and in a local store directory
"$cluster" stop --dir "$out/cluster" --purge >/dev/null 2>&1 || true
"$cluster" start --dir "$out/cluster" --masters 3 --replicas 1 --maxmemory 512mb --aof --owner $$ > /dev/null
# every node is a seed: clients still find the cluster after any one node died
seed="$(sed 's/^/127.0.0.1:/' "$out/cluster/ports" | paste -sd, -)"
log "cluster at $seed"
rm -rf "$out/store"
keys=() verify=()
for i in $(seq 1 "$ncontexts"); do
  for layout in chunk context; do
    "$bin" store put --redis "redis://$seed/$layout?layout=$layout" --kvs "$out/ctx/c$i.kvs" --profile "$profile" > "$out/put.txt"
  done
  key="$("$bin" store put --dir "$out/store" --kvs "$out/ctx/c$i.kvs" | cut -d' ' -f1)"
  keys+=("--context" "$key")
  verify+=("--verify" "$key=$out/ctx/c$i.kvs")
done
cp "$profile" "$out/ctx/"  # the local sender serves the profile from its --dir

# start_senders N STORE [MEM]: N senders in the background (a local store's memory tier MEM bytes,
# default 0: a disk tier only); sets ports (comma-separated HOST:PORT) and spids
start_senders() {
  local n="$1" store="$2" mem="${3:-0}" i logf
  ports="" spids=()
  for i in $(seq 1 "$n"); do
    logf="$out/sender_$i.log"
    rm -f "$logf"  # (the shell truncates it only once the sender runs: an old port must not be read)
    if [[ "$store" == redis://* ]]; then
      "$bin" send --insecure --listen 127.0.0.1:0 --store "$store" --store-mem-bytes 0 --quiet > "$logf" 2>&1 &
    else
      "$bin" send --insecure --listen 127.0.0.1:0 --dir "$out/ctx" --store "$store" --store-mem-bytes "$mem" --quiet > "$logf" 2>&1 &
    fi
    spids+=($!)
    pids+=($!)
  done
  for i in $(seq 1 "$n"); do
    logf="$out/sender_$i.log"
    for _ in $(seq 200); do grep -qs " on 127.0.0.1:" "$logf" && break; sleep 0.05; done
    ports+="${ports:+,}127.0.0.1:$(grep -o ' on 127.0.0.1:[0-9]*' "$logf" | cut -d: -f2)"
  done
}
stop_senders() {
  local p
  for p in "${spids[@]}"; do kill -INT "$p" 2>/dev/null || true; done
  for p in "${spids[@]}"; do wait "$p" 2>/dev/null || true; done
}
# CPU seconds (user + system) used so far by the given processes (/proc/PID/stat fields 14, 15).
cpu_s() {
  local total=0 p t
  for p in "$@"; do
    t="$(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)"
    total=$((total + t))
  done
  awk -v t="$total" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.3f", t / hz }'
}
redis_pids() { cat "$out"/cluster/*/redis.pid 2>/dev/null || true; }
# bench NAME DURATION [extra bench serve options]: one bench serve run against $ports, with the CPU
# time the senders and the Redis nodes spent during it (NAME_cpu.json)
bench() {
  local name="$1" dur="$2" s0 r0 rp
  shift 2
  local -a n0=()
  rp="$(redis_pids)"
  s0="$(cpu_s "${spids[@]}")" r0="$(cpu_s $rp)"
  for p in $rp; do n0+=("$(cpu_s "$p")"); done
  "$bin" bench serve --connect "$ports" "${sel[@]}" "${verify[@]}" --receivers "$receivers" \
    --duration-s "$dur" --level "$level" --window "$window" "$@" -o "$out/$name.json" || true
  local nodes="" k=0
  for p in $rp; do
    nodes+="${nodes:+, }$(awk -v a="$(cpu_s "$p")" -v b="${n0[$k]}" 'BEGIN{print a-b}')"
    k=$((k + 1))
  done
  echo "{\"sender_cpu_s\": $(awk -v a="$(cpu_s "${spids[@]}")" -v b="$s0" 'BEGIN{print a-b}'), \"redis_cpu_s\": $(awk -v a="$(cpu_s $rp)" -v b="$r0" 'BEGIN{print a-b}'), \"redis_node_cpu_s\": [$nodes], \"loadavg\": \"$(cut -d' ' -f1-3 /proc/loadavg)\"}" > "$out/${name}_cpu.json"
  log "$name: $(/usr/bin/python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(round(j["chunks_per_s"]), "chunks/s p50", round(j["latency_ms"]["p50"], 2), "p99", round(j["latency_ms"]["p99"], 2), "ms wrong_kv", j["wrong_kv"], "failed", j["sessions_failed"], "text", j["text_fallbacks"])' "$out/$name.json")"
}

runs=()
sel=("${keys[@]}")  # the contexts a bench run fetches (round robin)
if [[ " $steps " == *" serve "* ]]; then
  for rep in $(seq 1 "$reps"); do
    start_senders 1 "$out/store"; bench "serve_localdisk_r$rep" "$duration"; stop_senders; runs+=("serve_localdisk_r$rep")
    start_senders 1 "$out/store" 64MB; bench "serve_localmem_r$rep" "$duration"; stop_senders; runs+=("serve_localmem_r$rep")
    for n in $sender_counts; do
      start_senders "$n" "redis://$seed/chunk"; bench "serve_redis${n}_r$rep" "$duration"; stop_senders
      runs+=("serve_redis${n}_r$rep")
    done
  done
fi
if [[ " $steps " == *" layout "* ]]; then
  # every context, then one hot context that every client fetches
  for rep in $(seq 1 "$reps"); do
    for layout in chunk context; do
      start_senders 2 "redis://$seed/$layout"; bench "layout_${layout}_r$rep" "$duration"; stop_senders
      sel=("${keys[@]:0:2}")
      start_senders 2 "redis://$seed/$layout"; bench "layout_hot_${layout}_r$rep" "$duration"; stop_senders
      sel=("${keys[@]}")
      runs+=("layout_${layout}_r$rep" "layout_hot_${layout}_r$rep")
    done
  done
fi

if [[ " $steps " == *" kill "* ]]; then
  # A writer stores contexts (each in a tenant of its own: distinct keys) with WAIT 1 until told
  # to stop; every put that returned is an acknowledged write.
  : > "$out/acked.txt"
  rm -f "$out/writer.stop"
  (
    j=0
    while [ ! -f "$out/writer.stop" ]; do
      i=$((j % ncontexts + 1))
      if line="$("$bin" store put --redis "redis://$seed/acked-$j?wait=1" --kvs "$out/ctx/c$i.kvs" 2>/dev/null)"; then
        echo "acked-$j ${line%% *} $i" >> "$out/acked.txt"
      fi
      j=$((j + 1))
    done
  ) &
  writer=$!
  pids+=($writer)
  start_senders 2 "redis://$seed/chunk"
  kill_dur=$((duration + 6))
  ( sleep 3; meta="kvs:{chunk:${keys[1]}}:meta"; slot="$(redis-cli -p "$(head -1 "$out/cluster/ports")" cluster keyslot "$meta")";
    "$cluster" kill-master --dir "$out/cluster" --slot "$slot" > "$out/killed.txt" ) &
  killer=$!
  bench "failover_kill" "$kill_dur"
  wait "$killer" || true
  touch "$out/writer.stop"
  wait "$writer" || true
  stop_senders
  cat "$out"/sender_[12].log | grep "send: redis:" > "$out/failover_kill_senders.txt" || true
  "$cluster" wait --dir "$out/cluster"
  acked=0 lost=0
  while read -r tenant key i; do
    acked=$((acked + 1))
    if ! "$bin" store get --redis "redis://$seed/$tenant" --key "$key" -o "$out/check.kvs" >/dev/null 2>&1 ||
       ! cmp -s "$out/check.kvs" "$out/ctx/c$i.kvs"; then
      lost=$((lost + 1))
    fi
  done < "$out/acked.txt"
  echo "{\"acknowledged\": $acked, \"lost\": $lost, \"killed_port\": $(cat "$out/killed.txt")}" > "$out/failover_acked.json"
  log "kill: $acked acknowledged writes, $lost lost (master $(cat "$out/killed.txt") killed)"
  "$cluster" revive --dir "$out/cluster"
  "$cluster" wait --dir "$out/cluster"
  runs+=("failover_kill")
fi
if [[ " $steps " == *" restart "* ]]; then
  start_senders 2 "redis://$seed/chunk"
  ( sleep 3; s=$SECONDS; "$cluster" restart --dir "$out/cluster" >/dev/null; echo $((SECONDS - s)) > "$out/restart_s.txt" ) &
  restarter=$!
  bench "failover_restart" $((duration + 6))
  wait "$restarter" || true
  bench "failover_after_restart" 3
  stop_senders
  cat "$out"/sender_[12].log | grep "send: redis:" > "$out/failover_restart_senders.txt" || true
  runs+=("failover_restart" "failover_after_restart")
fi

replays=()
if [[ " $steps " == *" replay "* ]]; then
  "$bin" workload gen --sessions "$replay_sessions" --seed 1 --text-file "$text" -o "$out/workload.json" >&2
  for cap in $replay_caps; do
    mem="${cap%%:*}" disk="${cap##*:}"
    for policy in $replay_policies; do
      for tiers in two three; do
        f="replay_${policy}_${mem}_${disk}_${tiers}"
        extra=()
        [ "$tiers" = three ] && extra=(--redis "redis://$seed/replay-$policy-$mem-$disk-$$")
        "$bin" replay --workload "$out/workload.json" --policy "$policy" --mem-bytes "$mem" --disk-bytes "$disk" \
          --profile "$profile" --model "$model" --tokenizer "$tok" "${extra[@]}" --json > "$out/$f.json"
        log "$f: $(/usr/bin/python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print("hit", round(j["hit_rate"], 3), "ttft", round(j["mean_ttft_ms"], 2), "ms vs recompute", round(j["recompute_mean_ttft_ms"], 2))' "$out/$f.json")"
        replays+=("$f")
      done
    done
  done
fi

/usr/bin/python3 - "$out" "$receivers" "$duration" "$level" "$window" "$ncontexts" "${#runs[@]}" "${runs[@]}" "${replays[@]}" <<'PY'
import json, os, sys
out, receivers, duration, level, window, ncontexts = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
nruns = int(sys.argv[7]); runs, replays = sys.argv[8:8 + nruns], sys.argv[8 + nruns:]
def load(n):
    j = json.load(open(os.path.join(out, n + ".json")))
    if os.path.exists(os.path.join(out, n + "_cpu.json")):
        j["cpu"] = json.load(open(os.path.join(out, n + "_cpu.json")))
    return j
res = {"config": {"receivers": receivers, "duration_s": duration, "level": level, "window": window,
                  "contexts": ncontexts, "cluster": "3 masters + 3 replicas, loopback, appendonly",
                  "cpus": os.cpu_count()}, "runs": {r: load(r) for r in runs}, "replay": {r: load(r) for r in replays}}
if os.path.exists(os.path.join(out, "failover_acked.json")):
    res["failover_acked"] = load("failover_acked")
# Scaling: mean over rounds per configuration; efficiency = throughput(N) / (N x throughput(1)).
groups = {}
for r in runs:
    if r.startswith("serve_") or r.startswith("layout_"):
        groups.setdefault(r.rsplit("_r", 1)[0], []).append(res["runs"][r])
summary = {}
for g, rs in groups.items():
    mean = lambda f: sum(f(x) for x in rs) / len(rs)
    summary[g] = {"rounds": len(rs), "chunks_per_s": mean(lambda x: x["chunks_per_s"]),
                  "mbytes_per_s": mean(lambda x: x["mbytes_per_s"]),
                  "p50_ms": mean(lambda x: x["latency_ms"]["p50"]), "p99_ms": mean(lambda x: x["latency_ms"]["p99"]),
                  "wrong_kv": sum(x["wrong_kv"] for x in rs), "sessions_failed": sum(x["sessions_failed"] for x in rs),
                  "text_fallbacks": sum(x["text_fallbacks"] for x in rs),
                  # CPU per 1000 chunks served: senders, Redis nodes, the benchmark's clients
                  "sender_cpu_ms_per_kchunk": mean(lambda x: 1e6 * x["cpu"]["sender_cpu_s"] / max(1, x["chunks"])),
                  "redis_cpu_ms_per_kchunk": mean(lambda x: 1e6 * x["cpu"]["redis_cpu_s"] / max(1, x["chunks"])),
                  "client_cpu_ms_per_kchunk": mean(lambda x: 1e6 * x["client_cpu_s"] / max(1, x["chunks"])),
                  "cores_busy": mean(lambda x: (x["cpu"]["sender_cpu_s"] + x["cpu"]["redis_cpu_s"] + x["client_cpu_s"]) / x["wall_s"]),
                  # the busiest master's share of the Redis CPU (1/3 = even over 3 masters)
                  "busiest_node_share": mean(lambda x: max(x["cpu"]["redis_node_cpu_s"]) / max(1e-9, sum(x["cpu"]["redis_node_cpu_s"])))}
if "serve_redis1" in summary:
    one = summary["serve_redis1"]["chunks_per_s"]
    for g, s in summary.items():
        if g.startswith("serve_redis"):
            n = int(g[len("serve_redis"):])
            s["scaling_efficiency"] = s["chunks_per_s"] / (n * one) if one > 0 else 0
res["summary"] = summary
json.dump(res, open(os.path.join(out, "bench_scaleout.json"), "w"), indent=2)
print("| configuration | chunks/s | MB/s | p50 ms | p99 ms | efficiency | CPU ms / 1000 chunks: senders, Redis, clients | cores busy | busiest Redis node | wrong_kv | failed sessions | text fallbacks |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for g, s in summary.items():
    eff = f"{s['scaling_efficiency']:.2f}" if "scaling_efficiency" in s else "-"
    print(f"| {g} | {s['chunks_per_s']:.0f} | {s['mbytes_per_s']:.1f} | {s['p50_ms']:.2f} | {s['p99_ms']:.2f} | {eff} | "
          f"{s['sender_cpu_ms_per_kchunk']:.0f}, {s['redis_cpu_ms_per_kchunk']:.0f}, {s['client_cpu_ms_per_kchunk']:.0f} | "
          f"{s['cores_busy']:.2f} | {s['busiest_node_share']:.2f} | {s['wrong_kv']} | {s['sessions_failed']} | {s['text_fallbacks']} |")
for r in runs:
    if r.startswith("failover"):
        j = res["runs"][r]
        print(f"{r}: sessions ok {j['sessions_ok']} failed {j['sessions_failed']}, chunks {j['chunks']} "
              f"(text fallbacks {j['text_fallbacks']}), wrong_kv {j['wrong_kv']}, p99 {j['latency_ms']['p99']:.1f} ms")
if "failover_acked" in res:
    print("acknowledged writes:", res["failover_acked"])
for r in replays:
    j = res["replay"][r]
    print(f"{r}: hit {j['hit_rate']:.3f} (mem {j['hit_rate_mem']:.3f} disk {j['hit_rate_disk']:.3f} shared {j['hit_rate_shared']:.3f}) "
          f"ttft {j['mean_ttft_ms']:.2f} ms (serial {j['mean_ttft_serial_ms']:.2f}) recompute {j['recompute_mean_ttft_ms']:.2f}")
PY
