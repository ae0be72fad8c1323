//! fengine's rolling-window operator against DataFusion's own on the same pipeline: every
//! value equal, on generated data with nulls, equal timestamps (peers), rows with no time,
//! partitions spanning batch boundaries, many tiny partitions and one huge one, negative
//! values, integer, double and decimal inputs.
//!
//! NaN is checked against a nested loop instead: DataFusion 55's sliding sums keep a NaN
//! after it leaves the frame and its sliding min/max skip it, so the two would differ where
//! DataFusion is wrong.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, Decimal128Array, Float64Array, Int64Array, RecordBatch,
    TimestampMicrosecondArray,
};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use arrow::util::display::array_value_to_string;
use common::*;
use fengine_testing::XorShift;

const MINUTE: i64 = 60_000_000;
const BASE: i64 = 1_704_067_200_000_000;

const PIPELINE: &str = "
CREATE EXTERNAL TABLE events STORED AS PARQUET LOCATION 'events/';

CREATE FEATURE GROUP rolling KEY (k, id) EVENT TIME event_time AS
SELECT k, id, as_of() AS event_time,
       sum(x)   OVER (PARTITION BY k ORDER BY t RANGE BETWEEN INTERVAL '1 hour' PRECEDING AND CURRENT ROW) AS x_sum_1h,
       count(x) OVER (PARTITION BY k ORDER BY t RANGE BETWEEN INTERVAL '1 hour' PRECEDING AND CURRENT ROW) AS x_count_1h,
       avg(x)   OVER (PARTITION BY k ORDER BY t RANGE BETWEEN INTERVAL '1 day' PRECEDING AND CURRENT ROW) AS x_avg_1d,
       min(x)   OVER (PARTITION BY k ORDER BY t RANGE BETWEEN INTERVAL '7 days' PRECEDING AND CURRENT ROW) AS x_min_7d,
       max(n)   OVER (PARTITION BY k ORDER BY t RANGE BETWEEN INTERVAL '1 day' PRECEDING AND CURRENT ROW) AS n_max_1d,
       sum(n)   OVER (PARTITION BY k ORDER BY t RANGE BETWEEN INTERVAL '7 days' PRECEDING AND CURRENT ROW) AS n_sum_7d,
       count(*) OVER (PARTITION BY k ORDER BY t RANGE BETWEEN INTERVAL '30 minutes' PRECEDING AND CURRENT ROW) AS rows_30m,
       stddev(x)  OVER (PARTITION BY k ORDER BY t RANGE BETWEEN INTERVAL '1 day' PRECEDING AND CURRENT ROW) AS x_stddev_1d,
       var_pop(n) OVER (PARTITION BY k ORDER BY t RANGE BETWEEN INTERVAL '3 days' PRECEDING AND CURRENT ROW) AS n_var_pop_3d,
       -- First and last values of functions of the time: peers agree on them, whatever
       -- order the sort leaves peers in.
       first_value(t) OVER (PARTITION BY k ORDER BY t RANGE BETWEEN INTERVAL '1 day' PRECEDING AND CURRENT ROW) AS t_first_1d,
       last_value(CASE WHEN date_part('minute', t) = 20 THEN NULL ELSE date_part('hour', t) * 1.5 END)
           OVER (PARTITION BY k ORDER BY t RANGE BETWEEN INTERVAL '2 hours' PRECEDING AND CURRENT ROW) AS h_last_2h,
       first_value(CASE WHEN date_part('minute', t) = 40 THEN NULL ELSE CAST(date_part('hour', t) AS INT) END)
           OVER (PARTITION BY k ORDER BY t RANGE BETWEEN INTERVAL '6 hours' PRECEDING AND CURRENT ROW) AS h_first_6h,
       sum(d) OVER (PARTITION BY k ORDER BY t RANGE BETWEEN INTERVAL '7 days' PRECEDING AND CURRENT ROW) AS d_sum_7d,
       avg(d) OVER (PARTITION BY k ORDER BY t RANGE BETWEEN INTERVAL '1 day' PRECEDING AND CURRENT ROW) AS d_avg_1d,
       min(d) OVER (PARTITION BY k ORDER BY t RANGE BETWEEN INTERVAL '1 day' PRECEDING AND CURRENT ROW) AS d_min_1d,
       max(d) OVER (PARTITION BY k ORDER BY t RANGE BETWEEN INTERVAL '3 days' PRECEDING AND CURRENT ROW) AS d_max_3d,
       count(d) OVER (PARTITION BY k ORDER BY t RANGE BETWEEN INTERVAL '3 days' PRECEDING AND CURRENT ROW) AS d_count_3d,
       last_value(CAST(date_part('hour', t) AS DECIMAL(10, 2)) / 4)
           OVER (PARTITION BY k ORDER BY t RANGE BETWEEN INTERVAL '1 day' PRECEDING AND CURRENT ROW) AS h_last_1d,
       last_value(CASE WHEN date_part('minute', t) = 20 THEN NULL ELSE date_part('hour', t) END) IGNORE NULLS
           OVER (PARTITION BY k ORDER BY t RANGE BETWEEN INTERVAL '2 hours' PRECEDING AND CURRENT ROW) AS h_last_known_2h,
       first_value(CASE WHEN date_part('minute', t) <> 40 THEN NULL ELSE t END) IGNORE NULLS
           OVER (PARTITION BY k ORDER BY t RANGE BETWEEN INTERVAL '1 day' PRECEDING AND CURRENT ROW) AS t_first_known_1d
