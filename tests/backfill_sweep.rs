//! A backfill computes window aggregates in one sweep over the source; each of its
//! snapshots must equal what DataFusion computes for that as-of alone (`fengine run`), on
//! generated data with nulls, NaN and infinities, negative values, equal timestamps, rows
//! exactly on the window bounds, FILTER windows and conditions, and both kinds of bounds.
//!
//! min and max read a column without NaN: DataFusion 55's min and max of doubles holding
//! NaN are wrong (they skip the NaN and numbers near it), where the sweep orders doubles
//! as Arrow's total order does, NaN above every number, as DuckDB and PostgreSQL do.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use arrow::util::display::array_value_to_string;
use common::*;
use fengine_testing::XorShift;

const HOUR: i64 = 3_600_000_000;
/// 2024-01-01T00:00:00Z
const BASE: i64 = 1_704_067_200_000_000;

const PIPELINE: &str = "
CREATE EXTERNAL TABLE events STORED AS PARQUET LOCATION 'events/';

CREATE FEATURE GROUP windows KEY (k) EVENT TIME event_time AS
SELECT k, as_of() AS event_time,
       sum(x) AS x_sum, count(x) AS x_count, count(*) AS rows, avg(x) AS x_avg,
       min(y) AS y_min, max(y) AS y_max, sum(n) AS n_sum, min(n) AS n_min, max(t) AS last_t,
       count(DISTINCT m) AS merchants,
       sum(x) FILTER (WHERE t > as_of() - INTERVAL '2 days') AS x_sum_2d,
       count(*) FILTER (WHERE cat = 'a') AS a_rows,
       max(n) FILTER (WHERE t >= as_of() - INTERVAL '3 days' AND cat <> 'b') AS n_max_3d_not_b
FROM events
WHERE t > as_of() - INTERVAL '10 days' AND t <= as_of() AND cat <> 'z'
GROUP BY k;

CREATE FEATURE GROUP history KEY (k, cat) EVENT TIME event_time AS
SELECT k, cat, max(t) AS event_time, count(*) AS rows, sum(n) AS n_sum, min(y) AS y_min
FROM events
WHERE t <= as_of()
GROUP BY k, cat;

-- Not a shape the sweep takes: computed at each as-of, beside the swept groups.
CREATE FEATURE GROUP plain KEY (k) EVENT TIME event_time AS
SELECT k, as_of() AS event_time, coalesce(sum(n), 0) AS n_sum
FROM events
WHERE t > as_of() - INTERVAL '5 days' AND t <= as_of()
GROUP BY k;

CREATE FEATURE GROUP recent KEY (k) EVENT TIME event_time AS
SELECT k, as_of() AS event_time, sum(n) AS n_sum, count(DISTINCT cat) AS cats, min(t) AS first_t
FROM events
WHERE t >= as_of() - INTERVAL '36 hours' AND t < as_of()
GROUP BY k;
";

fn write_events(workspace: &Workspace) {
    let mut random = XorShift(0xD1B5_4A32_D192_ED03);
    let rows = 6_000;
    let mut k = Vec::new();
    let mut t = Vec::new();
    let mut x = Vec::new();
    let mut y = Vec::new();
    let mut n = Vec::new();
    let mut m = Vec::new();
    let mut cat = Vec::new();
    for _ in 0..rows {
        k.push(random.below(40) as i64);
        // Whole hours over 25 days: many rows share a time, and rows fall exactly on the
        // as-ofs (midnights) and on the windows' bounds.
        t.push((random.below(50) != 0).then(|| BASE + random.below(25 * 24) as i64 * HOUR));
        x.push(match random.below(40) {
            0 | 1 => None,
            2 => Some(f64::NAN),
            3 => Some(f64::INFINITY),
            4 => Some(f64::NEG_INFINITY),
            _ => Some((random.below(20_000) as f64 - 10_000.0) / 7.0),
        });
        y.push(match random.below(40) {
            0 | 1 => None,
            2 => Some(f64::INFINITY),
            3 => Some(f64::NEG_INFINITY),
            _ => Some((random.below(20_000) as f64 - 10_000.0) / 3.0),
        });
        n.push((random.below(10) != 0).then(|| random.below(1_000) as i64 - 300));
        m.push(random.below(25) as i64);
        cat.push(["a", "b", "c", "z"][random.below(4) as usize]);
    }
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("k", Arc::new(Int64Array::from(k))),
        (
            "t",
            Arc::new(TimestampMicrosecondArray::from(t).with_timezone("UTC")),
        ),
        ("x", Arc::new(Float64Array::from(x))),
        ("y", Arc::new(Float64Array::from(y))),
        ("n", Arc::new(Int64Array::from(n))),
        ("m", Arc::new(Int64Array::from(m))),
        ("cat", Arc::new(StringArray::from(cat))),
    ];
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    write_parquet_file(&workspace.path("events/part-0.parquet"), &batch);
}

