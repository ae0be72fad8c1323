//! Arrow rows as DynamoDB items, and items back as JSON rows.
//!
//! Numbers (integers, floats, decimals) are `N`; strings and dates (`YYYY-MM-DD`) `S`;
//! binary `B`; booleans `BOOL`; lists `L`; structs and maps `M`; timestamps `N`, seconds
//! since the epoch with up to six decimals. Nulls are omitted. NaN and infinities are `S`,
//! `"NaN"`, `"Infinity"`, `"-Infinity"`, as every online store serves them
//! (`fengine_online::non_finite_text`); nested ones are refused.

use std::collections::HashMap;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{
    DataType, Float64Type, Int64Type, TimeUnit, TimestampMicrosecondType, UInt64Type,
};
use arrow::util::display::array_value_to_string;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_types::Blob;
use fengine_online::{Error, Result, check_nested_finite, key_values, non_finite_text};

pub(crate) type Item = HashMap<String, AttributeValue>;

/// The hash key of tables whose KEY has several columns: the values joined by `#`, with `#`
/// and `\` escaped by `\` (`7#grocery`).
pub(crate) const COMPOSITE_KEY: &str = "fengine_key";
/// The attribute DynamoDB's TTL deletes by: event time + ttl, in epoch seconds.
pub(crate) const EXPIRES_AT: &str = "fengine_expires_at";
/// The attribute naming the snapshot (by run id) that wrote an item: a load removes the
/// items that another snapshot wrote.
pub(crate) const LOAD_ATTRIBUTE: &str = "fengine_load";
/// DynamoDB's limit on the size of one item.
const MAX_ITEM_BYTES: usize = 400 * 1024;

/// The name of the hash key attribute for these key columns.
pub(crate) fn hash_key_attribute(key_columns: &[String]) -> &str {
    match key_columns {
        [single] => single,
        _ => COMPOSITE_KEY,
    }
}

/// One key's text values joined for a composite hash key.
pub(crate) fn composite_key(values: &[String]) -> String {
    values
        .iter()
        .map(|v| v.replace('\\', "\\\\").replace('#', "\\#"))
        .collect::<Vec<_>>()
        .join("#")
}

/// The batch's rows as items, each with its hash key and, with a ttl, its expiry.
pub(crate) fn batch_items(
    batch: &RecordBatch,
    key_columns: &[String],
    event_time_column: &str,
    ttl_seconds: Option<u64>,
    run_id: &str,
) -> Result<Vec<Item>> {
    check_nested_finite(batch)?;
    let mut items: Vec<Item> =
        vec![HashMap::with_capacity(batch.num_columns() + 2); batch.num_rows()];
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        for (item, value) in items
            .iter_mut()
            .zip(attribute_values(column, field.name())?)
        {
            if let Some(value) = value {
                item.insert(field.name().clone(), value);
            }
        }
    }
    let keys = key_values(batch, key_columns)?;
    if key_columns.len() > 1 {
        let texts: Vec<ArrayRef> = keys
            .iter()
            .map(|k| cast(k, &DataType::Utf8))
            .collect::<Result<_, _>>()?;
        for (row, item) in items.iter_mut().enumerate() {
            let values: Vec<String> = texts
                .iter()
                .map(|k| k.as_string::<i32>().value(row).to_string())
                .collect();
            item.insert(
                COMPOSITE_KEY.to_string(),
                AttributeValue::S(composite_key(&values)),
            );
        }
    }
    for item in &mut items {
        item.insert(
            LOAD_ATTRIBUTE.to_string(),
            AttributeValue::S(run_id.to_string()),
        );
    }
    if let Some(ttl) = ttl_seconds {
        let times = event_time_seconds(batch, event_time_column)?;
        for (item, seconds) in items.iter_mut().zip(times) {
            item.insert(
                EXPIRES_AT.to_string(),
                AttributeValue::N((seconds + ttl as i64).to_string()),
            );
        }
    }
    for (row, item) in items.iter().enumerate() {
        let size = item_size(item);
        if size > MAX_ITEM_BYTES {
            let key: Vec<String> = keys
                .iter()
                .map(|k| array_value_to_string(k, row).unwrap_or_default())
                .collect();
            return Err(Error::Invalid(format!(
                "the row of key ({}) takes {size} bytes as a DynamoDB item, over DynamoDB's limit of \
                 400 KB: drop or shorten columns of this group",
                key.join(", ")
            )));
        }
    }
    Ok(items)
}

