//! `AsOfJoinExec`: the point-in-time join as a DataFusion operator. Both inputs are split by
//! key hash into partitions that join in parallel, each sorted by DataFusion (which spills
//! through the memory pool), then merged in one pass: a partition holds one spine batch,
//! the feature batches its matches point into, and the running best.
//!
//! Its output keeps each spine partition's partitioning and order (spine keys, then spine
//! time, ascending, nulls first), as its properties say; its metrics are DataFusion's
//! baseline (output rows, compute time) and `matched_rows`, the spine rows that found a
//! match.

use std::fmt;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Int64Array, RecordBatch, UInt32Array, new_null_array};
use arrow::compute::{interleave, take};
use arrow::datatypes::{DataType, FieldRef, Schema, SchemaRef, TimeUnit};
use arrow::row::{RowConverter, Rows, SortField};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{
    EquivalenceProperties, LexOrdering, PhysicalExpr, PhysicalSortExpr,
};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::expressions::col;
use datafusion::physical_plan::metrics::{
    BaselineMetrics, Count, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet,
};
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, Partitioning,
    PlanProperties,
};
use futures::StreamExt;

use super::matcher::{FeatureBatch, Matcher, RowRef, Step};
use crate::timestamps::{finer, nanos_per_tick, ticks_in};

/// The metric counting spine rows that found a match.
const MATCHED_ROWS: &str = "matched_rows";

/// Which columns of the two inputs the join reads, by name.
#[derive(Debug, Clone)]
pub struct AsOfJoinColumns {
    pub spine_keys: Vec<String>,
    /// A timestamp column.
    pub spine_time: String,
    /// Of the same types as `spine_keys`, in the same order.
    pub feature_keys: Vec<String>,
    /// Timestamp columns: when each row became known, when it happened, and the as-of of
    /// the snapshot it came from.
    pub visible_at: String,
    pub event_time: String,
    pub snapshot_as_of: String,
    /// Feature columns appended to each spine row (null without a match), and their names in
    /// the output.
    pub outputs: Vec<(String, String)>,
    /// How long after its event time a feature row may match, in nanoseconds.
    pub ttl_nanos: Option<i64>,
}

