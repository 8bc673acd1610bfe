#!/usr/bin/env bash
# Startup and footprint of a server: binary size, cold start to serving (exec until /healthz answers; for a server
# without /healthz, until POST /new answers), RSS at rest one second later. Usage: load/footprint.sh NAME BINARY [ARGS]
# with {port} in ARGS replaced by a free port, e.g.
#   load/footprint.sh ours target/release/driftdb serve --port {port}
#   load/footprint.sh original /work/ref-driftdb/target/release/driftdb-server --port {port}
set -euo pipefail
name=$1 binary=$2
shift 2
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
args=("${@//\{port\}/$port}")
size=$(stat -c %s "$binary")
start=$(date +%s%N)
"$binary" "${args[@]}" >/dev/null 2>&1 &
pid=$!
until curl -sf -o /dev/null "http://127.0.0.1:$port/healthz" || curl -sf -o /dev/null -X POST "http://127.0.0.1:$port/new"; do
  kill -0 "$pid" 2>/dev/null || { echo "$name exited" >&2; exit 1; }
  sleep 0.005
done
ready=$(( ($(date +%s%N) - start) / 1000000 ))
sleep 1
rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
kill "$pid"
wait "$pid" 2>/dev/null || true
echo "| $name | $(( size / 1024 )) KiB | $ready ms | $rss KiB |"
