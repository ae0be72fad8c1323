//! How deeply a statement's expressions nest. DataFusion's planner guards its own recursion,
//! but the derived `Clone`, `Drop` and `Debug` of the syntax tree and of plans recurse once
//! per level, so an expression deep enough (a generated sum of thousands of terms) would
//! overflow the stack: such statements are refused where they are parsed.

use std::ops::ControlFlow;

use datafusion_sql::parser::Statement as DataFusionStatement;
use datafusion_sql::sqlparser::ast::{Expr, Visit, Visitor};

use crate::statement::{FitOn, Rule, Statement};

/// The deepest an expression may nest, its innermost values counted: `a + b + c` is 3 deep.
/// Plans at this depth run on fengine's stacks in a debug build with room to spare.
pub const MAX_EXPRESSION_DEPTH: usize = 1000;

/// Whether an expression of the statement nests deeper than [`MAX_EXPRESSION_DEPTH`]. (Where
/// it starts is not asked of it: a span is the union of its children's, found recursively.)
pub(crate) fn too_deep(statement: &Statement) -> bool {
    match statement {
        Statement::Include(_) | Statement::CreateModel(_) => false,
        Statement::CreateFeatureGroup(group) => {
            let conditions = group.expectations.iter().filter_map(|e| match &e.rule {
                Rule::Condition(condition) => Some(condition),
                _ => None,
            });
            group.query.visit(&mut Depth::default()).is_break()
                || conditions
                    .into_iter()
                    .any(|c| c.visit(&mut Depth::default()).is_break())
        }
        Statement::CreateEncoder(encoder) => match &encoder.fit_on {
            FitOn::Query(query) => query.visit(&mut Depth::default()).is_break(),
            FitOn::Files(_) => false,
        },
        Statement::Sql(sql) => sql_too_deep(sql),
    }
}

fn sql_too_deep(statement: &DataFusionStatement) -> bool {
    let mut depth = Depth::default();
    match statement {
        DataFusionStatement::Statement(statement) => statement.visit(&mut depth).is_break(),
        DataFusionStatement::CopyTo(copy) => match &copy.source {
            datafusion_sql::parser::CopyToSource::Query(query) => {
                query.visit(&mut depth).is_break()
            }
            datafusion_sql::parser::CopyToSource::Relation(_) => false,
        },
        DataFusionStatement::Explain(explain) => sql_too_deep(&explain.statement),
        DataFusionStatement::CreateExternalTable(_) | DataFusionStatement::Reset(_) => false,
    }
}

#[derive(Default)]
struct Depth {
    current: usize,
}

impl Visitor for Depth {
    type Break = ();

    fn pre_visit_expr(&mut self, _: &Expr) -> ControlFlow<()> {
        self.current += 1;
        match self.current > MAX_EXPRESSION_DEPTH {
            true => ControlFlow::Break(()),
            false => ControlFlow::Continue(()),
        }
    }

    fn post_visit_expr(&mut self, _: &Expr) -> ControlFlow<()> {
        self.current -= 1;
        ControlFlow::Continue(())
    }
}
