#!/usr/bin/env bash
# One iperf3 transfer through `kvstream relay`: a client nobody here wrote checks the relay.
#   iperf3 client --> kvstream relay (shapes by TRACE) --> iperf3 server (-s -1, one test)
# The relay shapes the bytes that flow from the server it connects to towards the client (the
# direction a KV cache flows, sender -> receiver); `iperf3 -R` makes the server send, so its
# bytes take the shaped direction (DIRECTION=down, the default). DIRECTION=up measures the other,
# unshaped direction (only delayed). Prints one JSON object:
#   achieved_mbps  iperf3's own receiver-side goodput (end.sum_received)
#   capacity_mbps  the trace's capacity over the same window of link time, from the relay's
#                  per-second capacity (trace t = 0 is the relay's first connection, iperf3's
#                  control connection; the window starts when the data connection's first byte
#                  arrives at the client and lasts iperf3's measured seconds; partial seconds are
#                  weighted by their overlap)
#   ratio          achieved / capacity; plus iperf3's sender-side figure and the relay's counts.
# Usage: scripts/iperf3_relay.sh TRACE [SECONDS]   (TRACE: a trace file or const:<rate>)
# Env: DELAY_MS (one-way, default 5), DIRECTION (down | up), QUEUE_BYTES (relay queue, its default
# if unset), KVSTREAM (binary, default build/bin/kvstream). Needs iperf3 (scripts/setup.sh).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
kv="${KVSTREAM:-$root/build/bin/kvstream}"
trace="$1"
seconds="${2:-10}"
delay="${DELAY_MS:-5}"
direction="${DIRECTION:-down}"
command -v iperf3 >/dev/null || { echo "iperf3_relay: iperf3 is not installed (scripts/setup.sh installs it)" >&2; exit 2; }
case "$direction" in down) reverse=(-R) ;; up) reverse=() ;; *) echo "iperf3_relay: DIRECTION must be down or up" >&2; exit 2 ;; esac
queue=()
[ -n "${QUEUE_BYTES:-}" ] && queue=(--queue-bytes "$QUEUE_BYTES")

tmp="$(mktemp -d)"
server_pid=""
relay_pid=""
cleanup() {
  [ -n "$relay_pid" ] && kill "$relay_pid" 2>/dev/null || true
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

wait_for() {  # wait_for FILE PATTERN: up to 10 s for PATTERN to appear in FILE
  for _ in $(seq 100); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "iperf3_relay: timed out waiting for '$2' in $1:" >&2
  cat "$1" >&2
  return 1
}

# A free port for the server (the kernel picks it; iperf3 binds it right after).
sport=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
iperf3 -s -1 --forceflush -B 127.0.0.1 -p "$sport" > "$tmp/server.log" 2>&1 &
server_pid=$!
wait_for "$tmp/server.log" "listening"

"$kv" relay --trace "$trace" --listen 127.0.0.1:0 --connect "127.0.0.1:$sport" --delay-ms "$delay" \
  "${queue[@]}" --stats-json "$tmp/relay.json" > "$tmp/relay.log" 2>&1 &
relay_pid=$!
wait_for "$tmp/relay.log" "listening on"
rport=$(sed -n 's/.*listening on [^ ]*:\([0-9]*\) .*/\1/p' "$tmp/relay.log")

iperf3 -c 127.0.0.1 -p "$rport" "${reverse[@]}" -t "$seconds" -J > "$tmp/client.json" || {
  echo "iperf3_relay: iperf3 failed:" >&2; cat "$tmp/client.json" >&2; exit 1; }
kill -TERM "$relay_pid"
wait "$relay_pid" || true
relay_pid=""
wait "$server_pid" 2>/dev/null || true
server_pid=""

/usr/bin/python3 - "$tmp/client.json" "$tmp/relay.json" "$trace" "$seconds" "$delay" "$direction" <<'PY'
import json, sys
client, relay = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
trace, seconds, delay_ms, direction = sys.argv[3], float(sys.argv[4]), float(sys.argv[5]), sys.argv[6]
end = client["end"]
received, sent = end["sum_received"], end["sum_sent"]
# The data connection: the one that carried the most bytes in the measured direction.
key = "bytes_down" if direction == "down" else "bytes_up"
data = max(relay["per_connection"], key=lambda c: c[key])
start = data["first_up_byte_s"] + delay_ms / 1e3 if direction == "down" else data["opened_s"]
stop = start + received["seconds"]
cap_bits = 0.0
for s in relay["per_second"]:
    overlap = max(0.0, min(stop, s["second"] + 1) - max(start, s["second"]))
    cap_bits += s["capacity_mbps"] * 1e6 * overlap
capacity = cap_bits / (stop - start) / 1e6
achieved = received["bits_per_second"] / 1e6
print(json.dumps({
    "trace": trace, "direction": direction, "shaped": direction == "down",
    "iperf3_args": ("-R " if direction == "down" else "") + "-t %g -J" % seconds,
    "delay_ms": delay_ms, "queue_bytes": relay["queue_bytes"], "seconds": received["seconds"],
    "window_s": [round(start, 4), round(stop, 4)],
    "achieved_mbps": achieved, "capacity_mbps": capacity, "ratio": achieved / capacity,
    "iperf3_sender_mbps": sent["bits_per_second"] / 1e6, "iperf3_received_bytes": received["bytes"],
    "relay_data_connection_bytes": data[key], "retransmits": sent.get("retransmits"),
    "intervals_mbps": [round(i["sum"]["bits_per_second"] / 1e6, 3) for i in client["intervals"]],
}))
PY
