#!/usr/bin/env bash
# Benchmark of issue 15: what statistics, histograms, drift and expectations cost the run
# that writes a snapshot. The 10M-row rolling snapshot (pipelines/rolling_7d.sql) by a
# build without any of them (BASELINE=<binary>, a commit before issue 15), then by this
# one, which profiles every snapshot: a version's first snapshot (its histograms on its own
# deciles, counted on a grid of its values' bits as they stream by), a later one (binned on the first one's
# edges as its rows stream by, drift measured), and a later one with five expectations
# (pipelines/rolling_7d_checked.sql, one of them DRIFT). A later snapshot is the run of
# as-of 2024-04-02 after one of 2024-04-01 (not timed): the same rows, all before both.
# Alternating runs, a fresh warehouse each, medians and ranges. Release build. Not in CI.
# Usage: BASELINE=<binary> benches/run-expectations.sh [runs] [1m|10m]
source "$(dirname "$0")/lib.sh"
RUNS=${1:-5}
SIZE=${2:-10m}
BASELINE=$(realpath "${BASELINE:?the binary of a commit before issue 15}")
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
generate "$SIZE"

# once BINARY PIPELINE first|later: the wall time (s) and peak RSS (KiB) of one run.
once() {
  bench_pipeline "$WORK/bench.sql" "$SIZE" "$2"
  timed_snapshot "$1" "$WORK" "$3"
}

declare -A walls rss
labels=(
  "baseline: no statistics, no expectations; first snapshot"
  "baseline: no statistics, no expectations; later snapshot"
  "statistics; first snapshot of the version"
  "statistics, drift; later snapshot"
  "statistics, drift and five expectations; later snapshot"
)
for _ in $(seq "$RUNS"); do
  for i in 0 1 2 3 4; do
    case $i in
      0) read -r wall kb < <(once "$BASELINE" rolling_7d first) ;;
      1) read -r wall kb < <(once "$BASELINE" rolling_7d later) ;;
      2) read -r wall kb < <(once "$FENGINE" rolling_7d first) ;;
      3) read -r wall kb < <(once "$FENGINE" rolling_7d later) ;;
      4) read -r wall kb < <(once "$FENGINE" rolling_7d_checked later) ;;
    esac
    walls[$i]+="$wall "
    rss[$i]+="$kb "
  done
done
echo "| $SIZE rows, rolling_7d | median wall | range | peak RSS (median) |"
echo "|---|---|---|---|"
for i in 0 1 2 3 4; do
  python3 - "${labels[$i]}" "${walls[$i]}" "${rss[$i]}" <<'PY'
import statistics, sys
label, walls, rss = sys.argv[1], [float(w) for w in sys.argv[2].split()], [int(k) for k in sys.argv[3].split()]
print(f"| {label} | {statistics.median(walls):.2f} s | {min(walls):.2f}–{max(walls):.2f} s | {statistics.median(rss) // 1024} MiB |")
PY
done
