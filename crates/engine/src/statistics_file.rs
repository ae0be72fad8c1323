//! A snapshot's full statistics as a Parquet file beside it, a row per feature: all that the
//! catalog's parameter holds, and the sketches it has no room for (each numeric feature's
//! t-digest centroids, each category's every counted value). Drift between any two
//! snapshots is measured on them, and Athena reads them as any table.
//!
//! The file is at `<snapshot>/_statistics/run-<id>/statistics.parquet`: outside the run's
//! folder, which readers of the snapshot take whole.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Float64Builder, ListArray, ListBuilder, RecordBatch,
    StringArray, StringBuilder, UInt64Array, UInt64Builder,
};
use arrow::datatypes::{DataType, Field, Float64Type, Schema, SchemaRef, UInt64Type};
use object_store::ObjectStoreExt;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use url::Url;

use crate::error::{Error, Result};
use crate::published::{self, Snapshot};
use crate::statistics::{
    FeatureStatistics, Histogram, OrderedEdge, QUANTILES, Sketch, TOP_VALUES, ValueCount,
    ValueStatistics,
};
use crate::warehouse::{Warehouse, object_path};

/// The folder of a run's statistics file, under the snapshot's folder.
pub(crate) fn statistics_folder(snapshot_location: &Url, run_id: &str) -> Url {
    snapshot_location
        .join(&format!("_statistics/run-{run_id}/"))
        .expect("run ids are valid URL path segments")
}

pub(crate) fn statistics_file(folder: &Url) -> Url {
    folder
        .join("statistics.parquet")
        .expect("a valid file name")
}

const NUMERIC: &str = "numeric";
const CATEGORICAL: &str = "categorical";
const OTHER: &str = "other";

