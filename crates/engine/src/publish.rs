//! Computing a planned feature group and publishing it: Parquet snapshot, output checks,
//! catalog registration (the commit point), then the online load.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use arrow::array::RecordBatch;
use datafusion::common::runtime::SpawnedTask;
use datafusion::dataframe::DataFrame;
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::context::SessionContext;
use datafusion::functions_aggregate::expr_fn::count;
use datafusion::logical_expr::{Expr, ident, lit};
use datafusion::physical_plan::ExecutionPlanProperties;
use datafusion::prelude::ParquetReadOptions;
use fengine_catalog::Partition;
use futures::StreamExt;
use url::Url;

use crate::checks::{Identity, SortedChecks};
use crate::interrupt;
use crate::lease::Lease;
use crate::manifest::{GroupManifest, Timings};
use crate::online_load::{LatestRows, OnlineStep, waiting};
use crate::parquet_file;
use crate::plan::PlannedGroup;
use crate::{
    Backends, Error, Result, RunOptions, Warehouse, fail_point, pause_point, snapshot_name,
};

/// Computes the group's query into its snapshot and publishes it.
pub(crate) async fn publish_group(
    context: &SessionContext,
    group: &PlannedGroup,
    options: &RunOptions,
    backends: &Backends,
) -> Result<GroupManifest> {
    publish(context, group, None, options, backends).await
}

/// Publishes rows computed elsewhere (a backfill's sweep) as the group's snapshot.
pub(crate) async fn publish_rows(
    context: &SessionContext,
    group: &PlannedGroup,
    rows: RecordBatch,
    options: &RunOptions,
    backends: &Backends,
) -> Result<GroupManifest> {
    publish(context, group, Some(rows), options, backends).await
}

/// Publishes under the snapshot's lease: a second run of the same as-of waits for this one
/// to finish, then replaces its snapshot, rather than deleting files this one still writes.
async fn publish(
    context: &SessionContext,
    group: &PlannedGroup,
    computed: Option<RecordBatch>,
    options: &RunOptions,
    backends: &Backends,
) -> Result<GroupManifest> {
    let name = group.name();
    let version = group.definition.version;
    let snapshot_ts = snapshot_name(options.as_of);
    let lease = Lease::acquire(
        &backends.warehouse,
        &format!("{name}/v{version}/snapshot_ts={snapshot_ts}"),
        &options.run_id,
        &format!("writing snapshot {snapshot_ts} of {name} v{version}"),
        backends.lease_ttl,
        waiting,
    )
    .await?;
    let published = publish_holding(context, group, computed, options, backends, &lease).await;
    let released = lease.release().await;
    let published = published?;
    released?;
    Ok(published)
}

