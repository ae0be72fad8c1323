//! fengine's window operator against a nested loop over generated rows: every time unit
//! (s to ns) and zone (none, UTC, one with daylight saving time), frames of nanoseconds to
//! days ending at or before the row, FILTER, peers and rows without a time, doubles from
//! 1e-300 to 1e300 with NaN (of either sign) and infinities, integers of 8 and 64 bits,
//! signed or not, at their extremes; batches cut anywhere.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema, TimeUnit, UInt64Type};
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanProperties, collect};
use datafusion::prelude::{SessionConfig, SessionContext};
use proptest::prelude::*;

use super::{RangeWindowExec, RangeWindowRule, WindowFilterRule, rolling_windows};
use crate::test_support::{
    GeneratedRow, ValueType, exact_spread, exact_sum, float_value, generated_table, nan_above,
    outputs_as_declared,
};
use crate::timestamps::nanos_per_tick;

/// 2024-03-31T00:00:00Z: Europe/Paris moves its clocks an hour ahead at 01:00Z.
const BASE_SECONDS: i64 = 1_711_843_200;

#[derive(Debug, Clone)]
struct Row {
    key: i64,
    /// Ticks of the case's unit.
    time: Option<i64>,
    /// Doubles, or whole numbers of the value type.
    float: Option<f64>,
    whole: Option<i128>,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    function: &'static str,
    /// (SQL, nanoseconds)
    width: (&'static str, i128),
    end: Option<(&'static str, i128)>,
    filtered: bool,
}

#[derive(Debug, Clone)]
struct Case {
    unit: TimeUnit,
    zone: Option<&'static str>,
    value_type: ValueType,
    rows: Vec<Row>,
    windows: Vec<Window>,
    batch_size: usize,
}

const WIDTHS: [(&str, i128); 6] = [
    ("100 nanoseconds", 100),
    ("2500 microseconds", 2_500_000),
    ("1 second", 1_000_000_000),
    ("90 minutes", 5_400_000_000_000),
    ("36 hours", 129_600_000_000_000),
    ("1 day", 86_400_000_000_000),
];
const ENDS: [(&str, i128); 3] = [
    ("50 nanoseconds", 50),
    ("1 millisecond", 1_000_000),
    ("1 hour", 3_600_000_000_000),
];
const FUNCTIONS: [&str; 10] = [
    "sum",
    "count",
    "count_star",
    "avg",
    "min",
    "max",
    "stddev",
    "var_pop",
    "first_value",
    "last_value",
];
/// Steps between generated times, in nanoseconds (at least a tick of the unit).
const STEPS: [i64; 6] = [
    1,
    100,
    1_000_000,
    1_000_000_000,
    1_020_000_000_000,
    18_000_000_000_000,
];

fn window(daylight_saving: bool) -> impl Strategy<Value = Window> {
    let widths: Vec<_> = WIDTHS
        .into_iter()
        .filter(|(sql, _)| !(daylight_saving && sql.contains("day")))
        .collect();
    (
        prop::sample::select(FUNCTIONS.to_vec()),
        prop::sample::select(widths),
        prop::option::of(prop::sample::select(ENDS.to_vec())),
        any::<bool>(),
    )
        .prop_map(|(function, width, end, filtered)| Window {
            function,
            width,
            end: end.filter(|end| end.1 <= width.1),
            filtered: filtered && !function.ends_with("_value"),
        })
}

fn case() -> impl Strategy<Value = Case> {
    let units = prop::sample::select(vec![
        TimeUnit::Second,
        TimeUnit::Millisecond,
        TimeUnit::Microsecond,
        TimeUnit::Nanosecond,
    ]);
    let zones = prop::sample::select(vec![None, Some("UTC"), Some("Europe/Paris")]);
    let types = ValueType::any();
    (units, zones, types, 1..16usize).prop_flat_map(|(unit, zone, value_type, batch_size)| {
        let tick = nanos_per_tick(unit);
        let time = (prop::sample::select(STEPS.to_vec()), 0..40i64)
            .prop_map(move |(step, count)| (step / tick).max(1) * count);
        let row = (
            0..3i64,
            prop::option::weighted(0.95, time),
            float_value(),
            value_type.whole_value(),
        )
            .prop_map(move |(key, time, float, whole)| Row {
                key,
                time: time.map(|t| BASE_SECONDS * (1_000_000_000 / tick) + t),
                float,
                whole,
            });
        let daylight_saving = zone == Some("Europe/Paris");
        (
            prop::collection::vec(row, 1..70),
            prop::collection::vec(window(daylight_saving), 1..5),
        )
            .prop_map(move |(rows, mut windows)| {
                // DataFusion computes a repeated window once.
                let mut seen = Vec::new();
                windows.retain(|w| {
                    let text = format!("{w:?}");
                    let new = !seen.contains(&text);
                    seen.push(text);
                    new
                });
                Case {
                    unit,
                    zone,
                    value_type,
                    rows,
                    windows,
                    batch_size,
                }
            })
    })
}

impl Case {
    fn batch(&self) -> RecordBatch {
        let rows: Vec<GeneratedRow> = self
            .rows
            .iter()
            .map(|r| (r.key, r.time, r.float, r.whole))
            .collect();
        generated_table("ts", self.unit, self.zone, self.value_type, &rows)
    }

    fn sql(&self) -> String {
        let windows: Vec<String> = self
            .windows
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let call = match w.function {
                    "count_star" => "count(*)".to_string(),
                    f => format!("{f}(v)"),
                };
                let filter = if w.filtered {
                    " FILTER (WHERE id % 3 <> 0)"
                } else {
                    ""
                };
                let end = match w.end {
                    None => "CURRENT ROW".to_string(),
                    Some((sql, _)) => format!("INTERVAL '{sql}' PRECEDING"),
                };
                format!(
                    "{call}{filter} OVER (PARTITION BY k ORDER BY ts RANGE BETWEEN \
                     INTERVAL '{}' PRECEDING AND {end}) AS w{i}",
                    w.width.0
                )
            })
            .collect();
        format!("SELECT id, {} FROM t ORDER BY id", windows.join(", "))
    }

