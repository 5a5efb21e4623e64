#!/usr/bin/env bash
# The fuzzing campaign: runs every cargo-fuzz target of the repository, one after the other,
# each for --seconds (default 600) on one core (-jobs=1, nice 10), starting from the corpus
# kept in the repository, and prints each target's executions, wall time and findings.
#
#   scripts/fuzz.sh                          # every target, 600 s each
#   scripts/fuzz.sh --seconds 60 server      # only the named targets
#   scripts/fuzz.sh --cmin                   # minimise the corpora to keep in the repo
#
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`). A crash stops
# nothing: it is reported, its input lands in crates/<crate>/fuzz/artifacts/<target>/, and
# `cargo +nightly fuzz run <target> <that file>` (from crates/<crate>) replays it. New corpus
# entries stay in the corpus directories; minimise them with `cargo +nightly fuzz cmin
# <target>` before committing (--cmin does it for every target and then keeps at most
# $corpus_files_max files of each, spread over the minimised set). Logs:
# target/fuzz-logs/<target>.log.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

seconds=600
cmin=false
# The most corpus files of one target kept in the repository.
corpus_files_max=48
wanted=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --cmin) cmin=true; shift ;;
    -h|--help) sed -n 2,16p "$0"; exit 0 ;;
    *) wanted+=("$1"); shift ;;
  esac
done

# crate:target, in the order they run.
all=(
  rsl-kv:server rsl-kv:config rsl-core:messages
  rsl-kv:requests rsl-kv:checkpoints rsl-kv:resp_requests rsl-kv:resp_replies
  rsl-net:decode_frames rsl-storage:log_recovery rsl-storage:checkpoint_decode
)

# The fuzz crates use their own target directories (crates/<crate>/fuzz/target).
unset CARGO_TARGET_DIR
logs="$root/target/fuzz-logs"
mkdir -p "$logs"
if $cmin; then
  for entry in "${all[@]}"; do
    crate=${entry%%:*}
    name=${entry#*:}
    if [ ${#wanted[@]} -gt 0 ] && [[ ! " ${wanted[*]} " == *" $name "* ]]; then
      continue
    fi
    corpus="$root/crates/$crate/fuzz/corpus/$name"
    [ -d "$corpus" ] || continue
    before=$(find "$corpus" -type f | wc -l)
    (cd "$root/crates/$crate" && nice -n 10 cargo +nightly fuzz cmin -O "$name" \
      >"$logs/$name.cmin.log" 2>&1) || { echo "$crate:$name: cmin failed, see $logs/$name.cmin.log" >&2; continue; }
    minimised=$(find "$corpus" -type f | wc -l)
    if [ "$minimised" -gt "$corpus_files_max" ]; then
      # Keep every k-th file of the minimised set (by name, which is a content hash).
      k=$(( (minimised + corpus_files_max - 1) / corpus_files_max ))
      find "$corpus" -type f | sort | awk -v k="$k" 'NR % k != 0' | xargs rm -f
    fi
    echo "$crate:$name: $before files, $minimised after cmin, $(find "$corpus" -type f | wc -l) kept"
  done
  exit 0
fi
printf '%-30s %14s %8s %10s  %s\n' target executions seconds corpus outcome
for entry in "${all[@]}"; do
  crate=${entry%%:*}
  name=${entry#*:}
  if [ ${#wanted[@]} -gt 0 ] && [[ ! " ${wanted[*]} " == *" $name "* ]]; then
    continue
  fi
  dir="$root/crates/$crate"
  mkdir -p "$dir/fuzz/corpus/$name" "$dir/fuzz/artifacts/$name"
  (cd "$dir" && nice -n 10 cargo +nightly fuzz build -O "$name" >"$logs/$name.build.log" 2>&1) || {
    echo "$crate:$name: the build failed, see $logs/$name.build.log" >&2
    continue
  }
  work=$(mktemp -d)
  start=$(date +%s)
  # -jobs=1 runs one worker whose output goes to fuzz-0.log in the working directory; it
  # keeps going after a crash would stop a plain run, so one finding does not end the campaign.
  (cd "$work" && nice -n 10 "$dir/fuzz/target/x86_64-unknown-linux-gnu/release/$name" \
    -jobs=1 -max_total_time="$seconds" -timeout=30 -rss_limit_mb=4096 \
    -artifact_prefix="$dir/fuzz/artifacts/$name/" "$dir/fuzz/corpus/$name" \
    >/dev/null 2>&1) || true
  cp "$work/fuzz-0.log" "$logs/$name.log" 2>/dev/null || true
  rm -rf "$work"
  wall=$(($(date +%s) - start))
  runs=$(grep -oE '^(Done [0-9]+ runs|#[0-9]+)' "$logs/$name.log" 2>/dev/null | tail -1 | grep -oE '[0-9]+' || echo '?')
  corpus=$(find "$dir/fuzz/corpus/$name" -type f | wc -l)
  crashes=$(find "$dir/fuzz/artifacts/$name" -type f -newermt "@$start" | wc -l)
  outcome="no crash"
  [ "$crashes" -gt 0 ] && outcome="$crashes finding(s) in crates/$crate/fuzz/artifacts/$name/"
  printf '%-30s %14s %8s %10s  %s\n' "$crate:$name" "$runs" "$wall" "$corpus" "$outcome"
done
