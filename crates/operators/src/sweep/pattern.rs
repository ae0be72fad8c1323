//! Which feature group queries a backfill can compute in one sweep: a time-window aggregate
//! per key, ending at the as-of,
//!
//! ```sql
//! SELECT <keys>, as_of() AS <event time>,
//!        <sum|count|avg|min|max>(<expr>) [FILTER (WHERE <time> > as_of() - INTERVAL '<w>' AND <pred>)], ...
//! FROM <a source or view that does not use as_of()>
//! WHERE <time> > as_of() - INTERVAL '<width>' AND <time> <= as_of() [AND <pred>]
//! GROUP BY <keys>
//! ```
//!
//! (`count(*)`, `count(DISTINCT <expr>)`, `>=`/`<` bounds, no lower bound for a window
//! since the start of time). Every other query is computed at each as-of on its own.

use datafusion::sql::sqlparser::ast::{
    BinaryOperator, DuplicateTreatment, Expr, Function, FunctionArg, FunctionArgExpr,
    FunctionArguments, GroupByExpr, Query, SelectItem, SetExpr, TableFactor,
};

pub(crate) use crate::sliding::AggregateFunction;
use crate::timestamps::fixed_length;

/// A group query the sweep computes, in the pieces it needs.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepQuery {
    /// The FROM relation, as written.
    pub(crate) relation: String,
    /// The GROUP BY columns, as written (quoted or not).
    pub(crate) keys: Vec<String>,
    /// The time column of the window, as written.
    pub(crate) time: String,
    pub(crate) window: Window,
    /// WHERE conditions without `as_of()`, as written.
    pub(crate) conditions: Vec<String>,
    /// The SELECT list, in order.
    pub(crate) outputs: Vec<Output>,
}

/// Rows with `as_of - width < time <= as_of` (bounds as written: `>=` and `<` too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    /// `None`: no lower bound.
    pub width_nanos: Option<i64>,
    pub lower_inclusive: bool,
    pub upper_inclusive: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Output {
    /// The i-th GROUP BY column.
    Key(usize),
    AsOf,
    Aggregate(Aggregate),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Aggregate {
    pub function: AggregateFunction,
    /// The argument, as written; `None` for `count(*)`.
    pub argument: Option<String>,
    /// A FILTER's narrower window: (width in nanoseconds, lower bound inclusive).
    pub window: Option<(i64, bool)>,
    /// A FILTER's conditions without `as_of()`, as written.
    pub conditions: Vec<String>,
}

impl SweepQuery {
    /// The sweep's reading of `query`, or `None` when it is not of the supported shape.
    pub fn recognize(query: &Query) -> Option<SweepQuery> {
        if query.with.is_some()
            || query.order_by.is_some()
            || query.limit_clause.is_some()
            || query.fetch.is_some()
        {
            return None;
        }
        let SetExpr::Select(select) = query.body.as_ref() else {
            return None;
        };
        let plain = select.distinct.is_none()
            && select.top.is_none()
            && select.into.is_none()
            && select.exclude.is_none()
            && select.lateral_views.is_empty()
            && select.prewhere.is_none()
            && select.connect_by.is_empty()
            && select.cluster_by.is_empty()
            && select.distribute_by.is_empty()
            && select.sort_by.is_empty()
            && select.having.is_none()
            && select.named_window.is_empty()
            && select.qualify.is_none()
            && select.from.len() == 1
            && select.from[0].joins.is_empty();
        if !plain {
            return None;
        }
        let TableFactor::Table {
            name,
            alias: None,
            args: None,
            ..
        } = &select.from[0].relation
        else {
            return None;
        };
        let GroupByExpr::Expressions(group_by, modifiers) = &select.group_by else {
            return None;
        };
        if !modifiers.is_empty() || group_by.is_empty() {
            return None;
        }
        let keys: Vec<String> = group_by
            .iter()
            .map(|e| match e {
                Expr::Identifier(ident) => Some(ident.to_string()),
                _ => None,
            })
            .collect::<Option<_>>()?;

        let mut time = None;
        let mut lower = None;
        let mut upper = None;
        let mut conditions = Vec::new();
        for conjunct in conjuncts(select.selection.as_ref()?) {
            match bound(conjunct)? {
                Bound::Lower {
                    column,
                    width,
                    inclusive,
                } => {
                    same_column(&mut time, column)?;
                    lower.replace((width, inclusive)).is_none().then_some(())?;
                }
                Bound::Upper { column, inclusive } => {
                    same_column(&mut time, column)?;
                    upper.replace(inclusive).is_none().then_some(())?;
                }
                Bound::None => conditions.push(conjunct.to_string()),
            }
        }
        let time = time?;
        let window = Window {
            width_nanos: lower.map(|(width, _)| width),
            lower_inclusive: lower.is_some_and(|(_, inclusive)| inclusive),
            upper_inclusive: upper?,
        };

        let mut outputs = Vec::new();
        for item in &select.projection {
            let expr = match item {
                SelectItem::UnnamedExpr(expr) | SelectItem::ExprWithAlias { expr, .. } => expr,
                _ => return None,
            };
            outputs.push(output(expr, &keys, &time)?);
        }
        let selected_keys = outputs
            .iter()
            .filter(|o| matches!(o, Output::Key(_)))
            .count();
        if selected_keys != keys.len() {
            return None;
        }
        Some(SweepQuery {
            relation: name.to_string(),
            keys,
            time,
            window,
            conditions,
            outputs,
        })
    }
}

fn same_column(time: &mut Option<String>, column: String) -> Option<()> {
    match time {
        Some(existing) if *existing != column => None,
        Some(_) => Some(()),
        None => {
            *time = Some(column);
            Some(())
        }
    }
}

fn conjuncts(expr: &Expr) -> Vec<&Expr> {
    match expr {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            let mut all = conjuncts(left);
            all.extend(conjuncts(right));
            all
        }
        Expr::Nested(inner) => conjuncts(inner),
        other => vec![other],
    }
}

