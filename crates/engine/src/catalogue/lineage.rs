//! Where each group version's rows come from: the sources its query scanned and the
//! published groups it read, as of its last run. One file per group version in the
//! `fengine_lineage` table, replaced by each run, one row per edge.

use std::marker::PhantomData;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::records::{LINEAGE_TABLE, RecordTable};
use crate::backends::Backends;
use crate::error::Result;
use crate::published::table_name;

/// What a group version reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamKind {
    /// Files at a location (`CREATE EXTERNAL TABLE ... LOCATION`).
    Source,
    /// A table of a source catalog (`glue.<database>.<table>`).
    Table,
    /// A published feature group (`features.<group>`).
    Group,
}

/// One edge: `group` v`version` reads `upstream`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LineageEdge {
    // `group` is a reserved word of Athena's SQL.
    #[serde(rename = "group_name")]
    pub group: String,
    #[serde(rename = "group_version")]
    pub version: u32,
    pub upstream_kind: UpstreamKind,
    /// A location, a table name, or a group's name.
    pub upstream: String,
    /// The group version read, for a group.
    pub upstream_version: Option<u32>,
    pub run_id: String,
    pub recorded_at: DateTime<Utc>,
}

fn lineage_table() -> RecordTable<LineageEdge> {
    let time = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    RecordTable {
        name: LINEAGE_TABLE,
        description: "What each feature group version read in its last run: sources, source \
                      tables, published groups (one file per group version)",
        schema: Arc::new(Schema::new(vec![
            Field::new("group_name", DataType::Utf8, false),
            Field::new("group_version", DataType::Int32, false),
            Field::new("upstream_kind", DataType::Utf8, false),
            Field::new("upstream", DataType::Utf8, false),
            Field::new("upstream_version", DataType::Int32, true),
            Field::new("run_id", DataType::Utf8, false),
            Field::new("recorded_at", time, false),
        ])),
        partitioned_by: None,
        records: PhantomData,
    }
}

/// Replaces what the catalogue records that `group` v`version` reads.
pub(crate) async fn record(
    backends: &Backends,
    group: &str,
    version: u32,
    edges: &[LineageEdge],
) -> Result<()> {
    lineage_table()
        .write(backends, None, &table_name(group, version), edges)
        .await
}

/// Every edge the catalogue records.
pub(crate) async fn all_edges(backends: &Backends) -> Result<Vec<LineageEdge>> {
    lineage_table().read(backends, None).await
}
