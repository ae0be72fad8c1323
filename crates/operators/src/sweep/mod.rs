//! The snapshots of a window aggregate at every as-of of a backfill, in one pass over the
//! source sorted by time: rows enter each key's aggregates when the as-of reaches them and
//! leave when the window's lower bound passes them, so the work is one add and one removal
//! per row and window width, plus the output rows, whatever the number of as-ofs. Memory
//! holds the rows of the widest window, and DataFusion's sort spills.

mod pattern;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int64Array, RecordBatch, TimestampMicrosecondArray,
};
use arrow::compute::cast;
use arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use arrow::row::{RowConverter, RowParser, SortField};
use chrono::{DateTime, Utc};
use datafusion::common::HashMap;
use datafusion::dataframe::DataFrame;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::context::SessionContext;
use futures::StreamExt;

pub use self::pattern::SweepQuery;
use self::pattern::{AggregateFunction, Output};
use crate::sliding::{self, Accumulator, Kind, Slot, add, kind_of, remove};
use crate::timestamps::nanos_per_tick;

/// One aggregate of the query: what it computes and which window bound evicts its rows.
struct AggregateSpec {
    function: AggregateFunction,
    kind: Kind,
    /// Index into the cursors; `None`: rows never leave.
    cursor: Option<usize>,
    argument: Option<usize>,
    mask: Option<usize>,
}

/// A lower bound of some window: rows at or before it leave (before it, if inclusive).
struct Cursor {
    /// In ticks of the time column's unit.
    width: i64,
    inclusive: bool,
    /// The next row (by sequence number) still inside this window.
    next: u64,
}

pub struct Sweep {
    /// The sorted source, read from the first snapshot on: planning a sweep reads nothing.
    source: Option<DataFrame>,
    input: Option<SendableRecordBatchStream>,
    schema: SchemaRef,
    outputs: Vec<Output>,
    aggregates: Vec<AggregateSpec>,
    cursors: Vec<Cursor>,
    /// Per cursor, the aggregates whose rows it evicts.
    evicted_by: Vec<Vec<usize>>,
    base_cursor: Option<usize>,
    upper_inclusive: bool,
    /// The time column's unit, in whose ticks the sweep compares times.
    unit: TimeUnit,
    as_ofs: VecDeque<DateTime<Utc>>,
    keys: KeyInterner,
    key_count: usize,
    distinct: Vec<Option<KeyInterner>>,
    /// Rows by sequence number from `first_row`: (time, key), and their slots, one per
    /// aggregate, `aggregates.len()` slots per row.
    rows: VecDeque<(i64, u32)>,
    slots: VecDeque<Slot>,
    first_row: u64,
    next_row: u64,
    /// Per key: rows in the query's window, and one accumulator per aggregate.
    in_window: Vec<u32>,
    accumulators: Vec<Vec<Accumulator>>,
    /// The batch being read and the next row of it.
    pending: Option<(RecordBatch, usize)>,
    exhausted: bool,
}

/// Key values interned to dense ids, kept in Arrow's row format to rebuild the columns.
struct KeyInterner {
    converter: RowConverter,
    ids: HashMap<Box<[u8]>, u32>,
    rows: Vec<Box<[u8]>>,
}

impl KeyInterner {
    fn new(types: Vec<DataType>) -> Result<Self> {
        let fields = types.into_iter().map(SortField::new).collect();
        Ok(KeyInterner {
            converter: RowConverter::new(fields)?,
            ids: HashMap::new(),
            rows: Vec::new(),
        })
    }

    fn intern(&mut self, columns: &[ArrayRef]) -> Result<Vec<u32>> {
        let rows = self.converter.convert_columns(columns)?;
        Ok(rows
            .iter()
            .map(|row| {
                let bytes = row.as_ref();
                if let Some(&id) = self.ids.get(bytes) {
                    return id;
                }
                let id = self.rows.len() as u32;
                self.rows.push(bytes.into());
                self.ids.insert(bytes.into(), id);
                id
            })
            .collect())
    }

