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

if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
  echo "installing redis-server and redis-tools with apt" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-tools >/dev/null
fi

# EXE: an rsl-kv binary built elsewhere (another tree, for a side-by-side run); by default
# this tree's release build.
if [ -n "${EXE:-}" ]; then
  exe=$EXE
else
  cargo build --release --locked -p rsl-kv
  exe="${CARGO_TARGET_DIR:-target}/release/rsl-kv"
fi

work=$(mktemp -d)
cluster_pid=""
redis_pid=""
cleanup() {
  [ -n "$cluster_pid" ] && kill "$cluster_pid" 2>/dev/null && wait "$cluster_pid" 2>/dev/null
  [ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null && wait "$redis_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The rsl-kv cluster: wait (bounded) for its "ready" line, which follows the election.
"$exe" cluster --serve-only >"$work/cluster.out" 2>"$work/cluster.err" &
cluster_pid=$!
for _ in $(seq 1 300); do
  grep -q '^ready$' "$work/cluster.out" && break
  kill -0 "$cluster_pid" 2>/dev/null || { cat "$work/cluster.out" "$work/cluster.err"; exit 1; }
  sleep 0.1
done
grep -q '^ready$' "$work/cluster.out" || { echo "the rsl-kv cluster did not start" >&2; exit 1; }
rsl_port=$(awk '/^primary-client/ { split($2, a, ":"); print a[2] }' "$work/cluster.out")
follower_port=$(awk -v p="127.0.0.1:$rsl_port" '$1 == "replica" && $5 == "client" && $6 != p { split($6, a, ":"); print a[2]; exit }' "$work/cluster.out")

# redis-server with every write fsynced, on a free port.
redis_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$work/redis"
redis-server --port "$redis_port" --bind 127.0.0.1 --appendonly yes --appendfsync always \
  --save '' --dir "$work/redis" --daemonize no >"$work/redis.log" 2>&1 &
redis_pid=$!
for _ in $(seq 1 100); do
  [ "$(redis-cli -p "$redis_port" ping 2>/dev/null)" = "PONG" ] && break
  sleep 0.1
done

# One redis-benchmark run; prints "TEST rps p50 p99" per test.
bench() {
  local port=$1 pipeline=$2
  redis-benchmark -h 127.0.0.1 -p "$port" -t set,get -d 64 -n "$N" -c "$CLIENTS" -P "$pipeline" --csv 2>/dev/null |
    tr -d '"' | awk -F, '$1 == "SET" || $1 == "GET" { print $1, $2, $5, $7 }'
}

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
echo "rsl-kv through a follower (every request forwarded to the primary), same command:"
for pipeline in 1 "$PIPELINE"; do
  bench "$follower_port" "$pipeline" | while read -r t r p50 p99; do
    printf '%-6s %-9s | %14s %9s %9s\n' "$t" "$pipeline" "$r" "$p50" "$p99"
  done
done
echo
echo "rsl-kv replicas after the run:"
"$exe" status --addr "127.0.0.1:$rsl_port"