    /// The rows in `window`'s frame at row `at`, filter applied.
    fn frame(&self, window: &Window, at: usize) -> Vec<&Row> {
        let row = &self.rows[at];
        let tick = i128::from(nanos_per_tick(self.unit));
        let end = window.end.map_or(0, |(_, nanos)| nanos);
        self.rows
            .iter()
            .enumerate()
            .filter(|(id, other)| {
                let in_frame = match (row.time, other.time) {
                    (None, None) => true,
                    (Some(t), Some(o)) => {
                        let before = i128::from(t - o) * tick;
                        end <= before && before <= window.width.1
                    }
                    _ => false,
                };
                other.key == row.key && in_frame && !(window.filtered && id % 3 == 0)
            })
            .map(|(_, other)| other)
            .collect()
    }
}

/// What a window's value must be.
#[derive(Debug)]
enum Expected {
    Null,
    Whole(i128),
    /// A double within `tolerance`.
    Float {
        value: f64,
        tolerance: f64,
    },
    /// first_value or last_value: any peer's value at the frame's end.
    OneOfFloat(Vec<Option<f64>>),
    OneOfWhole(Vec<Option<i128>>),
}

fn expected(case: &Case, window: &Window, at: usize) -> Expected {
    let frame = case.frame(window, at);
    let float = case.value_type == ValueType::Float64;
    let doubles: Vec<f64> = frame
        .iter()
        .filter_map(|r| {
            if float {
                r.float
            } else {
                r.whole.map(|v| v as f64)
            }
        })
        .collect();
    let wholes: Vec<i128> = frame.iter().filter_map(|r| r.whole).collect();
    let present = if float { doubles.len() } else { wholes.len() };
    let exact = |value: f64| Expected::Float {
        value,
        tolerance: 0.0,
    };
    match window.function {
        "count" => return Expected::Whole(present as i128),
        "count_star" => return Expected::Whole(frame.len() as i128),
        "first_value" | "last_value" => {
            let times = frame.iter().map(|r| r.time);
            let end = if window.function == "first_value" {
                times.min()
            } else {
                times.max()
            };
            let Some(end) = end else {
                return Expected::Null;
            };
            let peers = frame.iter().filter(|r| r.time == end);
            return match float {
                true => Expected::OneOfFloat(peers.map(|r| r.float).collect()),
                false => Expected::OneOfWhole(peers.map(|r| r.whole).collect()),
            };
        }
        _ if present == 0 => return Expected::Null,
        _ => {}
    }
    let non_finite = |values: &[f64]| {
        let nan = values.iter().any(|v| v.is_nan());
        let positive = values.contains(&f64::INFINITY);
        let negative = values.contains(&f64::NEG_INFINITY);
        match (nan || (positive && negative), positive, negative) {
            (true, _, _) => Some(f64::NAN),
            (_, true, _) => Some(f64::INFINITY),
            (_, _, true) => Some(f64::NEG_INFINITY),
            _ => None,
        }
    };
    let magnitude: f64 = doubles
        .iter()
        .filter(|v| v.is_finite())
        .map(|v| v.abs())
        .sum();
    // A sliding compensated sum carries rounding of the order of EPSILON^2 times the
    // magnitude of every value that has been in the key's windows: the values of the key up
    // to this row.
    let row = &case.rows[at];
    let history: f64 = case
        .rows
        .iter()
        .filter(|r| r.key == row.key && r.time.is_some() && r.time <= row.time)
        .filter_map(|r| {
            if float {
                r.float
            } else {
                r.whole.map(|v| v as f64)
            }
        })
        .filter(|v| v.is_finite())
        .map(f64::abs)
        .sum();
    match window.function {
        "sum" if !float => {
            let total: i128 = wholes.iter().sum();
            // Sums of integers wrap at 64 bits, as DataFusion's do.
            Expected::Whole(case.value_type.wrapped_sum(total))
        }
        "sum" | "avg" => {
            let n = if window.function == "avg" {
                present as f64
            } else {
                1.0
            };
            match non_finite(&doubles) {
                Some(value) => exact(value / n),
                None => {
                    let value = if float {
                        exact_sum(&doubles)
                    } else {
                        wholes.iter().sum::<i128>() as f64
                    };
                    Expected::Float {
                        value: value / n,
                        tolerance: (1e-12 * value.abs()
                            + 1e-15 * magnitude
                            + 4.0 * f64::EPSILON * f64::EPSILON * history)
                            / n,
                    }
                }
            }
        }
        "min" | "max" => {
            if !float {
                let best = if window.function == "min" {
                    wholes.iter().min()
                } else {
                    wholes.iter().max()
                };
                return Expected::Whole(*best.unwrap());
            }
            let best = if window.function == "min" {
                doubles.iter().min_by(nan_above)
            } else {
                doubles.iter().max_by(nan_above)
            };
            exact(*best.unwrap())
        }
        "stddev" | "var_pop" => {
            let population = window.function == "var_pop";
            if !population && present < 2 {
                return Expected::Null;
            }
            if non_finite(&doubles).is_some() {
                return exact(f64::NAN);
            }
            let value = exact_spread(&doubles, !population, population);
            Expected::Float {
                value,
                tolerance: 1e-9 * value.abs(),
            }
        }
        other => panic!("no reference for {other}"),
    }
}

