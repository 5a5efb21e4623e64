#!/usr/bin/env bash
# CPU time per request of rsl-kv's primary (and of all three replicas) under one redis-benchmark
# load, for one or more builds, alternated: a figure that holds on a shared, loaded machine
# better than throughput does (each build's run gets the same neighbours on average).
#
#   scripts/cpu-kv.sh                                   # this tree's build: GET -P 16, 3 rounds
#   TEST=set PIPELINE=1 N=100000 scripts/cpu-kv.sh
#   ROUNDS=4 scripts/cpu-kv.sh /tmp/rsl-kv-old /tmp/rsl-kv-new   # two builds, alternated
#   AT=follower scripts/cpu-kv.sh                       # the load at a follower instead
#
# Each run: a fresh 3-replica cluster (`rsl-kv cluster --serve-only`), a warm-up of N/5
# requests, then `redis-benchmark -t $TEST -d 64 -n $N -c $CLIENTS -P $PIPELINE` at the
# primary (or, with AT=follower, at a follower: then the follower's CPU time is printed too);
# the CPU time (user + system, /proc/PID/stat) the replicas' processes used during
# it, divided by N. Needs redis-tools (installed with apt when missing).
set -euo pipefail
cd "$(dirname "$0")/.."

export TEST=${TEST:-get} PIPELINE=${PIPELINE:-16}
N=${N:-400000}
CLIENTS=${CLIENTS:-50}
ROUNDS=${ROUNDS:-3}
AT=${AT:-primary}

source scripts/bench-lib.sh
need_commands redis-benchmark:redis-tools

exes=("$@")
if [ ${#exes[@]} -eq 0 ]; then
  kv_exe
  exes=("$exe")
fi
cluster_pid=""
trap 'stop_pids "$cluster_pid"' EXIT
trap 'exit 130' INT TERM
hz=$(getconf CLK_TCK)

echo "date: $(date -u +%Y-%m-%dT%H:%MZ)  machine: $(nproc) CPUs, $(uname -sr)"
echo "command: redis-benchmark -t $TEST -d 64 -n $N -c $CLIENTS -P $PIPELINE (at the $AT)"
for _ in $(seq 1 "$ROUNDS"); do
  for exe in "${exes[@]}"; do
    work=$(mktemp -d)
    kv_cluster_start "$exe" "$work"
    pid=$(line_pid "$(kv_replica_line "$work" primary)")
    line=$(kv_replica_line "$work" "$AT")
    at_pid=$(line_pid "$line")
    port=$(line_port "$line")
    pids=$(grep -o 'pid [0-9]*' "$work/cluster.out" | awk '{ print $2 }')
    redis-benchmark -h 127.0.0.1 -p "$port" -t "$TEST" -d 64 -n $((N / 5)) -c "$CLIENTS" \
      -P "$PIPELINE" -q >/dev/null 2>&1
    f0=$(ticks "$at_pid"); p0=$(ticks "$pid"); a0=$(ticks $pids)
    rps=$(redis-benchmark -h 127.0.0.1 -p "$port" -t "$TEST" -d 64 -n "$N" -c "$CLIENTS" \
      -P "$PIPELINE" --csv 2>/dev/null | tr -d '"' | awk -F, 'NR > 1 { print $2 }')
    f1=$(ticks "$at_pid"); p1=$(ticks "$pid"); a1=$(ticks $pids)
    awk -v e="$exe" -v p=$((p1 - p0)) -v a=$((a1 - a0)) -v n="$N" -v hz="$hz" -v rps="$rps" \
      -v f=$((f1 - f0)) -v at="$AT" -v load="$(cut -d' ' -f1 /proc/loadavg)" 'BEGIN {
        if (at == "follower") printf "%s: follower %.2f CPU-us/request, ", e, f * 1e6 / hz / n
        else printf "%s: ", e
        printf "primary %.2f CPU-us/request, all replicas %.2f, %s requests/s (load %s)\n",
          p * 1e6 / hz / n, a * 1e6 / hz / n, rps, load }'
    stop_pids "$cluster_pid"
    cluster_pid=""
    rm -rf "$work"
  done
done
