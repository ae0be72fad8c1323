//! Which windows of DataFusion's window nodes fengine's operator computes, and the plan
//! that computes them.

use std::sync::Arc;

use arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::ScalarValue;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::config::ConfigOptions;
use datafusion::error::Result;
use datafusion::logical_expr::{WindowFrameBound, WindowFrameUnits};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::window::{SlidingAggregateWindowExpr, StandardWindowExpr};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::windows::{
    BoundedWindowAggExec, PlainAggregateWindowExpr, WindowExpr, WindowUDFExpr,
};
use datafusion::physical_plan::{ExecutionPlan, InputOrderMode};

use super::{Frame, RangeWindow, RangeWindowExec, WindowFunction};
use crate::sliding::{AggregateFunction, Kind, kind_of};

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
        metrics: ExecutionPlanMetricsSet::new(),
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
    let [order] = expr.order_by() else {
        return Ok(None);
    };
    let DataType::Timestamp(unit, zone) = order.expr.data_type(input_schema)? else {
        return Ok(None);
    };
    let frame = expr.get_window_frame();
    if frame.units != WindowFrameUnits::Range {
        return Ok(None);
    }
    let WindowFrameBound::Preceding(width) = &frame.start_bound else {
        return Ok(None);
    };
    let end = match &frame.end_bound {
        WindowFrameBound::CurrentRow => Some(Interval::default()),
        WindowFrameBound::Preceding(end) => Interval::of(end),
        WindowFrameBound::Following(_) => None,
    };
    let (Some(width), Some(end)) = (Interval::of(width), end) else {
        return Ok(None);
    };
    // In a zone with daylight saving time, a day of the calendar is not always 24 hours:
    // DataFusion's operator steps such frames by the calendar.
    let calendar_days = width.days != 0 || end.days != 0;
    if calendar_days && zone.as_deref().is_some_and(|zone| !is_fixed_offset(zone)) {
        return Ok(None);
    }
    let (width_nanos, end_nanos) = (width.nanos(), end.nanos());
    if end_nanos > width_nanos {
        return Ok(None);
    }
    Ok(Some(RangeWindow {
        function,
        kind,
        argument,
        frame: Frame::new(width_nanos, end_nanos, unit),
        avg_scale_up,
        field,
    }))
}

/// A frame bound without months (whose length varies).
#[derive(Debug, Default, Clone, Copy)]
struct Interval {
    days: i64,
    nanoseconds: i128,
}

impl Interval {
    fn of(value: &ScalarValue) -> Option<Interval> {
        let interval = match value {
            ScalarValue::IntervalMonthDayNano(Some(v)) if v.months == 0 => Interval {
                days: v.days.into(),
                nanoseconds: v.nanoseconds.into(),
            },
            ScalarValue::IntervalDayTime(Some(v)) => Interval {
                days: v.days.into(),
                nanoseconds: i128::from(v.milliseconds) * 1_000_000,
            },
            _ => return None,
        };
        (interval.nanos() >= 0).then_some(interval)
    }

    fn nanos(self) -> i128 {
        i128::from(self.days) * 86_400_000_000_000 + self.nanoseconds
    }
}

/// Whether a timestamp's zone is always the same offset from UTC.
fn is_fixed_offset(zone: &str) -> bool {
    zone.starts_with(['+', '-'])
        || ["UTC", "Z", "Etc/UTC", "GMT", "Etc/GMT"]
            .iter()
            .any(|fixed| zone.eq_ignore_ascii_case(fixed))
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
    // FILTER is not public: `Debug` shows it, last. DISTINCT, an ORDER BY inside the
    // aggregate and reversed evaluation change what some aggregates compute. Unless none
    // of them is there, the window stays DataFusion's. (IGNORE NULLS changes nothing here:
    // these aggregates skip nulls anyway.)
    let unfiltered = format!("{expr:?}").ends_with("filter: None }");
    if !unfiltered
        || aggregate.is_distinct()
        || !aggregate.order_bys().is_empty()
        || aggregate.is_reversed()
    {
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
