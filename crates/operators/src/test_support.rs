//! What the unit tests share.

use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int8Array, Int64Array, RecordBatch, UInt64Array};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use num_bigint::BigInt;
use num_traits::{Signed, ToPrimitive, Zero};
use proptest::prelude::*;

/// A finite double as an exact integer multiple of 2^-1074.
pub(crate) fn exact(value: f64) -> BigInt {
    let bits = value.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i64;
    let fraction = bits & ((1 << 52) - 1);
    let (mantissa, shift) = match biased {
        0 => (fraction, 0),
        _ => (fraction | (1 << 52), biased - 1),
    };
    let magnitude = BigInt::from(mantissa) << shift;
    if value < 0.0 { -magnitude } else { magnitude }
}

/// `numerator / denominator * 2^exponent` as a double, rounded from 64 bits.
pub(crate) fn to_f64(numerator: &BigInt, denominator: &BigInt, exponent: i64) -> f64 {
    if numerator.is_zero() {
        return 0.0;
    }
    let shift = denominator.bits() as i64 - numerator.bits() as i64 + 64;
    let quotient = if shift >= 0 {
        (numerator << shift) / denominator
    } else {
        numerator / (denominator << -shift)
    };
    let mut value = quotient.to_f64().expect("64 bits fit a double");
    let mut exponent = exponent - shift;
    while exponent != 0 {
        let step = exponent.clamp(-1000, 1000);
        value *= 2f64.powi(step as i32);
        exponent -= step;
    }
    value
}

/// Variance or standard deviation in exact arithmetic, rounded once at the end.
pub(crate) fn exact_spread(values: &[f64], root: bool, population: bool) -> f64 {
    let n = values.len() as i64;
    let sum: BigInt = values.iter().map(|&v| exact(v)).sum();
    let squares: BigInt = values.iter().map(|&v| exact(v) * exact(v)).sum();
    // n * sum of squared deviations, in units of 2^-2148.
    let scaled = BigInt::from(n) * squares - &sum * &sum;
    assert!(!scaled.is_negative());
    let divisor = BigInt::from(n * if population { n } else { n - 1 });
    if !root {
        return to_f64(&scaled, &divisor, -2148);
    }
    // sqrt(q * 2^-2148) with q scaled to 2^128 or more, so its root keeps 64 bits.
    let shift = (128 - (scaled.bits() as i64 - divisor.bits() as i64)).max(0) & !1;
    let quotient = (scaled << shift) / divisor;
    to_f64(&quotient.sqrt(), &BigInt::from(1), -(2148 + shift) / 2)
}

/// The sum of finite doubles in exact arithmetic, rounded once at the end.
pub(crate) fn exact_sum(values: &[f64]) -> f64 {
    let sum: BigInt = values.iter().map(|&v| exact(v)).sum();
    let negative = sum.is_negative();
    let magnitude = to_f64(&sum.abs(), &BigInt::from(1), -1074);
    if negative { -magnitude } else { magnitude }
}

/// The argument types the property tests of the sliding aggregates generate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum ValueType {
    Float64,
    Int8,
    Int64,
    UInt64,
}

impl ValueType {
    pub(crate) fn any() -> impl Strategy<Value = ValueType> {
        prop::sample::select(vec![
            ValueType::Float64,
            ValueType::Int8,
            ValueType::Int64,
            ValueType::UInt64,
        ])
    }

    /// A column of this type: the doubles, or the whole numbers (within the type's range).
    pub(crate) fn column(
        self,
        values: impl Iterator<Item = (Option<f64>, Option<i128>)>,
    ) -> ArrayRef {
        match self {
            ValueType::Float64 => Arc::new(Float64Array::from_iter(values.map(|(f, _)| f))),
            ValueType::Int8 => Arc::new(Int8Array::from_iter(
                values.map(|(_, w)| w.map(|v| v as i8)),
            )),
            ValueType::Int64 => Arc::new(Int64Array::from_iter(
                values.map(|(_, w)| w.map(|v| v as i64)),
            )),
            ValueType::UInt64 => Arc::new(UInt64Array::from_iter(
                values.map(|(_, w)| w.map(|v| v as u64)),
            )),
        }
    }

    /// A sum of integers as DataFusion's wraps it, at 64 bits.
    pub(crate) fn wrapped_sum(self, total: i128) -> i128 {
        match self {
            ValueType::UInt64 => i128::from(total as u64),
            _ => i128::from(total as i64),
        }
    }

    /// Null, or whole numbers of the type, its extremes often.
    pub(crate) fn whole_value(self) -> BoxedStrategy<Option<i128>> {
        let (min, max) = match self {
            ValueType::Int8 => (i128::from(i8::MIN), i128::from(i8::MAX)),
            ValueType::Int64 => (i128::from(i64::MIN), i128::from(i64::MAX)),
            _ => (0, i128::from(u64::MAX)),
        };
        prop_oneof![
            1 => Just(None),
            1 => Just(Some(min)),
            1 => Just(Some(max)),
            4 => (-100i128..100).prop_map(move |v| Some(v.clamp(min, max))),
            4 => (min..=max).prop_map(Some),
        ]
        .boxed()
    }
}

