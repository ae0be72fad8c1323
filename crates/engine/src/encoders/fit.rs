//! Fitting: every transform's accumulator fed each batch of the rows fitted on, in one pass,
//! then finished into scikit-learn's fitted attributes. Exact, on all rows: moments in
//! float64 (Welford's), minima and maxima, category counts, and for quantile buckets the
//! values themselves (8 bytes a row of that column), whose order statistics are selected,
//! not sampled.

use std::collections::HashMap;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type, Schema};
use fengine_dialect::{
    BinStrategy, EncoderTransform, OutOfRange, QuantileMethod, SourceLocation, Transform,
};

use super::{Bucketize, EncoderParameters, Fitted, Log1p, MinMax, OneHot, StandardScale};
use crate::error::{Error, Result};
use crate::statistics::Moments;

/// The encoder being fitted: a transform's accumulator per column.
pub struct Fitter {
    encoder: String,
    transforms: Vec<Accumulating>,
}

struct Accumulating {
    declared: EncoderTransform,
    index: usize,
    data_type: DataType,
    accumulator: Accumulator,
}

enum Accumulator {
    /// standard_scale
    Moments {
        moments: Moments,
        min: f64,
        max: f64,
    },
    /// min_max, and uniform buckets
    Bounds { min: f64, max: f64 },
    /// log1p: nothing to learn
    Nothing,
    /// one_hot
    Counts(HashMap<String, u64>),
    /// quantile buckets
    Values(Vec<f64>),
}

