//! Retiring a group version: its online table dropped and the version marked retired in
//! the catalog, its snapshots kept (training sets and `--version` reads still find them).
//! Refused while a registered model uses the version.

use chrono::Utc;
use serde::Serialize;

use crate::backends::Backends;
use crate::catalogue::{EventKind, HistoryEvent, models_using, record_history};
use crate::error::{Error, Result};
use crate::lease::{Lease, waiting};
use crate::online_load::online_lease_name;
use crate::published::{self, format_time, group_versions};

/// What a retirement did.
#[derive(Debug, Clone, Serialize)]
pub struct RetireOutcome {
    pub group: String,
    pub version: u32,
    /// Whether it was retired already (then nothing changed).
    pub already_retired: bool,
    /// The online table dropped, if the store held one.
    pub dropped_online_table: Option<String>,
    pub snapshots_kept: usize,
    pub actor: String,
}

pub async fn retire(
    backends: &Backends,
    group: &str,
    version: u32,
    reason: Option<&str>,
) -> Result<RetireOutcome> {
    let versions = group_versions(backends, group).await?;
    let listed: Vec<String> = versions.iter().map(|v| v.version.to_string()).collect();
    let Some(retiring) = versions.into_iter().find(|v| v.version == version) else {
        return Err(Error::NotFound(format!(
            "feature group '{group}' has no version {version}; its versions are {}. Nothing \
             was changed",
            listed.join(", ")
        )));
    };
    let snapshots_kept = published::snapshots(backends, &retiring).await?.len();
    let actor = backends.caller.identity().await;
    if retiring.retired().is_some() {
        return Ok(RetireOutcome {
            group: group.to_string(),
            version,
            already_retired: true,
            dropped_online_table: None,
            snapshots_kept,
            actor,
        });
    }
    let users = models_using(backends, group, version).await?;
    if !users.is_empty() {
        return Err(Error::Config(format!(
            "feature group '{group}' version {version} is used by registered models: {}. Retire \
             or re-register them on another version first; nothing was changed",
            users.join(", ")
        )));
    }

    // Marked first: a run planned from now on refuses the version, so none loads it again.
    let at = Utc::now();
    let mut table = retiring.table.clone();
    table
        .parameters
        .insert(published::RETIRED_AT.to_string(), format_time(at));
    table
        .parameters
        .insert(published::RETIRED_BY.to_string(), actor.clone());
    backends.catalog.put_table(&table).await?;

    let holder = format!(
        "retire-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let lease = Lease::acquire(
        &backends.warehouse,
        &online_lease_name(group, version),
        &holder,
        &format!("retiring {group} v{version}"),
        backends.lease_ttl,
        waiting,
    )
    .await?;
    let dropped = backends.online.drop_table(group, version).await;
    let released = lease.release().await;
    let dropped = dropped?;
    released?;

    let table_name = backends.online.table_name(group, version);
    let detail = match dropped {
        true => format!(
            "version {version} retired; online table {table_name} dropped; {snapshots_kept} snapshots kept"
        ),
        false => format!(
            "version {version} retired (it had no online table); {snapshots_kept} snapshots kept"
        ),
    };
    let event = HistoryEvent {
        at,
        kind: EventKind::Retire,
        version,
        actor: actor.clone(),
        run_id: None,
        as_of: None,
        rows: None,
        detail,
        reason: reason.map(str::to_string),
    };
    record_history(backends, group, &[event]).await?;
    Ok(RetireOutcome {
        group: group.to_string(),
        version,
        already_retired: false,
        dropped_online_table: dropped.then_some(table_name),
        snapshots_kept,
        actor,
    })
}
