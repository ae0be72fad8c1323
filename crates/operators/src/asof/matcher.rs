//! The matching rule of point-in-time joins, over inputs sorted by key and time: for each
//! spine row, the feature row of the same key that was known at the spine's time and is the
//! latest such row.
//!
//! A feature row is known from its `visible_at` time: its event time, or with
//! `--as-written` the later of its event time and its snapshot's as-of. Among the rows known
//! at a spine time, the one with the latest event time wins, and of equal event times the
//! newest snapshot's. Rows only ever become known as time passes, so one pass over both
//! sorted inputs keeps a running best per key: memory is one row, whatever the sizes.
//!
//! Feature rows arrive in batches; the matcher asks for the next one when the current one
//! runs out in the middle of a spine row, so the same rule serves slices and streams.

use arrow::array::Int64Array;
use arrow::row::{OwnedRow, Row, Rows};

/// A batch of feature rows, sorted by key then `visible_at` (and after the previous batch).
pub struct FeatureBatch {
    /// Names the batch in matches, so that the caller can find its rows again.
    pub id: u64,
    pub keys: Rows,
    /// Times in ticks of one unit, as the spine's.
    pub visible_at: Int64Array,
    pub event_time: Int64Array,
    pub snapshot_as_of: Int64Array,
}

/// A feature row: its batch's id and its index in that batch.
pub type RowRef = (u64, usize);

pub enum Step {
    /// The spine row's match, if it has one.
    Matched(Option<RowRef>),
    /// The current batch ran out: push the next one (or call `features_exhausted`) and ask
    /// again for the same spine row.
    NeedFeatures,
}

struct Best {
    row: RowRef,
    /// Copied out only when its batch is replaced; until then read from the batch.
    key: Option<OwnedRow>,
    event_time: i64,
    snapshot_as_of: i64,
}

pub struct Matcher {
    ttl_ticks: Option<i64>,
    current: Option<FeatureBatch>,
    next: usize,
    exhausted: bool,
    best: Option<Best>,
}

impl Matcher {
    pub fn new(ttl_ticks: Option<i64>) -> Self {
        Matcher {
            ttl_ticks,
            current: None,
            next: 0,
            exhausted: false,
            best: None,
        }
    }

    /// Replaces the finished current batch; returns it, so the caller may drop it.
    pub fn push_features(&mut self, batch: FeatureBatch) -> Option<FeatureBatch> {
        if let (Some(best), Some(current)) = (&mut self.best, &self.current)
            && best.key.is_none()
        {
            best.key = Some(current.keys.row(best.row.1).owned());
        }
        self.next = 0;
        self.current.replace(batch)
    }

    pub fn features_exhausted(&mut self) {
        self.exhausted = true;
    }

    /// Where the running best is, which the caller must keep.
    pub fn best(&self) -> Option<RowRef> {
        self.best.as_ref().map(|b| b.row)
    }

    /// The running best now lives at `row` (the caller copied it out of a large batch).
    pub fn move_best(&mut self, row: RowRef) {
        if let Some(best) = &mut self.best {
            best.row = row;
        }
    }

    /// Matches the next spine row (spine rows come sorted by key, then time). A row without
    /// a time matches nothing.
    pub fn match_row(&mut self, key: Row<'_>, time: Option<i64>) -> Step {
        let Some(time) = time else {
            return Step::Matched(None);
        };
        if self.best_key().is_some_and(|best| best != key) {
            self.best = None;
        }
        let Some(batch) = &self.current else {
            return self.at_end_of_batch(time);
        };
        while self.next < batch.keys.num_rows() {
            let candidate_key = batch.keys.row(self.next);
            if candidate_key < key {
                self.next += 1;
                continue;
            }
            if candidate_key > key || batch.visible_at.value(self.next) > time {
                return Step::Matched(self.fresh_best(time));
            }
            let event_time = batch.event_time.value(self.next);
            let snapshot_as_of = batch.snapshot_as_of.value(self.next);
            let better = self
                .best
                .as_ref()
                .is_none_or(|b| (event_time, snapshot_as_of) > (b.event_time, b.snapshot_as_of));
            if better {
                self.best = Some(Best {
                    row: (batch.id, self.next),
                    key: None,
                    event_time,
                    snapshot_as_of,
                });
            }
            self.next += 1;
        }
        self.at_end_of_batch(time)
    }

