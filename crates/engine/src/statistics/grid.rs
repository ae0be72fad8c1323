//! Exact counts of a feature's finite values in buckets of their bits: how a version's
//! first snapshot, which has no edges to bin on while its rows stream by, takes its
//! histogram's edges from its own deciles and still counts on them exactly in the one pass
//! that writes it. The edges are the boundaries of the buckets the deciles fall in.
//!
//! A finite value's bits, read as an unsigned number with the sign bit flipped (and every
//! bit, for a negative), order as the values do. A bucket holds the values whose bits agree
//! above its grid's `shift`; whenever more than [`GRID_BUCKETS`] buckets hold values, the
//! shift grows by one, merging neighbours. A grid thus ends as the finest that fits the
//! values, however they were split between partitions: the same values, the same edges.
//! Within a power of two a bucket has one width, so a feature in a narrow range far from
//! zero is binned as finely as one spread over many magnitudes.

use super::{Histogram, OrderedEdge};

/// The most buckets holding values that a grid keeps: 16 KiB a feature and partition.
const GRID_BUCKETS: usize = 1024;

#[derive(Debug, Default, Clone)]
pub(super) struct ValueGrid {
    /// The low bits of a value's key that its bucket ignores.
    shift: u32,
    /// The buckets holding values, ascending: (a value's key >> shift, how many).
    buckets: Vec<(u64, u64)>,
}

/// A value's bits as a number in the values' order (NaN aside), -0.0 as 0.0: integers sort
/// twice as fast as `f64::total_cmp` does.
pub(super) fn key(value: f64) -> u64 {
    let bits = (value + 0.0).to_bits();
    match bits >> 63 {
        0 => bits | 1 << 63,
        _ => !bits,
    }
}

/// The number whose key is `key`.
pub(super) fn value_of(key: u64) -> f64 {
    match key >> 63 {
        1 => f64::from_bits(key & !(1 << 63)),
        _ => f64::from_bits(!key),
    }
}

impl ValueGrid {
    /// Counts the finite values of `sorted`: [keys](key), ascending.
    pub(super) fn add_sorted(&mut self, sorted: &[u64]) {
        let mut runs: Vec<(u64, u64)> = Vec::new();
        for key in sorted {
            let bucket = key >> self.shift;
            match runs.last_mut() {
                Some((last, count)) if *last == bucket => *count += 1,
                _ => runs.push((bucket, 1)),
            }
        }
        self.buckets = merged(&self.buckets, &runs);
        self.fit();
        // Merged with room for a whole batch: kept, 1,000 features would hold 300 MB.
        self.buckets.shrink_to(GRID_BUCKETS);
    }

    /// Adds another partition's counts.
    pub(super) fn merge(&mut self, other: &ValueGrid) {
        let shift = self.shift.max(other.shift);
        let mine = coarsened(&self.buckets, shift - self.shift);
        let theirs = coarsened(&other.buckets, shift - other.shift);
        self.shift = shift;
        self.buckets = merged(&mine, &theirs);
        self.fit();
    }

    /// Coarsens the grid to the least shift at which at most [`GRID_BUCKETS`] buckets hold
    /// values, in one step: two neighbouring buckets stay apart at a shift below the
    /// highest bit in which they differ.
    fn fit(&mut self) {
        if self.buckets.len() <= GRID_BUCKETS {
            return;
        }
        // apart[b]: neighbours whose highest differing bit is b - 1.
        let mut apart = [0usize; 65];
        for pair in self.buckets.windows(2) {
            apart[(64 - (pair[0].0 ^ pair[1].0).leading_zeros()) as usize] += 1;
        }
        // At `bits` more, the buckets are 1 + the neighbours apart above bit `bits - 1`.
        let mut buckets = 1 + apart.iter().sum::<usize>();
        let mut bits = 0;
        while buckets > GRID_BUCKETS {
            bits += 1;
            buckets -= apart[bits];
        }
        self.buckets = coarsened(&self.buckets, bits as u32);
        self.shift += bits as u32;
    }

    /// The histogram on the lower boundaries of the buckets holding the values' deciles,
    /// `below` and `above` (the infinities) added to its open tails; none without a value.
    pub(super) fn decile_histogram(&self, below: u64, above: u64) -> Option<Histogram> {
        if self.buckets.is_empty() {
            return None;
        }
        let total: u128 = self.buckets.iter().map(|(_, c)| u128::from(*c)).sum();
        // The d-th decile is the value of rank total * d / 10, counted from 0.
        let mut deciles = (1..10u128).peekable();
        let (mut edges, mut counts) = (Vec::new(), vec![below]);
        let mut before = 0u128;
        for &(bucket, count) in &self.buckets {
            let after = before + u128::from(count);
            let mut holds_a_decile = false;
            while deciles.next_if(|d| total * d < after * 10).is_some() {
                holds_a_decile = true;
            }
            // Only the first bucket's boundary can be beyond the finite numbers: its
            // values then stay in the open lower tail.
            let edge = value_of(bucket << self.shift);
            if holds_a_decile && edge.is_finite() {
                edges.push(OrderedEdge(edge));
                counts.push(0);
            }
            *counts.last_mut().expect("a bin") += count;
            before = after;
        }
        *counts.last_mut().expect("a bin") += above;
        Some(Histogram { edges, counts })
    }
}

