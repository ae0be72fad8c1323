#!/usr/bin/env bash
# Benchmark of issue 5: rolling RANGE windows per transaction (pipelines/rolling_7d.sql, and
# the 1d/7d/30d variant pipelines/rolling_3w.sql), fengine's end-to-end `run` next to Polars
# (rolling_*_by over customer_id) on the same Parquet files in the same run, each writing
# its result as zstd Parquet, and the same run with DataFusion's own window operator.
# Release build; Polars from PyPI. Not part of CI.
# Usage: benches/run-rolling.sh [1m|10m ...]   (default: both)
source "$(dirname "$0")/lib.sh"
python3 -m pip install --quiet --disable-pip-version-check 'polars>=1.0'

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

fengine() { # size pipeline [operator]: fengine's window operator, or datafusion's
  local operator=${3:-fengine} engine="fengine run"
  [ "$operator" = datafusion ] && engine="fengine run, DataFusion's operator"
  rm -rf "$WORK/warehouse"
  bench_pipeline "$WORK/bench.sql" "$1" "$2"
  (cd "$WORK" && FENGINE_WINDOW_OPERATOR=$operator /usr/bin/time -f "%e %M" -o time.txt \
    "$FENGINE" run bench.sql --as-of 2024-04-01T00:00:00Z > /dev/null)
  read -r wall rss_kb < "$WORK/time.txt"
  echo "| $1 | $2 | $engine | ${wall} s | $((rss_kb / 1024)) MiB |"
}

polars() { # size pipeline windows...
  local size=$1 pipeline=$2; shift 2
  /usr/bin/time -f "%e %M" -o "$WORK/time.txt" python3 - "$DATA/$size" "$WORK/polars.parquet" "$@" <<'PY'
import sys
import polars as pl
data, out, *windows = sys.argv[1:]
columns = []
for w in windows:
    amount = pl.col("amount")
    columns.append(amount.rolling_sum_by("event_time", window_size=w, closed="both")
                   .over("customer_id").alias(f"amount_sum_{w}"))
    columns.append(amount.is_not_null().cast(pl.Int64)
                   .rolling_sum_by("event_time", window_size=w, closed="both")
                   .over("customer_id").alias(f"txn_count_{w}"))
(pl.scan_parquet(f"{data}/*.parquet")
   .filter(pl.col("event_time") <= pl.datetime(2024, 4, 1, time_zone="UTC"))
   .sort("customer_id", "event_time")
   .select("customer_id", "event_time", *columns)
   .sink_parquet(out, compression="zstd"))
PY
  read -r wall rss_kb < "$WORK/time.txt"
  echo "| $size | $pipeline | Polars | ${wall} s | $((rss_kb / 1024)) MiB |"
}

sizes=("${@:-1m 10m}")
echo "| data | pipeline | engine | wall | peak RSS |"
echo "|---|---|---|---|---|"
for size in ${sizes[@]}; do
  generate "$size"
  fengine "$size" rolling_7d
  polars "$size" rolling_7d 7d
  fengine "$size" rolling_7d datafusion
  fengine "$size" rolling_3w
  polars "$size" rolling_3w 1d 7d 30d
  fengine "$size" rolling_3w datafusion
done