FROM events;

-- Two partition keys, in the other order than the table's.
CREATE FEATURE GROUP rolling_pairs KEY (k, id) EVENT TIME event_time AS
SELECT k, id, as_of() AS event_time,
       sum(x) OVER (PARTITION BY id % 3, k ORDER BY t RANGE BETWEEN INTERVAL '2 days' PRECEDING AND CURRENT ROW) AS x_sum_2d,
       max(x) OVER (PARTITION BY id % 3, k ORDER BY t RANGE BETWEEN INTERVAL '6 hours' PRECEDING AND CURRENT ROW) AS x_max_6h
FROM events;

-- Windows fengine's operator computes beside ones it leaves to DataFusion (a string's last
-- value, a median), in one window node.
CREATE FEATURE GROUP rolling_mixed KEY (k, id) EVENT TIME event_time AS
SELECT k, id, as_of() AS event_time,
       last_value(CAST(t AS VARCHAR)) OVER (PARTITION BY k ORDER BY t RANGE BETWEEN INTERVAL '1 day' PRECEDING AND CURRENT ROW) AS t_text_last_1d,
       sum(x)    OVER (PARTITION BY k ORDER BY t RANGE BETWEEN INTERVAL '1 day' PRECEDING AND CURRENT ROW) AS x_sum_1d,
       median(n) OVER (PARTITION BY k ORDER BY t RANGE BETWEEN INTERVAL '2 days' PRECEDING AND CURRENT ROW) AS n_median_2d,
       max(d)    OVER (PARTITION BY k ORDER BY t RANGE BETWEEN INTERVAL '2 days' PRECEDING AND CURRENT ROW) AS d_max_2d
FROM events;
";

/// The generated rows: key, time, x, n, y (the row id is the index); y has NaN and
/// infinities. Beside them, d: decimal(12, 2) cents.
type Events = (
    Vec<i64>,
    Vec<Option<i64>>,
    Vec<Option<f64>>,
    Vec<Option<i64>>,
    Vec<Option<f64>>,
);

