//! The backfill sweep against a nested loop over generated rows, at every as-of: every time
//! unit (s to ns) and zone (none, UTC, one with daylight saving time), window bounds of
//! either kind hit to the nanosecond, FILTER windows and conditions, doubles from 1e-300 to
//! 1e300 with NaN (of either sign) and infinities, integers of 8 and 64 bits, signed or not,
//! at their extremes.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type, Int64Type, TimeUnit, UInt64Type};
use chrono::{DateTime, Utc};
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::Statement;
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;
use proptest::prelude::*;

use super::{Sweep, SweepQuery};
use crate::functions::as_of_udf;
use crate::test_support::{
    GeneratedRow, ValueType, exact_sum, float_value, generated_table, nan_above,
};
use crate::timestamps::nanos_per_tick;

/// 2024-03-30T12:00:00Z: the as-ofs step across Europe/Paris's change to summer time.
const FIRST_AS_OF: i64 = 1_711_800_000;
const AS_OF_STEP: i64 = 6 * 3_600;
const AS_OFS: i64 = 6;

#[derive(Debug, Clone)]
struct Row {
    key: i64,
    /// Nanoseconds since the epoch, a whole number of ticks of the case's unit.
    time: Option<i128>,
    float: Option<f64>,
    whole: Option<i128>,
}