fn schema() -> SchemaRef {
    let number = |name: &str| Field::new(name, DataType::Float64, true);
    let count = |name: &str| Field::new(name, DataType::UInt64, true);
    let text = |name: &str| Field::new(name, DataType::Utf8, true);
    let list = |name: &str, item: DataType| Field::new(name, DataType::new_list(item, true), true);
    let mut fields = vec![
        Field::new("feature", DataType::Utf8, false),
        Field::new("data_type", DataType::Utf8, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("count", DataType::UInt64, false),
        Field::new("nulls", DataType::UInt64, false),
        count("distinct"),
        count("nan"),
        count("infinite"),
        number("min"),
        number("max"),
        number("mean"),
        number("stddev"),
    ];
    fields.extend(QUANTILES.iter().map(|(name, _)| number(name)));
    fields.extend([
        list("histogram_edges", DataType::Float64),
        list("histogram_counts", DataType::UInt64),
        number("digest_min"),
        number("digest_max"),
        list("digest_means", DataType::Float64),
        list("digest_weights", DataType::Float64),
        text("category_min"),
        text("category_max"),
        list("frequent_values", DataType::Utf8),
        list("frequent_counts", DataType::UInt64),
    ]);
    Arc::new(Schema::new(fields))
}

/// Writes `statistics` as the file at `file`.
pub(crate) async fn write(
    warehouse: &Warehouse,
    file: &Url,
    statistics: &[FeatureStatistics],
    buffer: usize,
) -> Result<()> {
    let batch = to_batch(statistics);
    let mut parquet = warehouse.parquet_file(file, batch.schema(), buffer)?;
    parquet.write(&batch).await?;
    parquet.close().await
}

/// The statistics in the file at `file`.
pub(crate) async fn read(warehouse: &Warehouse, file: &Url) -> Result<Vec<FeatureStatistics>> {
    let unreadable = |e: &dyn std::fmt::Display| {
        Error::Infrastructure(format!("cannot read the statistics file '{file}': {e}"))
    };
    // A few kilobytes a feature: read whole.
    let bytes = warehouse
        .store()
        .get(&object_path(file)?)
        .await
        .map_err(|e| Error::object_store(format!("cannot read '{file}'"), &e))?
        .bytes()
        .await
        .map_err(|e| Error::object_store(format!("cannot read '{file}'"), &e))?;
    let batches = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .and_then(|builder| builder.build())
        .map_err(|e| unreadable(&e))?;
    let mut statistics = Vec::new();
    for batch in batches {
        let batch = batch.map_err(|e| unreadable(&e))?;
        statistics.extend(from_batch(&batch).map_err(|e| unreadable(&e))?);
    }
    Ok(statistics)
}

#[derive(Default)]
struct Builders {
    feature: StringBuilder,
    data_type: StringBuilder,
    kind: StringBuilder,
    count: UInt64Builder,
    nulls: UInt64Builder,
    distinct: UInt64Builder,
    nan: UInt64Builder,
    infinite: UInt64Builder,
    min: Float64Builder,
    max: Float64Builder,
    mean: Float64Builder,
    stddev: Float64Builder,
    quantiles: Vec<Float64Builder>,
    histogram_edges: ListBuilder<Float64Builder>,
    histogram_counts: ListBuilder<UInt64Builder>,
    digest_min: Float64Builder,
    digest_max: Float64Builder,
    digest_means: ListBuilder<Float64Builder>,
    digest_weights: ListBuilder<Float64Builder>,
    category_min: StringBuilder,
    category_max: StringBuilder,
    frequent_values: ListBuilder<StringBuilder>,
    frequent_counts: ListBuilder<UInt64Builder>,
}

fn to_batch(statistics: &[FeatureStatistics]) -> RecordBatch {
    let mut b = Builders {
        quantiles: QUANTILES.iter().map(|_| Float64Builder::new()).collect(),
        ..Builders::default()
    };
    for feature in statistics {
        b.feature.append_value(&feature.feature);
        b.data_type.append_value(&feature.data_type);
        b.count.append_value(feature.count);
        b.nulls.append_value(feature.nulls);
        b.distinct.append_option(feature.distinct);
        let numeric = match &feature.values {
            ValueStatistics::Numeric {
                nan,
                infinite,
                min,
                max,
                mean,
                stddev,
                quantiles,
                histogram,
            } => {
                b.kind.append_value(NUMERIC);
                b.nan.append_value(*nan);
                b.infinite.append_value(*infinite);
                b.min.append_option(*min);
                b.max.append_option(*max);
                b.mean.append_option(*mean);
                b.stddev.append_option(*stddev);
                for ((name, _), builder) in QUANTILES.iter().zip(&mut b.quantiles) {
                    builder.append_option(quantiles.get(*name).copied());
                }
                match histogram {
                    Some(histogram) => {
                        b.histogram_edges
                            .append_value(histogram.edges.iter().map(|e| Some(e.0)));
                        b.histogram_counts
                            .append_value(histogram.counts.iter().map(|c| Some(*c)));
                    }
                    None => {
                        b.histogram_edges.append_null();
                        b.histogram_counts.append_null();
                    }
                }
                true
            }
            ValueStatistics::Categorical { min, max, .. } => {
                b.kind.append_value(CATEGORICAL);
                b.category_min.append_option(min.as_deref());
                b.category_max.append_option(max.as_deref());
                false
            }
            ValueStatistics::Other => {
                b.kind.append_value(OTHER);
                false
            }
        };
        if !numeric {
            for builder in [&mut b.nan, &mut b.infinite] {
                builder.append_null();
            }
            for builder in [&mut b.min, &mut b.max, &mut b.mean, &mut b.stddev] {
                builder.append_null();
            }
            b.quantiles.iter_mut().for_each(Float64Builder::append_null);
            b.histogram_edges.append_null();
            b.histogram_counts.append_null();
        }
        if !matches!(feature.values, ValueStatistics::Categorical { .. }) {
            b.category_min.append_null();
            b.category_max.append_null();
        }
        match &feature.sketch {
            Some(Sketch::Digest {
                min,
                max,
                centroids,
            }) => {
                b.digest_min.append_value(*min);
                b.digest_max.append_value(*max);
                b.digest_means
                    .append_value(centroids.iter().map(|(mean, _)| Some(*mean)));
                b.digest_weights
                    .append_value(centroids.iter().map(|(_, weight)| Some(*weight)));
            }
            _ => {
                b.digest_min.append_null();
                b.digest_max.append_null();
                b.digest_means.append_null();
                b.digest_weights.append_null();
            }
        }
        match &feature.sketch {
            Some(Sketch::Frequent(kept)) => {
                b.frequent_values
                    .append_value(kept.iter().map(|v| Some(v.value.as_str())));
                b.frequent_counts
                    .append_value(kept.iter().map(|v| Some(v.count)));
            }
            _ => {
                b.frequent_values.append_null();
                b.frequent_counts.append_null();
            }
        }
    }
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(b.feature.finish()),
        Arc::new(b.data_type.finish()),
        Arc::new(b.kind.finish()),
        Arc::new(b.count.finish()),
        Arc::new(b.nulls.finish()),
        Arc::new(b.distinct.finish()),
        Arc::new(b.nan.finish()),
        Arc::new(b.infinite.finish()),
        Arc::new(b.min.finish()),
        Arc::new(b.max.finish()),
        Arc::new(b.mean.finish()),
        Arc::new(b.stddev.finish()),
    ];
    columns.extend(
        b.quantiles
            .iter_mut()
            .map(|q| Arc::new(q.finish()) as ArrayRef),
    );
    columns.extend([
        Arc::new(b.histogram_edges.finish()) as ArrayRef,
        Arc::new(b.histogram_counts.finish()),
        Arc::new(b.digest_min.finish()),
        Arc::new(b.digest_max.finish()),
        Arc::new(b.digest_means.finish()),
        Arc::new(b.digest_weights.finish()),
        Arc::new(b.category_min.finish()),
        Arc::new(b.category_max.finish()),
        Arc::new(b.frequent_values.finish()),
        Arc::new(b.frequent_counts.finish()),
    ]);
    RecordBatch::try_new(schema(), columns).expect("columns of the statistics schema")
}

