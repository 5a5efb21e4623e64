#!/usr/bin/env bash
# What the disk does under the unpipelined SET row of scripts/bench-kv.sh: rsl-kv's primary and
# redis-server (appendfsync always) alternated, and for each run the block device's own counts
# from /proc/diskstats (the kernel's, not the programs'): cache flushes a second, flushes per
# thousand requests, the device's busy time (io_ticks, the share of the run with I/O in flight)
# and the average time a flush took; and the CPU each side spent a request (user and system
# time from /proc: the server's processes, all three replicas for rsl-kv, and
# redis-benchmark's), with the CPUs both used together over the run.
#
#   scripts/bench-kv-disk.sh                   # 3 rounds, N=150000, 50 clients, -d 64
#   ROUNDS=1 N=100000 TEST=set scripts/bench-kv-disk.sh
#   EXE=/path/to/rsl-kv scripts/bench-kv-disk.sh
#
# Three rsl-kv replicas on one machine keep their logs on the same device, so each request's
# syncs (the primary's and at least one follower's, and the third replica's beside them) share
# one device; redis-server syncs one file. A device busy nearly all of a run is the ceiling of
# that row on this machine. Linux only; the device is the one holding the working directory.
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-150000}
CLIENTS=${CLIENTS:-50}
ROUNDS=${ROUNDS:-3}
TEST=${TEST:-set}

source scripts/bench-lib.sh
need_commands redis-server:redis-server redis-benchmark:redis-tools /usr/bin/time:time

kv_exe

bench_workdir

# The whole-disk device under the working directory (a partition's parent, if any).
dev=$(basename "$(df --output=source "$work" | tail -1)")
if [ ! -e "/sys/class/block/$dev" ]; then
  echo "no block device for $work ($dev): run on a machine whose working directory is on a disk" >&2
  exit 1
fi
if [ -e "/sys/class/block/$dev/partition" ]; then
  dev=$(basename "$(readlink -f "/sys/class/block/$dev/..")")
fi

kv_cluster_start "$exe" "$work"
rsl_port=$(awk '/^primary-client/ { split($2, a, ":"); print a[2] }' "$work/cluster.out")
redis_fsync_start "$work"

# `stats`: "io_ticks_ms flushes flush_ms" of the device now (diskstats fields 13, 19, 20).
stats() { awk -v d="$dev" '$3 == d { print $13, $19, $20 }' /proc/diskstats; }

# `one NAME PORT PID...`: one run against PORT, whose server is the processes PID...; prints
# its table line.
one() {
  local name=$1 port=$2 before after t0 t1 server0 server1
  shift 2
  before=$(stats)
  server0=$(ticks "$@")
  t0=$(date +%s.%N)
  rps=$(/usr/bin/time -f '%U %S' -o "$work/client.cpu" \
    redis-benchmark -h 127.0.0.1 -p "$port" -t "$TEST" -d 64 -n "$N" -c "$CLIENTS" -P 1 --csv \
    | tr -d '"' | awk -F, 'toupper($1) == toupper(t) { print $2 }' t="$TEST")
  t1=$(date +%s.%N)
  server1=$(ticks "$@")
  after=$(stats)
  read -r busy0 fl0 flms0 <<<"$before"
  read -r busy1 fl1 flms1 <<<"$after"
  awk -v name="$name" -v rps="$rps" -v n="$N" -v t0="$t0" -v t1="$t1" \
      -v b="$((busy1 - busy0))" -v f="$((fl1 - fl0))" -v fm="$((flms1 - flms0))" \
      -v server="$(((server1 - server0) * 1000000 / $(getconf CLK_TCK)))" \
      -v client="$(awk '{ print 1000000 * ($1 + $2) }' "$work/client.cpu")" \
      -v load="$(cut -d' ' -f1 /proc/loadavg)" 'BEGIN {
    s = t1 - t0
    printf "%-14s %9.0f %10.0f %12.1f %7.0f%% %10.3f %11.1f %11.1f %6.2f   load %s\n", name, rps,
      f / s, 1000 * f / n, 100 * b / (1000 * s), (f > 0 ? fm / f : 0), server / n, client / n,
      (server + client) / 1000000 / s, load
  }'
}

echo "date: $(date -u +%FT%TZ)  machine: $(nproc) CPUs, $(uname -sr)  device: $dev"
echo "redis-benchmark -t $TEST -d 64 -n $N -c $CLIENTS -P 1; rsl-kv: $exe (3 replicas, one device)"
# The replicas' pids: `  replica ID: pid PID ...` lines of the cluster's output.
replica_pids=$(awk '/^  replica [0-9]+: pid/ { print $4 }' "$work/cluster.out")
# shellcheck disable=SC2086 # one pid a word
[ "$(wc -w <<<$replica_pids)" -eq 3 ] || { echo "expected three replica pids" >&2; exit 1; }
printf '%-14s %9s %10s %12s %8s %10s %11s %11s %6s\n' run "req/s" "flushes/s" "flushes/1000" \
  busy "ms/flush" "server-us/r" "client-us/r" CPUs
for round in $(seq 1 "$ROUNDS"); do
  one redis-server "$redis_port" "$redis_pid"
  # shellcheck disable=SC2086 # one pid a word
  one rsl-kv "$rsl_port" $replica_pids
done
