//! `fengine training-set` against a nested-loop reference: generated events published as
//! three overlapping, revised snapshots of two groups with different keys (one with a ttl),
//! a spine with unmatched keys, null keys and times, and times equal to event times and
//! as-ofs; each expected value found by scanning every snapshot row in the test.

mod common;

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
    TimestampMillisecondArray,
};
use arrow::datatypes::{Float64Type, Int64Type, TimestampMicrosecondType};
use common::*;
use fengine_testing::XorShift;

const MINUTE: i64 = 60_000_000;
/// 2024-01-01T00:00:00Z
const BASE: i64 = 1_704_067_200_000_000;
/// The snapshots: (as-of in minutes after BASE, revision). Each holds every event up to its
/// as-of, its values raised by its revision, so that which snapshot won shows in the value.
const SNAPSHOTS: [(i64, i64); 3] = [(600, 1), (1200, 2), (2000, 3)];
const MERCHANT_TTL_MINUTES: i64 = 120;

const PIPELINE: &str = "
CREATE EXTERNAL TABLE user_events STORED AS PARQUET LOCATION 'user_events/';
CREATE EXTERNAL TABLE merchant_events STORED AS PARQUET LOCATION 'merchant_events/';

CREATE FEATURE GROUP user_values KEY (user_id) EVENT TIME event_time AS
SELECT user_id, event_time, value + param('revision') AS value, param('revision') AS rev
FROM user_events WHERE event_time <= as_of();

CREATE FEATURE GROUP merchant_values KEY (merchant) EVENT TIME event_time
  ONLINE (ttl = '2 hours') AS
SELECT merchant, event_time, value + param('revision') AS value, param('revision') AS rev,
       value * 2 AS popularity
FROM merchant_events WHERE event_time <= as_of();
";

/// An event of either source: key, minute, value.
#[derive(Debug, Clone)]
struct Event<K> {
    key: K,
    minute: i64,
    value: Option<f64>,
}

#[derive(Debug, Clone)]
struct SpineRow {
    user_id: Option<i64>,
    merchant: String,
    minute: Option<i64>,
}

/// Events with one row per (key, minute), values null one time in ten.
fn events<K: Clone>(random: &mut XorShift, keys: &[K], per_key: u64) -> Vec<Event<K>> {
    let mut events = Vec::new();
    for key in keys {
        let mut minutes: Vec<i64> = (0..per_key).map(|_| random.below(2100) as i64).collect();
        minutes.sort();
        minutes.dedup();
        for minute in minutes {
            let value = (random.below(10) != 0).then(|| random.below(1000) as f64 / 4.0);
            events.push(Event {
                key: key.clone(),
                minute,
                value,
            });
        }
    }
    events
}

fn write_parquet(path: std::path::PathBuf, columns: Vec<(&str, ArrayRef)>) {
    write_parquet_file(&path, &RecordBatch::try_from_iter(columns).unwrap());
}

fn times(minutes: impl Iterator<Item = i64>) -> ArrayRef {
    Arc::new(
        TimestampMicrosecondArray::from_iter_values(minutes.map(|m| BASE + m * MINUTE))
            .with_timezone("UTC"),
    )
}

fn values<K>(events: &[Event<K>]) -> ArrayRef {
    Arc::new(Float64Array::from_iter(events.iter().map(|e| e.value)))
}

/// The matched (value, rev, popularity, event minute) of a group at a spine row: the rule
/// of the issue as a scan of every snapshot's rows.
fn reference<K: PartialEq>(
    snapshots: &[(i64, i64)],
    events: &[Event<K>],
    key: &K,
    minute: i64,
    as_written: bool,
    ttl: Option<i64>,
) -> Option<(Option<f64>, i64, Option<f64>, i64)> {
    let mut best: Option<(i64, i64, &Event<K>)> = None;
    for &(as_of, _) in snapshots {
        for event in events.iter().filter(|e| &e.key == key && e.minute <= as_of) {
            let known_from = if as_written {
                event.minute.max(as_of)
            } else {
                event.minute
            };
            if known_from > minute {
                continue;
            }
            if best.is_none_or(|(m, a, _)| (event.minute, as_of) > (m, a)) {
                best = Some((event.minute, as_of, event));
            }
        }
    }
    let (event_minute, as_of, event) = best?;
    if ttl.is_some_and(|ttl| event_minute + ttl < minute) {
        return None;
    }
    let revision = snapshots.iter().find(|s| s.0 == as_of).unwrap().1;
    Some((
        event.value.map(|v| v + revision as f64),
        revision,
        event.value.map(|v| v * 2.0),
        event_minute,
    ))
}