impl Fitter {
    /// A fitter of `transforms` over rows of `schema`; an error, at the transform, for a
    /// column the rows lack or whose type the transform cannot take.
    pub fn new(
        encoder: &str,
        transforms: &[EncoderTransform],
        schema: &Schema,
        location: &SourceLocation,
    ) -> Result<Fitter> {
        let transforms = transforms
            .iter()
            .map(|declared| {
                let at = SourceLocation {
                    line: declared.line,
                    column: declared.column_number,
                    ..location.clone()
                };
                let column = declared.column_name();
                let Ok(index) = schema.index_of(&column) else {
                    let columns: Vec<&str> =
                        schema.fields().iter().map(|f| f.name().as_str()).collect();
                    return Err(Error::plan(
                        &at,
                        format!(
                            "encoder '{encoder}' transforms column '{column}', which the rows it \
                             is fitted on lack; they have {}",
                            columns.join(", ")
                        ),
                    ));
                };
                let data_type = schema.field(index).data_type();
                check_type(&declared.transform, data_type).map_err(|takes| {
                    Error::plan(
                        &at,
                        format!(
                            "encoder '{encoder}': {} cannot take column '{column}' of type \
                             {data_type}: it takes {takes}",
                            function(&declared.transform)
                        ),
                    )
                })?;
                if let Transform::Log1p {
                    out_of_range: OutOfRange::Clip,
                } = declared.transform
                {
                    return Err(Error::plan(
                        &at,
                        format!(
                            "encoder '{encoder}': log1p({column}) is defined above -1, a range \
                             with no nearest value to clip to: use out_of_range => 'null' or \
                             'error'"
                        ),
                    ));
                }
                Ok(Accumulating {
                    declared: declared.clone(),
                    index,
                    data_type: data_type.clone(),
                    accumulator: Accumulator::of(&declared.transform),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Fitter {
            encoder: encoder.to_string(),
            transforms,
        })
    }

    /// Adds a batch of the rows fitted on.
    pub fn observe(&mut self, batch: &RecordBatch) -> Result<()> {
        for transform in &mut self.transforms {
            let values = batch.column(transform.index);
            transform
                .accumulator
                .add(values)
                .map_err(|why| fit_error(&self.encoder, &transform.declared, &why))?;
        }
        Ok(())
    }

    /// The fitted parameters, once every row has been observed.
    pub fn finish(self) -> Result<EncoderParameters> {
        let encoder = self.encoder;
        let transforms = self
            .transforms
            .into_iter()
            .map(|t| {
                let column = t.declared.column_name();
                t.accumulator
                    .finish(column, t.data_type.to_string(), &t.declared.transform)
                    .map_err(|why| fit_error(&encoder, &t.declared, &why))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(EncoderParameters { transforms })
    }
}

fn fit_error(encoder: &str, declared: &EncoderTransform, why: &str) -> Error {
    Error::Check(format!(
        "encoder '{encoder}' cannot fit {}({}) (line {}): {why}",
        function(&declared.transform),
        declared.column_name(),
        declared.line
    ))
}

pub(super) fn function(transform: &Transform) -> &'static str {
    match transform {
        Transform::StandardScale { .. } => "standard_scale",
        Transform::MinMax { .. } => "min_max",
        Transform::Log1p { .. } => "log1p",
        Transform::OneHot { .. } => "one_hot",
        Transform::Bucketize { .. } => "bucketize",
    }
}

/// Ok if the transform takes the type, else what it takes.
fn check_type(
    transform: &Transform,
    data_type: &DataType,
) -> std::result::Result<(), &'static str> {
    let is_string = matches!(
        data_type,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    ) || matches!(data_type, DataType::Dictionary(_, v) if matches!(**v, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View));
    match transform {
        Transform::OneHot { .. } if is_string => Ok(()),
        Transform::OneHot { .. } => Err("strings (to one-hot numbers or booleans, cast them to \
             strings in the query, knowing that their categories then sort as strings)"),
        _ if data_type.is_numeric() => Ok(()),
        _ => Err("numbers"),
    }
}

impl Accumulator {
    fn of(transform: &Transform) -> Accumulator {
        match transform {
            Transform::StandardScale { .. } => Accumulator::Moments {
                moments: Moments::default(),
                min: f64::INFINITY,
                max: f64::NEG_INFINITY,
            },
            Transform::MinMax { .. }
            | Transform::Bucketize {
                strategy: BinStrategy::Uniform,
                ..
            } => Accumulator::Bounds {
                min: f64::INFINITY,
                max: f64::NEG_INFINITY,
            },
            Transform::Log1p { .. } => Accumulator::Nothing,
            Transform::OneHot { .. } => Accumulator::Counts(HashMap::new()),
            Transform::Bucketize {
                strategy: BinStrategy::Quantile(_),
                ..
            } => Accumulator::Values(Vec::new()),
        }
    }

    fn add(&mut self, values: &ArrayRef) -> std::result::Result<(), String> {
        if let Accumulator::Counts(counts) = self {
            let strings = cast(values, &DataType::Utf8).map_err(|e| e.to_string())?;
            for value in strings.as_string::<i32>().iter().flatten() {
                match counts.get_mut(value) {
                    Some(count) => *count += 1,
                    None => {
                        counts.insert(value.to_string(), 1);
                    }
                }
            }
            return Ok(());
        }
        if let Accumulator::Nothing = self {
            return Ok(());
        }
        let numbers = cast(values, &DataType::Float64).map_err(|e| e.to_string())?;
        let numbers = numbers.as_primitive::<Float64Type>();
        let present = numbers.iter().flatten().filter(|v| !v.is_nan());
        match self {
            Accumulator::Moments { moments, min, max } => {
                for value in present {
                    finite(value)?;
                    moments.add(value);
                    *min = min.min(value);
                    *max = max.max(value);
                }
            }
            Accumulator::Bounds { min, max } => {
                for value in present {
                    finite(value)?;
                    *min = min.min(value);
                    *max = max.max(value);
                }
            }
            Accumulator::Values(kept) => {
                kept.reserve(numbers.len() - numbers.null_count());
                for value in present {
                    finite(value)?;
                    kept.push(value);
                }
            }
            Accumulator::Nothing | Accumulator::Counts(_) => unreachable!("returned above"),
        }
        Ok(())
    }

    fn finish(
        self,
        column: String,
        input_type: String,
        transform: &Transform,
    ) -> std::result::Result<Fitted, String> {
        let no_values = || "the rows fitted on hold no value of it (all null or NaN)".to_string();
        let fitted = match (self, transform) {
            (
                Accumulator::Moments { moments, min, max },
                Transform::StandardScale { out_of_range },
            ) => {
                if moments.count == 0 {
                    return Err(no_values());
                }
                let (mean, var) = (moments.mean, moments.m2 / moments.count as f64);
                let n = moments.count as f64;
                // scikit-learn's `_is_constant_feature`: within the error bound of the
                // variance's computation, the column is constant and scales by 1.
                let upper_bound = n * f64::EPSILON * var + (n * mean * f64::EPSILON).powi(2);
                let scale = if var <= upper_bound { 1.0 } else { var.sqrt() };
                Fitted::StandardScale(StandardScale {
                    column,
                    input_type: input_type.clone(),
                    mean,
                    var,
                    scale,
                    count: moments.count,
                    data_min: min,
                    data_max: max,
                    out_of_range: *out_of_range,
                })
            }
            (Accumulator::Bounds { min, max }, Transform::MinMax { out_of_range }) => {
                if min > max {
                    return Err(no_values());
                }
                let range = max - min;
                // `_handle_zeros_in_scale`: a range below 10 ε scales by 1.
                let scale = 1.0
                    / if range < 10.0 * f64::EPSILON {
                        1.0
                    } else {
                        range
                    };
                Fitted::MinMax(MinMax {
                    column,
                    input_type: input_type.clone(),
                    data_min: min,
                    data_max: max,
                    scale,
                    min: 0.0 - min * scale,
                    out_of_range: *out_of_range,
                })
            }
            (Accumulator::Nothing, Transform::Log1p { out_of_range }) => Fitted::Log1p(Log1p {
                column,
                input_type: input_type.clone(),
                out_of_range: *out_of_range,
            }),
            (
                Accumulator::Counts(counts),
                Transform::OneHot {
                    max_categories,
                    unknown,
                },
            ) => {
                if counts.is_empty() {
                    return Err(no_values());
                }
                let mut categories: Vec<(String, u64)> = counts.into_iter().collect();
                categories.sort();
                let infrequent = infrequent(&categories, *max_categories);
                Fitted::OneHot(OneHot {
                    column,
                    categories: categories.into_iter().map(|(c, _)| c).collect(),
                    infrequent,
                    unknown: *unknown,
                })
            }
            (
                Accumulator::Bounds { min, max },
                Transform::Bucketize {
                    bins, out_of_range, ..
                },
            ) => {
                if min > max {
                    return Err(no_values());
                }
                Fitted::Bucketize(Bucketize {
                    column,
                    input_type: input_type.clone(),
                    bin_edges: constant_or(min, max, || linspace(min, max, *bins as usize + 1)),
                    strategy: "uniform".to_string(),
                    quantile_method: None,
                    out_of_range: *out_of_range,
                })
            }
            (
                Accumulator::Values(mut values),
                Transform::Bucketize {
                    bins,
                    strategy: BinStrategy::Quantile(method),
                    out_of_range,
                },
            ) => {
                if values.is_empty() {
                    return Err(no_values());
                }
                let (min, max) = values
                    .iter()
                    .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
                        (lo.min(*v), hi.max(*v))
                    });
                let bin_edges = constant_or(min, max, || {
                    let edges = quantile_edges(&mut values, *bins as usize, *method);
                    drop_narrow_bins(edges)
                });
                Fitted::Bucketize(Bucketize {
                    column,
                    input_type: input_type.clone(),
                    bin_edges,
                    strategy: "quantile".to_string(),
                    quantile_method: Some(*method),
                    out_of_range: *out_of_range,
                })
            }
            _ => unreachable!("each transform's accumulator is made by Accumulator::of"),
        };
        Ok(fitted)
    }
}

/// scikit-learn refuses infinities in what it fits on, and so does fengine.
fn finite(value: f64) -> std::result::Result<(), String> {
    match value.is_finite() {
        true => Ok(()),
        false => Err(format!(
            "the rows fitted on hold {value}, which scikit-learn's estimators refuse too: \
             filter it out or cap it in the query"
        )),
    }
}

/// The infrequent categories of `max_categories` (which counts the infrequent column), as
/// `OneHotEncoder._identify_infrequent` finds them: of the categories in sorted order, a
/// stable sort by count keeps the `max_categories − 1` most frequent, ties going to the
/// later ones.
fn infrequent(categories: &[(String, u64)], max_categories: Option<u32>) -> Vec<String> {
    let Some(max) = max_categories.map(|m| m as usize) else {
        return Vec::new();
    };
    // Room for every category and the infrequent column: none is infrequent.
    if max > categories.len() {
        return Vec::new();
    }
    let frequent = max - 1;
    let mut by_count: Vec<usize> = (0..categories.len()).collect();
    by_count.sort_by_key(|i| categories[*i].1);
    let mut infrequent: Vec<String> = by_count[..categories.len() - frequent]
        .iter()
        .map(|i| categories[*i].0.clone())
        .collect();
    infrequent.sort();
    infrequent
}

/// A constant column has one bucket, from −inf to inf (`KBinsDiscretizer`).
fn constant_or(min: f64, max: f64, edges: impl FnOnce() -> Vec<f64>) -> Vec<f64> {
    match min == max {
        true => vec![f64::NEG_INFINITY, f64::INFINITY],
        false => edges(),
    }
}

/// numpy's `linspace(start, stop, num)`: start + i · step, the last exactly `stop`.
fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    let step = (stop - start) / (num - 1) as f64;
    let mut points: Vec<f64> = (0..num).map(|i| i as f64 * step + start).collect();
    points[num - 1] = stop;
    points
}

