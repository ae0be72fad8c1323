//! Aggregates over a sliding window of rows: rows enter at one end and leave at the other
//! in the order they entered, each costing one update, whatever the window's size. Sums are
//! compensated, min and max keep a monotonic deque, distinct counts keep a count per value,
//! and spreads refresh from the window's values when removals have cancelled their digits.

use std::collections::VecDeque;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Decimal128Array, Float64Array, Int64Array, UInt64Array,
};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Decimal128Type, Float64Type, Int64Type, UInt64Type};
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
    /// NaN only as the positive quiet NaN, so that every NaN orders above every number.
    Float(f64),
    Int(i64),
    /// UInt64 values, which do not all fit an Int64.
    UInt(u64),
    Id(u32),
}

/// How an aggregate reads its argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// count(*), count(x): only whether a value is there.
    Presence,
    Float,
    /// Whole numbers (and timestamps) of any width, signed or not; sums exact in 128 bits.
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

/// Count, mean and sum of squared deviations of the values in (Welford's updates, both
/// ways), for variance and standard deviation; non-finite values are counted apart, as for
/// sums.
///
/// Removing a value subtracts its share from the sum of squares, so a large value leaving
/// cancels digits of what remains (after 1e20 leaves, [1, 1] would keep a spread of 1e12).
/// `rounded` bounds the magnitudes the updates rounded since the spread was last computed
/// afresh; once their rounding (EPSILON times it) could reach [`SPREAD_TOLERANCE`] of the
/// spread, the caller computes it afresh from the window's values ([`Spread::refresh`]):
/// the result stays within that tolerance of the exact spread, whatever left the window.
/// Values are kept scaled by `2^-scale`, chosen at each refresh from the largest value in,
/// so that squares neither overflow nor underflow (1e-300 squared is 0): a value that comes
/// in far from that scale asks for a refresh (`rescale`).
#[derive(Debug, Default)]
pub(crate) struct Spread {
    n: i64,
    mean: f64,
    m2: f64,
    scale: i32,
    rounded: f64,
    rescale: bool,
    non_finite: i64,
}

/// Scaled values whose squares stay far from both ends of the range of doubles.
const COMFORTABLE: std::ops::RangeInclusive<f64> = 1e-120..=1e120;

/// The relative error a sliding spread may carry before it is computed afresh.
const SPREAD_TOLERANCE: f64 = 1e-11;

impl Spread {
    fn add(&mut self, value: f64) {
        if !value.is_finite() {
            self.non_finite += 1;
            return;
        }
        let scaled = value * power_of_two(-self.scale);
        if value != 0.0 && !COMFORTABLE.contains(&scaled.abs()) {
            self.rescale = true;
        }
        let value = scaled;
        self.n += 1;
        // One value has no spread, and its mean is itself, whatever came before.
        if self.n == 1 {
            (self.mean, self.m2) = (value, 0.0);
            return;
        }
        let delta = value - self.mean;
        self.mean += delta / self.n as f64;
        let share = delta * (value - self.mean);
        self.m2 += share;
        self.rounded += share.abs() + self.m2;
    }

    fn remove(&mut self, value: f64) {
        if !value.is_finite() {
            self.non_finite -= 1;
            return;
        }
        let value = value * power_of_two(-self.scale);
        self.n -= 1;
        if self.n == 0 {
            (self.mean, self.m2, self.rounded) = (0.0, 0.0, 0.0);
            return;
        }
        let delta = value - self.mean;
        self.mean -= delta / self.n as f64;
        let share = delta * (value - self.mean);
        self.rounded += share.abs() + self.m2.abs();
        // One value left has no spread, whatever rounding the removals left behind; its
        // mean still carries that rounding (`rounded` keeps it) into the next values.
        self.m2 = if self.n == 1 { 0.0 } else { self.m2 - share };
    }

    /// Whether the updates may have rounded away more than the tolerance of the spread, or
    /// overflowed.
    pub(crate) fn needs_refresh(&self) -> bool {
        // Written so that a NaN anywhere asks for a refresh.
        let trusted = self.m2.is_finite()
            && self.m2 >= 0.0
            && self.rounded * f64::EPSILON <= SPREAD_TOLERANCE * self.m2;
        self.n >= 2 && (self.rescale || !trusted)
    }