struct Fixture {
    workspace: Workspace,
    snapshots: &'static [(i64, i64)],
    users: Vec<Event<i64>>,
    merchants: Vec<Event<String>>,
    spine: Vec<SpineRow>,
}

/// The generated data, published as the first `snapshots` of SNAPSHOTS.
fn fixture_with(snapshots: usize) -> Fixture {
    let snapshots = &SNAPSHOTS[..snapshots];
    let mut random = XorShift(0x2545_F491_4F6C_DD1D);
    let workspace = Workspace::new();
    // Users 0..40 and 50..55 have events; the spine asks for 0..50: 40..50 only in the
    // spine, 50..55 only in the features (sorted after every spine key), and likewise
    // merchants m00 (features only) and m12, m13 (spine only).
    let user_keys: Vec<i64> = (0..40).chain(50..55).collect();
    let merchant_keys: Vec<String> = (0..12).map(|m| format!("m{m:02}")).collect();
    let users = events(&mut random, &user_keys, 60);
    let merchants = events(&mut random, &merchant_keys, 150);
    write_parquet(
        workspace.path("user_events/part-0.parquet"),
        vec![
            (
                "user_id",
                Arc::new(Int64Array::from_iter_values(users.iter().map(|e| e.key))),
            ),
            ("event_time", times(users.iter().map(|e| e.minute))),
            ("value", values(&users)),
        ],
    );
    write_parquet(
        workspace.path("merchant_events/part-0.parquet"),
        vec![
            (
                "merchant",
                Arc::new(StringArray::from_iter_values(
                    merchants.iter().map(|e| e.key.as_str()),
                )),
            ),
            ("event_time", times(merchants.iter().map(|e| e.minute))),
            ("value", values(&merchants)),
        ],
    );
    let event_minutes: Vec<i64> = users.iter().map(|e| e.minute).collect();
    let spine: Vec<SpineRow> = (0..20_000)
        .map(|i| {
            let minute = match random.below(20) {
                0 => None,
                // On an event's time or a snapshot's as-of: the edges of "at or before".
                1..=4 => Some(event_minutes[random.below(event_minutes.len() as u64) as usize]),
                5 => Some(SNAPSHOTS[random.below(3) as usize].0),
                _ => Some(random.below(2300) as i64),
            };
            SpineRow {
                user_id: (i % 97 != 0).then(|| random.below(50) as i64),
                merchant: format!("m{:02}", 1 + random.below(13)),
                minute,
            }
        })
        .collect();
    // Two files: the spine's order runs across them.
    for (part, rows) in [(0, 0..12_000), (1, 12_000..20_000)] {
        let rows = &spine[rows.clone()];
        let first = if part == 0 { 0 } else { 12_000 };
        write_parquet(
            workspace.path(&format!("spine/part-{part}.parquet")),
            vec![
                (
                    "row_id",
                    Arc::new(Int64Array::from_iter_values(
                        first..first + rows.len() as i64,
                    )),
                ),
                (
                    "user_id",
                    Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.user_id))),
                ),
                (
                    "merchant",
                    Arc::new(StringArray::from_iter_values(
                        rows.iter().map(|r| r.merchant.as_str()),
                    )),
                ),
                (
                    "label_time",
                    Arc::new(TimestampMillisecondArray::from_iter(
                        rows.iter()
                            .map(|r| r.minute.map(|m| (BASE + m * MINUTE) / 1000)),
                    )),
                ),
            ],
        );
    }
    workspace.write("features.sql", PIPELINE);
    for &(minute, revision) in snapshots {
        let as_of = chrono::DateTime::from_timestamp_micros(BASE + minute * MINUTE)
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        workspace
            .fengine(&[
                "run",
                "features.sql",
                "--as-of",
                &as_of,
                "--param",
                &format!("revision={revision}"),
                "--force",
            ])
            .success();
    }
    Fixture {
        workspace,
        snapshots,
        users,
        merchants,
        spine,
    }
}

