#!/usr/bin/env bash
# Builds the original DriftDB server (drifting-in-space/driftdb, the reference the wire protocol follows) for
# side-by-side load runs. Usage: load/reference.sh CHECKOUT
#   CHECKOUT: a checkout of https://github.com/drifting-in-space/driftdb (or a `git archive` of one); it is built in
#   place with cargo (crates.io must be reachable) and the binary path is printed last.
# Then: driftdb-load --server-cmd "CHECKOUT/target/release/driftdb-server --port {port}" ... (docs/benchmarks.md).
set -euo pipefail
checkout=${1:?usage: load/reference.sh CHECKOUT}
test -f "$checkout/driftdb-server/Cargo.toml" || { echo "$checkout is not a driftdb checkout" >&2; exit 1; }
# Its own Cargo.lock pins the versions it was released with; --locked keeps them.
(cd "$checkout" && cargo build --release --locked -p driftdb-server)
echo "$checkout/target/release/driftdb-server"
