//! What each feature of a snapshot holds — count, nulls, range, mean and spread, quantiles,
//! distinct values, the most frequent values of a category — profiled in the pass that
//! writes the snapshot, a profile per partition merged at the end, and kept with the
//! snapshot in the catalog.
//!
//! Exact: counts, nulls, NaN and infinities, min, max, mean and population standard
//! deviation (over the finite values; Welford's updates, merged by Chan's formula).
//! Approximate: quantiles (a t-digest of [`DIGEST_SIZE`] centroids), distinct values (a
//! HyperLogLog of 2^14 registers: about 0.8% standard error), and the frequent values of a
//! category (Misra–Gries over [`FREQUENT_KEPT`] counters: exact while a partition has no
//! more distinct values, otherwise each count low by at most a 1/1,025 share of the rows).
//!
//! A numeric feature's histogram counts its values exactly on edges fixed for the life of
//! a group version: a snapshot takes the edges of the previous snapshot's histogram, and
//! the first takes its own deciles, as finely as a [grid](grid) of its values' bits
//! resolves them. Every snapshot of a version is binned alike, so that drift between any
//! two is exact; each is profiled in the one pass that writes it.

mod grid;

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type, Schema};
use datafusion::common::hash_utils::HLL_RANDOM_STATE;
use datafusion_functions_aggregate_common::tdigest::TDigest;
use serde::{Deserialize, Serialize};

use self::grid::ValueGrid;
use crate::error::{Error, Result};

/// Centroids of a feature's t-digest.
const DIGEST_SIZE: usize = 200;
/// Counters of a category's frequent values.
const FREQUENT_KEPT: usize = 1024;
/// The frequent values a category's statistics show.
pub(crate) const TOP_VALUES: usize = 20;
/// The quantiles kept of a numeric feature, by name.
pub(crate) const QUANTILES: [(&str, f64); 15] = [
    ("p01", 0.01),
    ("p05", 0.05),
    ("p10", 0.10),
    ("p20", 0.20),
    ("p25", 0.25),
    ("p30", 0.30),
    ("p40", 0.40),
    ("p50", 0.50),
    ("p60", 0.60),
    ("p70", 0.70),
    ("p75", 0.75),
    ("p80", 0.80),
    ("p90", 0.90),
    ("p95", 0.95),
    ("p99", 0.99),
];
/// The longest value of a category the statistics show, in characters.
const LONGEST_VALUE: usize = 64;

/// A feature's statistics in one snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureStatistics {
    pub feature: String,
    pub data_type: String,
    /// Values that are not null.
    pub count: u64,
    pub nulls: u64,
    /// Approximately how many distinct values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distinct: Option<u64>,
    pub values: ValueStatistics,
    /// The sketches the figures come from, kept in the snapshot's statistics file (not in
    /// the catalog's parameter): what drift between any two snapshots is measured on.
    #[serde(skip)]
    pub sketch: Option<Sketch>,
}

/// A feature's sketches.
#[derive(Debug, Clone, PartialEq)]
pub enum Sketch {
    /// The t-digest of the finite values: the least and greatest of them, and the digest's
    /// centroids as (mean, weight), means ascending (none without a finite value).
    Digest {
        min: f64,
        max: f64,
        centroids: Vec<(f64, f64)>,
    },
    /// Every value the frequent-value counters kept, with its count, most frequent first.
    Frequent(Vec<ValueCount>),
}

/// What the values of a feature are, by their kind: `{"numeric": {...}}`. (Not tagged
/// inside: serde buffers such an enum, which fails on numbers when serde_json keeps them at
/// arbitrary precision, as the workspace has it.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueStatistics {
    /// Numbers of any width, and decimals. The moments and quantiles are of the finite
    /// values; min and max of all but NaN.
    Numeric {
        nan: u64,
        infinite: u64,
        #[serde(with = "extended_f64")]
        min: Option<f64>,
        #[serde(with = "extended_f64")]
        max: Option<f64>,
        #[serde(with = "extended_f64")]
        mean: Option<f64>,
        #[serde(with = "extended_f64")]
        stddev: Option<f64>,
        quantiles: BTreeMap<String, f64>,
        /// Absent when the feature has no finite value to take edges from.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        histogram: Option<Histogram>,
    },
    /// Strings and booleans: the most frequent values, and how many rows hold others.
    Categorical {
        min: Option<String>,
        max: Option<String>,
        top: Vec<ValueCount>,
        other: u64,
    },
    /// Timestamps, dates, lists, ...: counts only.
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValueCount {
    pub value: String,
    pub count: u64,
}

/// How many of a feature's values (nulls and NaN aside) fall in each bin: `counts[0]` are
/// below `edges[0]`, `counts[i]` in `[edges[i-1], edges[i])`, the last at or above the last
/// edge; infinities in the open tails.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Histogram {
    /// Ascending, distinct and finite.
    pub edges: Vec<OrderedEdge>,
    pub counts: Vec<u64>,
}

/// A histogram's edge: a finite number (`Eq`, so that histograms compare).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OrderedEdge(pub f64);

impl Eq for OrderedEdge {}