async fn publish_holding(
    context: &SessionContext,
    group: &PlannedGroup,
    computed: Option<RecordBatch>,
    options: &RunOptions,
    backends: &Backends,
    lease: &Lease,
) -> Result<GroupManifest> {
    pause_point("before_compute").await;
    let name = group.name();
    let version = group.definition.version;
    let snapshot_ts = snapshot_name(options.as_of);
    let snapshot_location = backends
        .warehouse
        .snapshot_location(&name, version, &snapshot_ts);
    let run_location = snapshot_location
        .join(&format!("run-{}/", options.run_id))
        .expect("run ids are valid URL path segments");
    let mut timings = Timings::default();

    let identity = Identity::new(
        name.clone(),
        group.definition.key_columns(),
        group.definition.event_time_column(),
        &group.schema,
    );
    let (rows_written, latest) = match computed {
        None => {
            let started = Instant::now();
            let online = OnlineCheck::of(group, options, backends);
            let written =
                write_snapshot(context, group, &identity, &run_location, online, backends).await;
            let written = match written {
                Err(error) if error.to_string().contains("Parquet") => {
                    Err(naming_the_file(context, error).await)
                }
                written => written,
            };
            let written = or_discard(written, backends, &run_location).await?;
            timings.compute_and_write = elapsed_ms(started);

            let started = Instant::now();
            let latest = match written.latest {
                Some(latest) => LatestRows::Kept(latest),
                None => {
                    let checked =
                        read_and_check(context, group, &identity, &run_location, written.sorted);
                    LatestRows::Of(or_discard(checked.await, backends, &run_location).await?)
                }
            };
            timings.check = elapsed_ms(started);
            (written.rows, latest)
        }
        Some(rows) => {
            let started = Instant::now();
            identity.check_rows(&rows)?;
            if let Some(online) = OnlineCheck::of(group, options, backends) {
                online.check(&group.name(), &rows)?;
            }
            timings.check = elapsed_ms(started);

            let started = Instant::now();
            let path = run_location
                .join("part-0.parquet")
                .expect("a valid file name");
            let written = write_rows(context, &rows, &path, backends).await;
            or_discard(written, backends, &run_location).await?;
            timings.compute_and_write = elapsed_ms(started);
            let rows_written = rows.num_rows() as u64;
            let snapshot = context.read_batch(rows).map_err(|e| in_group(group, e))?;
            (rows_written, LatestRows::Of(snapshot))
        }
    };

    fail_point("before_register");
    or_discard(
        lease.check().and_then(|()| interrupt::check()),
        backends,
        &run_location,
    )
    .await?;
    let started = Instant::now();
    let partition = Partition {
        values: vec![snapshot_ts.clone()],
        location: run_location.to_string(),
        parameters: BTreeMap::from([
            (
                "fengine.as_of".to_string(),
                options
                    .as_of
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            ),
            ("fengine.rows".to_string(), rows_written.to_string()),
            ("fengine.run_id".to_string(), options.run_id.clone()),
        ]),
    };
    let registered = backends
        .catalog
        .register_snapshot(&group.table, &partition)
        .await;
    let replaced = or_discard(registered.map_err(Error::from), backends, &run_location).await?;
    timings.register = elapsed_ms(started);

    // Files no registered snapshot uses: those of the run this one replaced, and of runs
    // killed holding the snapshot's lease. Only runs known to have ended: a run that took
    // the lease from this one while it stalled is still writing its own. The online step
    // deletes them when no load can be reading them.
    let mut ended: Vec<Url> = lease
        .abandoned()
        .iter()
        .filter_map(|run| snapshot_location.join(&format!("run-{run}/")).ok())
        .collect();
    ended.extend(replaced.as_ref().and_then(|p| Url::parse(&p.location).ok()));
    ended.retain(|folder| *folder != run_location);
    let obsolete = backends.warehouse.objects_in(&ended).await?;
    let started = Instant::now();
    let step = OnlineStep {
        context,
        group,
        options,
        backends,
        mine: Some(latest),
        obsolete,
    };
    let online = step
        .run()
        .await
        .map_err(|e| e.after_registering(&name, &snapshot_ts))?;
    timings.online = elapsed_ms(started);

    Ok(GroupManifest {
        group: name,
        version,
        run_id: options.run_id.clone(),
        table: format!("{}.{}", group.table.database, group.table.name),
        rows_written,
        snapshot_location: run_location.to_string(),
        partition: format!("snapshot_ts={snapshot_ts}"),
        replaced: replaced.is_some(),
        online,
        timings_ms: timings,
    })
}

/// A Parquet decoding failure, with the source file it came from when one is found: a
/// corrupt source is the pipeline's input to fix, not a fault to retry.
async fn naming_the_file(context: &SessionContext, error: Error) -> Error {
    let Some(file) = crate::source_files::corrupt_parquet_file(context).await else {
        return error;
    };
    let named = |message: String| {
        format!("{message}, in source file '{file}': write that file again or remove it")
    };
    match error {
        Error::Plan { location, message } => Error::Plan {
            location,
            message: named(message),
        },
        other => Error::Config(named(other.to_string())),
    }
}

/// What writing a snapshot found out on the way.
struct WrittenSnapshot {
    rows: u64,
    /// The rows came sorted by key and event time: the checks were complete.
    sorted: bool,
    /// The latest row of each key, if the rows came sorted and they fit the budget.
    latest: Option<Vec<RecordBatch>>,
}

