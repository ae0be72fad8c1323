//! NaN and infinities online. JSON (what `get` serves) and DynamoDB's numbers have none,
//! so a top-level double that is not finite is stored and served as the JSON string of the
//! protobuf JSON mapping (and of JavaScript and Python's `json`): `"NaN"`, `"Infinity"`,
//! `"-Infinity"`, in every store alike. Nested ones (in lists, structs, maps) are refused,
//! naming the column: a string inside a list of numbers would change the list's type.

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, make_array};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type};

use crate::{Error, Result};

/// The text a non-finite double is stored and served as; `None` for finite ones.
pub fn non_finite_text(value: f64) -> Option<&'static str> {
    if value.is_nan() {
        Some("NaN")
    } else if value == f64::INFINITY {
        Some("Infinity")
    } else if value == f64::NEG_INFINITY {
        Some("-Infinity")
    } else {
        None
    }
}

/// The double a served text stands for, if it is one of [`non_finite_text`]'s.
pub fn non_finite_value(text: &str) -> Option<f64> {
    match text {
        "NaN" => Some(f64::NAN),
        "Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        _ => None,
    }
}

/// Whether values of this type are doubles.
pub(crate) fn is_double(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Float16 | DataType::Float32 | DataType::Float64
    )
}

/// Each row's double of a column of doubles, as Float64.
pub(crate) fn doubles(array: &ArrayRef) -> Result<ArrayRef> {
    Ok(cast(array, &DataType::Float64)?)
}

/// Refuses a batch holding NaN or an infinity inside a nested column, naming the column.
pub fn check_nested_finite(batch: &RecordBatch) -> Result<()> {
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        if is_double(column.data_type()) {
            continue;
        }
        if let Some(value) = nested_non_finite(column)? {
            return Err(Error::Invalid(format!(
                "column '{}' holds {value} inside a nested value, which an online store cannot \
                 hold: turn it into NULL (nullif, CASE) in the query",
                field.name()
            )));
        }
    }
    Ok(())
}

fn nested_non_finite(array: &ArrayRef) -> Result<Option<f64>> {
    if is_double(array.data_type()) {
        let floats = doubles(array)?;
        let floats = floats.as_primitive::<Float64Type>();
        let row = (0..floats.len()).find(|&r| floats.is_valid(r) && !floats.value(r).is_finite());
        return Ok(row.map(|row| floats.value(row)));
    }
    for child in array.to_data().child_data() {
        if let Some(value) = nested_non_finite(&make_array(child.clone()))? {
            return Ok(Some(value));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Float64Array, ListArray};
    use arrow::datatypes::{Field, Float64Type, Schema};

    use super::*;

    #[test]
    fn nested_nan_and_infinities_are_refused_naming_the_column() {
        let scores = ListArray::from_iter_primitive::<Float64Type, _, _>(vec![
            Some(vec![Some(1.0), Some(2.0)]),
            Some(vec![Some(f64::NEG_INFINITY)]),
        ]);
        let ratio = Float64Array::from(vec![f64::NAN, 1.0]);
        let schema = Schema::new(vec![
            Field::new("ratio", DataType::Float64, true),
            Field::new("scores", scores.data_type().clone(), true),
        ]);
        let batch = RecordBatch::try_new(Arc::new(schema), vec![Arc::new(ratio), Arc::new(scores)])
            .unwrap();
        let error = check_nested_finite(&batch).unwrap_err();
        assert_eq!(
            error.to_string(),
            "column 'scores' holds -inf inside a nested value, which an online store cannot \
             hold: turn it into NULL (nullif, CASE) in the query"
        );
        assert_eq!(
            [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1.0].map(non_finite_text),
            [Some("NaN"), Some("Infinity"), Some("-Infinity"), None]
        );
    }
}