/// A column of the file's schema; an error if the file lacks it or it has another type.
fn column<'a, T: 'static>(
    batch: &'a RecordBatch,
    name: &str,
) -> std::result::Result<&'a T, String> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or_else(|| format!("it has no column '{name}' of the expected type"))
}

fn option<T>(valid: bool, value: T) -> Option<T> {
    valid.then_some(value)
}

fn f64s(list: &ListArray, row: usize) -> Option<Vec<f64>> {
    list.is_valid(row).then(|| {
        list.value(row)
            .as_primitive::<Float64Type>()
            .values()
            .to_vec()
    })
}

fn u64s(list: &ListArray, row: usize) -> Option<Vec<u64>> {
    list.is_valid(row).then(|| {
        list.value(row)
            .as_primitive::<UInt64Type>()
            .values()
            .to_vec()
    })
}

fn from_batch(batch: &RecordBatch) -> std::result::Result<Vec<FeatureStatistics>, String> {
    let text = |name| column::<StringArray>(batch, name);
    let counts = |name| column::<UInt64Array>(batch, name);
    let numbers = |name| column::<Float64Array>(batch, name);
    let lists = |name| column::<ListArray>(batch, name);
    let (feature, data_type, kind) = (text("feature")?, text("data_type")?, text("kind")?);
    let (count, nulls, distinct) = (counts("count")?, counts("nulls")?, counts("distinct")?);
    let (nan, infinite) = (counts("nan")?, counts("infinite")?);
    let (min, max, mean, stddev) = (
        numbers("min")?,
        numbers("max")?,
        numbers("mean")?,
        numbers("stddev")?,
    );
    let quantiles = QUANTILES
        .iter()
        .map(|(name, _)| Ok((*name, numbers(name)?)))
        .collect::<std::result::Result<Vec<_>, String>>()?;
    let (edges, bins) = (lists("histogram_edges")?, lists("histogram_counts")?);
    let (digest_min, digest_max) = (numbers("digest_min")?, numbers("digest_max")?);
    let (means, weights) = (lists("digest_means")?, lists("digest_weights")?);
    let (category_min, category_max) = (text("category_min")?, text("category_max")?);
    let (values, frequencies) = (lists("frequent_values")?, lists("frequent_counts")?);
    let number = |array: &Float64Array, row| option(array.is_valid(row), array.value(row));
    let text_at =
        |array: &StringArray, row| option(array.is_valid(row), array.value(row).to_string());
    (0..batch.num_rows())
        .map(|row| {
            let values_of_kind = match kind.value(row) {
                NUMERIC => ValueStatistics::Numeric {
                    nan: nan.value(row),
                    infinite: infinite.value(row),
                    min: number(min, row),
                    max: number(max, row),
                    mean: number(mean, row),
                    stddev: number(stddev, row),
                    quantiles: quantiles
                        .iter()
                        .filter_map(|(name, q)| Some((name.to_string(), number(q, row)?)))
                        .collect::<BTreeMap<_, _>>(),
                    histogram: f64s(edges, row)
                        .zip(u64s(bins, row))
                        .map(|(e, counts)| Histogram {
                            edges: e.into_iter().map(OrderedEdge).collect(),
                            counts,
                        }),
                },
                CATEGORICAL => {
                    let kept = frequent(values, frequencies, row).unwrap_or_default();
                    let top: Vec<ValueCount> = kept.iter().take(TOP_VALUES).cloned().collect();
                    let shown: u64 = top.iter().map(|t| t.count).sum();
                    ValueStatistics::Categorical {
                        min: text_at(category_min, row),
                        max: text_at(category_max, row),
                        top,
                        other: count.value(row) - shown,
                    }
                }
                _ => ValueStatistics::Other,
            };
            let sketch = match kind.value(row) {
                NUMERIC => f64s(means, row)
                    .zip(f64s(weights, row))
                    .map(|(m, w)| Sketch::Digest {
                        min: digest_min.value(row),
                        max: digest_max.value(row),
                        centroids: m.into_iter().zip(w).collect(),
                    }),
                CATEGORICAL => frequent(values, frequencies, row).map(Sketch::Frequent),
                _ => None,
            };
            Ok(FeatureStatistics {
                feature: feature.value(row).to_string(),
                data_type: data_type.value(row).to_string(),
                count: count.value(row),
                nulls: nulls.value(row),
                distinct: option(distinct.is_valid(row), distinct.value(row)),
                values: values_of_kind,
                sketch,
            })
        })
        .collect()
}

