#!/usr/bin/env bash
# Memory: N keys (default 1,000,000) of 64-byte values loaded into redis-server and into a
# 3-replica rsl-kv cluster (and rsl-kv's unreplicated local-server), then the resident set
# size of each process, printed as a table. Figures go in docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-1000000}
command -v redis-server >/dev/null || { apt-get update -qq && apt-get install -y -qq redis-server redis-tools >/dev/null; }
# PROFILE=debug measures an existing debug build (the data structures are the same).
PROFILE=${PROFILE:-release}
if [ "$PROFILE" = release ]; then cargo build --release -p rsl-kv --quiet; fi
exe=${CARGO_TARGET_DIR:-target}/$PROFILE/rsl-kv
dir=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$dir"; }
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rss_mb() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }

# The load: SET key:<n> <64 bytes>, in RESP, fed with redis-cli --pipe.
python3 - "$N" > "$dir/load.resp" <<'PY'
import sys
n = int(sys.argv[1])
out = sys.stdout
for i in range(n):
    key = f"key:{i:012d}"
    value = f"{i:064d}"
    out.write(f"*3\r\n$3\r\nSET\r\n${len(key)}\r\n{key}\r\n$64\r\n{value}\r\n")
PY
load() { redis-cli -p "$1" --pipe < "$dir/load.resp" | tail -1; }

rport=$(port)
redis-server --port "$rport" --save '' --appendonly no > /dev/null &
pids+=($!); rpid=$!
sleep 0.5
load "$rport"
echo "redis-server: $(redis-cli -p "$rport" dbsize) keys, RSS $(rss_mb $rpid) MB"

lport=$(port)
"$exe" local-server --port "$lport" --tick-ms 0 > /dev/null &
pids+=($!); lpid=$!
sleep 0.5
load "$lport"
echo "rsl-kv local-server: $(redis-cli -p "$lport" dbsize) keys, RSS $(rss_mb $lpid) MB"

peers=($(port) $(port) $(port)); clients=($(port) $(port) $(port))
for id in 1 2 3; do
  cat > "$dir/r$id.toml" <<TOML
id = $id
data_dir = "$dir/data$id"
members = [ { id = 1, addr = "127.0.0.1:${peers[0]}" }, { id = 2, addr = "127.0.0.1:${peers[1]}" }, { id = 3, addr = "127.0.0.1:${peers[2]}" } ]
[storage]
fsync = false
[kv]
clients = [ { id = 1, addr = "127.0.0.1:${clients[0]}" }, { id = 2, addr = "127.0.0.1:${clients[1]}" }, { id = 3, addr = "127.0.0.1:${clients[2]}" } ]
TOML
  "$exe" run --config "$dir/r$id.toml" > "$dir/r$id.out" 2> "$dir/r$id.err" &
  pids+=($!)
done
sleep 3
load "${clients[0]}"
sleep 2
for i in 0 1 2; do
  echo "rsl-kv replica $((i + 1)): $(redis-cli -p "${clients[$i]}" dbsize) keys, RSS $(rss_mb "${pids[$((i + 2))]}") MB"
done
