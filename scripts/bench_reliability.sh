#!/usr/bin/env bash
# Reliability suite (issue 13), JSON out: one `kvstream send` (authentication on, 4 honest tenants
# + a hostile one) serving 8 real contexts (stories260K, TinyStories), and
#   hostile:  2400 hostile clients, >= 1000 of their connections open at once (silent, 1 byte/s,
#             oversized headers, wrong-direction frames, garbage, repeated HELLO, never reading;
#             each reconnects 1 s after the sender drops it) while 16 honest
#             authenticated receivers fetch through their own 20 Mbit/s links; every fetch
#             bit-exact against a local decode of its plan, TTFT vs unloaded rounds (alternating),
#             sender RSS against the stated bound;
#   honest:   64 concurrent receivers (8 contexts x 8 policies, 4 tenants), each on its own
#             20 Mbit/s link, against each pair's single-receiver TTFT on the same link;
#   faults:   100 cuts, 100 in-flight corruptions, 20 stalls through `relay --fault` (in process,
#             seeded offsets inside the stream): a correct cache or a clear error, never a wrong
#             cache, never past the timeouts;
#   security: TTFT on loopback and CPU per GB (sender and receiver) for --insecure, --keys and
#             --keys + TLS, side by side;
#   fuzz:     out/fuzz/fuzz.json of scripts/bench_fuzz.sh when present (FUZZ=1 runs it first).
# Writes OUT/{hostile,honest,faults,security}.json and OUT/reliability.json (all of it, with a
# pass verdict per criterion). Env: OUT (out/reliability), QUICK=1 (small counts: what ctest runs),
# RSS_BOUND (the sender RSS bound, default 256 MiB), KVSTREAM (binary; default: build it).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
if [ -z "${KVSTREAM:-}" ]; then
  "$root/scripts/setup.sh"
  KVSTREAM="$root/build/bin/kvstream"
fi
kv="$KVSTREAM"
data="${KVSTREAM_DATA:-$root/data}"
model="$data/models/stories260K/stories260K.bin"
tok="$data/models/stories260K/tok512.bin"
text="$data/text/tinystories_val.txt"
out="${OUT:-$root/out/reliability}"
rss_bound="${RSS_BOUND:-268435456}"
mkdir -p "$out"

if [ "${QUICK:-0}" = 1 ]; then
  hostile=(--hostile-connections 280 --required-open 100 --honest-receivers 4 --rounds 1)
  honest=(--receivers 8 --single-reps 1)
  faults=(--cuts 10 --corruptions 10 --stalls 2)
  security=(--ttft-reps 3 --stream-bytes 16M)
  contexts=2
else
  hostile=(--hostile-connections 2400 --required-open 1000 --honest-receivers 16 --rounds 3)
  honest=(--receivers 64 --single-reps 3)
  faults=(--cuts 100 --corruptions 100 --stalls 20)
  security=(--ttft-reps 30 --stream-bytes 256M)
  contexts=8
fi

