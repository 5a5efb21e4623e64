#!/usr/bin/env bash
# Profiles rsl-kv's replicas under one redis-benchmark load aimed at the primary, by thread and
# by function, and counts what the load cost them: CPU, syscalls, context switches, page
# faults, memory, and the engine's batching (requests per slot, per fsync) from the primary's
# metrics.
#
#   scripts/profile-kv.sh                 # SET, no pipelining, N=200000, 50 clients
#   TEST=get PIPELINE=16 scripts/profile-kv.sh
#   EXE=/path/to/rsl-kv OUT=/tmp/prof scripts/profile-kv.sh   # another build; keep the data
#
# It starts a 3-replica cluster (`rsl-kv cluster --serve-only`: separate processes, mutual
# TLS, fdatasync), runs `redis-benchmark -t $TEST -d 64 -n $N -c $CLIENTS -P $PIPELINE`
# against the primary while `perf record -g` samples the three replicas' processes, and prints
# the reports. Needs `perf` (Debian's linux-perf) and redis-tools; installs them with apt when
# missing.
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-200000}
CLIENTS=${CLIENTS:-50}
PIPELINE=${PIPELINE:-1}
TEST=${TEST:-set}
FREQ=${FREQ:-999}

source scripts/bench-lib.sh
need_commands perf:linux-perf redis-benchmark:redis-tools

kv_exe
EXE=$exe
out=${OUT:-$(mktemp -d)}
mkdir -p "$out"

