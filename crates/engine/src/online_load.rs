//! The online load: after a run registers its snapshot, it brings the group version's online
//! table to the newest registered snapshot — its own, or a newer one whose load did not
//! complete — under the table's online lease, so that loads of one table never interleave
//! and an interrupted load is completed by the next run. Files of replaced or abandoned runs
//! are deleted under the same lease, when no load can be reading them.

use datafusion::dataframe::DataFrame;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::context::SessionContext;
use datafusion::functions_window::expr_fn::row_number;
use datafusion::logical_expr::{ExprFunctionExt, ident, lit};
use datafusion::prelude::ParquetReadOptions;
use fengine_catalog::Partition;
use fengine_online::{LoadState, SnapshotId};
use futures::StreamExt;
use object_store::path::Path as ObjectPath;

use crate::backends::{Backends, with_default_batch_size};
use crate::error::{Error, Result};
use crate::hooks::{fail_point, pause_point};
use crate::interrupt;
use crate::lease::Lease;
use crate::manifest::OnlineOutcome;
use crate::options::{RunOptions, snapshot_name};
use crate::plan::PlannedGroup;

const ROW_NUMBER: &str = "__fengine_row_number";

/// Where the online load finds each key's latest row of this run's snapshot.
pub(crate) enum LatestRows {
    /// Picked while the snapshot was written.
    Kept(Vec<arrow::array::RecordBatch>),
    /// To be picked from these rows by a ranking window.
    Of(DataFrame),
}

/// What the online step of a run is given.
pub(crate) struct OnlineStep<'a> {
    pub context: &'a SessionContext,
    pub group: &'a PlannedGroup,
    pub options: &'a RunOptions,
    pub backends: &'a Backends,
    /// This run's registered snapshot; `None` when it registered none (a resumed backfill).
    pub mine: Option<LatestRows>,
    /// Files no registered snapshot uses any more.
    pub obsolete: Vec<ObjectPath>,
}

/// The name of a group version's online lease, beside its snapshots' leases.
pub(crate) fn online_lease_name(group: &str, version: u32) -> String {
    format!("{group}/v{version}/online")
}

