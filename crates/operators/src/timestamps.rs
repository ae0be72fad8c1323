//! Timestamps as the joins, windows and sweeps compare them: as whole ticks of a unit, so
//! that no comparison loses a column's precision.

use std::time::Duration;

use arrow::array::{ArrayRef, AsArray, Int64Array};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int64Type, TimeUnit};
use arrow::error::ArrowError;
use chrono::{DateTime, Utc};
use datafusion::common::ScalarValue;

/// Nanoseconds in one tick of `unit`.
pub(crate) fn nanos_per_tick(unit: TimeUnit) -> i64 {
    match unit {
        TimeUnit::Second => 1_000_000_000,
        TimeUnit::Millisecond => 1_000_000,
        TimeUnit::Microsecond => 1_000,
        TimeUnit::Nanosecond => 1,
    }
}

/// The finer of two units.
pub(crate) fn finer(a: TimeUnit, b: TimeUnit) -> TimeUnit {
    if nanos_per_tick(a) <= nanos_per_tick(b) {
        a
    } else {
        b
    }
}

/// A timestamp column's values in its own unit since the epoch (UTC for zoneless
/// timestamps, as fengine reads them), or `None` when the column holds no timestamps.
pub(crate) fn ticks(array: &ArrayRef) -> Option<Int64Array> {
    let DataType::Timestamp(_, _) = array.data_type() else {
        return None;
    };
    // A timestamp cast to Int64 keeps its values.
    let values = cast(array, &DataType::Int64).ok()?;
    Some(values.as_primitive::<Int64Type>().clone())
}

/// A timestamp column's values in ticks of `unit` (as fine as the column's, or finer),
/// exactly; an error naming `column` when a value does not fit 64 bits of that unit.
/// `None` when the column holds no timestamps.
pub(crate) fn ticks_in(
    array: &ArrayRef,
    unit: TimeUnit,
    column: &str,
) -> Option<Result<Int64Array, ArrowError>> {
    let DataType::Timestamp(own, _) = array.data_type() else {
        return None;
    };
    let own = *own;
    let values = ticks(array)?;
    let factor = nanos_per_tick(own) / nanos_per_tick(unit);
    if factor <= 1 {
        return Some(Ok(values));
    }
    Some(values.try_unary::<_, Int64Type, _>(|v| {
        v.checked_mul(factor).ok_or_else(|| {
            ArrowError::ComputeError(format!(
                "column '{column}': timestamp {v} ({own:?}s) is beyond the range of {unit:?} \
                 timestamps, the unit of a time it is compared with"
            ))
        })
    }))
}

/// `time` as a scalar of the timestamp type `data_type` (its unit and zone), exactly;
/// `None` when `data_type` is not a timestamp or cannot hold `time` exactly.
pub fn scalar(time: DateTime<Utc>, data_type: &DataType) -> Option<ScalarValue> {
    let DataType::Timestamp(unit, zone) = data_type else {
        return None;
    };
    let nanos =
        i128::from(time.timestamp()) * 1_000_000_000 + i128::from(time.timestamp_subsec_nanos());
    let tick = i128::from(nanos_per_tick(*unit));
    if nanos % tick != 0 {
        return None;
    }
    let ticks = Some(i64::try_from(nanos / tick).ok()?);
    let zone = zone.clone();
    Some(match unit {
        TimeUnit::Second => ScalarValue::TimestampSecond(ticks, zone),
        TimeUnit::Millisecond => ScalarValue::TimestampMillisecond(ticks, zone),
        TimeUnit::Microsecond => ScalarValue::TimestampMicrosecond(ticks, zone),
        TimeUnit::Nanosecond => ScalarValue::TimestampNanosecond(ticks, zone),
    })
}

/// Why a text is not a fixed length of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotAFixedLength {
    /// Not an interval SQL reads, or not a positive one.
    Invalid,
    /// It counts months, whose length varies.
    Months,
}

impl NotAFixedLength {
    /// Why `text`, given as `what` (`ONLINE ttl`), is refused, and what to give instead.
    pub fn describe(self, what: &str, text: &str) -> String {
        match self {
            NotAFixedLength::Invalid => {
                format!("{what} '{text}' is not a length of time such as '30 days' or '12 hours'")
            }
            NotAFixedLength::Months => {
                format!("{what} '{text}' uses months, whose length varies; give days instead")
            }
        }
    }
}

/// `'30 days'`, `'12 hours'`, `'1 day 6 hours'`: an interval as SQL writes it, of a fixed,
/// positive length (months vary in length, so they are refused).
pub fn fixed_length(text: &str) -> Result<Duration, NotAFixedLength> {
    let interval = arrow::compute::kernels::cast_utils::parse_interval_month_day_nano(text)
        .map_err(|_| NotAFixedLength::Invalid)?;
    if interval.months != 0 {
        return Err(NotAFixedLength::Months);
    }
    let nanos = i128::from(interval.days) * 86_400_000_000_000 + i128::from(interval.nanoseconds);
    let nanos = u64::try_from(nanos)
        .ok()
        .filter(|&n| n > 0)
        .ok_or(NotAFixedLength::Invalid)?;
    Ok(Duration::from_nanos(nanos))
}