    /// Computes the spread afresh from the window's values (non-finite ones are counted
    /// apart already): two passes with compensated sums, over the values scaled so that
    /// the largest is below 1.
    pub(crate) fn refresh(&mut self, values: impl Iterator<Item = f64> + Clone) {
        let finite = values.filter(|v| v.is_finite());
        let largest = finite.clone().fold(0.0f64, |m, v| m.max(v.abs()));
        self.scale = if largest == 0.0 { 0 } else { exponent(largest) };
        let down = power_of_two(-self.scale);
        let n = self.n as f64;
        let mut sum = Compensated::default();
        finite.clone().for_each(|v| sum.add(v * down));
        let mean = sum.total() / n;
        let (mut squares, mut deviations) = (Compensated::default(), Compensated::default());
        for v in finite {
            let deviation = v * down - mean;
            squares.add(deviation * deviation);
            deviations.add(deviation);
        }
        let deviation = deviations.total();
        self.mean = mean;
        self.m2 = (squares.total() - deviation * deviation / n).max(0.0);
        self.rounded = self.m2;
        self.rescale = false;
    }

    fn value(&self, root: bool, population: bool) -> Option<f64> {
        let n = self.n + self.non_finite;
        let divisor = if population { n } else { n - 1 };
        if divisor < 1 {
            return None;
        }
        // A NaN or an infinity makes the deviations from the mean NaN, as in PostgreSQL.
        if self.non_finite > 0 {
            return Some(f64::NAN);
        }
        let variance = self.m2 / divisor as f64;
        let up = power_of_two(self.scale);
        Some(if root {
            variance.sqrt() * up
        } else {
            variance * up * up
        })
    }
}

/// `2^e` for `e` in [-1022, 1023].
fn power_of_two(e: i32) -> f64 {
    f64::from_bits(((1023 + i64::from(e.clamp(-1022, 1023))) as u64) << 52)
}

/// The `e` with `2^(e-1) <= value < 2^e` for a positive normal `value`; -1021 for
/// subnormals (which then scale up exactly).
fn exponent(value: f64) -> i32 {
    let biased = ((value.to_bits() >> 52) & 0x7ff) as i32;
    (biased - 1022).max(-1021)
}

/// A sum of doubles with Neumaier's compensation.
#[derive(Debug, Default, Clone, Copy)]
struct Compensated {
    sum: f64,
    compensation: f64,
}

impl Compensated {
    fn add(&mut self, value: f64) {
        let total = self.sum + value;
        self.compensation += if self.sum.abs() >= value.abs() {
            (self.sum - total) + value
        } else {
            (value - total) + self.sum
        };
        self.sum = total;
    }

    fn total(self) -> f64 {
        self.sum + self.compensation
    }
}

/// Doubles of this magnitude and above are summed apart, scaled by [`LARGE_SCALE`].
const LARGE: f64 = 1.3407807929942597e154; // 2^512
/// 2^-512: a power of two, so scaling is exact.
const LARGE_SCALE: f64 = 7.458340731200207e-155;

/// A sum of the values in the window, and their count (for avg).
#[derive(Debug, Default)]
pub(crate) struct Sum {
    /// Doubles below [`LARGE`], summed with Neumaier's compensation, so that adding and
    /// removing rows keeps the result within rounding of a fresh sum.
    small: Compensated,
    /// Doubles of [`LARGE`] and above, scaled down, so that no partial sum of finite values
    /// overflows (once summed, an infinity could never be taken out again): the sum is
    /// infinite only when it is beyond the range of doubles. And how many are in, so that
    /// this part restarts from an exact zero when the last one leaves.
    large: Compensated,
    large_n: i64,
    /// NaN, +inf and -inf are counted, not summed, for the same reason.
    non_finite: [i64; 3],
    /// Whole numbers summed in 128 bits: exact for unscaled decimals, whose sums have 10
    /// more digits than their values, and for 64-bit integers; output columns of integers
    /// take the low 64 bits, wrapping as DataFusion's sums of integers do.
    int: i128,
    n: i64,
}

