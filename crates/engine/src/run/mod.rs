//! A run, in the order of its steps. The pipeline is planned first ([`crate::plan`]: no
//! data read); then each feature group in turn, under the lease of its snapshot:
//!
//! 1. **compute**: the query's rows streamed into the snapshot's Parquet files under a
//!    folder of this run's own, each batch checked before it is written ([`snapshot`]);
//! 2. **check**: what needs the whole snapshot (repeats of key and event time, when the rows
//!    did not come sorted);
//! 3. **commit**: the snapshot registered in the catalog, replacing an earlier run's of the
//!    same as-of. Before it, a failure deletes the run's folder and publishes nothing;
//! 4. **online load**: the online store brought to the newest registered snapshot
//!    ([`crate::online_load`]), which also deletes the files of runs known to have ended.
//!
//! A backfill publishes through the same steps, with rows its sweep computed in place of
//! step 1's query.

mod order;
mod publication;
mod snapshot;

pub use order::order_pipelines;

use std::collections::BTreeMap;
use std::time::Instant;

use arrow::array::RecordBatch;
use datafusion::execution::context::SessionContext;
use fengine_catalog::{MAX_PARAMETER_VALUE_BYTES, Partition};
use fengine_dialect::Pipeline;
use tracing::Instrument;
use url::Url;

use self::publication::{Registered, record_publication};
use self::snapshot::{OnlineCheck, naming_the_file, read_and_check, write_rows, write_snapshot};
use crate::backends::Backends;
use crate::catalogue::write_model;
use crate::checks::Identity;
use crate::drift::{self, SnapshotDrift};
use crate::error::Result;
use crate::fingerprint::{Fingerprint, Fingerprints};
use crate::hooks::{fail_point, pause_point};
use crate::interrupt;
use crate::lease::{Lease, waiting};
use crate::manifest::{
    ExpectationOutcome, GroupManifest, OnlineOutcome, RunManifest, Timings, UnchangedGroup,
};
use crate::online_load::{LatestRows, OnlineStep};
use crate::options::{RunOptions, snapshot_name};
use crate::plan::{PlannedGroup, PlannedPipeline, plan};
use crate::published;
use crate::statistics::{FeatureStatistics, Profiler};
use crate::statistics_file::{self, statistics_file, statistics_folder};
use crate::status::group_status;

/// Plans the pipeline, then computes and publishes each feature group in order. Each group
/// is published on its own: a failing group stops the run but leaves earlier groups
/// published.
pub async fn run(
    pipeline: &Pipeline,
    options: &RunOptions,
    backends: &Backends,
) -> Result<RunManifest> {
    let started = Instant::now();
    let planned = plan(pipeline, options, backends).await?;
    let (todo, unchanged) = groups_to_compute(pipeline, &planned, options, backends).await?;
    let mut groups = Vec::with_capacity(todo.len());
    for (group, fingerprint) in &todo {
        let published = match interrupt::check() {
            Ok(()) => {
                let fingerprint = Some(fingerprint);
                publish_group(&planned.context, group, fingerprint, options, backends).await
            }
            Err(stop) => Err(stop),
        };
        match published {
            Ok(published) => groups.push(published),
            Err(error) => return Err(error.after_publishing(&groups)),
        }
    }
    // Registered even when every group was unchanged: an earlier run may have stopped
    // after publishing its groups, before its models.
    let mut models = Vec::with_capacity(planned.models.len());
    for model in &planned.models {
        let registered = write_model(backends, &model.definition, model.uses.clone())
            .await
            .map_err(|e| e.after_publishing(&groups))?;
        models.push(format!("{} v{}", registered.model, registered.version));
    }
    Ok(RunManifest {
        run_id: options.run_id.clone(),
        job_name: options.job_name.clone(),
        pipeline: pipeline.path.display().to_string(),
        as_of: options.as_of,
        params: options.params.clone(),
        warehouse: backends.warehouse.root().to_string(),
        groups,
        unchanged,
        models,
        elapsed_ms: elapsed_ms(started),
    })
}

