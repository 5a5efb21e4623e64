#!/usr/bin/env bash
# The README's first command: a local 3-replica rsl-kv cluster on loopback with a demo
# workload, a primary kill, the failover time and the numbers. No configuration needed.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo run --release --locked -p rsl-kv -- cluster "$@"