/// The edges at the percentiles `linspace(0, 100, bins + 1)` of `values`, as
/// `np.percentile(values, levels, method)` computes them.
fn quantile_edges(values: &mut [f64], bins: usize, method: QuantileMethod) -> Vec<f64> {
    let n = values.len();
    let last = n - 1;
    // Per level: the two ranks and the weight of the upper one.
    let positions: Vec<(usize, usize, f64)> = linspace(0.0, 100.0, bins + 1)
        .into_iter()
        .map(|level| {
            let q = level / 100.0;
            match method {
                QuantileMethod::Linear => {
                    let index = (n - 1) as f64 * q;
                    let below = index.floor();
                    let (lo, hi) = ranks(below, last, index);
                    (lo, hi, index - below)
                }
                QuantileMethod::AveragedInvertedCdf => {
                    let index = n as f64 * q - 1.0;
                    let below = index.floor();
                    let (lo, hi) = ranks(below, last, index);
                    let gamma = if index - below == 0.0 { 0.5 } else { 1.0 };
                    (lo, hi, gamma)
                }
                QuantileMethod::InvertedCdf => {
                    let index = n as f64 * q - 1.0;
                    let below = index.floor();
                    let rank = if index - below == 0.0 {
                        below
                    } else {
                        below + 1.0
                    };
                    let rank = rank.clamp(0.0, last as f64) as usize;
                    (rank, rank, 0.0)
                }
            }
        })
        .collect();
    let mut wanted: Vec<usize> = positions
        .iter()
        .flat_map(|(lo, hi, _)| [*lo, *hi])
        .collect();
    wanted.sort_unstable();
    wanted.dedup();
    let ordered = order_statistics(values, &wanted);
    let at = |rank: usize| ordered[wanted.binary_search(&rank).expect("a wanted rank")];
    positions
        .into_iter()
        .map(|(lo, hi, gamma)| lerp(at(lo), at(hi), gamma))
        .collect()
}

