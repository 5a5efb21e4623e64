#!/usr/bin/env bash
# A long differential campaign: rsl-kv against a real redis-server, the same seeded random
# commands to both, every reply compared (crates/rsl-kv/tests/differential.rs). One replica
# and a 3-replica cluster (through the primary and a follower), RESP2 and RESP3.
#   SEEDS (default 20) runs, each of COMMANDS (default 50000) commands, from FIRST (default 1).
# Prints the failing seed and the commands before the first difference, and exits non-zero.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v redis-server >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
fi
SEEDS=${SEEDS:-20}
COMMANDS=${COMMANDS:-50000}
FIRST=${FIRST:-1}
cargo build --release -p rsl-kv --tests --quiet
for ((i = 0; i < SEEDS; i++)); do
  seed=$((FIRST + 1000 * i))
  echo "== seed $seed: $COMMANDS commands"
  RSL_KV_DIFF_SEED=$seed RSL_KV_DIFF_COMMANDS=$COMMANDS \
    cargo test --release -p rsl-kv --test differential --quiet
done
echo "all $SEEDS seeds: no difference"
