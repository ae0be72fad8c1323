//! `as_of()` and `param('name')`: the run's snapshot time and parameters as SQL functions.
//! Both fold to literals while planning, so filters on them prune like any constant.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, FieldRef, TimeUnit};
use chrono::{DateTime, NaiveDate, Utc};
use datafusion::common::{ScalarValue, exec_err, plan_err};
use datafusion::error::Result;
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility, lit,
};

/// The run's snapshot time, a UTC timestamp in microseconds.
#[derive(Debug, PartialEq, Eq, Hash)]
struct AsOf {
    value: ScalarValue,
    signature: Signature,
}

pub fn as_of_udf(as_of: DateTime<Utc>) -> ScalarUDF {
    ScalarUDF::new_from_impl(AsOf {
        value: ScalarValue::TimestampMicrosecond(
            Some(as_of.timestamp_micros()),
            Some(Arc::from("UTC")),
        ),
        signature: Signature::exact(vec![], Volatility::Immutable),
    })
}

impl ScalarUDFImpl for AsOf {
    fn name(&self) -> &str {
        "as_of"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(self.value.data_type())
    }

    fn return_field_from_args(&self, _: ReturnFieldArgs) -> Result<FieldRef> {
        Ok(Arc::new(Field::new(
            self.name(),
            self.value.data_type(),
            false,
        )))
    }

    fn invoke_with_args(&self, _: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Ok(ColumnarValue::Scalar(self.value.clone()))
    }

    fn simplify(&self, _: Vec<Expr>, _: &SimplifyContext) -> Result<ExprSimplifyResult> {
        Ok(ExprSimplifyResult::Simplified(lit(self.value.clone())))
    }
}

/// A run parameter by name, typed from its text (see [`parse_param_value`]).
#[derive(Debug, PartialEq, Eq, Hash)]
struct Param {
    values: BTreeMap<String, ScalarValue>,
    signature: Signature,
}

pub fn param_udf(values: BTreeMap<String, ScalarValue>) -> ScalarUDF {
    ScalarUDF::new_from_impl(Param {
        values,
        signature: Signature::exact(vec![DataType::Utf8], Volatility::Immutable),
    })
}

impl Param {
    fn lookup(&self, name: Option<&ScalarValue>) -> Result<&ScalarValue> {
        let Some(ScalarValue::Utf8(Some(name))) = name else {
            return plan_err!(
                "param() takes the parameter's name as a quoted string: param('name')"
            );
        };
        match self.values.get(name) {
            Some(value) => Ok(value),
            None => {
                let known: Vec<&str> = self.values.keys().map(String::as_str).collect();
                plan_err!(
                    "unknown parameter '{name}' in param('{name}'): pass --param {name}=<value>{}",
                    if known.is_empty() {
                        " (no parameters were given)".to_string()
                    } else {
                        format!(" (given: {})", known.join(", "))
                    }
                )
            }
        }
    }
}

impl ScalarUDFImpl for Param {
    fn name(&self) -> &str {
        "param"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        plan_err!("param() is typed by its argument")
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let value = self.lookup(args.scalar_arguments.first().copied().flatten())?;
        Ok(Arc::new(Field::new(self.name(), value.data_type(), false)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        match args.args.first() {
            Some(ColumnarValue::Scalar(name)) => {
                Ok(ColumnarValue::Scalar(self.lookup(Some(name))?.clone()))
            }
            _ => exec_err!("param() takes the parameter's name as a quoted string: param('name')"),
        }
    }

    fn simplify(&self, args: Vec<Expr>, _: &SimplifyContext) -> Result<ExprSimplifyResult> {
        match args.first() {
            Some(Expr::Literal(name, _)) => Ok(ExprSimplifyResult::Simplified(lit(self
                .lookup(Some(name))?
                .clone()))),
            _ => Ok(ExprSimplifyResult::Original(args)),
        }
    }
}

/// Types a `--param` value by its text: a whole number is a BIGINT (unless it has leading
/// zeros, like a zip code), a decimal number a DOUBLE, `true`/`false` a BOOLEAN, an RFC 3339
/// time a UTC TIMESTAMP, `YYYY-MM-DD` a DATE, anything else a string. `CAST` picks another.
pub fn parse_param_value(text: &str) -> ScalarValue {
    let is_canonical_integer = |t: &str| {
        let digits = t.strip_prefix('-').unwrap_or(t);
        !digits.is_empty() && (digits == "0" || !digits.starts_with('0'))
    };
    if is_canonical_integer(text)
        && let Ok(value) = text.parse::<i64>()
    {
        return ScalarValue::Int64(Some(value));
    }
    if text.contains('.')
        && text
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | 'e' | 'E' | '+'))
        && let Ok(value) = text.parse::<f64>()
    {
        return ScalarValue::Float64(Some(value));
    }
    match text {
        "true" => return ScalarValue::Boolean(Some(true)),
        "false" => return ScalarValue::Boolean(Some(false)),
        _ => {}
    }
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return ScalarValue::TimestampMicrosecond(
            Some(time.timestamp_micros()),
            Some(Arc::from("UTC")),
        );
    }
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        let days = date.signed_duration_since(NaiveDate::default()).num_days();
        return ScalarValue::Date32(Some(days as i32));
    }
    ScalarValue::Utf8(Some(text.to_string()))
}

/// The SQL name of a parameter's type, for `fengine plan`.
pub fn param_type_name(value: &ScalarValue) -> &'static str {
    match value.data_type() {
        DataType::Int64 => "BIGINT",
        DataType::Float64 => "DOUBLE",
        DataType::Boolean => "BOOLEAN",
        DataType::Timestamp(TimeUnit::Microsecond, _) => "TIMESTAMP",
        DataType::Date32 => "DATE",
        _ => "VARCHAR",
    }
}