fn fixture() -> Fixture {
    fixture_with(SNAPSHOTS.len())
}

fn minutes(batches: &[RecordBatch], column: &str) -> Vec<Option<i64>> {
    column_of::<TimestampMicrosecondType>(batches, column)
        .into_iter()
        .map(|t| t.map(|t| (t - BASE) / MINUTE))
        .collect()
}

fn column_of<T: arrow::datatypes::ArrowPrimitiveType>(
    batches: &[RecordBatch],
    name: &str,
) -> Vec<Option<T::Native>> {
    common::column::<T>(batches, name)
}

/// Builds the training set and checks every row; returns the manifest.
fn check(fixture: &Fixture, as_written: bool, extra: &[&str]) -> serde_json::Value {
    check_with_env(fixture, as_written, extra, &[])
}

fn check_with_env(
    fixture: &Fixture,
    as_written: bool,
    extra: &[&str],
    env: &[(&str, &str)],
) -> serde_json::Value {
    let out = format!("out-{as_written}-{}.parquet", extra.len());
    let mut args = vec![
        "training-set",
        "--spine",
        "spine",
        "--timestamp",
        "label_time",
        "--features",
        "user_values",
        "--features",
        "merchant_values.value,rev,popularity",
        "--out",
        &out,
        "--output",
        "json",
    ];
    if as_written {
        args.push("--as-written");
    }
    args.extend(extra);
    let outcome = fixture.workspace.fengine_with_env(&args, env).success();
    let manifest = outcome.json();
    let batches = read_parquet_file(&fixture.workspace.path(&out));
    let names: Vec<String> = batches[0]
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(
        names,
        [
            "row_id",
            "user_id",
            "merchant",
            "label_time",
            "user_values__value",
            "user_values__rev",
            "user_values__event_time",
            "merchant_values__value",
            "merchant_values__rev",
            "popularity",
            "merchant_values__event_time",
        ]
    );
    let row_ids = column_of::<Int64Type>(&batches, "row_id");
    assert_eq!(
        row_ids,
        (0..fixture.spine.len() as i64)
            .map(Some)
            .collect::<Vec<_>>(),
        "rows come back in the spine's order, all of them"
    );
    let user_value = column_of::<Float64Type>(&batches, "user_values__value");
    let user_rev = column_of::<Int64Type>(&batches, "user_values__rev");
    let user_time = minutes(&batches, "user_values__event_time");
    let merchant_value = column_of::<Float64Type>(&batches, "merchant_values__value");
    let merchant_rev = column_of::<Int64Type>(&batches, "merchant_values__rev");
    let popularity = column_of::<Float64Type>(&batches, "popularity");
    let merchant_time = minutes(&batches, "merchant_values__event_time");

    let (mut user_matches, mut merchant_matches) = (0, 0);
    for (i, row) in fixture.spine.iter().enumerate() {
        let user = match (row.user_id, row.minute) {
            (Some(user), Some(minute)) => reference(
                fixture.snapshots,
                &fixture.users,
                &user,
                minute,
                as_written,
                None,
            ),
            _ => None,
        };
        let actual = user_rev[i].map(|rev| (user_value[i], rev, user_time[i].unwrap()));
        let expected = user.map(|(value, rev, _, minute)| (value, rev, minute));
        assert_eq!(actual, expected, "user_values at spine row {i}: {row:?}");
        user_matches += usize::from(expected.is_some());

        let merchant = row.minute.and_then(|minute| {
            reference(
                fixture.snapshots,
                &fixture.merchants,
                &row.merchant,
                minute,
                as_written,
                Some(MERCHANT_TTL_MINUTES),
            )
        });
        let actual = merchant_rev[i].map(|rev| {
            (
                merchant_value[i],
                rev,
                popularity[i],
                merchant_time[i].unwrap(),
            )
        });
        assert_eq!(
            actual, merchant,
            "merchant_values at spine row {i}: {row:?}"
        );
        merchant_matches += usize::from(merchant.is_some());
    }
    assert_eq!(manifest["rows"], fixture.spine.len());
    assert_eq!(manifest["groups"][0]["matched_rows"], user_matches);
    assert_eq!(manifest["groups"][1]["matched_rows"], merchant_matches);
    assert_eq!(
        manifest["groups"][0]["snapshots"].as_array().unwrap().len(),
        fixture.snapshots.len()
    );
    // The data exercises every branch: matches and misses, expired and newer snapshots.
    let least = 500 * fixture.snapshots.len();
    assert!(
        user_matches > least && user_matches < 18_000,
        "{user_matches}"
    );
    assert!(
        merchant_matches > least && merchant_matches < 18_000,
        "{merchant_matches}"
    );
    manifest
}