/// Room left in every bound for the attributes fengine adds to an item (the composite key,
/// the expiry, the snapshot's run id).
const ADDED_ATTRIBUTES_BYTES: usize = 256;
/// A bound on the size of any number as an item stores it.
const NUMBER_BYTES: usize = 40;
/// DynamoDB's numbers: at most 38 digits, magnitudes from 1e-130 to below 1e126.
const NUMBER_MAGNITUDES: std::ops::Range<f64> = 1e-130..1e126;

/// Refuses rows DynamoDB cannot hold, before any is sent: columns of types it has no
/// attribute for, doubles beyond its numbers' range, rows whose item would pass 400 KB.
/// Vectorised over the batch, so that every row of a snapshot can be checked as it is
/// written; sizes are upper bounds (numbers count as their longest), exact for strings.
pub(crate) fn check_items(batch: &RecordBatch, key_columns: &[String]) -> Result<()> {
    let key_of = |row: usize| -> String {
        key_columns
            .iter()
            .filter_map(|k| batch.column_by_name(k))
            .map(|k| array_value_to_string(k, row).unwrap_or_default())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut sizes = vec![ADDED_ATTRIBUTES_BYTES; batch.num_rows()];
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        attribute_values(&column.slice(0, 0), field.name())?;
        if matches!(
            column.data_type(),
            DataType::Float16 | DataType::Float32 | DataType::Float64
        ) {
            let doubles = cast(column, &DataType::Float64)?;
            let doubles = doubles.as_primitive::<Float64Type>();
            if let Some((row, value)) = doubles.iter().enumerate().find_map(|(row, v)| {
                v.filter(|v| v.is_finite() && *v != 0.0 && !NUMBER_MAGNITUDES.contains(&v.abs()))
                    .map(|v| (row, v))
            }) {
                return Err(Error::Invalid(format!(
                    "column '{}' holds {value:e} (key {}), beyond the range of DynamoDB's numbers \
                     (magnitudes from 1e-130 to below 1e126): scale or CAST it",
                    field.name(),
                    key_of(row)
                )));
            }
        }
        for (row, size) in value_size_bounds(column).into_iter().enumerate() {
            if column.is_valid(row) {
                sizes[row] += field.name().len() + size;
            }
        }
    }
    match sizes.iter().position(|&size| size > MAX_ITEM_BYTES) {
        Some(row) => Err(Error::Invalid(format!(
            "the row of key ({}) takes up to {} bytes as a DynamoDB item, over DynamoDB's limit \
             of 400 KB: drop or shorten columns of this group",
            key_of(row),
            sizes[row]
        ))),
        None => Ok(()),
    }
}

/// Each row's bound on the size of `array`'s value as an attribute (0 for nulls).
fn value_size_bounds(array: &ArrayRef) -> Vec<usize> {
    let rows = array.len();
    let lengths = |offsets: &[i64]| -> Vec<usize> {
        offsets.windows(2).map(|w| (w[1] - w[0]) as usize).collect()
    };
    match array.data_type() {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Dictionary(..) => {
            match cast(array, &DataType::LargeUtf8) {
                Ok(texts) => {
                    let offsets: Vec<i64> = texts.as_string::<i64>().value_offsets().to_vec();
                    lengths(&offsets)
                }
                Err(_) => vec![0; rows],
            }
        }
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => {
            match cast(array, &DataType::LargeBinary) {
                Ok(bytes) => {
                    let offsets: Vec<i64> = bytes.as_binary::<i64>().value_offsets().to_vec();
                    lengths(&offsets)
                }
                Err(_) => vec![0; rows],
            }
        }
        DataType::FixedSizeBinary(width) => vec![*width as usize; rows],
        DataType::Boolean => vec![1; rows],
        DataType::Date32 | DataType::Date64 => vec![10; rows],
        DataType::List(field)
        | DataType::LargeList(field)
        | DataType::FixedSizeList(field, _)
        | DataType::ListView(field) => match cast(array, &DataType::LargeList(field.clone())) {
            Ok(lists) => {
                let lists = lists.as_list::<i64>();
                let elements = value_size_bounds(lists.values());
                lists
                    .value_offsets()
                    .windows(2)
                    .map(|w| {
                        3 + elements[w[0] as usize..w[1] as usize]
                            .iter()
                            .map(|e| 1 + e)
                            .sum::<usize>()
                    })
                    .collect()
            }
            Err(_) => vec![0; rows],
        },
        DataType::Struct(fields) => {
            let structs = array.as_struct();
            let mut sizes = vec![3; rows];
            for (field, child) in fields.iter().zip(structs.columns()) {
                for (row, size) in value_size_bounds(child).into_iter().enumerate() {
                    if child.is_valid(row) {
                        sizes[row] += 1 + field.name().len() + size;
                    }
                }
            }
            sizes
        }
        DataType::Map(..) => {
            let maps = array.as_map();
            let keys = value_size_bounds(maps.keys());
            let values = value_size_bounds(maps.values());
            maps.value_offsets()
                .windows(2)
                .map(|w| {
                    3 + (w[0] as usize..w[1] as usize)
                        .map(|e| 1 + keys[e] + values[e])
                        .sum::<usize>()
                })
                .collect()
        }
        _ => vec![NUMBER_BYTES; rows],
    }
}