impl Histogram {
    fn empty(edges: &[f64]) -> Self {
        Histogram {
            edges: edges.iter().copied().map(OrderedEdge).collect(),
            counts: vec![0; edges.len() + 1],
        }
    }

    /// The bin `value` (not NaN) falls in.
    pub fn bin(&self, value: f64) -> usize {
        self.edges.partition_point(|edge| edge.0 <= value)
    }

    pub fn edge_values(&self) -> Vec<f64> {
        self.edges.iter().map(|e| e.0).collect()
    }

    /// Counts `sorted` (the [keys](grid::key) of finite values, ascending), and `below` and
    /// `above` in the open tails.
    fn add_sorted(&mut self, sorted: &[u64], below: u64, above: u64) {
        let mut start = 0;
        for (bin, edge) in self.edges.iter().enumerate() {
            let edge = grid::key(edge.0);
            let end = start + sorted[start..].partition_point(|key| *key < edge);
            self.counts[bin] += (end - start) as u64;
            start = end;
        }
        self.counts[0] += below;
        let last = self.counts.len() - 1;
        self.counts[last] += (sorted.len() - start) as u64 + above;
    }

    fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
    }
}

/// JSON has no infinities: they are written as the strings "inf" and "-inf".
mod extended_f64 {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub(super) fn serialize<S: Serializer>(value: &Option<f64>, to: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(value) if value.is_finite() => to.serialize_some(value),
            Some(value) => to.serialize_some(&value.to_string()),
            None => to.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(from: D) -> Result<Option<f64>, D::Error> {
        // Through a JSON value: the workspace's serde_json keeps numbers at arbitrary
        // precision, which a hand-written visitor would see as maps.
        match Option::<serde_json::Value>::deserialize(from)? {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::Number(number)) => Ok(number.as_f64()),
            Some(serde_json::Value::String(text)) => text
                .parse()
                .map(Some)
                .map_err(|_| D::Error::custom(format!("'{text}' is not a number"))),
            Some(other) => Err(D::Error::custom(format!("{other} is not a number"))),
        }
    }
}

/// The features a group's snapshots are profiled on: every column but the key and event
/// time.
#[derive(Debug, Clone, Default)]
pub(crate) struct Profiler {
    features: Vec<Feature>,
}

#[derive(Debug, Clone)]
struct Feature {
    /// Of the column in the batches observed.
    index: usize,
    name: String,
    data_type: DataType,
    /// Of a numeric feature's histogram, when known before its values are seen.
    edges: Option<Arc<[f64]>>,
}

/// What a stream of a snapshot's rows showed of each feature, in the profiler's order.
#[derive(Debug, Default)]
pub(crate) struct Profile {
    columns: Vec<ColumnProfile>,
}

#[derive(Debug)]
enum ColumnProfile {
    Numeric(Box<NumericProfile>),
    Categorical(Box<CategoricalProfile>),
    Other { count: u64, nulls: u64 },
}

#[derive(Debug)]
struct NumericProfile {
    nulls: u64,
    nan: u64,
    infinite: u64,
    moments: Moments,
    /// Of all but NaN, infinities included.
    min: f64,
    max: f64,
    digest: TDigest,
    distinct: DistinctSketch,
    binning: Binning,
}

/// How a numeric feature's histogram is counted.
#[derive(Debug)]
enum Binning {
    /// On the edges of the version's previous snapshot.
    Edges(Histogram),
    /// On its own deciles, for the version's first snapshot: on a grid of its finite
    /// values, and its infinities.
    OwnDeciles {
        grid: ValueGrid,
        below: u64,
        above: u64,
    },
}

/// Count, mean and sum of squared deviations of the finite values.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Moments {
    pub(crate) count: u64,
    pub(crate) mean: f64,
    pub(crate) m2: f64,
}

#[derive(Debug)]
struct CategoricalProfile {
    count: u64,
    nulls: u64,
    min: Option<String>,
    max: Option<String>,
    distinct: DistinctSketch,
    frequent: HashMap<String, u64>,
}

/// How a feature is profiled, by its type.
pub(crate) enum Kind {
    Numeric,
    Categorical,
    Other,
}

pub(crate) fn kind(data_type: &DataType) -> Kind {
    match data_type {
        t if t.is_numeric() => Kind::Numeric,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Boolean => {
            Kind::Categorical
        }
        _ => Kind::Other,
    }
}

impl Profiler {
    pub(crate) fn new(schema: &Schema, key: &[String], event_time: &str) -> Self {
        let features = schema
            .fields()
            .iter()
            .enumerate()
            .filter(|(_, f)| f.name() != event_time && !key.contains(f.name()))
            .map(|(index, f)| Feature {
                index,
                name: f.name().clone(),
                data_type: f.data_type().clone(),
                edges: None,
            })
            .collect();
        Profiler { features }
    }

    /// This profiler, its numeric features binned on the edges of `previous`'s histograms
    /// (the statistics of the version's previous snapshot).
    pub(crate) fn binned_as(&self, previous: &[FeatureStatistics]) -> Profiler {
        let mut binned = self.clone();
        for feature in &mut binned.features {
            let histogram = previous.iter().find_map(|p| match &p.values {
                ValueStatistics::Numeric { histogram, .. } if p.feature == feature.name => {
                    histogram.as_ref()
                }
                _ => None,
            });
            if matches!(kind(&feature.data_type), Kind::Numeric) {
                feature.edges = histogram.map(|h| h.edge_values().into());
            }
        }
        binned
    }