fn same_float(actual: f64, expected: f64, tolerance: f64) -> bool {
    if expected.is_nan() || actual.is_nan() {
        return expected.is_nan() && actual.is_nan();
    }
    actual == expected || (actual - expected).abs() <= tolerance
}

/// Runs the case's query through DataFusion with fengine's rules and compares every value.
fn check(case: &Case) -> Result<(), TestCaseError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let (plan_windows, batches) = runtime.block_on(async {
        let config = SessionConfig::new()
            .with_batch_size(case.batch_size)
            .with_target_partitions(2);
        let state = SessionStateBuilder::new()
            .with_config(config)
            .with_default_features()
            .with_optimizer_rule(Arc::new(WindowFilterRule))
            .with_physical_optimizer_rule(Arc::new(RangeWindowRule))
            .build();
        let context = SessionContext::new_with_state(state);
        context.register_batch("t", case.batch()).unwrap();
        let frame = context.sql(&case.sql()).await.unwrap();
        let plan = frame.create_physical_plan().await.unwrap();
        let windows = rolling_windows(plan.as_ref());
        let batches = collect(plan, context.task_ctx()).await.unwrap();
        (windows, batches)
    });
    prop_assert_eq!(
        plan_windows.len(),
        case.windows.len(),
        "fengine's operator computes every window: {:?}",
        plan_windows
    );
    let mut at = 0;
    for batch in &batches {
        let ids = batch.column(0).as_primitive::<Int64Type>();
        for row in 0..batch.num_rows() {
            let id = ids.value(row) as usize;
            prop_assert_eq!(id, at);
            for (index, window) in case.windows.iter().enumerate() {
                let column = batch.column(index + 1);
                let expected = expected(case, window, id);
                let ok = match (&expected, column.is_null(row)) {
                    (Expected::Null, null) => null,
                    (Expected::OneOfFloat(floats), true) => floats.contains(&None),
                    (Expected::OneOfWhole(wholes), true) => wholes.contains(&None),
                    (Expected::OneOfFloat(floats), false) => {
                        let value = float_at(column, row);
                        floats.iter().flatten().any(|e| same_float(value, *e, 0.0))
                    }
                    (Expected::OneOfWhole(wholes), false) => {
                        wholes.contains(&Some(whole_at(column, row)))
                    }
                    (_, true) => false,
                    (Expected::Whole(e), false) => whole_at(column, row) == *e,
                    (Expected::Float { value, tolerance }, false) => {
                        same_float(float_at(column, row), *value, *tolerance)
                    }
                };
                prop_assert!(
                    ok,
                    "row {} window {:?}: got {:?}, expected {:?}\nframe: {:?}",
                    id,
                    window,
                    arrow::util::display::array_value_to_string(column, row),
                    expected,
                    case.frame(window, id)
                );
            }
            at += 1;
        }
    }
    prop_assert_eq!(at, case.rows.len());
    Ok(())
}

