//! What every online store refuses: NaN and infinities, which JSON (what `get` serves) and
//! DynamoDB's numbers cannot hold. Refused rather than served as null, so that a model is
//! never handed a missing value where the snapshot holds a number.

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, make_array};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type};

use crate::{Error, Result, key_values};

/// Refuses a batch holding NaN or an infinity in any column (nested ones included), naming
/// the column and, for a top-level column, the row's key.
pub fn check_finite(batch: &RecordBatch, key_columns: &[String]) -> Result<()> {
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        let Some((row, value)) = first_non_finite(column)? else {
            continue;
        };
        let key = match row {
            Some(row) => {
                let keys = key_values(batch, key_columns)?;
                let values: Vec<String> = keys
                    .iter()
                    .map(|k| arrow::util::display::array_value_to_string(k, row))
                    .collect::<std::result::Result<_, _>>()?;
                format!(" for key ({})", values.join(", "))
            }
            None => String::new(),
        };
        return Err(Error::Invalid(format!(
            "column '{}' holds {value}{key}, which an online store cannot hold (JSON and \
             DynamoDB have no NaN or infinity): turn it into NULL (nullif, CASE) in the query",
            field.name()
        )));
    }
    Ok(())
}

/// The first NaN or infinity of `array` or of the arrays nested in it: its row when it is
/// a value of `array` itself.
fn first_non_finite(array: &ArrayRef) -> Result<Option<(Option<usize>, f64)>> {
    if matches!(
        array.data_type(),
        DataType::Float16 | DataType::Float32 | DataType::Float64
    ) {
        let floats = cast(array, &DataType::Float64)?;
        let floats = floats.as_primitive::<Float64Type>();
        let row = (0..floats.len()).find(|&r| floats.is_valid(r) && !floats.value(r).is_finite());
        return Ok(row.map(|row| (Some(row), floats.value(row))));
    }
    for child in array.to_data().child_data() {
        if let Some((_, value)) = first_non_finite(&make_array(child.clone()))? {
            return Ok(Some((None, value)));
        }
    }
    Ok(None)
}