/// Appends to each spine row the feature columns of its point-in-time match. Its output
/// keeps the spine's columns and comes in the order of the spine sorted by key and time.
#[derive(Debug)]
pub struct AsOfJoinExec {
    spine: Arc<dyn ExecutionPlan>,
    features: Arc<dyn ExecutionPlan>,
    columns: AsOfJoinColumns,
    /// The finest unit of the times compared, in whose ticks the join compares them all.
    unit: TimeUnit,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl AsOfJoinExec {
    /// Splits both inputs by key hash into `partitions`, which join in parallel, and sorts
    /// each partition as the join needs it.
    pub fn try_new(
        spine: Arc<dyn ExecutionPlan>,
        features: Arc<dyn ExecutionPlan>,
        columns: AsOfJoinColumns,
        partitions: usize,
    ) -> Result<Self> {
        let spine_order: Vec<&str> = columns
            .spine_keys
            .iter()
            .chain([&columns.spine_time])
            .map(String::as_str)
            .collect();
        let feature_order: Vec<&str> = columns
            .feature_keys
            .iter()
            .chain([&columns.visible_at])
            .map(String::as_str)
            .collect();
        let keys = columns.spine_keys.len();
        let spine = partitioned_and_sorted(spine, &spine_order, keys, partitions)?;
        let features = partitioned_and_sorted(features, &feature_order, keys, partitions)?;

        let feature_schema = features.schema();
        let spine_schema = spine.schema();
        let mut unit = TimeUnit::Second;
        for (schema, column) in [
            (&spine_schema, &columns.spine_time),
            (&feature_schema, &columns.visible_at),
            (&feature_schema, &columns.event_time),
            (&feature_schema, &columns.snapshot_as_of),
        ] {
            match schema.field_with_name(column)?.data_type() {
                DataType::Timestamp(own, _) => unit = finer(unit, *own),
                other => {
                    return Err(DataFusionError::Plan(format!(
                        "an as-of join compares timestamps; column '{column}' is {other}"
                    )));
                }
            }
        }
        let mut fields: Vec<FieldRef> = spine_schema.fields().iter().cloned().collect();
        for (column, name) in &columns.outputs {
            let field = feature_schema.field_with_name(column)?;
            fields.push(Arc::new(
                field.clone().with_name(name.clone()).with_nullable(true),
            ));
        }
        let schema = Arc::new(Schema::new(fields));
        // The spine's columns lead the output at the same indices, so the spine's
        // partitioning and sort order hold of the output as written.
        let ordering = spine.output_ordering().cloned();
        let properties = PlanProperties::new(
            EquivalenceProperties::new_with_orderings(schema.clone(), ordering),
            spine.output_partitioning().clone(),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        Ok(AsOfJoinExec {
            spine,
            features,
            columns,
            unit,
            schema,
            properties: Arc::new(properties),
            metrics: ExecutionPlanMetricsSet::new(),
        })
    }

    /// Spine rows that found a match so far, over all partitions.
    pub fn matched_rows(&self) -> usize {
        self.metrics
            .clone_inner()
            .sum_by_name(MATCHED_ROWS)
            .map_or(0, |m| m.as_usize())
    }
}

/// `input` in `partitions` by the hash of its first `keys` columns (every row of a key in
/// the same partition, on both sides), each sorted by `columns` (ascending, nulls first:
/// the order of Arrow's row format).
fn partitioned_and_sorted(
    input: Arc<dyn ExecutionPlan>,
    columns: &[&str],
    keys: usize,
    partitions: usize,
) -> Result<Arc<dyn ExecutionPlan>> {
    let schema = input.schema();
    let exprs = columns
        .iter()
        .map(|name| col(name, &schema))
        .collect::<Result<Vec<_>>>()?;
    let hashed = Partitioning::Hash(exprs[..keys].to_vec(), partitions);
    let input: Arc<dyn ExecutionPlan> =
        if partitions == 1 && input.output_partitioning().partition_count() == 1 {
            input
        } else {
            Arc::new(RepartitionExec::try_new(input, hashed)?)
        };
    let ordering = LexOrdering::new(exprs.into_iter().map(PhysicalSortExpr::new_default))
        .ok_or_else(|| DataFusionError::Internal("an as-of join sorts by some column".into()))?;
    Ok(Arc::new(
        SortExec::new(ordering, input).with_preserve_partitioning(true),
    ))
}

impl DisplayAs for AsOfJoinExec {
    fn fmt_as(&self, _format: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let c = &self.columns;
        write!(
            f,
            "AsOfJoinExec: on=[({}) = ({})], {} >= {}, latest by ({}, {})",
            c.spine_keys.join(", "),
            c.feature_keys.join(", "),
            c.spine_time,
            c.visible_at,
            c.event_time,
            c.snapshot_as_of
        )?;
        if let Some(ttl) = c.ttl_nanos {
            write!(f, ", ttl={ttl}ns")?;
        }
        Ok(())
    }
}

impl ExecutionPlan for AsOfJoinExec {
    fn name(&self) -> &str {
        "AsOfJoinExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.spine, &self.features]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true, false]
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let features = children.pop();
        let spine = children.pop();
        let (Some(spine), Some(features)) = (spine, features) else {
            return Err(DataFusionError::Internal(
                "AsOfJoinExec has two children".into(),
            ));
        };
        Ok(Arc::new(AsOfJoinExec {
            spine,
            features,
            columns: self.columns.clone(),
            unit: self.unit,
            schema: self.schema.clone(),
            properties: self.properties.clone(),
            metrics: ExecutionPlanMetricsSet::new(),
        }))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let join = Join::try_new(self, partition, context)?;
        let stream = futures::stream::try_unfold(join, |mut join| async move {
            Ok(join.next_batch().await?.map(|batch| (batch, join)))
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema.clone(),
            stream,
        )))
    }
}

/// The running join: the two sorted streams, the matcher, and the feature batches that
/// matches or the running best point into.
struct Join {
    spine: SendableRecordBatchStream,
    features: SendableRecordBatchStream,
    spine_keys: Vec<usize>,
    spine_time: usize,
    feature_keys: Vec<usize>,
    feature_times: [usize; 3],
    outputs: Vec<usize>,
    schema: SchemaRef,
    converter: RowConverter,
    matcher: Matcher,
    /// The unit of the ticks the matcher compares.
    unit: TimeUnit,
    /// Feature batches by id that matches, the best or the matcher's current batch use.
    held: Vec<(u64, RecordBatch)>,
    next_id: u64,
    /// A row of nulls in the feature schema: the source of unmatched rows.
    nulls: RecordBatch,
    baseline: BaselineMetrics,
    matched: Count,
    /// Whether both inputs have been asked for their first batch.
    started: bool,
    /// The features' first batch (or their end), taken with the spine's first.
    first_features: Option<Option<Result<RecordBatch>>>,
}

impl Join {
    fn try_new(exec: &AsOfJoinExec, partition: usize, context: Arc<TaskContext>) -> Result<Self> {
        let spine_schema = exec.spine.schema();
        let feature_schema = exec.features.schema();
        let c = &exec.columns;
        let index =
            |schema: &Schema, name: &str| schema.index_of(name).map_err(DataFusionError::from);
        let spine_keys = c
            .spine_keys
            .iter()
            .map(|k| index(&spine_schema, k))
            .collect::<Result<Vec<_>>>()?;
        let feature_keys = c
            .feature_keys
            .iter()
            .map(|k| index(&feature_schema, k))
            .collect::<Result<Vec<_>>>()?;
        let sort_fields = feature_keys
            .iter()
            .map(|&i| SortField::new(feature_schema.field(i).data_type().clone()))
            .collect();
        let outputs = c
            .outputs
            .iter()
            .map(|(column, _)| index(&feature_schema, column))
            .collect::<Result<Vec<_>>>()?;
        let null_columns = feature_schema
            .fields()
            .iter()
            .map(|f| new_null_array(f.data_type(), 1))
            .collect();
        let nullable = Schema::new(
            feature_schema
                .fields()
                .iter()
                .map(|f| f.as_ref().clone().with_nullable(true))
                .collect::<Vec<_>>(),
        );
        Ok(Join {
            spine: exec.spine.execute(partition, context.clone())?,
            features: exec.features.execute(partition, context)?,
            spine_time: index(&spine_schema, &c.spine_time)?,
            feature_times: [
                index(&feature_schema, &c.visible_at)?,
                index(&feature_schema, &c.event_time)?,
                index(&feature_schema, &c.snapshot_as_of)?,
            ],
            spine_keys,
            feature_keys,
            outputs,
            schema: exec.schema.clone(),
            converter: RowConverter::new(sort_fields)?,
            matcher: Matcher::new(
                c.ttl_nanos
                    .map(|ttl| ttl.div_euclid(nanos_per_tick(exec.unit))),
            ),
            unit: exec.unit,
            held: Vec::new(),
            next_id: 0,
            nulls: RecordBatch::try_new(Arc::new(nullable), null_columns)?,
            baseline: BaselineMetrics::new(&exec.metrics, partition),
            matched: MetricBuilder::new(&exec.metrics).counter(MATCHED_ROWS, partition),
            started: false,
            first_features: None,
        })
    }

