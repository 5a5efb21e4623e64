#!/usr/bin/env bash
# Throughput and p99 latency over a range of client counts and pipeline depths, for rsl-kv,
# redis-server and the embedded engine, in one run: a CSV and two SVG plots (gnuplot).
#
#   scripts/bench-curves.sh                          # writes docs/bench-curves.{csv,*.svg}
#   CLIENTS="1 10 50" PIPELINES=1 EMBED_CLIENTS="1 64" scripts/bench-curves.sh   # a quick look
#   OUT=/tmp/curves scripts/bench-curves.sh          # elsewhere (the SVGs are named the same)
#   PLOT_ONLY=1 scripts/bench-curves.sh              # redraw the SVGs from the CSV
#
# rsl-kv: 3 replicas as separate processes on loopback (`rsl-kv cluster --serve-only`), mutual
# TLS, fdatasync; redis-benchmark aims at the primary. redis-server: one process, appendonly
# yes, appendfsync always (every write fsynced, no replication). Both get
# `redis-benchmark -t set,get -d 64 -n N -c C -P P` for every C in CLIENTS and P in PIPELINES
# (N = 100 requests per client and pipeline slot, at least 10,000 and at most 400,000). A run
# that answered an error (or whose client could not connect) counts it in the CSV's `errors`
# column. The embedded engine: `rsl-bench embedded` (3 replicas in one process, fsync on,
# 64-byte requests) for every count in EMBED_CLIENTS, throughput and p99 under load, one request
# a call (`Node::replicate`); then for every count in EMBED_BATCH_CLIENTS with EMBED_BATCH
# requests a call (`Node::replicate_batch`, the series "embedded batchN"; its p99 is a call's).
# Installs redis-server, redis-tools and gnuplot-nox with apt when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

CLIENTS=${CLIENTS:-1 10 50 200 1000}
PIPELINES=${PIPELINES:-1 16}
# Requests per run: PER_CLIENT for each client and pipeline slot, within [N_MIN, N_MAX].
PER_CLIENT=${PER_CLIENT:-100}
N_MIN=${N_MIN:-10000}
N_MAX=${N_MAX:-400000}
EMBED_CLIENTS=${EMBED_CLIENTS:-1 10 50 200 1000 4096}
EMBED_SECONDS=${EMBED_SECONDS:-5}
EMBED_BATCH_CLIENTS=${EMBED_BATCH_CLIENTS:-1 10 50 200}
EMBED_BATCH=${EMBED_BATCH:-64}
OUT=${OUT:-docs}
NAME=${NAME:-bench-curves}

source scripts/bench-lib.sh
need_commands redis-server:redis-server redis-benchmark:redis-tools gnuplot:gnuplot-nox

bench_workdir

