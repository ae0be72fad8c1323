#!/usr/bin/env bash
# Benchmark of issue 15: fitting five transforms on 10M rows, fengine against scikit-learn.
# The same 10M generated transactions (8 Parquet files), the same five transforms of the
# same columns: standard_scale(amount), min_max(merchant_id), log1p(amount),
# one_hot(category), bucketize(amount, quantiles => 10). fengine: `encoder fit` of
# pipelines/encoders.sql, the whole process (planning, the Parquet scan, the fit, the
# catalogue write), a fresh warehouse each run. scikit-learn: pandas reading the three
# columns from the same files, then StandardScaler, MinMaxScaler, FunctionTransformer(log1p),
# OneHotEncoder and KBinsDiscretizer(encode='ordinal', subsample=None: exact, as fengine
# fits), timed inside Python from the read to the last fit (imports left out).
# Alternating runs, medians and ranges. Release build. Not in CI.
# Usage: benches/run-encoders.sh [runs] [1m|10m]
source "$(dirname "$0")/lib.sh"
RUNS=${1:-5}
SIZE=${2:-10m}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
generate "$SIZE"
python3 -c 'import sklearn, pandas, pyarrow' 2>/dev/null ||
  python3 -m pip install --quiet 'scikit-learn==1.9.1' 'pandas>=2.2,<4' 'pyarrow>=17'

cat > "$WORK/encoders.sql" <<SQL
CREATE EXTERNAL TABLE transactions STORED AS PARQUET LOCATION '$DATA/$SIZE/';
INCLUDE '$PWD/benches/pipelines/encoders.sql';
SQL

cat > "$WORK/sklearn_fit.py" <<'PY'
import sys, time
import numpy as np
import pandas as pd
from sklearn.preprocessing import (FunctionTransformer, KBinsDiscretizer, MinMaxScaler,
                                   OneHotEncoder, StandardScaler)
started = time.perf_counter()
rows = pd.read_parquet(sys.argv[1], columns=["amount", "merchant_id", "category"])
StandardScaler().fit(rows[["amount"]])
MinMaxScaler().fit(rows[["merchant_id"]])
FunctionTransformer(np.log1p).fit(rows[["amount"]])
OneHotEncoder(sparse_output=False).fit(rows[["category"]])
KBinsDiscretizer(n_bins=10, encode="ordinal", strategy="quantile", subsample=None).fit(rows[["amount"]])
print(f"{time.perf_counter() - started:.2f}")
PY

fengine_once() {
  rm -rf "$WORK/warehouse"
  (cd "$WORK" && /usr/bin/time -f "%e %M" -o time.txt "$FENGINE" encoder fit encoders.sql > /dev/null)
  cat "$WORK/time.txt"
}
sklearn_once() {
  /usr/bin/time -f "%M" -o "$WORK/rss.txt" python3 "$WORK/sklearn_fit.py" "$DATA/$SIZE/" > "$WORK/wall.txt"
  echo "$(cat "$WORK/wall.txt") $(cat "$WORK/rss.txt")"
}

declare -A walls rss
labels=("fengine encoder fit (whole process)" "scikit-learn 1.9.1 + pandas (read and fit)")
for _ in $(seq "$RUNS"); do
  read -r wall kb < <(fengine_once); walls[0]+="$wall "; rss[0]+="$kb "
  read -r wall kb < <(sklearn_once); walls[1]+="$wall "; rss[1]+="$kb "
done
echo "| $SIZE rows, five transforms | median wall | range | peak RSS (median) |"
echo "|---|---|---|---|"
for i in 0 1; do
  python3 - "${labels[$i]}" "${walls[$i]}" "${rss[$i]}" <<'PY'
import statistics, sys
label, walls, rss = sys.argv[1], [float(w) for w in sys.argv[2].split()], [int(k) for k in sys.argv[3].split()]
print(f"| {label} | {statistics.median(walls):.2f} s | {min(walls):.2f}–{max(walls):.2f} s | {statistics.median(rss) // 1024} MiB |")
PY
done