#[test]
fn every_spine_row_gets_the_values_known_at_its_time() {
    let fixture = fixture();
    let manifest = check(&fixture, false, &[]);
    assert_eq!(manifest["spilled_bytes"], 0);
    check(&fixture, true, &[]);
}

#[test]
fn one_snapshot_needs_no_tie_break_between_snapshots() {
    let fixture = fixture_with(1);
    check(&fixture, false, &[]);
    check(&fixture, true, &[]);
}

#[test]
fn a_memory_limit_makes_the_sorts_spill_not_fail() {
    let fixture = fixture();
    fixture
        .workspace
        .write("fengine.toml", "[profiles.small]\nmemory_limit = '8MiB'\n");
    // Small batches, so that each fits the pool's share of a sort while all of them do not.
    let manifest = check_with_env(
        &fixture,
        true,
        &["--profile", "small"],
        &[("DATAFUSION_EXECUTION_BATCH_SIZE", "256")],
    );
    assert!(
        manifest["spilled_bytes"].as_u64().unwrap() > 0,
        "{manifest}"
    );
}

#[test]
fn a_registered_training_set_records_what_it_was_built_from() {
    let fixture = fixture();
    fixture
        .workspace
        .fengine(&[
            "training-set",
            "--spine",
            "spine/",
            "--timestamp",
            "label_time",
            "--features",
            "user_values@1.value",
            "--out",
            "sets/fraud",
            "--register",
            "fraud_training",
        ])
        .success();
    let table = fixture.workspace.table("fraud_training").unwrap();
    let columns: Vec<&str> = table["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        columns,
        [
            "row_id",
            "user_id",
            "merchant",
            "label_time",
            "value",
            "user_values__event_time"
        ]
    );
    let partitions = fixture.workspace.partitions("fraud_training");
    assert_eq!(partitions.len(), 1);
    let folder = partitions[0].1.clone();
    assert!(folder.ends_with("/sets/fraud/"), "{folder}");
    let rows = read_parquet_folder(&folder);
    assert_eq!(row_count(&rows), fixture.spine.len());

    let connection =
        rusqlite::Connection::open(fixture.workspace.path("warehouse/catalog.sqlite")).unwrap();
    let definition: String = connection
        .query_row(
            "SELECT definition FROM catalog_partitions WHERE table_name = 'fraud_training'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    let definition: serde_json::Value = serde_json::from_str(&definition).unwrap();
    let groups: serde_json::Value =
        serde_json::from_str(definition["parameters"]["fengine.groups"].as_str().unwrap()).unwrap();
    assert_eq!(groups[0]["group"], "user_values");
    assert_eq!(groups[0]["version"], 1);
    assert_eq!(
        groups[0]["features"],
        serde_json::json!([["value", "value"]])
    );
    assert_eq!(
        groups[0]["snapshots"],
        serde_json::json!([
            "2024-01-01T10:00:00Z",
            "2024-01-01T20:00:00Z",
            "2024-01-02T09:20:00Z"
        ])
    );
}
