#!/usr/bin/env bash
# The project's test command (the README's second command; .ci/run runs exactly this).
# Installs what the tests need, then runs formatting, lints, every test, the simulator's
# seed campaign and the planted-bug checks. Must pass on a clean clone in well under 30 min.
set -euo pipefail
cd "$(dirname "$0")/.."

# rsl-kv's compatibility tests use redis-cli (redis-tools), a real redis-server (the
# differential test) and redis-py from PyPI (the client test); install them when missing.
missing=""
command -v redis-cli >/dev/null 2>&1 || missing="$missing redis-tools"
command -v redis-server >/dev/null 2>&1 || missing="$missing redis-server"
if [ -n "$missing" ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing) >/dev/null 2>&1 \
    || echo "warning: could not install$missing; the tests that need them will say so" >&2
fi
# redis-server's Debian service is not wanted: the tests start their own on free ports.
venv=target/redis-py-venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import redis" 2>/dev/null; then
  (python3 -m venv "$venv" && "$venv/bin/pip" install -q redis) >/dev/null 2>&1 \
    || echo "warning: could not install redis-py into $venv; the redis-py test will say so" >&2
fi
if [ -x "$venv/bin/python" ]; then
  export RSL_KV_PYTHON="$PWD/$venv/bin/python"
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo clippy -p rsl-core -p rsl-sim --all-targets --features rsl-sim/planted-bugs --locked -- -D warnings
echo "== cargo doc (warnings denied)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet
echo "== MSRV: the declared rust-version (1.88) builds every target"
if ! rustup toolchain list | grep -q '^1\.88\.0'; then
  rustup toolchain install 1.88.0 --profile minimal \
    || echo "warning: could not install the 1.88.0 toolchain (no network to static.rust-lang.org?); MSRV not checked" >&2
fi
if rustup toolchain list | grep -q '^1\.88\.0'; then
  CARGO_TARGET_DIR=target/msrv cargo +1.88.0 check --workspace --all-targets --locked --quiet
fi
echo "== cargo test (workspace)"
cargo test --workspace --locked
echo "== planted bugs: each misbehaves in the core, and the simulator's checkers catch each"
cargo test -p rsl-core -p rsl-sim --features rsl-sim/planted-bugs --locked
echo "== simulator: 200 more seeds through the command (the test suite ran seeds 0..200)"
# The test profile (opt-level 1) reuses the test build: no separate release build in CI.
cargo run --profile test --locked -p rsl-sim -- --seeds 200 --first 100000