    fn columns(&self, ids: &[u32]) -> Result<Vec<ArrayRef>> {
        let parser: RowParser = self.converter.parser();
        let rows = ids.iter().map(|&id| parser.parse(&self.rows[id as usize]));
        Ok(self.converter.convert_rows(rows)?)
    }
}

impl Sweep {
    /// Reads the query's source sorted by time; `None` when an argument's type is one the
    /// sweep does not compute (decimals, strings for min and max), which leaves the group
    /// to the per-as-of path. The source streams in batches of `context`'s size.
    pub async fn try_new(
        context: &SessionContext,
        query: &SweepQuery,
        schema: SchemaRef,
        as_ofs: &[DateTime<Utc>],
    ) -> Result<Option<Sweep>> {
        let relation = context.table(query.relation.as_str()).await?;
        let plan = relation.logical_plan().display_indent().to_string();
        if plan.to_ascii_lowercase().contains("as_of(") {
            return Ok(None);
        }
        let (sql, arguments, masks) = base_query(query);
        let frame = context.sql(&sql).await?;
        let base = frame.schema().as_arrow().clone();
        let DataType::Timestamp(unit, _) = base.field(query.keys.len()).data_type() else {
            return Ok(None);
        };
        let unit = *unit;
        let mut cursors: Vec<Cursor> = Vec::new();
        let mut cursor_of = |width: Option<i64>, inclusive: bool| {
            let width = width_ticks(width?, inclusive, unit);
            let at = cursors
                .iter()
                .position(|c| c.width == width && c.inclusive == inclusive)
                .unwrap_or_else(|| {
                    cursors.push(Cursor {
                        width,
                        inclusive,
                        next: 0,
                    });
                    cursors.len() - 1
                });
            Some(at)
        };
        let window = query.window;
        let base_cursor = cursor_of(window.width_nanos, window.lower_inclusive);
        let mut aggregates = Vec::new();
        let mut distinct = Vec::new();
        for (output, (argument, mask)) in query
            .outputs
            .iter()
            .filter_map(|o| match o {
                Output::Aggregate(a) => Some(a),
                _ => None,
            })
            .zip(arguments.iter().zip(&masks))
        {
            let argument_type = argument.map(|i| base.field(i).data_type().clone());
            let Some(kind) = kind_of(output.function, argument_type.as_ref()) else {
                return Ok(None);
            };
            distinct.push(match kind {
                Kind::Distinct => Some(KeyInterner::new(vec![
                    argument_type
                        .clone()
                        .expect("count(DISTINCT x) has an argument"),
                ])?),
                _ => None,
            });
            let (width, inclusive) =
                narrowest((window.width_nanos, window.lower_inclusive), output.window);
            aggregates.push(AggregateSpec {
                function: output.function,
                kind,
                cursor: cursor_of(width, inclusive),
                argument: *argument,
                mask: *mask,
            });
        }
        let key_types = (0..query.keys.len())
            .map(|k| base.field(k).data_type().clone())
            .collect();
        let evicted_by = (0..cursors.len())
            .map(|c| {
                (0..aggregates.len())
                    .filter(|&a| aggregates[a].cursor == Some(c))
                    .collect()
            })
            .collect();
        Ok(Some(Sweep {
            evicted_by,
            source: Some(frame),
            input: None,
            schema,
            outputs: query.outputs.clone(),
            aggregates,
            cursors,
            base_cursor,
            upper_inclusive: window.upper_inclusive,
            unit,
            as_ofs: as_ofs.iter().copied().collect(),
            keys: KeyInterner::new(key_types)?,
            key_count: query.keys.len(),
            distinct,
            rows: VecDeque::new(),
            slots: VecDeque::new(),
            first_row: 0,
            next_row: 0,
            in_window: Vec::new(),
            accumulators: Vec::new(),
            pending: None,
            exhausted: false,
        }))
    }

