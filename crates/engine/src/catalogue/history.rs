//! A group's history: its runs, definition changes, rollbacks and retirements, newest first.
//! Each event is a file of its own in the `fengine_history` table, partitioned by group.

use std::marker::PhantomData;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::records::{HISTORY_TABLE, RecordTable};
use crate::backends::Backends;
use crate::error::Result;

/// What happened to a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A run registered a snapshot.
    Run,
    /// A version was first published.
    Published,
    /// Its description, tags, comments or ttl changed in place.
    Definition,
    /// The online store was put back to an earlier snapshot.
    Rollback,
    /// A version was retired.
    Retire,
}

/// One entry of a group's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEvent {
    pub at: DateTime<Utc>,
    pub kind: EventKind,
    pub version: u32,
    /// Who: the OS user, or the AWS caller's ARN.
    pub actor: String,
    pub run_id: Option<String>,
    pub as_of: Option<DateTime<Utc>>,
    pub rows: Option<u64>,
    /// What happened, in words.
    pub detail: String,
    /// Why, when the person who acted said.
    pub reason: Option<String>,
}

pub(crate) fn history_table() -> RecordTable<HistoryEvent> {
    let time = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    RecordTable {
        name: HISTORY_TABLE,
        description: "What happened to each feature group: runs, definition changes, rollbacks, \
                      retirements (one file per event, by group)",
        schema: Arc::new(Schema::new(vec![
            Field::new("at", time.clone(), false),
            Field::new("kind", DataType::Utf8, false),
            Field::new("version", DataType::Int32, false),
            Field::new("actor", DataType::Utf8, false),
            Field::new("run_id", DataType::Utf8, true),
            Field::new("as_of", time, true),
            Field::new("rows", DataType::Int64, true),
            Field::new("detail", DataType::Utf8, false),
            Field::new("reason", DataType::Utf8, true),
        ])),
        partitioned_by: Some("group_name"),
        records: PhantomData,
    }
}

/// Appends events to the group's history, as one file.
pub(crate) async fn record(
    backends: &Backends,
    group: &str,
    events: &[HistoryEvent],
) -> Result<()> {
    let Some(first) = events.first() else {
        return Ok(());
    };
    // Named by time first, so that the files list in the order they happened.
    let name = format!(
        "{}-{}",
        first.at.format("%Y%m%dT%H%M%S%6fZ"),
        uuid::Uuid::new_v4().simple()
    );
    history_table()
        .write(backends, Some(group), &name, events)
        .await
}

/// The group's history, newest first; an error when the group is not published.
pub async fn group_history(backends: &Backends, group: &str) -> Result<Vec<HistoryEvent>> {
    crate::published::group_versions(backends, group).await?;
    events_of(backends, group).await
}

/// The events recorded of a group, newest first.
pub(crate) async fn events_of(backends: &Backends, group: &str) -> Result<Vec<HistoryEvent>> {
    let mut events = history_table().read(backends, Some(group)).await?;
    // Files and the events in each come oldest first; events recorded at one time keep
    // their order, reversed.
    events.reverse();
    events.sort_by_key(|e| std::cmp::Reverse(e.at));
    Ok(events)
}
