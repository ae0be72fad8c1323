//! [`RangeWindowExec`]: the rolling windows of one partitioning and time ordering in one
//! pass over sorted input. Its properties are those of DataFusion's window operator over
//! the same windows (the rule builds that operator to take them); its metrics are
//! DataFusion's baseline (output rows, compute time).

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch};
use arrow::datatypes::SchemaRef;
use arrow::row::{OwnedRow, RowConverter, Rows, SortField};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use futures::StreamExt;

use super::{RangeWindow, WindowFunction, WindowState};
use crate::sliding::{self, AggregateFunction, Kind, Slot, Value, add, remove};

#[derive(Debug)]
pub struct RangeWindowExec {
    pub(super) input: Arc<dyn ExecutionPlan>,
    pub(super) partition_by: Vec<Arc<dyn PhysicalExpr>>,
    pub(super) order_by: Arc<dyn PhysicalExpr>,
    pub(super) windows: Vec<RangeWindow>,
    pub(super) schema: SchemaRef,
    pub(super) properties: Arc<PlanProperties>,
    pub(super) metrics: ExecutionPlanMetricsSet,
}

impl DisplayAs for RangeWindowExec {
    fn fmt_as(&self, _format: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let windows: Vec<String> = self.windows.iter().map(RangeWindow::describe).collect();
        write!(f, "RangeWindowExec (fengine): [{}]", windows.join(", "))
    }
}

