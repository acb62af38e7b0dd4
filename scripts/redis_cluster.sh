#!/usr/bin/env bash
# A local Redis Cluster from Debian's redis-server (7.0), on loopback ports, for kvstream's
# shared KV store (store/redis_*.h): tests, benchmarks and demos start and stop it themselves.
#
#   redis_cluster.sh start   [--dir DIR] [--masters 3] [--replicas 1] [--port BASE]
#                            [--node-timeout-ms 1000] [--maxmemory 256mb]
#                            [--maxmemory-policy allkeys-lru] [--aof] [--owner PID]
#       Starts masters * (1 + replicas) nodes (ports BASE, BASE+1, ...; BASE 0 = free ports picked
#       here; cluster bus ports likewise), joins them with `redis-cli --cluster create`, waits until
#       every node reports cluster_state:ok and every replica is in sync, and prints the seed
#       address HOST:PORT (the first master) as the last line of stdout. With --owner, a watcher
#       stops the cluster and deletes DIR when process PID exits (so a crashed test leaves nothing
#       running). --aof turns on the append-only file (appendfsync everysec) so that `restart`
#       keeps the data; without it nodes keep nothing on disk.
#   redis_cluster.sh stop    [--dir DIR] [--purge]     SIGTERM every node (SIGKILL after 5 s);
#                                                      --purge deletes DIR afterwards
#   redis_cluster.sh restart [--dir DIR]               stop every node, start them again, wait
#   redis_cluster.sh kill-master [--dir DIR] [--slot N]  SIGKILL the master serving slot N
#                                                      (default 0); prints its port
#   redis_cluster.sh revive  [--dir DIR]               start every node that is not running
#                                                      (a killed master rejoins as a replica)
#   redis_cluster.sh wait    [--dir DIR] [--timeout-s 30]  until the cluster is ok again
#   redis_cluster.sh seed    [--dir DIR]               prints HOST:PORT of a live master
#
# Cluster settings: cluster-require-full-coverage no (slots of a failed master fail, the others
# keep serving), cluster-node-timeout as given (failure detection; a replica is promoted about
# one to two timeouts after its master dies), protected mode off (loopback only).
# DIR defaults to out/redis-cluster; it holds one directory per node (config, log, pid, data).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
self="$root/scripts/redis_cluster.sh"
cmd="${1:-}"
[ -n "$cmd" ] && shift
dir="$root/out/redis-cluster"
masters=3 replicas=1 base=0 node_timeout=1000 maxmemory=256mb policy=allkeys-lru aof=0 owner=""
slot=0 timeout_s=30 purge=0
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) dir="$2"; shift 2 ;;
    --masters) masters="$2"; shift 2 ;;
    --replicas) replicas="$2"; shift 2 ;;
    --port) base="$2"; shift 2 ;;
    --node-timeout-ms) node_timeout="$2"; shift 2 ;;
    --maxmemory) maxmemory="$2"; shift 2 ;;
    --maxmemory-policy) policy="$2"; shift 2 ;;
    --aof) aof=1; shift ;;
    --owner) owner="$2"; shift 2 ;;
    --slot) slot="$2"; shift 2 ;;
    --timeout-s) timeout_s="$2"; shift 2 ;;
    --purge) purge=1; shift ;;
    *) echo "redis_cluster: unknown option $1" >&2; exit 2 ;;
  esac
done
dir="$(realpath -m "$dir")"  # redis-server changes into its data dir: every path must be absolute
log() { echo "redis_cluster: $*" >&2; }
die() { log "$*"; exit 1; }
command -v redis-server >/dev/null || die "redis-server not found (scripts/setup.sh installs redis-server)"
command -v redis-cli >/dev/null || die "redis-cli not found (scripts/setup.sh installs redis-tools)"

node_ports() {  # ports of the nodes under DIR, in creation order
  [ -f "$dir/ports" ] || die "no cluster in $dir (start one first)"
  cat "$dir/ports"
}
node_pid() { cat "$dir/$1/redis.pid" 2>/dev/null || true; }
alive() { local p; p="$(node_pid "$1")"; [ -n "$p" ] && kill -0 "$p" 2>/dev/null; }
cli() { local port="$1"; shift; redis-cli -h 127.0.0.1 -p "$port" --no-auth-warning "$@" 2>/dev/null; }

