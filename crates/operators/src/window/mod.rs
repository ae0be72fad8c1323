//! Rolling time windows (`RANGE BETWEEN INTERVAL '7 days' PRECEDING AND CURRENT ROW`) in
//! linear time: [`RangeWindowRule`] has [`RangeWindowExec`] compute the windows of
//! DataFusion's `BoundedWindowAggExec` nodes that it can, and leaves every other window
//! to DataFusion. The operator reads its input as DataFusion's did (sorted by
//! partition keys, then time) and slides one accumulator per window: each row enters and
//! leaves each window once. It holds the widest window's rows of the current key and the
//! batches whose last peer group is not complete yet.

mod exec;
mod filters;
mod rule;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::sync::Arc;

use arrow::array::ArrayRef;
use arrow::datatypes::{FieldRef, TimeUnit};
use datafusion::error::Result;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::ExecutionPlan;

use crate::sliding::{self, Accumulator, AggregateFunction, Kind, Value};

pub use exec::RangeWindowExec;
pub use filters::WindowFilterRule;
pub use rule::RangeWindowRule;

/// `7 days`, `1 hour`, `90 minutes`, `1 second`, `250 milliseconds`, `100 nanoseconds`.
fn duration(nanos: i128) -> String {
    let (count, unit) = [
        (86_400_000_000_000, "day"),
        (3_600_000_000_000, "hour"),
        (60_000_000_000, "minute"),
        (1_000_000_000, "second"),
        (1_000_000, "millisecond"),
        (1_000, "microsecond"),
    ]
    .into_iter()
    .find(|(unit, _)| nanos % unit == 0 && nanos > 0)
    .map(|(unit, name)| (nanos / unit, name))
    .unwrap_or((nanos, "nanosecond"));
    let plural = if count == 1 { "" } else { "s" };
    format!("{count} {unit}{plural}")
}

/// The windows that [`RangeWindowExec`] nodes of `plan` compute, as `sum over 7 days`.
pub fn rolling_windows(plan: &dyn ExecutionPlan) -> Vec<String> {
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
    frame: Frame,
    /// What the exact sum of a decimal average is multiplied by before the division
    /// (which truncates, as DataFusion's does).
    avg_scale_up: i128,
    field: FieldRef,
}

/// A frame from `width` before the row to `end` before it (0 for `CURRENT ROW`), in
/// nanoseconds and in the ticks of the time column's unit: a row `d` ticks before the
/// current one is in the frame when `end_ticks <= d <= width_ticks`, which rounds the
/// bounds inward to whole ticks and keeps the column's own precision.
#[derive(Debug, Clone, Copy)]
struct Frame {
    width_nanos: i128,
    end_nanos: i128,
    width_ticks: i64,
    end_ticks: i64,
}

impl Frame {
    fn new(width_nanos: i128, end_nanos: i128, unit: TimeUnit) -> Frame {
        let tick = i128::from(crate::timestamps::nanos_per_tick(unit));
        let clamp = |ticks: i128| ticks.clamp(0, i128::from(i64::MAX)) as i64;
        Frame {
            width_nanos,
            end_nanos,
            width_ticks: clamp(width_nanos.div_euclid(tick)),
            end_ticks: clamp((end_nanos + tick - 1).div_euclid(tick)),
        }
    }
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
        Ok(sliding::column(values.into_iter(), self.field.data_type())?)
    }

    fn describe(&self) -> String {
        let function = self.function.name();
        let width = duration(self.frame.width_nanos);
        if self.frame.end_nanos == 0 {
            format!("{function} over {width}")
        } else {
            format!(
                "{function} from {width} to {} before",
                duration(self.frame.end_nanos)
            )
        }
    }
}
