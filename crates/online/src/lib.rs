//! Online stores: the latest feature values per entity, for models to read by key.
//! The embedded [`SqliteOnlineStore`] keeps one table per feature group version in a SQLite
//! file.
//!
//! ```no_run
//! use fengine_online::{OnlineStore, SqliteOnlineStore};
//!
//! # async fn example() -> fengine_online::Result<()> {
//! let store = SqliteOnlineStore::open("warehouse/online.sqlite")?;
//! if let Some(row) = store.get("customer_spend", None, &["42".to_string()]).await? {
//!     println!("{}", serde_json::Value::Object(row.values));
//! }
//! # Ok(())
//! # }
//! ```

mod error;
mod keys;
mod sqlite;
mod values;

use std::fmt::Debug;
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use chrono::{DateTime, Utc};

pub use error::{Error, Result};
pub use keys::{KeyKind, KeyValue, key_kinds, key_values, parse_key};
pub use sqlite::SqliteOnlineStore;
pub use values::{check_nested_finite, non_finite_text, non_finite_value};

/// What an online store needs to know of a feature group version to load and serve it.
#[derive(Debug, Clone)]
pub struct OnlineTable {
    pub group: String,
    pub version: u32,
    /// The snapshot's schema; the key and event-time columns are among its fields.
    pub schema: SchemaRef,
    pub key_columns: Vec<String>,
    pub event_time_column: String,
    /// How long after its event time a value may be served.
    pub ttl: Option<Duration>,
}

/// A row as stored: every column of the snapshot row, timestamps in RFC 3339.
#[derive(Debug, Clone, PartialEq)]
pub struct OnlineRow {
    pub values: serde_json::Map<String, serde_json::Value>,
    pub event_time: DateTime<Utc>,
    pub version: u32,
    pub ttl: Option<Duration>,
}

impl OnlineRow {
    /// Whether the row's time to live has passed at `now`: a value is served while its age
    /// is at most the ttl (as training sets match it), so at exactly event time + ttl it
    /// still is.
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.ttl
            .and_then(|ttl| chrono::Duration::from_std(ttl).ok())
            .is_some_and(|ttl| self.event_time + ttl < now)
    }
}

/// A registered snapshot, as the store records the one it holds: its as-of and the run that
/// wrote it (two runs of one as-of write different snapshots).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SnapshotId {
    pub as_of: DateTime<Utc>,
    pub run_id: String,
}

/// What the store holds of a feature group version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadState {
    /// The snapshot of the last completed load: the store serves exactly its rows.
    pub loaded: Option<SnapshotId>,
    /// A load begun and never completed (killed, or failed): its rows may be mixed with the
    /// loaded snapshot's until a load completes.
    pub unfinished: Option<SnapshotId>,
}

/// What every store checks of rows: keys that fit their storage type, no NaN or infinity
/// nested where it cannot be served.
pub fn check_rows_common(table: &OnlineTable, batch: &RecordBatch) -> Result<()> {
    check_nested_finite(batch)?;
    key_values(batch, &table.key_columns)?;
    Ok(())
}

/// Why an existing online table cannot hold `table`'s rows, if it cannot: its key differs.
pub fn key_conflict(name: &str, table: &OnlineTable, existing: &[(String, String)]) -> Result<()> {
    let wanted: Vec<(String, String)> = table
        .key_columns
        .iter()
        .cloned()
        .zip(
            key_kinds(&table.schema, &table.key_columns)?
                .iter()
                .map(|k| k.name().to_string()),
        )
        .collect();
    if existing == wanted.as_slice() {
        return Ok(());
    }
    let describe = |key: &[(String, String)]| {
        key.iter()
            .map(|(column, kind)| format!("{column} {kind}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    Err(Error::Invalid(format!(
        "online table '{name}' exists keyed by ({}), but the group is keyed by ({}): bump the \
         group's VERSION, or drop that table",
        describe(existing),
        describe(&wanted)
    )))
}

/// What a completed load did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadCounts {
    /// Rows written: one per key of the snapshot.
    pub rows: u64,
    /// Rows of keys the snapshot no longer has, removed.
    pub removed: u64,
}

#[async_trait]
pub trait OnlineStore: Send + Sync + Debug {
    /// The store's name for the table of a group version, as its operators see it.
    fn table_name(&self, group: &str, version: u32) -> String;

    /// The snapshots loaded into this feature group version, completely or not.
    async fn load_state(&self, group: &str, version: u32) -> Result<LoadState>;

    /// Fails with [`Error::Invalid`] if the store holds a table of this group version that
    /// cannot take its rows (keyed by other columns or types): checked before anything is
    /// computed or published.
    async fn check_table(&self, table: &OnlineTable) -> Result<()>;

    /// Fails with [`Error::Invalid`], naming the column and key, if the store cannot hold
    /// these rows: checked on every row of a snapshot as it is written, before the commit
    /// point, so that a value the store refuses is not found after registering.
    fn check_rows(&self, table: &OnlineTable, batch: &RecordBatch) -> Result<()>;

    /// Starts loading `snapshot`, recorded as unfinished until committed: rows written
    /// through it replace the stored rows of the same keys. One load at a time per group
    /// version: the caller holds a lease for it.
    async fn begin_load(
        &self,
        table: &OnlineTable,
        snapshot: &SnapshotId,
    ) -> Result<Box<dyn OnlineLoad>>;

    /// Drops the group version's table and forgets its loads (a retired version serves
    /// nothing); `false` when the store held no table of it. The caller holds the version's
    /// online lease.
    async fn drop_table(&self, group: &str, version: u32) -> Result<bool>;

    /// The stored row of `key` (values in KEY order, as text) in `version`, or in the newest
    /// loaded version of the group when `None`.
    async fn get(
        &self,
        group: &str,
        version: Option<u32>,
        key: &[String],
    ) -> Result<Option<OnlineRow>>;
}

/// A load in progress. Its rows become visible batch by batch; [`OnlineLoad::commit`]
/// removes the rows of keys it did not write and records its snapshot as loaded.
#[async_trait]
pub trait OnlineLoad: Send {
    /// Writes rows holding at most one row per key.
    async fn write(&mut self, batch: RecordBatch) -> Result<()>;

    /// Once every row is written: removes the other rows, and records the load as
    /// completed unless another load began after this one (then [`Error::Superseded`]).
    async fn commit(self: Box<Self>) -> Result<LoadCounts>;
}
