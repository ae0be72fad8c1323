#!/usr/bin/env bash
# Benchmark of issue 4's backfills: 90 daily as-ofs of the 30-day-window snapshot pipeline
# (pipelines/spend_30d.sql) on 1M generated transactions, next to one single as-of run of
# the same pipeline, each into a fresh warehouse. Release build. Not part of CI.
# Usage: benches/run-backfill.sh [1m|10m]
source "$(dirname "$0")/lib.sh"
SIZE="${1:-1m}"
generate "$SIZE"

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
bench_pipeline "$WORK/bench.sql" "$SIZE" spend_30d

measure() { # label, then the fengine arguments
  local label=$1; shift
  rm -rf "$WORK/warehouse"
  (cd "$WORK" && /usr/bin/time -f "%e %M" -o time.txt "$FENGINE" "$@" > /dev/null)
  read -r wall rss_kb < "$WORK/time.txt"
  echo "| $SIZE | $label | ${wall} s | $((rss_kb / 1024)) MiB |"
  eval "${label%% *}_WALL=$wall"
}

echo "| data | command | wall | peak RSS |"
echo "|---|---|---|---|"
measure "single run at 2024-04-01" run bench.sql --as-of 2024-04-01T00:00:00Z
measure "backfill of 90 daily as-ofs" backfill bench.sql \
  --from 2024-01-03T00:00:00Z --to 2024-04-01T00:00:00Z --every 1d
python3 -c "print(f'backfill / single run: {float($backfill_WALL) / float($single_WALL):.1f}x')"