enum Bound {
    /// `column > as_of() - INTERVAL '<width>'` (or `>=`).
    Lower {
        column: String,
        width: i64,
        inclusive: bool,
    },
    /// `column <= as_of()` (or `<`).
    Upper { column: String, inclusive: bool },
    /// A condition without `as_of()`.
    None,
}

/// What a WHERE or FILTER condition says about the window; `None` when it uses `as_of()`
/// in another way.
fn bound(expr: &Expr) -> Option<Bound> {
    if !mentions_as_of(expr) {
        return Some(Bound::None);
    }
    let Expr::BinaryOp { left, op, right } = expr else {
        return None;
    };
    let Expr::Identifier(column) = left.as_ref() else {
        return None;
    };
    let column = column.to_string();
    match op {
        BinaryOperator::Gt | BinaryOperator::GtEq => Some(Bound::Lower {
            column,
            width: as_of_minus(right)?,
            inclusive: *op == BinaryOperator::GtEq,
        }),
        BinaryOperator::Lt | BinaryOperator::LtEq if is_as_of(right) => Some(Bound::Upper {
            column,
            inclusive: *op == BinaryOperator::LtEq,
        }),
        _ => None,
    }
}

/// The width of `as_of() - INTERVAL '<width>'`, in nanoseconds.
fn as_of_minus(expr: &Expr) -> Option<i64> {
    let Expr::BinaryOp {
        left,
        op: BinaryOperator::Minus,
        right,
    } = expr
    else {
        return None;
    };
    let Expr::Interval(interval) = right.as_ref() else {
        return None;
    };
    if !is_as_of(left) || interval.leading_field.is_some() || interval.last_field.is_some() {
        return None;
    }
    let text = interval.value.to_string();
    let width = fixed_length(text.trim_matches('\'')).ok()?;
    i64::try_from(width.as_nanos()).ok()
}

fn is_as_of(expr: &Expr) -> bool {
    match expr {
        Expr::Function(function) => {
            function.name.to_string().eq_ignore_ascii_case("as_of")
                && match &function.args {
                    FunctionArguments::None => true,
                    FunctionArguments::List(list) => list.args.is_empty(),
                    FunctionArguments::Subquery(_) => false,
                }
        }
        Expr::Nested(inner) => is_as_of(inner),
        _ => false,
    }
}

fn mentions_as_of(expr: &Expr) -> bool {
    expr.to_string().to_ascii_lowercase().contains("as_of(")
}

fn output(expr: &Expr, keys: &[String], time: &str) -> Option<Output> {
    match expr {
        Expr::Identifier(ident) => keys
            .iter()
            .position(|k| *k == ident.to_string())
            .map(Output::Key),
        expr if is_as_of(expr) => Some(Output::AsOf),
        Expr::Function(function) => aggregate(function, time).map(Output::Aggregate),
        _ => None,
    }
}

