//! Aggregates over a sliding window of rows: rows enter at one end and leave at the other
//! in the order they entered, each costing one update, whatever the window's size. Sums are
//! compensated, min and max keep a monotonic deque, distinct counts keep a count per value.

use std::collections::VecDeque;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Decimal128Type, Float64Type, Int64Type};
use arrow::error::ArrowError;
use datafusion::common::HashMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AggregateFunction {
    Sum,
    Count,
    CountDistinct,
    Avg,
    Min,
    Max,
    /// stddev, stddev_pop, var, var_pop
    Spread {
        root: bool,
        population: bool,
    },
}

/// A value of a row for one aggregate; `Absent` when null or filtered out.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Slot {
    Absent,
    Present,
    Float(f64),
    Int(i64),
    Id(u32),
}

/// How an aggregate reads its argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// count(*), count(x): only whether a value is there.
    Presence,
    Float,
    Int,
    /// Decimals of up to 18 digits, as their unscaled values (Int slots); sums exact in
    /// 128 bits.
    Decimal,
    /// count(DISTINCT x): values interned to ids.
    Distinct,
}

#[derive(Debug)]
pub(crate) enum Accumulator {
    Count(i64),
    Sum(Sum),
    Extreme(Extreme),
    Distinct(HashMap<u32, u32>),
    Spread(Spread),
}

/// Count, mean and sum of squared deviations of the values in (Welford's), for variance
/// and standard deviation; non-finite values are counted apart, as for sums.
#[derive(Debug, Default)]
pub(crate) struct Spread {
    n: i64,
    mean: f64,
    m2: f64,
    non_finite: i64,
}

impl Spread {
    fn add(&mut self, value: f64) {
        if !value.is_finite() {
            self.non_finite += 1;
            return;
        }
        self.n += 1;
        let delta = value - self.mean;
        self.mean += delta / self.n as f64;
        self.m2 += delta * (value - self.mean);
    }

    fn remove(&mut self, value: f64) {
        if !value.is_finite() {
            self.non_finite -= 1;
            return;
        }
        self.n -= 1;
        if self.n == 0 {
            (self.mean, self.m2) = (0.0, 0.0);
            return;
        }
        // One value left has no spread, whatever rounding the removals left behind.
        if self.n == 1 {
            self.mean -= (value - self.mean) / self.n as f64;
            self.m2 = 0.0;
            return;
        }
        let delta = value - self.mean;
        self.mean -= delta / self.n as f64;
        self.m2 = (self.m2 - delta * (value - self.mean)).max(0.0);
    }

    fn value(&self, root: bool, population: bool) -> Option<f64> {
        let n = self.n + self.non_finite;
        let divisor = if population { n } else { n - 1 };
        if divisor < 1 {
            return None;
        }
        let variance = if self.non_finite > 0 {
            f64::NAN
        } else {
            self.m2 / divisor as f64
        };
        Some(if root { variance.sqrt() } else { variance })
    }
}

/// A sum of the values in the window, and their count (for avg).
#[derive(Debug, Default)]
pub(crate) struct Sum {
    /// Doubles summed with Neumaier's compensation, so that adding and removing rows keeps
    /// the result within rounding of a fresh sum.
    float: f64,
    compensation: f64,
    /// NaN, +inf and -inf are counted, not summed: once summed, they could never be taken
    /// out again.
    non_finite: [i64; 3],
    /// Whole numbers summed in 128 bits: exact for unscaled decimals, whose sums have 10
    /// more digits than their values; integers take the low 64 bits, wrapping as
    /// DataFusion's sums of integers do.
    int: i128,
    n: i64,
}

impl Sum {
    /// Adds `value` (`sign` 1) or takes it out (`sign` -1).
    fn update(&mut self, value: Slot, sign: i64) {
        self.n += sign;
        match value {
            Slot::Float(v) if !v.is_finite() => self.non_finite[non_finite_index(v)] += sign,
            Slot::Float(v) => {
                compensated_add(&mut self.float, &mut self.compensation, v * sign as f64)
            }
            Slot::Int(v) => self.int += i128::from(v) * i128::from(sign),
            _ => {}
        }
        // An empty window restarts from an exact zero, so rounding never carries over from
        // one busy period to the next.
        if self.n == 0 {
            (self.float, self.compensation) = (0.0, 0.0);
        }
    }