    fn best_key(&self) -> Option<Row<'_>> {
        let best = self.best.as_ref()?;
        match &best.key {
            Some(key) => Some(key.row()),
            None => self
                .current
                .as_ref()
                .map(|batch| batch.keys.row(best.row.1)),
        }
    }

    /// The current batch is used up: the match stands if no batch follows.
    fn at_end_of_batch(&self, time: i64) -> Step {
        if self.exhausted {
            Step::Matched(self.fresh_best(time))
        } else {
            Step::NeedFeatures
        }
    }

    /// The running best, unless older than the ttl at `time`.
    fn fresh_best(&self, time: i64) -> Option<RowRef> {
        self.best
            .as_ref()
            .filter(|b| {
                self.ttl_ticks
                    .is_none_or(|ttl| b.event_time.saturating_add(ttl) >= time)
            })
            .map(|b| b.row)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Int64Array};
    use arrow::datatypes::DataType;
    use arrow::row::{RowConverter, SortField};

    use super::*;
    use fengine_testing::XorShift;

    /// (key, visible_at, event_time, snapshot_as_of)
    type Feature = (i64, i64, i64, i64);

    /// The rule as stated, by nested loops over unsorted rows.
    fn reference(
        spine: &[(i64, i64)],
        features: &[Feature],
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

    fn rows(converter: &RowConverter, keys: impl IntoIterator<Item = i64>) -> Rows {
        let keys: ArrayRef = Arc::new(Int64Array::from_iter_values(keys));
        converter.convert_columns(&[keys]).unwrap()
    }

    fn times(values: impl IntoIterator<Item = i64>) -> Int64Array {
        Int64Array::from_iter_values(values)
    }

    /// Runs the matcher with the features cut into batches of `chunk` rows.
    fn run(
        spine: &[(i64, i64)],
        features: &[Feature],
        ttl: Option<i64>,
        chunk: usize,
    ) -> Vec<Option<(i64, i64)>> {
        let converter = RowConverter::new(vec![SortField::new(DataType::Int64)]).unwrap();
        let spine_keys = rows(&converter, spine.iter().map(|s| s.0));
        let mut batches = features.chunks(chunk).enumerate().map(|(id, rows_of)| {
            let batch = FeatureBatch {
                id: id as u64,
                keys: rows(&converter, rows_of.iter().map(|f| f.0)),
                visible_at: times(rows_of.iter().map(|f| f.1)),
                event_time: times(rows_of.iter().map(|f| f.2)),
                snapshot_as_of: times(rows_of.iter().map(|f| f.3)),
            };
            (batch, rows_of)
        });
        let mut held: Vec<&[Feature]> = Vec::new();
        let mut matcher = Matcher::new(ttl);
        let mut matched = Vec::new();
        for (i, &(_, time)) in spine.iter().enumerate() {
            loop {
                match matcher.match_row(spine_keys.row(i), Some(time)) {
                    Step::Matched(found) => {
                        matched.push(found.map(|(batch, row)| {
                            let f = held[batch as usize][row];
                            (f.2, f.3)
                        }));
                        break;
                    }
                    Step::NeedFeatures => match batches.next() {
                        Some((batch, rows_of)) => {
                            held.push(rows_of);
                            matcher.push_features(batch);
                        }
                        None => matcher.features_exhausted(),
                    },
                }
            }
        }
        matched
    }

    #[test]
    fn matches_the_nested_loop_reference_on_generated_data() {
        let mut random = XorShift(0x9E37_79B9_7F4A_7C15);
        for case in 0..600 {
            let keys = 1 + random.below(5) as i64;
            let mut spine: Vec<(i64, i64)> = (0..random.below(40))
                .map(|_| {
                    (
                        random.below(keys as u64 + 1) as i64,
                        random.below(30) as i64,
                    )
                })
                .collect();
            let as_written = case % 2 == 0;
            let mut features: Vec<Feature> = (0..random.below(40))
                .map(|_| {
                    let event_time = random.below(30) as i64;
                    let snapshot = event_time + random.below(5) as i64;
                    let visible_at = if as_written { snapshot } else { event_time };
                    let key = random.below(keys as u64 + 1) as i64;
                    (key, visible_at, event_time, snapshot)
                })
                .collect();
            let ttl = (case % 3 == 0).then(|| random.below(10) as i64);
            let chunk = 1 + random.below(8) as usize;
            spine.sort();
            features.sort_by_key(|f| (f.0, f.1));
            assert_eq!(
                run(&spine, &features, ttl, chunk),
                reference(&spine, &features, ttl),
                "case {case} (chunks of {chunk}): {spine:?} / {features:?}"
            );
        }
    }

    #[test]
    fn equal_event_times_take_the_newest_snapshot_and_unknown_keys_stay_unmatched() {
        let features = [(1, 5, 5, 6), (1, 5, 5, 9), (3, 1, 1, 1)];
        let spine = [(1, 4), (1, 5), (2, 100)];
        assert_eq!(run(&spine, &features, None, 2), [None, Some((5, 9)), None]);
    }

    #[test]
    fn a_row_older_than_the_ttl_counts_as_missing() {
        let features = [(1, 10, 10, 10)];
        let spine = [(1, 15), (1, 16)];
        assert_eq!(run(&spine, &features, Some(5), 1), [Some((10, 10)), None]);
    }
}
