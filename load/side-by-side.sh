#!/usr/bin/env bash
# Every scenario of docs/benchmarks.md against ours, the floor and (over WebSocket) the original driftdb-server, one
# sitting, one table: target/load/side-by-side.md (JSON lines in target/load/side-by-side.jsonl).
# Usage: load/side-by-side.sh [scenario...]   (default: fanout fanout-volatile rooms rooms-same-tick idle append;
#   also scale (CONNECTIONS) and scale-mixed (ours alone: CONNECTIONS, WT_CONNECTIONS))
#   ORIGINAL=path/to/driftdb-server (default /work/ref-driftdb/target/release/driftdb-server, see load/reference.sh;
#   empty: leave it out), TRANSPORTS (default "ws-json wt"), DURATION (default 5).
# Build first: cargo build --release --workspace
set -euo pipefail
cd "$(dirname "$0")/.."
load=target/release/driftdb-load
out=target/load
mkdir -p "$out"
duration=${DURATION:-5}
original=${ORIGINAL-/work/ref-driftdb/target/release/driftdb-server}
ours="ours=target/release/driftdb serve --port {port} --max-connects-per-ip-per-second 0 --max-messages-per-second 0 \
--max-connections-per-room 25000 --max-connections 50000 --idle-timeout-ms 600000"

run() { # transport, then the scenario and its arguments
  local transport=$1
  shift
  local servers=(--server "$ours")
  if [[ " $* " == *" --wt-connections "* ]]; then
    : # A mixed run holds WebTransport sessions, which neither the floor nor the original speaks: ours alone.
  else
    # The floor only relays: it has no store to replay appends from.
    [[ $1 != append ]] && servers+=(--server floor)
    # The original speaks WebSocket only.
    [[ -n $original && $transport != wt ]] && servers+=(--server "original=$original --port {port}")
  fi
  "$load" --transport "$transport" --duration "$duration" "${servers[@]}" "$@" >"$out/last.txt" || true
  grep '^{' "$out/last.txt" >>"$out/side-by-side.jsonl" || true
  grep '^| [a-z]' "$out/last.txt" | grep -v '^| server' | tee -a "$out/side-by-side.md" || true
}

scenarios=("${@:-fanout fanout-volatile rooms rooms-same-tick idle append}")
for scenario in ${scenarios[*]}; do
  for transport in ${TRANSPORTS:-ws-json wt}; do
    case $scenario in
      fanout) run "$transport" fanout --subscribers 50 --rate 1000 ;;
      fanout-volatile) run "$transport" fanout --subscribers 50 --rate 1000 --volatile ;;
      rooms) run "$transport" rooms --rooms 50 --clients 5 --hz 30 ;;
      rooms-same-tick) run "$transport" rooms --rooms 50 --clients 5 --hz 30 --same-tick ;;
      append) run "$transport" append --writers 4 --rate 1000 ;;
      idle) run "$transport" idle --connections 2000 --per-room 500 ;;
      scale) run "$transport" --connect-concurrency 64 --drain 10 scale --connections "${CONNECTIONS:-18000}" \
        --rooms 1000 --senders-percent 10 --hz 10 ;;
      # Both transports in the same rooms, in one run (so once, on the WebSocket transport); ten WebTransport
      # sessions per tool socket so that 18,000 + 5,000 fit the 20,000 descriptors (docs/benchmarks.md, Open files).
      scale-mixed) [[ $transport == wt ]] || run "$transport" --connect-concurrency 64 --drain 10 \
        --wt-sessions-per-endpoint 10 scale --connections "${CONNECTIONS:-18000}" \
        --wt-connections "${WT_CONNECTIONS:-5000}" --rooms 1000 --senders-percent 10 --hz 10 --reliable-percent 10 ;;
      *) echo "unknown scenario $scenario" >&2; exit 1 ;;
    esac
  done
done
