//! Step 1 of a group's run, and step 2 where it needs the whole snapshot: the query's rows
//! streamed into the snapshot's Parquet files, a file per partition of the query, each batch
//! checked before it is written (nulls and, when the rows come sorted, repeats of key and
//! event time; what the online store would refuse); then, when the rows did not come
//! sorted, the written snapshot read back for repeats.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

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
use futures::StreamExt;
use url::Url;

use crate::backends::{Backends, with_default_batch_size};
use crate::checks::{Identity, SortedChecks};
use crate::error::{Error, Result};
use crate::expectations::{Expectations, Tally};
use crate::interrupt;
use crate::options::RunOptions;
use crate::parquet_file;
use crate::plan::PlannedGroup;
use crate::source_files;
use crate::statistics::{Profile, Profiler};
use crate::warehouse::Warehouse;

/// A Parquet decoding failure, with the source file it came from when one is found: a
/// corrupt source is the pipeline's input to fix, not a fault to retry.
pub(super) async fn naming_the_file(context: &SessionContext, error: Error) -> Error {
    let Some(file) = source_files::corrupt_parquet_file(context).await else {
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
pub(super) struct WrittenSnapshot {
    pub(super) rows: u64,
    /// The rows came sorted by key and event time: the checks were complete.
    pub(super) sorted: bool,
    /// The latest row of each key, if the rows came sorted and they fit the budget.
    pub(super) latest: Option<Vec<RecordBatch>>,
    /// What the rows showed of the group's expectations.
    pub(super) tally: Tally,
    /// What the rows hold, feature by feature.
    pub(super) profile: Profile,
}

/// Streams the group's rows into Parquet files under `location`, a file per partition of
/// the query written by its own task, checking them on the way. A snapshot without rows
/// still gets a file, so that readers find its schema.
pub(super) async fn write_snapshot(
    context: &SessionContext,
    group: &PlannedGroup,
    profiler: &Profiler,
    identity: &Identity,
    location: &Url,
    online: Option<OnlineCheck>,
    backends: &Backends,
) -> Result<WrittenSnapshot> {
    let failed = group.datafusion_errors();
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
        let (failed, stop, online, expectations, group) = (
            failed.clone(),
            stop.clone(),
            online.clone(),
            (group.expectations.clone(), profiler.clone()),
            group.name(),
        );
        tasks.push(SpawnedTask::spawn(async move {
            let file = PartitionFile {
                warehouse: &warehouse,
                location: &file,
                buffer,
            };
            let checks = RowChecks {
                rows: checks,
                online: online.as_deref(),
                expectations: &expectations.0,
                profiler: &expectations.1,
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
        tally: group.expectations.tally(),
        profile: profiler.profile(),
    };
    for partition in join_partitions(tasks).await? {
        written.rows += partition.rows;
        written.tally.merge(partition.tally);
        written.profile.merge(partition.profile);
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
    tally: Tally,
    profile: Profile,
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
    expectations: &'a Expectations,
    profiler: &'a Profiler,
    group: &'a str,
}

/// The online store's check of the rows it is to hold, when the run loads it: values it
/// would refuse are found before the commit point, not after.
pub(super) struct OnlineCheck {
    store: Arc<dyn fengine_online::OnlineStore>,
    table: fengine_online::OnlineTable,
}

impl OnlineCheck {
    pub(super) fn of(
        group: &PlannedGroup,
        options: &RunOptions,
        backends: &Backends,
    ) -> Option<Self> {
        options.load_online.then(|| OnlineCheck {
            store: backends.online.clone(),
            table: group.online_table(),
        })
    }

    pub(super) fn check(&self, group: &str, batch: &RecordBatch) -> Result<()> {
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
    let mut tally = checks.expectations.tally();
    let mut profile = checks.profiler.profile();
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
        checks.expectations.observe(&mut tally, &batch)?;
        checks.profiler.observe(&mut profile, &batch)?;
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
    Ok(Some(PartitionWritten {
        rows,
        latest,
        tally,
        profile,
    }))
}

/// Writes rows held in memory as one Parquet file.
pub(super) async fn write_rows(
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
pub(super) async fn read_and_check(
    context: &SessionContext,
    group: &PlannedGroup,
    identity: &Identity,
    location: &Url,
    sorted: bool,
) -> Result<DataFrame> {
    let snapshot = with_default_batch_size(context)
        .read_parquet(
            location.as_str(),
            ParquetReadOptions::default().schema(&group.schema),
        )
        .await
        .map_err(|e| group.error_from(e))?;
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
        .map_err(|e| group.error_from(e))?
        .collect()
        .await
        .map_err(|e| group.error_from(e))?;
    Ok(batches.into_iter().find(|b| b.num_rows() > 0))
}
