//! Backfills: one snapshot per as-of of a range, each registered like a run's. As-ofs whose
//! snapshots are registered already are skipped (so a killed backfill resumes), only the
//! newest as-of goes online, and work is shared across as-ofs: window aggregates are swept
//! once over their source, other queries read their sources once.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use datafusion::error::DataFusionError;
use datafusion::execution::context::SessionContext;
use fengine_dialect::Pipeline;
use fengine_operators::sweep::{Sweep, SweepQuery};
use serde::Serialize;
use tokio::task::{JoinError, JoinSet};

use crate::backends::{Backends, with_default_batch_size};
use crate::error::{Error, Result};
use crate::manifest::{GroupManifest, OnlineOutcome};
use crate::online_load::OnlineStep;
use crate::options::{RunOptions, check_horizon, check_whole_seconds, snapshot_name};
use crate::plan::{self, PlannedGroup, PlannedPipeline};
use crate::run::{publish_group, publish_rows};
use crate::source_cache::SourceCache;

/// What a backfill is asked to do.
#[derive(Debug, Clone)]
pub struct BackfillOptions {
    pub from: DateTime<Utc>,
    /// Included when the steps land on it.
    pub to: DateTime<Utc>,
    pub every: Duration,
    /// Everything else as for one run: params, `force` (recompute registered as-ofs, load
    /// online over a newer as-of).
    pub run: RunOptions,
}

impl BackfillOptions {
    /// The as-ofs of the range, oldest first.
    pub fn as_ofs(&self) -> Result<Vec<DateTime<Utc>>> {
        check_whole_seconds("--from", self.from)?;
        check_whole_seconds("--to", self.to)?;
        if self.to < self.from {
            return Err(Error::Config(format!(
                "--from {} is after --to {}",
                self.from.to_rfc3339_opts(SecondsFormat::Secs, true),
                self.to.to_rfc3339_opts(SecondsFormat::Secs, true)
            )));
        }
        let step = TimeDelta::from_std(self.every)
            .ok()
            .filter(|s| s.num_seconds() > 0 && s.subsec_nanos() == 0)
            .ok_or_else(|| {
                Error::Config("--every must be a whole number of seconds or more".to_string())
            })?;
        let count = (self.to - self.from).num_seconds() / step.num_seconds() + 1;
        if count > MAX_AS_OFS {
            return Err(Error::Config(format!(
                "the range holds {count} as-ofs, more than {MAX_AS_OFS}: use a longer --every or \
                 a shorter range"
            )));
        }
        Ok((0..count as i32).map(|i| self.from + step * i).collect())
    }
}

const MAX_AS_OFS: i64 = 100_000;

/// `1d`, `6h`, `15m`, `30s`: a backfill's step.
pub fn parse_every(text: &str) -> std::result::Result<Duration, String> {
    let invalid = || format!("'{text}' is not an interval such as 1d, 6h, 15m or 30s");
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let number: u64 = number.parse().map_err(|_| invalid())?;
    let seconds = match unit {
        "d" => 86_400,
        "h" => 3_600,
        "m" => 60,
        "s" => 1,
        _ => return Err(invalid()),
    };
    if number == 0 {
        return Err(invalid());
    }
    Ok(Duration::from_secs(number * seconds))
}