/// Streams the group's rows into Parquet files under `location`, a file per partition of
/// the query written by its own task, checking them on the way. A snapshot without rows
/// still gets a file, so that readers find its schema.
async fn write_snapshot(
    context: &SessionContext,
    group: &PlannedGroup,
    identity: &Identity,
    location: &Url,
    online: Option<OnlineCheck>,
    backends: &Backends,
) -> Result<WrittenSnapshot> {
    let failed = datafusion_errors(group);
    let plan = group
        .frame
        .clone()
        .create_physical_plan()
        .await
        .map_err(&failed)?;
    let sorted = identity.sorted_and_grouped_by(&plan);
    let online = online.map(Arc::new);
    let partitions = plan.output_partitioning().partition_count();
    let buffer = parquet_file::buffer_size(context);
    let streams = (0..partitions)
        .map(|partition| plan.execute(partition, context.task_ctx()))
        .collect::<datafusion::error::Result<Vec<_>>>()
        .map_err(&failed)?;
    // A failing partition tells the others to stop; all are awaited, so that no file
    // appears after the run's folder is cleared.
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::with_capacity(partitions);
    for (partition, batches) in streams.into_iter().enumerate() {
        let checks = match sorted {
            true => PartitionChecks::Sorted(SortedChecks::new(
                identity.clone(),
                backends.side_budget() / partitions,
            )),
            false => PartitionChecks::Nulls(identity.clone()),
        };
        let file = location
            .join(&format!("part-{partition}.parquet"))
            .expect("a valid file name");
        let warehouse = backends.warehouse.clone();
        let (failed, stop, online, group) =
            (failed.clone(), stop.clone(), online.clone(), group.name());
        tasks.push(SpawnedTask::spawn(async move {
            let file = PartitionFile {
                warehouse: &warehouse,
                location: &file,
                buffer,
            };
            let checks = RowChecks {
                rows: checks,
                online: online.as_deref(),
                group: &group,
            };
            let written = write_partition(batches, checks, file, &stop, failed).await;
            if written.is_err() {
                stop.store(true, Ordering::Relaxed);
            }
            written
        }));
    }
    let mut written = WrittenSnapshot {
        rows: 0,
        sorted,
        latest: sorted.then(Vec::new),
    };
    for partition in join_partitions(tasks).await? {
        written.rows += partition.rows;
        written.latest = written.latest.zip(partition.latest).map(|(mut all, more)| {
            all.extend(more);
            all
        });
    }
    if written.rows == 0 {
        let file = location.join("part-0.parquet").expect("a valid file name");
        let empty = backends
            .warehouse
            .parquet_file(&file, plan.schema(), buffer)?;
        empty.close().await?;
    }
    Ok(written)
}

/// Every partition's outcome once all have ended, or the first failure.
async fn join_partitions(
    tasks: Vec<SpawnedTask<Result<Option<PartitionWritten>>>>,
) -> Result<Vec<PartitionWritten>> {
    let mut partitions = Vec::with_capacity(tasks.len());
    let mut first_failure = None;
    for task in tasks {
        let joined = task.join().await;
        match joined.map_err(|e| Error::Infrastructure(format!("a snapshot writer stopped: {e}"))) {
            Ok(Ok(Some(partition))) => partitions.push(partition),
            Ok(Ok(None)) => {}
            Ok(Err(error)) | Err(error) => {
                first_failure.get_or_insert(error);
            }
        }
    }
    match first_failure {
        Some(error) => Err(error),
        None => Ok(partitions),
    }
}

enum PartitionChecks {
    Sorted(SortedChecks),
    /// Repeats are checked once the whole snapshot is written.
    Nulls(Identity),
}

struct PartitionWritten {
    rows: u64,
    latest: Option<Vec<RecordBatch>>,
}

/// Where a partition's file goes.
struct PartitionFile<'a> {
    warehouse: &'a Warehouse,
    location: &'a Url,
    buffer: usize,
}

/// What each batch of a partition is checked for before it is written.
struct RowChecks<'a> {
    rows: PartitionChecks,
    online: Option<&'a OnlineCheck>,
    group: &'a str,
}

/// The online store's check of the rows it is to hold, when the run loads it: values it
/// would refuse are found before the commit point, not after.
struct OnlineCheck {
    store: Arc<dyn fengine_online::OnlineStore>,
    table: fengine_online::OnlineTable,
}

impl OnlineCheck {
    fn of(group: &PlannedGroup, options: &RunOptions, backends: &Backends) -> Option<Self> {
        options.load_online.then(|| OnlineCheck {
            store: backends.online.clone(),
            table: group.online_table(),
        })
    }

    fn check(&self, group: &str, batch: &RecordBatch) -> Result<()> {
        self.store
            .check_rows(&self.table, batch)
            .map_err(|e| match Error::from(e) {
                Error::Config(message) => Error::Check(format!(
                    "feature group '{group}': the online store cannot hold a row: {message}; \
                 nothing was published"
                )),
                other => other,
            })
    }
}

