//! How far each feature moved between two snapshots of a group version, from their
//! statistics alone (no data is read):
//!
//! - **PSI**, the population stability index, `sum((c - r) * ln(c / r))` over the shares
//!   `r` and `c` of the reference's and the current snapshot's rows in each bin. A numeric
//!   feature's bins are the reference's histogram (open tails) and a bin of the rows
//!   without a value (null or NaN); a category's are the reference's 20 most frequent
//!   values, the other values, and null. A share of zero counts as [`EMPTY_SHARE`], so that
//!   a bin empty on one side adds a large but finite term. Exact when both snapshots were
//!   binned on the same edges (every snapshot of a version published in as-of order is);
//!   otherwise the current's bin counts are estimated from its t-digest.
//! - **KS**, the Kolmogorov–Smirnov distance `max |F_r(x) - F_c(x)|` between the
//!   distributions of the finite values, each read from its t-digest as the line through
//!   its centroids (within about a percent of the exact distance).
//! - **Share change**: the category whose share of the rows (null counting as one) changed
//!   most, from its share to its share.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::backends::Backends;
use crate::error::{Error, Result};
use crate::published::{self, Snapshot};
use crate::statistics::{FeatureStatistics, Histogram, Sketch, ValueCount, ValueStatistics};
use crate::statistics_file::snapshot_statistics;

/// The share an empty bin counts as in PSI: 0.01% of the rows.
pub const EMPTY_SHARE: f64 = 1e-4;

/// How each feature of a snapshot moved since the snapshot `from`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SnapshotDrift {
    pub from: DateTime<Utc>,
    pub features: Vec<FeatureDrift>,
}

/// How a feature moved from the reference snapshot to the current.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FeatureDrift {
    pub feature: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub psi: Option<f64>,
    /// The current's bin counts were estimated from its sketch, not counted.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub psi_estimated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ks: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub share_change: Option<ShareChange>,
}

/// A category's share of the rows in the reference and in the current snapshot.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShareChange {
    /// `None` for the rows without a value.
    pub value: Option<String>,
    pub from: f64,
    pub to: f64,
}

/// The drift of each of `current`'s features that `reference` has statistics of, in
/// `current`'s order.
pub fn compare(
    reference: &[FeatureStatistics],
    current: &[FeatureStatistics],
) -> Vec<FeatureDrift> {
    current
        .iter()
        .filter_map(|now| {
            let before = reference.iter().find(|r| r.feature == now.feature)?;
            Some(feature_drift(before, now))
        })
        .collect()
}

fn feature_drift(reference: &FeatureStatistics, current: &FeatureStatistics) -> FeatureDrift {
    let mut drift = FeatureDrift {
        feature: current.feature.clone(),
        psi: None,
        psi_estimated: false,
        ks: None,
        share_change: None,
    };
    match (&reference.values, &current.values) {
        (ValueStatistics::Numeric { .. }, ValueStatistics::Numeric { .. }) => {
            if let Some((psi, estimated)) = numeric_psi(reference, current) {
                drift.psi = Some(psi);
                drift.psi_estimated = estimated;
            }
            drift.ks = ks(&reference.sketch, &current.sketch);
        }
        (ValueStatistics::Categorical { .. }, ValueStatistics::Categorical { .. }) => {
            let before = CategoryShares::of(reference);
            let now = CategoryShares::of(current);
            drift.psi = Some(categorical_psi(&before, &now));
            drift.share_change = before.largest_change(&now);
        }
        _ => {}
    }
    drift
}

/// PSI between the shares of the same bins.
pub fn psi(reference: &[f64], current: &[f64]) -> f64 {
    reference
        .iter()
        .zip(current)
        .map(|(&r, &c)| {
            let (r, c) = (r.max(EMPTY_SHARE), c.max(EMPTY_SHARE));
            (c - r) * (c / r).ln()
        })
        .sum()
}

/// Shares of `counts`, and a last bin of `missing`, among their total.
fn shares(counts: impl IntoIterator<Item = f64>, missing: f64) -> Vec<f64> {
    let mut all: Vec<f64> = counts.into_iter().collect();
    all.push(missing);
    let total: f64 = all.iter().sum();
    match total > 0.0 {
        true => all.iter().map(|c| c / total).collect(),
        false => all,
    }
}

