#!/usr/bin/env bash
# Runs the load scenarios of docs/benchmarks.md against a fresh release server, one server per run so that memory
# baselines are clean. Usage: load/bench.sh [scenario...]   (default: all). Results: target/load/results.{jsonl,md}
# TRANSPORTS="ws-json wt" picks transports; DURATION (seconds, default 5) and PORT (default 18080) too.
# STORAGES="memory embedded" runs each scenario on each --storage (default: memory), the embedded store on a fresh
# data directory under target/load; rows are prefixed with the storage.
# Build first: cargo build --release --workspace
set -euo pipefail
cd "$(dirname "$0")/.."
server=target/release/driftdb
load=target/release/driftdb-load
out=target/load
mkdir -p "$out"
port=${PORT:-18080}
duration=${DURATION:-5}

run() { # transport, then driftdb-load arguments after the scenario name
  local transport=$1
  shift
  rm -rf "$out/data"
  "$server" serve --port "$port" --storage "$storage" --data-dir "$out/data" \
    --max-connects-per-ip-per-second 0 --max-messages-per-second 0 --max-new-rooms-per-ip-per-second 0 \
    --max-connections-per-room 5000 --max-connections 50000 --idle-timeout-ms 600000 >"$out/server.log" 2>&1 &
  local pid=$!
  for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
  "$load" --url "http://127.0.0.1:$port" --transport "$transport" --duration "$duration" --server-pid "$pid" \
    "$@" >"$out/last.txt" || true
  grep '^{' "$out/last.txt" | sed "s/^{/{\"storage\":\"$storage\",/" >>"$out/results.jsonl" || true
  grep '^| [a-z]' "$out/last.txt" | grep -v '^| scenario' | sed "s/^| /| $storage | /" | tee -a "$out/results.md" || true
  kill "$pid"
  wait "$pid" || true
}

scenarios=("${@:-fanout rooms append idle fanout-volatile}")
for scenario in ${scenarios[*]}; do
  for transport in ${TRANSPORTS:-ws-json ws-cbor wt}; do
  for storage in ${STORAGES:-memory}; do
    case $scenario in
      fanout) run "$transport" fanout --subscribers 50 --rate 1000 ;;
      fanout-volatile) run "$transport" fanout --subscribers 50 --rate 1000 --volatile ;;
      rooms) run "$transport" rooms --rooms 50 --clients 5 --hz 30 ;;
      append) run "$transport" append --writers 4 --rate 1000 ;;
      replace) run "$transport" append --writers 4 --rate 1000 --replace ;;
      idle) run "$transport" idle --connections 2000 --per-room 500 ;;
      *) echo "unknown scenario $scenario" >&2; exit 1 ;;
    esac
  done
  done
done