fn event_time_seconds(batch: &RecordBatch, column: &str) -> Result<Vec<i64>> {
    let array = batch.column_by_name(column).ok_or_else(|| {
        Error::Invalid(format!(
            "event-time column '{column}' is missing from the rows"
        ))
    })?;
    let micros = cast(array, &DataType::Timestamp(TimeUnit::Microsecond, None))?;
    Ok(micros
        .as_primitive::<TimestampMicrosecondType>()
        .iter()
        .map(|t| t.unwrap_or_default().div_euclid(1_000_000))
        .collect())
}

/// Each row's value of `array`, `None` for nulls.
fn attribute_values(array: &ArrayRef, column: &str) -> Result<Vec<Option<AttributeValue>>> {
    let valid = |row: usize| array.is_valid(row);
    let numbers = |texts: Vec<String>| -> Vec<Option<AttributeValue>> {
        texts
            .into_iter()
            .enumerate()
            .map(|(row, n)| valid(row).then(|| AttributeValue::N(n)))
            .collect()
    };
    let values = match array.data_type() {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32 => {
            let ints = cast(array, &DataType::Int64)?;
            numbers(
                ints.as_primitive::<Int64Type>()
                    .values()
                    .iter()
                    .map(i64::to_string)
                    .collect(),
            )
        }
        DataType::UInt64 => numbers(
            array
                .as_primitive::<UInt64Type>()
                .values()
                .iter()
                .map(u64::to_string)
                .collect(),
        ),
        DataType::Float16 | DataType::Float32 | DataType::Float64 => {
            let floats = cast(array, &DataType::Float64)?;
            let floats = floats.as_primitive::<Float64Type>();
            floats
                .iter()
                .map(|value| {
                    value.map(|v| match non_finite_text(v) {
                        // No DynamoDB number is one: stored as get serves it.
                        Some(text) => AttributeValue::S(text.to_string()),
                        None => AttributeValue::N(number_text(v)),
                    })
                })
                .collect()
        }
        DataType::Decimal32(..)
        | DataType::Decimal64(..)
        | DataType::Decimal128(..)
        | DataType::Decimal256(..) => numbers(
            (0..array.len())
                .map(|row| array_value_to_string(array, row).unwrap_or_default())
                .collect(),
        ),
        DataType::Timestamp(..) => {
            let micros = cast(array, &DataType::Timestamp(TimeUnit::Microsecond, None))?;
            numbers(
                micros
                    .as_primitive::<TimestampMicrosecondType>()
                    .values()
                    .iter()
                    .map(|&us| epoch_seconds(us))
                    .collect(),
            )
        }
        DataType::Boolean => {
            let booleans = array.as_boolean();
            (0..array.len())
                .map(|row| valid(row).then(|| AttributeValue::Bool(booleans.value(row))))
                .collect()
        }
        DataType::Utf8
        | DataType::LargeUtf8
        | DataType::Utf8View
        | DataType::Date32
        | DataType::Date64
        | DataType::Dictionary(..) => {
            let texts = cast(array, &DataType::Utf8)?;
            let texts = texts.as_string::<i32>();
            (0..array.len())
                .map(|row| {
                    texts
                        .is_valid(row)
                        .then(|| AttributeValue::S(texts.value(row).to_string()))
                })
                .collect()
        }
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => {
            let bytes = cast(array, &DataType::Binary)?;
            let bytes = bytes.as_binary::<i32>();
            (0..array.len())
                .map(|row| {
                    bytes
                        .is_valid(row)
                        .then(|| AttributeValue::B(Blob::new(bytes.value(row))))
                })
                .collect()
        }
        DataType::List(_)
        | DataType::LargeList(_)
        | DataType::FixedSizeList(..)
        | DataType::ListView(_) => {
            let field = match array.data_type() {
                DataType::List(f)
                | DataType::LargeList(f)
                | DataType::FixedSizeList(f, _)
                | DataType::ListView(f) => f.clone(),
                _ => unreachable!(),
            };
            let lists = cast(array, &DataType::LargeList(field))?;
            let lists = lists.as_list::<i64>();
            let elements = attribute_values(lists.values(), column)?;
            let offsets = lists.value_offsets();
            (0..array.len())
                .map(|row| {
                    valid(row).then(|| {
                        let (start, end) = (offsets[row] as usize, offsets[row + 1] as usize);
                        AttributeValue::L(
                            elements[start..end]
                                .iter()
                                .map(|v| v.clone().unwrap_or(AttributeValue::Null(true)))
                                .collect(),
                        )
                    })
                })
                .collect()
        }
        DataType::Struct(fields) => {
            let structs = array.as_struct();
            let members = fields
                .iter()
                .zip(structs.columns())
                .map(|(f, c)| Ok((f.name().clone(), attribute_values(c, column)?)))
                .collect::<Result<Vec<_>>>()?;
            (0..array.len())
                .map(|row| {
                    valid(row).then(|| {
                        AttributeValue::M(
                            members
                                .iter()
                                .filter_map(|(name, values)| {
                                    Some((name.clone(), values[row].clone()?))
                                })
                                .collect(),
                        )
                    })
                })
                .collect()
        }
        DataType::Map(..) => {
            let maps = array.as_map();
            let keys = cast(maps.keys(), &DataType::Utf8)?;
            let keys = keys.as_string::<i32>();
            let values = attribute_values(maps.values(), column)?;
            let offsets = maps.value_offsets();
            (0..array.len())
                .map(|row| {
                    valid(row).then(|| {
                        let entries = offsets[row] as usize..offsets[row + 1] as usize;
                        AttributeValue::M(
                            entries
                                .map(|e| {
                                    (
                                        keys.value(e).to_string(),
                                        values[e].clone().unwrap_or(AttributeValue::Null(true)),
                                    )
                                })
                                .collect(),
                        )
                    })
                })
                .collect()
        }
        other => {
            return Err(Error::Invalid(format!(
                "column '{column}' is of type {other}, which fengine cannot store in DynamoDB: CAST it"
            )));
        }
    };
    Ok(values)
}

