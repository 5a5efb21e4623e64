#!/usr/bin/env bash
# rsl's embedded engine beside openraft on this machine, alternated run by run: committed
# requests a second and CPU microseconds a committed request (the whole process), for
# `rsl-bench embedded --backend memory --no-fsync` and for bench/openraft-peer, which runs
# openraft the way openraft's own benchmarks/minimal does (3 voters in one process, calls
# between them in-process, log and state machine in memory; bench/openraft-peer/README.md).
#
#   scripts/bench-openraft.sh                     # 3 rounds, 4096 callers, 6 s a run
#   ROUNDS=2 CLIENTS=1024 S=8 scripts/bench-openraft.sh
#   BATCHED=0 scripts/bench-openraft.sh           # without the batched rows
#   PEER_ARGS="--workers 16 --client-workers 2" scripts/bench-openraft.sh
#                                                 # openraft's own bench's runtime layout
#   LOCAL=1 scripts/bench-openraft.sh             # rsl as a LocalCluster: no sockets either
#   RSL_ARGS="--checkpoint-interval-slots 1000 --log-kept-slots 500 --state-mb 1" \
#     scripts/bench-openraft.sh                   # rsl's log bounded by checkpoints, as
#                                                 # openraft's is by its snapshots
#
# Each round: the openraft peer with --clients $CLIENTS (one `client_write` a caller at a
# time), then `rsl-bench embedded --clients $CLIENTS` (one `Node::replicate` a caller at a
# time); then, unless BATCHED=0, the batched pair: rsl with --clients 32 --batch 256
# (`Node::replicate_batch`) and the peer with --clients 32 --batch 256
# (`Raft::client_write_many`, which openraft 0.10 has; 0.9 had no batched client call). One
# table line a run, and each round's ratio rsl/openraft. rsl's replicas talk TCP over loopback
# and encode their messages; the peer's voters call each other's handles directly (openraft's
# bench's shape), so the comparison charges rsl a transport that openraft's does not; with
# LOCAL=1 rsl runs `embedded --local` instead (an rsl::LocalCluster: the replicas' messages go
# through an in-process network, still encoded and checksummed, and their disks are memory).
# (S, not SECONDS: bash owns that name.)
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
CLIENTS=${CLIENTS:-4096}
S=${S:-6}
BATCHED=${BATCHED:-1}
BATCH_CLIENTS=${BATCH_CLIENTS:-32}
BATCH=${BATCH:-256}
PEER_ARGS=${PEER_ARGS:-}
LOCAL=${LOCAL:-0}
# Arguments added to every rsl run. openraft's default snapshot policy (a snapshot every 5,000
# entries, then its log purged) keeps the peer's in-memory log bounded; rsl-bench's default
# takes no checkpoint, so its memory log grows for the whole run (fresh pages, faulted in and
# zeroed by the kernel: docs/benchmarks.md "A bounded memory log").
RSL_ARGS=${RSL_ARGS:-}
if [ "$LOCAL" != 0 ]; then
  rsl_setup=(--local)
else
  rsl_setup=(--backend memory --no-fsync)
fi

cargo build --release --locked --manifest-path bench/openraft-peer/Cargo.toml
cargo build --release --locked -p rsl-bench
peer=${CARGO_TARGET_DIR:-bench/openraft-peer/target}/release/openraft-peer
rsl=${CARGO_TARGET_DIR:-target}/release/rsl-bench

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# `one ENGINE CLIENTS BATCH`: one run; prints its table line and sets `rate` and `cpu`.
one() {
  local engine=$1 clients=$2 batch=$3 label
  # shellcheck disable=SC2086 # PEER_ARGS and RSL_ARGS are lists of arguments
  case $engine in
    openraft) "$peer" --clients "$clients" --batch "$batch" --seconds "$S" $PEER_ARGS ;;
    rsl) "$rsl" embedded --clients "$clients" --batch "$batch" "${rsl_setup[@]}" \
           --seconds "$S" --latency-seconds 0 --no-checkpoint-phase $RSL_ARGS ;;
  esac >"$work/out" 2>"$work/err" || { cat "$work/out" "$work/err" >&2; exit 1; }
  rate=$(awk '/^throughput:/ { print $2; exit }' "$work/out")
  cpu=$(awk '/^ *CPU [0-9.]+ us per committed/ { print $2; exit }' "$work/out")
  if [ -z "$rate" ] || [ -z "$cpu" ]; then
    echo "no throughput or CPU line in the $engine run's output:" >&2
    cat "$work/out" "$work/err" >&2
    exit 1
  fi
  if [ "$batch" -gt 1 ]; then label="$engine batched x$batch"; else label=$engine; fi
  printf '%-22s %8s %12.0f %14.2f   load %s\n' "$label" "$clients" "$rate" "$cpu" \
    "$(cut -d' ' -f1 /proc/loadavg)"
}

# `pair CLIENTS BATCH`: the peer, then rsl; prints the line of ratios rsl/openraft.
pair() {
  local clients=$1 batch=$2 o_rate o_cpu
  one openraft "$clients" "$batch"
  o_rate=$rate o_cpu=$cpu
  one rsl "$clients" "$batch"
  awk -v r="$rate" -v o="$o_rate" -v rc="$cpu" -v oc="$o_cpu" -v b="$batch" 'BEGIN {
    printf "  rsl/openraft%s: committed/s %.2f, CPU-us/request %.2f\n",
      (b > 1 ? " (batched)" : ""), r / o, rc / oc }'
}

echo "date: $(date -u +%Y-%m-%dT%H:%MZ)  machine: $(nproc) CPUs, $(uname -sr)"
echo "uptime: $(uptime)"
echo "openraft: $(grep -A1 '^name = "openraft"$' bench/openraft-peer/Cargo.lock | awk -F'"' '/version/ { print $2 }')" \
  "(bench/openraft-peer${PEER_ARGS:+, $PEER_ARGS}); rsl: $rsl embedded ${rsl_setup[*]} $RSL_ARGS"
echo "$S s a run; one-call rows: $CLIENTS callers, one request a call"
if [ "$BATCHED" != 0 ]; then
  echo "batched rows: $BATCH_CLIENTS callers x $BATCH requests a call (rsl: Node::replicate_batch, openraft: Raft::client_write_many)"
fi
printf '%-22s %8s %12s %14s\n' engine clients committed/s CPU-us/request
for round in $(seq 1 "$ROUNDS"); do
  echo "round $round"
  pair "$CLIENTS" 1
  if [ "$BATCHED" != 0 ]; then
    pair "$BATCH_CLIENTS" "$BATCH"
  fi
done
