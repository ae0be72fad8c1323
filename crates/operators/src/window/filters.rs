//! `sum(v) FILTER (WHERE c) OVER (...)` as `sum(CASE WHEN c THEN v END) OVER (...)`, for the
//! aggregates that skip nulls (sum, count, avg, min, max, stddev, var): the same values, in
//! a form [`RangeWindowExec`](super::RangeWindowExec) computes. DataFusion's physical window
//! expressions keep their FILTER private, so the operator cannot compute one itself.

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::error::Result;
use datafusion::logical_expr::expr::WindowFunction;
use datafusion::logical_expr::{Expr, LogicalPlan, WindowFunctionDefinition, when};
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};

/// Aggregates whose result over a frame depends only on its non-null values.
const SKIP_NULLS: &[&str] = &[
    "sum",
    "count",
    "avg",
    "mean",
    "min",
    "max",
    "stddev",
    "stddev_samp",
    "stddev_pop",
    "var",
    "var_samp",
    "var_sample",
    "var_pop",
    "var_population",
];

#[derive(Debug, Default)]
pub struct WindowFilterRule;

impl OptimizerRule for WindowFilterRule {
    fn name(&self) -> &str {
        "fengine_window_filters"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::BottomUp)
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        if !matches!(plan, LogicalPlan::Window(_)) {
            return Ok(Transformed::no(plan));
        }
        let rewritten = plan.map_expressions(|expr| {
            let name = expr.schema_name().to_string();
            let rewritten = expr.transform_up(|e| {
                Ok(match unfiltered(e)? {
                    Ok(e) => Transformed::yes(e),
                    Err(e) => Transformed::no(e),
                })
            })?;
            if !rewritten.transformed {
                return Ok(rewritten);
            }
            // The node's output keeps the column's name.
            Ok(rewritten.update_data(|e| match e {
                Expr::Alias(_) => e,
                e => e.alias(name),
            }))
        })?;
        if !rewritten.transformed {
            return Ok(rewritten);
        }
        rewritten.map_data(LogicalPlan::recompute_schema)
    }
}

/// The window function without its FILTER, as `Ok`, or `expr` unchanged as `Err`.
fn unfiltered(expr: Expr) -> Result<std::result::Result<Expr, Expr>> {
    let Expr::WindowFunction(window) = &expr else {
        return Ok(Err(expr));
    };
    let WindowFunction { fun, params } = window.as_ref();
    let skips_nulls = match fun {
        WindowFunctionDefinition::AggregateUDF(udf) => {
            SKIP_NULLS.contains(&udf.name().to_ascii_lowercase().as_str())
        }
        WindowFunctionDefinition::WindowUDF(_) => false,
    };
    let (Some(filter), [argument], false) =
        (&params.filter, params.args.as_slice(), params.distinct)
    else {
        return Ok(Err(expr));
    };
    if !skips_nulls {
        return Ok(Err(expr));
    }
    let argument = when(filter.as_ref().clone(), argument.clone()).end()?;
    let mut window = window.as_ref().clone();
    window.params.args = vec![argument];
    window.params.filter = None;
    Ok(Ok(Expr::WindowFunction(Box::new(window))))
}