fn write_events(workspace: &Workspace) -> Events {
    let mut random = XorShift(0x94D0_49BB_1331_11EB);
    let (mut k, mut t, mut x, mut n, mut y) = (vec![], vec![], vec![], vec![], vec![]);
    let mut add = |key: i64, random: &mut XorShift| {
        k.push(key);
        // Minutes over 20 days, often repeated within a key: peers.
        t.push(
            (random.below(60) != 0).then(|| BASE + random.below(20 * 24 * 6) as i64 * 10 * MINUTE),
        );
        x.push((random.below(10) != 0).then(|| (random.below(20_000) as f64 - 10_000.0) / 3.0));
        n.push((random.below(8) != 0).then(|| random.below(1_000) as i64 - 500));
        y.push(match random.below(40) {
            0 => None,
            1 => Some(f64::NAN),
            2 => Some(f64::INFINITY),
            3 => Some(f64::NEG_INFINITY),
            _ => Some(random.below(1_000) as f64 - 500.0),
        });
    };
    // One huge partition, then many tiny ones.
    for _ in 0..4_000 {
        add(0, &mut random);
    }
    for key in 1..800 {
        for _ in 0..=random.below(4) {
            add(key, &mut random);
        }
    }
    let rows = k.len() as i64;
    let cents = Decimal128Array::from_iter(
        (0..rows)
            .map(|_| (random.below(12) != 0).then(|| random.below(2_000_000) as i128 - 1_000_000)),
    )
    .with_precision_and_scale(12, 2)
    .unwrap();
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("k", Arc::new(Int64Array::from(k.clone()))),
        ("id", Arc::new(Int64Array::from_iter_values(0..rows))),
        (
            "t",
            Arc::new(TimestampMicrosecondArray::from(t.clone()).with_timezone("UTC")),
        ),
        ("x", Arc::new(Float64Array::from(x.clone()))),
        ("n", Arc::new(Int64Array::from(n.clone()))),
        ("y", Arc::new(Float64Array::from(y.clone()))),
        ("d", Arc::new(cents)),
    ];
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    write_parquet_file(&workspace.path("events/part-0.parquet"), &batch);
    (k, t, x, n, y)
}

/// A snapshot's rows by (k, id): each column's text, and its value if a double.
type Rows = BTreeMap<(i64, i64), Vec<(String, Option<f64>)>>;

fn rows(location: &str) -> Rows {
    let mut rows = BTreeMap::new();
    for batch in read_parquet_folder(location) {
        let k = column::<arrow::datatypes::Int64Type>(std::slice::from_ref(&batch), "k");
        let id = column::<arrow::datatypes::Int64Type>(std::slice::from_ref(&batch), "id");
        for row in 0..batch.num_rows() {
            let values = batch
                .columns()
                .iter()
                .map(|c| {
                    let text = array_value_to_string(c, row).unwrap();
                    // Doubles compare within rounding; other types by their text.
                    let number = c.data_type().is_floating().then(|| {
                        let f = cast(c, &DataType::Float64).unwrap();
                        let f = f.as_any().downcast_ref::<Float64Array>().unwrap().clone();
                        f.is_valid(row).then(|| f.value(row))
                    });
                    let number = number.flatten();
                    (text, number)
                })
                .collect();
            rows.insert((k[row].unwrap(), id[row].unwrap()), values);
        }
    }
    rows
}

#[test]
fn fengine_windows_equal_datafusion_windows() {
    let workspace = Workspace::new();
    write_events(&workspace);
    workspace.write("rolling.sql", PIPELINE);
    let plan = workspace.fengine(&["plan", "rolling.sql"]).success();
    assert!(
        plan.stdout.contains(
            "rolling windows by fengine's operator: sum over 1 hour, count over 1 hour, \
             avg over 1 day, min over 7 days, max over 1 day, sum over 7 days, \
             count over 30 minutes, stddev over 1 day, var_pop over 3 days, \
             first_value over 1 day, last_value over 2 hours, first_value over 6 hours, \
             sum over 7 days, avg over 1 day, min over 1 day, max over 3 days, \
             count over 3 days, last_value over 1 day, \
             last_value ignoring nulls over 2 hours, first_value ignoring nulls over 1 day"
        ),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout
            .contains("rolling windows by fengine's operator: sum over 2 days, max over 6 hours"),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout
            .contains("rolling windows by fengine's operator: sum over 1 day, max over 2 days\n"),
        "{}",
        plan.stdout
    );
    // Small batches: partitions and peer groups span batch boundaries.
    let run = |operator: &str| {
        let manifest = workspace
            .fengine_with_env(
                &[
                    "run",
                    "rolling.sql",
                    "--as-of",
                    "2024-02-01T00:00:00Z",
                    "--force",
                    "--output",
                    "json",
                ],
                &[
                    ("FENGINE_WINDOW_OPERATOR", operator),
                    ("DATAFUSION_EXECUTION_BATCH_SIZE", "97"),
                ],
            )
            .success()
            .json();
        let mut all = Rows::new();
        for (index, group) in manifest["groups"].as_array().unwrap().iter().enumerate() {
            let location = group["snapshot_location"].as_str().unwrap();
            for ((k, id), values) in rows(location) {
                all.insert((k, id * 10 + index as i64), values);
            }
        }
        all
    };
    let ours = run("fengine");
    let theirs = run("datafusion");
    assert_eq!(ours.len(), theirs.len());
    assert!(ours.len() > 10_000);
    for (key, expected) in &theirs {
        let actual = &ours[key];
        for (index, (a, e)) in actual.iter().zip(expected).enumerate() {
            let same = match (a.1, e.1) {
                (Some(a), Some(e)) => {
                    a == e || (a - e).abs() <= 1e-9 * a.abs().max(e.abs()).max(1.0)
                }
                _ => a.0 == e.0,
            };
            assert!(
                same,
                "row {key:?}, column {index}: fengine {} vs DataFusion {}",
                a.0, e.0
            );
        }
    }
}