impl Sum {
    /// Adds `value` (`sign` 1) or takes it out (`sign` -1).
    fn update(&mut self, value: Slot, sign: i64) {
        self.n += sign;
        match value {
            Slot::Float(v) if !v.is_finite() => self.non_finite[non_finite_index(v)] += sign,
            Slot::Float(v) if v.abs() >= LARGE => {
                self.large_n += sign;
                self.large.add(v * LARGE_SCALE * sign as f64);
                if self.large_n == 0 {
                    self.large = Compensated::default();
                }
            }
            Slot::Float(v) => self.small.add(v * sign as f64),
            Slot::Int(v) => self.int += i128::from(v) * i128::from(sign),
            Slot::UInt(v) => self.int += i128::from(v) * i128::from(sign),
            _ => {}
        }
        // An empty window restarts from an exact zero, so rounding never carries over from
        // one busy period to the next.
        if self.n == 0 {
            (self.small, self.large) = (Compensated::default(), Compensated::default());
        }
    }

    /// The sum of the doubles in, or `None` when the window holds no value.
    fn float(&self) -> Option<f64> {
        if self.n == 0 {
            return None;
        }
        let [nan, positive, negative] = self.non_finite.map(|n| n > 0);
        Some(match (nan, positive, negative) {
            (true, _, _) | (_, true, true) => f64::NAN,
            (_, true, false) => f64::INFINITY,
            (_, false, true) => f64::NEG_INFINITY,
            _ if self.large_n == 0 => self.small.total(),
            _ => self.large.total() * (1.0 / LARGE_SCALE) + self.small.total(),
        })
    }