    /// The snapshot of the next as-of, once every row up to it has been read.
    pub async fn next_snapshot(&mut self) -> Result<Option<(DateTime<Utc>, RecordBatch)>> {
        let Some(&as_of) = self.as_ofs.front() else {
            return Ok(None);
        };
        let limit = as_of_ticks(as_of, self.unit)?;
        if let Some(source) = self.source.take() {
            self.input = Some(source.execute_stream().await?);
        }
        loop {
            if self.pending.is_none() && !self.exhausted {
                let input = self.input.as_mut().expect("started above");
                match input.next().await {
                    Some(batch) => self.pending = Some((batch?, 0)),
                    None => self.exhausted = true,
                }
            }
            let Some((batch, start)) = self.pending.take() else {
                break;
            };
            let (stopped, next) = self.add_rows(&batch, start, limit)?;
            if stopped {
                self.pending = Some((batch, next));
                break;
            }
        }
        self.evict(limit);
        let snapshot = self.snapshot(as_of)?;
        self.as_ofs.pop_front();
        Ok(Some((as_of, snapshot)))
    }

    /// Adds the batch's rows from `start` that are inside windows ending at `limit`;
    /// returns whether it stopped at a later row, and that row.
    fn add_rows(&mut self, batch: &RecordBatch, start: usize, limit: i64) -> Result<(bool, usize)> {
        let key_count = self.key_count;
        let times = ticks(batch.column(key_count))?;
        let keys = self.keys.intern(&batch.columns()[..key_count])?;
        let slots = self.slots(batch)?;
        // Rows that even the widest window has let go of at this as-of never enter.
        let oldest = self
            .widest()
            .map(|(width, inclusive)| (limit.saturating_sub(width), inclusive));
        for row in start..batch.num_rows() {
            if times.is_null(row) {
                continue;
            }
            let time = times.value(row);
            let inside = if self.upper_inclusive {
                time <= limit
            } else {
                time < limit
            };
            if !inside {
                return Ok((true, row));
            }
            let gone = oldest.is_some_and(|(bound, inclusive)| {
                if inclusive {
                    time < bound
                } else {
                    time <= bound
                }
            });
            if gone {
                continue;
            }
            let key = keys[row];
            // Keys are numbered as met, including in rows that never enter.
            while self.in_window.len() <= key as usize {
                self.in_window.push(0);
                self.accumulators.push(
                    self.aggregates
                        .iter()
                        .map(|a| Accumulator::new(a.function))
                        .collect(),
                );
            }
            self.in_window[key as usize] += 1;
            let sequence = self.next_row;
            for ((spec, accumulator), slots) in self
                .aggregates
                .iter()
                .zip(&mut self.accumulators[key as usize])
                .zip(&slots)
            {
                add(
                    spec.function,
                    spec.cursor.is_some(),
                    accumulator,
                    slots[row],
                    sequence,
                );
                self.slots.push_back(slots[row]);
            }
            self.rows.push_back((time, key));
            self.next_row += 1;
        }
        Ok((false, batch.num_rows()))
    }

    /// The widest lower bound: (width, inclusive); `None` when some window has none.
    fn widest(&self) -> Option<(i64, bool)> {
        self.base_cursor?;
        if self.aggregates.iter().any(|a| a.cursor.is_none()) {
            return None;
        }
        self.cursors
            .iter()
            .map(|c| (c.width, c.inclusive))
            .max_by_key(|&(width, inclusive)| (width, inclusive))
    }