fn float_at(column: &ArrayRef, row: usize) -> f64 {
    cast(column, &DataType::Float64)
        .unwrap()
        .as_primitive::<Float64Type>()
        .value(row)
}

fn whole_at(column: &ArrayRef, row: usize) -> i128 {
    match column.data_type() {
        DataType::UInt64 => i128::from(column.as_primitive::<UInt64Type>().value(row)),
        _ => i128::from(
            cast(column, &DataType::Int64)
                .unwrap()
                .as_primitive::<Int64Type>()
                .value(row),
        ),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn windows_equal_a_nested_loop(case in case()) {
        check(&case)?;
    }
}

/// The first node of type `T` in `plan`.
fn find<T: ExecutionPlan>(plan: &Arc<dyn ExecutionPlan>) -> Option<Arc<dyn ExecutionPlan>> {
    if plan.downcast_ref::<T>().is_some() {
        return Some(plan.clone());
    }
    plan.children().into_iter().find_map(find::<T>)
}

#[tokio::test]
async fn the_operator_outputs_what_its_properties_say_and_counts_its_rows() {
    let rows = 1_000;
    let keys: Vec<i64> = (0..rows).map(|i| i % 7).collect();
    let times: Vec<i64> = (0..rows).map(|i| (i * 7_919) % 500).collect();
    let schema = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, false),
        Field::new("t", DataType::Timestamp(TimeUnit::Second, None), false),
        Field::new("v", DataType::Int64, true),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(keys)),
            Arc::new(arrow::array::TimestampSecondArray::from(times)),
            Arc::new(Int64Array::from_iter(
                (0..rows).map(|i| (i % 5 != 0).then_some(i)),
            )),
        ],
    )
    .unwrap();
    let config = SessionConfig::new()
        .with_batch_size(64)
        .with_target_partitions(3);
    let state = SessionStateBuilder::new()
        .with_config(config)
        .with_default_features()
        .with_physical_optimizer_rule(Arc::new(RangeWindowRule))
        .build();
    let context = SessionContext::new_with_state(state);
    context.register_batch("t", batch).unwrap();
    let sql = "SELECT k, t, sum(v) OVER (PARTITION BY k ORDER BY t \
               RANGE BETWEEN INTERVAL '20 seconds' PRECEDING AND CURRENT ROW) AS s FROM t";
    let plan = context
        .sql(sql)
        .await
        .unwrap()
        .create_physical_plan()
        .await
        .unwrap();
    let exec = find::<RangeWindowExec>(&plan).expect("the rule places the operator");
    assert!(
        exec.output_ordering().is_some(),
        "it keeps its input's order"
    );

    let outputs = outputs_as_declared(&exec, context.task_ctx()).await;

    let output: usize = outputs.iter().flatten().map(RecordBatch::num_rows).sum();
    assert_eq!(output, rows as usize);
    let metrics = exec.metrics().expect("the operator has metrics");
    assert_eq!(metrics.output_rows(), Some(rows as usize));
    assert!(metrics.elapsed_compute().is_some());
}
