//! Catalogs of offline snapshots, modelled on the AWS Glue Data Catalog: databases hold
//! tables (columns with comments, parameters), tables hold partitions with their own
//! locations. The embedded [`LocalCatalog`] keeps that model in a SQLite file.
//!
//! ```no_run
//! use fengine_catalog::{Catalog, LocalCatalog};
//!
//! # async fn example() -> fengine_catalog::Result<()> {
//! let catalog = LocalCatalog::open("warehouse/catalog.sqlite")?;
//! if let Some(table) = catalog.get_table("fengine", "customer_spend_v1").await? {
//!     for partition in catalog.list_partitions(&table.database, &table.name).await? {
//!         println!("{:?} at {}", partition.values, partition.location);
//!     }
//! }
//! # Ok(())
//! # }
//! ```

mod error;
mod local;
mod model;

use std::fmt::Debug;

use async_trait::async_trait;

pub use error::{Error, Result};
pub use local::LocalCatalog;
pub use model::{Column, MAX_PARAMETER_VALUE_BYTES, Partition, Table};

/// Where snapshots are registered, with the catalogue's own tables (history, lineage,
/// models). Registering a snapshot's partition is the commit point of a run: until
/// [`Catalog::register_partition`] returns, readers of the catalog see the previous state.
///
/// Every backend holds what Glue can: a table or partition past Glue's limits
/// ([`Table::limit_exceeded`]) is refused with [`Error::Invalid`] by the embedded catalog
/// too, so that what runs on a laptop registers in Glue.
#[async_trait]
pub trait Catalog: Send + Sync + Debug {
    /// Creates the database and the table if missing, updates the table's definition when
    /// it changed, and puts the partition, replacing one with the same values. Returns the
    /// replaced partition, whose files the caller may then delete.
    ///
    /// A table whose columns differ from the registered ones is refused with
    /// [`Error::Conflict`]: a schema change needs a new table.
    async fn register_partition(
        &self,
        table: &Table,
        partition: &Partition,
    ) -> Result<Option<Partition>>;

    /// Creates the database and the table if missing, or updates the table's definition
    /// when it changed, under the same rules as [`Catalog::register_partition`].
    async fn put_table(&self, table: &Table) -> Result<()>;

    async fn get_table(&self, database: &str, name: &str) -> Result<Option<Table>>;

    /// The database's tables, by name; none when the database is missing.
    async fn list_tables(&self, database: &str) -> Result<Vec<Table>>;

    /// The table's partitions, oldest values first.
    async fn list_partitions(&self, database: &str, table: &str) -> Result<Vec<Partition>>;

    /// The partition with these values; `None` when the table or the partition is missing.
    async fn get_partition(
        &self,
        database: &str,
        table: &str,
        values: &[String],
    ) -> Result<Option<Partition>>;
}