const RECENT_PAST_EXCLUDED: &str = "
CREATE EXTERNAL TABLE events STORED AS PARQUET LOCATION 'events/';

CREATE FEATURE GROUP lagged KEY (k, id) EVENT TIME event_time AS
SELECT k, id, as_of() AS event_time,
       sum(x)   OVER (PARTITION BY k ORDER BY t RANGE BETWEEN INTERVAL '7 days' PRECEDING AND INTERVAL '1 day' PRECEDING) AS x_sum,
       count(x) OVER (PARTITION BY k ORDER BY t RANGE BETWEEN INTERVAL '7 days' PRECEDING AND INTERVAL '1 day' PRECEDING) AS x_count,
       min(n)   OVER (PARTITION BY k ORDER BY t RANGE BETWEEN INTERVAL '2 days' PRECEDING AND INTERVAL '2 hours' PRECEDING) AS n_min,
       first_value(t) OVER (PARTITION BY k ORDER BY t RANGE BETWEEN INTERVAL '7 days' PRECEDING AND INTERVAL '1 day' PRECEDING) AS t_first,
       last_value(t)  OVER (PARTITION BY k ORDER BY t RANGE BETWEEN INTERVAL '7 days' PRECEDING AND INTERVAL '1 day' PRECEDING) AS t_last,
       last_value(CASE WHEN date_part('minute', t) = 20 THEN NULL ELSE t END) IGNORE NULLS
           OVER (PARTITION BY k ORDER BY t RANGE BETWEEN INTERVAL '7 days' PRECEDING AND INTERVAL '1 day' PRECEDING) AS t_last_known,
       sum(y) OVER (PARTITION BY k ORDER BY t RANGE BETWEEN INTERVAL '1 day' PRECEDING AND CURRENT ROW) AS y_sum,
       max(y) OVER (PARTITION BY k ORDER BY t RANGE BETWEEN INTERVAL '1 day' PRECEDING AND CURRENT ROW) AS y_max,
       min(y) OVER (PARTITION BY k ORDER BY t RANGE BETWEEN INTERVAL '7 days' PRECEDING AND INTERVAL '1 day' PRECEDING) AS y_min
FROM events;
";

