//! Rolling time windows (`RANGE BETWEEN INTERVAL '7 days' PRECEDING AND CURRENT ROW`) in
//! linear time: [`RangeWindowRule`] has [`RangeWindowExec`] compute the windows of
//! DataFusion's `BoundedWindowAggExec` nodes that it can, and leaves every other window
//! to DataFusion. The operator reads its input as DataFusion's did (sorted by
//! partition keys, then time) and slides one accumulator per window: each row enters and
//! leaves each window once. It holds the widest window's rows of the current key and the
//! batches whose last peer group is not complete yet.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Decimal128Array, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, FieldRef, SchemaRef};
use arrow::row::{OwnedRow, RowConverter, Rows, SortField};
use datafusion::common::ScalarValue;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode, TreeNodeRecursion};
use datafusion::config::ConfigOptions;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{WindowFrameBound, WindowFrameUnits};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::window::{SlidingAggregateWindowExpr, StandardWindowExpr};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::windows::{
    BoundedWindowAggExec, PlainAggregateWindowExpr, WindowExpr, WindowUDFExpr,
};
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, InputOrderMode, PlanProperties,
};
use futures::StreamExt;

use crate::sliding::{
    self, Accumulator, AggregateFunction, Kind, Slot, Value, add, kind_of, remove,
};

/// Puts [`RangeWindowExec`] in place of the window nodes it computes.
#[derive(Debug, Default)]
pub struct RangeWindowRule;

impl PhysicalOptimizerRule for RangeWindowRule {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let Some(window) = node.downcast_ref::<BoundedWindowAggExec>() else {
                return Ok(Transformed::no(node));
            };
            Ok(match take_windows(window)? {
                Some(plan) => Transformed::yes(plan),
                None => Transformed::no(node),
            })
        })
        .data()
    }

    fn name(&self) -> &str {
        "fengine_range_windows"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// `7 days`, `1 hour`, `90 minutes`.
fn duration(micros: i64) -> String {
    let (count, unit) = [
        (86_400_000_000, "day"),
        (3_600_000_000, "hour"),
        (60_000_000, "minute"),
    ]
    .into_iter()
    .find(|(unit, _)| micros % unit == 0 && micros > 0)
    .map(|(unit, name)| (micros / unit, name))
    .unwrap_or((micros, "microsecond"));
    let plural = if count == 1 { "" } else { "s" };
    format!("{count} {unit}{plural}")
}

/// The windows that [`RangeWindowExec`] nodes of `plan` compute, as `sum over 7 days`.
pub(crate) fn rolling_windows(plan: &dyn ExecutionPlan) -> Vec<String> {
    let mut names: Vec<String> = match plan.downcast_ref::<RangeWindowExec>() {
        Some(exec) => exec.windows.iter().map(RangeWindow::describe).collect(),
        None => Vec::new(),
    };
    for child in plan.children() {
        names.extend(rolling_windows(child.as_ref()));
    }
    names
}

/// One window of the node: an aggregate over the rows of the same keys whose time is within
/// `width` before the row's (peers included).
#[derive(Debug, Clone)]
struct RangeWindow {
    function: WindowFunction,
    kind: Kind,
    argument: Arc<dyn PhysicalExpr>,
    width_micros: i64,
    /// How long before the row the frame ends: 0 for `CURRENT ROW`.
    end_micros: i64,
    /// What the exact sum of a decimal average is multiplied by before the division
    /// (which truncates, as DataFusion's does).
    avg_scale_up: i128,
    field: FieldRef,
}

/// What a window computes over its frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WindowFunction {
    /// Slides an accumulator: rows are added as they enter and removed as they leave.
    Aggregate(AggregateFunction),
    /// `first_value` (or, when `last`, `last_value`): the value of the frame's first row,
    /// or with `ignore_nulls` of its first row that has one.
    RowValue { last: bool, ignore_nulls: bool },
}

/// What a window keeps of its frame besides the frame's ends.
enum WindowState {
    Accumulator(Accumulator),
    /// First and last values: the ends are enough.
    Ends,
    /// First and last values ignoring nulls: the frame's rows that have a value, in order.
    RowsWithValues(VecDeque<u64>),
}

