//! What the catalog holds of feature groups, read from the tables and partitions that runs
//! register: a table per group version (`<group>_v<n>`, its parameters `fengine.*`), a
//! partition per snapshot. Every reader of published groups goes through here, so that
//! training sets, online reads, sources and the catalogue agree on what is published.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use fengine_catalog::{Column, Partition, Table};
use serde::Serialize;

use crate::backends::Backends;
use crate::error::{Error, Result};
use crate::manifest::ExpectationOutcome;
use crate::options::snapshot_name;
use crate::statistics::FeatureStatistics;

/// Table parameters a run writes on each group version's table.
pub(crate) const GROUP: &str = "fengine.group";
pub(crate) const VERSION: &str = "fengine.version";
pub(crate) const KEY: &str = "fengine.key";
pub(crate) const EVENT_TIME: &str = "fengine.event_time";
pub(crate) const TAGS: &str = "fengine.tags";
pub(crate) const DESCRIPTION: &str = "fengine.description";
pub(crate) const ONLINE_TTL: &str = "fengine.online_ttl";
pub(crate) const PIPELINE: &str = "fengine.pipeline";
/// Set by `catalog retire`: when, by whom.
pub(crate) const RETIRED_AT: &str = "fengine.retired_at";
pub(crate) const RETIRED_BY: &str = "fengine.retired_by";

/// Partition parameters a run writes on each snapshot.
pub(crate) const AS_OF: &str = "fengine.as_of";
pub(crate) const ROWS: &str = "fengine.rows";
pub(crate) const BYTES: &str = "fengine.bytes";
pub(crate) const RUN_ID: &str = "fengine.run_id";
pub(crate) const WRITTEN_AT: &str = "fengine.written_at";
/// Set by a rollback on the snapshots it set aside: the online store is not brought back
/// to them, and readers of the newest snapshot pass over them.
pub(crate) const SET_ASIDE: &str = "fengine.set_aside";
/// The outcomes of the group's expectations on the snapshot, as JSON.
pub(crate) const EXPECTATIONS: &str = "fengine.expectations";
/// The statistics of each of the snapshot's features, as JSON.
pub(crate) const STATISTICS: &str = "fengine.statistics";
/// The snapshot's full statistics file (Parquet, with the sketches).
pub(crate) const STATISTICS_FILE: &str = "fengine.statistics_file";

/// One published version of a feature group: its catalog table.
#[derive(Debug, Clone)]
pub(crate) struct GroupVersion {
    pub group: String,
    pub version: u32,
    pub table: Table,
}

impl GroupVersion {
    /// The version of a group that `table` holds, if it is a fengine group version.
    pub(crate) fn of(table: Table) -> Option<Self> {
        let group = table.parameters.get(GROUP)?.clone();
        let version: u32 = table.parameters.get(VERSION)?.parse().ok()?;
        (table.name == table_name(&group, version)).then_some(GroupVersion {
            group,
            version,
            table,
        })
    }

    pub(crate) fn parameter(&self, name: &str) -> Option<&str> {
        self.table.parameters.get(name).map(String::as_str)
    }

    pub(crate) fn key(&self) -> Vec<String> {
        self.parameter(KEY)
            .map(|k| k.split(',').map(str::to_string).collect())
            .unwrap_or_default()
    }

    pub(crate) fn event_time(&self) -> Option<&str> {
        self.parameter(EVENT_TIME)
    }

    pub(crate) fn tags(&self) -> BTreeMap<String, String> {
        self.parameter(TAGS)
            .and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or_default()
    }

    pub(crate) fn retired(&self) -> Option<Retired> {
        Some(Retired {
            at: self.parameter(RETIRED_AT)?.to_string(),
            by: self.parameter(RETIRED_BY).unwrap_or_default().to_string(),
        })
    }

    /// The columns that are features: all but the key and the event time.
    pub(crate) fn features(&self) -> Vec<&Column> {
        let key = self.key();
        let event_time = self.event_time();
        self.table
            .columns
            .iter()
            .filter(|c| !key.contains(&c.name) && Some(c.name.as_str()) != event_time)
            .collect()
    }
}

/// When and by whom a version was retired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Retired {
    pub at: String,
    pub by: String,
}

/// `<group>_v<version>`: the catalog table of a group version.
pub(crate) fn table_name(group: &str, version: u32) -> String {
    format!("{group}_v{version}")
}

/// Every published version of every group in the backends' database, by group, oldest
/// version first.
pub(crate) async fn all_groups(backends: &Backends) -> Result<BTreeMap<String, Vec<GroupVersion>>> {
    let tables = backends.catalog.list_tables(&backends.database).await?;
    let mut groups: BTreeMap<String, Vec<GroupVersion>> = BTreeMap::new();
    for version in tables.into_iter().filter_map(GroupVersion::of) {
        groups
            .entry(version.group.clone())
            .or_default()
            .push(version);
    }
    for versions in groups.values_mut() {
        versions.sort_by_key(|v| v.version);
    }
    Ok(groups)
}

/// The published versions of one group, oldest first; an error naming the groups there are
/// when it has none.
pub(crate) async fn group_versions(backends: &Backends, group: &str) -> Result<Vec<GroupVersion>> {
    let mut groups = all_groups(backends).await?;
    groups.remove(group).ok_or_else(|| {
        let database = &backends.database;
        let known: Vec<&str> = groups.keys().map(String::as_str).collect();
        let hint = match known.len() {
            0 => format!(
                "catalog database '{database}' holds no feature group: run a pipeline first"
            ),
            _ => format!(
                "the groups published in catalog database '{database}' are: {}",
                abbreviated(&known)
            ),
        };
        Error::NotFound(format!("feature group '{group}' is not published; {hint}"))
    })
}

