//! The feature catalogue: what is published, what it means, where it came from, what it
//! held, and what happened to it — read from the catalog that runs write (embedded or
//! Glue), so that fengine, Glue and Athena see one truth.
//!
//! Groups and snapshots are the catalog's tables and partitions (`crate::published`); the
//! catalogue's own records — history, lineage, models — are Parquet tables registered
//! beside them ([`records`]). Rollback and retirement, which change what is served, are
//! modules of their own beside the online load.

mod history;
mod lineage;
mod models;
mod records;
mod sources;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use fengine_online::SnapshotId;
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;

use crate::backends::Backends;
use crate::drift::{SnapshotDrift, compare};
use crate::error::Result;
use crate::statistics::FeatureStatistics;
use crate::statistics_file::snapshot_statistics;

use crate::published::{
    self, GroupVersion, Retired, Snapshot, all_groups, pick_version, snapshots,
};
pub(crate) use history::record as record_history;
pub use history::{EventKind, HistoryEvent, group_history};
pub use lineage::UpstreamKind;
pub(crate) use lineage::{LineageEdge, record as record_lineage};
pub use models::{FeatureUse, ModelDefinition, ModelDetail, ModelUse, UsedFeature, show_model};
pub(crate) use models::{models_using, record_training_set_model, resolve_uses, write_model};
pub(crate) use records::{ENCODERS_TABLE, RecordTable};
pub(crate) use sources::register_feature_sources;
pub(crate) use sources::{FEATURES_SCHEMA, FeatureSource, feature_references, names_group};

/// The catalogue's own tables in the catalog database, beside the groups'.
pub const CATALOGUE_TABLES: [&str; 4] = [
    records::HISTORY_TABLE,
    records::LINEAGE_TABLE,
    records::MODELS_TABLE,
    records::ENCODERS_TABLE,
];

/// Groups read at once when the catalogue is listed.
const GROUPS_IN_FLIGHT: usize = 16;

/// Which groups `catalog list` shows.
#[derive(Debug, Clone, Default)]
pub struct GroupFilter {
    /// Words that must each appear (ignoring case) in the group's name, description,
    /// a feature's name or a feature's comment.
    pub search: Option<String>,
    /// Tags the group must have, exactly.
    pub tags: Vec<(String, String)>,
}

/// A line of `catalog list`: a group at its newest version.
#[derive(Debug, Clone, Serialize)]
pub struct GroupSummary {
    pub group: String,
    /// The newest version not retired (the newest when every one is).
    pub version: u32,
    pub versions: Vec<u32>,
    pub retired: bool,
    pub description: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub features: usize,
    pub latest_snapshot: Option<DateTime<Utc>>,
    pub latest_rows: Option<u64>,
    pub online_as_of: Option<DateTime<Utc>>,
}

/// A feature of a group version.
#[derive(Debug, Clone, Serialize)]
pub struct Feature {
    pub name: String,
    pub data_type: String,
    pub comment: Option<String>,
}

/// A version of a group, as `catalog show` lists them.
#[derive(Debug, Clone, Serialize)]
pub struct VersionSummary {
    pub version: u32,
    pub table: String,
    pub retired: Option<Retired>,
}

/// What the online store holds of a group version.
#[derive(Debug, Clone, Serialize)]
pub struct OnlineState {
    pub table: String,
    pub loaded: Option<SnapshotId>,
    /// A load begun and not completed.
    pub unfinished: Option<SnapshotId>,
}

/// Everything `catalog show` says of a group version.
#[derive(Debug, Clone, Serialize)]
pub struct GroupDetail {
    pub group: String,
    pub version: u32,
    pub table: String,
    pub description: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub key: Vec<String>,
    pub event_time: Option<String>,
    pub online_ttl: Option<String>,
    pub pipeline: Option<String>,
    pub features: Vec<Feature>,
    pub versions: Vec<VersionSummary>,
    /// Oldest first.
    pub snapshots: Vec<Snapshot>,
    pub online: OnlineState,
    /// Source locations and tables its last run read.
    pub sources: Vec<String>,
    /// The published groups it reads, as `<group> v<n>`.
    pub reads: Vec<GroupRef>,
    /// The groups that read it.
    pub read_by: Vec<GroupRef>,
    /// The registered models that use it, with the features they use.
    pub models: Vec<ModelUse>,
}

/// A group version another refers to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct GroupRef {
    pub group: String,
    pub version: Option<u32>,
}

