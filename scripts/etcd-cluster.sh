#!/usr/bin/env bash
# A throwaway etcd cluster on loopback, for ocni's tests against the etcd store engine.
#
#   scripts/etcd-cluster.sh start DIR [N]   starts N members (default 3) with data dirs, logs and
#                                           pids under DIR, waits until every member is healthy,
#                                           prints the store URL (etcd://127.0.0.1:P1,...) and
#                                           writes it to DIR/url
#   scripts/etcd-cluster.sh stop DIR        stops them (SIGTERM, then SIGKILL after 5 s); removes
#                                           nothing
#
# Ports are free loopback ports below the kernel's ephemeral range, so that no outgoing
# connection is ever given one of them (the tests kill and restart members on the same ports).
# Members keep etcd's defaults otherwise, fsync included: durability is what the tests check.
set -euo pipefail

usage() {
  echo "usage: $0 start DIR [N] | stop DIR" >&2
  exit 2
}

# N free loopback TCP ports, one a line: random ones below the ephemeral range that bind now.
free_ports() {
  python3 - "$1" <<'EOF'
import random, socket, sys
n = int(sys.argv[1])
try:
    low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
except OSError:
    low = 32768
held, ports = [], []
while len(ports) < n:
    port = random.randrange(10000, max(low, 10001))
    if port in ports:
        continue
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        s.close()
        continue
    held.append(s)
    ports.append(port)
for s in held:
    s.close()
print("\n".join(map(str, ports)))
EOF
}

# Stops the members whose pids are in DIR/*.pid: SIGTERM, then SIGKILL after 5 s.
stop() {
  local dir=$1 pids=() pid f
  for f in "$dir"/*.pid; do
    [ -e "$f" ] || continue
    pid=$(cat "$f")
    # Only an etcd process: a pid file left from an earlier run may name a reused pid.
    if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = etcd ]; then
      kill -TERM "$pid" 2>/dev/null && pids+=("$pid")
    fi
    rm -f "$f"
  done
  local deadline=$((SECONDS + 5))
  for pid in "${pids[@]}"; do
    while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
}

# One attempt to start N members; fails (leaving them to `stop`) when one exits or the cluster
# is not healthy within 60 s.
start_once() {
  local dir=$1 n=$2 i ports client=() peer=() initial="" endpoints="" url=""
  mapfile -t ports < <(free_ports $((2 * n)))
  for ((i = 0; i < n; i++)); do
    client[i]=${ports[2 * i]}
    peer[i]=${ports[2 * i + 1]}
    initial+="${initial:+,}m$i=http://127.0.0.1:${peer[i]}"
    endpoints+="${endpoints:+,}http://127.0.0.1:${client[i]}"
    url+="${url:+,}127.0.0.1:${client[i]}"
  done
  local token
  token="ocni-test-$(basename "$dir")-$$-$RANDOM"
  for ((i = 0; i < n; i++)); do
    rm -rf "$dir/m$i"
    etcd --name "m$i" --data-dir "$dir/m$i" \
      --listen-client-urls "http://127.0.0.1:${client[i]}" \
      --advertise-client-urls "http://127.0.0.1:${client[i]}" \
      --listen-peer-urls "http://127.0.0.1:${peer[i]}" \
      --initial-advertise-peer-urls "http://127.0.0.1:${peer[i]}" \
      --initial-cluster "$initial" --initial-cluster-state new --initial-cluster-token "$token" \
      --logger zap --log-outputs stderr \
      >>"$dir/m$i.log" 2>&1 </dev/null &
    echo $! >"$dir/m$i.pid"
  done
  local deadline=$((SECONDS + 60))
  until ETCDCTL_API=3 etcdctl --endpoints="$endpoints" --command-timeout=2s endpoint health >/dev/null 2>&1; do
    for ((i = 0; i < n; i++)); do
      if ! kill -0 "$(cat "$dir/m$i.pid")" 2>/dev/null; then
        echo "etcd member m$i exited; its log: $dir/m$i.log" >&2
        tail -n 5 "$dir/m$i.log" >&2
        return 1
      fi
    done
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "the etcd cluster was not healthy within 60 s; logs in $dir" >&2
      return 1
    fi
    sleep 0.2
  done
  echo "etcd://$url" >"$dir/url"
  echo "etcd://$url"
}

[ $# -ge 2 ] || usage
case $1 in
  start)
    dir=$2
    n=${3:-3}
    [[ $n =~ ^[1-9][0-9]*$ ]] || usage
    command -v etcd >/dev/null && command -v etcdctl >/dev/null || {
      echo "etcd and etcdctl must be on the PATH (Debian: apt-get install etcd-server etcd-client)" >&2
      exit 1
    }
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    # A port taken between choosing it and etcd binding it makes a member exit: try again on
    # other ports.
    for attempt in 1 2 3; do
      if start_once "$dir" "$n"; then exit 0; fi
      stop "$dir"
      [ "$attempt" = 3 ] || echo "starting the etcd cluster again on other ports" >&2
    done
    echo "could not start the etcd cluster" >&2
    exit 1
    ;;
  stop)
    stop "$2"
    ;;
  *) usage ;;
esac
