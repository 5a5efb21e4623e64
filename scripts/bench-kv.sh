#!/usr/bin/env bash
# rsl-kv through redis-benchmark, beside a single unreplicated redis-server, in the same run.
#
#   scripts/bench-kv.sh            # N=200000 requests per test, 50 clients, with and without -P 16
#   N=1000000 scripts/bench-kv.sh
#   EXE=/path/to/rsl-kv scripts/bench-kv.sh    # a binary built from another tree
#
# rsl-kv: 3 replicas as separate processes on loopback (`rsl-kv cluster --serve-only`), mutual
# TLS between replicas, every write committed on a majority with fdatasync. redis-server: one
# process, `--appendonly yes --appendfsync always --save ''` (every write fsynced, no
# replication). Both get the same `redis-benchmark -t set,get -d 64 -n N -c 50 [-P 16]`,
# aimed at rsl-kv's primary. Installs redis-server and redis-tools with apt when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-200000}
CLIENTS=${CLIENTS:-50}
PIPELINE=${PIPELINE:-16}

source scripts/bench-lib.sh
need_commands redis-server:redis-server redis-benchmark:redis-tools

kv_exe

bench_workdir

kv_cluster_start "$exe" "$work"
rsl_port=$(awk '/^primary-client/ { split($2, a, ":"); print a[2] }' "$work/cluster.out")
follower_port=$(awk -v p="127.0.0.1:$rsl_port" '$1 == "replica" && $5 == "client" && $6 != p { split($6, a, ":"); print a[2]; exit }' "$work/cluster.out")

redis_fsync_start "$work"

# One redis-benchmark run; prints "TEST rps p50 p99" per test. The lines it prints for an error
# reply (it stops at the first) or a failed connection are kept in $work/errors.$port.
bench() {
  local port=$1 pipeline=$2
  redis-benchmark -h 127.0.0.1 -p "$port" -t set,get -d 64 -n "$N" -c "$CLIENTS" -P "$pipeline" --csv \
    >"$work/run.out" 2>>"$work/errors.$port" || true
  grep -iE 'error|could not connect' "$work/run.out" >>"$work/errors.$port" || true
  tr -d '"' <"$work/run.out" | awk -F, '$1 == "SET" || $1 == "GET" { print $1, $2, $5, $7 }'
}
# The error lines of the runs against `port` (0: none).
errors() { grep -ciE 'error|could not connect' "$work/errors.$1" || true; }

echo "date: $(date -u +%Y-%m-%dT%H:%MZ)  machine: $(nproc) CPUs, $(uname -sr)  load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "rsl-kv: $exe"
echo "command: redis-benchmark -t set,get -d 64 -n $N -c $CLIENTS [-P $PIPELINE]"
echo "rsl-kv: 3 replicas (separate processes, mutual TLS, fdatasync), aimed at the primary"
echo "redis:  one redis-server $(redis-server --version | awk '{print $3}'), appendonly yes, appendfsync always, no replication"
echo
printf '%-6s %-9s | %14s %9s %9s | %14s %9s %9s\n' test pipeline "rsl-kv req/s" "p50 ms" "p99 ms" "redis req/s" "p50 ms" "p99 ms"
for pipeline in 1 "$PIPELINE"; do
  rsl=$(bench "$rsl_port" "$pipeline")
  red=$(bench "$redis_port" "$pipeline")
  for t in SET GET; do
    read -r _ r1 p50a p99a <<<"$(grep "^$t " <<<"$rsl")"
    read -r _ r2 p50b p99b <<<"$(grep "^$t " <<<"$red")"
    printf '%-6s %-9s | %14s %9s %9s | %14s %9s %9s\n' "$t" "$pipeline" "$r1" "$p50a" "$p99a" "$r2" "$p50b" "$p99b"
  done
done
echo
echo "rsl-kv through a follower (writes forwarded to the primary; linearizable reads served at the follower by read index, or forwarded when it has none), same command:"
for pipeline in 1 "$PIPELINE"; do
  bench "$follower_port" "$pipeline" | while read -r t r p50 p99; do
    printf '%-6s %-9s | %14s %9s %9s\n' "$t" "$pipeline" "$r" "$p50" "$p99"
  done
done
echo
echo "error replies and failed connections: rsl-kv primary $(errors "$rsl_port"), follower $(errors "$follower_port"), redis $(errors "$redis_port")"
echo "rsl-kv replicas after the run:"
"$exe" status --addr "127.0.0.1:$rsl_port"