/// Writes one partition's batches to `file`, created with its first row.
/// `None` when it stopped because another partition failed.
async fn write_partition(
    mut batches: SendableRecordBatchStream,
    checks: RowChecks<'_>,
    file: PartitionFile<'_>,
    stop: &AtomicBool,
    failed: impl Fn(DataFusionError) -> Error,
) -> Result<Option<PartitionWritten>> {
    let mut row_checks = checks.rows;
    let mut parquet = None;
    let mut rows = 0;
    loop {
        let batch = tokio::select! {
            batch = batches.next() => batch,
            stop = interrupt::requested() => return Err(stop),
        };
        let Some(batch) = batch else { break };
        if stop.load(Ordering::Relaxed) {
            // Dropping the unfinished file abandons its upload.
            return Ok(None);
        }
        let batch = batch.map_err(&failed)?;
        match &mut row_checks {
            PartitionChecks::Sorted(sorted) => sorted.observe(&batch)?,
            PartitionChecks::Nulls(identity) => identity.check_nulls(&batch)?,
        }
        if let Some(online) = checks.online {
            online.check(checks.group, &batch)?;
        }
        if batch.num_rows() == 0 {
            continue;
        }
        let parquet = match &mut parquet {
            Some(parquet) => parquet,
            None => {
                let created =
                    file.warehouse
                        .parquet_file(file.location, batch.schema(), file.buffer);
                parquet.insert(created?)
            }
        };
        parquet.write(&batch).await?;
        rows += batch.num_rows() as u64;
    }
    if let Some(parquet) = parquet {
        parquet.close().await?;
    }
    let latest = match row_checks {
        PartitionChecks::Sorted(sorted) => sorted.finish(),
        PartitionChecks::Nulls(_) => None,
    };
    Ok(Some(PartitionWritten { rows, latest }))
}

/// Writes rows held in memory as one Parquet file.
async fn write_rows(
    context: &SessionContext,
    rows: &RecordBatch,
    file: &Url,
    backends: &Backends,
) -> Result<()> {
    let buffer = parquet_file::buffer_size(context);
    let mut parquet = backends
        .warehouse
        .parquet_file(file, rows.schema(), buffer)?;
    parquet.write(rows).await?;
    parquet.close().await
}

/// The written snapshot, once it passed its checks: the repeat check needs the whole
/// snapshot unless its rows came sorted.
async fn read_and_check(
    context: &SessionContext,
    group: &PlannedGroup,
    identity: &Identity,
    location: &Url,
    sorted: bool,
) -> Result<DataFrame> {
    let snapshot = crate::with_default_batch_size(context)
        .read_parquet(
            location.as_str(),
            ParquetReadOptions::default().schema(&group.schema),
        )
        .await
        .map_err(|e| in_group(group, e))?;
    if !sorted {
        check_repeats(group, identity, snapshot.clone()).await?;
    }
    Ok(snapshot)
}

/// No two rows share a key and event time.
async fn check_repeats(
    group: &PlannedGroup,
    identity: &Identity,
    snapshot: DataFrame,
) -> Result<()> {
    let keys = group.definition.key_columns();
    let event_time = group.definition.event_time_column();
    let columns: Vec<Expr> = keys.iter().chain([&event_time]).map(ident).collect();
    let repeated = snapshot
        .aggregate(columns, vec![count(lit(1)).alias("rows")])
        .and_then(|counts| counts.filter(ident("rows").gt(lit(1i64))));
    match first_row(repeated, group).await? {
        // The aggregate's columns: the identity's, then the count.
        Some(row) => Err(identity.repeat_error(row.columns(), 0)),
        None => Ok(()),
    }
}

async fn first_row(
    frame: datafusion::error::Result<DataFrame>,
    group: &PlannedGroup,
) -> Result<Option<RecordBatch>> {
    let batches = frame
        .and_then(|f| f.limit(0, Some(1)))
        .map_err(|e| in_group(group, e))?
        .collect()
        .await
        .map_err(|e| in_group(group, e))?;
    Ok(batches.into_iter().find(|b| b.num_rows() > 0))
}

/// On failure, deletes what the run wrote before reporting the run's own error.
async fn or_discard<T>(result: Result<T>, backends: &Backends, run_location: &Url) -> Result<T> {
    if result.is_err()
        && let Err(cleanup) = backends.warehouse.delete_prefix(run_location).await
    {
        eprintln!(
            "fengine: warning: could not delete the unpublished files at {run_location}: {cleanup}"
        );
    }
    result
}

pub(crate) fn in_group(group: &PlannedGroup, error: DataFusionError) -> Error {
    datafusion_errors(group)(error)
}

/// Turns DataFusion's errors into the group's, where the group itself is out of reach (in
/// a writer task).
pub(crate) fn datafusion_errors(
    group: &PlannedGroup,
) -> impl Fn(DataFusionError) -> Error + Clone + Send + use<> {
    let location = group.location.clone();
    let name = group.name();
    move |error| Error::while_running(Some(&location), error).in_group(&name)
}

fn elapsed_ms(started: Instant) -> u64 {
    started.elapsed().as_millis() as u64
}