#[derive(Debug, Clone, Serialize)]
pub struct BackfillManifest {
    pub pipeline: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub every_seconds: u64,
    /// Every as-of of the range, oldest first.
    pub as_ofs: Vec<AsOfOutcome>,
    /// The groups computed for all their as-ofs in one sweep over their source; the others
    /// ran at each as-of.
    pub swept: Vec<String>,
    /// The online step of groups whose newest snapshot was registered already, by group:
    /// it completes a load that a killed backfill left unfinished.
    pub online: BTreeMap<String, OnlineOutcome>,
    pub rows_written: u64,
    pub elapsed_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct AsOfOutcome {
    pub as_of: DateTime<Utc>,
    /// The groups computed and published at this as-of.
    pub groups: Vec<GroupManifest>,
    /// Groups whose snapshot of this as-of was registered already.
    pub skipped: Vec<String>,
}

/// Where a backfill stands, after each snapshot it publishes.
#[derive(Debug, Clone)]
pub struct BackfillProgress {
    /// Snapshots published, of those the backfill has to publish.
    pub done: usize,
    pub total: usize,
    pub rows_written: u64,
    pub group: String,
    pub as_of: DateTime<Utc>,
}

/// Runs the pipeline at every as-of of the range; `progress` hears of each snapshot.
///
/// A group whose query is a time-window aggregate (see [`pattern`]) is computed for all its
/// as-ofs in one sweep over its source; any other group is planned and computed at each
/// as-of, its sources read once into memory when they fit.
pub async fn backfill(
    pipeline: &Pipeline,
    options: &BackfillOptions,
    backends: &Backends,
    progress: &mut dyn FnMut(&BackfillProgress),
) -> Result<BackfillManifest> {
    let started = Instant::now();
    let as_ofs = options.as_ofs()?;
    check_horizon("--to", options.to, options.run.force, backends)?;
    let newest = *as_ofs.last().expect("a range holds its first as-of");
    let run_at = |as_of: DateTime<Utc>| {
        let mut run = options.run.clone();
        run.as_of = as_of;
        // Each as-of has its own files: a run id names the backfill and the as-of.
        run.run_id = format!(
            "{}-{}",
            options.run.run_id,
            snapshot_name(as_of).to_lowercase()
        );
        run.load_online = as_of == newest;
        run
    };
    let sources = SourceCache::new(backends.side_budget());
    // Planned with its sources on storage: a swept group streams its source once, sorted,
    // and only groups planned at each as-of need the sources held in memory.
    let first = plan::plan_pipeline(pipeline, &run_at(as_ofs[0]), backends, None).await?;
    let registered = registered_snapshots(&first.groups, backends).await?;
    // Per group, the as-ofs it has to publish.
    let pending: Vec<Vec<DateTime<Utc>>> = first
        .groups
        .iter()
        .map(|group| {
            as_ofs
                .iter()
                .copied()
                .filter(|as_of| {
                    options.run.force || !registered[&group.name()].contains(&snapshot_name(*as_of))
                })
                .collect()
        })
        .collect();
    let mut tracker = Tracker {
        done: 0,
        total: pending.iter().map(Vec::len).sum(),
        rows_written: 0,
        published: BTreeMap::new(),
        progress,
    };

    let mut swept = Vec::new();
    let mut per_as_of = Vec::new();
    for (index, group) in first.groups.iter().enumerate() {
        if pending[index].is_empty() {
            continue;
        }
        let Some(mut sweep) = sweep_of(&first.context, group, &pending[index]).await? else {
            per_as_of.push(index);
            continue;
        };
        swept.push(group.name());
        let shared = Arc::new(group.clone());
        let publish = |as_of, snapshot| {
            let (context, group, backends, run) = (
                first.context.clone(),
                shared.clone(),
                backends.clone(),
                run_at(as_of),
            );
            async move {
                let published = publish_rows(&context, &group, snapshot, &run, &backends).await;
                published.map(|m| (as_of, m))
            }
        };
        publish_swept(&mut sweep, publish, |done| tracker.settle(index, done)).await?;
    }
    for &as_of in &as_ofs {
        let due: Vec<usize> = per_as_of
            .iter()
            .copied()
            .filter(|&i| pending[i].contains(&as_of))
            .collect();
        if due.is_empty() {
            continue;
        }
        let run = run_at(as_of);
        let planned = plan::plan_pipeline(pipeline, &run, backends, Some(&sources)).await?;
        for index in due {
            let group = &planned.groups[index];
            let published = publish_group(&planned.context, group, None, &run, backends).await?;
            tracker.record(index, as_of, published);
        }
    }

    // A group whose newest snapshot was registered before (a resumed backfill) may have been
    // killed while loading it: the online step completes such a load, or finds it complete.
    let mut online = BTreeMap::new();
    for (index, group) in first.groups.iter().enumerate() {
        if pending[index].contains(&newest) {
            continue;
        }
        let step = OnlineStep {
            context: &first.context,
            target: group.load_target(),
            options: &run_at(newest),
            backends,
            mine: None,
            obsolete: Vec::new(),
        };
        online.insert(group.name(), step.run().await?);
    }

    let mut published = tracker.published;
    let rows_written = tracker.rows_written;
    let outcomes = as_ofs
        .iter()
        .map(|&as_of| {
            let mut outcome = AsOfOutcome {
                as_of,
                groups: Vec::new(),
                skipped: Vec::new(),
            };
            for (index, group) in first.groups.iter().enumerate() {
                match published.remove(&(as_of, index)) {
                    Some(manifest) => outcome.groups.push(manifest),
                    None => outcome.skipped.push(group.name()),
                }
            }
            outcome
        })
        .collect();
    Ok(BackfillManifest {
        pipeline: pipeline.path.display().to_string(),
        from: options.from,
        to: options.to,
        every_seconds: options.every.as_secs(),
        as_ofs: outcomes,
        swept,
        online,
        rows_written,
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}

/// Publishes each snapshot of the sweep while the sweep computes the next one: the two
/// share the machine's cores. `settle` takes each finished publishing.
async fn publish_swept<F, P>(
    sweep: &mut Sweep,
    publish: P,
    mut settle: impl FnMut(Published) -> Result<()>,
) -> Result<()>
where
    P: Fn(DateTime<Utc>, RecordBatch) -> F,
    F: Future<Output = Result<(DateTime<Utc>, GroupManifest)>> + Send + 'static,
{
    let mut publishing = JoinSet::new();
    let mut failure = None;
    loop {
        let (as_of, snapshot) = match sweep.next_snapshot().await.map_err(sweep_error) {
            Ok(Some(next)) => next,
            Ok(None) => break,
            Err(e) => {
                failure = Some(e);
                break;
            }
        };
        if publishing.len() >= SNAPSHOTS_IN_FLIGHT
            && let Err(e) = settle(publishing.join_next().await)
        {
            failure = Some(e);
            break;
        }
        publishing.spawn(publish(as_of, snapshot));
    }
    // Snapshots being published finish even after a later one failed: each is a commit of
    // its own, and a rerun skips them.
    while let Some(done) = publishing.join_next().await {
        if let Err(e) = settle(Some(done)) {
            failure.get_or_insert(e);
        }
    }
    failure.map_or(Ok(()), Err)
}

/// Swept snapshots being published at once, beside the sweep.
const SNAPSHOTS_IN_FLIGHT: usize = 2;

/// A snapshot publishing task, done.
type Published = Option<std::result::Result<Result<(DateTime<Utc>, GroupManifest)>, JoinError>>;

/// The groups of a planned pipeline that a backfill computes in one sweep over their
/// source; it computes the others at each as-of.
pub async fn swept_groups(planned: &PlannedPipeline) -> Result<Vec<String>> {
    let mut swept = Vec::new();
    for group in &planned.groups {
        if sweep_of(&planned.context, group, &[]).await?.is_some() {
            swept.push(group.name());
        }
    }
    Ok(swept)
}

/// The sweep of `group` over `as_ofs`, when its query is one a sweep computes.
async fn sweep_of(
    context: &SessionContext,
    group: &PlannedGroup,
    as_ofs: &[DateTime<Utc>],
) -> Result<Option<Sweep>> {
    let Some(query) = SweepQuery::recognize(&group.definition.query) else {
        return Ok(None);
    };
    let context = with_default_batch_size(context);
    Sweep::try_new(&context, &query, group.schema.clone(), as_ofs)
        .await
        .map_err(sweep_error)
}

/// A sweep's failure: an as-of its time column cannot hold is the command's to fix; the
/// rest fail as DataFusion's do.
fn sweep_error(error: DataFusionError) -> Error {
    match error {
        DataFusionError::Configuration(message) => Error::Config(message),
        other => Error::from_datafusion(None, other),
    }
}

/// Collects what was published and reports each snapshot.
struct Tracker<'a> {
    done: usize,
    total: usize,
    rows_written: u64,
    /// By (as-of, group index).
    published: BTreeMap<(DateTime<Utc>, usize), GroupManifest>,
    progress: &'a mut dyn FnMut(&BackfillProgress),
}

impl Tracker<'_> {
    /// Records a finished publishing task of group `group`, or returns its failure.
    fn settle(&mut self, group: usize, done: Published) -> Result<()> {
        let (as_of, published) = match done {
            Some(Ok(outcome)) => outcome?,
            Some(Err(e)) => {
                return Err(Error::Infrastructure(format!(
                    "a snapshot's publishing failed: {e}"
                )));
            }
            None => return Ok(()),
        };
        self.record(group, as_of, published);
        Ok(())
    }

    fn record(&mut self, group: usize, as_of: DateTime<Utc>, published: GroupManifest) {
        self.done += 1;
        self.rows_written += published.rows_written;
        (self.progress)(&BackfillProgress {
            done: self.done,
            total: self.total,
            rows_written: self.rows_written,
            group: published.group.clone(),
            as_of,
        });
        self.published.insert((as_of, group), published);
    }
}

/// The snapshot names registered per group.
async fn registered_snapshots(
    groups: &[PlannedGroup],
    backends: &Backends,
) -> Result<HashMap<String, BTreeSet<String>>> {
    let mut registered = HashMap::new();
    for group in groups {
        let partitions = backends
            .catalog
            .list_partitions(&group.table.database, &group.table.name)
            .await?;
        let names = partitions
            .into_iter()
            .filter_map(|p| p.values.into_iter().next())
            .collect();
        registered.insert(group.name(), names);
    }
    Ok(registered)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_read_as_durations() {
        assert_eq!(parse_every("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_every("6h"), Ok(Duration::from_secs(21_600)));
        assert_eq!(parse_every("15m"), Ok(Duration::from_secs(900)));
        assert!(parse_every("0d").is_err());
        assert!(parse_every("1w").is_err());
        assert!(parse_every("d").is_err());
    }

    #[test]
    fn a_range_holds_both_ends_when_the_steps_land_on_them() {
        let at = |text: &str| DateTime::parse_from_rfc3339(text).unwrap().to_utc();
        let options = |to: &str| BackfillOptions {
            from: at("2024-03-01T00:00:00Z"),
            to: at(to),
            every: Duration::from_secs(86_400),
            run: RunOptions::now(),
        };
        assert_eq!(options("2024-03-03T00:00:00Z").as_ofs().unwrap().len(), 3);
        assert_eq!(
            options("2024-03-03T12:00:00Z").as_ofs().unwrap().last(),
            Some(&at("2024-03-03T00:00:00Z"))
        );
        assert_eq!(options("2024-03-01T00:00:00Z").as_ofs().unwrap().len(), 1);
        assert!(options("2024-02-01T00:00:00Z").as_ofs().is_err());
    }
}
