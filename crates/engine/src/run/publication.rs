//! What the catalogue records when a run registers a snapshot: the run in the group's
//! history (with the version's first publication, or the changes to its definition made in
//! place), and what the group read, as its lineage.

use chrono::{DateTime, Utc};
use fengine_catalog::Table;

use crate::backends::Backends;
use crate::catalogue::{EventKind, HistoryEvent, LineageEdge, record_history, record_lineage};
use crate::error::Result;
use crate::plan::PlannedGroup;
use crate::published;

/// A snapshot a run registered.
pub(crate) struct Registered<'a> {
    pub run_id: &'a str,
    pub as_of: DateTime<Utc>,
    pub rows: u64,
    pub replaced: bool,
}

pub(crate) async fn record_publication(
    backends: &Backends,
    group: &PlannedGroup,
    registered: &Registered<'_>,
) -> Result<()> {
    let name = group.name();
    let version = group.definition.version;
    let actor = backends.caller.identity().await;
    let at = Utc::now();
    let event = |kind, detail: String| HistoryEvent {
        at,
        kind,
        version,
        actor: actor.clone(),
        run_id: Some(registered.run_id.to_string()),
        as_of: Some(registered.as_of),
        rows: Some(registered.rows),
        detail,
        reason: None,
    };
    let mut events = match &group.published {
        None => {
            let features = group.table.columns.len() - group.definition.key.len() - 1;
            let plural = if features == 1 { "" } else { "s" };
            vec![event(
                EventKind::Published,
                format!("version {version} published with {features} feature{plural}"),
            )]
        }
        Some(before) => definition_changes(before, &group.table)
            .into_iter()
            .map(|change| event(EventKind::Definition, change))
            .collect(),
    };
    let snapshot = published::format_time(registered.as_of);
    events.push(event(
        EventKind::Run,
        match registered.replaced {
            true => format!("snapshot {snapshot} registered again, replacing the earlier run's"),
            false => format!("snapshot {snapshot} registered"),
        },
    ));
    record_history(backends, &name, &events).await?;
    let edges: Vec<LineageEdge> = group
        .upstream
        .iter()
        .map(|upstream| LineageEdge {
            group: name.clone(),
            version,
            upstream_kind: upstream.kind,
            upstream: upstream.name.clone(),
            upstream_version: upstream.version,
            run_id: registered.run_id.to_string(),
            recorded_at: at,
        })
        .collect();
    record_lineage(backends, &name, version, &edges).await
}

/// What changed, in words, between two definitions of one group version: its description,
/// tags, feature comments and online ttl (its schema cannot change in place).
pub(crate) fn definition_changes(before: &Table, after: &Table) -> Vec<String> {
    let mut changes = Vec::new();
    let quoted = |text: Option<&str>| match text {
        Some(text) => format!("'{text}'"),
        None => "none".to_string(),
    };
    for (parameter, what) in [
        (published::DESCRIPTION, "description"),
        (published::ONLINE_TTL, "online ttl"),
    ] {
        let (old, new) = (
            before.parameters.get(parameter),
            after.parameters.get(parameter),
        );
        if old != new {
            changes.push(format!(
                "{what} changed from {} to {}",
                quoted(old.map(String::as_str)),
                quoted(new.map(String::as_str))
            ));
        }
    }
    let tags = |table: &Table| {
        table
            .parameters
            .get(published::TAGS)
            .and_then(|t| {
                serde_json::from_str::<std::collections::BTreeMap<String, String>>(t).ok()
            })
            .unwrap_or_default()
    };
    let (old_tags, new_tags) = (tags(before), tags(after));
    let names: std::collections::BTreeSet<&String> =
        old_tags.keys().chain(new_tags.keys()).collect();
    for tag in names {
        let (old, new) = (old_tags.get(tag), new_tags.get(tag));
        if old != new {
            changes.push(format!(
                "tag {tag} changed from {} to {}",
                quoted(old.map(String::as_str)),
                quoted(new.map(String::as_str))
            ));
        }
    }
    for (old, new) in before.columns.iter().zip(&after.columns) {
        if old.comment != new.comment {
            changes.push(format!(
                "comment of {} changed from {} to {}",
                new.name,
                quoted(old.comment.as_deref()),
                quoted(new.comment.as_deref())
            ));
        }
    }
    changes
}
