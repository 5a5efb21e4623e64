# Sourced by bench-kv.sh, bench-kv-disk.sh, bench-curves.sh, profile-kv.sh, cpu-kv.sh and
# bench-follower-reads.sh: what a benchmark starts and stops, written once. Each function
# exits the script with a message if what it starts does not come up.

# Installs with apt the Debian packages whose command is missing: `need_commands cmd:pkg ...`.
need_commands() {
  local need=() pair
  for pair in "$@"; do
    command -v "${pair%%:*}" >/dev/null || need+=("${pair#*:}")
  done
  if [ ${#need[@]} -gt 0 ]; then
    echo "installing ${need[*]} with apt" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  fi
}

# Stops the given processes (empty arguments are skipped) and waits for them.
stop_pids() {
  local pid
  for pid in "$@"; do
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  done
  return 0
}

# `kv_exe`: sets `exe` to the rsl-kv binary to run: $EXE (one built elsewhere, another tree
# for a side-by-side run) or, by default, this tree's release build, built now.
kv_exe() {
  if [ -n "${EXE:-}" ]; then
    exe=$EXE
  else
    cargo build --release --locked -p rsl-kv
    exe="${CARGO_TARGET_DIR:-target}/release/rsl-kv"
  fi
}

# `ticks PID...`: the user and system clock ticks (1/`getconf CLK_TCK` s) the processes have
# used, summed.
ticks() { for p in "$@"; do cat "/proc/$p/stat"; done | awk '{ t += $14 + $15 } END { print t }'; }

# `kv_cluster_start EXE DIR`: a local 3-replica rsl-kv cluster (`cluster --serve-only`), its
# output in DIR/cluster.out and .err; waits (bounded) for its "ready" line, which follows the
# election. Sets cluster_pid.
kv_cluster_start() {
  local exe=$1 dir=$2
  "$exe" cluster --serve-only >"$dir/cluster.out" 2>"$dir/cluster.err" &
  cluster_pid=$!
  for _ in $(seq 1 300); do
    grep -q '^ready$' "$dir/cluster.out" && return 0
    kill -0 "$cluster_pid" 2>/dev/null || { cat "$dir/cluster.out" "$dir/cluster.err"; exit 1; }
    sleep 0.1
  done
  echo "the rsl-kv cluster did not start" >&2
  exit 1
}

# `kv_replica_line DIR primary|follower`: the line of `kv_cluster_start`'s output that names
# the primary (or the first follower): `  replica ID: pid PID   client HOST:PORT ...`.
kv_replica_line() {
  local out=$1/cluster.out primary
  primary=$(awk '/^primary: replica/ { print $3 }' "$out")
  case $2 in
    primary) grep "^  replica $primary:" "$out" ;;
    *) grep "^  replica [0-9]*:" "$out" | grep -v "^  replica $primary:" | head -1 ;;
  esac
}

# The pid and the client port on a `kv_replica_line` line.
line_pid() { awk '{ print $4 }' <<<"$1"; }
line_port() { awk '{ split($6, a, ":"); print a[2] }' <<<"$1"; }

# `redis_fsync_start DIR`: redis-server with every write fsynced (appendonly yes, appendfsync
# always, no snapshots), on a free port, its files in DIR/redis. Sets redis_pid and redis_port.
redis_fsync_start() {
  local dir=$1
  redis_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  mkdir -p "$dir/redis"
  redis-server --port "$redis_port" --bind 127.0.0.1 --appendonly yes --appendfsync always \
    --save '' --dir "$dir/redis" --maxclients 10000 --daemonize no >"$dir/redis.log" 2>&1 &
  redis_pid=$!
  for _ in $(seq 1 100); do
    [ "$(redis-cli -p "$redis_port" ping 2>/dev/null)" = "PONG" ] && return 0
    sleep 0.1
  done
  echo "redis-server did not start" >&2
  cat "$dir/redis.log" >&2
  exit 1
}

# A scratch directory in `work`, removed at exit with whatever cluster and redis-server the
# script started (`cluster_pid`, `redis_pid`).
bench_workdir() {
  work=$(mktemp -d)
  cluster_pid=""
  redis_pid=""
  trap 'stop_pids "$cluster_pid" "$redis_pid"; rm -rf "$work"' EXIT
  trap 'exit 130' INT TERM
}