    /// The exact sum of the whole numbers in, or `None` when the window holds no value.
    fn whole(&self) -> Option<i128> {
        (self.n > 0).then_some(self.int)
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

    /// Computes a spread afresh from the values in the window (`values`, absent ones
    /// included) when its sliding updates may have lost its precision; a no-op for other
    /// aggregates.
    pub(crate) fn refresh_if_needed<I>(&mut self, values: impl FnOnce() -> I)
    where
        I: Iterator<Item = Slot> + Clone,
    {
        if let Accumulator::Spread(spread) = self
            && spread.needs_refresh()
        {
            spread.refresh(values().filter_map(|slot| match slot {
                Slot::Float(v) => Some(v),
                _ => None,
            }));
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

/// Whether `a` is strictly better than `b` for max (or min); doubles by total order, with
/// NaN (made positive by [`slots`]) above every number, as DuckDB and PostgreSQL order it.
fn better(a: Slot, b: Slot, is_max: bool) -> bool {
    let ordering = match (a, b) {
        (Slot::Float(a), Slot::Float(b)) => a.total_cmp(&b),
        (Slot::Int(a), Slot::Int(b)) => a.cmp(&b),
        (Slot::UInt(a), Slot::UInt(b)) => a.cmp(&b),
        _ => std::cmp::Ordering::Equal,
    };
    if is_max {
        ordering.is_gt()
    } else {
        ordering.is_lt()
    }
}

/// An aggregate's current value: a double, or a whole number (integers, unscaled decimals).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Value {
    Whole(Option<i128>),
    Float(Option<f64>),
}

impl Value {
    /// A row's value of this kind; `None` or absent: null.
    pub(crate) fn of(slot: Option<Slot>, kind: Kind) -> Value {
        match (slot, kind) {
            (Some(Slot::Float(v)), _) => Value::Float(Some(v)),
            (Some(Slot::Int(v)), _) => Value::Whole(Some(i128::from(v))),
            (Some(Slot::UInt(v)), _) => Value::Whole(Some(i128::from(v))),
            (_, Kind::Float) => Value::Float(None),
            _ => Value::Whole(None),
        }
    }
}

impl Accumulator {
    /// The exact sum of the unscaled decimals in, and their count; `None` when none.
    pub(crate) fn decimal_sum(&self) -> Option<(i128, i64)> {
        match self {
            Accumulator::Sum(sum) => sum.whole().map(|total| (total, sum.n)),
            _ => None,
        }
    }

    /// The aggregate's value over the rows in.
    pub(crate) fn value(&self, function: AggregateFunction, kind: Kind) -> Value {
        match (function, self) {
            (AggregateFunction::Count, Accumulator::Count(n)) => Value::Whole(Some((*n).into())),
            (AggregateFunction::CountDistinct, Accumulator::Distinct(counts)) => {
                Value::Whole(Some(counts.len() as i128))
            }
            (AggregateFunction::Avg, Accumulator::Sum(sum)) => {
                Value::Float(sum.float().map(|total| total / sum.n as f64))
            }
            (_, Accumulator::Sum(sum)) if kind == Kind::Float => Value::Float(sum.float()),
            (_, Accumulator::Sum(sum)) => Value::Whole(sum.whole()),
            (AggregateFunction::Spread { root, population }, Accumulator::Spread(spread)) => {
                Value::Float(spread.value(root, population))
            }
            (_, Accumulator::Extreme(extreme)) => {
                let best = extreme.deque.front().map(|&(_, slot)| slot);
                Value::of(best, kind)
            }
            _ => Value::Whole(None),
        }
    }
}

/// A column of `data_type` holding `values`: decimals from their unscaled values, UInt64
/// and Int64 from the low 64 bits of whole numbers (a sum wraps as DataFusion's do), other
/// types cast from Int64 or Float64.
pub(crate) fn column(
    values: impl Iterator<Item = Value>,
    data_type: &DataType,
) -> Result<ArrayRef, ArrowError> {
    let whole = |value: Value| match value {
        Value::Whole(v) => v,
        Value::Float(_) => None,
    };
    Ok(match data_type {
        DataType::Decimal128(precision, scale) => Arc::new(
            Decimal128Array::from_iter(values.map(whole))
                .with_precision_and_scale(*precision, *scale)?,
        ),
        DataType::UInt64 => Arc::new(UInt64Array::from_iter(
            values.map(|v| whole(v).map(|v| v as u64)),
        )),
        floating if floating.is_floating() => {
            let doubles = Float64Array::from_iter(values.map(|value| match value {
                Value::Float(v) => v,
                Value::Whole(v) => v.map(|v| v as f64),
            }));
            cast(&doubles, floating)?
        }
        other => {
            let integers = Int64Array::from_iter(values.map(|v| whole(v).map(|v| v as i64)));
            cast(&integers, other)?
        }
    })
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
        // Arithmetic makes NaNs with the sign bit set (0.0 / 0.0), which the total order
        // puts below every number: one NaN for all of them.
        Kind::Float => cast(values, &DataType::Float64)?
            .as_primitive::<Float64Type>()
            .iter()
            .map(|v| match v {
                None => Slot::Absent,
                Some(v) if v.is_nan() => Slot::Float(f64::NAN),
                Some(v) => Slot::Float(v),
            })
            .collect(),
        Kind::Int if values.data_type() == &DataType::UInt64 => values
            .as_primitive::<UInt64Type>()
            .iter()
            .map(|v| v.map_or(Slot::Absent, Slot::UInt))
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
    use crate::test_support::exact_spread;
    use fengine_testing::XorShift;

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

    /// The aggregate of `window` computed from scratch, as a whole number or a double.
    fn reference(function: AggregateFunction, window: &[Slot]) -> (Option<i128>, Option<f64>) {
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
        let ints: Vec<i128> = present
            .iter()
            .filter_map(|s| match s {
                Slot::Int(v) => Some(i128::from(*v)),
                _ => None,
            })
            .collect();
        let float_sum = || -> f64 { floats.iter().sum() };
        match function {
            AggregateFunction::Count => (Some(present.len() as i128), None),
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
                (Some(ids.len() as i128), None)
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
                    exact_spread(&floats, root, population)
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

    fn as_pair(value: Value) -> (Option<i128>, Option<f64>) {
        match value {
            Value::Whole(v) => (v, None),
            Value::Float(v) => (None, v),
        }
    }

    fn same(a: Option<f64>, b: Option<f64>) -> bool {
        match (a, b) {
            (Some(a), Some(b)) if a.is_nan() || b.is_nan() => a.is_nan() && b.is_nan(),
            (Some(a), Some(b)) => a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0),
            (a, b) => a == b,
        }
    }

    /// Slides `function` over `slots` in windows of `width` rows and compares every window
    /// with `reference`; spreads within `relative` of the exact value.
    fn check_windows(function: AggregateFunction, kind: Kind, slots: &[Slot], width: usize) {
        for leaves in [true, false] {
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
                let window = &slots[first..=i];
                accumulator.refresh_if_needed(|| window.iter().copied());
                let (int, float) = as_pair(accumulator.value(function, kind));
                let (expected_int, expected_float) = reference(function, window);
                let close = match (function, float, expected_float) {
                    (AggregateFunction::Spread { .. }, Some(a), Some(e))
                        if a.is_finite() && e.is_finite() =>
                    {
                        (a - e).abs() <= 1e-9 * e.abs() || a == e
                    }
                    (AggregateFunction::Spread { .. }, a, e) => a == e || same(a, e),
                    _ => same(float, expected_float),
                };
                assert!(
                    int == expected_int && close,
                    "{function:?} {kind:?} width {width} leaves {leaves} at {i} over {window:?} of {:?}: \
                     {int:?} {float:?} vs {expected_int:?} {expected_float:?}",
                    &slots[..=i]
                );
            }
        }
    }

    const SPREADS: [AggregateFunction; 4] = [
        AggregateFunction::Spread {
            root: false,
            population: false,
        },
        AggregateFunction::Spread {
            root: true,
            population: false,
        },
        AggregateFunction::Spread {
            root: false,
            population: true,
        },
        AggregateFunction::Spread {
            root: true,
            population: true,
        },
    ];

    #[test]
    fn whole_number_sums_are_exact_in_128_bits() {
        let mut sum = Sum::default();
        for value in [i64::MAX, i64::MAX, i64::MAX, -7, i64::MIN] {
            sum.update(Slot::Int(value), 1);
        }
        sum.update(Slot::Int(i64::MAX), -1);
        let exact = 2 * i128::from(i64::MAX) - 7 + i128::from(i64::MIN);
        assert_eq!(sum.whole(), Some(exact));
        for value in [i64::MAX, -7, i64::MIN, i64::MAX] {
            sum.update(Slot::Int(value), -1);
        }
        assert_eq!((sum.int, sum.whole()), (0, None));
    }

    #[test]
    fn uint64_values_above_i64_max_keep_their_value() {
        let values = [(1u64 << 63) + 5, 7, u64::MAX].map(Slot::UInt);
        let (mut max, mut sum) = (
            Accumulator::new(AggregateFunction::Max),
            Accumulator::new(AggregateFunction::Sum),
        );
        let mut maxima = Vec::new();
        for (i, &slot) in values.iter().enumerate() {
            add(AggregateFunction::Max, true, &mut max, slot, i as u64);
            add(AggregateFunction::Sum, true, &mut sum, slot, i as u64);
            maxima.push(max.value(AggregateFunction::Max, Kind::Int));
        }
        let maxima = column(maxima.into_iter(), &DataType::UInt64).unwrap();
        assert_eq!(
            maxima.as_primitive::<UInt64Type>().values().to_vec(),
            [(1 << 63) + 5, (1 << 63) + 5, u64::MAX]
        );
        // DataFusion's sum of UInt64 wraps at 64 bits: (2^63 + 5 + 7 + 2^64 - 1) mod 2^64.
        let total = sum.value(AggregateFunction::Sum, Kind::Int);
        let total = column(std::iter::once(total), &DataType::UInt64).unwrap();
        assert_eq!(total.as_primitive::<UInt64Type>().value(0), (1 << 63) + 11);
    }

    #[test]
    fn sums_of_finite_doubles_overflow_to_infinity_only_when_the_sum_does() {
        let slots = [1e308, 1e308, -1e308, f64::MAX, -f64::MAX, 3.0].map(Slot::Float);
        let mut sum = Sum::default();
        sum.update(slots[0], 1);
        sum.update(slots[1], 1);
        assert_eq!(sum.float(), Some(f64::INFINITY));
        sum.update(slots[2], 1);
        assert_eq!(sum.float(), Some(1e308));
        sum.update(slots[0], -1);
        assert_eq!(sum.float(), Some(0.0));
        for slot in &slots[3..] {
            sum.update(*slot, 1);
        }
        assert_eq!(sum.float(), Some(3.0));
        let mut negative = Sum::default();
        negative.update(Slot::Float(-f64::MAX), 1);
        negative.update(Slot::Float(-1e308), 1);
        assert_eq!(negative.float(), Some(f64::NEG_INFINITY));
    }

    #[test]
    fn every_nan_orders_above_every_number() {
        let negative_nan = -f64::NAN;
        assert!(negative_nan.is_sign_negative());
        let values: ArrayRef = Arc::new(Float64Array::from(vec![1.0, negative_nan, -5.0]));
        let slots = slots(Kind::Float, &values).unwrap();
        for (function, expected) in [
            (AggregateFunction::Min, -5.0),
            (AggregateFunction::Max, f64::NAN),
        ] {
            let mut accumulator = Accumulator::new(function);
            for (i, &slot) in slots.iter().enumerate() {
                add(function, true, &mut accumulator, slot, i as u64);
            }
            let (_, value) = as_pair(accumulator.value(function, Kind::Float));
            assert!(same(value, Some(expected)), "{function:?}: {value:?}");
        }
    }

    #[test]
    fn spreads_stay_exact_when_large_values_leave() {
        // (values, window width, expected sample stddev of the last window)
        let cases: [(&[f64], usize, f64); 4] = [
            (&[1e9, 1.0, 2.0, 3.0], 3, 1.0),
            (&[1e20, 1.0, 1.0], 2, 0.0),
            (&[1e300, -1e300, 4.0, 6.0], 2, std::f64::consts::SQRT_2),
            (
                &[1e-300, 3e-300, 1e150, 2e-300, 4e-300],
                2,
                2f64.sqrt() * 1e-300,
            ),
        ];
        let stddev = AggregateFunction::Spread {
            root: true,
            population: false,
        };
        for (values, width, expected) in cases {
            let slots: Vec<Slot> = values.iter().copied().map(Slot::Float).collect();
            check_windows(stddev, Kind::Float, &slots, width);
            let mut accumulator = Accumulator::new(stddev);
            for (i, &slot) in slots.iter().enumerate() {
                add(stddev, true, &mut accumulator, slot, i as u64);
                if i >= width {
                    remove(&mut accumulator, slots[i - width], (i - width) as u64);
                }
            }
            let window = &slots[slots.len() - width..];
            accumulator.refresh_if_needed(|| window.iter().copied());
            let (_, value) = as_pair(accumulator.value(stddev, Kind::Float));
            let value = value.unwrap();
            assert!(
                (value - expected).abs() <= 1e-14 * expected,
                "{values:?}: {value} vs {expected}"
            );
        }
    }

    #[test]
    fn spreads_of_adversarial_magnitudes_equal_exact_arithmetic() {
        let mut random = XorShift(0x9E37_79B9_7F4A_7C15);
        for _ in 0..40 {
            let base = random.below(601) as i32 - 300;
            let slots: Vec<Slot> = (0..120)
                .map(|_| {
                    let magnitude = match random.below(10) {
                        // Bursts far above and below the data's scale.
                        0 => base + random.below(300) as i32,
                        1 => base - random.below(300) as i32,
                        _ => base,
                    }
                    .clamp(-300, 300);
                    let mantissa = (random.below(2_000_001) as f64 - 1e6) / 1e6;
                    match random.below(12) {
                        0 => Slot::Absent,
                        _ => Slot::Float(mantissa * 10f64.powi(magnitude)),
                    }
                })
                .collect();
            let width = 1 + random.below(10) as usize;
            for function in SPREADS {
                check_windows(function, Kind::Float, &slots, width);
            }
        }
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
        ]
        .into_iter()
        .chain(SPREADS.map(|spread| (spread, Kind::Float)));
        let mut random = XorShift(0xA076_1D64_78BD_642F);
        for (function, kind) in cases {
            for _ in 0..40 {
                let width = 1 + random.below(12) as usize;
                let slots: Vec<Slot> = (0..150).map(|_| random_slot(&mut random, kind)).collect();
                check_windows(function, kind, &slots, width);
            }
        }
    }
}