    /// (sum of doubles, sum of integers, values), or `None` when the window holds none.
    fn value(&self) -> Option<(f64, i64, i64)> {
        if self.n == 0 {
            return None;
        }
        let [nan, positive, negative] = self.non_finite.map(|n| n > 0);
        let float = match (nan, positive, negative) {
            (true, _, _) | (_, true, true) => f64::NAN,
            (_, true, false) => f64::INFINITY,
            (_, false, true) => f64::NEG_INFINITY,
            _ => self.float + self.compensation,
        };
        Some((float, self.int as i64, self.n))
    }
}

/// min or max over a sliding window: a monotonic deque of (row, value), or a running value
/// when rows never leave.
#[derive(Debug, Default)]
pub(crate) struct Extreme {
    deque: VecDeque<(u64, Slot)>,
}

/// How `function` reads an argument of this type; `None` when it cannot.
pub(crate) fn kind_of(function: AggregateFunction, argument: Option<&DataType>) -> Option<Kind> {
    use AggregateFunction::*;
    let numeric = |t: &DataType| {
        if t.is_floating() {
            Some(Kind::Float)
        } else if t.is_integer() {
            Some(Kind::Int)
        } else {
            None
        }
    };
    match (function, argument) {
        (Count, _) => Some(Kind::Presence),
        (CountDistinct, Some(_)) => Some(Kind::Distinct),
        (Sum, Some(t)) => numeric(t),
        // avg, stddev and var read every input as a double, as DataFusion does.
        (Avg | Spread { .. }, Some(t)) => numeric(t).map(|_| Kind::Float),
        (Min | Max, Some(DataType::Timestamp(_, _))) => Some(Kind::Int),
        (Min | Max, Some(t)) => numeric(t),
        _ => None,
    }
}

impl Accumulator {
    pub(crate) fn new(function: AggregateFunction) -> Self {
        match function {
            AggregateFunction::Count => Accumulator::Count(0),
            AggregateFunction::Sum | AggregateFunction::Avg => Accumulator::Sum(Sum::default()),
            AggregateFunction::Min | AggregateFunction::Max => {
                Accumulator::Extreme(Extreme::default())
            }
            AggregateFunction::CountDistinct => Accumulator::Distinct(HashMap::new()),
            AggregateFunction::Spread { .. } => Accumulator::Spread(Spread::default()),
        }
    }
}

/// Adds a row's value (its `sequence` numbers rows in the order they came); `leaves`: rows
/// will be removed again, in the order they were added.
pub(crate) fn add(
    function: AggregateFunction,
    leaves: bool,
    accumulator: &mut Accumulator,
    slot: Slot,
    sequence: u64,
) {
    if matches!(slot, Slot::Absent) {
        return;
    }
    match accumulator {
        Accumulator::Count(n) => *n += 1,
        Accumulator::Sum(sum) => sum.update(slot, 1),
        Accumulator::Extreme(extreme) => {
            let is_max = function == AggregateFunction::Max;
            let deque = &mut extreme.deque;
            // Rows that never leave need only the best so far.
            if !leaves {
                if deque
                    .back()
                    .is_none_or(|&(_, best)| better(slot, best, is_max))
                {
                    deque.clear();
                    deque.push_back((sequence, slot));
                }
                return;
            }
            while deque
                .back()
                .is_some_and(|&(_, last)| !better(last, slot, is_max))
            {
                deque.pop_back();
            }
            deque.push_back((sequence, slot));
        }
        Accumulator::Distinct(counts) => {
            if let Slot::Id(id) = slot {
                *counts.entry(id).or_default() += 1;
            }
        }
        Accumulator::Spread(spread) => {
            if let Slot::Float(v) = slot {
                spread.add(v);
            }
        }
    }
}

/// Removes the oldest row still in, whose value is `slot`.
pub(crate) fn remove(accumulator: &mut Accumulator, slot: Slot, sequence: u64) {
    if matches!(slot, Slot::Absent) {
        return;
    }
    match accumulator {
        Accumulator::Count(n) => *n -= 1,
        Accumulator::Sum(sum) => sum.update(slot, -1),
        Accumulator::Extreme(extreme) => {
            if extreme.deque.front().is_some_and(|&(s, _)| s == sequence) {
                extreme.deque.pop_front();
            }
        }
        Accumulator::Spread(spread) => {
            if let Slot::Float(v) = slot {
                spread.remove(v);
            }
        }
        Accumulator::Distinct(counts) => {
            if let Slot::Id(id) = slot
                && let Some(count) = counts.get_mut(&id)
            {
                *count -= 1;
                if *count == 0 {
                    counts.remove(&id);
                }
            }
        }
    }
}