    /// The next spine batch with its matches' feature columns appended.
    async fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        let spine = if self.started {
            self.spine.next().await
        } else {
            // Both sorts take in all their input before their first batch: run them at once.
            self.started = true;
            let (spine, features) = futures::join!(self.spine.next(), self.features.next());
            self.first_features = Some(features);
            spine
        };
        let Some(spine) = spine.transpose()? else {
            self.baseline.done();
            return Ok(None);
        };
        // Compute time leaves out the waits for the inputs.
        let elapsed = self.baseline.elapsed_compute().clone();
        let mut timer = elapsed.timer();
        let keys = self.spine_keys_of(&spine)?;
        let times = self.ticks(&spine, self.spine_time)?;
        let mut matches: Vec<Option<RowRef>> = Vec::with_capacity(spine.num_rows());
        for row in 0..spine.num_rows() {
            let time = times.is_valid(row).then(|| times.value(row));
            loop {
                match self.matcher.match_row(keys.row(row), time) {
                    Step::Matched(found) => {
                        matches.push(found);
                        break;
                    }
                    Step::NeedFeatures => {
                        timer.stop();
                        self.pull_features(&matches).await?;
                        timer.restart();
                    }
                }
            }
        }
        let batch = self.assemble(&spine, &matches)?;
        self.release()?;
        timer.done();
        self.baseline.record_output(batch.num_rows());
        Ok(Some(batch))
    }