impl ExecutionPlan for RangeWindowExec {
    fn name(&self) -> &str {
        "RangeWindowExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let input = children
            .pop()
            .ok_or_else(|| DataFusionError::Internal("RangeWindowExec has one child".into()))?;
        Ok(Arc::new(RangeWindowExec {
            input,
            partition_by: self.partition_by.clone(),
            order_by: self.order_by.clone(),
            windows: self.windows.clone(),
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
        let input = self.input.execute(partition, context)?;
        let key_fields = self
            .partition_by
            .iter()
            .map(|e| Ok(SortField::new(e.data_type(&self.input.schema())?)))
            .collect::<Result<Vec<_>>>()?;
        let state = Rolling {
            input,
            partition_by: self.partition_by.clone(),
            order_by: self.order_by.clone(),
            windows: self.windows.clone(),
            schema: self.schema.clone(),
            keys: RowConverter::new(key_fields)?,
            segment: None,
            times: VecDeque::new(),
            slots: VecDeque::new(),
            first_row: 0,
            next_row: 0,
            entered: vec![0; self.windows.len()],
            left: vec![0; self.windows.len()],
            states: self.windows.iter().map(|w| w.function.state()).collect(),
            group: Vec::new(),
            group_time: None,
            pending: VecDeque::new(),
            first_pending: 0,
            done: false,
            baseline: BaselineMetrics::new(&self.metrics, partition),
        };
        let stream = futures::stream::try_unfold(state, |mut state| async move {
            Ok(state.next_batch().await?.map(|batch| (batch, state)))
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema.clone(),
            stream,
        )))
    }
}

/// An input batch waiting for the values of its last rows.
struct Pending {
    batch: RecordBatch,
    /// Per window, each row's value once its peer group is complete.
    values: Vec<Vec<Value>>,
    filled: usize,
}

/// The running windows of one input partition.
struct Rolling {
    input: SendableRecordBatchStream,
    partition_by: Vec<Arc<dyn PhysicalExpr>>,
    order_by: Arc<dyn PhysicalExpr>,
    windows: Vec<RangeWindow>,
    schema: SchemaRef,
    keys: RowConverter,
    /// The current key, and whether its rows have no time (those are peers of each other
    /// only).
    segment: Option<(OwnedRow, bool)>,
    /// The current key's rows still in some window, from `first_row`: times and one slot
    /// per window.
    times: VecDeque<i64>,
    slots: VecDeque<sliding::Slot>,
    first_row: u64,
    next_row: u64,
    /// Per window, the first row not in it yet, and the first row that has not left it.
    entered: Vec<u64>,
    left: Vec<u64>,
    /// Per window, what it keeps of its frame.
    states: Vec<WindowState>,
    /// The rows of the current peer group: (pending batch number, row).
    group: Vec<(usize, usize)>,
    group_time: Option<i64>,
    pending: VecDeque<Pending>,
    /// The number of the first pending batch.
    first_pending: usize,
    done: bool,
    baseline: BaselineMetrics,
}

impl Rolling {
    async fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        // Compute time leaves out the waits for the input.
        let elapsed = self.baseline.elapsed_compute().clone();
        loop {
            let timer = elapsed.timer();
            let ready = self.ready()?;
            timer.done();
            if let Some(ready) = ready {
                self.baseline.record_output(ready.num_rows());
                return Ok(Some(ready));
            }
            if self.done {
                self.baseline.done();
                return Ok(None);
            }
            let next = self.input.next().await.transpose()?;
            let _timer = elapsed.timer();
            match next {
                Some(batch) => self.take(batch)?,
                None => {
                    self.finish_group();
                    self.done = true;
                }
            }
        }
    }

    /// The first pending batch, once every row of it has its values.
    fn ready(&mut self) -> Result<Option<RecordBatch>> {
        let complete = self
            .pending
            .front()
            .is_some_and(|p| p.filled == p.batch.num_rows());
        if !complete {
            return Ok(None);
        }
        let pending = self.pending.pop_front().expect("checked above");
        self.first_pending += 1;
        let mut columns = pending.batch.columns().to_vec();
        for (window, values) in self.windows.iter().zip(pending.values) {
            columns.push(window.output_column(values)?);
        }
        Ok(Some(RecordBatch::try_new(self.schema.clone(), columns)?))
    }

    fn take(&mut self, batch: RecordBatch) -> Result<()> {
        let rows = batch.num_rows();
        let keys: Vec<ArrayRef> = self
            .partition_by
            .iter()
            .map(|e| e.evaluate(&batch)?.into_array(rows))
            .collect::<Result<_>>()?;
        let keys: Rows = self.keys.convert_columns(&keys)?;
        let times = self.order_by.evaluate(&batch)?.into_array(rows)?;
        let times = crate::timestamps::ticks(&times)
            .ok_or_else(|| DataFusionError::Internal("a range window orders by time".into()))?;
        let slots = self
            .windows
            .iter()
            .map(|w| {
                let values = w.argument.evaluate(&batch)?.into_array(rows)?;
                Ok(sliding::slots(w.kind, &values)?)
            })
            .collect::<Result<Vec<_>>>()?;
        let number = self.first_pending + self.pending.len();
        self.pending.push_back(Pending {
            batch,
            values: vec![vec![Value::Whole(None); rows]; self.windows.len()],
            filled: 0,
        });
        for row in 0..rows {
            let time = times.is_valid(row).then(|| times.value(row));
            let key = keys.row(row);
            let same_segment = self
                .segment
                .as_ref()
                .is_some_and(|(k, null)| k.row() == key && *null == time.is_none());
            if !same_segment {
                self.finish_group();
                self.start_segment(key.owned(), time.is_none());
            } else if time != self.group_time {
                self.finish_group();
            }
            self.group_time = time;
            self.times.push_back(time.unwrap_or(i64::MIN));
            for slots in &slots {
                self.slots.push_back(slots[row]);
            }
            self.next_row += 1;
            self.group.push((number, row));
        }
        Ok(())
    }

    fn start_segment(&mut self, key: OwnedRow, no_time: bool) {
        self.segment = Some((key, no_time));
        self.times.clear();
        self.slots.clear();
        self.first_row = self.next_row;
        self.entered.fill(self.next_row);
        self.left.fill(self.next_row);
        for (state, window) in self.states.iter_mut().zip(&self.windows) {
            *state = window.function.state();
        }
    }

    /// The current value of window `index`.
    fn value(&self, index: usize) -> Value {
        let window = &self.windows[index];
        let (entered, left) = (self.entered[index], self.left[index]);
        let last = matches!(window.function, WindowFunction::RowValue { last: true, .. });
        let row = match (window.function, &self.states[index]) {
            (
                WindowFunction::Aggregate(AggregateFunction::Avg),
                WindowState::Accumulator(accumulator),
            ) if window.kind == Kind::Decimal => {
                let average = accumulator.decimal_sum();
                let average = average.map(|(sum, n)| sum * window.avg_scale_up / i128::from(n));
                return Value::Whole(average);
            }
            (WindowFunction::Aggregate(function), WindowState::Accumulator(accumulator)) => {
                return accumulator.value(function, window.kind);
            }
            (_, WindowState::Ends) if left < entered => Some(if last { entered - 1 } else { left }),
            (_, WindowState::RowsWithValues(rows)) if last => rows.back().copied(),
            (_, WindowState::RowsWithValues(rows)) => rows.front().copied(),
            _ => None,
        };
        let slot = row.map(|row| {
            let offset = (row - self.first_row) as usize;
            self.slots[offset * self.windows.len() + index]
        });
        Value::of(slot, window.kind)
    }

    /// Gives each row of the peer group its windows' values: rows enter a window when its
    /// upper bound reaches them (at once for `CURRENT ROW`, peers included) and leave when
    /// its lower bound passes them. Rows without a time are peers of each other only.
    fn finish_group(&mut self) {
        if self.group.is_empty() {
            return;
        }
        let count = self.windows.len();
        for (index, window) in self.windows.iter().enumerate() {
            let (upper, lower) = match self.group_time {
                Some(time) => (
                    time.saturating_sub(window.frame.end_ticks),
                    time.saturating_sub(window.frame.width_ticks),
                ),
                None => (i64::MAX, i64::MIN),
            };
            let state = &mut self.states[index];
            while self.entered[index] < self.next_row {
                let row = self.entered[index];
                let offset = (row - self.first_row) as usize;
                if self.times[offset] > upper {
                    break;
                }
                let slot = self.slots[offset * count + index];
                match (&mut *state, window.function) {
                    (
                        WindowState::Accumulator(accumulator),
                        WindowFunction::Aggregate(function),
                    ) => add(function, true, accumulator, slot, row),
                    (WindowState::RowsWithValues(rows), _) if !matches!(slot, Slot::Absent) => {
                        rows.push_back(row)
                    }
                    _ => {}
                }
                self.entered[index] += 1;
            }
            while self.left[index] < self.entered[index] {
                let row = self.left[index];
                let offset = (row - self.first_row) as usize;
                if self.times[offset] >= lower {
                    break;
                }
                let slot = self.slots[offset * count + index];
                match state {
                    WindowState::Accumulator(accumulator) => remove(accumulator, slot, row),
                    WindowState::RowsWithValues(rows) if rows.front() == Some(&row) => {
                        rows.pop_front();
                    }
                    _ => {}
                }
                self.left[index] += 1;
            }
            if let WindowState::Accumulator(accumulator) = state {
                let (first_row, slots) = (self.first_row, &self.slots);
                let frame = self.left[index]..self.entered[index];
                accumulator.refresh_if_needed(|| {
                    frame.map(move |row| slots[(row - first_row) as usize * count + index])
                });
            }
            let value = self.value(index);
            for &(number, row) in &self.group {
                let pending = &mut self.pending[number - self.first_pending];
                pending.values[index][row] = value;
            }
        }
        for &(number, _) in &self.group {
            self.pending[number - self.first_pending].filled += 1;
        }
        self.group.clear();
        let oldest = self.left.iter().copied().min().unwrap_or(self.next_row);
        let gone = (oldest - self.first_row) as usize;
        self.times.drain(..gone);
        self.slots.drain(..gone * count);
        self.first_row = oldest;
    }
}
