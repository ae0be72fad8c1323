#!/usr/bin/env bash
# Benchmark: what statistics cost as a group widens. A group of N numeric features (each a
# projection of the 1M generated transactions, `amount * i + merchant_id`, so that every
# column holds its own ~1M distinct values) and one category, written by a build without
# statistics (BASELINE=<binary>, a commit before issue 15) and by this one: a version's
# first snapshot (histograms on its own deciles) and a later one (binned on the first's
# edges, drift measured). 1M rows x 100 features, and 100k rows (the customers below 1,000)
# x 1,000 features: the same 100M values, narrow and wide. Alternating runs, a fresh
# warehouse each, medians and ranges. Release build. Not in CI.
# Usage: BASELINE=<binary> benches/run-wide-statistics.sh [runs]
source "$(dirname "$0")/lib.sh"
RUNS=${1:-5}
BASELINE=$(realpath "${BASELINE:?the binary of a commit before issue 15}")
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
generate 1m

# wide_pipeline FILE FEATURES CUSTOMERS: a group of FEATURES numbers and a category over the
# transactions of the customers below CUSTOMERS.
wide_pipeline() {
  {
    echo "CREATE EXTERNAL TABLE transactions STORED AS PARQUET LOCATION '$DATA/1m/';"
    echo "CREATE FEATURE GROUP bench_wide KEY (customer_id) EVENT TIME event_time AS"
    echo "SELECT customer_id, event_time, category,"
    for i in $(seq 1 "$2"); do
      echo "  amount * $i + merchant_id AS f_$i$([ "$i" -lt "$2" ] && echo ,)"
    done
    echo "FROM transactions WHERE event_time <= as_of() AND customer_id < $3;"
  } > "$1"
}


for shape in "100 10000" "1000 1000"; do
  read -r features customers <<< "$shape"
  wide_pipeline "$WORK/bench.sql" "$features" "$customers"
  declare -A walls=() rss=()
  labels=(
    "baseline: no statistics; first snapshot"
    "statistics; first snapshot of the version"
    "statistics, drift; later snapshot"
  )
  for _ in $(seq "$RUNS"); do
    for i in 0 1 2; do
      case $i in
        0) read -r wall kb < <(timed_snapshot "$BASELINE" "$WORK" first) ;;
        1) read -r wall kb < <(timed_snapshot "$FENGINE" "$WORK" first) ;;
        2) read -r wall kb < <(timed_snapshot "$FENGINE" "$WORK" later) ;;
      esac
      walls[$i]+="$wall "
      rss[$i]+="$kb "
    done
  done
  echo
  echo "| $features features, customers < $customers | median wall | range | peak RSS (median) |"
  echo "|---|---|---|---|"
  for i in 0 1 2; do
    python3 - "${labels[$i]}" "${walls[$i]}" "${rss[$i]}" <<'PY'
import statistics, sys
label, walls, rss = sys.argv[1], [float(w) for w in sys.argv[2].split()], [int(k) for k in sys.argv[3].split()]
print(f"| {label} | {statistics.median(walls):.2f} s | {min(walls):.2f}–{max(walls):.2f} s | {statistics.median(rss) // 1024} MiB |")
PY
  done
done
