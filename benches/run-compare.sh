#!/usr/bin/env bash
# Side by side: a baseline fengine binary (another commit's release build) and this
# checkout's, on the same generated transactions, alternating run by run (each first every
# other time), medians of RUNS:
# rolling windows (rolling_7d, rolling_3w), a 30-day snapshot aggregate (spend_30d) and its
# backfill sweep over 90 daily as-ofs. Release build. Not part of CI.
# Usage: benches/run-compare.sh <baseline fengine binary> [1m|10m] [runs, default 5]
source "$(dirname "$0")/lib.sh"
BASELINE=$(realpath "$1")
SIZE="${2:-1m}"
RUNS="${3:-5}"
generate "$SIZE"

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

once() { # binary pipeline fengine-arguments...: prints "wall rss_kb"
  local binary=$1 pipeline=$2
  shift 2
  rm -rf "$WORK/warehouse"
  bench_pipeline "$WORK/bench.sql" "$SIZE" "$pipeline"
  (cd "$WORK" && /usr/bin/time -f "%e %M" -o time.txt "$binary" "$@" > /dev/null)
  cat "$WORK/time.txt"
}

compare() { # label pipeline fengine-arguments...
  local label=$1 pipeline=$2
  shift 2
  local baseline=() current=()
  # Each goes first every other time: the run after another one is slower (its files are
  # still being written back), which would otherwise count against the second binary.
  for run in $(seq "$RUNS"); do
    if ((run % 2)); then
      baseline+=("$(once "$BASELINE" "$pipeline" "$@")")
      current+=("$(once "$FENGINE" "$pipeline" "$@")")
    else
      current+=("$(once "$FENGINE" "$pipeline" "$@")")
      baseline+=("$(once "$BASELINE" "$pipeline" "$@")")
    fi
  done
  python3 - "$SIZE" "$label" "${baseline[@]}" -- "${current[@]}" <<'PY'
import statistics, sys
size, label, *runs = sys.argv[1:]
split = runs.index("--")
def median(runs):
    walls = [float(r.split()[0]) for r in runs]
    rss = [int(r.split()[1]) / 1024 for r in runs]
    return f"{statistics.median(walls):.2f} s ({min(walls):.2f}-{max(walls):.2f}), {statistics.median(rss):.0f} MiB"
print(f"| {size} | {label} | {median(runs[:split])} | {median(runs[split + 1:])} |")
PY
}

AS_OF=(--as-of 2024-04-01T00:00:00Z)
echo "| data | workload | baseline: median wall (range), peak RSS | this checkout |"
echo "|---|---|---|---|"
compare "run rolling_7d" rolling_7d run bench.sql "${AS_OF[@]}"
compare "run rolling_3w" rolling_3w run bench.sql "${AS_OF[@]}"
compare "run spend_30d" spend_30d run bench.sql "${AS_OF[@]}"
compare "backfill spend_30d, 90 daily as-ofs" spend_30d backfill bench.sql \
  --from 2024-01-03T00:00:00Z --to 2024-04-01T00:00:00Z --every 1d