/// A numeric feature's bins: its histogram, or one bin when it has no finite value to take
/// edges from; and its rows without a value (null or NaN).
fn numeric_bins(statistics: &FeatureStatistics) -> Option<(Histogram, u64)> {
    let ValueStatistics::Numeric { histogram, nan, .. } = &statistics.values else {
        return None;
    };
    let histogram = histogram.clone().unwrap_or_else(|| Histogram {
        edges: Vec::new(),
        counts: vec![statistics.count - nan],
    });
    Some((histogram, statistics.nulls + nan))
}

/// PSI over the reference's bins, and whether the current's counts were estimated.
fn numeric_psi(reference: &FeatureStatistics, current: &FeatureStatistics) -> Option<(f64, bool)> {
    let (bins, reference_missing) = numeric_bins(reference)?;
    let before = shares(
        bins.counts.iter().map(|&c| c as f64),
        reference_missing as f64,
    );
    let (now, missing) = numeric_bins(current)?;
    if now.edges == bins.edges {
        let now = shares(now.counts.iter().map(|&c| c as f64), missing as f64);
        return Some((psi(&before, &now), false));
    }
    // Binned on other edges: the finite values' counts in the reference's bins, from the
    // current's digest.
    let Some(Sketch::Digest {
        min,
        max,
        centroids,
    }) = &current.sketch
    else {
        return None;
    };
    let cdf = Cdf::new(*min, *max, centroids);
    let mut counts = Vec::with_capacity(bins.edges.len() + 1);
    let mut previous = 0.0;
    for share in bins
        .edge_values()
        .into_iter()
        .map(|e| cdf.below(e))
        .chain([1.0])
    {
        counts.push((share - previous) * cdf.weight);
        previous = share;
    }
    let now = shares(counts, missing as f64);
    Some((psi(&before, &now), true))
}

/// The distribution of a digest's values, as the line through its centroids: a centroid's
/// weight is centred on its mean, the least value at 0 and the greatest at the total; but a
/// centroid of a single value is that value, a step of its weight (all of a small
/// snapshot's centroids are, and a digest's outermost ones).
struct Cdf {
    /// (value, weight at or below it), values ascending.
    knots: Vec<(f64, f64)>,
    weight: f64,
}

impl Cdf {
    fn new(min: f64, max: f64, centroids: &[(f64, f64)]) -> Self {
        let weight: f64 = centroids.iter().map(|(_, w)| w).sum();
        let mut knots = Vec::with_capacity(centroids.len() + 2);
        knots.push((min, 0.0));
        let mut below = 0.0;
        for &(mean, w) in centroids {
            match w {
                1.0 => knots.extend([(mean, below), (mean, below + 1.0)]),
                _ => knots.push((mean, below + w / 2.0)),
            }
            below += w;
        }
        knots.push((max, weight));
        Cdf { knots, weight }
    }

    /// The share of values at or below `x`.
    fn at(&self, x: f64) -> f64 {
        let after = self.knots.partition_point(|(value, _)| *value <= x);
        self.interpolate(after, x)
    }

    /// The share of values below `x`.
    fn below(&self, x: f64) -> f64 {
        let after = self.knots.partition_point(|(value, _)| *value < x);
        self.interpolate(after, x)
    }

    /// Between knots `after - 1` and `after`.
    fn interpolate(&self, after: usize, x: f64) -> f64 {
        if self.weight == 0.0 || after == 0 {
            return 0.0;
        }
        if after == self.knots.len() {
            return 1.0;
        }
        let (x0, w0) = self.knots[after - 1];
        let (x1, w1) = self.knots[after];
        let w = match x1 > x0 {
            true => w0 + (w1 - w0) * (x - x0) / (x1 - x0),
            false => w0,
        };
        (w / self.weight).clamp(0.0, 1.0)
    }
}

/// KS distance between two digests' distributions. The greatest gap between two such
/// lines is at a knot of one of them, just before or at it.
fn ks(reference: &Option<Sketch>, current: &Option<Sketch>) -> Option<f64> {
    let cdf = |sketch: &Option<Sketch>| match sketch {
        Some(Sketch::Digest {
            min,
            max,
            centroids,
        }) if !centroids.is_empty() => Some(Cdf::new(*min, *max, centroids)),
        _ => None,
    };
    let (before, now) = (cdf(reference)?, cdf(current)?);
    let distance = before
        .knots
        .iter()
        .chain(&now.knots)
        .flat_map(|&(x, _)| {
            [
                (before.at(x) - now.at(x)).abs(),
                (before.below(x) - now.below(x)).abs(),
            ]
        })
        .fold(0.0, f64::max);
    Some(distance)
}