impl WindowFunction {
    fn state(self) -> WindowState {
        match self {
            WindowFunction::Aggregate(function) => {
                WindowState::Accumulator(Accumulator::new(function))
            }
            WindowFunction::RowValue {
                ignore_nulls: false,
                ..
            } => WindowState::Ends,
            WindowFunction::RowValue {
                ignore_nulls: true, ..
            } => WindowState::RowsWithValues(VecDeque::new()),
        }
    }

    /// Whether its values are doubles (else whole numbers).
    fn is_float(self, kind: Kind) -> bool {
        match self {
            WindowFunction::Aggregate(function) => sliding::is_float(function, kind),
            WindowFunction::RowValue { .. } => kind == Kind::Float,
        }
    }

    /// The function's name in SQL.
    fn name(self) -> String {
        use AggregateFunction::Spread;
        match self {
            WindowFunction::RowValue { last, ignore_nulls } => {
                let name = if last { "last_value" } else { "first_value" };
                let nulls = if ignore_nulls { " ignoring nulls" } else { "" };
                format!("{name}{nulls}")
            }
            WindowFunction::Aggregate(function) => match function {
                Spread { root, population } => {
                    let name = if root { "stddev" } else { "var" };
                    let suffix = if population { "_pop" } else { "" };
                    format!("{name}{suffix}")
                }
                other => format!("{other:?}").to_lowercase(),
            },
        }
    }
}

impl RangeWindow {
    /// The window's values as a column of its output type.
    fn output_column(&self, values: Vec<Value>) -> Result<ArrayRef> {
        if let DataType::Decimal128(precision, scale) = self.field.data_type() {
            let values = values.into_iter().map(|value| match value {
                Value::Decimal(v) => v,
                Value::Int(v) => v.map(i128::from),
                Value::Float(_) => None,
            });
            let column = Decimal128Array::from_iter(values);
            return Ok(Arc::new(
                column.with_precision_and_scale(*precision, *scale)?,
            ));
        }
        let float = self.function.is_float(self.kind);
        let column = sliding::values_column(float, values.into_iter());
        Ok(cast(&column, self.field.data_type())?)
    }

    fn describe(&self) -> String {
        let function = self.function.name();
        let width = duration(self.width_micros);
        if self.end_micros == 0 {
            format!("{function} over {width}")
        } else {
            format!(
                "{function} from {width} to {} before",
                duration(self.end_micros)
            )
        }
    }
}

