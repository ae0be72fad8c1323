#!/usr/bin/env bash
# Benchmark of issue 3: the DynamoDB loader's own cost, at 100k and 1M items, into a local
# endpoint (another process, on 127.0.0.1) that accepts every request at once.
# Release build with the AWS SDKs. Not part of CI.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/fengine-target}"
cargo build --release -q -p fengine-benches --features aws --bin bench-dynamodb-load
echo "| items | requests in flight | wall | items/s | CPU per 1,000 items |"
echo "|---|---|---|---|---|"
for items in 100000 1000000; do
  "$CARGO_TARGET_DIR/release/bench-dynamodb-load" --items "$items"
done
"$CARGO_TARGET_DIR/release/bench-dynamodb-load" --items 1000000 --requests-in-flight 8