#[derive(Debug, Clone)]
struct Case {
    unit: TimeUnit,
    zone: Option<&'static str>,
    value_type: ValueType,
    /// (width in nanoseconds, SQL), lower bound inclusive, upper bound inclusive.
    window: (i128, &'static str),
    lower_inclusive: bool,
    upper_inclusive: bool,
    /// The FILTER's narrower window, lower bound inclusive.
    narrow: (i128, &'static str),
    narrow_inclusive: bool,
    rows: Vec<Row>,
}

const WINDOWS: [(i128, &str); 4] = [
    (1_000, "1 microsecond"),
    (1_000_000_000, "1 second"),
    (21_600_000_000_000, "6 hours"),
    (86_400_000_000_000, "1 day"),
];

/// Times near the as-ofs and the windows' lower bounds, off by a few nanoseconds.
const OFFSETS: [i128; 9] = [0, 1, -1, 400, -500, 999, -999, 1_000_000, -1_000_000_000];

fn case() -> impl Strategy<Value = Case> {
    let units = prop::sample::select(vec![
        TimeUnit::Second,
        TimeUnit::Millisecond,
        TimeUnit::Microsecond,
        TimeUnit::Nanosecond,
    ]);
    let zones = prop::sample::select(vec![None, Some("UTC"), Some("Europe/Paris")]);
    let types = ValueType::any();
    (
        units,
        zones,
        types,
        prop::sample::select(WINDOWS.to_vec()),
        prop::sample::select(WINDOWS.to_vec()),
        any::<(bool, bool, bool)>(),
    )
        .prop_flat_map(
            |(unit, zone, value_type, window, narrow, (lower, upper, narrow_inclusive))| {
                let tick = i128::from(nanos_per_tick(unit));
                let time = (
                    0..AS_OFS,
                    prop::sample::select(vec![0, 1]),
                    prop::sample::select(OFFSETS.to_vec()),
                )
                    .prop_map(move |(as_of, at_bound, offset)| {
                        let as_of = i128::from(FIRST_AS_OF + as_of * AS_OF_STEP) * 1_000_000_000;
                        let at = as_of - at_bound * window.0 + offset;
                        at.div_euclid(tick) * tick
                    });
                let row = (
                    0..3i64,
                    prop::option::weighted(0.95, time),
                    float_value(),
                    value_type.whole_value(),
                )
                    .prop_map(|(key, time, float, whole)| Row {
                        key,
                        time,
                        float,
                        whole,
                    });
                prop::collection::vec(row, 0..60).prop_map(move |rows| Case {
                    unit,
                    zone,
                    value_type,
                    window,
                    lower_inclusive: lower,
                    upper_inclusive: upper,
                    narrow,
                    narrow_inclusive,
                    rows,
                })
            },
        )
}

/// The aggregates of the query, in its SELECT order after the key and the event time.
const AGGREGATES: [&str; 9] = [
    "sum",
    "count",
    "count_star",
    "avg",
    "min",
    "max",
    "count_distinct",
    "sum_narrow",
    "count_filtered",
];

impl Case {
    fn batch(&self) -> RecordBatch {
        let tick = i128::from(nanos_per_tick(self.unit));
        let rows: Vec<GeneratedRow> = self
            .rows
            .iter()
            .map(|r| (r.key, r.time.map(|t| (t / tick) as i64), r.float, r.whole))
            .collect();
        generated_table("t", self.unit, self.zone, self.value_type, &rows)
    }

    fn sql(&self) -> String {
        let lower = if self.lower_inclusive { ">=" } else { ">" };
        let upper = if self.upper_inclusive { "<=" } else { "<" };
        let narrow = if self.narrow_inclusive { ">=" } else { ">" };
        format!(
            "SELECT k, as_of() AS event_time, sum(v), count(v), count(*), avg(v), min(v), \
             max(v), count(DISTINCT v), \
             sum(v) FILTER (WHERE t {narrow} as_of() - INTERVAL '{}'), \
             count(*) FILTER (WHERE id % 3 <> 0) \
             FROM events WHERE t {lower} as_of() - INTERVAL '{}' AND t {upper} as_of() \
             GROUP BY k",
            self.narrow.1, self.window.1
        )
    }

    fn in_window(&self, time: i128, as_of: i128, width: i128, inclusive: bool) -> bool {
        let lower = as_of - width;
        let above = if inclusive {
            time >= lower
        } else {
            time > lower
        };
        let below = if self.upper_inclusive {
            time <= as_of
        } else {
            time < as_of
        };
        above && below
    }
}

fn as_ofs() -> Vec<DateTime<Utc>> {
    (0..AS_OFS)
        .map(|i| DateTime::from_timestamp(FIRST_AS_OF + i * AS_OF_STEP, 0).unwrap())
        .collect()
}

/// What an aggregate must be: a whole number, a double within a tolerance, or null.
#[derive(Debug, PartialEq)]
enum Expected {
    Null,
    Whole(i128),
    Float(f64, f64),
}

fn expected(case: &Case, as_of: i128, key: i64) -> Option<Vec<Expected>> {
    let rows: Vec<(usize, &Row)> = case
        .rows
        .iter()
        .enumerate()
        .filter(|(_, r)| r.key == key)
        .filter(|(_, r)| {
            r.time
                .is_some_and(|t| case.in_window(t, as_of, case.window.0, case.lower_inclusive))
        })
        .collect();
    if rows.is_empty() {
        return None;
    }
    let float = case.value_type == ValueType::Float64;
    let history: f64 = case
        .rows
        .iter()
        .filter(|r| r.key == key && r.time.is_some_and(|t| t <= as_of))
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
    let aggregate = |name: &str, rows: &[&Row]| -> Expected {
        let doubles: Vec<f64> = rows
            .iter()
            .filter_map(|r| {
                if float {
                    r.float
                } else {
                    r.whole.map(|v| v as f64)
                }
            })
            .collect();
        let wholes: Vec<i128> = rows.iter().filter_map(|r| r.whole).collect();
        let present = if float { doubles.len() } else { wholes.len() };
        match name {
            "count" => return Expected::Whole(present as i128),
            "count_star" => return Expected::Whole(rows.len() as i128),
            "count_distinct" => {
                // Distinct by their bits, as DataFusion's count(DISTINCT) of a run: NaN and
                // -NaN are two values, as are 0.0 and -0.0.
                let mut distinct: Vec<u64> = if float {
                    doubles.iter().map(|v| v.to_bits()).collect()
                } else {
                    wholes.iter().map(|v| *v as u64).collect()
                };
                distinct.sort();
                distinct.dedup();
                return Expected::Whole(distinct.len() as i128);
            }
            _ if present == 0 => return Expected::Null,
            _ => {}
        }
        match name {
            "sum" if !float => {
                let total: i128 = wholes.iter().sum();
                Expected::Whole(case.value_type.wrapped_sum(total))
            }
            "sum" | "avg" => {
                let n = if name == "avg" { present as f64 } else { 1.0 };
                let nan = doubles.iter().any(|v| v.is_nan());
                let positive = doubles.contains(&f64::INFINITY);
                let negative = doubles.contains(&f64::NEG_INFINITY);
                if nan || (positive && negative) {
                    return Expected::Float(f64::NAN, 0.0);
                }
                if positive || negative {
                    let infinity = if positive {
                        f64::INFINITY
                    } else {
                        f64::NEG_INFINITY
                    };
                    return Expected::Float(infinity, 0.0);
                }
                let value = if float {
                    exact_sum(&doubles)
                } else {
                    wholes.iter().sum::<i128>() as f64
                };
                let magnitude: f64 = doubles.iter().map(|v| v.abs()).sum();
                let tolerance = 1e-12 * value.abs()
                    + 1e-15 * magnitude
                    + 4.0 * f64::EPSILON * f64::EPSILON * history;
                Expected::Float(value / n, tolerance / n)
            }
            "min" | "max" if !float => {
                let best = if name == "min" {
                    wholes.iter().min()
                } else {
                    wholes.iter().max()
                };
                Expected::Whole(*best.unwrap())
            }
            "min" | "max" => {
                let best = if name == "min" {
                    doubles.iter().min_by(nan_above)
                } else {
                    doubles.iter().max_by(nan_above)
                };
                Expected::Float(*best.unwrap(), 0.0)
            }
            other => panic!("no reference for {other}"),
        }
    };
    let all: Vec<&Row> = rows.iter().map(|(_, r)| *r).collect();
    let narrow: Vec<&Row> = all
        .iter()
        .copied()
        .filter(|r| case.in_window(r.time.unwrap(), as_of, case.narrow.0, case.narrow_inclusive))
        .collect();
    let filtered: Vec<&Row> = rows
        .iter()
        .filter(|(id, _)| id % 3 != 0)
        .map(|(_, r)| *r)
        .collect();
    Some(
        AGGREGATES
            .iter()
            .map(|name| match *name {
                "sum_narrow" => aggregate("sum", &narrow),
                "count_filtered" => aggregate("count_star", &filtered),
                name => aggregate(name, &all),
            })
            .collect(),
    )
}

fn actual(column: &ArrayRef, row: usize) -> Expected {
    if column.is_null(row) {
        return Expected::Null;
    }
    match column.data_type() {
        t if t.is_floating() => Expected::Float(
            cast(column, &DataType::Float64)
                .unwrap()
                .as_primitive::<Float64Type>()
                .value(row),
            0.0,
        ),
        DataType::UInt64 => Expected::Whole(column.as_primitive::<UInt64Type>().value(row).into()),
        _ => Expected::Whole(
            cast(column, &DataType::Int64)
                .unwrap()
                .as_primitive::<Int64Type>()
                .value(row)
                .into(),
        ),
    }
}

fn agrees(actual: &Expected, expected: &Expected) -> bool {
    match (actual, expected) {
        (Expected::Float(a, _), Expected::Float(e, tolerance)) => {
            if a.is_nan() || e.is_nan() {
                a.is_nan() && e.is_nan()
            } else {
                a == e || (a - e).abs() <= *tolerance
            }
        }
        (a, e) => a == e,
    }
}

fn check(case: &Case) -> Result<(), TestCaseError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let snapshots = runtime.block_on(async {
        let context = SessionContext::new();
        context.register_udf(as_of_udf(as_ofs()[0]));
        context.register_batch("events", case.batch()).unwrap();
        let sql = case.sql();
        let schema = context.sql(&sql).await.unwrap().schema().as_arrow().clone();
        let Statement::Query(query) = Parser::parse_sql(&GenericDialect {}, &sql)
            .unwrap()
            .remove(0)
        else {
            panic!("a query")
        };
        let query = SweepQuery::recognize(&query).expect("the sweep's shape");
        let mut sweep = Sweep::try_new(&context, &query, Arc::new(schema), &as_ofs())
            .await
            .unwrap()
            .expect("a sweep");
        let mut snapshots = Vec::new();
        while let Some(snapshot) = sweep.next_snapshot().await.unwrap() {
            snapshots.push(snapshot);
        }
        snapshots
    });
    prop_assert_eq!(snapshots.len(), as_ofs().len());
    for (as_of, batch) in snapshots {
        let as_of_nanos = i128::from(as_of.timestamp()) * 1_000_000_000;
        let keys = batch.column(0).as_primitive::<Int64Type>();
        let mut seen = BTreeMap::new();
        for row in 0..batch.num_rows() {
            let key = keys.value(row);
            let expected = expected(case, as_of_nanos, key);
            prop_assert!(
                expected.is_some(),
                "{as_of}: key {key} has no row in the window"
            );
            for (index, expected) in expected.unwrap().iter().enumerate() {
                let got = actual(batch.column(index + 2), row);
                prop_assert!(
                    agrees(&got, expected),
                    "{}: key {} {}: got {:?}, expected {:?}",
                    as_of,
                    key,
                    AGGREGATES[index],
                    got,
                    expected
                );
            }
            seen.insert(key, ());
        }
        for key in 0..3 {
            prop_assert_eq!(
                seen.contains_key(&key),
                expected(case, as_of_nanos, key).is_some(),
                "{}: key {} present",
                as_of,
                key
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn swept_snapshots_equal_a_nested_loop(case in case()) {
        check(&case)?;
    }
}