/// numpy's `_get_indexes`: the ranks around a virtual index, both the last at or past
/// it, both the first below 0.
fn ranks(below: f64, last: usize, index: f64) -> (usize, usize) {
    if index >= last as f64 {
        (last, last)
    } else if index < 0.0 {
        (0, 0)
    } else {
        (below as usize, below as usize + 1)
    }
}

/// numpy's `_lerp`, which interpolates from the nearer end.
fn lerp(a: f64, b: f64, t: f64) -> f64 {
    let difference = b - a;
    match t >= 0.5 {
        true => b - difference * (1.0 - t),
        false => a + difference * t,
    }
}

/// The values at the ascending `ranks` of `values` in sorted order, selected (not sorted):
/// each selection leaves the greater values after the rank, where the next is looked for.
fn order_statistics(values: &mut [f64], ranks: &[usize]) -> Vec<f64> {
    let mut start = 0;
    ranks
        .iter()
        .map(|&rank| {
            let (_, value, _) =
                values[start..].select_nth_unstable_by(rank - start, f64::total_cmp);
            let value = *value;
            start = rank;
            value
        })
        .collect()
}

/// `KBinsDiscretizer` drops the edges less than 1e-8 above the one before (a bucket too
/// narrow to hold anything).
fn drop_narrow_bins(edges: Vec<f64>) -> Vec<f64> {
    let mut kept: Vec<f64> = Vec::with_capacity(edges.len());
    let mut previous = f64::NEG_INFINITY;
    for edge in edges {
        if kept.is_empty() || edge - previous > 1e-8 {
            kept.push(edge);
        }
        previous = edge;
    }
    kept
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// numpy 2.4's `np.percentile(values, np.linspace(0, 100, 4), method=...)`.
    #[test]
    fn quantile_edges_are_numpy_s_percentiles() {
        let cases: [(&[f64], QuantileMethod, [f64; 4]); 6] = [
            (
                &[1.0, 2.0, 3.0, 4.0, 5.0],
                QuantileMethod::Linear,
                [1.0, 2.3333333333333335, 3.666666666666667, 5.0],
            ),
            (
                &[1.0, 2.0, 3.0, 4.0, 5.0],
                QuantileMethod::AveragedInvertedCdf,
                [1.0, 2.0, 4.0, 5.0],
            ),
            (
                &[1.0, 2.0, 3.0, 4.0, 5.0],
                QuantileMethod::InvertedCdf,
                [1.0, 2.0, 4.0, 5.0],
            ),
            (
                &[5.0, 1.0, 1.0, 1.0, 9.0, 2.0, 2.0],
                QuantileMethod::Linear,
                [1.0, 1.0, 2.0, 9.0],
            ),
            (
                &[5.0, 1.0, 1.0, 1.0, 9.0, 2.0, 2.0],
                QuantileMethod::AveragedInvertedCdf,
                [1.0, 1.0, 2.0, 9.0],
            ),
            (
                &[1.0, 2.0, 3.0, 4.0],
                QuantileMethod::AveragedInvertedCdf,
                [1.0, 2.0, 3.0, 4.0],
            ),
        ];
        for (values, method, expected) in cases {
            let mut values = values.to_vec();
            assert_eq!(
                quantile_edges(&mut values, 3, method),
                expected,
                "{method:?}"
            );
        }
        // Repeated edges leave one bucket between them.
        assert_eq!(drop_narrow_bins(vec![1.0, 1.0, 2.0, 9.0]), [1.0, 2.0, 9.0]);
    }

    /// scikit-learn 1.9's `OneHotEncoder(max_categories=...).infrequent_categories_`.
    #[test]
    fn infrequent_categories_are_scikit_learn_s() {
        let counted = |pairs: &[(&str, u64)]| -> Vec<(String, u64)> {
            pairs.iter().map(|(c, n)| (c.to_string(), *n)).collect()
        };
        let abcd = counted(&[("a", 1), ("b", 2), ("c", 2), ("d", 1)]);
        assert_eq!(infrequent(&abcd, Some(3)), ["a", "d"]);
        assert_eq!(infrequent(&abcd, Some(5)), Vec::<String>::new());
        assert_eq!(infrequent(&abcd, None), Vec::<String>::new());
        // Ties go to the later categories; one column left holds them all.
        let abc = counted(&[("a", 1), ("b", 1), ("c", 1)]);
        assert_eq!(infrequent(&abc, Some(3)), ["a"]);
        assert_eq!(infrequent(&abc, Some(1)), ["a", "b", "c"]);
    }

    #[test]
    fn linspace_ends_exactly_at_its_stop() {
        assert_eq!(
            linspace(0.0, 100.0, 4),
            [0.0, 33.333333333333336, 66.66666666666667, 100.0]
        );
        assert_eq!(linspace(0.1, 0.7, 3).last(), Some(&0.7));
    }

    proptest! {
        #[test]
        fn selected_order_statistics_are_the_sorted_values(
            mut values in prop::collection::vec(-1e6f64..1e6, 1..400),
            picks in prop::collection::vec(0usize..400, 1..12),
        ) {
            let mut sorted = values.clone();
            sorted.sort_by(f64::total_cmp);
            let mut ranks: Vec<usize> = picks.into_iter().map(|p| p % values.len()).collect();
            ranks.sort_unstable();
            ranks.dedup();
            let expected: Vec<f64> = ranks.iter().map(|r| sorted[*r]).collect();
            prop_assert_eq!(order_statistics(&mut values, &ranks), expected);
        }
    }
}
