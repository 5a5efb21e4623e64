#!/usr/bin/env bash
# Where rsl-kv's CPU goes by thread, without a profiler's overhead: CPU microseconds a request
# spent by each kind of thread of the primary and of the two followers (together), under one
# redis-benchmark load at the primary, for one or more builds, alternated.
#
#   scripts/cpu-kv-threads.sh                              # this tree's build: SET, no pipelining
#   PIPELINE=16 N=400000 scripts/cpu-kv-threads.sh
#   ROUNDS=3 scripts/cpu-kv-threads.sh /tmp/rsl-kv-old /tmp/rsl-kv-new   # two builds, alternated
#
# Each run: a fresh 3-replica cluster (`rsl-kv cluster --serve-only`), a warm-up of N/10
# requests, then `redis-benchmark -t $TEST -d 64 -n $N -c $CLIENTS -P $PIPELINE` at the
# primary. Each thread's user + system time (/proc/PID/task/TID/stat) over the run is summed
# by the thread's name without its replica number (`rsl-consensus-2` counts as
# `rsl-consensus`; tokio's workers as `tokio-rt-worker`), for the primary (`p`) and the
# followers (`f`, both together), and divided by N. A kind of thread that spent nothing is
# left out. perf's sampling (scripts/profile-kv.sh) halves this row's throughput on this
# machine; these counts cost nothing. Linux only; needs redis-tools (installed with apt when
# missing).
set -euo pipefail
cd "$(dirname "$0")/.."

TEST=${TEST:-set}
PIPELINE=${PIPELINE:-1}
N=${N:-150000}
CLIENTS=${CLIENTS:-50}
ROUNDS=${ROUNDS:-1}

source scripts/bench-lib.sh
need_commands redis-benchmark:redis-tools

exes=("$@")
if [ ${#exes[@]} -eq 0 ]; then
  kv_exe
  exes=("$exe")
fi

bench_workdir
cluster_pid=""
trap 'stop_pids "$cluster_pid"' EXIT

# `snapshot PRIMARY_PID PID...`: one line a thread kind, "p|f NAME TICKS".
snapshot() {
  local primary=$1 pid role task name stat rest
  shift
  for pid in "$@"; do
    role=f
    [ "$pid" = "$primary" ] && role=p
    for task in /proc/"$pid"/task/*; do
      name=$(cat "$task/comm" 2>/dev/null) || continue
      stat=$(cat "$task/stat" 2>/dev/null) || continue
      rest=${stat##*) }
      # Fields 14 and 15 of stat (utime, stime) are the 12th and 13th after the name.
      awk -v r="$role" -v n="${name%%-[0-9]*}" '{ print r, n, $12 + $13 }' <<<"$rest"
    done
  done | awk '{ t[$1 " " $2] += $3 } END { for (k in t) print k, t[k] }' | sort
}

echo "date: $(date -u +%FT%TZ)  machine: $(nproc) CPUs, $(uname -sr)  load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "redis-benchmark -t $TEST -d 64 -n $N -c $CLIENTS -P $PIPELINE at the primary; CPU-us a request"
for round in $(seq 1 "$ROUNDS"); do
  for exe in "${exes[@]}"; do
    dir=$work/run
    rm -rf "$dir"
    mkdir -p "$dir"
    kv_cluster_start "$exe" "$dir"
    line=$(kv_replica_line "$dir" primary)
    primary=$(line_pid "$line")
    port=$(line_port "$line")
    # shellcheck disable=SC2207 # one pid a word
    pids=($(awk '/^  replica [0-9]+: pid/ { print $4 }' "$dir/cluster.out"))
    redis-benchmark -h 127.0.0.1 -p "$port" -t "$TEST" -d 64 -n $((N / 10)) -c "$CLIENTS" \
      -P "$PIPELINE" -q >/dev/null 2>&1
    before=$(snapshot "$primary" "${pids[@]}")
    rps=$(redis-benchmark -h 127.0.0.1 -p "$port" -t "$TEST" -d 64 -n "$N" -c "$CLIENTS" \
      -P "$PIPELINE" --csv | tr -d '"' | awk -F, 'toupper($1) == toupper(t) { print $2 }' t="$TEST")
    after=$(snapshot "$primary" "${pids[@]}")
    stop_pids "$cluster_pid"
    cluster_pid=""
    echo "round $round, $exe: $rps req/s, load $(cut -d' ' -f1 /proc/loadavg)"
    join <(awk '{ print $1 "_" $2, $3 }' <<<"$before") <(awk '{ print $1 "_" $2, $3 }' <<<"$after") |
      awk -v n="$N" -v hz="$(getconf CLK_TCK)" '{
        us = ($3 - $2) * 1e6 / hz / n
        total += us
        if (us > 0) printf "  %-20s %6.2f\n", $1, us
      } END { printf "  %-20s %6.2f\n", "total", total }'
  done
done