    /// Column `index` of `batch`, a timestamp, in ticks of the join's unit.
    fn ticks(&self, batch: &RecordBatch, index: usize) -> Result<Int64Array> {
        let name = batch.schema_ref().field(index).name().clone();
        let ticks = ticks_in(batch.column(index), self.unit, &name).ok_or_else(|| {
            DataFusionError::Internal(format!("as-of join column '{name}' is not a timestamp"))
        })?;
        Ok(ticks?)
    }

    fn spine_keys_of(&self, spine: &RecordBatch) -> Result<Rows> {
        let columns: Vec<ArrayRef> = self
            .spine_keys
            .iter()
            .map(|&i| spine.column(i).clone())
            .collect();
        Ok(self.converter.convert_columns(&columns)?)
    }

    /// Gives the matcher the next feature batch, dropping the finished one unless a match of
    /// the current spine batch or the running best points into it.
    async fn pull_features(&mut self, matches: &[Option<RowRef>]) -> Result<()> {
        let next = loop {
            let next = match self.first_features.take() {
                Some(first) => first,
                None => self.features.next().await,
            };
            match next.transpose()? {
                Some(batch) if batch.num_rows() == 0 => continue,
                other => break other,
            }
        };
        let Some(batch) = next else {
            self.matcher.features_exhausted();
            return Ok(());
        };
        let elapsed = self.baseline.elapsed_compute().clone();
        let _timer = elapsed.timer();
        let id = self.next_id;
        self.next_id += 1;
        let keys: Vec<ArrayRef> = self
            .feature_keys
            .iter()
            .map(|&i| batch.column(i).clone())
            .collect();
        let [visible_at, event_time, snapshot_as_of] =
            self.feature_times.map(|i| self.ticks(&batch, i));
        let features = FeatureBatch {
            id,
            keys: self.converter.convert_columns(&keys)?,
            visible_at: visible_at?,
            event_time: event_time?,
            snapshot_as_of: snapshot_as_of?,
        };
        self.held.push((id, batch));
        if let Some(finished) = self.matcher.push_features(features) {
            let used = matches.iter().flatten().any(|m| m.0 == finished.id)
                || self.matcher.best().is_some_and(|(id, _)| id == finished.id);
            if !used {
                self.held.retain(|(held, _)| *held != finished.id);
            }
        }
        Ok(())
    }

    fn assemble(&self, spine: &RecordBatch, matches: &[Option<RowRef>]) -> Result<RecordBatch> {
        let mut sources: Vec<&RecordBatch> = vec![&self.nulls];
        sources.extend(self.held.iter().map(|(_, batch)| batch));
        let positions: Vec<(usize, usize)> = matches
            .iter()
            .map(|m| match m {
                None => (0, 0),
                Some((id, row)) => {
                    let source = self.held.iter().position(|(held, _)| held == id);
                    (1 + source.expect("matched batches are held"), *row)
                }
            })
            .collect();
        self.matched
            .add(matches.iter().filter(|m| m.is_some()).count());
        let mut columns = spine.columns().to_vec();
        for &output in &self.outputs {
            let arrays: Vec<&dyn Array> =
                sources.iter().map(|b| b.column(output).as_ref()).collect();
            columns.push(interleave(&arrays, &positions)?);
        }
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }

    /// Keeps only the matcher's current batch and the running best, the best copied out of
    /// its batch when that batch is done, so memory stays at about one batch.
    fn release(&mut self) -> Result<()> {
        let current = self.held.last().map(|(id, _)| *id);
        if let Some((best_id, row)) = self.matcher.best()
            && Some(best_id) != current
            && let Some(position) = self.held.iter().position(|(id, _)| *id == best_id)
        {
            let batch = &self.held[position].1;
            let indices = UInt32Array::from(vec![row as u32]);
            let columns = batch
                .columns()
                .iter()
                .map(|c| take(c.as_ref(), &indices, None))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            let copy = RecordBatch::try_new(batch.schema(), columns)?;
            let id = self.next_id;
            self.next_id += 1;
            self.held[position] = (id, copy);
            self.matcher.move_best((id, 0));
        }
        let best = self.matcher.best().map(|(id, _)| id);
        self.held
            .retain(|(id, _)| Some(*id) == current || Some(*id) == best);
        Ok(())
    }
}