fn non_finite_index(value: f64) -> usize {
    if value.is_nan() {
        0
    } else if value > 0.0 {
        1
    } else {
        2
    }
}

fn compensated_add(sum: &mut f64, compensation: &mut f64, value: f64) {
    let total = *sum + value;
    *compensation += if sum.abs() >= value.abs() {
        (*sum - total) + value
    } else {
        (value - total) + *sum
    };
    *sum = total;
}

/// Whether `a` is strictly better than `b` for max (or min); doubles by total order, as
/// Arrow's kernels compare them (NaN above every number).
fn better(a: Slot, b: Slot, is_max: bool) -> bool {
    let ordering = match (a, b) {
        (Slot::Float(a), Slot::Float(b)) => a.total_cmp(&b),
        (Slot::Int(a), Slot::Int(b)) => a.cmp(&b),
        _ => std::cmp::Ordering::Equal,
    };
    if is_max {
        ordering.is_gt()
    } else {
        ordering.is_lt()
    }
}

/// An aggregate's current value: Int64 or Float64, as [`output_column`] builds them, or
/// an unscaled decimal.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Value {
    Int(Option<i64>),
    Float(Option<f64>),
    Decimal(Option<i128>),
}

impl Value {
    /// A row's value of this kind; `None` or absent: null.
    pub(crate) fn of(slot: Option<Slot>, kind: Kind) -> Value {
        match (slot, kind) {
            (Some(Slot::Float(v)), _) => Value::Float(Some(v)),
            (Some(Slot::Int(v)), Kind::Decimal) => Value::Decimal(Some(i128::from(v))),
            (Some(Slot::Int(v)), _) => Value::Int(Some(v)),
            (_, Kind::Float) => Value::Float(None),
            (_, Kind::Decimal) => Value::Decimal(None),
            _ => Value::Int(None),
        }
    }
}

impl Accumulator {
    /// The exact sum of the unscaled decimals in, and their count; `None` when none.
    pub(crate) fn decimal_sum(&self) -> Option<(i128, i64)> {
        match self {
            Accumulator::Sum(sum) => sum.value().map(|(_, _, n)| (sum.int, n)),
            _ => None,
        }
    }

    /// The aggregate's value over the rows in.
    pub(crate) fn value(&self, function: AggregateFunction, kind: Kind) -> Value {
        match (function, self) {
            (AggregateFunction::Count, Accumulator::Count(n)) => Value::Int(Some(*n)),
            (AggregateFunction::CountDistinct, Accumulator::Distinct(counts)) => {
                Value::Int(Some(counts.len() as i64))
            }
            (_, Accumulator::Sum(sum)) if kind == Kind::Decimal => {
                Value::Decimal(sum.value().map(|_| sum.int))
            }
            (AggregateFunction::Avg, Accumulator::Sum(sum)) => {
                Value::Float(sum.value().map(|(float, _, n)| float / n as f64))
            }
            (_, Accumulator::Sum(sum)) if kind == Kind::Float => {
                Value::Float(sum.value().map(|(float, _, _)| float))
            }
            (_, Accumulator::Sum(sum)) => Value::Int(sum.value().map(|(_, int, _)| int)),
            (AggregateFunction::Spread { root, population }, Accumulator::Spread(spread)) => {
                Value::Float(spread.value(root, population))
            }
            (_, Accumulator::Extreme(extreme)) => {
                let best = extreme.deque.front().map(|&(_, slot)| slot);
                Value::of(best, kind)
            }
            _ => Value::Int(None),
        }
    }
}

/// Whether the aggregate's values are doubles (else whole numbers).
pub(crate) fn is_float(function: AggregateFunction, kind: Kind) -> bool {
    matches!(
        function,
        AggregateFunction::Avg | AggregateFunction::Spread { .. }
    ) || (kind == Kind::Float
        && !matches!(
            function,
            AggregateFunction::Count | AggregateFunction::CountDistinct
        ))
}

/// A column of values, all of one aggregate's type.
pub(crate) fn values_column(float: bool, values: impl Iterator<Item = Value>) -> ArrayRef {
    if float {
        Arc::new(Float64Array::from_iter(values.map(|v| match v {
            Value::Float(v) => v,
            Value::Int(v) => v.map(|v| v as f64),
            Value::Decimal(v) => v.map(|v| v as f64),
        })))
    } else {
        Arc::new(Int64Array::from_iter(values.map(|v| match v {
            Value::Int(v) => v,
            Value::Float(_) | Value::Decimal(_) => None,
        })))
    }
}