cluster_pid=""
cleanup() {
  stop_pids "$cluster_pid"
  [ -z "${OUT:-}" ] && rm -rf "$out"
  return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

kv_cluster_start "$EXE" "$out"
primary=$(awk '/^primary: replica/ { print $3 }' "$out/cluster.out")
line=$(grep "^  replica $primary:" "$out/cluster.out")
pid=$(awk '{ print $4 }' <<<"$line")
port=$(awk '{ split($6, a, ":"); print a[2] }' <<<"$line")
metrics=$(awk '{ print $NF }' <<<"$line")

# The primary's counters: proposals, slots and requests committed, syncs (group commits), bytes.
counters() {
  curl -s "$metrics" | awk '/^rsl_(proposals|slots_committed|requests_committed|syncs|sync_micros|bytes_sent|bytes_received)_total / { print $1, $2 }'
}
# CPU ticks (user + system) and context switches of every thread of the primary.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$pid/stat"; }
switches() {
  cat /proc/"$pid"/task/*/status | awk '/ctxt_switches/ { s += $2 } END { print s }'
}

echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)  machine: $(nproc) CPUs, $(uname -sr)  load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "rsl-kv: $EXE"
echo "command: redis-benchmark -t $TEST -d 64 -n $N -c $CLIENTS -P $PIPELINE (primary: replica $primary, pid $pid)"

# A warm-up so the profile sees the steady state (connections, allocator, log segments).
redis-benchmark -h 127.0.0.1 -p "$port" -t "$TEST" -d 64 -n $((N / 10)) -c "$CLIENTS" -P "$PIPELINE" -q >/dev/null 2>&1
before=$(counters)
cpu0=$(cpu_ticks)
sw0=$(switches)
# Every replica is sampled: a follower's costs show in the primary's latency.
pids=$(grep -o 'pid [0-9]*' "$out/cluster.out" | awk '{ print $2 }')
follower=$(grep -v "pid $pid " <<<"$(grep -o 'pid [0-9]* ' "$out/cluster.out")" | awk 'NR == 1 { print $2 }')
perf record -F "$FREQ" -g -p "$(paste -sd, <<<"$pids")" -o "$out/perf.data" >/dev/null 2>"$out/perf-record.err" &
perf_pid=$!
stat_pids=()
for p in $pids; do
  perf stat -e raw_syscalls:sys_enter,context-switches,page-faults,task-clock -p "$p" \
    -o "$out/perf-stat.$p.txt" >/dev/null 2>&1 &
  stat_pids+=($!)
done
sleep 0.5
start=$(date +%s.%N)
redis-benchmark -h 127.0.0.1 -p "$port" -t "$TEST" -d 64 -n "$N" -c "$CLIENTS" -P "$PIPELINE" --csv 2>/dev/null |
  tr -d '"' | awk -F, 'NR > 1 { printf "result: %s %s req/s, p50 %s ms, p99 %s ms\n", $1, $2, $5, $7 }'
end=$(date +%s.%N)
kill -INT "$perf_pid" "${stat_pids[@]}"
wait "$perf_pid" "${stat_pids[@]}" || true
cpu1=$(cpu_ticks)
sw1=$(switches)
after=$(counters)

hz=$(getconf CLK_TCK)
awk -v b="$before" -v a="$after" -v n="$N" -v cpu=$((cpu1 - cpu0)) -v hz="$hz" -v sw=$((sw1 - sw0)) \
  -v secs="$(echo "$end - $start" | bc)" 'BEGIN {
  split(b, bl, "\n"); split(a, al, "\n")
  for (i in bl) { split(bl[i], f, " "); B[f[1]] = f[2] }
  for (i in al) { split(al[i], f, " "); A[f[1]] = f[2] }
  p = A["rsl_proposals_total"] - B["rsl_proposals_total"]
  s = A["rsl_slots_committed_total"] - B["rsl_slots_committed_total"]
  # Requests per slot from the requests committed (a binary older than that counter: the
  # proposals taken, refused ones included).
  r = A["rsl_requests_committed_total"] - B["rsl_requests_committed_total"]
  if (r <= 0) r = p
  y = A["rsl_syncs_total"] - B["rsl_syncs_total"]
  us = A["rsl_sync_micros_total"] - B["rsl_sync_micros_total"]
  printf "primary over the run (%.2f s): %.2f CPUs; %.1f CPU-us and %.2f context switches per request\n", secs, cpu / hz / secs, cpu / hz * 1e6 / n, sw / n
  printf "primary batching: %d proposals, %d slots committed, %d syncs: %.2f requests per slot, %.2f per sync; sync %.0f us on average\n", p, s, y, (s ? r / s : 0), (y ? r / y : 0), (y ? us / y : 0)
}'
echo
echo "== per replica over the run (perf stat; RSS from /proc) =="
for p in $pids; do
  r=$(grep "pid $p " "$out/cluster.out" | awk '{ print $2 }' | tr -d :)
  role=follower
  [ "$r" = "$primary" ] && role=primary
  rss=$(awk '/^VmRSS/ { print int($2 / 1024) }' "/proc/$p/status")
  awk -v r="$r" -v role="$role" -v n="$N" -v rss="$rss" '
    { gsub(",", "") }
    $2 ~ /^(raw_syscalls:sys_enter|context-switches|page-faults)$/ { v[$2] = $1 }
    $3 == "task-clock" { cpu = $1 }
    END { printf "replica %s (%s): %.2f syscalls, %.2f context switches, %.3f page faults per request; %.0f CPU-ms; RSS after %s MB\n", r, role, v["raw_syscalls:sys_enter"] / n, v["context-switches"] / n, v["page-faults"] / n, cpu, rss }' "$out/perf-stat.$p.txt"
done
echo
echo "== by process and thread (share of all samples of the three replicas; primary pid $pid) =="
perf report -i "$out/perf.data" --no-children --sort pid,comm -g none --stdio 2>/dev/null |
  grep -v '^#' | grep -v '^$' | head -24 || true
echo
echo "== the primary by function (self time, share of all samples, top 30) =="
perf report -i "$out/perf.data" --pid "$pid" --no-children --sort comm,dso,sym -g none --stdio 2>/dev/null |
  grep -v '^#' | grep -v '^$' | head -30 || true
echo
echo "== a follower (pid $follower) by function (self time, share of all samples, top 15) =="
perf report -i "$out/perf.data" --pid "$follower" --no-children --sort comm,dso,sym -g none --stdio 2>/dev/null |
  grep -v '^#' | grep -v '^$' | head -15 || true
echo
echo "perf data: $out/perf.data (kept when OUT is set)"
