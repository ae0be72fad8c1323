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
pub use values::{check_nested_finite, non_finite_text};

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

#[async_trait]
pub trait OnlineStore: Send + Sync + Debug {
    /// The as-of of the snapshot last loaded into this feature group version, if any.
    async fn loaded_as_of(&self, group: &str, version: u32) -> Result<Option<DateTime<Utc>>>;

    /// Starts a load: rows written through it replace the stored rows of the same keys.
    async fn begin_load(&self, table: &OnlineTable) -> Result<Box<dyn OnlineLoad>>;

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
/// records the snapshot's as-of once every row is written.
#[async_trait]
pub trait OnlineLoad: Send {
    /// Writes rows holding at most one row per key.
    async fn write(&mut self, batch: RecordBatch) -> Result<()>;

    /// Returns the number of rows written.
    async fn commit(self: Box<Self>, as_of: DateTime<Utc>) -> Result<u64>;
}
