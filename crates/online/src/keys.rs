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