    /// An empty profile of the features.
    pub(crate) fn profile(&self) -> Profile {
        let columns = self
            .features
            .iter()
            .map(|feature| match kind(&feature.data_type) {
                Kind::Numeric => ColumnProfile::Numeric(Box::new(NumericProfile {
                    nulls: 0,
                    nan: 0,
                    infinite: 0,
                    moments: Moments::default(),
                    min: f64::INFINITY,
                    max: f64::NEG_INFINITY,
                    digest: TDigest::new(DIGEST_SIZE),
                    distinct: DistinctSketch::default(),
                    binning: match feature.edges.as_deref() {
                        Some(edges) => Binning::Edges(Histogram::empty(edges)),
                        None => Binning::OwnDeciles {
                            grid: ValueGrid::default(),
                            below: 0,
                            above: 0,
                        },
                    },
                })),
                Kind::Categorical => ColumnProfile::Categorical(Box::new(CategoricalProfile {
                    count: 0,
                    nulls: 0,
                    min: None,
                    max: None,
                    distinct: DistinctSketch::default(),
                    frequent: HashMap::new(),
                })),
                Kind::Other => ColumnProfile::Other { count: 0, nulls: 0 },
            })
            .collect();
        Profile { columns }
    }

    /// Adds what `batch` holds to `profile`.
    pub(crate) fn observe(&self, profile: &mut Profile, batch: &RecordBatch) -> Result<()> {
        for (feature, column) in self.features.iter().zip(&mut profile.columns) {
            let values = batch.column(feature.index);
            match column {
                ColumnProfile::Numeric(numeric) => numeric.observe(values)?,
                ColumnProfile::Categorical(categorical) => categorical.observe(values)?,
                ColumnProfile::Other { count, nulls } => {
                    *nulls += values.null_count() as u64;
                    *count += (values.len() - values.null_count()) as u64;
                }
            }
        }
        Ok(())
    }

    /// Each feature's statistics, from the merged profile of the whole snapshot.
    pub(crate) fn statistics(&self, profile: &Profile) -> Vec<FeatureStatistics> {
        self.features
            .iter()
            .zip(&profile.columns)
            .map(|(feature, column)| {
                let (count, nulls, distinct, values) = match column {
                    ColumnProfile::Numeric(numeric) => numeric.statistics(),
                    ColumnProfile::Categorical(categorical) => categorical.statistics(),
                    ColumnProfile::Other { count, nulls } => {
                        (*count, *nulls, None, ValueStatistics::Other)
                    }
                };
                FeatureStatistics {
                    feature: feature.name.clone(),
                    data_type: feature.data_type.to_string(),
                    count,
                    nulls,
                    distinct,
                    values,
                    sketch: column.sketch(),
                }
            })
            .collect()
    }
}

impl Profile {
    /// Adds another partition's profile of the same features.
    pub(crate) fn merge(&mut self, other: Profile) {
        for (mine, theirs) in self.columns.iter_mut().zip(other.columns) {
            match (mine, theirs) {
                (ColumnProfile::Numeric(mine), ColumnProfile::Numeric(theirs)) => {
                    mine.merge(*theirs)
                }
                (ColumnProfile::Categorical(mine), ColumnProfile::Categorical(theirs)) => {
                    mine.merge(*theirs)
                }
                (
                    ColumnProfile::Other { count, nulls },
                    ColumnProfile::Other {
                        count: more,
                        nulls: more_nulls,
                    },
                ) => {
                    *count += more;
                    *nulls += more_nulls;
                }
                _ => unreachable!("profiles of one profiler's features"),
            }
        }
    }
}

impl ColumnProfile {
    fn sketch(&self) -> Option<Sketch> {
        match self {
            ColumnProfile::Numeric(numeric) => {
                let digest = &numeric.digest;
                let centroids: Vec<(f64, f64)> = digest
                    .centroids()
                    .iter()
                    .map(|c| (c.mean(), c.weight()))
                    .collect();
                let (min, max) = match centroids.is_empty() {
                    true => (0.0, 0.0),
                    false => (digest.min(), digest.max()),
                };
                Some(Sketch::Digest {
                    min,
                    max,
                    centroids,
                })
            }
            ColumnProfile::Categorical(categorical) => Some(Sketch::Frequent(
                categorical.shortened_frequent_values(usize::MAX),
            )),
            ColumnProfile::Other { .. } => None,
        }
    }
}

fn profiling(error: arrow::error::ArrowError) -> Error {
    Error::Infrastructure(format!("cannot profile a snapshot's features: {error}"))
}

