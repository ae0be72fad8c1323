//! Whether a feature group has anything to do: a group whose newest snapshot recorded the
//! fingerprint it has now, and whose online table holds that snapshot, has not. `fengine
//! status` says so per group; `run --if-changed` computes only the groups that have.

use fengine_dialect::Pipeline;
use serde::Serialize;

use crate::backends::Backends;
use crate::error::Result;
use crate::fingerprint::{Fingerprint, Fingerprints};
use crate::online_load::newest_registered;
use crate::options::RunOptions;
use crate::plan::{PlannedGroup, plan};
use crate::published::Snapshot;

/// A group version's state against its last successful run.
#[derive(Debug, Clone, Serialize)]
pub struct GroupStatus {
    pub group: String,
    pub version: u32,
    /// Its newest registered snapshot (a rollback's set-aside ones passed over).
    pub last_run: Option<Snapshot>,
    /// Why it would be computed: the inputs that changed since its last run, or what else
    /// makes that run's snapshot not stand. Empty when there is nothing to do.
    pub changed: Vec<String>,
    /// What it reads now.
    pub fingerprint: Fingerprint,
}

impl GroupStatus {
    pub fn is_unchanged(&self) -> bool {
        self.changed.is_empty()
    }
}

/// Plans the pipeline (reading no data) and compares each group's inputs with those its
/// last run recorded.
pub async fn status(
    pipeline: &Pipeline,
    options: &RunOptions,
    backends: &Backends,
) -> Result<Vec<GroupStatus>> {
    let planned = plan(pipeline, options, backends).await?;
    let mut fingerprints = Fingerprints::new(pipeline, &planned, backends).await?;
    let mut statuses = Vec::with_capacity(planned.groups.len());
    for group in &planned.groups {
        let fingerprint = fingerprints.of(group).await?;
        statuses.push(group_status(group, fingerprint, backends).await?);
    }
    Ok(statuses)
}

pub(crate) async fn group_status(
    group: &PlannedGroup,
    fingerprint: Fingerprint,
    backends: &Backends,
) -> Result<GroupStatus> {
    let mut status = GroupStatus {
        group: group.name(),
        version: group.definition.version,
        last_run: None,
        changed: Vec::new(),
        fingerprint,
    };
    let newest = match &group.published {
        Some(table) => newest_registered(table, backends).await?,
        None => None,
    };
    let Some((newest, partition)) = newest else {
        status
            .changed
            .push("no snapshot registered yet".to_string());
        return Ok(status);
    };
    status.last_run = Some(Snapshot::of(&group.table, &partition)?);
    match Fingerprint::recorded(&partition) {
        Some(recorded) => status.changed = status.fingerprint.changes_since(&recorded),
        None => status
            .changed
            .push("its last run recorded no fingerprint of its inputs".to_string()),
    }
    let online = group.online_table();
    let state = backends
        .online
        .load_state(&online.group, online.version)
        .await?;
    if state.loaded.as_ref() != Some(&newest) || state.unfinished.is_some() {
        status
            .changed
            .push("the online store does not hold its last snapshot".to_string());
    }
    Ok(status)
}