/// Both ascending bucket lists as one, the counts of a bucket in both added.
fn merged(a: &[(u64, u64)], b: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut merged = Vec::with_capacity(a.len() + b.len());
    let (mut a, mut b) = (a.iter().peekable(), b.iter().peekable());
    loop {
        let next = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) if x.0 == y.0 => {
                let sum = (x.0, x.1 + y.1);
                a.next();
                b.next();
                sum
            }
            (Some(x), Some(y)) if x.0 < y.0 => *a.next().expect("peeked"),
            (_, Some(_)) => *b.next().expect("peeked"),
            (Some(_), None) => *a.next().expect("peeked"),
            (None, None) => return merged,
        };
        merged.push(next);
    }
}

/// `buckets` with `bits` more low bits of their keys ignored.
fn coarsened(buckets: &[(u64, u64)], bits: u32) -> Vec<(u64, u64)> {
    if bits == 0 {
        return buckets.to_vec();
    }
    let mut coarse: Vec<(u64, u64)> = Vec::with_capacity(buckets.len());
    for &(bucket, count) in buckets {
        let bucket = bucket.checked_shr(bits).unwrap_or(0);
        match coarse.last_mut() {
            Some((last, total)) if *last == bucket => *total += count,
            _ => coarse.push((bucket, count)),
        }
    }
    coarse
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn grid_of(values: &[f64]) -> ValueGrid {
        let mut sorted: Vec<u64> = values.iter().map(|v| key(*v)).collect();
        sorted.sort_unstable();
        let mut grid = ValueGrid::default();
        grid.add_sorted(&sorted);
        grid
    }

    proptest! {
        #[test]
        fn keys_order_as_the_values_do(a in prop::num::f64::ANY, b in prop::num::f64::ANY) {
            prop_assume!(a.is_finite() && b.is_finite());
            prop_assert_eq!(key(a).cmp(&key(b)), a.partial_cmp(&b).unwrap());
            prop_assert_eq!(value_of(key(a)).to_bits(), (a + 0.0).to_bits());
        }

        /// However the values are split between partitions, the grid is the one of all.
        #[test]
        fn partitions_merge_into_the_grid_of_all_their_values(
            values in prop::collection::vec(prop_oneof![
                (-1e6f64..1e6), (0i32..40).prop_map(f64::from), prop::num::f64::NORMAL,
            ], 0..6000),
            cut in 0usize..6000,
        ) {
            let cut = cut.min(values.len());
            let mut first = grid_of(&values[..cut]);
            first.merge(&grid_of(&values[cut..]));
            let whole = grid_of(&values);
            prop_assert_eq!((first.shift, &first.buckets), (whole.shift, &whole.buckets));
            prop_assert!(whole.buckets.len() <= GRID_BUCKETS);
            // The least shift that fits: one bit less would not.
            if whole.shift > 0 {
                let mut keys: Vec<u64> = values.iter().map(|v| key(*v) >> (whole.shift - 1)).collect();
                keys.sort_unstable();
                keys.dedup();
                prop_assert!(keys.len() > GRID_BUCKETS);
            }
        }
    }

    #[test]
    fn few_distinct_values_are_binned_at_their_deciles_exactly() {
        // 1..=1000: the deciles are 101, 201, ..., 901 (ranks 100, 200, ... from 0).
        let values: Vec<f64> = (1..=1000).map(f64::from).collect();
        let histogram = grid_of(&values).decile_histogram(2, 3).unwrap();
        let expected: Vec<f64> = (1..10).map(|d| f64::from(d * 100 + 1)).collect();
        assert_eq!(histogram.edge_values(), expected);
        let mut counts = vec![100; 10];
        counts[0] += 2;
        counts[9] += 3;
        assert_eq!(histogram.counts, counts);
    }

    #[test]
    fn many_distinct_values_are_binned_near_their_deciles() {
        // 200,000 values evenly over [0, 1): about 10% in each bin, within a bucket's width.
        let values: Vec<f64> = (0..200_000).map(|i| f64::from(i) / 200_000.0).collect();
        let histogram = grid_of(&values).decile_histogram(0, 0).unwrap();
        assert_eq!(histogram.edges.len(), 9, "{histogram:?}");
        for count in &histogram.counts {
            assert!(
                (*count as f64 / 200_000.0 - 0.1).abs() < 0.02,
                "{histogram:?}"
            );
        }
    }
}