/// The published groups that pass the filter, by name.
pub async fn list_groups(backends: &Backends, filter: &GroupFilter) -> Result<Vec<GroupSummary>> {
    let terms: Vec<String> = filter
        .search
        .iter()
        .flat_map(|s| s.split_whitespace())
        .map(str::to_lowercase)
        .collect();
    let shown: Vec<(Vec<u32>, GroupVersion)> = all_groups(backends)
        .await?
        .into_values()
        .filter_map(|versions| {
            let numbers = versions.iter().map(|v| v.version).collect();
            let newest = newest_or_retired(versions)?;
            (matches_terms(&newest, &terms) && has_tags(&newest, &filter.tags))
                .then_some((numbers, newest))
        })
        .collect();
    futures::stream::iter(shown)
        .map(|(versions, newest)| summarize(backends, versions, newest))
        .buffered(GROUPS_IN_FLIGHT)
        .try_collect()
        .await
}

/// The newest version not retired, or the newest when all are.
fn newest_or_retired(versions: Vec<GroupVersion>) -> Option<GroupVersion> {
    let all_retired = versions.iter().all(|v| v.retired().is_some());
    versions
        .into_iter()
        .filter(|v| all_retired || v.retired().is_none())
        .max_by_key(|v| v.version)
}

fn matches_terms(version: &GroupVersion, terms: &[String]) -> bool {
    let mut texts = vec![version.group.to_lowercase()];
    texts.extend(
        version
            .parameter(published::DESCRIPTION)
            .map(str::to_lowercase),
    );
    for feature in version.features() {
        texts.push(feature.name.to_lowercase());
        texts.extend(feature.comment.as_deref().map(str::to_lowercase));
    }
    terms
        .iter()
        .all(|term| texts.iter().any(|text| text.contains(term.as_str())))
}

fn has_tags(version: &GroupVersion, wanted: &[(String, String)]) -> bool {
    let tags = version.tags();
    wanted
        .iter()
        .all(|(key, value)| tags.get(key) == Some(value))
}

async fn summarize(
    backends: &Backends,
    versions: Vec<u32>,
    newest: GroupVersion,
) -> Result<GroupSummary> {
    let snapshots = snapshots(backends, &newest).await?;
    let latest = snapshots.last().map(|(s, _)| s);
    let online = backends
        .online
        .load_state(&newest.group, newest.version)
        .await?;
    Ok(GroupSummary {
        version: newest.version,
        versions,
        retired: newest.retired().is_some(),
        description: newest.parameter(published::DESCRIPTION).map(str::to_string),
        tags: newest.tags(),
        features: newest.features().len(),
        latest_snapshot: latest.map(|s| s.as_of),
        latest_rows: latest.and_then(|s| s.rows),
        online_as_of: online.loaded.map(|l| l.as_of),
        group: newest.group,
    })
}

/// The names of the published groups.
pub async fn published_group_names(backends: &Backends) -> Result<Vec<String>> {
    Ok(all_groups(backends).await?.into_keys().collect())
}

/// A group version in full: `version`, or the newest not retired; `None` when no group of
/// that name is published.
pub async fn show_group(
    backends: &Backends,
    group: &str,
    version: Option<u32>,
) -> Result<Option<GroupDetail>> {
    let Some(versions) = all_groups(backends).await?.remove(group) else {
        return Ok(None);
    };
    let related = Related {
        edges: lineage::all_edges(backends).await?,
        models: models::all_models(backends).await?,
    };
    Ok(Some(describe(backends, versions, version, &related).await?))
}

