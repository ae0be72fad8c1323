//! A group's expectations (`EXPECT`): compiled to DataFusion expressions when the pipeline
//! is planned, tallied on each batch as it streams to the snapshot's files (a backfill's on
//! the rows of each as-of), and judged before the commit. A failing expectation that is not
//! `WARN` stops the snapshot from being published; every outcome is kept with the snapshot.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::max;
use arrow::datatypes::{
    DataType, Date32Type, Date64Type, SchemaRef, TimeUnit, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType,
};
use chrono::{DateTime, Utc};
use datafusion::common::DFSchema;
use datafusion::common::tree_node::TreeNode;
use datafusion::error::DataFusionError;
use datafusion::execution::SessionState;
use datafusion::logical_expr::Expr;
use datafusion::logical_expr::ExprSchemable;
use datafusion::physical_expr::PhysicalExpr;
use fengine_dialect::{
    CreateFeatureGroup, DriftMeasure, Expectation, Rule, SourceLocation, normalize_ident,
};
use fengine_operators::timestamps::fixed_length;

use crate::checks::describe_values;
use crate::drift::SnapshotDrift;
use crate::error::{Error, Result};
use crate::manifest::{ExpectationOutcome, Severity};
use crate::published;
use crate::statistics::{self, Kind};

/// The failing rows an outcome shows, at most.
const SAMPLES: usize = 5;

/// A group's expectations, compiled against its output schema.
#[derive(Clone, Debug, Default)]
pub(crate) struct Expectations {
    group: String,
    /// The key and event-time columns, shown with each failing row.
    identity: Vec<usize>,
    checks: Vec<Check>,
}

#[derive(Clone, Debug)]
struct Check {
    name: String,
    /// The rule as the pipeline writes it.
    rule: String,
    location: SourceLocation,
    severity: Severity,
    test: Test,
}

#[derive(Clone, Debug)]
enum Test {
    /// True of a share (`mostly`) of the rows it is not null of; `shown` are the columns it
    /// reads, shown with a failing row beside the identity.
    PerRow {
        condition: Arc<dyn PhysicalExpr>,
        mostly: f64,
        shown: Vec<usize>,
    },
    RowCount {
        low: u64,
        high: u64,
    },
    /// The newest value of `column` is at most `within` before the as-of.
    Freshness {
        column: usize,
        within: Duration,
    },
    /// The feature moved less than `limit` since the version's previous snapshot.
    Drift {
        feature: String,
        measure: DriftMeasure,
        limit: f64,
    },
}

/// What a stream of a snapshot's rows showed of each expectation, in the order of the
/// checks; the tallies of a snapshot's partitions add up with [`Tally::merge`].
#[derive(Debug, Default)]
pub(crate) struct Tally {
    rows: u64,
    seen: Vec<Seen>,
}

#[derive(Debug)]
enum Seen {
    PerRow {
        passed: u64,
        failed: u64,
        samples: Vec<String>,
    },
    /// Nothing: the rule is judged on the whole snapshot.
    Whole,
    /// The newest value, in nanoseconds since the epoch (wide enough for any unit's range).
    Newest(Option<i128>),
}

impl Expectations {
    /// Compiles the group's expectations; an error names the expectation and where it is
    /// written.
    pub(crate) fn compile(
        state: &SessionState,
        group: &CreateFeatureGroup,
        schema: &SchemaRef,
        location: &SourceLocation,
    ) -> Result<Self> {
        let df_schema = DFSchema::try_from(schema.as_ref().clone())
            .map_err(|e| Error::from_datafusion(Some(location), e))?;
        let identity = group
            .key_columns()
            .into_iter()
            .chain([group.event_time_column()])
            .filter_map(|name| schema.index_of(&name).ok())
            .collect();
        let not_features: Vec<String> = group
            .key_columns()
            .into_iter()
            .chain([group.event_time_column()])
            .collect();
        let checks = group
            .expectations
            .iter()
            .map(|expectation| {
                let at = SourceLocation {
                    file: location.file.clone(),
                    line: expectation.line,
                    column: expectation.column,
                };
                compile_check(state, expectation, &df_schema, &not_features, &at)
                    .map_err(|e| e.in_expectation(&group.name(), &expectation.name()))
            })
            .collect::<Result<_>>()?;
        Ok(Expectations {
            group: group.name(),
            identity,
            checks,
        })
    }

    /// An empty tally of these expectations.
    pub(crate) fn tally(&self) -> Tally {
        let seen = self
            .checks
            .iter()
            .map(|check| match check.test {
                Test::PerRow { .. } => Seen::PerRow {
                    passed: 0,
                    failed: 0,
                    samples: Vec::new(),
                },
                Test::RowCount { .. } | Test::Drift { .. } => Seen::Whole,
                Test::Freshness { .. } => Seen::Newest(None),
            })
            .collect();
        Tally { rows: 0, seen }
    }

