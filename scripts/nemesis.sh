#!/usr/bin/env bash
# The real-process nemesis suite (docs/testing.md, "Real-process nemesis"): three `rsl-kv run`
# replicas, each in its own network namespace on its own small filesystem; concurrent clients;
# faults drawn from a seed (kill -9, SIGSTOP, partitions, full disks, restarts, the largest
# values); the history checked for linearizability and lost acknowledged writes. Needs root
# (network namespaces, tmpfs mounts) and iproute2.
#
#   scripts/nemesis.sh --minutes 30              # a long run (use `nice -n 10` on a shared machine)
#   scripts/nemesis.sh --seconds 90 --seed 7     # a short one; any `rsl-nemesis run` flag works
#   scripts/nemesis.sh check /tmp/rsl-nemesis-…  # check a saved run again
#   scripts/nemesis.sh cleanup                   # remove what a crashed run left behind
#
# PROFILE=test builds with the test profile (as scripts/test.sh does, reusing its build)
# instead of release. Exit status: 0 passed, 1 unsafe (a violation, a lost write, an anomaly,
# a planted lie missed), 2 inconclusive or could not run, 130 interrupted.
set -euo pipefail
cd "$(dirname "$0")/.."
profile="${PROFILE:-release}"
cargo build --locked --quiet --profile "$profile" -p rsl-kv -p rsl-nemesis
target="${CARGO_TARGET_DIR:-target}"
case "$profile" in
  dev | test) bin="$target/debug" ;;
  *) bin="$target/$profile" ;;
esac
case "${1:-}" in
  check | cleanup) exec "$bin/rsl-nemesis" "$@" ;;
  *) exec "$bin/rsl-nemesis" run --exe "$bin/rsl-kv" "$@" ;;
esac
