//! `AsOfJoinExec` run partition by partition on a case small enough to check by a nested
//! loop: its matches, its properties, its metrics.

use std::sync::Arc;

use arrow::array::{Array, AsArray, Int64Array, RecordBatch, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Int64Type, Schema};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::execution::TaskContext;
use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanProperties, Partitioning};
use fengine_testing::XorShift;

use super::{AsOfJoinColumns, AsOfJoinExec};
use crate::test_support::outputs_as_declared;

fn table(columns: Vec<(&str, Arc<dyn Array>)>) -> Arc<dyn ExecutionPlan> {
    let fields: Vec<Field> = columns
        .iter()
        .map(|(name, column)| Field::new(*name, column.data_type().clone(), true))
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let batch =
        RecordBatch::try_new(schema.clone(), columns.into_iter().map(|c| c.1).collect()).unwrap();
    // Cut in batches of 50 rows, so the join sees batch boundaries.
    let batches = (0..batch.num_rows())
        .step_by(50)
        .map(|at| batch.slice(at, 50.min(batch.num_rows() - at)))
        .collect();
    MemorySourceConfig::try_new_exec(&[batches], schema, None).unwrap()
}

fn micros(values: Vec<i64>) -> Arc<dyn Array> {
    Arc::new(TimestampMicrosecondArray::from(values).with_timezone("UTC"))
}

#[tokio::test]
async fn joins_as_a_nested_loop_does_and_outputs_what_its_properties_say() {
    let mut random = XorShift(0x9E37_79B9_7F4A_7C15);
    let spine: Vec<(i64, i64, i64)> = (0..400)
        .map(|id| (id, random.below(30) as i64, random.below(1_000) as i64))
        .collect();
    // Distinct times per key, so each spine row has at most one latest match; keys 25 to 29
    // and times before 100 have none.
    let features: Vec<(i64, i64, i64)> = (0..300)
        .map(|i| (i % 25, 100 + (i / 25) * 83 % 900, i))
        .collect();

    let spine_plan = table(vec![
        (
            "id",
            Arc::new(Int64Array::from_iter_values(spine.iter().map(|s| s.0))),
        ),
        (
            "k",
            Arc::new(Int64Array::from_iter_values(spine.iter().map(|s| s.1))),
        ),
        ("t", micros(spine.iter().map(|s| s.2).collect())),
    ]);
    let feature_plan = table(vec![
        (
            "fk",
            Arc::new(Int64Array::from_iter_values(features.iter().map(|f| f.0))),
        ),
        ("ft", micros(features.iter().map(|f| f.1).collect())),
        (
            "value",
            Arc::new(Int64Array::from_iter_values(features.iter().map(|f| f.2))),
        ),
    ]);
    let columns = AsOfJoinColumns {
        spine_keys: vec!["k".into()],
        spine_time: "t".into(),
        feature_keys: vec!["fk".into()],
        visible_at: "ft".into(),
        event_time: "ft".into(),
        snapshot_as_of: "ft".into(),
        outputs: vec![("value".into(), "value".into())],
        ttl_nanos: None,
    };
    let join = Arc::new(AsOfJoinExec::try_new(spine_plan, feature_plan, columns, 3).unwrap());
    let plan: Arc<dyn ExecutionPlan> = join.clone();
    assert!(matches!(
        plan.output_partitioning(),
        Partitioning::Hash(_, 3)
    ));

    let outputs = outputs_as_declared(&plan, Arc::new(TaskContext::default())).await;

    let mut seen = 0;
    let mut matched = 0;
    for batch in outputs.iter().flatten() {
        let ids = batch.column(0).as_primitive::<Int64Type>();
        let values = batch.column(3).as_primitive::<Int64Type>();
        for row in 0..batch.num_rows() {
            let (_, key, time) = spine[ids.value(row) as usize];
            // The feature row of the same key with the latest time at or before the spine's.
            let expected = features
                .iter()
                .filter(|f| f.0 == key && f.1 <= time)
                .max_by_key(|f| f.1)
                .map(|f| f.2);
            let actual = values.is_valid(row).then(|| values.value(row));
            assert_eq!(actual, expected, "spine row {}", ids.value(row));
            matched += usize::from(expected.is_some());
            seen += 1;
        }
    }
    assert_eq!(seen, spine.len(), "every spine row comes out once");
    assert!(matched > 0 && matched < spine.len());
    assert_eq!(join.matched_rows(), matched);
    let metrics = join.metrics().expect("the join has metrics");
    assert_eq!(metrics.output_rows(), Some(spine.len()));
    assert_eq!(
        join.schema().field(3).data_type(),
        &DataType::Int64,
        "the feature column keeps its type"
    );
}