csv="$OUT/$NAME.csv"
if [ -z "${PLOT_ONLY:-}" ]; then
  cargo build --release --locked -p rsl-kv -p rsl-bench
  bin="${CARGO_TARGET_DIR:-target}/release"

  kv_cluster_start "$bin/rsl-kv" "$work"
  rsl_port=$(awk '/^primary-client/ { split($2, a, ":"); print a[2] }' "$work/cluster.out")
  redis_fsync_start "$work"

  mkdir -p "$OUT"
  echo "# $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, $(uname -sr), load at the start: $(cut -d' ' -f1-3 /proc/loadavg)" >"$csv"
  echo "system,test,pipeline,clients,requests_per_s,p50_ms,p99_ms,errors" >>"$csv"

  # One redis-benchmark run: a CSV row per test. Errors are the lines redis-benchmark prints
  # for error replies and failed connections.
  bench() {
    local system=$1 port=$2 pipeline=$3 clients=$4
    local n=$((clients * pipeline * PER_CLIENT))
    n=$((n < N_MIN ? N_MIN : n > N_MAX ? N_MAX : n))
    redis-benchmark -h 127.0.0.1 -p "$port" -t set,get -d 64 -n "$n" -c "$clients" -P "$pipeline" \
      --csv >"$work/run.out" 2>"$work/run.err" || true
    local errors
    errors=$({ grep -ciE 'error|could not connect' "$work/run.err" "$work/run.out" || true; } |
      awk -F: '{ s += $NF } END { print s + 0 }')
    tr -d '"' <"$work/run.out" | awk -F, -v s="$system" -v p="$pipeline" -v c="$clients" -v e="$errors" \
      '$1 == "SET" || $1 == "GET" { printf "%s,%s,%s,%s,%s,%s,%s,%s\n", s, $1, p, c, $2, $5, $7, e }' |
      tee -a "$csv"
  }

  for pipeline in $PIPELINES; do
    for clients in $CLIENTS; do
      bench rsl-kv "$rsl_port" "$pipeline" "$clients"
      bench redis "$redis_port" "$pipeline" "$clients"
    done
  done
  kill "$cluster_pid" "$redis_pid" 2>/dev/null || true
  wait "$cluster_pid" "$redis_pid" 2>/dev/null || true
  cluster_pid=""
  redis_pid=""

  # The embedded engine: committed requests/s and p99 under load, per caller count.
  for clients in $EMBED_CLIENTS; do
    "$bin/rsl-bench" embedded --clients "$clients" --seconds "$EMBED_SECONDS" --latency-seconds 1 \
      --no-checkpoint-phase --state-mb 1 >"$work/embedded.out" 2>/dev/null
    awk -v c="$clients" '
      /^throughput:/ { rate = $2 }
      /latency under load/ { for (i = 1; i <= NF; i++) { if ($i == "p50") p50 = $(i + 1); if ($i == "p99") p99 = $(i + 1) } }
      END { printf "embedded,propose,1,%s,%s,%s,%s,0\n", c, rate, p50, p99 }' "$work/embedded.out" | tee -a "$csv"
  done
  for clients in $EMBED_BATCH_CLIENTS; do
    "$bin/rsl-bench" embedded --clients "$clients" --batch "$EMBED_BATCH" --seconds "$EMBED_SECONDS" \
      --latency-seconds 0 --no-checkpoint-phase --state-mb 1 >"$work/embedded.out" 2>/dev/null
    awk -v c="$clients" -v b="$EMBED_BATCH" '
      /^throughput:/ { rate = $2 }
      /latency under load/ { for (i = 1; i <= NF; i++) { if ($i == "p50") p50 = $(i + 1); if ($i == "p99") p99 = $(i + 1) } }
      END { printf "embedded,batch%s,1,%s,%s,%s,%s,0\n", b, c, rate, p50, p99 }' "$work/embedded.out" | tee -a "$csv"
  done

fi

# The plots: one line per system, test and pipeline depth, over the client count.
plot() {
  local column=$1 ylabel=$2 file=$3 yformat=$4
  local series=()
  while IFS= read -r s; do series+=("$s"); done < <(awk -F, 'NR > 2 { print $1 "," $2 "," $3 }' "$csv" | sort -u)
  local cmd="" i=0
  for s in "${series[@]}"; do
    IFS=, read -r system test pipeline <<<"$s"
    local title="$system $test"
    [ "$system" != embedded ] && title="$title -P $pipeline"
    awk -F, -v s="$system" -v t="$test" -v p="$pipeline" -v col="$column" \
      'NR > 2 && $1 == s && $2 == t && $3 == p { print $4, $col }' "$csv" | sort -n >"$work/series.$i"
    # A colour per test and depth; rsl-kv solid, redis-server dashed, the engine black.
    local color dash=1 width=2
    case "$test $pipeline" in
      "SET 1") color='#d62728' ;;
      "SET 16") color='#ff7f0e' ;;
      "GET 1") color='#1f77b4' ;;
      "GET 16") color='#17becf' ;;
      batch*) color='#2ca02c' width=3 ;;
      *) color='#000000' width=3 ;;
    esac
    [ "$system" = redis ] && dash=2
    cmd+="${cmd:+, }'$work/series.$i' using 1:2 with linespoints lc rgb '$color' dt $dash lw $width pt 7 ps 0.6 title '$title'"
    i=$((i + 1))
  done
  gnuplot <<EOF
set terminal svg size 900,560 dynamic font "sans,12" background "white"
set output '$file'
set logscale xy
set format x "%.0s%c"
set format y "$yformat"
set xlabel 'clients (concurrent connections; callers for the embedded engine)'
set ylabel '$ylabel'
set key outside right top
set grid
set title "$(head -1 "$csv" | sed 's/^# //')"
plot $cmd
EOF
}
plot 5 'requests/s' "$OUT/$NAME-throughput.svg" '%.0s%c'
plot 7 'p99 latency (ms)' "$OUT/$NAME-p99.svg" '%g'
echo "wrote $csv, $OUT/$NAME-throughput.svg, $OUT/$NAME-p99.svg"
