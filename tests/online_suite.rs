//! The behaviour every online store backend must have: the embedded one, and DynamoDB
//! (against the local server that tests/run.sh starts) with `--features aws`.

mod common;

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{
    Decimal128Array, Float64Array, Int32Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use chrono::{DateTime, Utc};
use fengine_online::{Error, LoadCounts, OnlineStore, OnlineTable, SnapshotId, SqliteOnlineStore};
use rstest::rstest;
use serde_json::json;

enum Kind {
    Embedded,
    #[cfg(feature = "aws")]
    DynamoDb,
}

/// A store, with a folder or a table prefix of its own so that cases run in parallel.
type Backend = (Box<dyn OnlineStore>, tempfile::TempDir);

async fn backend(kind: Kind) -> Backend {
    let dir = tempfile::tempdir().unwrap();
    let store: Box<dyn OnlineStore> = match kind {
        Kind::Embedded => {
            Box::new(SqliteOnlineStore::open(dir.path().join("online.sqlite")).unwrap())
        }
        #[cfg(feature = "aws")]
        Kind::DynamoDb => {
            let aws = common::aws::context().await;
            let prefix = format!("{}_", common::aws::unique_name("t"));
            Box::new(fengine_aws::DynamoDbOnlineStore::new(
                &aws,
                &prefix,
                fengine_aws::WriteSettings::default(),
            ))
        }
    };
    (store, dir)
}

fn time(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("customer_id", DataType::Int32, false),
        Field::new("region", DataType::Utf8, false),
        Field::new(
            "event_time",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("spend", DataType::Decimal128(12, 2), true),
        Field::new("ratio", DataType::Float64, true),
    ]))
}

fn table(ttl: Option<Duration>) -> OnlineTable {
    OnlineTable {
        group: "spend".into(),
        version: 1,
        schema: schema(),
        key_columns: vec!["customer_id".into(), "region".into()],
        event_time_column: "event_time".into(),
        ttl,
    }
}

/// (customer_id, region, event_time, spend in cents, ratio)
type Row<'a> = (i32, &'a str, &'a str, Option<i128>, Option<f64>);

fn batch(rows: &[Row<'_>]) -> RecordBatch {
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.0))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1))),
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(
                    rows.iter().map(|r| time(r.2).timestamp_micros()),
                )
                .with_timezone("UTC"),
            ),
            Arc::new(
                Decimal128Array::from_iter(rows.iter().map(|r| r.3))
                    .with_precision_and_scale(12, 2)
                    .unwrap(),
            ),
            Arc::new(Float64Array::from_iter(rows.iter().map(|r| r.4))),
        ],
    )
    .unwrap()
}

/// The snapshot of as-of `as_of` written by the run `run_{as_of}`.
fn snapshot(as_of: &str) -> SnapshotId {
    SnapshotId {
        as_of: time(as_of),
        run_id: format!("run_{as_of}"),
    }
}

async fn load(
    store: &dyn OnlineStore,
    table: &OnlineTable,
    as_of: &str,
    batches: Vec<RecordBatch>,
) -> LoadCounts {
    let mut load = store.begin_load(table, &snapshot(as_of)).await.unwrap();
    for batch in batches {
        load.write(batch).await.unwrap();
    }
    load.commit().await.unwrap()
}

async fn loaded(store: &dyn OnlineStore) -> Option<SnapshotId> {
    store.load_state("spend", 1).await.unwrap().loaded
}

/// A decimal as a number: stores may drop trailing zeros (DynamoDB stores `2.00` as `2`).
fn amount(value: &serde_json::Value) -> f64 {
    value.to_string().parse().unwrap()
}

fn key(customer: &str, region: &str) -> Vec<String> {
    vec![customer.to_string(), region.to_string()]
}