impl NumericProfile {
    fn observe(&mut self, values: &ArrayRef) -> Result<()> {
        let values = cast(values, &DataType::Float64).map_err(profiling)?;
        let values = values.as_primitive::<Float64Type>();
        self.nulls += values.null_count() as u64;
        let mut finite = Vec::with_capacity(values.len());
        let (mut below, mut above) = (0, 0);
        for value in values.iter().flatten() {
            if value.is_nan() {
                self.nan += 1;
                continue;
            }
            self.min = self.min.min(value);
            self.max = self.max.max(value);
            // -0.0 and 0.0 are one value.
            self.distinct.add(&(value + 0.0).to_bits());
            match value {
                f64::NEG_INFINITY => below += 1,
                f64::INFINITY => above += 1,
                _ => {
                    self.moments.add(value);
                    finite.push(grid::key(value));
                }
            }
        }
        self.infinite += below + above;
        // Sorted once, for the digest and the histogram alike.
        finite.sort_unstable();
        self.binning.add_sorted(&finite, below, above);
        if !finite.is_empty() {
            let sorted: Vec<f64> = finite.into_iter().map(grid::value_of).collect();
            self.digest = self.digest.merge_sorted_f64(&sorted);
        }
        Ok(())
    }

    fn merge(&mut self, other: NumericProfile) {
        self.nulls += other.nulls;
        self.nan += other.nan;
        self.infinite += other.infinite;
        self.moments = self.moments.merge(other.moments);
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.digest = TDigest::merge_digests([&self.digest, &other.digest]);
        self.distinct.merge(&other.distinct);
        self.binning.merge(&other.binning);
    }

    fn statistics(&self) -> (u64, u64, Option<u64>, ValueStatistics) {
        let seen = self.moments.count + self.infinite;
        let count = seen + self.nan;
        let quantiles = match self.moments.count {
            0 => BTreeMap::new(),
            _ => QUANTILES
                .iter()
                .map(|(name, q)| (name.to_string(), self.digest.estimate_quantile(*q)))
                .collect(),
        };
        let finite = |value: f64| (self.moments.count > 0).then_some(value);
        let values = ValueStatistics::Numeric {
            nan: self.nan,
            infinite: self.infinite,
            min: (seen > 0).then_some(self.min),
            max: (seen > 0).then_some(self.max),
            mean: finite(self.moments.mean),
            stddev: finite((self.moments.m2 / self.moments.count as f64).sqrt()),
            quantiles,
            histogram: self.binning.histogram(),
        };
        let distinct = (count > 0).then(|| self.distinct.estimate() + u64::from(self.nan > 0));
        (count, self.nulls, distinct, values)
    }
}

impl Binning {
    fn add_sorted(&mut self, sorted: &[u64], negative_infinite: u64, positive_infinite: u64) {
        match self {
            Binning::Edges(histogram) => {
                histogram.add_sorted(sorted, negative_infinite, positive_infinite)
            }
            Binning::OwnDeciles { grid, below, above } => {
                grid.add_sorted(sorted);
                *below += negative_infinite;
                *above += positive_infinite;
            }
        }
    }

    fn merge(&mut self, other: &Binning) {
        match (self, other) {
            (Binning::Edges(mine), Binning::Edges(theirs)) => mine.merge(theirs),
            (
                Binning::OwnDeciles { grid, below, above },
                Binning::OwnDeciles {
                    grid: their_grid,
                    below: their_below,
                    above: their_above,
                },
            ) => {
                grid.merge(their_grid);
                *below += their_below;
                *above += their_above;
            }
            _ => unreachable!("profiles of one profiler's features"),
        }
    }

    /// Absent on a version's first snapshot when the feature has no finite value.
    fn histogram(&self) -> Option<Histogram> {
        match self {
            Binning::Edges(histogram) => Some(histogram.clone()),
            Binning::OwnDeciles { grid, below, above } => grid.decile_histogram(*below, *above),
        }
    }
}

impl Moments {
    pub(crate) fn add(&mut self, value: f64) {
        self.count += 1;
        let delta = value - self.mean;
        self.mean += delta / self.count as f64;
        self.m2 += delta * (value - self.mean);
    }

    pub(crate) fn merge(self, other: Moments) -> Moments {
        if other.count == 0 {
            return self;
        }
        if self.count == 0 {
            return other;
        }
        let count = self.count + other.count;
        let delta = other.mean - self.mean;
        let share = other.count as f64 / count as f64;
        Moments {
            count,
            mean: self.mean + delta * share,
            m2: self.m2 + other.m2 + delta * delta * self.count as f64 * share,
        }
    }
}

impl CategoricalProfile {
    fn observe(&mut self, values: &ArrayRef) -> Result<()> {
        let values = cast(values, &DataType::Utf8).map_err(profiling)?;
        let values = values.as_string::<i32>();
        self.nulls += values.null_count() as u64;
        for value in values.iter().flatten() {
            self.count += 1;
            self.distinct.add(value);
            if self.min.as_deref().is_none_or(|min| value < min) {
                self.min = Some(value.to_string());
            }
            if self.max.as_deref().is_none_or(|max| value > max) {
                self.max = Some(value.to_string());
            }
            if let Some(count) = self.frequent.get_mut(value) {
                *count += 1;
            } else if self.frequent.len() < FREQUENT_KEPT {
                self.frequent.insert(value.to_string(), 1);
            } else {
                // Misra–Gries: a value with no counter free takes one from every other.
                self.frequent.values_mut().for_each(|c| *c -= 1);
                self.frequent.retain(|_, c| *c > 0);
            }
        }
        Ok(())
    }