/// Null, NaN of either sign, infinities, or doubles from 1e-300 to 1e300.
pub(crate) fn float_value() -> impl Strategy<Value = Option<f64>> {
    prop_oneof![
        1 => Just(None),
        1 => Just(Some(f64::NAN)),
        1 => Just(Some(-f64::NAN)),
        1 => Just(Some(f64::INFINITY)),
        1 => Just(Some(f64::NEG_INFINITY)),
        8 => (-1e6..1e6f64).prop_map(Some),
        8 => (-1e6..1e6f64, -300..=300i32).prop_map(|(m, e)| Some(m * 10f64.powi(e))),
    ]
}

/// The order of min and max: NaN, of either sign, above every number.
pub(crate) fn nan_above(a: &&f64, b: &&f64) -> std::cmp::Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Greater,
        (false, true) => std::cmp::Ordering::Less,
        _ => a.partial_cmp(b).expect("neither is NaN"),
    }
}

/// A generated row: key, time in ticks, and a double or a whole number.
pub(crate) type GeneratedRow = (i64, Option<i64>, Option<f64>, Option<i128>);

/// The table the property tests query: `id` (each row's number), `k`, a timestamp column
/// named `time_column` of `unit` and `zone`, and `v` of `value_type`.
pub(crate) fn generated_table(
    time_column: &str,
    unit: TimeUnit,
    zone: Option<&str>,
    value_type: ValueType,
    rows: &[GeneratedRow],
) -> RecordBatch {
    let time_type = DataType::Timestamp(unit, zone.map(Arc::from));
    let times: ArrayRef = Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.1)));
    let times = cast(&times, &time_type).unwrap();
    let values = value_type.column(rows.iter().map(|r| (r.2, r.3)));
    let ids: ArrayRef = Arc::new(Int64Array::from_iter_values(0..rows.len() as i64));
    let keys: ArrayRef = Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0)));
    let schema = Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("k", DataType::Int64, false),
        Field::new(time_column, time_type, true),
        Field::new("v", values.data_type().clone(), true),
    ]);
    RecordBatch::try_new(Arc::new(schema), vec![ids, keys, times, values]).unwrap()
}

/// Runs each partition of `plan` and checks that what its properties say holds of its
/// output: as many partitions as declared, each in the declared order, and, when declared
/// hash-partitioned, no value of the hashed columns in two partitions. Returns the batches
/// of each partition.
pub(crate) async fn outputs_as_declared(
    plan: &Arc<dyn datafusion::physical_plan::ExecutionPlan>,
    context: Arc<datafusion::execution::TaskContext>,
) -> Vec<Vec<arrow::array::RecordBatch>> {
    use arrow::row::{RowConverter, SortField};
    use datafusion::physical_plan::{ExecutionPlanProperties, Partitioning};
    use std::collections::HashMap;

    let partitioning = plan.output_partitioning().clone();
    let mut outputs = Vec::new();
    let mut partition_of_key: HashMap<Vec<u8>, usize> = HashMap::new();
    for partition in 0..partitioning.partition_count() {
        let stream = plan.execute(partition, context.clone()).expect("executes");
        let schema = stream.schema();
        let batches: Vec<_> = datafusion::physical_plan::common::collect(stream)
            .await
            .expect("runs");
        let batch = arrow::compute::concat_batches(&schema, &batches).expect("one schema");
        if let Some(ordering) = plan.output_ordering() {
            let (fields, columns): (Vec<_>, Vec<_>) = ordering
                .iter()
                .map(|sort| {
                    let column = sort
                        .expr
                        .evaluate(&batch)
                        .unwrap()
                        .into_array(batch.num_rows());
                    let column = column.unwrap();
                    (
                        SortField::new_with_options(column.data_type().clone(), sort.options),
                        column,
                    )
                })
                .unzip();
            let rows = RowConverter::new(fields)
                .unwrap()
                .convert_columns(&columns)
                .unwrap();
            for i in 1..rows.num_rows() {
                assert!(
                    rows.row(i - 1) <= rows.row(i),
                    "partition {partition} row {i} breaks the declared order {ordering}"
                );
            }
        }
        if let Partitioning::Hash(exprs, _) = &partitioning {
            let columns: Vec<ArrayRef> = exprs
                .iter()
                .map(|e| {
                    e.evaluate(&batch)
                        .unwrap()
                        .into_array(batch.num_rows())
                        .unwrap()
                })
                .collect();
            let fields = columns
                .iter()
                .map(|c| SortField::new(c.data_type().clone()))
                .collect();
            let rows = RowConverter::new(fields)
                .unwrap()
                .convert_columns(&columns)
                .unwrap();
            for row in rows.iter() {
                let first = *partition_of_key
                    .entry(row.as_ref().to_vec())
                    .or_insert(partition);
                assert_eq!(first, partition, "a hashed key is in two partitions");
            }
        }
        outputs.push(batches);
    }
    outputs
}