#[derive(Debug)]
pub struct RangeWindowExec {
    input: Arc<dyn ExecutionPlan>,
    partition_by: Vec<Arc<dyn PhysicalExpr>>,
    order_by: Arc<dyn PhysicalExpr>,
    windows: Vec<RangeWindow>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

/// The plan computing `node`'s windows with [`RangeWindowExec`] taking those it computes,
/// or `None` when it computes none of them. When it takes some, DataFusion's operator
/// computes the others over its output, and a projection puts the columns back in the
/// node's order.
fn take_windows(node: &BoundedWindowAggExec) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    let input = node.input();
    let input_schema = input.schema();
    let Some(first) = node.window_expr().first() else {
        return Ok(None);
    };
    let partition_by = first.partition_by().to_vec();
    // A window over the whole table is one partition: DataFusion's operator serves it.
    // The operator needs each key's rows together and in time order, which `Sorted`
    // promises (whatever the order of the keys among themselves).
    if partition_by.is_empty() || node.input_order_mode != InputOrderMode::Sorted {
        return Ok(None);
    }
    let [order] = first.order_by() else {
        return Ok(None);
    };
    if order.options.descending
        || !matches!(
            order.expr.data_type(&input_schema)?,
            DataType::Timestamp(_, _)
        )
    {
        return Ok(None);
    }
    // Per window of the node, in order: what the operator computes of it, if anything.
    let mut taken = Vec::new();
    for expr in node.window_expr() {
        let same_order =
            matches!(expr.order_by(), [o] if o.expr.eq(&order.expr) && o.options == order.options);
        let served = expr.partition_by() == partition_by.as_slice() && same_order;
        taken.push(match served {
            true => range_window(expr.as_ref(), &input_schema)?,
            false => None,
        });
    }
    if taken.iter().all(Option::is_none) {
        return Ok(None);
    }
    let (ours, theirs): (Vec<_>, Vec<_>) = node
        .window_expr()
        .iter()
        .zip(&taken)
        .partition(|(_, window)| window.is_some());
    // The node DataFusion would build for our windows alone gives our schema and
    // properties.
    let can_repartition = !node.partition_keys().is_empty();
    let ours_alone = BoundedWindowAggExec::try_new(
        ours.iter().map(|(expr, _)| Arc::clone(expr)).collect(),
        input.clone(),
        node.input_order_mode.clone(),
        can_repartition,
    )?;
    let exec: Arc<dyn ExecutionPlan> = Arc::new(RangeWindowExec {
        input: input.clone(),
        partition_by,
        order_by: order.expr.clone(),
        windows: taken.iter().flatten().cloned().collect(),
        schema: ours_alone.schema(),
        properties: ours_alone.properties().clone(),
    });
    if theirs.is_empty() {
        return Ok(Some(exec));
    }
    // Their expressions read the input's columns, which keep their places.
    let rest = BoundedWindowAggExec::try_new(
        theirs.iter().map(|(expr, _)| Arc::clone(expr)).collect(),
        exec,
        node.input_order_mode.clone(),
        can_repartition,
    )?;
    let rest_schema = rest.schema();
    let columns = input_schema.fields().len();
    let (mut next_ours, mut next_theirs) = (columns, columns + ours.len());
    let mut order_back: Vec<usize> = (0..columns).collect();
    for window in &taken {
        let next = if window.is_some() {
            &mut next_ours
        } else {
            &mut next_theirs
        };
        order_back.push(*next);
        *next += 1;
    }
    let projection = order_back.into_iter().map(|index| {
        let name = rest_schema.field(index).name().clone();
        (
            Arc::new(Column::new(&name, index)) as Arc<dyn PhysicalExpr>,
            name,
        )
    });
    Ok(Some(Arc::new(ProjectionExec::try_new(
        projection,
        Arc::new(rest),
    )?)))
}

/// The window `expr` as this operator computes it, if it can.
fn range_window(expr: &dyn WindowExpr, input_schema: &SchemaRef) -> Result<Option<RangeWindow>> {
    let Some((function, argument)) = window_function(expr) else {
        return Ok(None);
    };
    let argument_type = argument.data_type(input_schema)?;
    let field = expr.field()?;
    let Some(kind) = argument_kind(function, &argument_type) else {
        return Ok(None);
    };
    // DataFusion's decimal averages have 4 more decimals than their argument.
    let avg_scale_up = match (argument_type, field.data_type()) {
        (DataType::Decimal128(_, scale), DataType::Decimal128(_, output_scale)) => {
            10i128.pow(u32::try_from(output_scale - scale).unwrap_or(0))
        }
        _ => 1,
    };
    let frame = expr.get_window_frame();
    if frame.units != WindowFrameUnits::Range {
        return Ok(None);
    }
    let WindowFrameBound::Preceding(width) = &frame.start_bound else {
        return Ok(None);
    };
    let Some(width_micros) = interval_micros(width) else {
        return Ok(None);
    };
    let end_micros = match &frame.end_bound {
        WindowFrameBound::CurrentRow => 0,
        WindowFrameBound::Preceding(end) => match interval_micros(end) {
            Some(end) if end <= width_micros => end,
            _ => return Ok(None),
        },
        WindowFrameBound::Following(_) => return Ok(None),
    };
    Ok(Some(RangeWindow {
        function,
        kind,
        argument,
        width_micros,
        end_micros,
        avg_scale_up,
        field,
    }))
}