/// A finite double as DynamoDB's number text: its shortest digits, in exponent notation
/// where plain digits would run long (`1e300`, not 301 digits).
fn number_text(value: f64) -> String {
    let magnitude = value.abs();
    if magnitude != 0.0 && !(1e-7..1e21).contains(&magnitude) {
        format!("{value:e}")
    } else {
        value.to_string()
    }
}

/// Microseconds since the epoch as decimal seconds: `1711929600`, `1711929600.25`.
fn epoch_seconds(micros: i64) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let magnitude = micros.unsigned_abs();
    let (seconds, fraction) = (magnitude / 1_000_000, magnitude % 1_000_000);
    if fraction == 0 {
        format!("{sign}{seconds}")
    } else {
        format!("{sign}{seconds}.{fraction:06}")
            .trim_end_matches('0')
            .to_string()
    }
}

/// DynamoDB's size of an item: attribute names and values, in bytes (an upper bound for numbers).
fn item_size(item: &Item) -> usize {
    item.iter()
        .map(|(name, value)| name.len() + value_size(value))
        .sum()
}

fn value_size(value: &AttributeValue) -> usize {
    match value {
        AttributeValue::S(s) | AttributeValue::N(s) => s.len(),
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::L(values) => 3 + values.iter().map(|v| 1 + value_size(v)).sum::<usize>(),
        AttributeValue::M(members) => {
            3 + members
                .iter()
                .map(|(k, v)| 1 + k.len() + value_size(v))
                .sum::<usize>()
        }
        _ => 1,
    }
}