free_ports() {  # N distinct free TCP ports on 127.0.0.1
  python3 - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

try_start_node() {  # start the node in DIR/PORT from its config; fails if it did not come up
  local port="$1"
  rm -f "$dir/$port/redis.pid"
  redis-server "$dir/$port/redis.conf" >/dev/null || return 1
  for _ in $(seq 100); do
    # our node answers (not another server that took the port: ours writes its pid file only
    # once it listens, and exits when a port is taken)
    alive "$port" && [ "$(cli "$port" ping)" = PONG ] && return 0
    sleep 0.05
  done
  return 1
}
start_node() { try_start_node "$1" || die "node $1 did not start (see $dir/$1/redis.log)"; }

write_conf() {  # port bus_port
  local port="$1" bus="$2" d="$dir/$1"
  mkdir -p "$d"
  cat > "$d/redis.conf" <<EOF
port $port
bind 127.0.0.1
protected-mode no
daemonize yes
dir $d
pidfile $d/redis.pid
logfile $d/redis.log
cluster-enabled yes
cluster-config-file nodes.conf
cluster-port $bus
cluster-node-timeout $node_timeout
cluster-require-full-coverage no
save ""
appendonly $([ "$aof" = 1 ] && echo yes || echo no)
appendfsync everysec
repl-diskless-sync-delay 0
maxmemory $maxmemory
maxmemory-policy $policy
EOF
}

cluster_ok() {  # every live node says ok and a live master sees every slot served
  local p n=0 info
  for p in $(node_ports); do
    alive "$p" || continue
    info="$(cli "$p" cluster info)"
    [[ "$info" == *"cluster_state:ok"* ]] || return 1
    n=$((n + 1))
  done
  [ "$n" -gt 0 ] || return 1
  local s
  s="$(seed_port)" || return 1
  info="$(cli "$s" cluster info)"
  [[ "$info" == *"cluster_slots_ok:16384"* ]]
}

replicas_synced() {
  local p info
  for p in $(node_ports); do
    alive "$p" || continue
    info="$(cli "$p" info replication)"
    if [[ "$info" == *"role:slave"* ]]; then
      [[ "$info" == *"master_link_status:up"* && "$info" == *"master_sync_in_progress:0"* ]] || return 1
    fi
  done
}

wait_ok() {
  local deadline=$((SECONDS + timeout_s))
  until cluster_ok && replicas_synced; do
    [ $SECONDS -lt $deadline ] || die "cluster in $dir not ok after ${timeout_s} s"
    sleep 0.1
  done
}

seed_port() {  # a live master
  local p info
  for p in $(node_ports); do
    alive "$p" || continue
    info="$(cli "$p" info replication)"
    if [[ "$info" == *"role:master"* ]]; then echo "$p"; return 0; fi
  done
  return 1
}

stop_all() {
  local p pid
  [ -f "$dir/ports" ] || return 0
  for p in $(node_ports); do
    pid="$(node_pid "$p")"
    [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null || true
  done
  for p in $(node_ports); do
    pid="$(node_pid "$p")"
    [ -n "$pid" ] || continue
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    kill -KILL "$pid" 2>/dev/null || true
  done
}

case "$cmd" in
  start)
    [ -f "$dir/ports" ] && alive "$(head -1 "$dir/ports" | cut -d' ' -f1)" && die "a cluster already runs in $dir"
    rm -rf "$dir"
    mkdir -p "$dir"
    n=$((masters * (1 + replicas)))
    # Free ports are picked, released, then bound by redis-server: another process (a test
    # running in parallel) may take one in between, so a start whose node fails retries on
    # fresh ports (fixed ports with --port fail at once).
    for attempt in 1 2 3 4 5; do
      if [ "$base" = 0 ]; then
        read -r -a all <<< "$(free_ports $((2 * n)))"
        ports=("${all[@]:0:n}")
        buses=("${all[@]:n}")
      else
        ports=() buses=()
        for i in $(seq 0 $((n - 1))); do ports+=($((base + i))); buses+=($((base + 10000 + i))); done
      fi
      echo "${ports[*]}" | tr ' ' '\n' > "$dir/ports"
      for i in "${!ports[@]}"; do write_conf "${ports[$i]}" "${buses[$i]}"; done
      started=1
      for p in "${ports[@]}"; do try_start_node "$p" || { started=0; break; }; done
      [ "$started" = 1 ] && break
      log "a node did not start (port taken?): $(tail -2 "$dir/$p/redis.log" 2>/dev/null | tr '\n' ' ')"
      stop_all
      [ "$base" = 0 ] && [ "$attempt" -lt 5 ] || die "node $p did not start (see $dir/$p/redis.log)"
      rm -rf "${dir:?}"/*
    done
    if [ -n "$owner" ]; then  # stop the cluster and delete DIR once the owner is gone
      nohup setsid bash -c "while kill -0 $owner 2>/dev/null; do sleep 0.5; done; exec '$self' stop --dir '$dir' --purge" \
        >/dev/null 2>&1 < /dev/null &
    fi
    addrs=()
    for p in "${ports[@]}"; do addrs+=("127.0.0.1:$p"); done
    redis-cli --cluster create "${addrs[@]}" --cluster-replicas "$replicas" --cluster-yes > "$dir/create.log" 2>&1 ||
      { cat "$dir/create.log" >&2; die "redis-cli --cluster create failed"; }
    wait_ok
    log "cluster of $masters masters x $((1 + replicas)) nodes up in $dir"
    echo "127.0.0.1:${ports[0]}"
    ;;
  stop)
    stop_all
    [ "$purge" = 1 ] && rm -rf "$dir"
    true
    ;;
  restart)
    stop_all
    for p in $(node_ports); do start_node "$p"; done
    wait_ok
    log "cluster in $dir restarted"
    ;;
  kill-master)
    s="$(seed_port)" || die "no live master in $dir"
    # CLUSTER SLOTS: ranges "start end host port id ..." per line in redis-cli's raw output
    port="$(cli "$s" cluster nodes | awk -v slot="$slot" '
      $3 ~ /master/ && $3 !~ /fail/ { for (i = 9; i <= NF; i++) { n = split($i, r, "-");
        lo = r[1]; hi = (n == 2) ? r[2] : r[1]; if (slot >= lo && slot <= hi) { split($2, a, "[:@]"); print a[2]; exit } } }')"
    [ -n "$port" ] || die "no master serves slot $slot"
    kill -KILL "$(node_pid "$port")"
    log "killed master $port (slot $slot)"
    echo "$port"
    ;;
  revive)
    for p in $(node_ports); do alive "$p" || start_node "$p"; done
    ;;
  wait)
    wait_ok
    ;;
  seed)
    echo "127.0.0.1:$(seed_port || die "no live master in $dir")"
    ;;
  *)
    sed -n '2,30p' "$0" >&2
    exit 2
    ;;
esac