/// A snapshot's rows by key, each value as text (doubles compared within rounding).
type Rows = BTreeMap<String, Vec<(String, Option<f64>, String)>>;

fn snapshot(location: &str, keys: &[&str]) -> Rows {
    let batches = read_parquet_folder(location);
    let mut rows = Rows::new();
    for batch in &batches {
        for row in 0..batch.num_rows() {
            let text = |column: &ArrayRef| {
                if column.is_null(row) {
                    "NULL".to_string()
                } else {
                    array_value_to_string(column, row).unwrap()
                }
            };
            let key = keys
                .iter()
                .map(|k| text(batch.column_by_name(k).unwrap()))
                .collect::<Vec<_>>()
                .join("|");
            let values = batch
                .schema()
                .fields()
                .iter()
                .zip(batch.columns())
                .map(|(field, column)| {
                    let number = (field.data_type() == &DataType::Float64).then(|| {
                        let doubles = cast(column, &DataType::Float64).unwrap();
                        let doubles = doubles.as_any().downcast_ref::<Float64Array>().unwrap();
                        doubles.value(row)
                    });
                    let number = number.filter(|_| column.is_valid(row));
                    (field.name().clone(), number, text(column))
                })
                .collect();
            rows.insert(key, values);
        }
    }
    rows
}

fn same(a: &(String, Option<f64>, String), b: &(String, Option<f64>, String)) -> bool {
    match (a.1, b.1) {
        (Some(x), Some(y)) if x.is_nan() || y.is_nan() => x.is_nan() && y.is_nan(),
        (Some(x), Some(y)) => x == y || (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0),
        _ => a.2 == b.2,
    }
}