fn aggregate(function: &Function, time: &str) -> Option<Aggregate> {
    if function.over.is_some()
        || function.null_treatment.is_some()
        || !function.within_group.is_empty()
        || !matches!(function.parameters, FunctionArguments::None)
    {
        return None;
    }
    let FunctionArguments::List(list) = &function.args else {
        return None;
    };
    let [argument] = list.args.as_slice() else {
        return None;
    };
    if !list.clauses.is_empty() {
        return None;
    }
    let distinct = match list.duplicate_treatment {
        None | Some(DuplicateTreatment::All) => false,
        Some(DuplicateTreatment::Distinct) => true,
    };
    let argument = match argument {
        FunctionArg::Unnamed(FunctionArgExpr::Wildcard) => None,
        FunctionArg::Unnamed(FunctionArgExpr::Expr(expr)) if !mentions_as_of(expr) => {
            Some(expr.to_string())
        }
        _ => return None,
    };
    let name = function.name.to_string().to_ascii_lowercase();
    let function_kind = match (name.as_str(), distinct, &argument) {
        ("sum", false, Some(_)) => AggregateFunction::Sum,
        ("count", false, _) => AggregateFunction::Count,
        ("count", true, Some(_)) => AggregateFunction::CountDistinct,
        ("avg" | "mean", false, Some(_)) => AggregateFunction::Avg,
        ("min", false, Some(_)) => AggregateFunction::Min,
        ("max", false, Some(_)) => AggregateFunction::Max,
        _ => return None,
    };
    let mut window = None;
    let mut conditions = Vec::new();
    if let Some(filter) = &function.filter {
        for conjunct in conjuncts(filter) {
            match bound(conjunct)? {
                Bound::Lower {
                    column,
                    width,
                    inclusive,
                } if column == time && window.is_none() => window = Some((width, inclusive)),
                Bound::None => conditions.push(conjunct.to_string()),
                _ => return None,
            }
        }
    }
    Some(Aggregate {
        function: function_kind,
        argument,
        window,
        conditions,
    })
}

#[cfg(test)]
mod tests {
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    use super::*;

    fn recognize(sql: &str) -> Option<SweepQuery> {
        let statement = Parser::parse_sql(&GenericDialect {}, sql)
            .unwrap()
            .remove(0);
        let datafusion::sql::sqlparser::ast::Statement::Query(query) = statement else {
            panic!("not a query")
        };
        SweepQuery::recognize(&query)
    }

    #[test]
    fn a_window_aggregate_per_key_is_recognized_with_its_filters() {
        let query = recognize(
            "SELECT customer_id, as_of() AS event_time,
                    sum(amount) FILTER (WHERE event_time > as_of() - INTERVAL '7 days') AS s7,
                    count(*) FILTER (WHERE category = 'travel') AS travel,
                    count(DISTINCT merchant_id) AS merchants
             FROM transactions
             WHERE event_time > as_of() - INTERVAL '30 days' AND event_time <= as_of()
               AND amount > 0
             GROUP BY customer_id",
        )
        .unwrap();
        assert_eq!(query.relation, "transactions");
        assert_eq!(query.keys, ["customer_id"]);
        assert_eq!(query.time, "event_time");
        assert_eq!(
            query.window,
            Window {
                width_nanos: Some(30 * 86_400_000_000_000),
                lower_inclusive: false,
                upper_inclusive: true,
            }
        );
        assert_eq!(query.conditions, ["amount > 0"]);
        assert_eq!(query.outputs[0], Output::Key(0));
        assert_eq!(query.outputs[1], Output::AsOf);
        assert_eq!(
            query.outputs[2],
            Output::Aggregate(Aggregate {
                function: AggregateFunction::Sum,
                argument: Some("amount".to_string()),
                window: Some((7 * 86_400_000_000_000, false)),
                conditions: vec![],
            })
        );
        assert_eq!(
            query.outputs[3],
            Output::Aggregate(Aggregate {
                function: AggregateFunction::Count,
                argument: None,
                window: None,
                conditions: vec!["category = 'travel'".to_string()],
            })
        );
        assert!(matches!(
            &query.outputs[4],
            Output::Aggregate(Aggregate {
                function: AggregateFunction::CountDistinct,
                ..
            })
        ));
    }

    #[test]
    fn other_shapes_are_left_to_the_per_as_of_path() {
        let window = "WHERE t > as_of() - INTERVAL '30 days' AND t <= as_of() GROUP BY k";
        for sql in [
            // No upper bound: rows after the as-of would count.
            "SELECT k, as_of(), sum(x) FROM s WHERE t > as_of() - INTERVAL '30 days' GROUP BY k"
                .to_string(),
            format!("SELECT k, as_of(), coalesce(sum(x), 0) FROM s {window}"),
            format!("SELECT k, as_of(), stddev(x) FROM s {window}"),
            format!("SELECT k, as_of(), sum(x) FROM s JOIN u USING (k) {window}"),
            format!("SELECT k, as_of(), sum(x) FROM s {window} HAVING count(*) > 1"),
            format!("SELECT k, as_of(), sum(x) FILTER (WHERE t < as_of()) FROM s {window}"),
            "SELECT k, as_of(), sum(x) FROM s WHERE t > as_of() - INTERVAL '1 month' AND t <= as_of() GROUP BY k".to_string(),
        ] {
            assert_eq!(recognize(&sql), None, "{sql}");
        }
    }

    #[test]
    fn a_window_without_a_lower_bound_reaches_back_to_the_first_row() {
        let query =
            recognize("SELECT k, max(t) AS t, count(*) FROM s WHERE t <= as_of() GROUP BY k")
                .unwrap();
        assert_eq!(query.window.width_nanos, None);
        assert_eq!(query.outputs.len(), 3);
    }
}
