//! Rollback: the online store put back to an earlier registered snapshot in one step. The
//! newer snapshots are set aside (marked in the catalog, never deleted), so that no later
//! run brings the store back to them; a run of a newer as-of, or a new run of a set-aside
//! one, loads as usual.

use chrono::{DateTime, Utc};
use fengine_catalog::Partition;
use fengine_online::{OnlineTable, SnapshotId};
use serde::Serialize;
use std::sync::Arc;

use crate::backends::Backends;
use crate::catalogue::{EventKind, HistoryEvent, record_history};
use crate::error::{Error, Result};
use crate::lease::{Lease, waiting};
use crate::manifest::OnlineOutcome;
use crate::online_load::{LoadTarget, OnlineStep};
use crate::options::{RunOptions, snapshot_name};
use crate::plan::parse_ttl;
use crate::published::{self, GroupVersion, Snapshot, format_time, group_versions, pick_version};
use crate::run::snapshot_lease_name;

/// What `fengine rollback` asks for.
#[derive(Debug, Clone)]
pub struct RollbackRequest {
    pub group: String,
    /// The newest version not retired when `None`.
    pub version: Option<u32>,
    /// The as-of of the registered snapshot to serve.
    pub to: DateTime<Utc>,
    pub reason: Option<String>,
}

/// What a rollback did.
#[derive(Debug, Clone, Serialize)]
pub struct RollbackOutcome {
    pub group: String,
    pub version: u32,
    /// The snapshot the online store now serves.
    pub restored: Snapshot,
    /// What it served before.
    pub replaced: Option<SnapshotId>,
    /// The newer snapshots set aside.
    pub set_aside: Vec<Snapshot>,
    pub online: OnlineOutcome,
    pub actor: String,
}

