//! The matching rule of point-in-time joins, over inputs sorted by key and time: for each
//! spine row, the feature row of the same key that was known at the spine's time and is the
//! latest such row.
//!
//! A feature row is known from its `visible_at` time: its event time, or with
//! `--as-written` the later of its event time and its snapshot's as-of. Among the rows known
//! at a spine time, the one with the latest event time wins, and of equal event times the
//! newest snapshot's. Rows only ever become known as time passes, so one pass over both
//! sorted inputs keeps a running best per key: memory is one row, whatever the sizes.

use std::cmp::Ordering;

/// One side's key, as comparable bytes (Arrow's row format), and times in microseconds.
#[derive(Debug, Clone, Copy)]
pub struct SpineRow<'a> {
    pub key: &'a [u8],
    pub time: i64,
}

#[derive(Debug, Clone, Copy)]
pub struct FeatureRow<'a> {
    pub key: &'a [u8],
    pub visible_at: i64,
    pub event_time: i64,
    pub snapshot_as_of: i64,
}

/// For each spine row (sorted by key, then time), the index of its matching feature row
/// (features sorted by key, then `visible_at`), or `None`: no row known yet, or the latest
/// one older than `ttl_micros` at the spine's time.
pub fn match_sorted(
    spine: &[SpineRow<'_>],
    features: &[FeatureRow<'_>],
    ttl_micros: Option<i64>,
) -> Vec<Option<usize>> {
    let mut matches = Vec::with_capacity(spine.len());
    let mut next = 0;
    let mut best: Option<usize> = None;
    let mut best_key: &[u8] = &[];
    for row in spine {
        // Skip the features of keys before this spine row's key.
        while next < features.len() && features[next].key < row.key {
            next += 1;
        }
        if best.is_some() && best_key != row.key {
            best = None;
        }
        while next < features.len()
            && features[next].key == row.key
            && features[next].visible_at <= row.time
        {
            let candidate = &features[next];
            let better = best.is_none_or(|b| {
                let current = &features[b];
                (candidate.event_time, candidate.snapshot_as_of)
                    .cmp(&(current.event_time, current.snapshot_as_of))
                    == Ordering::Greater
            });
            if better {
                best = Some(next);
                best_key = row.key;
            }
            next += 1;
        }
        let fresh =
            best.filter(|&b| ttl_micros.is_none_or(|ttl| features[b].event_time + ttl >= row.time));
        matches.push(fresh);
    }
    matches
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator, so that failures repeat.
    struct XorShift(u64);

    impl XorShift {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    /// The rule as stated, by nested loops over unsorted rows.
    fn reference(
        spine: &[(u8, i64)],
        features: &[(u8, i64, i64, i64)],
        ttl: Option<i64>,
    ) -> Vec<Option<(i64, i64)>> {
        spine
            .iter()
            .map(|&(key, time)| {
                features
                    .iter()
                    .filter(|f| f.0 == key && f.1 <= time)
                    .map(|f| (f.2, f.3))
                    .max()
                    .filter(|(event_time, _)| ttl.is_none_or(|ttl| event_time + ttl >= time))
            })
            .collect()
    }

    #[test]
    fn matches_the_nested_loop_reference_on_generated_data() {
        let mut random = XorShift(0x9E37_79B9_7F4A_7C15);
        for case in 0..300 {
            let keys = 1 + random.below(5) as u8;
            let mut spine: Vec<(u8, i64)> = (0..random.below(40))
                .map(|_| (random.below(keys as u64 + 1) as u8, random.below(30) as i64))
                .collect();
            let mut features: Vec<(u8, i64, i64, i64)> = (0..random.below(40))
                .map(|_| {
                    let event_time = random.below(30) as i64;
                    let snapshot = event_time + random.below(5) as i64;
                    let as_written = case % 2 == 0;
                    let visible_at = if as_written { snapshot } else { event_time };
                    (
                        random.below(keys as u64 + 1) as u8,
                        visible_at,
                        event_time,
                        snapshot,
                    )
                })
                .collect();
            let ttl = (case % 3 == 0).then(|| random.below(10) as i64);
            spine.sort();
            features.sort_by_key(|f| (f.0, f.1));
            let key_bytes: Vec<[u8; 1]> = (0..=keys).map(|k| [k]).collect();
            let spine_rows: Vec<SpineRow> = spine
                .iter()
                .map(|&(k, t)| SpineRow {
                    key: &key_bytes[k as usize],
                    time: t,
                })
                .collect();
            let feature_rows: Vec<FeatureRow> = features
                .iter()
                .map(|&(k, v, e, s)| FeatureRow {
                    key: &key_bytes[k as usize],
                    visible_at: v,
                    event_time: e,
                    snapshot_as_of: s,
                })
                .collect();
            let matched: Vec<Option<(i64, i64)>> = match_sorted(&spine_rows, &feature_rows, ttl)
                .into_iter()
                .map(|m| m.map(|i| (features[i].2, features[i].3)))
                .collect();
            assert_eq!(
                matched,
                reference(&spine, &features, ttl),
                "case {case}: {spine:?} / {features:?}"
            );
        }
    }

    #[test]
    fn equal_event_times_take_the_newest_snapshot_and_unknown_keys_stay_unmatched() {
        let (a, b, c) = ([1u8], [2u8], [3u8]);
        let features = [
            FeatureRow {
                key: &a,
                visible_at: 5,
                event_time: 5,
                snapshot_as_of: 6,
            },
            FeatureRow {
                key: &a,
                visible_at: 5,
                event_time: 5,
                snapshot_as_of: 9,
            },
            FeatureRow {
                key: &c,
                visible_at: 1,
                event_time: 1,
                snapshot_as_of: 1,
            },
        ];
        let spine = [
            SpineRow { key: &a, time: 4 },
            SpineRow { key: &a, time: 5 },
            SpineRow { key: &b, time: 100 },
        ];
        assert_eq!(match_sorted(&spine, &features, None), [None, Some(1), None]);
    }
}