#[test]
fn swept_snapshots_equal_each_as_of_computed_alone() {
    let swept = Workspace::new();
    let alone = Workspace::new();
    for workspace in [&swept, &alone] {
        write_events(workspace);
        workspace.write("windows.sql", PIPELINE);
    }
    let backfill = |every: &str| {
        swept
            .fengine(&[
                "backfill",
                "windows.sql",
                "--from",
                "2024-01-03T00:00:00Z",
                "--to",
                "2024-01-26T00:00:00Z",
                "--every",
                every,
                "--output",
                "json",
            ])
            .success()
            .json()
    };
    // Every other day first, then every day: the second sweep's as-ofs have gaps where
    // the first registered snapshots.
    let first = backfill("2d");
    let manifest = backfill("1d");
    for manifest in [&first, &manifest] {
        assert_eq!(
            manifest["swept"],
            serde_json::json!(["windows", "history", "recent"]),
            "every group here is a window aggregate"
        );
    }
    // `fengine plan` tells beforehand which groups a backfill sweeps.
    let plan = swept
        .fengine(&["plan", "windows.sql", "--output", "json"])
        .success()
        .json();
    let planned: Vec<(&str, bool)> = plan["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            let sweeps = g["backfill_sweeps"].as_bool().unwrap();
            (g["group"].as_str().unwrap(), sweeps)
        })
        .collect();
    assert_eq!(
        planned,
        [
            ("windows", true),
            ("history", true),
            ("plain", false),
            ("recent", true)
        ]
    );
    let computed = manifest["as_ofs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| !a["groups"].as_array().unwrap().is_empty())
        .count();
    assert_eq!(computed, 12, "the days the first backfill skipped");
    let groups: [(&str, &[&str]); 4] = [
        ("windows", &["k"]),
        ("history", &["k", "cat"]),
        ("plain", &["k"]),
        ("recent", &["k"]),
    ];
    let mut compared = 0;
    for as_of in manifest["as_ofs"].as_array().unwrap() {
        let time = as_of["as_of"].as_str().unwrap();
        let run = alone
            .fengine(&[
                "run",
                "windows.sql",
                "--as-of",
                time,
                "--output",
                "json",
                "--force",
            ])
            .success()
            .json();
        let name_of_snapshot = time.replace(['-', ':'], "");
        for (name, keys) in groups {
            let alone_location = run["groups"]
                .as_array()
                .unwrap()
                .iter()
                .find(|g| g["group"] == name)
                .unwrap()["snapshot_location"]
                .as_str()
                .unwrap()
                .to_string();
            let swept_location = swept
                .partitions(&format!("{name}_v1"))
                .into_iter()
                .find(|(snapshot, _)| *snapshot == name_of_snapshot)
                .unwrap_or_else(|| panic!("{name} has no snapshot at {time}"))
                .1;
            let expected = snapshot(&alone_location, keys);
            let actual = snapshot(&swept_location, keys);
            assert_eq!(
                actual.keys().collect::<Vec<_>>(),
                expected.keys().collect::<Vec<_>>(),
                "{name} at {time}: the keys"
            );
            for (key, expected_row) in &expected {
                let actual_row = &actual[key];
                for (a, e) in actual_row.iter().zip(expected_row) {
                    assert!(
                        same(a, e),
                        "{name} at {time}, key {key}, column {}: swept {} vs alone {}",
                        e.0,
                        a.2,
                        e.2
                    );
                }
                compared += 1;
            }
        }
    }
    assert!(compared > 2_000, "{compared} rows compared");
}

#[test]
fn a_swept_snapshot_that_fails_its_checks_stops_the_backfill_and_keeps_earlier_ones() {
    let workspace = Workspace::new();
    let day = 24 * HOUR;
    let batch = RecordBatch::try_from_iter([
        (
            "k",
            Arc::new(Int64Array::from(vec![Some(1), None])) as ArrayRef,
        ),
        (
            "t",
            Arc::new(
                TimestampMicrosecondArray::from(vec![BASE + day, BASE + 3 * day])
                    .with_timezone("UTC"),
            ) as ArrayRef,
        ),
    ])
    .unwrap();
    write_parquet_file(&workspace.path("events/part-0.parquet"), &batch);
    workspace.write(
        "counts.sql",
        "CREATE EXTERNAL TABLE events STORED AS PARQUET LOCATION 'events/';
         CREATE FEATURE GROUP counts KEY (k) EVENT TIME event_time AS
         SELECT k, as_of() AS event_time, count(*) AS n FROM events
         WHERE t > as_of() - INTERVAL '10 days' AND t <= as_of() GROUP BY k;",
    );
    let outcome = workspace.fengine(&[
        "backfill",
        "counts.sql",
        "--from",
        "2024-01-03T00:00:00Z",
        "--to",
        "2024-01-05T00:00:00Z",
        "--every",
        "1d",
    ]);
    assert_eq!(outcome.code, 3, "{}", outcome.stderr);
    assert!(
        outcome.stderr.contains(
            "feature group 'counts': a row has a null key or event time (k=NULL, \
             event_time=2024-01-04T00:00:00Z)"
        ),
        "{}",
        outcome.stderr
    );
    let registered: Vec<String> = workspace
        .partitions("counts_v1")
        .into_iter()
        .map(|(snapshot, _)| snapshot)
        .collect();
    assert_eq!(registered, ["20240103T000000Z"]);
}