/// How the window reads its argument, if the operator computes it over this type.
fn argument_kind(function: WindowFunction, argument: &DataType) -> Option<Kind> {
    use AggregateFunction::{Avg, Count, Max, Min, Sum};
    let aggregate = match function {
        WindowFunction::Aggregate(aggregate) => aggregate,
        // A row's value, read as min and max read theirs.
        WindowFunction::RowValue { .. } => Min,
    };
    match argument {
        _ if aggregate == Count => Some(Kind::Presence),
        // Unscaled values of up to 18 digits fit the operator's 64-bit slots.
        DataType::Decimal128(precision, _) if *precision <= 18 => {
            matches!(aggregate, Sum | Avg | Min | Max).then_some(Kind::Decimal)
        }
        DataType::Decimal128(..) | DataType::Decimal256(..) => None,
        other => kind_of(aggregate, Some(other)),
    }
}

/// The function of `expr` and its one argument, if the operator computes it.
fn window_function(expr: &dyn WindowExpr) -> Option<(WindowFunction, Arc<dyn PhysicalExpr>)> {
    let any = expr.as_any();
    if let Some(standard) = any.downcast_ref::<StandardWindowExpr>() {
        let function = standard.get_standard_func_expr();
        let function = function.as_any().downcast_ref::<WindowUDFExpr>()?;
        // IGNORE NULLS and evaluation in reverse are not public: `Debug` shows them. Unless
        // it shows which, and no reversal, the window stays DataFusion's.
        let debug = format!("{function:?}");
        let ignore_nulls = match (
            debug.contains("ignore_nulls: true"),
            debug.contains("ignore_nulls: false"),
        ) {
            (true, false) => true,
            (false, true) => false,
            _ => return None,
        };
        if !debug.contains("is_reversed: false") {
            return None;
        }
        let last = match function.fun().name() {
            "first_value" => false,
            "last_value" => true,
            _ => return None,
        };
        let kind = WindowFunction::RowValue { last, ignore_nulls };
        let [argument] = function.args() else {
            return None;
        };
        return Some((kind, argument.clone()));
    }
    let aggregate = if let Some(plain) = any.downcast_ref::<PlainAggregateWindowExpr>() {
        plain.get_aggregate_expr()
    } else if let Some(sliding) = any.downcast_ref::<SlidingAggregateWindowExpr>() {
        sliding.get_aggregate_expr()
    } else {
        return None;
    };
    if aggregate.is_distinct() {
        return None;
    }
    let function = match aggregate.fun().name().to_ascii_lowercase().as_str() {
        "sum" => AggregateFunction::Sum,
        "count" => AggregateFunction::Count,
        "avg" | "mean" => AggregateFunction::Avg,
        "min" => AggregateFunction::Min,
        "max" => AggregateFunction::Max,
        "stddev" | "stddev_samp" => AggregateFunction::Spread {
            root: true,
            population: false,
        },
        "stddev_pop" => AggregateFunction::Spread {
            root: true,
            population: true,
        },
        "var" | "var_samp" | "var_sample" => AggregateFunction::Spread {
            root: false,
            population: false,
        },
        "var_pop" | "var_population" => AggregateFunction::Spread {
            root: false,
            population: true,
        },
        _ => return None,
    };
    let [argument] = aggregate.expressions().try_into().ok()?;
    Some((WindowFunction::Aggregate(function), argument))
}

/// A fixed interval in microseconds (months vary in length: not one).
fn interval_micros(value: &ScalarValue) -> Option<i64> {
    let micros = match value {
        ScalarValue::IntervalMonthDayNano(Some(v)) if v.months == 0 => {
            i64::from(v.days) * 86_400_000_000 + v.nanoseconds / 1_000
        }
        ScalarValue::IntervalDayTime(Some(v)) => {
            i64::from(v.days) * 86_400_000_000 + i64::from(v.milliseconds) * 1_000
        }
        _ => return None,
    };
    (micros >= 0).then_some(micros)
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
}

impl Rolling {
    async fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        loop {
            if let Some(ready) = self.ready()? {
                return Ok(Some(ready));
            }
            if self.done {
                return Ok(None);
            }
            match self.input.next().await.transpose()? {
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
        let times = crate::timestamps::micros(&times)
            .ok_or_else(|| DataFusionError::Internal("a range window orders by time".into()))??;
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
            values: vec![vec![Value::Int(None); rows]; self.windows.len()],
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
                return Value::Decimal(average);
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
                Some(time) => (time - window.end_micros, time - window.width_micros),
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