    fn merge(&mut self, other: CategoricalProfile) {
        self.count += other.count;
        self.nulls += other.nulls;
        self.distinct.merge(&other.distinct);
        self.min = [self.min.take(), other.min].into_iter().flatten().min();
        self.max = [self.max.take(), other.max].into_iter().flatten().max();
        for (value, count) in other.frequent {
            *self.frequent.entry(value).or_default() += count;
        }
        // Merged summaries keep their bound: take the (k+1)th largest count from each.
        if self.frequent.len() > FREQUENT_KEPT {
            let mut counts: Vec<u64> = self.frequent.values().copied().collect();
            counts.sort_unstable_by(|a, b| b.cmp(a));
            let cut = counts[FREQUENT_KEPT];
            self.frequent
                .values_mut()
                .for_each(|c| *c = c.saturating_sub(cut));
            self.frequent.retain(|_, c| *c > 0);
        }
    }

    /// The `most` most frequent values kept, most frequent first, ties in value order,
    /// long ones cut short.
    fn shortened_frequent_values(&self, most: usize) -> Vec<ValueCount> {
        let mut top: Vec<(&String, u64)> = self.frequent.iter().map(|(v, c)| (v, *c)).collect();
        top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        top.into_iter()
            .take(most)
            .map(|(value, count)| ValueCount {
                value: shortened(value),
                count,
            })
            .collect()
    }

    fn statistics(&self) -> (u64, u64, Option<u64>, ValueStatistics) {
        let top = self.shortened_frequent_values(TOP_VALUES);
        let shown: u64 = top.iter().map(|t| t.count).sum();
        let values = ValueStatistics::Categorical {
            min: self.min.as_deref().map(shortened),
            max: self.max.as_deref().map(shortened),
            top,
            other: self.count - shown,
        };
        let distinct = (self.count > 0).then(|| self.distinct.estimate());
        (self.count, self.nulls, distinct, values)
    }
}

fn shortened(value: &str) -> String {
    match value.char_indices().nth(LONGEST_VALUE) {
        Some((cut, _)) => format!("{}...", &value[..cut]),
        None => value.to_string(),
    }
}

/// A HyperLogLog of 2^14 registers (Flajolet et al., with linear counting below 2.5 times
/// the registers): how many distinct values, within about 0.8%.
#[derive(Debug, Clone)]
struct DistinctSketch {
    registers: Box<[u8; REGISTERS]>,
}

const REGISTER_BITS: u32 = 14;
const REGISTERS: usize = 1 << REGISTER_BITS;

impl Default for DistinctSketch {
    fn default() -> Self {
        DistinctSketch {
            registers: Box::new([0; REGISTERS]),
        }
    }
}

impl DistinctSketch {
    fn add<T: Hash + ?Sized>(&mut self, value: &T) {
        let hash = HLL_RANDOM_STATE.hash_one(value);
        let register = (hash as usize) & (REGISTERS - 1);
        // The position of the first 1 in the rest of the hash, a sentinel bit ending it.
        let rank = ((hash >> REGISTER_BITS) | (1 << (64 - REGISTER_BITS))).trailing_zeros() + 1;
        self.registers[register] = self.registers[register].max(rank as u8);
    }

    fn merge(&mut self, other: &DistinctSketch) {
        for (mine, theirs) in self.registers.iter_mut().zip(other.registers.iter()) {
            *mine = (*mine).max(*theirs);
        }
    }

