#!/usr/bin/env bash
# Benchmark of issue 14: `run --if-changed` on a pipeline whose source (10,000 CSV files) did
# not change since its last run — locally, and on S3 and Glue on a local moto server, where
# it also counts the list requests (ListObjectsV2) one such run makes. Prints the median
# wall time of RUNS runs (5 by default) and its range, beside a full run and `status`.
# Release build with the AWS SDKs. Not part of CI.
# Usage: benches/run-if-changed.sh [runs] [local|s3|both]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/fengine-target}"
cargo build --release -q -p fengine --features aws
FENGINE=$(realpath "${FENGINE:-$CARGO_TARGET_DIR/release/fengine}")
RUNS=${1:-5}
WHICH=${2:-both}
FILES=10000
DATA="${BENCH_DATA:-/var/tmp/fengine-bench-data}/if-changed"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"; [ -n "${moto:-}" ] && kill "$moto" 2>/dev/null || true' EXIT

# measure LABEL EXPECTED-EXIT COMMAND...: the median and range of RUNS wall times.
measure() {
  local label=$1 expected=$2
  shift 2
  python3 - "$RUNS" "$label" "$expected" "$@" <<'PY'
import statistics, subprocess, sys, time
runs, label, expected, command = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4:]
times = []
for _ in range(runs):
    start = time.perf_counter()
    code = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
    times.append(time.perf_counter() - start)
    if code != expected:
        sys.exit(f"{label}: exit {code}, expected {expected}")
print(f"| {label} | {statistics.median(times):.2f} s | {min(times):.2f}–{max(times):.2f} s |")
PY
}

# The events: FILES small CSV files of 10 rows each, written once.
if [ ! -f "$DATA/.done" ]; then
  rm -rf "$DATA"
  python3 - "$DATA/events" "$FILES" <<'PY'
import os, sys
folder, files = sys.argv[1], int(sys.argv[2])
os.makedirs(folder)
for f in range(files):
    with open(f"{folder}/part-{f:05}.csv", "w") as out:
        out.write("k,t,v\n")
        for r in range(10):
            out.write(f"{(f * 10 + r) % 1000},2024-03-01T{r:02}:00:00Z,{f + r * 0.5}\n")
PY
  touch "$DATA/.done"
fi

pipeline() {
  cat <<SQL
CREATE EXTERNAL TABLE events (k BIGINT NOT NULL, t TIMESTAMP NOT NULL, v DOUBLE NOT NULL)
STORED AS CSV LOCATION '$1' OPTIONS ('format.has_header' 'true');
CREATE FEATURE GROUP totals KEY (k) EVENT TIME t AS
SELECT k, max(t) AS t, sum(v) AS total, count(*) AS n FROM events GROUP BY k;
SQL
}

echo "| command ($FILES source files) | median | range |"
echo "|---|---|---|"

if [ "$WHICH" != s3 ]; then
  mkdir "$WORK/local" && cd "$WORK/local"
  pipeline "$DATA/events/" > p.sql
  "$FENGINE" run p.sql --as-of 2024-03-02T00:00:00Z >/dev/null 2>&1
  measure "local: run (computes)" 0 "$FENGINE" run p.sql --as-of 2024-03-02T00:00:00Z
  measure "local: run --if-changed (unchanged: exit 6)" 6 "$FENGINE" run p.sql --as-of 2024-03-03T00:00:00Z --if-changed
  measure "local: status" 0 "$FENGINE" status p.sql
  cd - >/dev/null
fi
[ "$WHICH" = local ] && exit 0

python3 -m pip install --quiet --disable-pip-version-check 'moto[server]>=5.1,<6'
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 tests/moto_server.py -H 127.0.0.1 -p "$port" >"$WORK/moto.log" 2>&1 &
moto=$!
export AWS_ENDPOINT_URL="http://127.0.0.1:$port" AWS_ALLOW_HTTP=true
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
until curl -sf "$AWS_ENDPOINT_URL/moto-api/" >/dev/null; do sleep 0.2; done
python3 - "$DATA/events" <<'PY'
import os, sys, boto3
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
s3.create_bucket(Bucket="bench-if-changed")
for name in sorted(os.listdir(sys.argv[1])):
    with open(os.path.join(sys.argv[1], name), "rb") as body:
        s3.put_object(Bucket="bench-if-changed", Key=f"events/{name}", Body=body.read())
PY
mkdir "$WORK/s3" && cd "$WORK/s3"
cat > fengine.toml <<TOML
[profiles.aws]
warehouse = "s3://bench-if-changed/warehouse"
catalog = "glue"
glue_database = "bench_if_changed"
online = "dynamodb"
dynamodb_table_prefix = "bench_"
TOML
pipeline "s3://bench-if-changed/events/" > p.sql
"$FENGINE" run p.sql --as-of 2024-03-02T00:00:00Z --profile aws >/dev/null 2>&1
lists() { grep -c 'list-type=2' "$WORK/moto.log" || true; }
before=$(lists)
"$FENGINE" run p.sql --as-of 2024-03-03T00:00:00Z --if-changed --profile aws >/dev/null 2>&1 || [ $? = 6 ]
echo "s3: list requests of one run --if-changed: $(( $(lists) - before ))" >&2
measure "s3 (moto): run (computes)" 0 "$FENGINE" run p.sql --as-of 2024-03-02T00:00:00Z --profile aws
measure "s3 (moto): run --if-changed (unchanged: exit 6)" 6 "$FENGINE" run p.sql --as-of 2024-03-03T00:00:00Z --if-changed --profile aws
measure "s3 (moto): status" 0 "$FENGINE" status p.sql --profile aws
