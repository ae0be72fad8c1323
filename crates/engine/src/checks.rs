//! The checks a snapshot passes before it is registered: every row has its key and event
//! time, and no two rows share both.
//!
//! They run on the batches as they stream to Parquet. Where the query hands its rows over
//! sorted by key, then event time, with no key spread over two partitions (a rolling window
//! does), repeated rows are neighbours and each key's last row is its latest: one pass checks
//! the snapshot and picks the rows the online store loads, instead of re-reading the
//! snapshot for an aggregate and a ranking window.

use std::cmp::Ordering;
use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, UInt32Array, make_comparator};
use arrow::compute::{SortOptions, partition, take_record_batch};
use arrow::datatypes::Schema;
use arrow::row::{RowConverter, SortField};
use arrow::util::display::array_value_to_string;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanProperties, Partitioning};

use crate::error::{Error, Result};

/// The key and event time columns of a group's snapshot.
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    group: String,
    names: Vec<String>,
    indices: Vec<usize>,
}

impl Identity {
    pub(crate) fn new(
        group: String,
        keys: Vec<String>,
        event_time: String,
        schema: &Schema,
    ) -> Self {
        let names: Vec<String> = keys.into_iter().chain([event_time]).collect();
        let indices = names
            .iter()
            .map(|name| schema.index_of(name).expect("planned columns"))
            .collect();
        Identity {
            group,
            names,
            indices,
        }
    }

    fn key_count(&self) -> usize {
        self.names.len() - 1
    }

    fn columns(&self, batch: &RecordBatch) -> Vec<ArrayRef> {
        self.indices
            .iter()
            .map(|&i| batch.column(i).clone())
            .collect()
    }

    /// True when every partition of `plan` is sorted by the keys (in any order and
    /// direction), then ascending event time, and no key has rows in two partitions.
    pub(crate) fn sorted_and_grouped_by(&self, plan: &Arc<dyn ExecutionPlan>) -> bool {
        let keys = &self.names[..self.key_count()];
        let event_time = &self.names[self.key_count()];
        let is_key = |name: Option<&str>| name.is_some_and(|n| keys.iter().any(|k| k == n));
        let grouped = match plan.output_partitioning() {
            partitioning if partitioning.partition_count() == 1 => true,
            Partitioning::Hash(exprs, _) => {
                !exprs.is_empty() && exprs.iter().all(|e| is_key(column_name(e.as_ref())))
            }
            _ => false,
        };
        let Some(ordering) = plan.output_ordering() else {
            return false;
        };
        let leading: Vec<_> = ordering.iter().take(keys.len() + 1).collect();
        let keys_first = leading.len() == keys.len() + 1
            && keys.iter().all(|key| {
                leading[..keys.len()]
                    .iter()
                    .any(|sort| column_name(sort.expr.as_ref()) == Some(key))
            });
        let then_time = leading.last().is_some_and(|sort| {
            column_name(sort.expr.as_ref()) == Some(event_time) && !sort.options.descending
        });
        grouped && keys_first && then_time
    }

    /// `columns` are the identity columns, in the identity's order.
    fn describe(&self, columns: &[ArrayRef], row: usize) -> String {
        describe_values(self.names.iter().map(String::as_str), columns, row)
    }

    fn null_error(&self, columns: &[ArrayRef], row: usize) -> Error {
        Error::Check(format!(
            "feature group '{}': a row has a null key or event time ({}); every row needs \
             its KEY and EVENT TIME. Nothing of this group was published",
            self.group,
            self.describe(columns, row)
        ))
    }

    /// `columns` are the identity columns, in the identity's order.
    pub(crate) fn repeat_error(&self, columns: &[ArrayRef], row: usize) -> Error {
        Error::Check(format!(
            "feature group '{}': several rows share a key and event time ({}); a group holds \
             one row per key and event time. Nothing of this group was published",
            self.group,
            self.describe(columns, row)
        ))
    }

    /// Fails on the first row without a key or event time.
    pub(crate) fn check_nulls(&self, batch: &RecordBatch) -> Result<()> {
        let columns = self.columns(batch);
        match (0..batch.num_rows()).find(|&row| columns.iter().any(|c| c.is_null(row))) {
            Some(row) => Err(self.null_error(&columns, row)),
            None => Ok(()),
        }
    }