    /// Each aggregate's slots of the batch's rows.
    fn slots(&mut self, batch: &RecordBatch) -> Result<Vec<Vec<Slot>>> {
        let mut all = Vec::with_capacity(self.aggregates.len());
        for (index, spec) in self.aggregates.iter().enumerate() {
            let argument = spec.argument.map(|i| batch.column(i));
            let mask = spec.mask.map(|i| batch.column(i).as_boolean().clone());
            let mut slots: Vec<Slot> = match (spec.kind, argument) {
                (_, None) => vec![Slot::Present; batch.num_rows()],
                (Kind::Presence | Kind::Float | Kind::Int | Kind::Decimal, Some(values)) => {
                    sliding::slots(spec.kind, values)?
                }
                (Kind::Distinct, Some(values)) => {
                    let interner = self.distinct[index]
                        .as_mut()
                        .expect("distinct aggregates intern their values");
                    let ids = interner.intern(std::slice::from_ref(values))?;
                    (0..values.len())
                        .map(|i| {
                            if values.is_valid(i) {
                                Slot::Id(ids[i])
                            } else {
                                Slot::Absent
                            }
                        })
                        .collect()
                }
            };
            if let Some(mask) = mask {
                apply_mask(&mut slots, &mask);
            }
            all.push(slots);
        }
        Ok(all)
    }

    /// Removes the rows that the windows ending at `limit` no longer hold.
    fn evict(&mut self, limit: i64) {
        for cursor_index in 0..self.cursors.len() {
            let cursor = &self.cursors[cursor_index];
            let bound = limit.saturating_sub(cursor.width);
            let inclusive = cursor.inclusive;
            let mut next = cursor.next;
            let width = self.aggregates.len();
            while next < self.next_row {
                let offset = (next - self.first_row) as usize;
                let (time, key) = self.rows[offset];
                let inside = if inclusive {
                    time >= bound
                } else {
                    time > bound
                };
                if inside {
                    break;
                }
                let key = key as usize;
                if self.base_cursor == Some(cursor_index) {
                    self.in_window[key] -= 1;
                }
                let accumulators = &mut self.accumulators[key];
                for &index in &self.evicted_by[cursor_index] {
                    remove(
                        &mut accumulators[index],
                        self.slots[offset * width + index],
                        next,
                    );
                }
                next += 1;
            }
            self.cursors[cursor_index].next = next;
        }
        // Rows every window has let go of, unless some window never lets rows go.
        if self.aggregates.iter().all(|a| a.cursor.is_some()) && self.base_cursor.is_some() {
            let oldest = self
                .cursors
                .iter()
                .map(|c| c.next)
                .min()
                .unwrap_or(self.next_row);
            let gone = (oldest - self.first_row) as usize;
            self.rows.drain(..gone);
            self.slots.drain(..gone * self.aggregates.len());
            self.first_row = oldest;
        }
    }

