//! Rolling time windows (`RANGE BETWEEN INTERVAL '7 days' PRECEDING AND CURRENT ROW`) in
//! linear time: [`RangeWindowRule`] has [`RangeWindowExec`] compute the windows of
//! DataFusion's `BoundedWindowAggExec` nodes that it can, and leaves every other window
//! to DataFusion. The operator reads its input as DataFusion's did (sorted by
//! partition keys, then time) and slides one accumulator per window: each row enters and
//! leaves each window once. It holds the widest window's rows of the current key and the
//! batches whose last peer group is not complete yet.

mod exec;
mod rule;

use std::collections::VecDeque;
use std::sync::Arc;

use arrow::array::{ArrayRef, Decimal128Array};
use arrow::compute::cast;
use arrow::datatypes::{DataType, FieldRef};
use datafusion::error::Result;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::ExecutionPlan;

use crate::sliding::{self, Accumulator, AggregateFunction, Kind, Value};

pub use exec::RangeWindowExec;
pub use rule::RangeWindowRule;

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
