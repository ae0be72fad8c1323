# Sourced by the benchmark scripts: a release build, the data folder, the generated
# transactions and the pipelines over them.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/fengine-target}"
command -v /usr/bin/time >/dev/null || { apt-get update -qq && apt-get install -y -qq time; }

cargo build --release -q -p fengine -p fengine-benches
BIN="$CARGO_TARGET_DIR/release"
# FENGINE=<binary> measures another build (another commit's) with the same script and data.
FENGINE=$(realpath "${FENGINE:-$BIN/fengine}")
DATA="${BENCH_DATA:-/var/tmp/fengine-bench-data}"

# generate SIZE: the seeded transactions, 1m (10k customers) or 10m (100k), written once.
generate() {
  local rows customers
  case $1 in
    1m) rows=1000000 customers=10000 ;;
    10m) rows=10000000 customers=100000 ;;
    *) echo "unknown size $1 (1m or 10m)" >&2; exit 2 ;;
  esac
  if [ ! -f "$DATA/$1/.done" ]; then
    rm -rf "$DATA/$1"
    "$BIN/gen-transactions" --rows "$rows" --customers "$customers" --merchants 1000 \
      --files 8 --out "$DATA/$1"
    touch "$DATA/$1/.done"
  fi
}

# bench_pipeline FILE SIZE PIPELINE: writes at FILE a pipeline running
# benches/pipelines/PIPELINE.sql over the SIZE transactions.
bench_pipeline() {
  cat > "$1" <<SQL
CREATE EXTERNAL TABLE transactions STORED AS PARQUET LOCATION '$DATA/$2/';
INCLUDE '$PWD/benches/pipelines/$3.sql';
SQL
}

# timed_snapshot BINARY FOLDER first|later: the wall time (s) and peak RSS (KiB) of one run
# of FOLDER/bench.sql in a fresh warehouse: a version's first snapshot (as-of 2024-04-01),
# or a later one (2024-04-02, after an untimed run of 2024-04-01: the same rows).
timed_snapshot() {
  rm -rf "$2/warehouse"
  local as_of=2024-04-01T00:00:00Z
  if [ "$3" = later ]; then
    (cd "$2" && "$1" run bench.sql --as-of "$as_of" > /dev/null)
    as_of=2024-04-02T00:00:00Z
  fi
  (cd "$2" && /usr/bin/time -f "%e %M" -o time.txt \
    "$1" run bench.sql --as-of "$as_of" > /dev/null)
  cat "$2/time.txt"
}