    /// One row per key with rows in the window, columns as the group declares them.
    fn snapshot(&self, as_of: DateTime<Utc>) -> Result<RecordBatch> {
        let keys: Vec<u32> = (0..self.in_window.len() as u32)
            .filter(|&k| self.in_window[k as usize] > 0)
            .collect();
        let key_columns = self.keys.columns(&keys)?;
        let mut aggregate = 0;
        let mut columns = Vec::with_capacity(self.outputs.len());
        for (output, field) in self.outputs.iter().zip(self.schema.fields()) {
            let column: ArrayRef = match output {
                Output::Key(k) => key_columns[*k].clone(),
                Output::AsOf => Arc::new(
                    TimestampMicrosecondArray::from_value(as_of.timestamp_micros(), keys.len())
                        .with_timezone("UTC"),
                ),
                Output::Aggregate(_) => {
                    let index = aggregate;
                    aggregate += 1;
                    let spec = &self.aggregates[index];
                    let values = keys.iter().map(|&k| {
                        self.accumulators[k as usize][index].value(spec.function, spec.kind)
                    });
                    sliding::column(values, field.data_type())?
                }
            };
            columns.push(cast(&column, field.data_type())?);
        }
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}

/// The source's rows as the sweep reads them: keys, time, each aggregate's argument and
/// FILTER condition, sorted by time (DataFusion sorts, spilling if it must). Returns the
/// SQL and, per aggregate, the column indices of its argument and mask.
fn base_query(query: &SweepQuery) -> (String, Vec<Option<usize>>, Vec<Option<usize>>) {
    // Keys and time as written in the query, quoted or not.
    let mut expressions: Vec<String> = query.keys.clone();
    expressions.push(query.time.clone());
    // One column per distinct argument or condition: `sum(amount)`, `avg(amount)` and
    // `max(amount)` share theirs, which keeps the sorted source narrow.
    let mut column_of = |expression: String| {
        let expression = format!("({expression})");
        Some(
            expressions
                .iter()
                .position(|e| *e == expression)
                .unwrap_or_else(|| {
                    expressions.push(expression);
                    expressions.len() - 1
                }),
        )
    };
    let (mut arguments, mut masks) = (Vec::new(), Vec::new());
    for output in &query.outputs {
        let Output::Aggregate(aggregate) = output else {
            continue;
        };
        arguments.push(aggregate.argument.clone().and_then(&mut column_of));
        masks.push(if aggregate.conditions.is_empty() {
            None
        } else {
            let conditions: Vec<String> = aggregate
                .conditions
                .iter()
                .map(|c| format!("({c})"))
                .collect();
            column_of(conditions.join(" AND "))
        });
    }
    let columns: Vec<String> = expressions
        .iter()
        .enumerate()
        .map(|(i, e)| format!("{e} AS __c{i}"))
        .collect();
    let mut sql = format!("SELECT {} FROM {}", columns.join(", "), query.relation);
    if !query.conditions.is_empty() {
        let conditions: Vec<String> = query.conditions.iter().map(|c| format!("({c})")).collect();
        sql.push_str(&format!(" WHERE {}", conditions.join(" AND ")));
    }
    sql.push_str(&format!(" ORDER BY __c{}", query.keys.len()));
    (sql, arguments, masks)
}

/// The tighter of the query's lower bound and a FILTER's.
fn narrowest(query: (Option<i64>, bool), filter: Option<(i64, bool)>) -> (Option<i64>, bool) {
    match (query, filter) {
        (query, None) => query,
        ((None, _), Some((width, inclusive))) => (Some(width), inclusive),
        ((Some(a), a_inclusive), Some((b, b_inclusive))) => {
            if a < b {
                (Some(a), a_inclusive)
            } else if b < a {
                (Some(b), b_inclusive)
            } else {
                (Some(a), a_inclusive && b_inclusive)
            }
        }
    }
}

fn apply_mask(slots: &mut [Slot], mask: &BooleanArray) {
    for (i, slot) in slots.iter_mut().enumerate() {
        if !(mask.is_valid(i) && mask.value(i)) {
            *slot = Slot::Absent;
        }
    }
}

/// A timestamp column in ticks of its own unit (checked to be one in `try_new`).
fn ticks(array: &ArrayRef) -> Result<Int64Array> {
    crate::timestamps::ticks(array).ok_or_else(|| {
        DataFusionError::Plan(format!(
            "a backfill window's time column must be a timestamp, not {}",
            array.data_type()
        ))
    })
}

/// An as-of in ticks of `unit`: exact, as-ofs being whole seconds.
fn as_of_ticks(as_of: DateTime<Utc>, unit: TimeUnit) -> Result<i64> {
    let nanos =
        i128::from(as_of.timestamp()) * 1_000_000_000 + i128::from(as_of.timestamp_subsec_nanos());
    i64::try_from(nanos.div_euclid(i128::from(nanos_per_tick(unit)))).map_err(|_| {
        DataFusionError::Configuration(format!(
            "as-of {as_of} is beyond the range of the window's {unit:?} timestamps"
        ))
    })
}

/// A window's width in ticks of `unit`, rounded so that a row is in the window exactly when
/// its time, in nanoseconds, is: down for an inclusive lower bound (`time >= as_of - w`),
/// up for an exclusive one (`time > as_of - w`).
fn width_ticks(width_nanos: i64, inclusive: bool, unit: TimeUnit) -> i64 {
    let tick = nanos_per_tick(unit);
    if inclusive {
        width_nanos.div_euclid(tick)
    } else {
        width_nanos.div_euclid(tick) + i64::from(width_nanos.rem_euclid(tick) != 0)
    }
}