    /// Adds what `batch` shows to `tally`.
    pub(crate) fn observe(&self, tally: &mut Tally, batch: &RecordBatch) -> Result<()> {
        tally.rows += batch.num_rows() as u64;
        for (check, seen) in self.checks.iter().zip(&mut tally.seen) {
            match (&check.test, seen) {
                (
                    Test::PerRow {
                        condition, shown, ..
                    },
                    Seen::PerRow {
                        passed,
                        failed,
                        samples,
                    },
                ) => {
                    let outcome = condition
                        .evaluate(batch)
                        .and_then(|value| value.into_array(batch.num_rows()))
                        .map_err(|e| {
                            Error::while_running(Some(&check.location), e)
                                .in_expectation(&self.group, &check.name)
                        })?;
                    let outcome = outcome.as_boolean();
                    let true_count = outcome.true_count() as u64;
                    let false_count = outcome.false_count() as u64;
                    *passed += true_count;
                    *failed += false_count;
                    if false_count > 0 && samples.len() < SAMPLES {
                        let columns = self.shown_columns(shown);
                        let failing = (0..batch.num_rows())
                            .filter(|&row| outcome.is_valid(row) && !outcome.value(row));
                        let wanted = SAMPLES - samples.len();
                        let schema = batch.schema();
                        let names = columns.iter().map(|&c| schema.field(c).name().as_str());
                        let names: Vec<&str> = names.collect();
                        let arrays: Vec<ArrayRef> =
                            columns.iter().map(|&c| batch.column(c).clone()).collect();
                        samples.extend(
                            failing
                                .take(wanted)
                                .map(|row| describe_values(names.iter().copied(), &arrays, row)),
                        );
                    }
                }
                (Test::Freshness { column, .. }, Seen::Newest(newest)) => {
                    let newest_here = newest_instant(batch.column(*column));
                    *newest = (*newest).max(newest_here);
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The identity's columns, then those of `shown` not among them.
    fn shown_columns(&self, shown: &[usize]) -> Vec<usize> {
        let mut columns = self.identity.clone();
        columns.extend(shown.iter().filter(|c| !self.identity.contains(c)));
        columns
    }

    /// Each expectation's outcome, failed `WARN` ones logged; an error when one that blocks
    /// publishing failed. `drift`: since the version's previous snapshot, if it has one.
    pub(crate) fn judge(
        &self,
        tally: &Tally,
        as_of: DateTime<Utc>,
        drift: Option<&SnapshotDrift>,
    ) -> Result<Vec<ExpectationOutcome>> {
        let outcomes: Vec<ExpectationOutcome> = self
            .checks
            .iter()
            .zip(&tally.seen)
            .map(|(check, seen)| check.outcome(seen, tally.rows, as_of, drift))
            .collect();
        let failed = |severity| {
            self.checks
                .iter()
                .zip(&outcomes)
                .filter(move |(c, o)| !o.passed && c.severity == severity)
        };
        for (check, outcome) in failed(Severity::Warn) {
            tracing::warn!(
                expectation = %outcome.name,
                "warning: expectation '{}' failed, published all the same (WARN): {}",
                outcome.name,
                check.describe_failure(outcome)
            );
        }
        let blocking: Vec<String> = failed(Severity::Block)
            .map(|(check, outcome)| {
                format!(
                    "expectation '{}' ({}) failed: {}",
                    outcome.name,
                    check.location,
                    check.describe_failure(outcome)
                )
            })
            .collect();
        if blocking.is_empty() {
            return Ok(outcomes);
        }
        Err(Error::Check(format!(
            "feature group '{}', as-of {}: {}. Nothing of this group was published; fix the \
             data or the query, or mark the expectation WARN to publish despite it",
            self.group,
            published::format_time(as_of),
            blocking.join("; ")
        )))
    }
}

impl Check {
    fn outcome(
        &self,
        seen: &Seen,
        rows: u64,
        as_of: DateTime<Utc>,
        drift: Option<&SnapshotDrift>,
    ) -> ExpectationOutcome {
        let mut outcome = ExpectationOutcome {
            name: self.name.clone(),
            rule: self.rule.clone(),
            severity: self.severity,
            passed: true,
            observed: String::new(),
            checked_rows: None,
            failed_rows: None,
            failing_rows_sample: Vec::new(),
        };
        match (&self.test, seen) {
            (
                Test::PerRow { mostly, .. },
                Seen::PerRow {
                    passed,
                    failed,
                    samples,
                },
            ) => {
                let checked = passed + failed;
                // Both sides correctly rounded: a share equal to MOSTLY compares equal.
                outcome.passed = checked == 0 || *passed as f64 / checked as f64 >= *mostly;
                outcome.observed = match (checked, failed) {
                    (0, _) => "no row to check".to_string(),
                    (_, 0) => format!("all {checked} rows checked pass"),
                    _ => format!(
                        "{failed} of {checked} rows checked fail ({})",
                        percent(*failed, checked)
                    ),
                };
                outcome.checked_rows = Some(checked);
                outcome.failed_rows = Some(*failed);
                outcome.failing_rows_sample = samples.clone();
            }
            (Test::RowCount { low, high }, _) => {
                outcome.passed = (*low..=*high).contains(&rows);
                outcome.observed = format!("{rows} rows");
            }
            (Test::Freshness { within, .. }, Seen::Newest(newest)) => {
                let as_of_ns = i128::from(as_of.timestamp()) * 1_000_000_000
                    + i128::from(as_of.timestamp_subsec_nanos());
                let Some(newest) = *newest else {
                    outcome.passed = false;
                    outcome.observed = "no value to measure: every row's is null".to_string();
                    return outcome;
                };
                let age_ns = as_of_ns - newest;
                outcome.passed = age_ns <= within.as_nanos() as i128;
                outcome.observed = match age_ns {
                    ..=0 => format!(
                        "the newest value, {}, is at or after the as-of",
                        instant(newest)
                    ),
                    _ => format!(
                        "the newest value, {}, is {} before the as-of",
                        instant(newest),
                        length_of_time(age_ns)
                    ),
                };
            }
            (
                Test::Drift {
                    feature,
                    measure,
                    limit,
                },
                _,
            ) => {
                let (passed, observed) = drift_outcome(drift, feature, *measure, *limit);
                outcome.passed = passed;
                outcome.observed = observed;
            }
            _ => unreachable!("a tally is made of the checks it is judged by"),
        }
        outcome
    }

    /// The rule, what was observed and, of failing rows, the first few.
    fn describe_failure(&self, outcome: &ExpectationOutcome) -> String {
        let mut text = format!("`{}`: {}", self.rule, outcome.observed);
        if let Test::PerRow { mostly, .. } = self.test
            && mostly < 1.0
        {
            text.push_str(&format!(", more than MOSTLY {mostly} allows"));
        }
        if let Test::Freshness { within, .. } = self.test {
            text.push_str(&format!(
                ", more than {} allowed",
                length_of_time(within.as_nanos() as i128)
            ));
        }
        if !outcome.failing_rows_sample.is_empty() {
            text.push_str(&format!(
                "; failing rows: {}",
                outcome
                    .failing_rows_sample
                    .iter()
                    .map(|row| format!("({row})"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        text
    }
}

impl Tally {
    /// Adds another partition's tally of the same expectations.
    pub(crate) fn merge(&mut self, other: Tally) {
        self.rows += other.rows;
        for (mine, theirs) in self.seen.iter_mut().zip(other.seen) {
            match (mine, theirs) {
                (
                    Seen::PerRow {
                        passed,
                        failed,
                        samples,
                    },
                    Seen::PerRow {
                        passed: more_passed,
                        failed: more_failed,
                        samples: more_samples,
                    },
                ) => {
                    *passed += more_passed;
                    *failed += more_failed;
                    let wanted = SAMPLES.saturating_sub(samples.len());
                    samples.extend(more_samples.into_iter().take(wanted));
                }
                (Seen::Newest(newest), Seen::Newest(other)) => *newest = (*newest).max(other),
                _ => {}
            }
        }
    }
}

fn compile_check(
    state: &SessionState,
    expectation: &Expectation,
    schema: &DFSchema,
    not_features: &[String],
    at: &SourceLocation,
) -> Result<Check> {
    let test = match &expectation.rule {
        Rule::Condition(condition) => {
            per_row(state, &condition.to_string(), expectation, schema, at)?
        }
        Rule::NotNull(columns) => {
            let condition = columns
                .iter()
                .map(|column| {
                    column_index(schema, &normalize_ident(column), at)?;
                    Ok(format!("{column} IS NOT NULL"))
                })
                .collect::<Result<Vec<_>>>()?
                .join(" AND ");
            per_row(state, &condition, expectation, schema, at)?
        }
        Rule::Range { column, low, high } => {
            column_index(schema, &normalize_ident(column), at)?;
            let condition = format!("{column} BETWEEN {low} AND {high}");
            per_row(state, &condition, expectation, schema, at)?
        }
        Rule::Values { column, values } => {
            column_index(schema, &normalize_ident(column), at)?;
            let values: Vec<String> = values.iter().map(ToString::to_string).collect();
            let condition = format!("{column} IN ({})", values.join(", "));
            per_row(state, &condition, expectation, schema, at)?
        }
        Rule::Rows { low, high } => Test::RowCount {
            low: *low,
            high: *high,
        },
        Rule::Freshness { column, within } => {
            let name = normalize_ident(column);
            let index = column_index(schema, &name, at)?;
            let data_type = schema.field(index).data_type();
            if !matches!(
                data_type,
                DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64
            ) {
                return Err(Error::plan(
                    at,
                    format!(
                        "FRESHNESS measures a timestamp or a date; column '{name}' is of type \
                         {data_type}"
                    ),
                ));
            }
            let within = fixed_length(within)
                .map_err(|e| Error::plan(at, e.describe("FRESHNESS WITHIN", within)))?;
            Test::Freshness {
                column: index,
                within,
            }
        }
        Rule::Drift {
            column,
            measure,
            limit,
        } => {
            let name = normalize_ident(column);
            let index = column_index(schema, &name, at)?;
            if not_features.contains(&name) {
                return Err(Error::plan(
                    at,
                    format!("DRIFT measures a feature; '{name}' is the group's key or event time"),
                ));
            }
            let data_type = schema.field(index).data_type();
            let measurable = matches!(
                (measure, statistics::kind(data_type)),
                (DriftMeasure::Psi, Kind::Numeric | Kind::Categorical)
                    | (DriftMeasure::Ks, Kind::Numeric)
                    | (DriftMeasure::Share, Kind::Categorical)
            );
            if !measurable {
                return Err(Error::plan(
                    at,
                    format!(
                        "DRIFT {measure} cannot measure column '{name}' of type {data_type}: PSI \
                         measures numbers, strings and booleans, KS numbers, SHARE strings and \
                         booleans"
                    ),
                ));
            }
            Test::Drift {
                feature: name,
                measure: *measure,
                limit: *limit,
            }
        }
    };
    Ok(Check {
        name: expectation.name(),
        rule: expectation.rule.to_string(),
        location: at.clone(),
        severity: match expectation.warn {
            true => Severity::Warn,
            false => Severity::Block,
        },
        test,
    })
}

/// A condition on each row, planned as DataFusion plans a `WHERE` over the group's output.
fn per_row(
    state: &SessionState,
    condition: &str,
    expectation: &Expectation,
    schema: &DFSchema,
    at: &SourceLocation,
) -> Result<Test> {
    let planned = |e: DataFusionError| Error::from_datafusion(Some(at), e);
    let logical = state
        .create_logical_expr(condition, schema)
        .map_err(planned)?;
    let reads_beyond_its_row = logical
        .exists(|e| {
            Ok(matches!(
                e,
                Expr::AggregateFunction(_)
                    | Expr::WindowFunction(_)
                    | Expr::ScalarSubquery(_)
                    | Expr::Exists(_)
                    | Expr::InSubquery(_)
            ))
        })
        .map_err(planned)?;
    if reads_beyond_its_row {
        return Err(Error::plan(
            at,
            format!(
                "`{condition}` is checked on each row by itself: it cannot use an aggregate, a \
                 window or a subquery (compute such values as columns of the query)"
            ),
        ));
    }
    let shown = logical
        .column_refs()
        .into_iter()
        .filter_map(|column| schema.index_of_column(column).ok())
        .collect();
    let condition_type = logical.get_type(schema).map_err(planned)?;
    if condition_type != DataType::Boolean {
        return Err(Error::plan(
            at,
            format!("`{condition}` is of type {condition_type}; a condition is true or false"),
        ));
    }
    let condition = state
        .create_physical_expr(logical, schema)
        .map_err(planned)?;
    Ok(Test::PerRow {
        condition,
        mostly: expectation.mostly.unwrap_or(1.0),
        shown,
    })
}

/// Whether the feature moved less than `limit`, and what was measured.
fn drift_outcome(
    drift: Option<&SnapshotDrift>,
    feature: &str,
    measure: DriftMeasure,
    limit: f64,
) -> (bool, String) {
    let Some(drift) = drift else {
        return (
            true,
            "no previous snapshot of this version to compare with".to_string(),
        );
    };
    let since = format!("since snapshot {}", published::format_time(drift.from));
    let moved = drift.features.iter().find(|f| f.feature == feature);
    let measured = moved.and_then(|moved| match measure {
        DriftMeasure::Psi => moved.psi.map(|psi| {
            let estimated = match moved.psi_estimated {
                true => " (estimated from its sketch: the snapshots were binned apart)",
                false => "",
            };
            (psi, format!("PSI {psi:.4} {since}{estimated}"))
        }),
        DriftMeasure::Ks => moved
            .ks
            .map(|ks| (ks, format!("KS distance {ks:.4} {since}"))),
        DriftMeasure::Share => moved.share_change.as_ref().map(|change| {
            let value = change
                .value
                .as_deref()
                .map_or_else(|| "null".to_string(), |v| format!("'{v}'"));
            (
                change.size(),
                format!(
                    "the share of {value} went from {:.2}% to {:.2}% {since}",
                    100.0 * change.from,
                    100.0 * change.to
                ),
            )
        }),
    });
    match measured {
        Some((value, observed)) => (value < limit, observed),
        None => (
            true,
            format!("{measure} cannot be measured {since}: a snapshot has no value of it"),
        ),
    }
}

fn column_index(schema: &DFSchema, name: &str, at: &SourceLocation) -> Result<usize> {
    schema.index_of_column_by_name(None, name).ok_or_else(|| {
        let columns: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        Error::plan(
            at,
            format!(
                "column '{name}' is not in the query's output (columns: {})",
                columns.join(", ")
            ),
        )
    })
}

/// The newest value of a timestamp or date column, in nanoseconds since the epoch. A zone
/// changes how a timestamp is shown, not the instant it holds; one without a zone is taken
/// as UTC, as the as-of is.
fn newest_instant(column: &ArrayRef) -> Option<i128> {
    const NANOS_PER_DAY: i128 = 86_400 * 1_000_000_000;
    match column.data_type() {
        DataType::Timestamp(TimeUnit::Second, _) => {
            max(column.as_primitive::<TimestampSecondType>()).map(|v| i128::from(v) * 1_000_000_000)
        }
        DataType::Timestamp(TimeUnit::Millisecond, _) => {
            max(column.as_primitive::<TimestampMillisecondType>())
                .map(|v| i128::from(v) * 1_000_000)
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            max(column.as_primitive::<TimestampMicrosecondType>()).map(|v| i128::from(v) * 1_000)
        }
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            max(column.as_primitive::<TimestampNanosecondType>()).map(i128::from)
        }
        DataType::Date32 => {
            max(column.as_primitive::<Date32Type>()).map(|v| i128::from(v) * NANOS_PER_DAY)
        }
        DataType::Date64 => {
            max(column.as_primitive::<Date64Type>()).map(|v| i128::from(v) * 1_000_000)
        }
        _ => unreachable!("a FRESHNESS column is a timestamp or a date: checked when planned"),
    }
}

/// An instant in nanoseconds since the epoch, as RFC 3339 where chrono can show it.
fn instant(nanos: i128) -> String {
    let seconds = nanos.div_euclid(1_000_000_000);
    let subsec = nanos.rem_euclid(1_000_000_000) as u32;
    i64::try_from(seconds)
        .ok()
        .and_then(|s| DateTime::from_timestamp(s, subsec))
        .map_or_else(|| format!("{nanos} ns since 1970"), published::format_time)
}

/// `3 days 4 hours`, `12 minutes 5 seconds`: the two largest units of a length of time.
fn length_of_time(nanos: i128) -> String {
    let seconds = nanos / 1_000_000_000;
    let units = [
        (86_400, "day"),
        (3_600, "hour"),
        (60, "minute"),
        (1, "second"),
    ];
    let mut parts = Vec::new();
    let mut rest = seconds;
    for (size, unit) in units {
        let count = rest / size;
        rest %= size;
        if count > 0 || !parts.is_empty() {
            parts.push((count, unit));
        }
    }
    let shown: Vec<String> = parts
        .into_iter()
        .take(2)
        .filter(|(count, _)| *count > 0)
        .map(|(count, unit)| format!("{count} {unit}{}", if count == 1 { "" } else { "s" }))
        .collect();
    match shown.is_empty() {
        true => format!("{} ms", nanos / 1_000_000),
        false => shown.join(" "),
    }
}

/// `1.2%`, `0.0040%`: two significant digits below 1%, to tell a small share from none.
fn percent(part: u64, whole: u64) -> String {
    let share = part as f64 / whole as f64 * 100.0;
    let decimals = match share {
        s if s >= 1.0 => 1,
        s => (1 - s.log10().floor() as i64).clamp(1, 12) as usize,
    };
    format!("{share:.decimals$}%")
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use arrow::array::{
        Float64Array, Int8Array, Int16Array, Int32Array, Int64Array, StringArray,
        TimestampMicrosecondArray, UInt8Array, UInt16Array, UInt32Array, UInt64Array,
    };
    use arrow::datatypes::{Field, Schema};
    use datafusion::prelude::SessionContext;
    use fengine_dialect::{Statement, parse_sql};
    use proptest::prelude::*;

    use super::*;

    /// The group `CREATE FEATURE GROUP g KEY (k) EVENT TIME t <clauses> AS SELECT 1`
    /// compiled against `schema` (its first two columns `k` and `t`).
    fn compile(clauses: &str, schema: &SchemaRef) -> Result<Expectations> {
        let sql = format!("CREATE FEATURE GROUP g KEY (k) EVENT TIME t\n{clauses}\nAS SELECT 1");
        let statements = parse_sql(Path::new("g.sql"), &sql).unwrap_or_else(|e| panic!("{e}"));
        let Statement::CreateFeatureGroup(group) = &statements[0].statement else {
            panic!("a group")
        };
        let location = SourceLocation {
            file: PathBuf::from("g.sql"),
            line: 1,
            column: 1,
        };
        Expectations::compile(&SessionContext::new().state(), group, schema, &location)
    }

    fn batch_of(value: ArrayRef) -> RecordBatch {
        let rows = value.len();
        let keys: ArrayRef = Arc::new(Int64Array::from_iter_values(0..rows as i64));
        let times: ArrayRef = Arc::new(TimestampMicrosecondArray::from_iter_values(
            (0..rows as i64).map(|r| r * 1_000_000),
        ));
        let schema = Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new("t", times.data_type().clone(), false),
            Field::new("v", value.data_type().clone(), true),
        ]);
        RecordBatch::try_new(Arc::new(schema), vec![keys, times, value]).unwrap()
    }

    /// Observes `batch` in chunks of `chunk` rows, alternately into two tallies (as two
    /// partitions would), then merges them.
    fn tally_in_pieces(expectations: &Expectations, batch: &RecordBatch, chunk: usize) -> Tally {
        let mut tallies = [expectations.tally(), expectations.tally()];
        for (n, start) in (0..batch.num_rows()).step_by(chunk).enumerate() {
            let length = chunk.min(batch.num_rows() - start);
            expectations
                .observe(&mut tallies[n % 2], &batch.slice(start, length))
                .unwrap();
        }
        let [mut first, second] = tallies;
        first.merge(second);
        first
    }

    /// What a nested loop finds of a row rule: rows passed, rows failed, and the keys of
    /// the failing rows.
    fn reference(outcomes: &[Option<bool>]) -> (u64, u64, Vec<usize>) {
        let passed = outcomes.iter().filter(|o| **o == Some(true)).count() as u64;
        let failing: Vec<usize> = (0..outcomes.len())
            .filter(|&r| outcomes[r] == Some(false))
            .collect();
        (passed, failing.len() as u64, failing)
    }

    fn failing_keys(outcome: &ExpectationOutcome) -> Vec<usize> {
        outcome
            .failing_rows_sample
            .iter()
            .map(|row| {
                let key = row.split(", ").next().unwrap();
                key.strip_prefix("k=").unwrap().parse().unwrap()
            })
            .collect()
    }

    /// Asserts the judged outcome of a row rule against the reference's: counts, verdict
    /// under `mostly`, and failing keys (a sample of the failing rows: they are observed
    /// out of order across two tallies).
    fn assert_matches_reference(
        outcome: &ExpectationOutcome,
        expected: &[Option<bool>],
        mostly: f64,
    ) {
        let (passed, failed, failing) = reference(expected);
        assert_eq!(outcome.checked_rows, Some(passed + failed), "{outcome:?}");
        assert_eq!(outcome.failed_rows, Some(failed), "{outcome:?}");
        let share_passes =
            passed + failed == 0 || passed as f64 / (passed + failed) as f64 >= mostly;
        assert_eq!(outcome.passed, share_passes, "{outcome:?}");
        let sample = failing_keys(outcome);
        assert_eq!(sample.len(), failing.len().min(SAMPLES), "{outcome:?}");
        assert!(sample.iter().all(|k| failing.contains(k)), "{outcome:?}");
    }

    /// The integer widths, and the range of values each holds.
    const WIDTHS: [(&str, i128, i128); 8] = [
        ("Int8", i8::MIN as i128, i8::MAX as i128),
        ("Int16", i16::MIN as i128, i16::MAX as i128),
        ("Int32", i32::MIN as i128, i32::MAX as i128),
        ("Int64", i64::MIN as i128, i64::MAX as i128),
        ("UInt8", 0, u8::MAX as i128),
        ("UInt16", 0, u16::MAX as i128),
        ("UInt32", 0, u32::MAX as i128),
        ("UInt64", 0, u64::MAX as i128),
    ];

    fn integers(width: &str, values: &[Option<i128>]) -> ArrayRef {
        macro_rules! array {
            ($array:ty, $native:ty) => {
                Arc::new(<$array>::from_iter(
                    values.iter().map(|v| v.map(|v| v as $native)),
                )) as ArrayRef
            };
        }
        match width {
            "Int8" => array!(Int8Array, i8),
            "Int16" => array!(Int16Array, i16),
            "Int32" => array!(Int32Array, i32),
            "Int64" => array!(Int64Array, i64),
            "UInt8" => array!(UInt8Array, u8),
            "UInt16" => array!(UInt16Array, u16),
            "UInt32" => array!(UInt32Array, u32),
            _ => array!(UInt64Array, u64),
        }
    }

    /// A value of a type whose range is `low..=high`: its extremes, values near zero and
    /// near the rule's bounds, anything.
    fn integer_in(low: i128, high: i128) -> impl Strategy<Value = Option<i128>> {
        prop_oneof![
            1 => Just(None),
            1 => Just(Some(low)),
            1 => Just(Some(high)),
            4 => (-300i128..300).prop_map(move |v| Some(v.clamp(low, high))),
            2 => (low..=high).prop_map(Some),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn integer_rules_count_as_a_nested_loop_does(
            (width, values) in (0..WIDTHS.len()).prop_flat_map(|width| {
                let (_, low, high) = WIDTHS[width];
                (Just(width), prop::collection::vec(integer_in(low, high), 1..200))
            }),
            bounds in (-400i64..400, -400i64..400),
            listed in prop::collection::vec(-300i64..300, 1..4),
            mostly in prop_oneof![Just(1.0), 0.5f64..1.0],
            chunk in 1usize..64,
        ) {
            let name = WIDTHS[width].0;
            let (from, to) = (bounds.0.min(bounds.1), bounds.0.max(bounds.1));
            let list: Vec<String> = listed.iter().map(ToString::to_string).collect();
            let batch = batch_of(integers(name, &values));
            let expectations = compile(
                &format!(
                    "EXPECT RANGE v BETWEEN {from} AND {to} MOSTLY {mostly}\n\
                     EXPECT NOT NULL (v) MOSTLY {mostly}\n\
                     EXPECT VALUES v IN ({}) MOSTLY {mostly}\n\
                     EXPECT positive AS (v > 0 OR v IS NULL) MOSTLY {mostly}",
                    list.join(", ")
                ),
                batch.schema_ref(),
            ).unwrap();
            let tally = tally_in_pieces(&expectations, &batch, chunk);
            let outcomes = match expectations.judge(&tally, Utc::now(), None) {
                Ok(outcomes) => outcomes,
                Err(_) => expectations.checks.iter().zip(&tally.seen)
                    .map(|(c, s)| c.outcome(s, tally.rows, Utc::now(), None)).collect(),
            };
            let in_range: Vec<Option<bool>> = values.iter()
                .map(|v| v.map(|v| (from as i128..=to as i128).contains(&v))).collect();
            let not_null: Vec<Option<bool>> = values.iter().map(|v| Some(v.is_some())).collect();
            let in_list: Vec<Option<bool>> = values.iter()
                .map(|v| v.map(|v| listed.iter().any(|l| *l as i128 == v))).collect();
            let positive: Vec<Option<bool>> = values.iter()
                .map(|v| Some(v.is_none_or(|v| v > 0))).collect();
            assert_matches_reference(&outcomes[0], &in_range, mostly);
            assert_matches_reference(&outcomes[1], &not_null, mostly);
            assert_matches_reference(&outcomes[2], &in_list, mostly);
            assert_matches_reference(&outcomes[3], &positive, mostly);
            prop_assert_eq!(tally.rows, values.len() as u64);
        }

        #[test]
        fn float_ranges_fail_nan_and_count_infinities_as_a_nested_loop_does(
            values in prop::collection::vec(prop_oneof![
                1 => Just(None),
                1 => Just(Some(f64::NAN)),
                1 => Just(Some(f64::INFINITY)),
                1 => Just(Some(f64::NEG_INFINITY)),
                1 => Just(Some(f64::MAX)),
                1 => Just(Some(f64::MIN_POSITIVE)),
                1 => Just(Some(-0.0)),
                6 => (-20.0f64..20.0).prop_map(Some),
            ], 1..200),
            bounds in (prop_oneof![Just(0.0), -10.0f64..10.0], prop_oneof![Just(0.0), -10.0f64..10.0]),
            chunk in 1usize..64,
        ) {
            let (from, to) = (bounds.0.min(bounds.1), bounds.0.max(bounds.1));
            let batch = batch_of(Arc::new(Float64Array::from(values.clone())));
            let expectations = compile(
                &format!("EXPECT RANGE v BETWEEN {from:?} AND {to:?} WARN"),
                batch.schema_ref(),
            ).unwrap();
            let tally = tally_in_pieces(&expectations, &batch, chunk);
            let outcomes = expectations.judge(&tally, Utc::now(), None).unwrap();
            // NaN is in no range; -0.0 is 0.
            let in_range: Vec<Option<bool>> = values.iter()
                .map(|v| v.map(|v| !v.is_nan() && from <= v && v <= to)).collect();
            assert_matches_reference(&outcomes[0], &in_range, 1.0);
        }
    }

    #[test]
    fn strings_are_checked_by_value_and_null_conditions_are_not_counted() {
        let batch = batch_of(Arc::new(StringArray::from(vec![
            Some("grocery"),
            None,
            Some("travel"),
            Some("Grocery"),
            Some(""),
        ])));
        let expectations = compile(
            "EXPECT VALUES v IN ('grocery', 'travel') MOSTLY 0.5\n\
             EXPECT short AS (length(v) < 7) WARN",
            batch.schema_ref(),
        )
        .unwrap();
        let tally = tally_in_pieces(&expectations, &batch, 2);
        let outcomes = expectations.judge(&tally, Utc::now(), None).unwrap();
        // Case counts: 'Grocery' is not 'grocery'.
        assert_matches_reference(
            &outcomes[0],
            &[Some(true), None, Some(true), Some(false), Some(false)],
            0.5,
        );
        assert!(outcomes[0].passed, "2 of 4 checked pass: MOSTLY 0.5 holds");
        assert_matches_reference(
            &outcomes[1],
            &[Some(false), None, Some(true), Some(false), Some(true)],
            1.0,
        );
        assert_eq!(outcomes[1].severity, Severity::Warn);
        assert_eq!(
            outcomes[1].failing_rows_sample[0], "k=0, t=1970-01-01T00:00:00, v=grocery",
            "the key, the event time and the column the rule reads"
        );
    }

    #[test]
    fn a_share_exactly_at_mostly_passes_and_one_row_fewer_fails() {
        for (failing, passes) in [(7, true), (8, false)] {
            let values: Vec<Option<i64>> = (0..100)
                .map(|r| Some(if r < failing { -1 } else { 1 }))
                .collect();
            let batch = batch_of(Arc::new(Int64Array::from(values)));
            let expectations =
                compile("EXPECT ok AS (v > 0) MOSTLY 0.93", batch.schema_ref()).unwrap();
            let tally = tally_in_pieces(&expectations, &batch, 10);
            let judged = expectations.judge(&tally, Utc::now(), None);
            assert_eq!(judged.is_ok(), passes, "{failing} of 100 fail: {judged:?}");
        }
    }

    #[test]
    fn a_blocking_failure_names_the_expectation_where_it_is_written_and_failing_keys() {
        let batch = batch_of(Arc::new(Int64Array::from(vec![
            Some(5),
            Some(-2),
            None,
            Some(-9),
        ])));
        let expectations = compile(
            "EXPECT ROWS BETWEEN 1 AND 3\n  EXPECT spend_ok AS (v >= 0)\nEXPECT NOT NULL (v) WARN",
            batch.schema_ref(),
        )
        .unwrap();
        let tally = tally_in_pieces(&expectations, &batch, 4);
        let as_of = DateTime::parse_from_rfc3339("2024-03-10T12:00:00Z")
            .unwrap()
            .to_utc();
        let error = expectations.judge(&tally, as_of, None).unwrap_err();
        assert!(matches!(error, Error::Check(_)));
        assert_eq!(
            error.to_string(),
            "feature group 'g', as-of 2024-03-10T12:00:00Z: expectation 'rows' (g.sql:2:1) failed: `ROWS BETWEEN 1 AND 3`: \
             4 rows; expectation 'spend_ok' (g.sql:3:3) failed: `(v >= 0)`: 2 of 3 rows checked \
             fail (66.7%); failing rows: (k=1, t=1970-01-01T00:00:01, v=-2), (k=3, \
             t=1970-01-01T00:00:03, v=-9). Nothing of this group was published; fix the data or \
             the query, or mark the expectation WARN to publish despite it"
        );
    }

    #[test]
    fn freshness_measures_the_instant_in_every_unit_and_zone() {
        let as_of = DateTime::parse_from_rfc3339("2024-03-10T12:00:00Z")
            .unwrap()
            .to_utc();
        let within = "'2 days'";
        // The newest value exactly two days before the as-of passes; a second older fails.
        for (newest, passes) in [
            ("2024-03-08T12:00:00Z", true),
            ("2024-03-08T11:59:59Z", false),
        ] {
            let micros = DateTime::parse_from_rfc3339(newest)
                .unwrap()
                .timestamp_micros();
            for unit in [
                TimeUnit::Second,
                TimeUnit::Millisecond,
                TimeUnit::Microsecond,
                TimeUnit::Nanosecond,
            ] {
                for zone in [None, Some("UTC"), Some("America/New_York")] {
                    let zone: Option<Arc<str>> = zone.map(Into::into);
                    // Made in the zone, then converted: the instants stay the same.
                    let older = TimestampMicrosecondArray::from(vec![
                        Some(micros - 86_400_000_000),
                        None,
                        Some(micros),
                    ])
                    .with_timezone_opt(zone.clone());
                    let target = DataType::Timestamp(unit, zone.clone());
                    let column = arrow::compute::cast(&older, &target).unwrap();
                    let batch = batch_of(column);
                    let expectations = compile(
                        &format!("EXPECT FRESHNESS v WITHIN {within}"),
                        batch.schema_ref(),
                    )
                    .unwrap();
                    let tally = tally_in_pieces(&expectations, &batch, 1);
                    let judged = expectations.judge(&tally, as_of, None);
                    assert_eq!(
                        judged.is_ok(),
                        passes,
                        "{unit:?} {zone:?} {newest}: {judged:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn freshness_of_dates_and_of_no_value() {
        let as_of = DateTime::parse_from_rfc3339("2024-03-10T00:00:00Z")
            .unwrap()
            .to_utc();
        let days = |d: Vec<Option<i32>>| batch_of(Arc::new(arrow::array::Date32Array::from(d)));
        // 2024-03-08 is day 19790.
        let cases = [
            (days(vec![Some(19_790)]), true),
            (days(vec![Some(19_789)]), false),
            (days(vec![None]), false),
        ];
        for (batch, passes) in cases {
            let expectations =
                compile("EXPECT FRESHNESS v WITHIN '2 days'", batch.schema_ref()).unwrap();
            let tally = tally_in_pieces(&expectations, &batch, 1);
            assert_eq!(expectations.judge(&tally, as_of, None).is_ok(), passes);
        }
    }

    #[test]
    fn rules_that_cannot_be_checked_are_refused_where_they_are_written() {
        let batch = batch_of(Arc::new(Int64Array::from(vec![1])));
        let schema = batch.schema_ref();
        for (clause, message) in [
            (
                "EXPECT NOT NULL (w)",
                "column 'w' is not in the query's output (columns: k, t, v)",
            ),
            (
                "EXPECT sum_ok AS (sum(v) > 0)",
                "`sum(v) > 0` is checked on each row by itself: it cannot use an aggregate, a window or a subquery (compute such values as columns of the query)",
            ),
            (
                "EXPECT number AS (v + 1)",
                "`v + 1` is of type Int64; a condition is true or false",
            ),
            (
                "EXPECT FRESHNESS v WITHIN '1 day'",
                "FRESHNESS measures a timestamp or a date; column 'v' is of type Int64",
            ),
            (
                "EXPECT FRESHNESS t WITHIN '1 month'",
                "FRESHNESS WITHIN '1 month' uses months, whose length varies; give days instead",
            ),
        ] {
            let error = compile(&format!("\n  {clause}"), schema).unwrap_err();
            let Error::Plan {
                location,
                message: said,
            } = &error
            else {
                panic!("{error}")
            };
            assert_eq!(
                location.as_ref().map(|l| (l.line, l.column)),
                Some((3, 3)),
                "{error}"
            );
            assert!(
                said.starts_with("feature group 'g': expectation '"),
                "{error}"
            );
            assert!(said.ends_with(message), "{error}");
        }
        let error = compile("EXPECT typo AS (w > 1)", schema).unwrap_err();
        assert!(error.to_string().contains("w"), "{error}");
    }
}
