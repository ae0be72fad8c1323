#!/usr/bin/env bash
# Benchmarks of issue 2: a 30-day-window snapshot pipeline and the SQLite online load, at
# 1M transactions / 10k customers and 10M transactions / 100k customers.
# Release build; prints wall time, peak RSS and the run manifest's phase timings.
# Usage: benches/run.sh [1m|10m ...]   (default: both). Not part of CI.
source "$(dirname "$0")/lib.sh"
AS_OF="2024-04-01T00:00:00Z"

bench() { # size pipeline
  local size=$1 pipeline=$2 work
  work=$(mktemp -d)
  bench_pipeline "$work/bench.sql" "$size" "$pipeline"
  (cd "$work" && /usr/bin/time -f "%e %M" -o time.txt "$FENGINE" run bench.sql --as-of "$AS_OF" --output json > manifest.json)
  read -r wall rss_kb < "$work/time.txt"
  python3 - "$size" "$pipeline" "$wall" "$rss_kb" "$work/manifest.json" <<'PY'
import json, sys
size, pipeline, wall, rss_kb, path = sys.argv[1:]
group = json.load(open(path))["groups"][0]
t = group["timings_ms"]
print(f"| {size} | {pipeline} | {group['rows_written']:,} | {float(wall):.2f} s | {int(rss_kb) / 1024:.0f} MiB "
      f"| {t['compute_and_write'] / 1000:.2f} s | {t['check'] / 1000:.2f} s | {t['online'] / 1000:.2f} s "
      f"| {group['online'].get('rows', 0):,} |")
PY
  rm -rf "$work"
}

sizes=("${@:-1m 10m}")
echo "| data | pipeline | rows written | wall | peak RSS | compute+write | checks | online load | rows loaded |"
echo "|---|---|---|---|---|---|---|---|---|"
for size in ${sizes[@]}; do
  generate "$size"
  bench "$size" spend_30d
  bench "$size" customer_merchant
done