pub async fn rollback(backends: &Backends, request: &RollbackRequest) -> Result<RollbackOutcome> {
    let group = &request.group;
    let version = pick_version(
        group,
        group_versions(backends, group).await?,
        request.version,
    )?;
    if let Some(retired) = version.retired() {
        return Err(Error::Config(format!(
            "feature group '{group}' version {} was retired at {}: it has no online table to \
             roll back",
            version.version, retired.at
        )));
    }
    let snapshots = published::snapshots(backends, &version).await?;
    let Some((restored, partition)) = snapshots
        .iter()
        .find(|(s, _)| s.as_of == request.to)
        .cloned()
    else {
        return Err(no_snapshot_at(group, &version, request.to, &snapshots));
    };
    let actor = backends.caller.identity().await;
    let at = Utc::now();
    let holder = format!(
        "rollback-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let why = request
        .reason
        .as_deref()
        .map(|r| format!(": {r}"))
        .unwrap_or_default();
    let marker = format!(
        "set aside at {} by {actor}, when the online store was rolled back to {}{why}",
        format_time(at),
        format_time(request.to)
    );
    let mut set_aside = Vec::new();
    for (snapshot, _) in snapshots.iter().filter(|(s, _)| s.as_of > request.to) {
        if snapshot.set_aside.is_none()
            && let Some(marked) = mark(backends, &version, snapshot, Some(&marker), &holder).await?
        {
            set_aside.push(marked);
        }
    }
    let restored = match restored.set_aside {
        // Rolled back to a snapshot an earlier rollback set aside: it is served again.
        Some(_) => mark(backends, &version, &restored, None, &holder)
            .await?
            .unwrap_or(restored),
        None => restored,
    };

    let replaced = backends
        .online
        .load_state(group, version.version)
        .await?
        .loaded;
    let context = backends.session_context()?;
    let mut options = RunOptions::new(request.to);
    options.run_id = holder;
    let step = OnlineStep {
        context: &context,
        target: load_target(&context, &version, &partition).await?,
        options: &options,
        backends,
        mine: None,
        obsolete: Vec::new(),
    };
    let snapshot = SnapshotId {
        as_of: restored.as_of,
        run_id: restored.run_id.clone(),
    };
    let online = step.restore(snapshot, &partition).await?;

    let mut detail = format!(
        "online store rolled back to snapshot {} (run {})",
        format_time(restored.as_of),
        restored.run_id
    );
    if let Some(replaced) = &replaced {
        detail += &format!(
            " from {} (run {})",
            format_time(replaced.as_of),
            replaced.run_id
        );
    }
    if !set_aside.is_empty() {
        let names: Vec<String> = set_aside.iter().map(|s| format_time(s.as_of)).collect();
        detail += &format!("; set aside: {}", names.join(", "));
    }
    let event = HistoryEvent {
        at,
        kind: EventKind::Rollback,
        version: version.version,
        actor: actor.clone(),
        run_id: Some(restored.run_id.clone()),
        as_of: Some(restored.as_of),
        rows: restored.rows,
        detail,
        reason: request.reason.clone(),
    };
    record_history(backends, group, &[event]).await.map_err(|e| {
        Error::Infrastructure(format!(
            "the online store of '{group}' v{} serves snapshot {} again, but the rollback could \
             not be recorded in the group's history: {e}",
            version.version,
            format_time(restored.as_of)
        ))
    })?;
    Ok(RollbackOutcome {
        group: group.clone(),
        version: version.version,
        restored,
        replaced,
        set_aside,
        online,
        actor,
    })
}

/// Sets the marker of a snapshot (or clears it, with `None`) under the snapshot's lease, so
/// that no run registers the same as-of meanwhile. A snapshot replaced by a newer run of its
/// as-of since it was read is left alone: the newer run's is not the one rolled back.
async fn mark(
    backends: &Backends,
    version: &GroupVersion,
    snapshot: &Snapshot,
    marker: Option<&str>,
    holder: &str,
) -> Result<Option<Snapshot>> {
    let snapshot_ts = snapshot_name(snapshot.as_of);
    let lease = Lease::acquire(
        &backends.warehouse,
        &snapshot_lease_name(&version.group, version.version, &snapshot_ts),
        holder,
        &format!("rolling back {} v{}", version.group, version.version),
        backends.lease_ttl,
        waiting,
    )
    .await?;
    let marked: Result<Option<Snapshot>> = async {
        let current = published::snapshots(backends, version)
            .await?
            .into_iter()
            .find(|(s, _)| s.as_of == snapshot.as_of && s.run_id == snapshot.run_id);
        let Some((_, mut partition)) = current else {
            return Ok(None);
        };
        match marker {
            Some(marker) => partition
                .parameters
                .insert(published::SET_ASIDE.to_string(), marker.to_string()),
            None => partition.parameters.remove(published::SET_ASIDE),
        };
        lease.check()?;
        backends
            .catalog
            .register_partition(&version.table, &partition)
            .await?;
        Ok(Some(Snapshot::of(&version.table, &partition)?))
    }
    .await;
    let released = lease.release().await;
    let marked = marked?;
    released?;
    Ok(marked)
}

/// The online table of a version as the catalog describes it, its schema read from the
/// snapshot's files.
async fn load_target(
    context: &datafusion::execution::context::SessionContext,
    version: &GroupVersion,
    partition: &Partition,
) -> Result<LoadTarget> {
    let read = context
        .read_parquet(partition.location.as_str(), Default::default())
        .await
        .map_err(|e| Error::from_datafusion(None, e))?;
    let event_time = version.event_time().ok_or_else(|| {
        Error::Infrastructure(format!(
            "catalog table '{}' has no {} parameter",
            version.table.name,
            published::EVENT_TIME
        ))
    })?;
    let ttl = version
        .parameter(published::ONLINE_TTL)
        .map(parse_ttl)
        .transpose()
        .map_err(Error::Infrastructure)?;
    Ok(LoadTarget {
        online: OnlineTable {
            group: version.group.clone(),
            version: version.version,
            schema: Arc::new(read.schema().as_arrow().clone()),
            key_columns: version.key(),
            event_time_column: event_time.to_string(),
            ttl,
        },
        catalog_table: version.table.clone(),
        errors: Arc::new(|e| Error::from_datafusion(None, e)),
    })
}

fn no_snapshot_at(
    group: &str,
    version: &GroupVersion,
    to: DateTime<Utc>,
    snapshots: &[(Snapshot, Partition)],
) -> Error {
    let registered: Vec<String> = snapshots
        .iter()
        .rev()
        .take(10)
        .map(|(s, _)| format_time(s.as_of))
        .collect();
    let listed = match registered.len() {
        0 => "it has no registered snapshot".to_string(),
        _ => format!("its newest snapshots are {}", registered.join(", ")),
    };
    Error::NotFound(format!(
        "feature group '{group}' version {} has no snapshot at {}; {listed}. Nothing was changed",
        version.version,
        format_time(to)
    ))
}
