#!/usr/bin/env bash
# Benchmark of issue 4's training sets: a 1M-row spine joined point-in-time to rolling 7-day
# features of all 10M generated transactions, fengine next to DuckDB's ASOF JOIN on the same
# Parquet snapshot, in the same run. Release build; DuckDB from PyPI. Not part of CI.
# Usage: benches/run-training-set.sh [spine rows, default 1000000]
source "$(dirname "$0")/lib.sh"
python3 -m pip install --quiet --disable-pip-version-check 'duckdb>=1.1'
SPINE_ROWS="${1:-1000000}"
WORK="$DATA/training-set"

generate 10m

# The feature snapshot: computed once and kept (DataFusion's own window operator takes
# most of a minute on it; issue 5 is about that).
if [ ! -f "$WORK/.done" ]; then
  rm -rf "$WORK" && mkdir -p "$WORK"
  bench_pipeline "$WORK/features.sql" 10m rolling_7d
  (cd "$WORK" && "$FENGINE" run features.sql --as-of 2024-04-01T00:00:00Z)
  touch "$WORK/.done"
fi
SNAPSHOT=$(python3 - "$WORK/warehouse/catalog.sqlite" <<'PY'
import json, sqlite3, sys
row = sqlite3.connect(sys.argv[1]).execute(
    "SELECT definition FROM catalog_partitions WHERE table_name = 'bench_rolling_7d_v1'").fetchone()
print(json.loads(row[0])["location"].removeprefix("file://"))
PY
)

# The spine: labelled events of random customers at random times over the 90 days.
SPINE="$WORK/spine-$SPINE_ROWS.parquet"
if [ ! -f "$SPINE" ]; then
  python3 - "$SPINE" "$SPINE_ROWS" <<'PY'
import duckdb, sys
path, rows = sys.argv[1], int(sys.argv[2])
duckdb.sql(f"""
COPY (SELECT range AS row_id,
             (1 + floor(random() * 100000))::BIGINT AS customer_id,
             TIMESTAMPTZ '2024-01-02 00:00:00+00' + to_microseconds((random() * 90 * 86400e6)::BIGINT) AS label_time,
             (random() < 0.02) AS label
      FROM range({rows}))
TO '{path}' (FORMAT parquet, COMPRESSION zstd)""")
PY
fi

cd "$WORK"
rm -f fengine-out.parquet fengine-small-out.parquet duckdb-out.parquet
/usr/bin/time -f "%e %M" -o fengine-time.txt "$FENGINE" training-set \
  --spine "$SPINE" --timestamp label_time --features bench_rolling_7d \
  --out fengine-out.parquet --output json > fengine-manifest.json
# The same join within a 256 MiB memory pool: the sorts spill to disk.
printf "[profiles.small]\nmemory_limit = '256MiB'\n" > small.toml
/usr/bin/time -f "%e %M" -o fengine-small-time.txt "$FENGINE" training-set \
  --spine "$SPINE" --timestamp label_time --features bench_rolling_7d \
  --config small.toml --profile small \
  --out fengine-small-out.parquet --output json > fengine-small-manifest.json
/usr/bin/time -f "%e %M" -o duckdb-time.txt python3 - "$SPINE" "$SNAPSHOT" <<'PY'
import duckdb, sys
spine, snapshot = sys.argv[1], sys.argv[2]
con = duckdb.connect()
con.execute("SET threads = 2")
con.execute(f"""
COPY (SELECT s.*, f.amount_sum_7d, f.txn_count_7d, f.event_time AS bench_rolling_7d__event_time
      FROM read_parquet('{spine}') s
      ASOF LEFT JOIN read_parquet('{snapshot}*.parquet') f
        ON s.customer_id = f.customer_id AND s.label_time >= f.event_time
      ORDER BY s.row_id)
TO 'duckdb-out.parquet' (FORMAT parquet, COMPRESSION zstd)""")
PY

# The two engines must agree row for row before their times mean anything.
python3 - <<'PY'
import duckdb
differ = duckdb.sql("""
SELECT count(*) FROM 'fengine-out.parquet' a JOIN 'duckdb-out.parquet' b USING (row_id)
WHERE a.amount_sum_7d IS DISTINCT FROM b.amount_sum_7d
   OR a.txn_count_7d IS DISTINCT FROM b.txn_count_7d
   OR a.bench_rolling_7d__event_time IS DISTINCT FROM b.bench_rolling_7d__event_time""").fetchall()[0][0]
rows = duckdb.sql("SELECT count(*), count(bench_rolling_7d__event_time) FROM 'fengine-out.parquet'").fetchall()[0]
order = duckdb.sql("""SELECT bool_and(row_id = n) FROM (SELECT row_id, row_number() OVER () - 1 AS n
                      FROM 'fengine-out.parquet')""").fetchall()[0][0]
assert differ == 0, f"{differ} rows differ between fengine and DuckDB"
spilled_differ = duckdb.sql("""SELECT count(*) FROM 'fengine-out.parquet' a JOIN 'fengine-small-out.parquet' b USING (row_id)
                     WHERE a.amount_sum_7d IS DISTINCT FROM b.amount_sum_7d""").fetchall()[0][0]
assert spilled_differ == 0, "the run within 256 MiB differs"
assert order, "fengine's rows are not in spine order"
print(f"agree: {rows[0]:,} rows, {rows[1]:,} matched, in spine order")
PY
read -r f_wall f_rss < fengine-time.txt
read -r s_wall s_rss < fengine-small-time.txt
read -r d_wall d_rss < duckdb-time.txt
spilled=$(python3 -c "import json; print(round(json.load(open('fengine-small-manifest.json'))['spilled_bytes'] / 2**20))")
echo "| engine | spine rows | feature rows | wall | peak RSS |"
echo "|---|---|---|---|---|"
echo "| fengine training-set | $SPINE_ROWS | 10M | ${f_wall} s | $((f_rss / 1024)) MiB |"
echo "| fengine training-set, memory_limit 256 MiB (${spilled} MiB spilled) | $SPINE_ROWS | 10M | ${s_wall} s | $((s_rss / 1024)) MiB |"
echo "| DuckDB ASOF LEFT JOIN | $SPINE_ROWS | 10M | ${d_wall} s | $((d_rss / 1024)) MiB |"