/// Frames that end before the row (`AND <interval> PRECEDING`) can be empty, where
/// DataFusion 55 has had bugs, and NaN, where its sliding sums and min/max are wrong: the
/// reference here is a nested loop over the generated rows. NaN sorts above every number,
/// as in DataFusion's min/max aggregates (and PostgreSQL's, DuckDB's).
#[test]
fn frames_that_exclude_the_recent_past_and_nan_match_a_nested_loop() {
    let workspace = Workspace::new();
    let (k, t, x, n, y) = write_events(&workspace);
    workspace.write("lagged.sql", RECENT_PAST_EXCLUDED);
    let plan = workspace.fengine(&["plan", "lagged.sql"]).success();
    assert!(
        plan.stdout.contains(
            "rolling windows by fengine's operator: sum from 7 days to 1 day before, \
             count from 7 days to 1 day before, min from 2 days to 2 hours before, \
             first_value from 7 days to 1 day before, last_value from 7 days to 1 day before, \
             last_value ignoring nulls from 7 days to 1 day before, \
             sum over 1 day, max over 1 day, min from 7 days to 1 day before"
        ),
        "{}",
        plan.stdout
    );
    let manifest = workspace
        .fengine_with_env(
            &[
                "run",
                "lagged.sql",
                "--as-of",
                "2024-02-01T00:00:00Z",
                "--output",
                "json",
            ],
            &[("DATAFUSION_EXECUTION_BATCH_SIZE", "97")],
        )
        .success()
        .json();
    let batches = read_parquet_folder(manifest["groups"][0]["snapshot_location"].as_str().unwrap());
    let ids = column::<arrow::datatypes::Int64Type>(&batches, "id");
    let sums = column::<arrow::datatypes::Float64Type>(&batches, "x_sum");
    let counts = column::<arrow::datatypes::Int64Type>(&batches, "x_count");
    let minima = column::<arrow::datatypes::Int64Type>(&batches, "n_min");
    let firsts = column::<arrow::datatypes::TimestampMicrosecondType>(&batches, "t_first");
    let lasts = column::<arrow::datatypes::TimestampMicrosecondType>(&batches, "t_last");
    let last_known = column::<arrow::datatypes::TimestampMicrosecondType>(&batches, "t_last_known");
    let y_sums = column::<arrow::datatypes::Float64Type>(&batches, "y_sum");
    let y_maxima = column::<arrow::datatypes::Float64Type>(&batches, "y_max");
    let y_minima = column::<arrow::datatypes::Float64Type>(&batches, "y_min");
    let day = 24 * 60 * MINUTE;
    // The rows of a frame: same key; times within [t - from, t - to], or, for a row
    // without a time, the key's other rows without one.
    let frame = |row: usize, from: i64, to: i64| -> Vec<usize> {
        (0..k.len())
            .filter(|&other| k[other] == k[row])
            .filter(|&other| match (t[row], t[other]) {
                (Some(time), Some(at)) => at >= time - from && at <= time - to,
                (None, None) => true,
                _ => false,
            })
            .collect()
    };
    for (i, id) in ids.iter().enumerate() {
        let row = id.unwrap() as usize;
        let week = frame(row, 7 * day, day);
        let values: Vec<f64> = week.iter().filter_map(|&r| x[r]).collect();
        let expected_sum = (!values.is_empty()).then(|| values.iter().sum::<f64>());
        assert_same_double(sums[i], expected_sum, &format!("x_sum of row {row}"));
        assert_eq!(counts[i], Some(values.len() as i64), "x_count of row {row}");
        let expected_min = frame(row, 2 * day, 2 * 60 * MINUTE)
            .iter()
            .filter_map(|&r| n[r])
            .min();
        assert_eq!(minima[i], expected_min, "n_min of row {row}");
        // Within a key, rows come in time order: the frame's first and last times.
        let week_times = week.iter().map(|&r| t[r]);
        let expected_first = week_times.clone().min().flatten();
        let expected_last = week_times.max().flatten();
        assert_eq!(firsts[i], expected_first, "t_first of row {row}");
        assert_eq!(lasts[i], expected_last, "t_last of row {row}");
        let minute_20 = |time: i64| (time / MINUTE) % 60 == 20;
        let expected_last_known = week
            .iter()
            .filter_map(|&r| t[r])
            .filter(|&time| !minute_20(time))
            .max();
        assert_eq!(
            last_known[i], expected_last_known,
            "t_last_known of row {row}"
        );

        let y_day: Vec<f64> = frame(row, day, 0).iter().filter_map(|&r| y[r]).collect();
        let y_week: Vec<f64> = week.iter().filter_map(|&r| y[r]).collect();
        let total_order = |a: &&f64, b: &&f64| a.total_cmp(b);
        let expected_sum = (!y_day.is_empty()).then(|| y_day.iter().sum::<f64>());
        let expected_max = y_day.iter().max_by(total_order).copied();
        let expected_min = y_week.iter().min_by(total_order).copied();
        assert_same_double(y_sums[i], expected_sum, &format!("y_sum of row {row}"));
        assert_same_double(y_maxima[i], expected_max, &format!("y_max of row {row}"));
        assert_same_double(y_minima[i], expected_min, &format!("y_min of row {row}"));
    }
    assert_eq!(ids.len(), k.len());
}

