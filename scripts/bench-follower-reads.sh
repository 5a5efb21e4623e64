#!/usr/bin/env bash
# Reads at a follower while the primary takes writes: how many of the follower's runs of reads
# its read index serves there, and how many it sends to the primary, for one or more builds,
# alternated (docs/benchmarks.md, "A follower learns from the read-index answer what is
# chosen").
#
#   scripts/bench-follower-reads.sh                         # this tree's build, 2 rounds
#   ROUNDS=3 scripts/bench-follower-reads.sh /tmp/rsl-kv-old /tmp/rsl-kv-new
#
# Each run: a fresh 3-replica cluster (`rsl-kv cluster --serve-only`); `redis-benchmark -t set
# -c 10` (unpipelined) at the primary in the background; after a second, `redis-benchmark -t
# get -n $N -c 20 -P 4` at a follower. Prints the follower's GET rate and latency, and the
# change in its `rsl_read_index_*` counters over the GETs. Needs redis-tools (installed with
# apt when missing).
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-300000}
ROUNDS=${ROUNDS:-2}

source scripts/bench-lib.sh
need_commands redis-benchmark:redis-tools redis-cli:redis-tools

exes=("$@")
if [ ${#exes[@]} -eq 0 ]; then
  kv_exe
  exes=("$exe")
fi
cluster_pid="" writer_pid=""
trap 'stop_pids "$writer_pid" "$cluster_pid"' EXIT
trap 'exit 130' INT TERM

# The follower's read-index counters, one `name=value` a line.
counters() {
  redis-cli -p "$1" info rsl | tr -d '\r' | grep -E '^rsl_read_index_[a-z_]*_total:' |
    sed 's/:/=/'
}

echo "date: $(date -u +%Y-%m-%dT%H:%MZ)  machine: $(nproc) CPUs, $(uname -sr)"
echo "load: SET -c 10 at the primary; GET -n $N -c 20 -P 4 at a follower"
for _ in $(seq 1 "$ROUNDS"); do
  for exe in "${exes[@]}"; do
    work=$(mktemp -d)
    kv_cluster_start "$exe" "$work"
    p_port=$(line_port "$(kv_replica_line "$work" primary)")
    f_port=$(line_port "$(kv_replica_line "$work" follower)")
    redis-benchmark -h 127.0.0.1 -p "$p_port" -t set -d 64 -n 100000000 -c 10 -q \
      >/dev/null 2>&1 &
    writer_pid=$!
    sleep 1
    before=$(counters "$f_port")
    get=$(redis-benchmark -h 127.0.0.1 -p "$f_port" -t get -d 64 -n "$N" -c 20 -P 4 --csv \
      2>/dev/null | tr -d '"' | awk -F, 'NR > 1 { printf "%s GET/s, avg %s ms, p50 %s ms, p99 %s ms", $2, $3, $5, $7 }')
    after=$(counters "$f_port")
    stop_pids "$writer_pid" "$cluster_pid" || true
    writer_pid="" cluster_pid=""
    rm -rf "$work"
    delta=$(join -t= <(sort <<<"$before") <(sort <<<"$after") |
      awk -F= '{ sub(/^rsl_read_index_/, "", $1); sub(/_total$/, "", $1); printf "%s %d  ", $1, $3 - $2 }')
    echo "$exe: $get"
    echo "    follower's read-index runs: $delta"
  done
done