/// The groups to compute, each with the fingerprint of what it reads (taken before any is
/// computed), and under `--if-changed` those whose last run stands.
async fn groups_to_compute<'a>(
    pipeline: &Pipeline,
    planned: &'a PlannedPipeline,
    options: &RunOptions,
    backends: &Backends,
) -> Result<(Vec<(&'a PlannedGroup, Fingerprint)>, Vec<UnchangedGroup>)> {
    let mut fingerprints = Fingerprints::new(pipeline, planned, backends).await?;
    let mut todo = Vec::with_capacity(planned.groups.len());
    let mut unchanged = Vec::new();
    for group in &planned.groups {
        let fingerprint = fingerprints.of(group).await?;
        if !options.if_changed {
            todo.push((group, fingerprint));
            continue;
        }
        let status = group_status(group, fingerprint, backends).await?;
        match (&status.last_run, status.is_unchanged()) {
            (Some(last), true) => {
                tracing::info!(
                    group = %status.group,
                    version = status.version,
                    "unchanged since run {} of as-of {}: not computed",
                    last.run_id,
                    published::format_time(last.as_of)
                );
                unchanged.push(UnchangedGroup {
                    group: status.group,
                    version: status.version,
                    run_id: last.run_id.clone(),
                    as_of: last.as_of,
                });
            }
            _ => {
                tracing::info!(
                    group = %status.group,
                    version = status.version,
                    "changed: {}",
                    status.changed.join("; ")
                );
                todo.push((group, status.fingerprint));
            }
        }
    }
    Ok((todo, unchanged))
}

/// Computes the group's query into its snapshot and publishes it, recording what it read
/// (a backfill's earlier as-ofs record nothing: their fingerprint is the newest's).
pub(crate) async fn publish_group(
    context: &SessionContext,
    group: &PlannedGroup,
    fingerprint: Option<&Fingerprint>,
    options: &RunOptions,
    backends: &Backends,
) -> Result<GroupManifest> {
    publish(context, group, None, fingerprint, options, backends).await
}

/// Publishes rows computed elsewhere (a backfill's sweep) as the group's snapshot.
pub(crate) async fn publish_rows(
    context: &SessionContext,
    group: &PlannedGroup,
    rows: RecordBatch,
    options: &RunOptions,
    backends: &Backends,
) -> Result<GroupManifest> {
    publish(context, group, Some(rows), None, options, backends).await
}

/// Publishes under the snapshot's lease: a second run of the same as-of waits for this one
/// to finish, then replaces its snapshot, rather than deleting files this one still writes.
/// What it logs names the group.
async fn publish(
    context: &SessionContext,
    group: &PlannedGroup,
    computed: Option<RecordBatch>,
    fingerprint: Option<&Fingerprint>,
    options: &RunOptions,
    backends: &Backends,
) -> Result<GroupManifest> {
    let span = tracing::info_span!(
        "group",
        group = %group.name(),
        version = group.definition.version,
        as_of = %published::format_time(options.as_of)
    );
    let published = publish_under_lease(context, group, computed, fingerprint, options, backends)
        .instrument(span.clone())
        .await;
    let _entered = span.enter();
    match &published {
        Ok(manifest) => tracing::info!(
            rows = manifest.rows_written,
            partition = %manifest.partition,
            online = %manifest.online.status(),
            "published"
        ),
        Err(error) => tracing::info!("not published: {error}"),
    }
    published
}

async fn publish_under_lease(
    context: &SessionContext,
    group: &PlannedGroup,
    computed: Option<RecordBatch>,
    fingerprint: Option<&Fingerprint>,
    options: &RunOptions,
    backends: &Backends,
) -> Result<GroupManifest> {
    let name = group.name();
    let version = group.definition.version;
    let snapshot_ts = snapshot_name(options.as_of);
    let lease = Lease::acquire(
        &backends.warehouse,
        &snapshot_lease_name(&name, version, &snapshot_ts),
        &options.run_id,
        &format!("writing snapshot {snapshot_ts} of {name} v{version}"),
        backends.lease_ttl,
        waiting,
    )
    .await?;
    let step = Publishing {
        context,
        group,
        fingerprint,
        options,
        backends,
        lease: &lease,
        snapshot_ts: snapshot_ts.clone(),
        snapshot_location: backends
            .warehouse
            .snapshot_location(&name, version, &snapshot_ts),
    };
    let published = step.publish(computed).await;
    let released = lease.release().await;
    let published = published?;
    released?;
    Ok(published)
}

/// The name of the lease that every writer of one snapshot holds.
pub(crate) fn snapshot_lease_name(group: &str, version: u32, snapshot_ts: &str) -> String {
    format!("{group}/v{version}/snapshot_ts={snapshot_ts}")
}

/// One group's snapshot being published, under its lease.
struct Publishing<'a> {
    context: &'a SessionContext,
    group: &'a PlannedGroup,
    /// What the group read, recorded with its snapshot.
    fingerprint: Option<&'a Fingerprint>,
    options: &'a RunOptions,
    backends: &'a Backends,
    lease: &'a Lease,
    snapshot_ts: String,
    /// The snapshot's folder; this run writes in a folder of its own under it.
    snapshot_location: Url,
}