/// Everything the catalogue holds, as the browsable catalogue shows it: each group at its
/// newest version not retired, with its history, and every model version.
#[derive(Debug, Clone, Serialize)]
pub struct Catalogue {
    pub groups: Vec<GroupPage>,
    pub models: Vec<ModelDetail>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GroupPage {
    pub detail: GroupDetail,
    pub history: Vec<HistoryEvent>,
    /// Of its newest snapshot no rollback set aside; none before fengine kept statistics.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub statistics: Option<PageStatistics>,
}

/// The features' statistics in a group's newest standing snapshot, and how they moved since
/// the standing snapshot before it (as `catalog drift` measures by default).
#[derive(Debug, Clone, Serialize)]
pub struct PageStatistics {
    pub as_of: DateTime<Utc>,
    pub features: Vec<FeatureStatistics>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drift: Option<SnapshotDrift>,
}

async fn page_statistics(backends: &Backends, snapshots: &[Snapshot]) -> Option<PageStatistics> {
    let warehouse = &backends.warehouse;
    let mut standing = snapshots.iter().rev().filter(|s| s.set_aside.is_none());
    let newest = standing.next()?;
    let features = snapshot_statistics(warehouse, newest).await;
    if features.is_empty() {
        return None;
    }
    let drift = match standing.next() {
        Some(before) => {
            let reference = snapshot_statistics(warehouse, before).await;
            (!reference.is_empty()).then(|| SnapshotDrift {
                from: before.as_of,
                features: compare(&reference, &features),
            })
        }
        None => None,
    };
    Some(PageStatistics {
        as_of: newest.as_of,
        features,
        drift,
    })
}

/// The whole catalogue, read with one listing of the tables, the lineage and the models,
/// and the groups' snapshots, online states and histories read a few at once.
pub async fn describe_catalogue(backends: &Backends) -> Result<Catalogue> {
    let groups = all_groups(backends).await?;
    let related = Related {
        edges: lineage::all_edges(backends).await?,
        models: models::all_models(backends).await?,
    };
    let related = &related;
    let pages: Vec<GroupPage> =
        futures::stream::iter(groups.into_iter().filter_map(|(name, versions)| {
            newest_or_retired(versions.clone()).map(|newest| (name, versions, newest.version))
        }))
        .map(|(name, versions, version)| async move {
            let detail = describe(backends, versions, Some(version), related).await?;
            let history = history::events_of(backends, &name).await?;
            let statistics = page_statistics(backends, &detail.snapshots).await;
            Ok::<_, crate::error::Error>(GroupPage {
                detail,
                history,
                statistics,
            })
        })
        .buffered(GROUPS_IN_FLIGHT)
        .try_collect()
        .await?;
    Ok(Catalogue {
        groups: pages,
        models: related.models.values().cloned().collect(),
    })
}

/// What a group's description needs of every group: the lineage and the models.
struct Related {
    edges: Vec<lineage::LineageEdge>,
    models: std::collections::BTreeMap<(String, u32), ModelDetail>,
}

async fn describe(
    backends: &Backends,
    versions: Vec<GroupVersion>,
    version: Option<u32>,
    related: &Related,
) -> Result<GroupDetail> {
    let summaries = versions
        .iter()
        .map(|v| VersionSummary {
            version: v.version,
            table: format!("{}.{}", v.table.database, v.table.name),
            retired: v.retired(),
        })
        .collect();
    let group = versions[0].group.clone();
    let shown = pick_version(&group, versions, version)?;
    let snapshots = snapshots(backends, &shown).await?;
    let state = backends.online.load_state(&group, shown.version).await?;
    let mut sources = Vec::new();
    let mut reads = Vec::new();
    let mut read_by = Vec::new();
    for edge in &related.edges {
        if edge.group == shown.group && edge.version == shown.version {
            match edge.upstream_kind {
                UpstreamKind::Group => reads.push(GroupRef {
                    group: edge.upstream.clone(),
                    version: edge.upstream_version,
                }),
                UpstreamKind::Source | UpstreamKind::Table => sources.push(edge.upstream.clone()),
            }
        } else if edge.upstream_kind == UpstreamKind::Group
            && edge.upstream == shown.group
            && edge.upstream_version.is_none_or(|v| v == shown.version)
        {
            read_by.push(GroupRef {
                group: edge.group.clone(),
                version: Some(edge.version),
            });
        }
    }
    sources.sort();
    sources.dedup();
    reads.sort();
    reads.dedup();
    read_by.sort();
    read_by.dedup();
    Ok(GroupDetail {
        group: shown.group.clone(),
        version: shown.version,
        table: format!("{}.{}", shown.table.database, shown.table.name),
        description: shown.parameter(published::DESCRIPTION).map(str::to_string),
        tags: shown.tags(),
        key: shown.key(),
        event_time: shown.event_time().map(str::to_string),
        online_ttl: shown.parameter(published::ONLINE_TTL).map(str::to_string),
        pipeline: shown.parameter(published::PIPELINE).map(str::to_string),
        features: shown
            .features()
            .into_iter()
            .map(|c| Feature {
                name: c.name.clone(),
                data_type: c.data_type.clone(),
                comment: c.comment.clone(),
            })
            .collect(),
        versions: summaries,
        snapshots: snapshots.into_iter().map(|(s, _)| s).collect(),
        online: OnlineState {
            table: backends.online.table_name(&group, shown.version),
            loaded: state.loaded,
            unfinished: state.unfinished,
        },
        models: models::uses_of(&related.models, &group, shown.version),
        sources,
        reads,
        read_by,
    })
}