    fn estimate(&self) -> u64 {
        let m = REGISTERS as f64;
        let alpha = 0.7213 / (1.0 + 1.079 / m);
        let sum: f64 = self.registers.iter().map(|&r| (-f64::from(r)).exp2()).sum();
        let raw = alpha * m * m / sum;
        let empty = self.registers.iter().filter(|&&r| r == 0).count();
        let estimate = match raw <= 2.5 * m && empty > 0 {
            true => m * (m / empty as f64).ln(),
            false => raw,
        };
        estimate.round() as u64
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;

    use arrow::array::{Float64Array, Int8Array, Int64Array, StringArray, UInt64Array};
    use arrow::datatypes::Field;
    use proptest::prelude::*;

    use super::*;

    /// The statistics of `values` as the feature `v` of a group keyed by `k`, observed in
    /// chunks of `chunk` rows alternately into two profiles (as two partitions would), merged.
    pub(crate) fn statistics_of(values: ArrayRef, chunk: usize) -> FeatureStatistics {
        statistics_binned(values, chunk, &[])
    }

    /// As [`statistics_of`], binned on the edges of `previous`'s histogram, or, without one,
    /// on the feature's own deciles.
    pub(crate) fn statistics_binned(
        values: ArrayRef,
        chunk: usize,
        previous: &[FeatureStatistics],
    ) -> FeatureStatistics {
        let rows = values.len();
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new("v", values.data_type().clone(), true),
        ]));
        let keys: ArrayRef = Arc::new(Int64Array::from_iter_values(0..rows as i64));
        let batch = RecordBatch::try_new(schema.clone(), vec![keys, values]).unwrap();
        // The event time is not profiled; a name absent from the schema stands for it.
        let profiler = Profiler::new(&schema, &["k".to_string()], "t").binned_as(previous);
        let mut profiles = [profiler.profile(), profiler.profile()];
        for (n, start) in (0..rows).step_by(chunk.max(1)).enumerate() {
            let length = chunk.min(rows - start);
            profiler
                .observe(&mut profiles[n % 2], &batch.slice(start, length))
                .unwrap();
        }
        let [mut first, second] = profiles;
        first.merge(second);
        let mut statistics = profiler.statistics(&first);
        assert_eq!(statistics.len(), 1, "only the feature is profiled");
        statistics.remove(0)
    }

    /// Equal within 1e-9 of the value; beyond 1e154 squares overflow, to infinity in the
    /// reference as in the profile (as in numpy).
    fn close(actual: f64, expected: f64) -> bool {
        actual == expected || (actual - expected).abs() <= 1e-9 * expected.abs().max(1.0)
    }

    /// Within `tolerance` of the exact count, or 2 of it when the count is small.
    fn distinct_close(estimate: u64, exact: usize, tolerance: f64) -> bool {
        (estimate as f64 - exact as f64).abs() <= (tolerance * exact as f64).max(2.0)
    }

    fn assert_numeric_matches_reference(statistics: &FeatureStatistics, values: &[Option<f64>]) {
        let nulls = values.iter().filter(|v| v.is_none()).count() as u64;
        let present: Vec<f64> = values.iter().flatten().copied().collect();
        let nan = present.iter().filter(|v| v.is_nan()).count() as u64;
        let infinite = present.iter().filter(|v| v.is_infinite()).count() as u64;
        let mut finite: Vec<f64> = present.iter().copied().filter(|v| v.is_finite()).collect();
        let ordered: Vec<f64> = present.iter().copied().filter(|v| !v.is_nan()).collect();
        assert_eq!(statistics.count, present.len() as u64);
        assert_eq!(statistics.nulls, nulls);
        let ValueStatistics::Numeric {
            nan: seen_nan,
            infinite: seen_infinite,
            min,
            max,
            mean,
            stddev,
            quantiles,
            histogram,
        } = &statistics.values
        else {
            panic!("numeric: {statistics:?}")
        };
        match histogram {
            Some(histogram) => assert_histogram_counts(histogram, &present),
            None => assert!(finite.is_empty(), "a histogram of finite values"),
        }
        assert_eq!((*seen_nan, *seen_infinite), (nan, infinite));
        let expected_min = ordered.iter().copied().reduce(f64::min);
        let expected_max = ordered.iter().copied().reduce(f64::max);
        assert_eq!((*min, *max), (expected_min, expected_max));
        if finite.is_empty() {
            assert_eq!((*mean, *stddev), (None, None));
            assert!(quantiles.is_empty());
            return;
        }
        // Two passes: the textbook definitions.
        let n = finite.len() as f64;
        let expected_mean = finite.iter().sum::<f64>() / n;
        let expected_std = (finite
            .iter()
            .map(|v| (v - expected_mean).powi(2))
            .sum::<f64>()
            / n)
            .sqrt();
        assert!(
            close(mean.unwrap(), expected_mean),
            "{mean:?} vs {expected_mean}"
        );
        assert!(
            close(stddev.unwrap(), expected_std),
            "{stddev:?} vs {expected_std}"
        );
        finite.sort_by(f64::total_cmp);
        for (name, q) in QUANTILES {
            let estimate = quantiles[name];
            // The estimate's rank among the values: within 2% of q (or one value, for few).
            let below = finite.iter().filter(|v| **v < estimate).count() as f64;
            let at_or_below = finite.iter().filter(|v| **v <= estimate).count() as f64;
            let slack = 0.02 * n + 1.0;
            assert!(
                below - slack <= q * n && q * n <= at_or_below + slack,
                "{name} = {estimate}: {below}..{at_or_below} of {n} values below it"
            );
        }
        let mut distinct: Vec<u64> = ordered.iter().map(|v| (v + 0.0).to_bits()).collect();
        distinct.sort_unstable();
        distinct.dedup();
        let exact = distinct.len() + usize::from(nan > 0);
        assert!(
            distinct_close(statistics.distinct.unwrap(), exact, 0.03),
            "{:?} distinct, {exact} exactly",
            statistics.distinct
        );
    }

    /// The histogram's edges ascend, and each bin holds what a scan of the values finds in it.
    fn assert_histogram_counts(histogram: &Histogram, values: &[f64]) {
        let edges = histogram.edge_values();
        assert!(edges.windows(2).all(|w| w[0] < w[1]), "{edges:?}");
        assert!(edges.iter().all(|e| e.is_finite()));
        assert_eq!(histogram.counts.len(), edges.len() + 1);
        for (bin, count) in histogram.counts.iter().enumerate() {
            let low = bin.checked_sub(1).map_or(f64::NEG_INFINITY, |i| edges[i]);
            let high = edges.get(bin).copied().unwrap_or(f64::INFINITY);
            let last = edges.len();
            let expected = values
                .iter()
                .filter(|v| !v.is_nan())
                .filter(|&&v| (bin == 0 || v >= low) && (bin == last || v < high))
                .count() as u64;
            assert_eq!(*count, expected, "bin {bin}: [{low}, {high}) of {edges:?}");
        }
    }

    fn previous_histogram(edges: Vec<f64>) -> Vec<FeatureStatistics> {
        let histogram = Histogram::empty(&edges);
        vec![FeatureStatistics {
            feature: "v".to_string(),
            data_type: "Float64".to_string(),
            count: 0,
            nulls: 0,
            distinct: None,
            values: ValueStatistics::Numeric {
                nan: 0,
                infinite: 0,
                min: None,
                max: None,
                mean: None,
                stddev: None,
                quantiles: BTreeMap::new(),
                histogram: Some(histogram),
            },
            sketch: None,
        }]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn values_are_counted_exactly_on_the_previous_snapshot_s_edges(
            values in prop::collection::vec(prop_oneof![
                1 => Just(None),
                1 => Just(Some(f64::NAN)),
                1 => Just(Some(f64::INFINITY)),
                1 => Just(Some(f64::NEG_INFINITY)),
                10 => (-100i32..100).prop_map(|v| Some(f64::from(v) / 4.0)),
            ], 0..2000),
            mut edges in prop::collection::vec((-120i32..120).prop_map(|v| f64::from(v) / 4.0), 0..12),
            chunk in 1usize..500,
        ) {
            edges.sort_by(f64::total_cmp);
            edges.dedup();
            let statistics = statistics_binned(
                Arc::new(Float64Array::from(values.clone())), chunk, &previous_histogram(edges.clone()));
            let ValueStatistics::Numeric { histogram: Some(histogram), .. } = &statistics.values else {
                panic!("{statistics:?}")
            };
            prop_assert_eq!(histogram.edge_values(), edges);
            let present: Vec<f64> = values.iter().flatten().copied().collect();
            assert_histogram_counts(histogram, &present);
        }

        /// The catalog keeps statistics as JSON, and the next snapshot bins on the edges
        /// read back: any number, to the bit (a one-ulp edge moves a value between bins).
        #[test]
        fn statistics_survive_json_to_the_bit(
            values in prop::collection::vec(prop::num::f64::NORMAL | prop::num::f64::SUBNORMAL, 1..300),
        ) {
            let statistics = statistics_of(Arc::new(Float64Array::from(values)), 64);
            let json = serde_json::to_string(&statistics).unwrap();
            let mut read: FeatureStatistics = serde_json::from_str(&json).unwrap();
            read.sketch = statistics.sketch.clone();
            let bits = |s: &FeatureStatistics| match &s.values {
                ValueStatistics::Numeric { quantiles, histogram, mean, stddev, .. } => (
                    quantiles.values().map(|q| q.to_bits()).collect::<Vec<_>>(),
                    histogram.as_ref().map(|h| h.edge_values().iter().map(|e| e.to_bits()).collect::<Vec<_>>()),
                    mean.map(f64::to_bits),
                    stddev.map(f64::to_bits),
                ),
                other => panic!("{other:?}"),
            };
            prop_assert_eq!(bits(&read), bits(&statistics));
        }

        #[test]
        fn numbers_are_profiled_as_a_two_pass_reference_finds(
            values in prop::collection::vec(prop_oneof![
                1 => Just(None),
                1 => Just(Some(f64::NAN)),
                1 => Just(Some(f64::INFINITY)),
                1 => Just(Some(f64::NEG_INFINITY)),
                1 => Just(Some(-0.0)),
                1 => Just(Some(1e300)),
                10 => (-1e6f64..1e6).prop_map(Some),
                4 => (0i64..50).prop_map(|v| Some(v as f64)),
            ], 0..3000),
            chunk in 1usize..700,
        ) {
            let statistics = statistics_of(Arc::new(Float64Array::from(values.clone())), chunk);
            assert_numeric_matches_reference(&statistics, &values);
        }

        #[test]
        fn integers_of_any_width_are_profiled_as_numbers(
            values in prop::collection::vec(prop::option::weighted(0.9, any::<i64>()), 1..2000),
            chunk in 1usize..500,
        ) {
            let as_f64: Vec<Option<f64>> = values.iter().map(|v| v.map(|v| v as f64)).collect();
            let wide = statistics_of(Arc::new(Int64Array::from(values.clone())), chunk);
            assert_numeric_matches_reference(&wide, &as_f64);
            let narrow: Vec<Option<i8>> = values.iter().map(|v| v.map(|v| v as i8)).collect();
            let narrow_f64: Vec<Option<f64>> = narrow.iter().map(|v| v.map(f64::from)).collect();
            assert_numeric_matches_reference(&statistics_of(Arc::new(Int8Array::from(narrow)), chunk), &narrow_f64);
            let unsigned: Vec<Option<u64>> = values.iter().map(|v| v.map(|v| v as u64)).collect();
            let unsigned_f64: Vec<Option<f64>> = unsigned.iter().map(|v| v.map(|v| v as f64)).collect();
            assert_numeric_matches_reference(&statistics_of(Arc::new(UInt64Array::from(unsigned)), chunk), &unsigned_f64);
        }

        #[test]
        fn categories_count_their_values_exactly_while_they_are_few(
            values in prop::collection::vec(prop::option::weighted(0.9, "[a-e]{0,2}"), 0..3000),
            chunk in 1usize..700,
        ) {
            let statistics = statistics_of(Arc::new(StringArray::from(values.clone())), chunk);
            let present: Vec<&str> = values.iter().flatten().map(String::as_str).collect();
            let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
            for value in &present {
                *counts.entry(value).or_default() += 1;
            }
            let mut expected: Vec<ValueCount> = counts.iter()
                .map(|(value, count)| ValueCount { value: value.to_string(), count: *count })
                .collect();
            expected.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
            expected.truncate(TOP_VALUES);
            let shown: u64 = expected.iter().map(|t| t.count).sum();
            prop_assert_eq!(statistics.count, present.len() as u64);
            prop_assert_eq!(statistics.nulls, (values.len() - present.len()) as u64);
            prop_assert_eq!(&statistics.values, &ValueStatistics::Categorical {
                min: present.iter().min().map(|v| v.to_string()),
                max: present.iter().max().map(|v| v.to_string()),
                top: expected,
                other: present.len() as u64 - shown,
            });
            if !present.is_empty() {
                prop_assert!(distinct_close(statistics.distinct.unwrap(), counts.len(), 0.03));
            }
        }
    }

    #[test]
    fn a_frequent_value_among_many_is_found_and_its_count_low_by_at_most_a_share_of_the_rows() {
        // 30,000 distinct values seen once each, and 'hot' once in every 10 rows.
        let values: Vec<String> = (0..33_000)
            .map(|r| match r % 11 {
                0 => "hot".to_string(),
                _ => format!("v{r}"),
            })
            .collect();
        let hot = values.iter().filter(|v| *v == "hot").count() as u64;
        let rows = values.len() as u64;
        let statistics = statistics_of(Arc::new(StringArray::from(values)), 8192);
        let ValueStatistics::Categorical { top, other, .. } = &statistics.values else {
            panic!("{statistics:?}")
        };
        assert_eq!(top[0].value, "hot");
        assert!(
            top[0].count <= hot && top[0].count + rows / 1025 + 1 >= hot,
            "{top:?}"
        );
        assert_eq!(other + top.iter().map(|t| t.count).sum::<u64>(), rows);
        assert!(
            distinct_close(statistics.distinct.unwrap(), 30_001, 0.03),
            "{statistics:?}"
        );
    }

    #[test]
    fn a_first_snapshot_is_binned_on_its_own_deciles() {
        // 1..=1000: the deciles are about 100, 200, ..., 900, each bin about 100 values.
        let values: Vec<f64> = (1..=1000).map(f64::from).collect();
        let statistics = statistics_of(Arc::new(Float64Array::from(values.clone())), 64);
        let ValueStatistics::Numeric {
            histogram: Some(histogram),
            ..
        } = &statistics.values
        else {
            panic!("{statistics:?}")
        };
        let edges = histogram.edge_values();
        assert_eq!(edges.len(), 9, "{edges:?}");
        for (edge, decile) in edges.iter().zip(1..) {
            assert!(
                (edge - f64::from(decile) * 100.0).abs() <= 10.0,
                "{edges:?}"
            );
        }
        assert!(
            histogram.counts.iter().all(|c| (90..=110).contains(c)),
            "{histogram:?}"
        );
        // A feature with one value: one edge, every value at or above it.
        let statistics = statistics_of(Arc::new(Float64Array::from(vec![3.0; 50])), 7);
        let ValueStatistics::Numeric {
            histogram: Some(histogram),
            ..
        } = &statistics.values
        else {
            panic!("{statistics:?}")
        };
        assert_eq!(
            (histogram.edge_values(), &histogram.counts),
            (vec![3.0], &vec![0, 50])
        );
    }

    #[test]
    fn infinite_bounds_survive_json() {
        let statistics = statistics_of(
            Arc::new(Float64Array::from(vec![
                f64::NEG_INFINITY,
                1.0,
                f64::INFINITY,
            ])),
            2,
        );
        let json = serde_json::to_string(&statistics).unwrap();
        assert!(
            json.contains(r#""min":"-inf""#) && json.contains(r#""max":"inf""#),
            "{json}"
        );
        let mut read: FeatureStatistics = serde_json::from_str(&json).unwrap();
        read.sketch = statistics.sketch.clone();
        assert_eq!(read, statistics);
    }

    #[test]
    fn long_values_are_cut_short_and_other_types_are_counted() {
        let long = "x".repeat(100);
        let statistics = statistics_of(
            Arc::new(StringArray::from(vec![Some(long.as_str()), None])),
            1,
        );
        let ValueStatistics::Categorical { top, .. } = &statistics.values else {
            panic!()
        };
        assert_eq!(top[0].value, format!("{}...", "x".repeat(LONGEST_VALUE)));
        let dates = arrow::array::Date32Array::from(vec![Some(1), None, Some(3)]);
        let statistics = statistics_of(Arc::new(dates), 2);
        assert_eq!(
            (statistics.count, statistics.nulls, &statistics.values),
            (2, 1, &ValueStatistics::Other)
        );
    }
}