/// One version of a group: `version`, or the newest that is not retired.
pub(crate) fn pick_version(
    group: &str,
    versions: Vec<GroupVersion>,
    version: Option<u32>,
) -> Result<GroupVersion> {
    let listed: Vec<String> = versions.iter().map(|v| v.version.to_string()).collect();
    match version {
        Some(wanted) => versions
            .into_iter()
            .find(|v| v.version == wanted)
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "feature group '{group}' has no version {wanted}; its versions are {}",
                    listed.join(", ")
                ))
            }),
        None => versions
            .into_iter()
            .filter(|v| v.retired().is_none())
            .max_by_key(|v| v.version)
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "every version of feature group '{group}' ({}) is retired: name one with \
                     --version",
                    listed.join(", ")
                ))
            }),
    }
}

/// The catalog table of the group's newest version that is not retired, and that version.
pub(crate) async fn newest_version(backends: &Backends, group: &str) -> Result<(u32, Table)> {
    let newest = pick_version(group, group_versions(backends, group).await?, None)?;
    Ok((newest.version, newest.table))
}

/// A registered snapshot, as its partition describes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Snapshot {
    pub as_of: DateTime<Utc>,
    pub rows: Option<u64>,
    pub bytes: Option<u64>,
    pub written_at: Option<DateTime<Utc>>,
    pub run_id: String,
    pub location: String,
    /// Why a rollback set it aside, if one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub set_aside: Option<String>,
    /// What the group's expectations found of it when it was published.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub expectations: Vec<ExpectationOutcome>,
    /// Each feature's statistics (`catalog show --stats` prints them).
    #[serde(skip)]
    pub statistics: Vec<FeatureStatistics>,
    /// The full statistics, with the sketches drift is measured on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub statistics_file: Option<String>,
}

impl Snapshot {
    /// The snapshot a partition of `table` registers; an error if it lacks a valid as-of.
    pub(crate) fn of(table: &Table, partition: &Partition) -> Result<Self> {
        let parameter = |name: &str| partition.parameters.get(name);
        let as_of = parameter(AS_OF)
            .and_then(|t| parse_time(t))
            .filter(|a| Some(&snapshot_name(*a)) == partition.values.first())
            .ok_or_else(|| {
                Error::Infrastructure(format!(
                    "partition ({}) of '{}.{}' has no valid {AS_OF} parameter: was it \
                     registered by another tool?",
                    partition.values.join(", "),
                    table.database,
                    table.name
                ))
            })?;
        Ok(Snapshot {
            as_of,
            rows: parameter(ROWS).and_then(|r| r.parse().ok()),
            bytes: parameter(BYTES).and_then(|r| r.parse().ok()),
            written_at: parameter(WRITTEN_AT).and_then(|t| parse_time(t)),
            run_id: parameter(RUN_ID).cloned().unwrap_or_default(),
            location: partition.location.clone(),
            set_aside: parameter(SET_ASIDE).cloned(),
            // Unreadable outcomes (a hand-edited parameter) hide nothing else of the snapshot.
            expectations: parameter(EXPECTATIONS)
                .and_then(|json| serde_json::from_str(json).ok())
                .unwrap_or_default(),
            statistics: parameter(STATISTICS)
                .and_then(|json| serde_json::from_str(json).ok())
                .unwrap_or_default(),
            statistics_file: parameter(STATISTICS_FILE).cloned(),
        })
    }
}

/// The group version's registered snapshots, oldest first.
pub(crate) async fn snapshots(
    backends: &Backends,
    version: &GroupVersion,
) -> Result<Vec<(Snapshot, Partition)>> {
    let table = &version.table;
    let partitions = backends
        .catalog
        .list_partitions(&table.database, &table.name)
        .await?;
    let mut snapshots = partitions
        .into_iter()
        .map(|p| Ok((Snapshot::of(table, &p)?, p)))
        .collect::<Result<Vec<_>>>()?;
    snapshots.sort_by_key(|(s, _)| s.as_of);
    Ok(snapshots)
}

/// The newest snapshot of `table` before `as_of` that no rollback set aside: what a new
/// snapshot's histograms take their edges from and its drift is measured against.
pub(crate) async fn previous_snapshot(
    backends: &Backends,
    table: &Table,
    as_of: DateTime<Utc>,
) -> Result<Option<Snapshot>> {
    if backends
        .catalog
        .get_table(&table.database, &table.name)
        .await?
        .is_none()
    {
        return Ok(None);
    }
    let partitions = backends
        .catalog
        .list_partitions(&table.database, &table.name)
        .await?;
    let mut previous = None;
    for partition in &partitions {
        let snapshot = Snapshot::of(table, partition)?;
        if snapshot.as_of < as_of
            && snapshot.set_aside.is_none()
            && previous
                .as_ref()
                .is_none_or(|p: &Snapshot| p.as_of < snapshot.as_of)
        {
            previous = Some(snapshot);
        }
    }
    Ok(previous)
}

pub(crate) fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

pub(crate) fn format_time(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// At most ten names, then how many more.
fn abbreviated(names: &[&str]) -> String {
    match names.len() {
        0..=10 => names.join(", "),
        n => format!("{}, and {} more", names[..10].join(", "), n - 10),
    }
}