/// The snapshot a new one is compared with: the version's previous.
struct Reference {
    as_of: chrono::DateTime<chrono::Utc>,
    statistics: Vec<FeatureStatistics>,
}

/// What steps 1 and 2 leave for the commit and the online load.
struct Computed {
    rows_written: u64,
    latest: LatestRows,
    expectations: Vec<ExpectationOutcome>,
    statistics: Vec<FeatureStatistics>,
}

impl Publishing<'_> {
    async fn publish(&self, computed: Option<RecordBatch>) -> Result<GroupManifest> {
        pause_point("before_compute").await;
        let mut timings = Timings::default();
        let run_location = self
            .snapshot_location
            .join(&format!("run-{}/", self.options.run_id))
            .expect("run ids are valid URL path segments");
        if computed.is_none() {
            // A scheduler's retry of a run (same run id, same as-of): what an attempt
            // registered stands, and what one left unregistered is no one's.
            if let Some(registered) = self.registered_by_this_run().await? {
                return self.complete_registered(&registered, &run_location).await;
            }
            self.backends.warehouse.delete_prefix(&run_location).await?;
            let statistics = self.statistics_folder();
            self.backends.warehouse.delete_prefix(&statistics).await?;
        }
        let computed = match computed {
            None => self.compute_and_check(&run_location, &mut timings).await,
            Some(rows) => {
                self.check_and_write(rows, &run_location, &mut timings)
                    .await
            }
        };
        let computed = self.or_discard(computed, &run_location).await?;

        fail_point("before_register");
        let checked = self.lease.check().and_then(|()| interrupt::check());
        self.or_discard(checked, &run_location).await?;
        let started = Instant::now();
        let replaced = self.commit(&run_location, &computed).await;
        let replaced = self.or_discard(replaced, &run_location).await?;
        let registered = Registered {
            run_id: &self.options.run_id,
            as_of: self.options.as_of,
            rows: computed.rows_written,
            replaced: replaced.is_some(),
        };
        record_publication(self.backends, self.group, &registered)
            .await
            .map_err(|e| e.after_registering_unrecorded(&self.group.name(), &self.snapshot_ts))?;
        timings.register = elapsed_ms(started);

        let started = Instant::now();
        let online = self
            .load_online(computed.latest, &run_location, replaced.as_ref())
            .await
            .map_err(|e| e.after_registering(&self.group.name(), &self.snapshot_ts))?;
        timings.online = elapsed_ms(started);

        let mut manifest = self.manifest(
            computed.rows_written,
            &run_location,
            replaced.is_some(),
            online,
            timings,
        );
        manifest.expectations = computed.expectations;
        Ok(manifest)
    }

    fn manifest(
        &self,
        rows_written: u64,
        run_location: &Url,
        replaced: bool,
        online: OnlineOutcome,
        timings_ms: Timings,
    ) -> GroupManifest {
        GroupManifest {
            group: self.group.name(),
            version: self.group.definition.version,
            run_id: self.options.run_id.clone(),
            table: format!("{}.{}", self.group.table.database, self.group.table.name),
            rows_written,
            snapshot_location: run_location.to_string(),
            partition: format!("snapshot_ts={}", self.snapshot_ts),
            replaced,
            already_registered: false,
            online,
            expectations: Vec::new(),
            timings_ms,
        }
    }

    /// The snapshot of this as-of, when an earlier attempt of this run registered it.
    async fn registered_by_this_run(&self) -> Result<Option<published::Snapshot>> {
        let table = &self.group.table;
        let registered = self
            .backends
            .catalog
            .get_partition(
                &table.database,
                &table.name,
                std::slice::from_ref(&self.snapshot_ts),
            )
            .await?;
        let snapshot = registered
            .map(|partition| published::Snapshot::of(table, &partition))
            .transpose()?;
        Ok(snapshot.filter(|snapshot| snapshot.run_id == self.options.run_id))
    }

    /// A retried run whose snapshot an earlier attempt registered: nothing is recomputed;
    /// the online load completes if that attempt's did not.
    async fn complete_registered(
        &self,
        registered: &published::Snapshot,
        run_location: &Url,
    ) -> Result<GroupManifest> {
        tracing::info!(
            partition = %format!("snapshot_ts={}", self.snapshot_ts),
            "this run registered the snapshot in an earlier attempt; not computed again"
        );
        let rows = registered.rows.unwrap_or(0);
        let mut timings = Timings::default();
        let started = Instant::now();
        let step = OnlineStep {
            context: self.context,
            target: self.group.load_target(),
            options: self.options,
            backends: self.backends,
            mine: None,
            obsolete: Vec::new(),
        };
        let online = step
            .run()
            .await
            .map_err(|e| e.after_registering(&self.group.name(), &self.snapshot_ts))?;
        timings.online = elapsed_ms(started);
        let mut manifest = self.manifest(rows, run_location, false, online, timings);
        manifest.already_registered = true;
        manifest.expectations = registered.expectations.clone();
        Ok(manifest)
    }

    fn identity(&self) -> Identity {
        let definition = &self.group.definition;
        Identity::new(
            self.group.name(),
            definition.key_columns(),
            definition.event_time_column(),
            &self.group.schema,
        )
    }

    /// Steps 1 and 2 for the group's query: its rows written and checked on the way, then
    /// read back for the checks that need the whole snapshot, unless they came sorted.
    async fn compute_and_check(
        &self,
        run_location: &Url,
        timings: &mut Timings,
    ) -> Result<Computed> {
        let (context, group, backends) = (self.context, self.group, self.backends);
        let identity = self.identity();
        let started = Instant::now();
        let reference = self.reference().await?;
        let profiler = self.profiler(reference.as_ref());
        let online = OnlineCheck::of(group, self.options, backends);
        let written = write_snapshot(
            context,
            group,
            &profiler,
            &identity,
            run_location,
            online,
            backends,
        );
        let written = match written.await {
            Err(error) if error.to_string().contains("Parquet") => {
                return Err(naming_the_file(context, error).await);
            }
            written => written?,
        };
        timings.compute_and_write = elapsed_ms(started);

        let started = Instant::now();
        let statistics = profiler.statistics(&written.profile);
        let drift = reference.map(|r| r.drift_to(&statistics));
        let expectations =
            group
                .expectations
                .judge(&written.tally, self.options.as_of, drift.as_ref())?;
        let latest = match written.latest {
            Some(latest) => LatestRows::Kept(latest),
            None => LatestRows::Of(
                read_and_check(context, group, &identity, run_location, written.sorted).await?,
            ),
        };
        timings.check = elapsed_ms(started);
        Ok(Computed {
            rows_written: written.rows,
            latest,
            expectations,
            statistics,
        })
    }

    /// The version's previous snapshot, if it has one.
    async fn reference(&self) -> Result<Option<Reference>> {
        let table = &self.group.table;
        let previous = published::previous_snapshot(self.backends, table, self.options.as_of);
        let Some(previous) = previous.await? else {
            return Ok(None);
        };
        let warehouse = &self.backends.warehouse;
        Ok(Some(Reference {
            as_of: previous.as_of,
            statistics: statistics_file::snapshot_statistics(warehouse, &previous).await,
        }))
    }

    /// The group's profiler, its histograms on the reference's edges.
    fn profiler(&self, reference: Option<&Reference>) -> Profiler {
        let previous = reference.map_or(&[][..], |r| &r.statistics);
        self.group.profiler.binned_as(previous)
    }

    /// Where this run writes the snapshot's full statistics.
    fn statistics_folder(&self) -> Url {
        statistics_folder(&self.snapshot_location, &self.options.run_id)
    }

    /// Steps 1 and 2 for rows computed elsewhere: checked whole, then written.
    async fn check_and_write(
        &self,
        rows: RecordBatch,
        run_location: &Url,
        timings: &mut Timings,
    ) -> Result<Computed> {
        let started = Instant::now();
        self.identity().check_rows(&rows)?;
        if let Some(online) = OnlineCheck::of(self.group, self.options, self.backends) {
            online.check(&self.group.name(), &rows)?;
        }
        let expected = &self.group.expectations;
        let mut tally = expected.tally();
        expected.observe(&mut tally, &rows)?;
        let reference = self.reference().await?;
        let profiler = self.profiler(reference.as_ref());
        let mut profile = profiler.profile();
        profiler.observe(&mut profile, &rows)?;
        let statistics = profiler.statistics(&profile);
        let drift = reference.map(|r| r.drift_to(&statistics));
        let expectations = expected.judge(&tally, self.options.as_of, drift.as_ref())?;
        timings.check = elapsed_ms(started);

        let started = Instant::now();
        let path = run_location
            .join("part-0.parquet")
            .expect("a valid file name");
        write_rows(self.context, &rows, &path, self.backends).await?;
        timings.compute_and_write = elapsed_ms(started);
        let rows_written = rows.num_rows() as u64;
        let snapshot = self
            .context
            .read_batch(rows)
            .map_err(|e| self.group.error_from(e))?;
        Ok(Computed {
            rows_written,
            latest: LatestRows::Of(snapshot),
            expectations,
            statistics,
        })
    }

    /// Step 3, the commit point: the snapshot registered in the catalog. Returns the
    /// partition of an earlier run of the same as-of that it replaced.
    async fn commit(&self, run_location: &Url, computed: &Computed) -> Result<Option<Partition>> {
        let as_of = self.options.as_of;
        let rows_written = computed.rows_written;
        let bytes = self.backends.warehouse.bytes_under(run_location).await?;
        let mut partition = Partition {
            values: vec![self.snapshot_ts.clone()],
            location: run_location.to_string(),
            parameters: BTreeMap::from([
                (published::AS_OF.to_string(), published::format_time(as_of)),
                (published::ROWS.to_string(), rows_written.to_string()),
                (published::BYTES.to_string(), bytes.to_string()),
                (published::RUN_ID.to_string(), self.options.run_id.clone()),
                (
                    published::WRITTEN_AT.to_string(),
                    published::format_time(chrono::Utc::now()),
                ),
            ]),
        };
        if let Some(fingerprint) = self.fingerprint {
            partition.parameters.extend(fingerprint.parameters());
        }
        if !computed.expectations.is_empty() {
            partition.parameters.insert(
                published::EXPECTATIONS.to_string(),
                serde_json::to_string(&computed.expectations).expect("outcomes serialize"),
            );
        }
        let file = statistics_file(&self.statistics_folder());
        let buffer = crate::parquet_file::buffer_size(self.context);
        statistics_file::write(
            &self.backends.warehouse,
            &file,
            &computed.statistics,
            buffer,
        )
        .await?;
        partition
            .parameters
            .insert(published::STATISTICS_FILE.to_string(), file.to_string());
        let statistics = serde_json::to_string(&computed.statistics).expect("statistics serialize");
        match statistics.len() <= MAX_PARAMETER_VALUE_BYTES {
            true => {
                partition
                    .parameters
                    .insert(published::STATISTICS.to_string(), statistics);
            }
            false => tracing::warn!(
                "warning: the statistics of {} features take {} bytes, more than a catalog \
                 parameter holds ({}): kept in {file} only",
                computed.statistics.len(),
                statistics.len(),
                MAX_PARAMETER_VALUE_BYTES
            ),
        }
        let registered = self
            .backends
            .catalog
            .register_partition(&self.group.table, &partition)
            .await?;
        Ok(registered)
    }

    /// Step 4: the online store brought to the newest registered snapshot, and the files
    /// no registered snapshot uses handed to it for deletion.
    async fn load_online(
        &self,
        latest: LatestRows,
        run_location: &Url,
        replaced: Option<&Partition>,
    ) -> Result<OnlineOutcome> {
        // Those of the run this one replaced, and of runs killed holding the snapshot's
        // lease. Only runs known to have ended: a run that took the lease from this one
        // while it stalled is still writing its own. The online step deletes them when no
        // load can be reading them.
        let mut ended: Vec<Url> = Vec::new();
        for run in self.lease.abandoned() {
            ended.extend(self.snapshot_location.join(&format!("run-{run}/")).ok());
            ended.push(statistics_folder(&self.snapshot_location, run));
        }
        if let Some(replaced) = replaced {
            ended.extend(Url::parse(&replaced.location).ok());
            if let Some(run) = replaced.parameters.get(published::RUN_ID) {
                ended.push(statistics_folder(&self.snapshot_location, run));
            }
        }
        let mine = self.statistics_folder();
        ended.retain(|folder| folder != run_location && *folder != mine);
        let obsolete = self.backends.warehouse.objects_in(&ended).await?;
        let step = OnlineStep {
            context: self.context,
            target: self.group.load_target(),
            options: self.options,
            backends: self.backends,
            mine: Some(latest),
            obsolete,
        };
        step.run().await
    }

    /// On failure, deletes what the run wrote before reporting the run's own error.
    async fn or_discard<T>(&self, result: Result<T>, run_location: &Url) -> Result<T> {
        if result.is_err() {
            for folder in [run_location.clone(), self.statistics_folder()] {
                if let Err(cleanup) = self.backends.warehouse.delete_prefix(&folder).await {
                    tracing::warn!(
                        location = %folder,
                        "warning: could not delete the unpublished files at {folder}: {cleanup}"
                    );
                }
            }
        }
        result
    }
}

impl Reference {
    fn drift_to(self, statistics: &[FeatureStatistics]) -> SnapshotDrift {
        SnapshotDrift {
            from: self.as_of,
            features: drift::compare(&self.statistics, statistics),
        }
    }
}

fn elapsed_ms(started: Instant) -> u64 {
    started.elapsed().as_millis() as u64
}