/// A category's counts: the values counted (the sketch's, or the top values when the
/// statistics have no sketch), the rest, and nulls.
struct CategoryShares {
    counted: Vec<ValueCount>,
    others: u64,
    nulls: u64,
}

impl CategoryShares {
    fn of(statistics: &FeatureStatistics) -> Self {
        let counted = match (&statistics.sketch, &statistics.values) {
            (Some(Sketch::Frequent(kept)), _) => kept.clone(),
            (_, ValueStatistics::Categorical { top, .. }) => top.clone(),
            _ => Vec::new(),
        };
        let shown: u64 = counted.iter().map(|v| v.count).sum();
        CategoryShares {
            others: statistics.count.saturating_sub(shown),
            counted,
            nulls: statistics.nulls,
        }
    }

    fn rows(&self) -> f64 {
        (self.counted.iter().map(|v| v.count).sum::<u64>() + self.others + self.nulls) as f64
    }

    fn share(&self, value: Option<&str>) -> f64 {
        let rows = self.rows();
        if rows == 0.0 {
            return 0.0;
        }
        let count = match value {
            None => self.nulls,
            Some(value) => self
                .counted
                .iter()
                .find(|v| v.value == value)
                .map_or(0, |v| v.count),
        };
        count as f64 / rows
    }

    /// Of every value either counted, and null: the one whose share changed most (of
    /// equal changes, the first: the reference's more frequent).
    fn largest_change(&self, current: &CategoryShares) -> Option<ShareChange> {
        if self.rows() == 0.0 && current.rows() == 0.0 {
            return None;
        }
        let values = self.counted.iter().chain(&current.counted);
        let mut largest: Option<ShareChange> = None;
        for value in values.map(|v| Some(v.value.as_str())).chain([None]) {
            let change = ShareChange {
                value: value.map(str::to_string),
                from: self.share(value),
                to: current.share(value),
            };
            if largest.as_ref().is_none_or(|l| change.size() > l.size()) {
                largest = Some(change);
            }
        }
        largest
    }
}

impl ShareChange {
    pub fn size(&self) -> f64 {
        (self.to - self.from).abs()
    }
}

/// PSI over the reference's top values, the other values, and null.
fn categorical_psi(reference: &CategoryShares, current: &CategoryShares) -> f64 {
    let bins: Vec<&str> = reference
        .counted
        .iter()
        .take(crate::statistics::TOP_VALUES)
        .map(|v| v.value.as_str())
        .collect();
    let counts = |shares: &CategoryShares| {
        let rows = shares.rows();
        let mut counts: Vec<f64> = bins.iter().map(|b| shares.share(Some(b)) * rows).collect();
        let binned: f64 = counts.iter().sum();
        counts.push(rows - binned - shares.nulls as f64);
        (counts, shares.nulls as f64)
    };
    let (before, before_nulls) = counts(reference);
    let (now, now_nulls) = counts(current);
    psi(&shares(before, before_nulls), &shares(now, now_nulls))
}

/// `catalog drift`: how each feature of a group version moved between two of its snapshots.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupDrift {
    pub group: String,
    pub version: u32,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub features: Vec<FeatureDrift>,
}

