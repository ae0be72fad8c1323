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
use std::sync::Arc;

use datafusion::error::DataFusionError;
use fengine_catalog::{Partition, Table};
use fengine_online::{LoadState, OnlineTable, SnapshotId};
use futures::StreamExt;
use object_store::path::Path as ObjectPath;

use crate::backends::{Backends, with_default_batch_size};
use crate::error::{Error, Result};
use crate::hooks::{fail_point, pause_point};
use crate::interrupt;
use crate::lease::{Lease, waiting};
use crate::manifest::OnlineOutcome;
use crate::options::RunOptions;
use crate::plan::PlannedGroup;
use crate::published::Snapshot;

const ROW_NUMBER: &str = "__fengine_row_number";

/// Where the online load finds each key's latest row of this run's snapshot.
pub(crate) enum LatestRows {
    /// Picked while the snapshot was written.
    Kept(Vec<arrow::array::RecordBatch>),
    /// To be picked from these rows by a ranking window.
    Of(DataFrame),
}

/// The group version an online load fills: what the load needs of it, from a planned group
/// or from the catalog (a rollback plans no pipeline).
pub(crate) struct LoadTarget {
    pub online: OnlineTable,
    /// The catalog table its snapshots are registered in.
    pub catalog_table: Table,
    /// How DataFusion's errors met reading its snapshots are reported.
    pub errors: Arc<dyn Fn(DataFusionError) -> Error + Send + Sync>,
}

impl PlannedGroup {
    pub(crate) fn load_target(&self) -> LoadTarget {
        LoadTarget {
            online: self.online_table(),
            catalog_table: self.table.clone(),
            errors: Arc::new(self.datafusion_errors()),
        }
    }
}

/// What the online step of a run is given.
pub(crate) struct OnlineStep<'a> {
    pub context: &'a SessionContext,
    pub target: LoadTarget,
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
        let lease = self.acquire_lease().await?;
        let outcome = self.run_holding(&lease).await;
        let released = lease.release().await;
        let outcome = outcome?;
        released?;
        Ok(outcome)
    }

    /// Loads this registered snapshot, whatever the store holds: a rollback's load, which
    /// sets the newer-wins guard aside for this load only.
    pub(crate) async fn restore(
        &self,
        snapshot: SnapshotId,
        partition: &Partition,
    ) -> Result<OnlineOutcome> {
        let lease = self.acquire_lease().await?;
        let restored = async {
            let state = self
                .backends
                .online
                .load_state(&self.target.online.group, self.target.online.version)
                .await?;
            let rows = self.read_registered(partition).await?;
            self.write(&lease, &state, snapshot, rows).await
        }
        .await;
        let released = lease.release().await;
        let restored = restored?;
        released?;
        Ok(restored)
    }

    async fn acquire_lease(&self) -> Result<Lease> {
        let (name, version) = (&self.target.online.group, self.target.online.version);
        Lease::acquire(
            &self.backends.warehouse,
            &online_lease_name(name, version),
            &self.options.run_id,
            &format!("loading {name} v{version} online"),
            self.backends.lease_ttl,
            waiting,
        )
        .await
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
        let backends = self.backends;
        let (name, version) = (&self.target.online.group, self.target.online.version);
        let state = backends.online.load_state(name, version).await?;
        let mine = SnapshotId {
            as_of: self.options.as_of,
            run_id: self.options.run_id.clone(),
        };
        let (target, rows) = match (self.options.force, &self.mine) {
            (true, Some(_)) => (mine, None),
            _ => match newest_registered(&self.target.catalog_table, backends).await? {
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
        let table = &self.target.online;
        lease.check()?;
        let mut load = self.backends.online.begin_load(table, &snapshot).await?;
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
                ParquetReadOptions::default().schema(&self.target.online.schema),
            )
            .await
            .map_err(|e| (self.target.errors)(e))?;
        self.latest_per_key(snapshot).await
    }

    /// The latest row of each key of `rows`, by a ranking window.
    async fn latest_per_key(
        &self,
        rows: DataFrame,
    ) -> Result<futures::stream::BoxStream<'static, Result<arrow::array::RecordBatch>>> {
        let table = &self.target.online;
        let errors = &self.target.errors;
        let latest_first = row_number()
            .partition_by(table.key_columns.iter().map(ident).collect())
            .order_by(vec![ident(&table.event_time_column).sort(false, true)])
            .build()
            .and_then(|n| rows.window(vec![n.alias(ROW_NUMBER)]))
            .and_then(|f| f.filter(ident(ROW_NUMBER).eq(lit(1u64))))
            .and_then(|f| f.drop_columns(&[ROW_NUMBER]))
            .map_err(|e| errors(e))?;
        let stream: SendableRecordBatchStream =
            latest_first.execute_stream().await.map_err(|e| errors(e))?;
        let failed = errors.clone();
        Ok(stream
            .map(move |batch| batch.map_err(|e| failed(e)))
            .boxed())
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

/// The group version's newest registered snapshot that no rollback set aside, and its
/// partition.
pub(crate) async fn newest_registered(
    table: &Table,
    backends: &Backends,
) -> Result<Option<(SnapshotId, Partition)>> {
    let partitions = backends
        .catalog
        .list_partitions(&table.database, &table.name)
        .await?;
    let mut newest = None;
    for partition in partitions {
        let snapshot = Snapshot::of(table, &partition)?;
        if snapshot.set_aside.is_none()
            && newest
                .as_ref()
                .is_none_or(|(n, _): &(Snapshot, _)| n.as_of < snapshot.as_of)
        {
            newest = Some((snapshot, partition));
        }
    }
    Ok(newest.map(|(snapshot, partition)| {
        (
            SnapshotId {
                as_of: snapshot.as_of,
                run_id: snapshot.run_id,
            },
            partition,
        )
    }))
}
