//! DynamoDB loads through an endpoint that throttles and leaves items unprocessed: nothing
//! is lost, and what cannot be written in time is reported, never dropped.
#![cfg(feature = "aws")]

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Float64Array, Int64Array, RecordBatch, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use fengine_aws::{AwsContext, DynamoDbOnlineStore, WriteSettings};
use fengine_online::{OnlineStore, OnlineTable};
use fengine_testing::{Faults, FaultyDynamoDb};

fn table() -> OnlineTable {
    OnlineTable {
        group: "load".into(),
        version: 1,
        schema: Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new(
                "event_time",
                DataType::Timestamp(TimeUnit::Microsecond, None),
                false,
            ),
            Field::new("value", DataType::Float64, true),
        ])),
        key_columns: vec!["id".into()],
        event_time_column: "event_time".into(),
        ttl: None,
    }
}

fn batch(ids: std::ops::Range<i64>) -> RecordBatch {
    let n = ids.end - ids.start;
    RecordBatch::try_new(
        table().schema,
        vec![
            Arc::new(Int64Array::from_iter_values(ids.clone())),
            Arc::new(TimestampMicrosecondArray::from_iter_values(
                (0..n).map(|i| i * 1_000_000),
            )),
            Arc::new(Float64Array::from_iter_values(ids.map(|i| i as f64 / 2.0))),
        ],
    )
    .unwrap()
}

async fn store(server: &FaultyDynamoDb, deadline: Duration) -> DynamoDbOnlineStore {
    let aws = AwsContext::local(&server.endpoint);
    DynamoDbOnlineStore::new(
        &aws,
        "faults_",
        WriteSettings {
            requests_in_flight: 32,
            deadline,
        },
    )
}

fn snapshot() -> fengine_online::SnapshotId {
    fengine_online::SnapshotId {
        as_of: chrono::Utc::now(),
        run_id: "faults".to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100k_item_load_through_throttling_and_unprocessed_items_loses_nothing() {
    let server = FaultyDynamoDb::start(
        Faults {
            unprocessed_percent: 20,
            throttled_percent: 10,
        },
        "id",
    );
    let store = store(&server, Duration::from_secs(300)).await;
    let mut load = store.begin_load(&table(), &snapshot()).await.unwrap();
    for start in (0..100_000).step_by(8_192) {
        load.write(batch(start..(start + 8_192).min(100_000)))
            .await
            .unwrap();
    }
    let written = load.commit().await.unwrap();
    assert_eq!(written.rows, 100_000);
    let accepted = server.accepted();
    assert_eq!(accepted.len(), 100_000);
    assert!((0..100_000).all(|id| accepted.contains(&id.to_string())));
    let counts = server.counts();
    assert!(
        counts.throttled > 100 && counts.items_left_unprocessed > 10_000,
        "{counts:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_still_unwritten_at_the_deadline_fail_the_load_with_their_count() {
    let server = FaultyDynamoDb::start(
        Faults {
            unprocessed_percent: 100,
            throttled_percent: 0,
        },
        "id",
    );
    let store = store(&server, Duration::from_millis(300)).await;
    let mut load = store.begin_load(&table(), &snapshot()).await.unwrap();
    load.write(batch(0..1_000)).await.unwrap();
    let error = load.commit().await.unwrap_err();
    assert!(
        error.to_string().starts_with(
            "online store: 1000 of 1000 items were not written to DynamoDB table 'faults_load_v1' within 0.3 s of retries"
        ),
        "{error}"
    );
    assert!(server.accepted().is_empty());
}

/// Rows DynamoDB cannot hold fail the load before anything is sent, naming what is wrong.
/// (NaN and infinities it holds as strings: the online conformance suite.)
#[tokio::test]
async fn values_dynamodb_cannot_hold_are_refused_naming_the_key() {
    let server = FaultyDynamoDb::start(
        Faults {
            unprocessed_percent: 0,
            throttled_percent: 0,
        },
        "id",
    );
    let store = store(&server, Duration::from_secs(10)).await;

    let wide = OnlineTable {
        schema: Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new(
                "event_time",
                DataType::Timestamp(TimeUnit::Microsecond, None),
                false,
            ),
            Field::new("blob", DataType::Utf8, true),
        ])),
        ..table()
    };
    let mut load = store.begin_load(&wide, &snapshot()).await.unwrap();
    let huge = RecordBatch::try_new(
        wide.schema.clone(),
        vec![
            Arc::new(Int64Array::from(vec![7, 8])),
            Arc::new(TimestampMicrosecondArray::from(vec![0, 0])),
            Arc::new(arrow::array::StringArray::from(vec![
                "small".to_string(),
                "x".repeat(500 * 1024),
            ])),
        ],
    )
    .unwrap();
    let error = load.write(huge).await.unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("the row of key (8) takes 512")
            && error
                .to_string()
                .contains("over DynamoDB's limit of 400 KB"),
        "{error}"
    );
    assert!(
        server.accepted().is_empty(),
        "nothing of a refused batch is written"
    );
}