/// The drift of a group version's features from the snapshot `from` to the snapshot `to`;
/// by default from the one before `to` to the newest, passing over those a rollback set
/// aside.
pub async fn group_drift(
    backends: &Backends,
    group: &str,
    version: Option<u32>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) -> Result<GroupDrift> {
    let picked = published::pick_version(
        group,
        published::group_versions(backends, group).await?,
        version,
    )?;
    let snapshots: Vec<Snapshot> = published::snapshots(backends, &picked)
        .await?
        .into_iter()
        .map(|(snapshot, _)| snapshot)
        .collect();
    let named = format!("feature group '{group}' v{}", picked.version);
    let listed = || {
        let times: Vec<String> = snapshots
            .iter()
            .map(|s| published::format_time(s.as_of))
            .collect();
        match times.is_empty() {
            true => "it has none".to_string(),
            false => format!("its snapshots are {}", times.join(", ")),
        }
    };
    let find = |as_of: DateTime<Utc>| {
        snapshots.iter().find(|s| s.as_of == as_of).ok_or_else(|| {
            Error::NotFound(format!(
                "{named} has no snapshot of as-of {}; {}",
                published::format_time(as_of),
                listed()
            ))
        })
    };
    let standing = |s: &&Snapshot| s.set_aside.is_none();
    let to = match to {
        Some(as_of) => find(as_of)?,
        None => snapshots.iter().rev().find(standing).ok_or_else(|| {
            Error::NotFound(format!("{named} has no snapshot to measure; {}", listed()))
        })?,
    };
    let from = match from {
        Some(as_of) => find(as_of)?,
        None => snapshots
            .iter()
            .rev()
            .filter(standing)
            .find(|s| s.as_of < to.as_of)
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "{named} has no snapshot before {} to measure drift from; {}",
                    published::format_time(to.as_of),
                    listed()
                ))
            })?,
    };
    let reference = snapshot_statistics(&backends.warehouse, from).await;
    let current = snapshot_statistics(&backends.warehouse, to).await;
    Ok(GroupDrift {
        group: group.to_string(),
        version: picked.version,
        from: from.as_of,
        to: to.as_of,
        features: compare(&reference, &current),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Float64Array, StringArray};

    use super::*;
    use crate::statistics::tests::statistics_binned;

    #[test]
    fn psi_is_the_sum_over_the_bins_and_an_empty_bin_counts_as_a_small_share() {
        // 0.25 ln 2 + 0.25 ln 1.5
        let expected = 0.25 * std::f64::consts::LN_2 + 0.25 * 0.405_465_108_108_164_4;
        assert!((psi(&[0.5, 0.5], &[0.25, 0.75]) - expected).abs() < 1e-12);
        // 0.5 ln 2 + (0.5 - 0.0001) ln 5000
        let expected = 0.5 * std::f64::consts::LN_2 + 0.4999 * 8.517_193_191_416_238;
        assert!((psi(&[1.0, 0.0], &[0.5, 0.5]) - expected).abs() < 1e-12);
        assert_eq!(psi(&[0.2, 0.8, 0.0], &[0.2, 0.8, 0.0]), 0.0);
    }

    /// `n` draws of a normal distribution (Box–Muller over a fixed linear congruential
    /// sequence), a tenth of them null.
    fn normal(n: usize, mean: f64, seed: u64) -> Vec<Option<f64>> {
        let mut state = seed;
        let mut uniform = move || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        (0..n)
            .map(|i| {
                let (u, v) = (uniform(), uniform());
                let z = (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos();
                (i % 10 != 0).then_some(mean + z)
            })
            .collect()
    }

    fn profiled(values: &[Option<f64>], previous: &[FeatureStatistics]) -> FeatureStatistics {
        let array = Arc::new(Float64Array::from(values.to_vec()));
        statistics_binned(array, 4096, previous)
    }

    /// PSI by a scan of both samples over `edges`, nulls in a bin of their own.
    fn scanned_psi(edges: &[f64], reference: &[Option<f64>], current: &[Option<f64>]) -> f64 {
        let shares = |values: &[Option<f64>]| {
            let mut counts = vec![0.0; edges.len() + 2];
            for value in values {
                let bin = match value {
                    None => edges.len() + 1,
                    Some(v) => edges.iter().filter(|e| **e <= *v).count(),
                };
                counts[bin] += 1.0;
            }
            counts
                .iter()
                .map(|c| c / values.len() as f64)
                .collect::<Vec<_>>()
        };
        shares(reference)
            .iter()
            .zip(shares(current))
            .map(|(r, c)| {
                let (r, c) = (r.max(EMPTY_SHARE), c.max(EMPTY_SHARE));
                (c - r) * (c / r).ln()
            })
            .sum()
    }

    /// The exact two-sample KS distance of the values.
    fn exact_ks(reference: &[Option<f64>], current: &[Option<f64>]) -> f64 {
        let sorted = |values: &[Option<f64>]| {
            let mut v: Vec<f64> = values.iter().flatten().copied().collect();
            v.sort_by(f64::total_cmp);
            v
        };
        let (a, b) = (sorted(reference), sorted(current));
        let at = |v: &[f64], x: f64| v.partition_point(|y| *y <= x) as f64 / v.len() as f64;
        a.iter()
            .chain(&b)
            .map(|&x| (at(&a, x) - at(&b, x)).abs())
            .fold(0.0, f64::max)
    }

    proptest::proptest! {
        /// A small snapshot's digest holds each value as it is: KS from the sketches is the
        /// exact distance, ties and repeats included.
        #[test]
        fn small_snapshots_have_their_exact_ks(
            reference in proptest::collection::vec(proptest::option::weighted(0.9, 0i32..12), 1..40),
            current in proptest::collection::vec(proptest::option::weighted(0.9, 0i32..12), 1..40),
        ) {
            let as_f64 = |v: &[Option<i32>]| v.iter().map(|v| v.map(f64::from)).collect::<Vec<_>>();
            let (reference, current) = (as_f64(&reference), as_f64(&current));
            proptest::prop_assume!(reference.iter().any(Option::is_some) && current.iter().any(Option::is_some));
            let measured = ks(&profiled(&reference, &[]).sketch, &profiled(&current, &[]).sketch).unwrap();
            let exact = exact_ks(&reference, &current);
            proptest::prop_assert!((measured - exact).abs() < 1e-12, "{} vs {}", measured, exact);
        }
    }

    fn edges_of(statistics: &FeatureStatistics) -> Vec<f64> {
        match &statistics.values {
            ValueStatistics::Numeric {
                histogram: Some(h), ..
            } => h.edge_values(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_shift_of_half_a_deviation_is_measured_as_a_scan_of_the_values_measures_it() {
        let before = normal(20_000, 0.0, 1);
        let reference = profiled(&before, &[]);
        let edges = edges_of(&reference);
        for (mean, seed) in [(0.5, 2), (0.0, 3)] {
            let after = normal(20_000, mean, seed);
            // Binned as a run bins the next snapshot: on the reference's edges.
            let current = profiled(&after, std::slice::from_ref(&reference));
            let [drift] = &compare(std::slice::from_ref(&reference), &[current])[..] else {
                panic!()
            };
            let psi = drift.psi.unwrap();
            assert!(!drift.psi_estimated);
            let scanned = scanned_psi(&edges, &before, &after);
            assert!((psi - scanned).abs() < 1e-12, "{psi} vs {scanned}");
            let (ks, exact) = (drift.ks.unwrap(), exact_ks(&before, &after));
            assert!(
                (ks - exact).abs() < 0.01,
                "KS {ks} vs {exact} (mean {mean})"
            );
            match mean > 0.0 {
                // A normal shifted by 0.5: KS 2Φ(0.25) - 1 = 0.197, PSI about 0.25.
                true => assert!(psi > 0.2 && (ks - 0.197).abs() < 0.02, "{psi} {ks}"),
                false => assert!(psi < 0.01 && ks < 0.02, "{psi} {ks}"),
            }
        }
    }

    #[test]
    fn snapshots_binned_apart_have_their_psi_estimated_from_the_sketch() {
        let before = normal(20_000, 0.0, 4);
        let after = normal(20_000, 0.5, 5);
        let reference = profiled(&before, &[]);
        // Binned on its own deciles, as if published before the reference.
        let current = profiled(&after, &[]);
        let [drift] = &compare(std::slice::from_ref(&reference), &[current])[..] else {
            panic!()
        };
        let scanned = scanned_psi(&edges_of(&reference), &before, &after);
        assert!(drift.psi_estimated);
        let psi = drift.psi.unwrap();
        assert!((psi - scanned).abs() < 0.02 * scanned, "{psi} vs {scanned}");
    }

    #[test]
    fn a_category_s_largest_change_of_share_and_psi_are_as_counted() {
        let category = |values: &[Option<&str>]| {
            statistics_binned(Arc::new(StringArray::from(values.to_vec())), 3, &[])
        };
        // web 2/4, store 1/4, null 1/4; then web 1/4, store 3/4.
        let reference = category(&[Some("web"), Some("store"), None, Some("web")]);
        let current = category(&[Some("store"), Some("web"), Some("store"), Some("store")]);
        let [drift] = &compare(&[reference], &[current])[..] else {
            panic!()
        };
        assert_eq!(
            drift.share_change,
            Some(ShareChange {
                value: Some("store".to_string()),
                from: 0.25,
                to: 0.75
            })
        );
        // Bins web, store, other, null: (0.5, 0.25, 0, 0.25) to (0.25, 0.75, 0, 0).
        let expected = psi(&[0.5, 0.25, 0.0, 0.25], &[0.25, 0.75, 0.0, 0.0]);
        assert!((drift.psi.unwrap() - expected).abs() < 1e-12);
        assert_eq!(drift.ks, None);
    }
}
