//! Regressions of wrong results found by comparing fengine with DuckDB and DataFusion
//! (issue 10), each checked end to end through the binary against values worked out by
//! hand (the comments show the working) or computed by DataFusion's own operator.

mod common;

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
    TimestampNanosecondArray, UInt64Array,
};
use arrow::datatypes::{DataType, Float64Type, Int64Type, UInt64Type};
use common::*;

/// 2024-01-01T00:00:00Z in nanoseconds.
const BASE_NANOS: i64 = 1_704_067_200_000_000_000;
const HOUR_NANOS: i64 = 3_600_000_000_000;

fn write(workspace: &Workspace, folder: &str, columns: Vec<(&str, ArrayRef)>) {
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    write_parquet_file(&workspace.path(&format!("{folder}/part-0.parquet")), &batch);
}

/// Runs the pipeline at `as_of` and returns each group's snapshot rows.
fn run(
    workspace: &Workspace,
    pipeline: &str,
    as_of: &str,
    env: &[(&str, &str)],
) -> Vec<Vec<RecordBatch>> {
    let outcome = workspace
        .fengine_with_env(
            &["run", pipeline, "--as-of", as_of, "--output", "json"],
            env,
        )
        .success();
    let manifest = outcome.json();
    manifest["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|group| read_parquet_folder(group["snapshot_location"].as_str().unwrap()))
        .collect()
}

/// A snapshot's rows ordered by the `id` column.
fn by_id(batches: &[RecordBatch]) -> RecordBatch {
    let batch = arrow::compute::concat_batches(&batches[0].schema(), batches).unwrap();
    let order =
        arrow::compute::sort_to_indices(batch.column_by_name("id").unwrap(), None, None).unwrap();
    let columns = batch
        .columns()
        .iter()
        .map(|c| arrow::compute::take(c, &order, None).unwrap())
        .collect();
    RecordBatch::try_new(batch.schema(), columns).unwrap()
}

#[test]
fn filter_on_a_rolling_window_counts_only_the_rows_it_keeps() {
    let workspace = Workspace::new();
    let hours = [0, 1, 2].map(|h| BASE_NANOS / 1_000 + h * HOUR_NANOS / 1_000);
    write(
        &workspace,
        "events",
        vec![
            ("id", Arc::new(Int64Array::from(vec![0, 1, 2])) as ArrayRef),
            ("k", Arc::new(Int64Array::from(vec![1, 1, 1]))),
            (
                "t",
                Arc::new(TimestampMicrosecondArray::from(hours.to_vec())),
            ),
            ("v", Arc::new(Float64Array::from(vec![5.0, -3.0, 2.0]))),
        ],
    );
    workspace.write(
        "p.sql",
        "CREATE EXTERNAL TABLE events STORED AS PARQUET LOCATION 'events/';
         CREATE FEATURE GROUP filtered KEY (id) EVENT TIME event_time AS
         SELECT id, as_of() AS event_time,
           sum(v) FILTER (WHERE v > 0) OVER (PARTITION BY k ORDER BY t
             RANGE BETWEEN INTERVAL '1 day' PRECEDING AND CURRENT ROW) AS positive_sum,
           count(*) FILTER (WHERE v > 0) OVER (PARTITION BY k ORDER BY t
             RANGE BETWEEN INTERVAL '1 day' PRECEDING AND CURRENT ROW) AS positive_count
         FROM events;",
    );
    let plan = workspace.fengine(&["plan", "p.sql"]).success();
    assert!(
        plan.stdout.contains("sum over 1 day, count over 1 day"),
        "{}",
        plan.stdout
    );
    // Positive values so far within a day: 5; 5 (-3 left out); 5 + 2.
    for env in [vec![], vec![("FENGINE_WINDOW_OPERATOR", "datafusion")]] {
        let snapshot = by_id(&run(&workspace, "p.sql", "2024-01-02T00:00:00Z", &env)[0]);
        let batches = [snapshot];
        assert_eq!(
            column::<Float64Type>(&batches, "positive_sum"),
            [Some(5.0), Some(5.0), Some(7.0)],
            "{env:?}"
        );
        assert_eq!(
            column::<Int64Type>(&batches, "positive_count"),
            [Some(1), Some(1), Some(2)],
            "{env:?}"
        );
    }
}

#[test]
fn nanosecond_times_keep_their_precision_in_windows_backfills_and_training_sets() {
    let workspace = Workspace::new();
    // One key, rows 100 ns apart.
    let times = [0, 100, 200].map(|ns| BASE_NANOS + ns);
    write(
        &workspace,
        "events",
        vec![
            ("id", Arc::new(Int64Array::from(vec![0, 1, 2])) as ArrayRef),
            ("k", Arc::new(Int64Array::from(vec![1, 1, 1]))),
            (
                "t",
                Arc::new(TimestampNanosecondArray::from(times.to_vec())),
            ),
            ("v", Arc::new(Float64Array::from(vec![1.0, 1.0, 1.0]))),
        ],
    );
    workspace.write(
        "windows.sql",
        "CREATE EXTERNAL TABLE events STORED AS PARQUET LOCATION 'events/';
         CREATE FEATURE GROUP recent KEY (id) EVENT TIME event_time AS
         SELECT id, as_of() AS event_time,
           sum(v) OVER (PARTITION BY k ORDER BY t
             RANGE BETWEEN INTERVAL '150 nanoseconds' PRECEDING AND CURRENT ROW) AS v_150ns
         FROM events;",
    );
    // Frames [t - 150 ns, t]: the row alone; it and the one 100 ns before; the same.
    let snapshot = [by_id(
        &run(&workspace, "windows.sql", "2024-01-02T00:00:00Z", &[])[0],
    )];
    assert_eq!(
        column::<Float64Type>(&snapshot, "v_150ns"),
        [Some(1.0), Some(2.0), Some(2.0)]
    );

    // Around the as-of 2024-01-02T00:00:00Z of a one-day window: 999 ns after the lower
    // bound (in), exactly on it (out: the bound is exclusive), 500 ns after the as-of (out).
    let day = 24 * HOUR_NANOS;
    let as_of = BASE_NANOS + day;
    let times = [BASE_NANOS + 999, BASE_NANOS, as_of + 500, as_of];
    write(
        &workspace,
        "spend",
        vec![
            (
                "customer",
                Arc::new(Int64Array::from(vec![7, 7, 7, 7])) as ArrayRef,
            ),
            (
                "t",
                Arc::new(TimestampNanosecondArray::from(times.to_vec())),
            ),
            (
                "amount",
                Arc::new(Float64Array::from(vec![1.0, 10.0, 100.0, 1000.0])),
            ),
        ],
    );
    workspace.write(
        "daily.sql",
        "CREATE EXTERNAL TABLE spend STORED AS PARQUET LOCATION 'spend/';
         CREATE FEATURE GROUP daily KEY (customer) EVENT TIME event_time AS
         SELECT customer, as_of() AS event_time, sum(amount) AS total, count(*) AS n
         FROM spend WHERE t > as_of() - INTERVAL '1 day' AND t <= as_of()
         GROUP BY customer;",
    );
    let backfill = workspace
        .fengine(&[
            "backfill",
            "daily.sql",
            "--from",
            "2024-01-01T00:00:00Z",
            "--to",
            "2024-01-02T00:00:00Z",
            "--every",
            "1d",
            "--output",
            "json",
        ])
        .success()
        .json();
    assert_eq!(backfill["swept"], serde_json::json!(["daily"]));
    let swept = read_parquet_folder(
        backfill["as_ofs"][1]["groups"][0]["snapshot_location"]
            .as_str()
            .unwrap(),
    );
    // The row 999 ns in and the one at the as-of: 1 + 1000.
    assert_eq!(column::<Float64Type>(&swept, "total"), [Some(1001.0)]);
    assert_eq!(column::<Int64Type>(&swept, "n"), [Some(2)]);
    let fresh = run(&workspace, "daily.sql", "2024-01-02T00:00:00Z", &[]);
    assert_eq!(column::<Float64Type>(&fresh[0], "total"), [Some(1001.0)]);

    // A training-set label 400 ns before a feature row must not see it, as it did when
    // both were cut to microseconds (as_of + 100 ns and as_of + 500 ns share one).
    let spine_times = [as_of - 400, as_of + 100];
    write(
        &workspace,
        "spine",
        vec![
            (
                "customer",
                Arc::new(Int64Array::from(vec![7, 7])) as ArrayRef,
            ),
            (
                "label_time",
                Arc::new(TimestampNanosecondArray::from(spine_times.to_vec())),
            ),
        ],
    );
    workspace.write(
        "rows.sql",
        "CREATE EXTERNAL TABLE spend STORED AS PARQUET LOCATION 'spend/';
         CREATE FEATURE GROUP spend_rows KEY (customer) EVENT TIME t AS
         SELECT customer, t, amount FROM spend;",
    );
    run(&workspace, "rows.sql", "2024-01-03T00:00:00Z", &[]);
    workspace
        .fengine(&[
            "training-set",
            "--spine",
            "spine/part-0.parquet",
            "--timestamp",
            "label_time",
            "--features",
            "spend_rows",
            "--out",
            "ts.parquet",
        ])
        .success();
    let training = read_parquet_file(&workspace.path("ts.parquet"));
    // 400 ns before the as-of: the row 999 ns into the day; 100 ns after it: the as-of's.
    assert_eq!(
        column::<Float64Type>(&training, "amount"),
        [Some(1.0), Some(1000.0)]
    );
    // The same labels written as text.
    write(
        &workspace,
        "text_spine",
        vec![
            (
                "customer",
                Arc::new(Int64Array::from(vec![7, 7])) as ArrayRef,
            ),
            (
                "label_time",
                Arc::new(StringArray::from(vec![
                    "2024-01-01T23:59:59.999999600Z",
                    "2024-01-02T00:00:00.000000100Z",
                ])),
            ),
        ],
    );
    workspace
        .fengine(&[
            "training-set",
            "--spine",
            "text_spine/part-0.parquet",
            "--timestamp",
            "label_time",
            "--features",
            "spend_rows",
            "--out",
            "text.parquet",
        ])
        .success();
    let training = read_parquet_file(&workspace.path("text.parquet"));
    assert_eq!(
        column::<Float64Type>(&training, "amount"),
        [Some(1.0), Some(1000.0)]
    );
}

#[test]
fn as_written_counts_a_snapshot_from_its_instant_in_every_zone() {
    for zone in ["Asia/Tokyo", "America/New_York", "UTC"] {
        let workspace = Workspace::new();
        // An event of 2024-01-10 published by the snapshot of 2024-01-20T00:00:00Z.
        let event = Arc::new(
            TimestampMicrosecondArray::from(vec![1_704_844_800_000_000]).with_timezone(zone),
        );
        write(
            &workspace,
            "events",
            vec![
                ("k", Arc::new(Int64Array::from(vec![1])) as ArrayRef),
                ("event_time", event),
                ("v", Arc::new(Float64Array::from(vec![42.0]))),
            ],
        );
        workspace.write(
            "p.sql",
            "CREATE EXTERNAL TABLE events STORED AS PARQUET LOCATION 'events/';
             CREATE FEATURE GROUP g KEY (k) EVENT TIME event_time AS
             SELECT k, event_time, v FROM events;",
        );
        run(&workspace, "p.sql", "2024-01-20T00:00:00Z", &[]);
        // Nine hours before the snapshot was written (Tokyo's offset), one microsecond
        // before, and at the instant it was.
        let labels = [
            1_705_676_400_000_000,
            1_705_708_799_999_999,
            1_705_708_800_000_000,
        ];
        write(
            &workspace,
            "spine",
            vec![
                ("k", Arc::new(Int64Array::from(vec![1, 1, 1])) as ArrayRef),
                (
                    "label_time",
                    Arc::new(TimestampMicrosecondArray::from(labels.to_vec()).with_timezone("UTC")),
                ),
            ],
        );
        workspace
            .fengine(&[
                "training-set",
                "--spine",
                "spine/part-0.parquet",
                "--timestamp",
                "label_time",
                "--features",
                "g",
                "--as-written",
                "--out",
                "ts.parquet",
            ])
            .success();
        let training = read_parquet_file(&workspace.path("ts.parquet"));
        assert_eq!(
            column::<Float64Type>(&training, "v"),
            [None, None, Some(42.0)],
            "{zone}"
        );
    }
}

#[test]
fn training_sets_and_get_read_the_highest_registered_version() {
    let workspace = Workspace::new();
    write(
        &workspace,
        "events",
        vec![
            ("k", Arc::new(Int64Array::from(vec![1])) as ArrayRef),
            (
                "event_time",
                Arc::new(TimestampMicrosecondArray::from(vec![1_704_067_200_000_000])),
            ),
        ],
    );
    for version in [1, 3] {
        workspace.write(
            "p.sql",
            &format!(
                "CREATE EXTERNAL TABLE events STORED AS PARQUET LOCATION 'events/';
                 CREATE FEATURE GROUP g VERSION {version} KEY (k) EVENT TIME event_time AS
                 SELECT k, event_time, CAST({version} AS BIGINT) AS from_version FROM events;"
            ),
        );
        run(&workspace, "p.sql", "2024-01-02T00:00:00Z", &[]);
    }
    let served = workspace.fengine(&["get", "g", "1"]).success();
    let served: serde_json::Value = serde_json::from_str(&served.stdout).unwrap();
    assert_eq!(served["from_version"], 3);
    write(
        &workspace,
        "spine",
        vec![
            ("k", Arc::new(Int64Array::from(vec![1])) as ArrayRef),
            ("note", Arc::new(StringArray::from(vec!["a label"]))),
            (
                "label_time",
                Arc::new(TimestampMicrosecondArray::from(vec![1_704_412_800_000_000])),
            ),
        ],
    );
    let built = workspace
        .fengine(&[
            "training-set",
            "--spine",
            "spine/part-0.parquet",
            "--timestamp",
            "label_time",
            "--features",
            "g",
            "--out",
            "ts.parquet",
            "--output",
            "json",
        ])
        .success()
        .json();
    assert_eq!(built["groups"][0]["version"], 3);
    let training = read_parquet_file(&workspace.path("ts.parquet"));
    assert_eq!(column::<Int64Type>(&training, "from_version"), [Some(3)]);
    // The spine's columns keep their types.
    let note = training[0]
        .schema()
        .field_with_name("note")
        .unwrap()
        .data_type()
        .clone();
    assert_eq!(note, DataType::Utf8);
}

#[test]
fn uint64_values_above_i64_max_and_overflowing_sums_keep_their_values() {
    let workspace = Workspace::new();
    let big = (1u64 << 63) + 5;
    let hours = [0, 1, 2].map(|h| BASE_NANOS / 1_000 + h * HOUR_NANOS / 1_000);
    write(
        &workspace,
        "events",
        vec![
            ("k", Arc::new(Int64Array::from(vec![1, 1, 1])) as ArrayRef),
            (
                "t",
                Arc::new(TimestampMicrosecondArray::from(hours.to_vec())),
            ),
            ("u", Arc::new(UInt64Array::from(vec![big, 7, u64::MAX]))),
            (
                "x",
                Arc::new(Float64Array::from(vec![1e308, 1e308, -1e308])),
            ),
        ],
    );
    let window =
        "OVER (PARTITION BY k ORDER BY t RANGE BETWEEN INTERVAL '1 day' PRECEDING AND CURRENT ROW)";
    workspace.write(
        "p.sql",
        &format!(
            "CREATE EXTERNAL TABLE events STORED AS PARQUET LOCATION 'events/';
             CREATE FEATURE GROUP rolling KEY (k) EVENT TIME t AS
             SELECT k, t, max(u) {window} AS u_max, sum(x) {window} AS x_sum FROM events;
             CREATE FEATURE GROUP daily KEY (k) EVENT TIME event_time AS
             SELECT k, as_of() AS event_time, sum(u) AS u_sum, max(u) AS u_max, sum(x) AS x_sum
             FROM events WHERE t > as_of() - INTERVAL '2 hours' AND t <= as_of() GROUP BY k;"
        ),
    );
    let snapshots = run(&workspace, "p.sql", "2024-01-01T02:00:00Z", &[]);
    let rolling = &snapshots[0];
    assert_eq!(
        column::<UInt64Type>(rolling, "u_max"),
        [Some(big), Some(big), Some(u64::MAX)]
    );
    // 1e308 + 1e308 is beyond the doubles; with -1e308 the sum is back within them.
    assert_eq!(
        column::<Float64Type>(rolling, "x_sum"),
        [Some(1e308), Some(f64::INFINITY), Some(1e308)]
    );
    let backfill = workspace
        .fengine(&[
            "backfill",
            "p.sql",
            "--from",
            "2024-01-01T01:00:00Z",
            "--to",
            "2024-01-01T02:00:00Z",
            "--every",
            "1h",
            "--force",
            "--output",
            "json",
        ])
        .success()
        .json();
    assert_eq!(backfill["swept"], serde_json::json!(["daily"]));
    let swept = |index: usize| {
        let groups = backfill["as_ofs"][index]["groups"].as_array().unwrap();
        let daily = groups.iter().find(|g| g["group"] == "daily").unwrap();
        read_parquet_folder(daily["snapshot_location"].as_str().unwrap())
    };
    // At 01:00, the rows of 00:00 and 01:00.
    let first = swept(0);
    assert_eq!(column::<UInt64Type>(&first, "u_sum"), [Some(big + 7)]);
    assert_eq!(column::<UInt64Type>(&first, "u_max"), [Some(big)]);
    assert_eq!(
        column::<Float64Type>(&first, "x_sum"),
        [Some(f64::INFINITY)]
    );
    // At 02:00, as DataFusion computes it in a run (the sum of 7 and u64::MAX wraps).
    let second = swept(1);
    for name in ["u_sum", "u_max"] {
        assert_eq!(
            column::<UInt64Type>(&second, name),
            column::<UInt64Type>(&snapshots[1], name),
            "{name}"
        );
    }
    assert_eq!(column::<Float64Type>(&second, "x_sum"), [Some(0.0)]);
    assert_eq!(column::<Float64Type>(&snapshots[1], "x_sum"), [Some(0.0)]);
}

#[test]
fn a_day_in_a_zone_with_daylight_saving_is_a_calendar_day() {
    let workspace = Workspace::new();
    // Europe/Paris moved its clocks from 02:00 to 03:00 on 2024-03-31. B is 12:00 local on
    // 03-31 (10:00Z); A is 23.5 hours before it (03-30 11:30 local, 10:30Z). A calendar day
    // before B is 03-30 12:00 local (11:00Z): A is not in B's '1 day', though within 24 h.
    let a = 1_711_794_600_000_000; // 2024-03-30T10:30:00Z
    let b = 1_711_879_200_000_000; // 2024-03-31T10:00:00Z
    write(
        &workspace,
        "events",
        vec![
            ("id", Arc::new(Int64Array::from(vec![0, 1])) as ArrayRef),
            ("k", Arc::new(Int64Array::from(vec![1, 1]))),
            (
                "t",
                Arc::new(TimestampMicrosecondArray::from(vec![a, b]).with_timezone("Europe/Paris")),
            ),
            ("v", Arc::new(Float64Array::from(vec![1.0, 10.0]))),
        ],
    );
    workspace.write(
        "p.sql",
        "CREATE EXTERNAL TABLE events STORED AS PARQUET LOCATION 'events/';
         CREATE FEATURE GROUP paris KEY (id) EVENT TIME event_time AS
         SELECT id, as_of() AS event_time,
           sum(v) OVER (PARTITION BY k ORDER BY t
             RANGE BETWEEN INTERVAL '1 day' PRECEDING AND CURRENT ROW) AS v_day,
           sum(v) OVER (PARTITION BY k ORDER BY t
             RANGE BETWEEN INTERVAL '24 hours' PRECEDING AND CURRENT ROW) AS v_24h
         FROM events;",
    );
    let plan = workspace.fengine(&["plan", "p.sql"]).success();
    assert!(
        plan.stdout
            .contains("rolling windows by fengine's operator: sum over 1 day\n"),
        "only the 24-hour window is fengine's: {}",
        plan.stdout
    );
    let snapshot = [by_id(
        &run(&workspace, "p.sql", "2024-04-01T00:00:00Z", &[])[0],
    )];
    assert_eq!(
        column::<Float64Type>(&snapshot, "v_day"),
        [Some(1.0), Some(10.0)]
    );
    assert_eq!(
        column::<Float64Type>(&snapshot, "v_24h"),
        [Some(1.0), Some(11.0)]
    );
}

#[test]
fn plan_names_a_frame_in_its_own_unit() {
    let workspace = Workspace::new();
    write(
        &workspace,
        "events",
        vec![
            ("k", Arc::new(Int64Array::from(vec![1])) as ArrayRef),
            ("t", Arc::new(TimestampMicrosecondArray::from(vec![0]))),
            ("note", Arc::new(StringArray::from(vec!["x"]))),
        ],
    );
    workspace.write(
        "p.sql",
        "CREATE EXTERNAL TABLE events STORED AS PARQUET LOCATION 'events/';
         CREATE FEATURE GROUP g KEY (k) EVENT TIME event_time AS
         SELECT k, as_of() AS event_time,
           count(*) OVER (PARTITION BY k ORDER BY t
             RANGE BETWEEN INTERVAL '1 second' PRECEDING AND INTERVAL '250 milliseconds' PRECEDING) AS n
         FROM events;",
    );
    let plan = workspace.fengine(&["plan", "p.sql"]).success();
    assert!(
        plan.stdout
            .contains("count from 1 second to 250 milliseconds before"),
        "{}",
        plan.stdout
    );
}

#[test]
fn a_backfill_sweep_over_zoned_times_counts_days_as_run_does() {
    let workspace = Workspace::new();
    // as_of() is a UTC instant, so `as_of() - INTERVAL '1 day'` is 24 hours before it
    // whatever the event times' zone: at 2024-03-31T12:00:00Z, the row 23.5 hours before
    // (03-30 13:30 in Paris, before 14:00 local a calendar day before) is in the
    // window, and the one 24.5 hours before is not.
    let rows = [1_711_801_800_000_000, 1_711_798_200_000_000]; // 03-30T12:30Z, 11:30Z
    write(
        &workspace,
        "events",
        vec![
            ("k", Arc::new(Int64Array::from(vec![1, 1])) as ArrayRef),
            (
                "t",
                Arc::new(
                    TimestampMicrosecondArray::from(rows.to_vec()).with_timezone("Europe/Paris"),
                ),
            ),
            ("v", Arc::new(Float64Array::from(vec![1.0, 10.0]))),
        ],
    );
    workspace.write(
        "p.sql",
        "CREATE EXTERNAL TABLE events STORED AS PARQUET LOCATION 'events/';
         CREATE FEATURE GROUP daily KEY (k) EVENT TIME event_time AS
         SELECT k, as_of() AS event_time, sum(v) AS total
         FROM events WHERE t > as_of() - INTERVAL '1 day' AND t <= as_of() GROUP BY k;",
    );
    let backfill = workspace
        .fengine(&[
            "backfill",
            "p.sql",
            "--from",
            "2024-03-31T12:00:00Z",
            "--to",
            "2024-03-31T12:00:00Z",
            "--every",
            "1d",
            "--output",
            "json",
        ])
        .success()
        .json();
    assert_eq!(backfill["swept"], serde_json::json!(["daily"]));
    let swept = read_parquet_folder(
        backfill["as_ofs"][0]["groups"][0]["snapshot_location"]
            .as_str()
            .unwrap(),
    );
    assert_eq!(column::<Float64Type>(&swept, "total"), [Some(1.0)]);
    let fresh = run(&workspace, "p.sql", "2024-03-31T12:00:00Z", &[]);
    assert_eq!(column::<Float64Type>(&fresh[0], "total"), [Some(1.0)]);
}