#[rstest]
#[case::embedded(Kind::Embedded)]
#[cfg_attr(feature = "aws", case::dynamodb(Kind::DynamoDb))]
#[tokio::test]
async fn serves_loaded_rows_by_composite_key(#[case] kind: Kind) {
    let backend = backend(kind).await;
    let store = backend.0.as_ref();
    assert_eq!(loaded(store).await, None);
    let counts = load(
        store,
        &table(None),
        "2024-03-01T00:00:00Z",
        vec![
            batch(&[(1, "EU", "2024-02-28T10:00:00Z", Some(12345), Some(0.5))]),
            batch(&[
                (1, "US", "2024-02-27T00:00:00.250Z", None, None),
                (2, "EU", "2024-02-01T00:00:00Z", Some(-5), Some(2.0)),
            ]),
        ],
    )
    .await;
    assert_eq!(
        counts,
        LoadCounts {
            rows: 3,
            removed: 0
        }
    );
    assert_eq!(loaded(store).await, Some(snapshot("2024-03-01T00:00:00Z")));

    let row = store
        .get("spend", None, &key("1", "US"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        serde_json::Value::Object(row.values),
        json!({"customer_id": 1, "region": "US", "event_time": "2024-02-27T00:00:00.250Z",
               "spend": null, "ratio": null})
    );
    assert_eq!(row.event_time, time("2024-02-27T00:00:00.250Z"));
    assert_eq!(row.version, 1);
    let row = store
        .get("spend", Some(1), &key("1", "EU"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.values["spend"].to_string(), "123.45");
    assert_eq!(row.values["event_time"], json!("2024-02-28T10:00:00Z"));
    let row = store
        .get("spend", None, &key("2", "EU"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.values["spend"].to_string(), "-0.05");
    assert_eq!(amount(&row.values["ratio"]), 2.0);

    assert_eq!(
        store.get("spend", None, &key("2", "US")).await.unwrap(),
        None
    );
    assert_eq!(
        store.get("spend", None, &key("3", "EU")).await.unwrap(),
        None
    );
}

#[rstest]
#[case::embedded(Kind::Embedded)]
#[cfg_attr(feature = "aws", case::dynamodb(Kind::DynamoDb))]
#[tokio::test]
async fn a_later_load_replaces_every_row_and_removes_keys_it_lacks(#[case] kind: Kind) {
    let backend = backend(kind).await;
    let store = backend.0.as_ref();
    load(
        store,
        &table(None),
        "2024-03-01T00:00:00Z",
        vec![batch(&[
            (1, "EU", "2024-02-28T00:00:00Z", Some(100), None),
            (2, "EU", "2024-02-28T00:00:00Z", Some(200), None),
            (3, "EU", "2024-02-28T00:00:00Z", Some(300), None),
        ])],
    )
    .await;
    let counts = load(
        store,
        &table(None),
        "2024-03-02T00:00:00Z",
        vec![batch(&[(1, "EU", "2024-03-01T12:00:00Z", Some(150), None)])],
    )
    .await;
    assert_eq!(
        counts,
        LoadCounts {
            rows: 1,
            removed: 2
        }
    );
    let first = store
        .get("spend", None, &key("1", "EU"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (amount(&first.values["spend"]), first.event_time),
        (1.5, time("2024-03-01T12:00:00Z"))
    );
    for gone in ["2", "3"] {
        assert_eq!(
            store.get("spend", None, &key(gone, "EU")).await.unwrap(),
            None
        );
    }
    assert_eq!(loaded(store).await, Some(snapshot("2024-03-02T00:00:00Z")));

    // A snapshot without rows leaves the store empty.
    let counts = load(store, &table(None), "2024-03-03T00:00:00Z", vec![]).await;
    assert_eq!(
        counts,
        LoadCounts {
            rows: 0,
            removed: 1
        }
    );
    assert_eq!(
        store.get("spend", None, &key("1", "EU")).await.unwrap(),
        None
    );
}

/// A load killed half-way stays recorded as unfinished beside the last completed one, and
/// the next load replaces its rows as well as the older ones.
#[rstest]
#[case::embedded(Kind::Embedded)]
#[cfg_attr(feature = "aws", case::dynamodb(Kind::DynamoDb))]
#[tokio::test]
async fn an_unfinished_load_is_recorded_and_the_next_one_replaces_it(#[case] kind: Kind) {
    let backend = backend(kind).await;
    let store = backend.0.as_ref();
    let rows = |spend| {
        batch(&[
            (1, "EU", "2024-02-28T00:00:00Z", Some(spend), None),
            (2, "EU", "2024-02-28T00:00:00Z", Some(spend), None),
        ])
    };
    load(store, &table(None), "2024-03-01T00:00:00Z", vec![rows(100)]).await;
    let mut killed = store
        .begin_load(&table(None), &snapshot("2024-04-01T00:00:00Z"))
        .await
        .unwrap();
    killed
        .write(batch(&[(3, "US", "2024-03-30T00:00:00Z", Some(7), None)]))
        .await
        .unwrap();
    // Killed once its row is stored: the store serves a mix until a load completes.
    for _ in 0..100 {
        if store
            .get("spend", None, &key("3", "US"))
            .await
            .unwrap()
            .is_some()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        store
            .get("spend", None, &key("3", "US"))
            .await
            .unwrap()
            .is_some()
    );
    drop(killed);
    let state = store.load_state("spend", 1).await.unwrap();
    assert_eq!(state.loaded, Some(snapshot("2024-03-01T00:00:00Z")));
    assert_eq!(state.unfinished, Some(snapshot("2024-04-01T00:00:00Z")));

    let counts = load(store, &table(None), "2024-04-02T00:00:00Z", vec![rows(200)]).await;
    assert_eq!(
        counts,
        LoadCounts {
            rows: 2,
            removed: 1
        }
    );
    let state = store.load_state("spend", 1).await.unwrap();
    assert_eq!(state.loaded, Some(snapshot("2024-04-02T00:00:00Z")));
    assert_eq!(state.unfinished, None);
    assert_eq!(
        store.get("spend", None, &key("3", "US")).await.unwrap(),
        None
    );
    let row = store
        .get("spend", None, &key("2", "EU"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(amount(&row.values["spend"]), 2.0);
}

/// Two loads of one table at once (their lease lapsed): the one begun first is not
/// recorded, and the store holds exactly the later one's rows.
#[rstest]
#[case::embedded(Kind::Embedded)]
#[cfg_attr(feature = "aws", case::dynamodb(Kind::DynamoDb))]
#[tokio::test]
async fn a_load_begun_after_another_supersedes_it(#[case] kind: Kind) {
    let backend = backend(kind).await;
    let store = backend.0.as_ref();
    let first_snapshot = snapshot("2024-04-01T00:00:00Z");
    let second_snapshot = snapshot("2024-03-01T00:00:00Z");
    let mut first = store
        .begin_load(&table(None), &first_snapshot)
        .await
        .unwrap();
    let mut second = store
        .begin_load(&table(None), &second_snapshot)
        .await
        .unwrap();
    first
        .write(batch(&[(1, "EU", "2024-03-30T00:00:00Z", Some(400), None)]))
        .await
        .unwrap();
    second
        .write(batch(&[(2, "EU", "2024-02-28T00:00:00Z", Some(300), None)]))
        .await
        .unwrap();
    let error = first.commit().await.unwrap_err();
    assert!(matches!(error, Error::Superseded(_)), "{error}");
    assert!(
        error.to_string().contains("run_2024-04-01T00:00:00Z")
            && error
                .to_string()
                .contains("a load of run run_2024-03-01T00:00:00Z began since"),
        "{error}"
    );
    assert_eq!(
        second.commit().await.unwrap(),
        LoadCounts {
            rows: 1,
            removed: 1
        }
    );
    assert_eq!(loaded(store).await, Some(second_snapshot));
    assert_eq!(
        store.get("spend", None, &key("1", "EU")).await.unwrap(),
        None
    );
    assert!(
        store
            .get("spend", None, &key("2", "EU"))
            .await
            .unwrap()
            .is_some()
    );
}

#[rstest]
#[case::embedded(Kind::Embedded)]
#[cfg_attr(feature = "aws", case::dynamodb(Kind::DynamoDb))]
#[tokio::test]
async fn serves_the_newest_loaded_version_unless_asked(#[case] kind: Kind) {
    let backend = backend(kind).await;
    let store = backend.0.as_ref();
    load(
        store,
        &table(None),
        "2024-03-01T00:00:00Z",
        vec![batch(&[(1, "EU", "2024-02-28T00:00:00Z", Some(100), None)])],
    )
    .await;
    let v2 = OnlineTable {
        version: 2,
        ..table(None)
    };
    load(
        store,
        &v2,
        "2024-03-01T00:00:00Z",
        vec![batch(&[(1, "EU", "2024-02-28T00:00:00Z", Some(999), None)])],
    )
    .await;
    let latest = store
        .get("spend", None, &key("1", "EU"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (latest.version, latest.values["spend"].to_string()),
        (2, "9.99".to_string())
    );
    let first = store
        .get("spend", Some(1), &key("1", "EU"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((first.version, amount(&first.values["spend"])), (1, 1.0));
}

#[rstest]
#[case::embedded(Kind::Embedded)]
#[cfg_attr(feature = "aws", case::dynamodb(Kind::DynamoDb))]
#[tokio::test]
async fn rows_past_their_ttl_are_expired(#[case] kind: Kind) {
    let backend = backend(kind).await;
    let store = backend.0.as_ref();
    let day = Duration::from_secs(86_400);
    load(
        store,
        &table(Some(day)),
        "2024-03-01T00:00:00Z",
        vec![batch(&[(1, "EU", "2024-02-28T00:00:00Z", None, None)])],
    )
    .await;
    let row = store
        .get("spend", None, &key("1", "EU"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.ttl, Some(day));
    // Served while its age is at most the ttl, as a training set matches it.
    assert!(!row.is_expired(time("2024-02-28T23:59:59Z")));
    assert!(!row.is_expired(time("2024-02-29T00:00:00Z")));
    assert!(row.is_expired(time("2024-02-29T00:00:00.000001Z")));
}

#[rstest]
#[case::embedded(Kind::Embedded)]
#[cfg_attr(feature = "aws", case::dynamodb(Kind::DynamoDb))]
#[tokio::test]
async fn bad_lookups_say_what_is_wrong(#[case] kind: Kind) {
    let backend = backend(kind).await;
    let store = backend.0.as_ref();
    let error = store.get("spend", None, &key("1", "EU")).await.unwrap_err();
    assert!(matches!(error, Error::NotFound(_)));
    assert_eq!(
        error.to_string(),
        "feature group 'spend' has not been loaded online"
    );
    load(
        store,
        &table(None),
        "2024-03-01T00:00:00Z",
        vec![batch(&[(1, "EU", "2024-02-28T00:00:00Z", None, None)])],
    )
    .await;
    let error = store
        .get("spend", Some(7), &key("1", "EU"))
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "feature group 'spend' version 7 has not been loaded online"
    );
    let error = store
        .get("spend", None, &["1".to_string()])
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "feature group 'spend' is keyed by (customer_id, region): give 2 key value(s), got 1"
    );
    let error = store
        .get("spend", None, &key("one", "EU"))
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "key column 'customer_id' holds whole numbers; 'one' is not one"
    );
}

#[rstest]
#[case::embedded(Kind::Embedded)]
#[cfg_attr(feature = "aws", case::dynamodb(Kind::DynamoDb))]
#[tokio::test]
async fn a_batch_that_cannot_be_stored_fails_the_load_and_is_not_recorded(#[case] kind: Kind) {
    use arrow::array::UInt64Array;
    let backend = backend(kind).await;
    let store = backend.0.as_ref();
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::UInt64, false),
        Field::new(
            "event_time",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            false,
        ),
    ]));
    let table = OnlineTable {
        group: "wide".into(),
        version: 1,
        schema: schema.clone(),
        key_columns: vec!["id".into()],
        event_time_column: "event_time".into(),
        ttl: None,
    };
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(UInt64Array::from(vec![1, u64::MAX])),
            Arc::new(TimestampMicrosecondArray::from(vec![0, 0])),
        ],
    )
    .unwrap();
    let mut load = store
        .begin_load(&table, &snapshot("2024-03-01T00:00:00Z"))
        .await
        .unwrap();
    // The failure shows on this write or, if the writer is behind, on the next call.
    let error = match load.write(batch).await {
        Err(e) => e,
        Ok(()) => load.commit().await.unwrap_err(),
    };
    assert!(matches!(error, Error::Invalid(_)), "{error}");
    assert!(
        error
            .to_string()
            .starts_with("key column 'id' does not fit a 64-bit integer"),
        "{error}"
    );
    assert_eq!(store.load_state("wide", 1).await.unwrap().loaded, None);
}

/// NaN and infinities have no JSON or DynamoDB number: every store keeps and serves them
/// as the strings of the protobuf JSON mapping.
#[rstest]
#[case::embedded(Kind::Embedded)]
#[cfg_attr(feature = "aws", case::dynamodb(Kind::DynamoDb))]
#[tokio::test]
async fn nan_and_infinities_are_served_as_their_json_strings(#[case] kind: Kind) {
    let backend = backend(kind).await;
    let store = backend.0.as_ref();
    let rows = [
        (1, "EU", "2024-02-28T10:00:00Z", Some(1), Some(f64::NAN)),
        (
            2,
            "EU",
            "2024-02-28T10:00:00Z",
            Some(2),
            Some(f64::INFINITY),
        ),
        (
            3,
            "EU",
            "2024-02-28T10:00:00Z",
            Some(3),
            Some(f64::NEG_INFINITY),
        ),
        (4, "EU", "2024-02-28T10:00:00Z", Some(4), Some(-0.25)),
    ];
    load(
        store,
        &table(None),
        "2024-03-01T00:00:00Z",
        vec![batch(&rows)],
    )
    .await;
    for (customer, expected) in [
        ("1", serde_json::json!("NaN")),
        ("2", serde_json::json!("Infinity")),
        ("3", serde_json::json!("-Infinity")),
    ] {
        let row = store
            .get("spend", None, &key(customer, "EU"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.values["ratio"], expected, "customer {customer}");
    }
    let row = store
        .get("spend", None, &key("4", "EU"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(amount(&row.values["ratio"]), -0.25);
}

/// A table of the group version keyed otherwise (KEY changed without a VERSION bump) is
/// refused before anything is computed.
#[rstest]
#[case::embedded(Kind::Embedded)]
#[cfg_attr(feature = "aws", case::dynamodb(Kind::DynamoDb))]
#[tokio::test]
async fn a_table_keyed_otherwise_is_refused_before_loading(#[case] kind: Kind) {
    let backend = backend(kind).await;
    let store = backend.0.as_ref();
    store.check_table(&table(None)).await.unwrap();
    load(
        store,
        &table(None),
        "2024-03-01T00:00:00Z",
        vec![batch(&[(1, "EU", "2024-02-28T00:00:00Z", None, None)])],
    )
    .await;
    store.check_table(&table(None)).await.unwrap();
    let rekeyed = OnlineTable {
        key_columns: vec!["region".into(), "customer_id".into()],
        ..table(None)
    };
    let error = store.check_table(&rekeyed).await.unwrap_err();
    assert!(matches!(error, Error::Invalid(_)), "{error}");
    assert!(
        error.to_string().contains(
            "exists keyed by (customer_id integer, region text), but the group is keyed by \
             (region text, customer_id integer)"
        ),
        "{error}"
    );
    let single = OnlineTable {
        key_columns: vec!["customer_id".into()],
        ..table(None)
    };
    let error = store.check_table(&single).await.unwrap_err().to_string();
    assert!(error.contains("bump the group's VERSION"), "{error}");
}

/// What a store refuses to hold is refused by its row check, which runs before the commit
/// point, as well as by the load.
#[rstest]
#[case::embedded(Kind::Embedded)]
#[cfg_attr(feature = "aws", case::dynamodb(Kind::DynamoDb))]
#[tokio::test]
async fn rows_a_store_cannot_hold_are_refused_by_its_row_check(#[case] kind: Kind) {
    let dynamodb = !matches!(kind, Kind::Embedded);
    let backend = backend(kind).await;
    let store = backend.0.as_ref();
    let fine = batch(&[
        (1, "EU", "2024-02-28T00:00:00Z", Some(1), Some(1e125)),
        (2, "EU", "2024-02-28T00:00:00Z", None, Some(f64::NAN)),
        (3, "EU", "2024-02-28T00:00:00Z", None, Some(-1e-130)),
    ]);
    store.check_rows(&table(None), &fine).unwrap();

    let wide_schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new(
            "event_time",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            false,
        ),
        Field::new("blob", DataType::Utf8, true),
        Field::new("huge", DataType::Float64, true),
    ]));
    let wide = OnlineTable {
        group: "wide".into(),
        version: 1,
        schema: wide_schema.clone(),
        key_columns: vec!["id".into()],
        event_time_column: "event_time".into(),
        ttl: None,
    };
    let rows = |blob: &str, huge: f64| {
        RecordBatch::try_new(
            wide_schema.clone(),
            vec![
                Arc::new(arrow::array::Int64Array::from(vec![7])),
                Arc::new(TimestampMicrosecondArray::from(vec![0])),
                Arc::new(StringArray::from(vec![blob])),
                Arc::new(Float64Array::from(vec![huge])),
            ],
        )
        .unwrap()
    };
    let big = "x".repeat(500 * 1024);
    let outcomes = [
        store.check_rows(&wide, &rows(&big, 1.0)),
        store.check_rows(&wide, &rows("small", 1e300)),
        store.check_rows(&wide, &rows("small", 1e-200)),
    ];
    match store.check_rows(&wide, &rows("small", 1.0)) {
        Ok(()) => {}
        Err(e) => panic!("a small row was refused: {e}"),
    }
    if dynamodb {
        let messages: Vec<String> = outcomes
            .iter()
            .map(|o| o.as_ref().unwrap_err().to_string())
            .collect();
        assert!(
            messages[0].starts_with("the row of key (7) takes up to"),
            "{}",
            messages[0]
        );
        assert!(
            messages[1].starts_with("column 'huge' holds 1e300 (key 7), beyond the range"),
            "{}",
            messages[1]
        );
        assert!(
            messages[2].starts_with("column 'huge' holds 1e-200 (key 7)"),
            "{}",
            messages[2]
        );
        return;
    }
    // SQLite holds them all.
    assert!(outcomes.iter().all(Result::is_ok));
}
