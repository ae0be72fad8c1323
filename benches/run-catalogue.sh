#!/usr/bin/env bash
# Benchmark of issue 13: `catalog list`, `catalog show` and `catalog docs` over a generated
# catalogue — 1,000 groups x 50 features x 100 snapshots in the embedded catalog, and 100
# such groups in Glue on a local moto server, which pages GetTables and GetPartitions by
# 100 as Glue does (tests/moto_server.py). Prints the median wall time of RUNS runs (5 by
# default) and its range. Release build with the AWS SDKs. Not part of CI.
# Usage: benches/run-catalogue.sh [runs] [embedded|glue|both]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/fengine-target}"
cargo build --release -q -p fengine --features aws
cargo build --release -q -p fengine-benches --features aws --bin gen-catalogue
BIN="$CARGO_TARGET_DIR/release"
FENGINE=$(realpath "${FENGINE:-$BIN/fengine}")
RUNS=${1:-5}
WHICH=${2:-both}
DATA="${BENCH_DATA:-/var/tmp/fengine-bench-data}/catalogue"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"; [ -n "${moto:-}" ] && kill "$moto" 2>/dev/null || true' EXIT

# measure LABEL COMMAND...: the median and range of RUNS wall times of COMMAND.
measure() {
  local label=$1
  shift
  python3 - "$RUNS" "$label" "$@" <<'PY'
import statistics, subprocess, sys, time
runs, label, command = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
times = []
for _ in range(runs):
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    times.append(time.perf_counter() - start)
print(f"| {label} | {statistics.median(times):.2f} s | {min(times):.2f}–{max(times):.2f} s |")
PY
}

echo "| command | median | range |"
echo "|---|---|---|"

# The embedded catalog: generated once.
if [ "$WHICH" != glue ]; then
if [ ! -f "$DATA/embedded/.done" ]; then
  rm -rf "$DATA/embedded"
  "$BIN/gen-catalogue" --groups 1000 --features 50 --snapshots 100 \
    --warehouse "$DATA/embedded/warehouse"
  touch "$DATA/embedded/.done"
fi
cd "$DATA/embedded"
measure "embedded: catalog list (1,000 groups)" "$FENGINE" catalog list
measure "embedded: catalog list --search 'refunds 17'" "$FENGINE" catalog list --search "refunds 17"
measure "embedded: catalog list --tag team=fraud --output json" "$FENGINE" catalog list --tag team=fraud --output json
measure "embedded: catalog show group_0500 (100 snapshots)" "$FENGINE" catalog show group_0500
measure "embedded: catalog docs (1,001 pages)" "$FENGINE" catalog docs --out "$WORK/site"
du -sh "$WORK/site" | awk '{print "embedded site: " $1}' >&2
cd - >/dev/null
fi
[ "$WHICH" = embedded ] && exit 0

# Glue on a local moto server: 100 groups, generated at each run of this script.
python3 -m pip install --quiet --disable-pip-version-check 'moto[server]>=5.1,<6'
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 tests/moto_server.py -H 127.0.0.1 -p "$port" >"$WORK/moto.log" 2>&1 &
moto=$!
export AWS_ENDPOINT_URL="http://127.0.0.1:$port" AWS_ALLOW_HTTP=true
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
until curl -sf "$AWS_ENDPOINT_URL/moto-api/" >/dev/null; do sleep 0.2; done
curl -sf -X PUT "$AWS_ENDPOINT_URL/bench-catalogue" >/dev/null
"$BIN/gen-catalogue" --groups 100 --features 50 --snapshots 100 \
  --warehouse s3://bench-catalogue/warehouse --glue-database bench_catalogue
cat > "$WORK/fengine.toml" <<TOML
[profiles.glue]
warehouse = "s3://bench-catalogue/warehouse"
catalog = "glue"
glue_database = "bench_catalogue"
online = "dynamodb"
dynamodb_table_prefix = "bench_"
TOML
cd "$WORK"
measure "glue: catalog list (100 groups)" "$FENGINE" catalog list --profile glue
measure "glue: catalog show group_0050 (100 snapshots)" "$FENGINE" catalog show group_0050 --profile glue
measure "glue: catalog docs (101 pages)" "$FENGINE" catalog docs --out "$WORK/glue-site" --profile glue