impl OnlineStep<'_> {
    /// Loads the online table if it does not hold the newest registered snapshot already,
    /// and deletes the obsolete files.
    pub(crate) async fn run(self) -> Result<OnlineOutcome> {
        if !self.options.load_online && self.obsolete.is_empty() {
            return Ok(OnlineOutcome::NotNewestOfBackfill);
        }
        let name = self.group.name();
        let version = self.group.definition.version;
        let lease = Lease::acquire(
            &self.backends.warehouse,
            &online_lease_name(&name, version),
            &self.options.run_id,
            &format!("loading {name} v{version} online"),
            self.backends.lease_ttl,
            waiting,
        )
        .await?;
        let outcome = self.run_holding(&lease).await;
        let released = lease.release().await;
        let outcome = outcome?;
        released?;
        Ok(outcome)
    }

    async fn run_holding(self, lease: &Lease) -> Result<OnlineOutcome> {
        let outcome = match self.options.load_online {
            true => self.load(lease).await?,
            false => OnlineOutcome::NotNewestOfBackfill,
        };
        lease.check()?;
        self.backends
            .warehouse
            .delete_objects(&self.obsolete)
            .await?;
        Ok(outcome)
    }

    async fn load(&self, lease: &Lease) -> Result<OnlineOutcome> {
        let (group, backends) = (self.group, self.backends);
        let name = group.name();
        let version = group.definition.version;
        let state = backends.online.load_state(&name, version).await?;
        let mine = SnapshotId {
            as_of: self.options.as_of,
            run_id: self.options.run_id.clone(),
        };
        let (target, rows) = match (self.options.force, &self.mine) {
            (true, Some(_)) => (mine, None),
            _ => match newest_registered(group, backends).await? {
                None => {
                    return Err(Error::Infrastructure(format!(
                        "feature group '{name}' v{version} has no registered snapshot to load online"
                    )));
                }
                Some((newest, _)) if state.loaded.as_ref() == Some(&newest) => {
                    return Ok(held_already(newest, &mine, self.mine.is_some()));
                }
                Some((newest, _)) if newest == mine => (mine, None),
                Some((newest, partition)) => {
                    let rows = self.read_registered(&partition).await?;
                    (newest, Some(rows))
                }
            },
        };
        let rows = match rows {
            Some(rows) => rows,
            None => match &self.mine {
                Some(LatestRows::Kept(batches)) => {
                    futures::stream::iter(batches.clone().into_iter().map(Ok)).boxed()
                }
                Some(LatestRows::Of(frame)) => self.latest_per_key(frame.clone()).await?,
                None => unreachable!("only a run with a snapshot loads its own"),
            },
        };
        self.write(lease, &state, target, rows).await
    }

    /// Writes `rows` as `snapshot` into the online table, replacing whatever it held.
    async fn write(
        &self,
        lease: &Lease,
        state: &LoadState,
        snapshot: SnapshotId,
        mut rows: futures::stream::BoxStream<'static, Result<arrow::array::RecordBatch>>,
    ) -> Result<OnlineOutcome> {
        let table = self.group.online_table();
        lease.check()?;
        let mut load = self.backends.online.begin_load(&table, &snapshot).await?;
        loop {
            // Stopped half-way, the load stays recorded as unfinished: the next run
            // completes it.
            let batch = tokio::select! {
                batch = rows.next() => batch,
                stop = interrupt::requested() => return Err(stop),
            };
            let Some(batch) = batch else { break };
            let batch = batch?;
            if batch.num_rows() > 0 {
                load.write(batch).await?;
                fail_point("during_online_load");
                pause_point("during_online_load").await;
            }
        }
        lease.check()?;
        interrupt::check()?;
        let counts = load.commit().await?;
        Ok(OnlineOutcome::Loaded {
            rows: counts.rows,
            removed: counts.removed,
            as_of: snapshot.as_of,
            run_id: snapshot.run_id,
            completed_unfinished: state.unfinished.is_some(),
        })
    }

    /// The latest rows per key of another run's registered snapshot.
    async fn read_registered(
        &self,
        partition: &Partition,
    ) -> Result<futures::stream::BoxStream<'static, Result<arrow::array::RecordBatch>>> {
        let snapshot = with_default_batch_size(self.context)
            .read_parquet(
                partition.location.as_str(),
                ParquetReadOptions::default().schema(&self.group.schema),
            )
            .await
            .map_err(|e| self.group.error_from(e))?;
        self.latest_per_key(snapshot).await
    }

    /// The latest row of each key of `rows`, by a ranking window.
    async fn latest_per_key(
        &self,
        rows: DataFrame,
    ) -> Result<futures::stream::BoxStream<'static, Result<arrow::array::RecordBatch>>> {
        let group = self.group;
        let keys = group.definition.key_columns();
        let latest_first = row_number()
            .partition_by(keys.iter().map(ident).collect())
            .order_by(vec![
                ident(group.definition.event_time_column()).sort(false, true),
            ])
            .build()
            .and_then(|n| rows.window(vec![n.alias(ROW_NUMBER)]))
            .and_then(|f| f.filter(ident(ROW_NUMBER).eq(lit(1u64))))
            .and_then(|f| f.drop_columns(&[ROW_NUMBER]))
            .map_err(|e| group.error_from(e))?;
        let stream: SendableRecordBatchStream = latest_first
            .execute_stream()
            .await
            .map_err(|e| group.error_from(e))?;
        let failed = group.datafusion_errors();
        Ok(stream.map(move |batch| batch.map_err(&failed)).boxed())
    }
}

/// What a run reports when the store holds the newest registered snapshot already.
fn held_already(held: SnapshotId, mine: &SnapshotId, registered_mine: bool) -> OnlineOutcome {
    if held.as_of > mine.as_of {
        OnlineOutcome::SkippedNewer {
            loaded_as_of: held.as_of,
        }
    } else if registered_mine {
        OnlineOutcome::Superseded {
            loaded_as_of: held.as_of,
            run_id: held.run_id,
        }
    } else {
        OnlineOutcome::UpToDate {
            loaded_as_of: held.as_of,
            run_id: held.run_id,
        }
    }
}

/// The group version's newest registered snapshot, and its partition.
async fn newest_registered(
    group: &PlannedGroup,
    backends: &Backends,
) -> Result<Option<(SnapshotId, Partition)>> {
    let partitions = backends
        .catalog
        .list_partitions(&group.table.database, &group.table.name)
        .await?;
    let Some(newest) = partitions
        .into_iter()
        .max_by(|a, b| a.values.cmp(&b.values))
    else {
        return Ok(None);
    };
    let as_of = newest
        .parameters
        .get("fengine.as_of")
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&chrono::Utc));
    let Some(as_of) = as_of.filter(|a| Some(&snapshot_name(*a)) == newest.values.first()) else {
        return Err(Error::Infrastructure(format!(
            "the newest partition of '{}.{}' ({}) has no valid fengine.as_of parameter",
            group.table.database,
            group.table.name,
            newest.values.join(", ")
        )));
    };
    let run_id = newest
        .parameters
        .get("fengine.run_id")
        .cloned()
        .unwrap_or_default();
    Ok(Some((SnapshotId { as_of, run_id }, newest)))
}

/// Tells the person watching why the run pauses.
pub(crate) fn waiting(holder: &str, purpose: &str, until: chrono::DateTime<chrono::Utc>) {
    eprintln!(
        "fengine: waiting for run {holder}, which is {purpose} (its lease lapses at {} unless \
         renewed)",
        until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
}