echo "== reliability: contexts, keys, certificates"
KVSTREAM="$kv" "$root/scripts/stream_context.sh" "$root/out/stream" > /dev/null  # the codec profile (cached)
profile=$(ls "$root"/out/stream/*.kvprofile | head -n 1)
serve="$out/serve"
keys="$out/keys"
tenants=honest0,honest1,honest2,honest3
if [ ! -f "$keys" ]; then
  for t in honest0 honest1 honest2 honest3 mallory; do "$kv" keygen --keys "$keys" --tenant "$t" > /dev/null; done
fi
"$kv" bench reliability --part prepare --dir "$serve" --tenants "$tenants" --hostile-tenant mallory \
  --contexts "$contexts" --model "$model" --tokenizer "$tok" --text-file "$text" --profile "$profile"
[ -f "$out/pki/ca.pem" ] || "$root/scripts/tls_test_certs.sh" "$out/pki"

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
# start_sender NAME ARGS...: a `kvstream send` in the background; sets port and pid.
start_sender() {
  local name=$1
  shift
  : > "$out/send-$name.log"
  "$kv" send --listen 127.0.0.1:0 --quiet "$@" > "$out/send-$name.log" 2>&1 &
  pid=$!
  pids+=("$pid")
  port=""
  for _ in $(seq 300); do
    port=$(sed -n 's/.*serving .* on [^ ]*:\([0-9]*\)$/\1/p' "$out/send-$name.log")
    [ -n "$port" ] && break
    sleep 0.1
  done
  [ -n "$port" ] || { echo "bench_reliability: sender $name did not start:"; cat "$out/send-$name.log"; exit 1; }
}
# The stated bound is checked with a sender whose budgets make it meaningful: cache 64 MiB, queued
# frames 64 MiB in all (4 MiB per receiver), 2048 pending + 1024 serving connections at most.
# Timeouts are the defaults (handshake 5 s, idle 60 s, write 10 s).
limits=(--cache-bytes 64M --memory-budget-bytes 64M --max-queued-bytes 4M --max-pending 2048)
start_sender main --dir "$serve" --keys "$keys" "${limits[@]}"
main_port=$port main_pid=$pid
common=(--dir "$serve" --keys "$keys" --tenants "$tenants" --hostile-tenant mallory --model "$model")

echo "== reliability: hostile load"
"$kv" bench reliability --part hostile "${common[@]}" --connect "127.0.0.1:$main_port" --sender-pid "$main_pid" \
  --rss-bound-bytes "$rss_bound" "${hostile[@]}" -o "$out/hostile.json"
echo "== reliability: honest load"
"$kv" bench reliability --part honest "${common[@]}" --connect "127.0.0.1:$main_port" --sender-pid "$main_pid" \
  --rss-bound-bytes "$rss_bound" "${honest[@]}" -o "$out/honest.json"
echo "== reliability: faults through the relay"
"$kv" bench reliability --part faults "${common[@]}" --connect "127.0.0.1:$main_port" --sender-pid "$main_pid" \
  "${faults[@]}" -o "$out/faults.json"

echo "== reliability: what authentication and TLS cost"
start_sender insecure --dir "$serve/honest0" --insecure
ins_port=$port ins_pid=$pid
start_sender tls --dir "$serve" --keys "$keys" --tls-cert "$out/pki/sender.pem" --tls-key "$out/pki/sender.key"
tls_port=$port tls_pid=$pid
"$kv" bench reliability --part security "${common[@]}" --tls-ca "$out/pki/ca.pem" \
  --insecure-connect "127.0.0.1:$ins_port" --insecure-pid "$ins_pid" \
  --auth-connect "127.0.0.1:$main_port" --auth-pid "$main_pid" \
  --tls-connect "127.0.0.1:$tls_port" --tls-pid "$tls_pid" "${security[@]}" -o "$out/security.json"

if [ "${FUZZ:-0}" = 1 ] && [ -x "$root/scripts/bench_fuzz.sh" ]; then
  echo "== reliability: fuzzing (scripts/bench_fuzz.sh)"
  "$root/scripts/bench_fuzz.sh"
fi

/usr/bin/python3 - "$out" "$root/out/fuzz/fuzz.json" "${QUICK:-0}" <<'PY'
import json, os, sys
out, fuzz_path, quick = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
suite = {"quick": quick}
for part in ("hostile", "honest", "faults", "security"):
    with open(os.path.join(out, part + ".json")) as f:
        suite[part] = json.load(f)
if os.path.exists(fuzz_path):
    with open(fuzz_path) as f:
        suite["fuzz"] = json.load(f)
verdict = {}
for part in ("hostile", "honest", "faults"):
    for k, v in suite[part]["pass"].items():
        verdict[part + "." + k] = bool(v)
suite["pass"] = verdict
with open(os.path.join(out, "reliability.json"), "w") as f:
    json.dump(suite, f, indent=2)
h, o, fl, s = suite["hostile"], suite["honest"], suite["faults"], suite["security"]
print("hostile: %d connections (min open during fetches %d), max TTFT ratio %.2f, all exact %s, sender RSS peak %.1f MiB (bound %.0f MiB)"
      % (h["hostile_connections"], min(h["hostile_open_during_fetches"]), h["max_ttft_ratio"], h["all_exact"],
         h["sender_rss"]["peak_rss_bytes"] / 2**20, h["sender_rss"]["bound_bytes"] / 2**20))
print("honest: %d receivers, max TTFT ratio %.2f, all exact %s, sender RSS peak %.1f MiB"
      % (o["receivers"], o["max_ttft_ratio"], o["all_exact"], o["sender_rss"]["peak_rss_bytes"] / 2**20))
for k, v in fl["kinds"].items():
    print("faults %-8s %3d runs: %3d exact, %3d clear errors, %d wrong, %d hung (max %.2f s)"
          % (k, v["runs"], v["exact_cache"], v["clear_error"], v["wrong_cache"], v["hung"], v["max_wall_s"]))
for k, v in s["modes"].items():
    st = v["stream"]
    print("security %-8s TTFT %.2f ms (x%.2f), %.2f Gbit/s, sender %.2f CPU-s/GB, receiver %.2f CPU-s/GB"
          % (k, v["ttft_ms_median"], v["ttft_vs_insecure"], st["gbit_per_s"], st["sender_cpu_s_per_gb"] or 0,
             st["receiver_cpu_s_per_gb"]))
if "fuzz" in suite:
    print("fuzz: included from", fuzz_path)
failed = [k for k, v in verdict.items() if not v]
print("pass:", "all" if not failed else "FAILED " + ", ".join(failed))
PY
echo "wrote $out/reliability.json"
