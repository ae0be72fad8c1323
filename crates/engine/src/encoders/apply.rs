//! Applying a fitted encoder to rows: each transformed column replaced, where it stands, by
//! what its transform writes (float64, as scikit-learn's transforms return), the other
//! columns as they were. The arithmetic is scikit-learn's, operation for operation.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, Float64Builder, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Float64Type, Schema};
use fengine_dialect::{OutOfRange, Unknown};
use fengine_online::{non_finite_text, non_finite_value};

use super::{Bucketize, EncoderParameters, Fitted, MinMax, OneHot, StandardScale};
use crate::error::{Error, Result};

/// `batch` with each column of `parameters`' transforms replaced by its encoding; an error
/// naming the encoder, column and value for a value the transform declares an error (an
/// unknown category, a value out of range).
pub fn encode_batch(
    encoder: &str,
    parameters: &EncoderParameters,
    batch: &RecordBatch,
) -> Result<RecordBatch> {
    let schema = batch.schema();
    let mut fields: Vec<Field> = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        let Some(transform) = parameters
            .transforms
            .iter()
            .find(|t| t.column() == field.name())
        else {
            fields.push(field.as_ref().clone());
            columns.push(column.clone());
            continue;
        };
        let refused = |why: String| {
            Error::Check(format!(
                "encoder '{encoder}' cannot encode column '{}': {why}",
                field.name()
            ))
        };
        for (name, encoded) in transform.encode(column).map_err(refused)? {
            fields.push(Field::new(name, DataType::Float64, true));
            columns.push(Arc::new(encoded));
        }
    }
    for transform in &parameters.transforms {
        if schema.index_of(transform.column()).is_err() {
            return Err(Error::Config(format!(
                "encoder '{encoder}' transforms column '{}', which the rows to encode lack",
                transform.column()
            )));
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .map_err(|e| Error::Infrastructure(format!("cannot assemble the encoded rows: {e}")))
}

/// An online row (a feature's name to its JSON value, as `get` serves it) with each column
/// of `parameters`' transforms replaced, where it stands, by its encoding; NaN and the
/// infinities, which JSON has not, read and written as the online store serves them
/// ("NaN", "Infinity", "-Infinity").
pub fn encode_row(
    encoder: &str,
    parameters: &EncoderParameters,
    row: &serde_json::Map<String, serde_json::Value>,
) -> Result<serde_json::Map<String, serde_json::Value>> {
    let mut encoded = serde_json::Map::new();
    for (name, value) in row {
        let Some(transform) = parameters.transforms.iter().find(|t| t.column() == name) else {
            encoded.insert(name.clone(), value.clone());
            continue;
        };
        let refused = |why: String| {
            Error::Check(format!(
                "encoder '{encoder}' cannot encode feature '{name}': {why}"
            ))
        };
        let values: ArrayRef = match (transform, value) {
            (Fitted::OneHot(_), serde_json::Value::String(s)) => {
                Arc::new(arrow::array::StringArray::from(vec![Some(s.as_str())]))
            }
            (Fitted::OneHot(_), serde_json::Value::Null) => {
                Arc::new(arrow::array::StringArray::from(vec![None::<&str>]))
            }
            (_, serde_json::Value::Number(n)) => {
                as_fitted(transform, Arc::new(Float64Array::from(vec![n.as_f64()])))
                    .map_err(refused)?
            }
            (_, serde_json::Value::Null) => Arc::new(Float64Array::from(vec![None])),
            (_, serde_json::Value::String(text)) if non_finite_value(text).is_some() => {
                Arc::new(Float64Array::from(vec![non_finite_value(text)]))
            }
            (_, other) => {
                return Err(refused(format!(
                    "its value {other} is not what the transform takes"
                )));
            }
        };
        for (output, column) in transform.encode(&values).map_err(refused)? {
            let value = match column.is_valid(0) {
                true => {
                    let x = column.value(0);
                    match non_finite_text(x) {
                        Some(text) => serde_json::Value::String(text.to_string()),
                        None => serde_json::Number::from_f64(x)
                            .map_or(serde_json::Value::Null, serde_json::Value::Number),
                    }
                }
                false => serde_json::Value::Null,
            };
            encoded.insert(output, value);
        }
    }
    for transform in &parameters.transforms {
        if !row.contains_key(transform.column()) {
            return Err(Error::Config(format!(
                "encoder '{encoder}' transforms '{}', which the row has not",
                transform.column()
            )));
        }
    }
    Ok(encoded)
}

/// A number read from JSON, as the type the transform was fitted on holds it.
fn as_fitted(transform: &Fitted, number: ArrayRef) -> std::result::Result<ArrayRef, String> {
    let input_type = match transform {
        Fitted::StandardScale(t) => &t.input_type,
        Fitted::MinMax(t) => &t.input_type,
        Fitted::Log1p(t) => &t.input_type,
        Fitted::Bucketize(t) => &t.input_type,
        Fitted::OneHot(_) => return Ok(number),
    };
    let data_type: DataType = input_type
        .parse()
        .map_err(|e| format!("the type it was fitted on, {input_type}, is unknown: {e}"))?;
    cast(&number, &data_type).map_err(|e| e.to_string())
}

impl Fitted {
    /// The column `output` of those this transform writes for `values`.
    pub(crate) fn encode_output(
        &self,
        values: &ArrayRef,
        output: &str,
    ) -> std::result::Result<Float64Array, String> {
        self.encode(values)?
            .into_iter()
            .find(|(name, _)| name == output)
            .map(|(_, encoded)| encoded)
            .ok_or_else(|| format!("the transform of '{}' writes no '{output}'", self.column()))
    }

    /// The columns this transform writes for `values`, named.
    fn encode(
        &self,
        values: &ArrayRef,
    ) -> std::result::Result<Vec<(String, Float64Array)>, String> {
        if let Fitted::OneHot(one_hot) = self {
            return one_hot.encode(values);
        }
        let numbers = cast(values, &DataType::Float64).map_err(|e| e.to_string())?;
        let numbers = numbers.as_primitive::<Float64Type>();
        let encoded = match self {
            Fitted::StandardScale(t) => each(numbers, |x| t.encode(x))?,
            Fitted::MinMax(t) => each(numbers, |x| t.encode(x))?,
            Fitted::Log1p(t) => each(numbers, |x| log1p(x, t.out_of_range))?,
            Fitted::Bucketize(t) => each(numbers, |x| t.encode(x))?,
            Fitted::OneHot(_) => unreachable!("returned above"),
        };
        Ok(vec![(self.column().to_string(), encoded)])
    }
}

/// `f` of each value, nulls null.
fn each(
    values: &Float64Array,
    f: impl Fn(f64) -> std::result::Result<Option<f64>, String>,
) -> std::result::Result<Float64Array, String> {
    let mut out = Float64Builder::with_capacity(values.len());
    for value in values {
        match value {
            Some(x) => out.append_option(f(x)?),
            None => out.append_null(),
        }
    }
    Ok(out.finish())
}

/// A value outside `[low, high]` (NaN never is), as `out_of_range` declares.
fn in_range(
    x: f64,
    low: f64,
    high: f64,
    out_of_range: OutOfRange,
) -> std::result::Result<Option<f64>, String> {
    if !(x < low || x > high) {
        return Ok(Some(x));
    }
    match out_of_range {
        OutOfRange::Keep => Ok(Some(x)),
        OutOfRange::Clip => Ok(Some(x.clamp(low, high))),
        OutOfRange::Null => Ok(None),
        OutOfRange::Error => Err(format!(
            "{x} is outside the range it was fitted on, [{low}, {high}] (out_of_range => \
             'error')"
        )),
    }
}

impl StandardScale {
    fn encode(&self, x: f64) -> std::result::Result<Option<f64>, String> {
        let x = in_range(x, self.data_min, self.data_max, self.out_of_range)?;
        Ok(x.map(|x| (x - self.mean) / self.scale))
    }
}

impl MinMax {
    fn encode(&self, x: f64) -> std::result::Result<Option<f64>, String> {
        let x = in_range(x, self.data_min, self.data_max, self.out_of_range)?;
        Ok(x.map(|x| x * self.scale + self.min))
    }
}

/// ln(1 + x) where x > −1; at or below, as `out_of_range` declares (numpy's −inf and NaN
/// when kept; clip is refused when the encoder is fitted).
fn log1p(x: f64, out_of_range: OutOfRange) -> std::result::Result<Option<f64>, String> {
    if x > -1.0 || x.is_nan() {
        return Ok(Some(x.ln_1p()));
    }
    match out_of_range {
        OutOfRange::Keep | OutOfRange::Clip => Ok(Some(x.ln_1p())),
        OutOfRange::Null => Ok(None),
        OutOfRange::Error => Err(format!(
            "{x} is not above -1, where log1p is defined (out_of_range => 'error')"
        )),
    }
}

impl Bucketize {
    /// The bucket, as `searchsorted(bin_edges[1:-1], x, side='right')`; NaN has none.
    fn encode(&self, x: f64) -> std::result::Result<Option<f64>, String> {
        if x.is_nan() {
            return Ok(None);
        }
        let (low, high) = (self.bin_edges[0], self.bin_edges[self.bin_edges.len() - 1]);
        let Some(x) = in_range(x, low, high, self.out_of_range)? else {
            return Ok(None);
        };
        let inner = &self.bin_edges[1..self.bin_edges.len() - 1];
        Ok(Some(inner.partition_point(|edge| *edge <= x) as f64))
    }
}

impl OneHot {
    fn encode(
        &self,
        values: &ArrayRef,
    ) -> std::result::Result<Vec<(String, Float64Array)>, String> {
        let strings = cast(values, &DataType::Utf8).map_err(|e| e.to_string())?;
        let strings = strings.as_string::<i32>();
        let frequent: Vec<&String> = self.frequent().collect();
        let names = self.output_names();
        let infrequent_column = (!self.infrequent.is_empty()).then_some(frequent.len());
        let mut outputs: Vec<Float64Builder> = names
            .iter()
            .map(|_| Float64Builder::with_capacity(strings.len()))
            .collect();
        for value in strings {
            let Some(value) = value else {
                outputs.iter_mut().for_each(Float64Builder::append_null);
                continue;
            };
            let hot = match frequent.binary_search_by(|c| c.as_str().cmp(value)) {
                Ok(index) => Some(index),
                Err(_)
                    if self
                        .infrequent
                        .binary_search_by(|c| c.as_str().cmp(value))
                        .is_ok() =>
                {
                    infrequent_column
                }
                Err(_) => match self.unknown {
                    Unknown::Error => {
                        return Err(format!(
                            "'{value}' is a category it was not fitted on (unknown => 'error'; \
                             'ignore' encodes it as zeros)"
                        ));
                    }
                    Unknown::Ignore => None,
                    Unknown::Infrequent => infrequent_column,
                },
            };
            for (index, output) in outputs.iter_mut().enumerate() {
                output.append_value(if Some(index) == hot { 1.0 } else { 0.0 });
            }
        }
        Ok(names
            .into_iter()
            .zip(outputs.iter_mut().map(Float64Builder::finish))
            .collect())
    }
}