/// Equal within rounding; NaN equals NaN, infinities equal themselves.
fn assert_same_double(actual: Option<f64>, expected: Option<f64>, what: &str) {
    let same = match (actual, expected) {
        (Some(a), Some(e)) if a.is_nan() || e.is_nan() => a.is_nan() && e.is_nan(),
        (Some(a), Some(e)) if a.is_infinite() || e.is_infinite() => a == e,
        (Some(a), Some(e)) => (a - e).abs() <= 1e-9 * a.abs().max(e.abs()).max(1.0),
        (a, e) => a == e,
    };
    assert!(same, "{what}: fengine {actual:?}, expected {expected:?}");
}

const LATEST: &str = "
CREATE EXTERNAL TABLE visits STORED AS PARQUET LOCATION 'visits/';

CREATE FEATURE GROUP latest KEY (k) EVENT TIME t AS
SELECT k, t, n,
       count(*) OVER (PARTITION BY k ORDER BY t RANGE BETWEEN INTERVAL '1 hour' PRECEDING AND CURRENT ROW) AS rows_1h
FROM visits;
";

/// A rolling window hands its rows over sorted by key and time: the run checks them and
/// picks each key's latest row as they stream to Parquet, or, when those outgrow their
/// share of memory_limit (as 200k keys do with 16 MiB), by a ranking window over the
/// snapshot. Either way the online store serves each key's newest row, checked against
/// the generated rows.
#[tokio::test]
async fn online_rows_are_each_keys_latest_row() {
    let workspace = Workspace::new();
    let mut random = XorShift(0x2545_F491_4F6C_DD1D);
    let (mut k, mut t, mut n) = (vec![], vec![], vec![]);
    for key in 0..200_000 {
        for visit in 0..=random.below(2) as i64 {
            k.push(key);
            t.push(BASE + (visit * 3 + random.below(3) as i64) * 30 * MINUTE);
            n.push((random.below(5) != 0).then(|| random.below(100) as i64));
        }
    }
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("k", Arc::new(Int64Array::from(k.clone()))),
        (
            "t",
            Arc::new(TimestampMicrosecondArray::from(t.clone()).with_timezone("UTC")),
        ),
        ("n", Arc::new(Int64Array::from(n.clone()))),
    ];
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    write_parquet_file(&workspace.path("visits/part-0.parquet"), &batch);
    workspace.write("latest.sql", LATEST);
    workspace.write(
        "fengine.toml",
        "[profiles.default]\n[profiles.small]\nmemory_limit = '16MiB'\n",
    );
    // Per key: its newest time, and n then.
    let mut expected: BTreeMap<i64, (i64, Option<i64>)> = BTreeMap::new();
    for row in 0..k.len() {
        let entry = expected.entry(k[row]).or_insert((t[row], n[row]));
        if t[row] > entry.0 {
            *entry = (t[row], n[row]);
        }
    }
    for profile in ["default", "small"] {
        let args = [
            "run",
            "latest.sql",
            "--as-of",
            "2024-02-01T00:00:00Z",
            "--force",
            "--output",
            "json",
            "--profile",
            profile,
        ];
        let manifest = workspace.fengine(&args).success().json();
        assert_eq!(manifest["groups"][0]["online"]["rows"], expected.len());
        let store =
            fengine_online::SqliteOnlineStore::open(workspace.path("warehouse/online.sqlite"))
                .unwrap();
        for (key, (time, value)) in expected.iter().step_by(97) {
            let key_text = [key.to_string()];
            let row = fengine_online::OnlineStore::get(&store, "latest", Some(1), &key_text)
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("key {key} is not online ({profile})"));
            assert_eq!(
                row.event_time.timestamp_micros(),
                *time,
                "key {key} ({profile})"
            );
            assert_eq!(
                row.values["n"],
                serde_json::json!(value),
                "key {key} ({profile})"
            );
        }
    }
}