    /// Both checks on rows held in memory, in any order.
    pub(crate) fn check_rows(&self, rows: &RecordBatch) -> Result<()> {
        self.check_nulls(rows)?;
        let columns = self.columns(rows);
        let fields = columns
            .iter()
            .map(|c| SortField::new(c.data_type().clone()))
            .collect();
        let encoded = RowConverter::new(fields)
            .and_then(|converter| converter.convert_columns(&columns))
            .map_err(|e| Error::Infrastructure(format!("cannot check a snapshot: {e}")))?;
        let mut seen = HashSet::with_capacity(rows.num_rows());
        match (0..rows.num_rows()).find(|&row| !seen.insert(encoded.row(row))) {
            Some(row) => Err(self.repeat_error(&columns, row)),
            None => Ok(()),
        }
    }
}

/// `name=value, ...` of one row of `columns`, for a message: `NULL` for a null, a long value
/// cut short.
pub(crate) fn describe_values<'a>(
    names: impl IntoIterator<Item = &'a str>,
    columns: &[ArrayRef],
    row: usize,
) -> String {
    const LONGEST: usize = 80;
    names
        .into_iter()
        .zip(columns)
        .map(|(name, column)| {
            let mut value = if column.is_null(row) {
                "NULL".to_string()
            } else {
                array_value_to_string(column, row).unwrap_or_else(|_| "?".to_string())
            };
            if let Some((cut, _)) = value.char_indices().nth(LONGEST) {
                value.truncate(cut);
                value.push_str("...");
            }
            format!("{name}={value}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn column_name(expr: &dyn datafusion::physical_expr::PhysicalExpr) -> Option<&str> {
    expr.downcast_ref::<Column>().map(Column::name)
}

/// Checks one partition of a snapshot whose rows come sorted by key, then event time, and
/// keeps each key's latest row while their size stays within a budget.
pub(crate) struct SortedChecks {
    identity: Identity,
    /// The previous batch's last row: it may share its key with the next batch's first.
    last_row: Option<RecordBatch>,
    latest: Option<Vec<RecordBatch>>,
    latest_bytes: usize,
    budget: usize,
}

impl SortedChecks {
    pub(crate) fn new(identity: Identity, budget: usize) -> Self {
        SortedChecks {
            identity,
            last_row: None,
            latest: Some(Vec::new()),
            latest_bytes: 0,
            budget,
        }
    }

    pub(crate) fn observe(&mut self, batch: &RecordBatch) -> Result<()> {
        let rows = batch.num_rows();
        if rows == 0 {
            return Ok(());
        }
        self.identity.check_nulls(batch)?;
        let columns = self.identity.columns(batch);
        let keys = self.identity.key_count();
        if let Some(previous) = self.last_row.take() {
            let before = self.identity.columns(&previous);
            let same_key = same_values(&before[..keys], &columns[..keys])?;
            if same_key && same_values(&before[keys..], &columns[keys..])? {
                return Err(self.identity.repeat_error(&columns, 0));
            }
            if !same_key {
                self.keep(previous);
            }
        }
        let identities = partition(&columns).map_err(checking)?;
        if identities.len() < rows {
            let repeated = identities.ranges().into_iter().find(|r| r.len() > 1);
            let row = repeated.expect("a repeat").start;
            return Err(self.identity.repeat_error(&columns, row));
        }
        let runs = partition(&columns[..keys]).map_err(checking)?.ranges();
        let key_ends: Vec<u32> = runs[..runs.len() - 1]
            .iter()
            .map(|run| (run.end - 1) as u32)
            .collect();
        if !key_ends.is_empty() {
            self.keep(take(batch, key_ends)?);
        }
        // A copy, not a slice: a slice would keep the whole batch alive.
        self.last_row = Some(take(batch, vec![(rows - 1) as u32])?);
        Ok(())
    }

    /// The latest row of each key of the partition, unless they outgrew the budget.
    pub(crate) fn finish(mut self) -> Option<Vec<RecordBatch>> {
        if let Some(last) = self.last_row.take() {
            self.keep(last);
        }
        self.latest
    }

    fn keep(&mut self, rows: RecordBatch) {
        let Some(latest) = &mut self.latest else {
            return;
        };
        self.latest_bytes += rows.get_array_memory_size();
        if self.latest_bytes > self.budget {
            self.latest = None;
        } else {
            latest.push(rows);
        }
    }
}

/// Whether the first rows of `left` and `right` hold the same values.
fn same_values(left: &[ArrayRef], right: &[ArrayRef]) -> Result<bool> {
    for (l, r) in left.iter().zip(right) {
        let compare = make_comparator(l, r, SortOptions::default()).map_err(checking)?;
        if compare(0, 0) != Ordering::Equal {
            return Ok(false);
        }
    }
    Ok(true)
}

fn take(batch: &RecordBatch, rows: Vec<u32>) -> Result<RecordBatch> {
    take_record_batch(batch, &UInt32Array::from(rows)).map_err(checking)
}

fn checking(error: arrow::error::ArrowError) -> Error {
    Error::Infrastructure(format!("cannot check a snapshot: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{AsArray, Int64Array};
    use arrow::datatypes::{DataType, Field, Int64Type};
    use fengine_testing::XorShift;

    fn schema() -> Arc<Schema> {
        Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, true),
            Field::new("t", DataType::Int64, true),
            Field::new("v", DataType::Int64, true),
        ]))
    }

    fn identity() -> Identity {
        Identity::new("g".into(), vec!["k".into()], "t".into(), &schema())
    }

    fn batch(rows: &[(i64, i64, i64)]) -> RecordBatch {
        let column = |f: fn(&(i64, i64, i64)) -> i64| -> ArrayRef {
            Arc::new(Int64Array::from_iter_values(rows.iter().map(f)))
        };
        let columns = vec![column(|r| r.0), column(|r| r.1), column(|r| r.2)];
        RecordBatch::try_new(schema(), columns).unwrap()
    }

    /// The rows sorted by key and time, fed in pieces cut at `cuts`.
    fn check(rows: &[(i64, i64, i64)], cuts: &[usize]) -> Result<Vec<(i64, i64, i64)>> {
        let mut checks = SortedChecks::new(identity(), usize::MAX);
        let mut start = 0;
        for &end in cuts.iter().chain([&rows.len()]) {
            checks.observe(&batch(&rows[start..end]))?;
            start = end;
        }
        let mut latest = Vec::new();
        for kept in checks.finish().expect("within the budget") {
            let value = |i: usize| kept.column(i).as_primitive::<Int64Type>().values().to_vec();
            let (k, t, v) = (value(0), value(1), value(2));
            latest.extend((0..kept.num_rows()).map(|r| (k[r], t[r], v[r])));
        }
        Ok(latest)
    }

    #[test]
    fn latest_rows_and_repeats_are_found_across_any_batch_cut() {
        let mut random = XorShift(0x5DEE_CE66_D1CE_4E5B);
        let mut rows = Vec::new();
        for key in 0..12 {
            let mut time = 0;
            for _ in 0..=random.below(4) {
                time += 1 + random.below(3) as i64;
                rows.push((key, time, random.below(100) as i64));
            }
        }
        // Each key's row with the largest time, by a scan of all rows.
        let expected: Vec<_> = rows
            .iter()
            .filter(|&&(k, t, _)| rows.iter().all(|&(k2, t2, _)| k2 != k || t2 <= t))
            .copied()
            .collect();
        for first in 0..=rows.len() {
            for second in first..=rows.len() {
                let latest = check(&rows, &[first, second]).unwrap();
                assert_eq!(latest, expected, "cut at {first} and {second}");
            }
        }
        for repeated in 0..rows.len() {
            let mut with_repeat = rows.clone();
            with_repeat.insert(repeated + 1, rows[repeated]);
            for cut in 0..=with_repeat.len() {
                let error = check(&with_repeat, &[cut]).unwrap_err().to_string();
                let (k, t, _) = rows[repeated];
                assert!(
                    error.contains(&format!(
                        "several rows share a key and event time (k={k}, t={t})"
                    )),
                    "repeat of row {repeated}, cut at {cut}: {error}"
                );
            }
        }
    }

    #[test]
    fn null_keys_fail_and_latest_rows_past_the_budget_are_dropped() {
        let mut checks = SortedChecks::new(identity(), 1);
        checks.observe(&batch(&[(1, 1, 1), (2, 1, 1)])).unwrap();
        assert!(checks.finish().is_none());

        let keys: ArrayRef = Arc::new(Int64Array::from(vec![Some(1), None]));
        let other: ArrayRef = Arc::new(Int64Array::from(vec![1, 2]));
        let nulls = RecordBatch::try_new(schema(), vec![keys, other.clone(), other]).unwrap();
        let error = identity().check_nulls(&nulls).unwrap_err().to_string();
        assert!(
            error.contains("a row has a null key or event time (k=NULL, t=2)"),
            "{error}"
        );
    }
}