fn frequent(values: &ListArray, counts: &ListArray, row: usize) -> Option<Vec<ValueCount>> {
    let counts = u64s(counts, row)?;
    let values = values.is_valid(row).then(|| values.value(row))?;
    let values = values.as_string::<i32>();
    Some(
        values
            .iter()
            .zip(counts)
            .map(|(value, count)| ValueCount {
                value: value.unwrap_or_default().to_string(),
                count,
            })
            .collect(),
    )
}

/// A registered snapshot's statistics: its file's, with the sketches, or the catalog's
/// summary when it has no file or the file cannot be read (a warning: drift is then
/// measured without the sketches).
pub async fn snapshot_statistics(
    warehouse: &Warehouse,
    snapshot: &Snapshot,
) -> Vec<FeatureStatistics> {
    let Some(file) = &snapshot.statistics_file else {
        return snapshot.statistics.clone();
    };
    let read = match Url::parse(file) {
        Ok(url) => read(warehouse, &url).await,
        Err(e) => Err(Error::Infrastructure(format!("'{file}' is not a URL: {e}"))),
    };
    read.unwrap_or_else(|error| {
        tracing::warn!(
            "warning: {error}; using the statistics the catalog keeps with snapshot {}",
            published::format_time(snapshot.as_of)
        );
        snapshot.statistics.clone()
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Date32Array, Float64Array, Int32Array, StringArray};

    use super::*;
    use crate::statistics::tests::statistics_of;

    #[test]
    fn statistics_read_back_as_they_were_written() {
        let features = vec![
            statistics_of(
                Arc::new(Float64Array::from(vec![
                    Some(1.5),
                    None,
                    Some(f64::NAN),
                    Some(f64::INFINITY),
                    Some(-3.0),
                    Some(1e300),
                ])),
                2,
            ),
            statistics_of(Arc::new(Int32Array::from(vec![None, None])), 1),
            statistics_of(
                Arc::new(StringArray::from(vec![
                    Some("a"),
                    Some("b"),
                    None,
                    Some("a"),
                ])),
                3,
            ),
            statistics_of(Arc::new(Date32Array::from(vec![Some(1), None])), 1),
        ];
        let read = from_batch(&to_batch(&features)).unwrap();
        assert_eq!(read, features);
        assert!(read[0].sketch.is_some() && read[2].sketch.is_some());
    }
}
