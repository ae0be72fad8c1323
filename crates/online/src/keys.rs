//! Which columns can be keys, and how key values are normalised for storage and lookup.

use arrow::array::{ArrayRef, RecordBatch};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::DataType;

use crate::{Error, Result};

/// How a key column is stored and looked up: whole numbers as 64-bit integers, strings and
/// dates (`YYYY-MM-DD`) as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Integer,
    Text,
}

impl KeyKind {
    /// The kind of a column of this type, or `None` when it cannot be a key (floats, which
    /// do not compare exactly; timestamps, nested and binary types).
    pub fn of(data_type: &DataType) -> Option<KeyKind> {
        match data_type {
            DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64 => Some(KeyKind::Integer),
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Date32 => {
                Some(KeyKind::Text)
            }
            DataType::Dictionary(_, value) => KeyKind::of(value),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            KeyKind::Integer => "integer",
            KeyKind::Text => "text",
        }
    }

    pub fn from_name(name: &str) -> Option<KeyKind> {
        [KeyKind::Integer, KeyKind::Text]
            .into_iter()
            .find(|k| k.name() == name)
    }

    fn storage_type(self) -> DataType {
        match self {
            KeyKind::Integer => DataType::Int64,
            KeyKind::Text => DataType::Utf8,
        }
    }
}

/// The kinds of `key_columns` in `schema`, or which one cannot be a key.
pub fn key_kinds(
    schema: &arrow::datatypes::Schema,
    key_columns: &[String],
) -> Result<Vec<KeyKind>> {
    key_columns
        .iter()
        .map(|name| {
            let field = schema.field_with_name(name)?;
            KeyKind::of(field.data_type()).ok_or_else(|| {
                Error::Invalid(format!(
                    "key column '{name}' is of type {}, which cannot be a key",
                    field.data_type()
                ))
            })
        })
        .collect()
}

/// The key columns of `batch`, cast to their storage types (Int64 or Utf8), in KEY order.
pub fn key_values(batch: &RecordBatch, key_columns: &[String]) -> Result<Vec<ArrayRef>> {
    key_columns
        .iter()
        .map(|name| {
            let column = batch.column_by_name(name).ok_or_else(|| {
                Error::Invalid(format!("key column '{name}' is missing from the rows"))
            })?;
            let kind = KeyKind::of(column.data_type()).ok_or_else(|| {
                Error::Invalid(format!(
                    "key column '{name}' is of type {}, which cannot be a key",
                    column.data_type()
                ))
            })?;
            let safe = CastOptions {
                safe: false,
                ..Default::default()
            };
            cast_with_options(column, &kind.storage_type(), &safe).map_err(|e| {
                Error::Invalid(format!(
                    "key column '{name}' does not fit a 64-bit integer: {e}"
                ))
            })
        })
        .collect()
}

/// A key value given as text, checked against its column's kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyValue {
    Integer(i64),
    Text(String),
}

impl KeyValue {
    /// The canonical text of the value (`007` is `7`).
    pub fn to_text(&self) -> String {
        match self {
            KeyValue::Integer(n) => n.to_string(),
            KeyValue::Text(t) => t.clone(),
        }
    }
}

/// The key of a lookup, one value per KEY column, as the store's key kinds read them.
pub fn parse_key(
    group: &str,
    key_columns: &[String],
    key_kinds: &[String],
    values: &[String],
) -> Result<Vec<KeyValue>> {
    if values.len() != key_columns.len() {
        return Err(Error::Invalid(format!(
            "feature group '{group}' is keyed by ({}): give {} key value(s), got {}",
            key_columns.join(", "),
            key_columns.len(),
            values.len()
        )));
    }
    values
        .iter()
        .zip(key_columns)
        .zip(key_kinds)
        .map(|((value, column), kind)| match KeyKind::from_name(kind) {
            Some(KeyKind::Integer) => value.parse().map(KeyValue::Integer).map_err(|_| {
                Error::Invalid(format!(
                    "key column '{column}' holds whole numbers; '{value}' is not one"
                ))
            }),
            _ => Ok(KeyValue::Text(value.clone())),
        })
        .collect()
}
