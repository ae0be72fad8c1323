//! Timestamps as the joins and sweeps compare them.

use arrow::array::{ArrayRef, AsArray, TimestampMicrosecondArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, TimeUnit};
use arrow::error::ArrowError;

/// A timestamp column in microseconds since the epoch (UTC for zoneless timestamps), or
/// `None` when the column holds no timestamps.
pub(crate) fn micros(array: &ArrayRef) -> Option<Result<TimestampMicrosecondArray, ArrowError>> {
    let DataType::Timestamp(_, zone) = array.data_type() else {
        return None;
    };
    let target = DataType::Timestamp(TimeUnit::Microsecond, zone.clone());
    Some(cast(array, &target).map(|converted| converted.as_primitive().clone()))
}