/// The aggregate's value in each accumulator, as an Int64 or Float64 column.
pub(crate) fn output_column<'a>(
    function: AggregateFunction,
    kind: Kind,
    accumulators: impl Iterator<Item = &'a Accumulator>,
) -> ArrayRef {
    values_column(
        is_float(function, kind),
        accumulators.map(|a| a.value(function, kind)),
    )
}

/// Each row's value of `values` for an aggregate of this kind (not `Distinct`, whose values
/// need interning); null values are absent.
pub(crate) fn slots(kind: Kind, values: &ArrayRef) -> Result<Vec<Slot>, ArrowError> {
    Ok(match kind {
        Kind::Presence | Kind::Distinct => (0..values.len())
            .map(|i| {
                if values.is_valid(i) {
                    Slot::Present
                } else {
                    Slot::Absent
                }
            })
            .collect(),
        Kind::Float => cast(values, &DataType::Float64)?
            .as_primitive::<Float64Type>()
            .iter()
            .map(|v| v.map_or(Slot::Absent, Slot::Float))
            .collect(),
        Kind::Int => cast(values, &DataType::Int64)?
            .as_primitive::<Int64Type>()
            .iter()
            .map(|v| v.map_or(Slot::Absent, Slot::Int))
            .collect(),
        // Unscaled: a cast to Int64 would drop the fraction.
        Kind::Decimal => values
            .as_primitive_opt::<Decimal128Type>()
            .ok_or_else(|| ArrowError::CastError("a decimal window needs decimals".into()))?
            .iter()
            .map(|v| match v {
                None => Ok(Slot::Absent),
                Some(v) => i64::try_from(v).map(Slot::Int).map_err(|_| {
                    ArrowError::ComputeError(format!("decimal {v} has more than 18 digits"))
                }),
            })
            .collect::<Result<_, _>>()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::XorShift;

    fn random_slot(random: &mut XorShift, kind: Kind) -> Slot {
        if random.below(8) == 0 {
            return Slot::Absent;
        }
        match kind {
            Kind::Presence => Slot::Present,
            Kind::Distinct => Slot::Id(random.below(6) as u32),
            Kind::Int | Kind::Decimal => Slot::Int(random.below(2_000) as i64 - 1_000),
            Kind::Float => match random.below(30) {
                0 => Slot::Float(f64::NAN),
                1 => Slot::Float(f64::INFINITY),
                2 => Slot::Float(f64::NEG_INFINITY),
                _ => Slot::Float((random.below(2_000_000) as f64 - 1e6) / 7.0),
            },
        }
    }

    /// The aggregate of `window` computed from scratch, as an Int64 or Float64 value.
    fn reference(function: AggregateFunction, window: &[Slot]) -> (Option<i64>, Option<f64>) {
        let present: Vec<Slot> = window
            .iter()
            .copied()
            .filter(|s| !matches!(s, Slot::Absent))
            .collect();
        let floats: Vec<f64> = present
            .iter()
            .filter_map(|s| match s {
                Slot::Float(v) => Some(*v),
                Slot::Int(v) => Some(*v as f64),
                _ => None,
            })
            .collect();
        let ints: Vec<i64> = present
            .iter()
            .filter_map(|s| match s {
                Slot::Int(v) => Some(*v),
                _ => None,
            })
            .collect();
        let float_sum = || -> f64 { floats.iter().sum() };
        match function {
            AggregateFunction::Count => (Some(present.len() as i64), None),
            AggregateFunction::CountDistinct => {
                let mut ids: Vec<u32> = present
                    .iter()
                    .filter_map(|s| match s {
                        Slot::Id(id) => Some(*id),
                        _ => None,
                    })
                    .collect();
                ids.sort();
                ids.dedup();
                (Some(ids.len() as i64), None)
            }
            AggregateFunction::Sum if !ints.is_empty() => (Some(ints.iter().sum()), None),
            AggregateFunction::Sum => (None, (!floats.is_empty()).then(float_sum)),
            AggregateFunction::Avg => (
                None,
                (!floats.is_empty()).then(|| float_sum() / floats.len() as f64),
            ),
            AggregateFunction::Spread { root, population } => {
                let n = floats.len();
                let enough = if population { n > 0 } else { n > 1 };
                let value = enough.then(|| {
                    if floats.iter().any(|v| !v.is_finite()) {
                        return f64::NAN;
                    }
                    let mean = float_sum() / n as f64;
                    let squares: f64 = floats.iter().map(|v| (v - mean) * (v - mean)).sum();
                    let variance = squares / if population { n } else { n - 1 } as f64;
                    if root { variance.sqrt() } else { variance }
                });
                (None, value)
            }
            AggregateFunction::Min | AggregateFunction::Max => {
                let is_max = function == AggregateFunction::Max;
                let pick = |a: f64, b: f64| {
                    let a_wins = if is_max {
                        a.total_cmp(&b).is_gt()
                    } else {
                        a.total_cmp(&b).is_lt()
                    };
                    if a_wins { a } else { b }
                };
                if ints.is_empty() {
                    (None, floats.iter().copied().reduce(pick))
                } else {
                    let best = if is_max {
                        ints.iter().max()
                    } else {
                        ints.iter().min()
                    };
                    (best.copied(), None)
                }
            }
        }
    }

    fn value(column: &ArrayRef, float: bool) -> (Option<i64>, Option<f64>) {
        if column.is_null(0) {
            return (None, None);
        }
        if float {
            (None, Some(column.as_primitive::<Float64Type>().value(0)))
        } else {
            (Some(column.as_primitive::<Int64Type>().value(0)), None)
        }
    }

    fn same(a: Option<f64>, b: Option<f64>) -> bool {
        match (a, b) {
            (Some(a), Some(b)) if a.is_nan() || b.is_nan() => a.is_nan() && b.is_nan(),
            (Some(a), Some(b)) => a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0),
            (a, b) => a == b,
        }
    }

    #[test]
    fn whole_number_sums_are_exact_in_128_bits_and_wrap_at_64() {
        let mut sum = Sum::default();
        for value in [i64::MAX, i64::MAX, i64::MAX, -7, i64::MIN] {
            sum.update(Slot::Int(value), 1);
        }
        sum.update(Slot::Int(i64::MAX), -1);
        let exact = 2 * i128::from(i64::MAX) - 7 + i128::from(i64::MIN);
        assert_eq!(sum.int, exact);
        assert_eq!(
            sum.value().map(|(_, int, n)| (int, n)),
            Some((exact as i64, 4))
        );
        for value in [i64::MAX, -7, i64::MIN, i64::MAX] {
            sum.update(Slot::Int(value), -1);
        }
        assert_eq!((sum.int, sum.value()), (0, None));
    }

    #[test]
    fn sliding_aggregates_equal_a_fresh_computation_of_each_window() {
        use AggregateFunction::*;
        let cases = [
            (Sum, Kind::Float),
            (Sum, Kind::Int),
            (Count, Kind::Presence),
            (CountDistinct, Kind::Distinct),
            (Avg, Kind::Float),
            (Min, Kind::Float),
            (Max, Kind::Float),
            (Min, Kind::Int),
            (Max, Kind::Int),
            (
                Spread {
                    root: false,
                    population: false,
                },
                Kind::Float,
            ),
            (
                Spread {
                    root: true,
                    population: true,
                },
                Kind::Float,
            ),
        ];
        let mut random = XorShift(0xA076_1D64_78BD_642F);
        for (function, kind) in cases {
            for leaves in [true, false] {
                for _ in 0..40 {
                    let width = 1 + random.below(12) as usize;
                    let slots: Vec<Slot> =
                        (0..150).map(|_| random_slot(&mut random, kind)).collect();
                    let mut accumulator = Accumulator::new(function);
                    for (i, &slot) in slots.iter().enumerate() {
                        add(function, leaves, &mut accumulator, slot, i as u64);
                        let first = if leaves && i >= width {
                            let gone = i - width;
                            remove(&mut accumulator, slots[gone], gone as u64);
                            gone + 1
                        } else {
                            0
                        };
                        let column = output_column(function, kind, std::iter::once(&accumulator));
                        let (int, float) = value(&column, kind == Kind::Float);
                        let (expected_int, expected_float) = reference(function, &slots[first..=i]);
                        // A spread after removals carries rounding of the data's own scale.
                        let close = match (function, float, expected_float) {
                            (Spread { .. }, Some(a), Some(e)) if a.is_finite() && e.is_finite() => {
                                (a - e).abs() <= 1e-6 * 1e5
                            }
                            _ => same(float, expected_float),
                        };
                        assert!(
                            int == expected_int && close,
                            "{function:?} {kind:?} width {width} leaves {leaves} at {i}: \
                             {int:?} {float:?} vs {expected_int:?} {expected_float:?}"
                        );
                    }
                }
            }
        }
    }
}