/// A stored item as the JSON row `get` serves: columns in the snapshot's order, nulls
/// explicit, `timestamp_columns` back to RFC 3339.
pub(crate) fn item_to_json(
    item: &Item,
    columns: &[String],
    timestamp_columns: &[String],
) -> serde_json::Map<String, serde_json::Value> {
    columns
        .iter()
        .map(|name| {
            let json = match item.get(name) {
                None => serde_json::Value::Null,
                Some(AttributeValue::N(n)) if timestamp_columns.contains(name) => {
                    seconds_to_rfc3339(n)
                        .map(serde_json::Value::String)
                        .unwrap_or_else(|| serde_json::Value::String(n.clone()))
                }
                Some(value) => attribute_to_json(value),
            };
            (name.clone(), json)
        })
        .collect()
}

fn attribute_to_json(value: &AttributeValue) -> serde_json::Value {
    use serde_json::Value;
    match value {
        AttributeValue::S(s) => Value::String(s.clone()),
        AttributeValue::N(n) => n
            .parse::<serde_json::Number>()
            .map(Value::Number)
            .unwrap_or_else(|_| Value::String(n.clone())),
        AttributeValue::Bool(b) => Value::Bool(*b),
        AttributeValue::B(b) => {
            Value::Array(b.as_ref().iter().map(|byte| Value::from(*byte)).collect())
        }
        AttributeValue::L(values) => Value::Array(values.iter().map(attribute_to_json).collect()),
        AttributeValue::M(members) => Value::Object(
            members
                .iter()
                .map(|(k, v)| (k.clone(), attribute_to_json(v)))
                .collect(),
        ),
        _ => Value::Null,
    }
}

pub(crate) fn seconds_to_rfc3339(seconds: &str) -> Option<String> {
    let (negative, magnitude) = match seconds.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, seconds),
    };
    let (whole, fraction) = magnitude.split_once('.').unwrap_or((magnitude, ""));
    let micros = whole.parse::<i64>().ok()? * 1_000_000
        + format!("{fraction:0<6}").get(..6)?.parse::<i64>().ok()?;
    let time = chrono::DateTime::from_timestamp_micros(if negative { -micros } else { micros })?;
    Some(time.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_seconds_round_trip_to_rfc3339() {
        assert_eq!(epoch_seconds(1_711_929_600_000_000), "1711929600");
        assert_eq!(epoch_seconds(1_711_929_600_250_000), "1711929600.25");
        assert_eq!(epoch_seconds(-1), "-0.000001");
        assert_eq!(
            seconds_to_rfc3339("-0.000001").as_deref(),
            Some("1969-12-31T23:59:59.999999Z")
        );
        assert_eq!(
            seconds_to_rfc3339("1711929600").as_deref(),
            Some("2024-04-01T00:00:00Z")
        );
        assert_eq!(
            seconds_to_rfc3339("1711929600.25").as_deref(),
            Some("2024-04-01T00:00:00.250Z")
        );
    }

    #[test]
    fn doubles_are_written_in_their_shortest_digits() {
        assert_eq!(number_text(0.1), "0.1");
        assert_eq!(number_text(-2.5e20), "-250000000000000000000");
        assert_eq!(number_text(1e300), "1e300");
        assert_eq!(number_text(-1.5e-8), "-1.5e-8");
        assert_eq!(number_text(f64::MIN_POSITIVE), "2.2250738585072014e-308");
        for value in [0.1, 1e300, -1.5e-8, 123456.789, f64::MAX] {
            assert_eq!(number_text(value).parse::<f64>().unwrap(), value);
        }
    }

    #[test]
    fn composite_keys_are_unambiguous() {
        let a = composite_key(&["a#b".into(), "c".into()]);
        let b = composite_key(&["a".into(), "b#c".into()]);
        assert_ne!(a, b);
        assert_eq!(a, "a\\#b#c");
    }
}
