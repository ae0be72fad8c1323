//! The embedded catalog: Glue's model in one SQLite file.

use std::path::Path;

use async_trait::async_trait;
use fengine_sqlite::SqliteFile;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::{Catalog, Error, Partition, Result, Table};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS catalog_databases (
    name        TEXT PRIMARY KEY,
    created_at  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS catalog_tables (
    database    TEXT NOT NULL REFERENCES catalog_databases(name),
    name        TEXT NOT NULL,
    definition  TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (database, name)
);
CREATE TABLE IF NOT EXISTS catalog_partitions (
    database    TEXT NOT NULL,
    table_name  TEXT NOT NULL,
    key_values  TEXT NOT NULL,
    definition  TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (database, table_name, key_values),
    FOREIGN KEY (database, table_name) REFERENCES catalog_tables(database, name)
);
";

/// A catalog in a SQLite file. Every registration is one SQLite transaction, so a run killed
/// at any point leaves the catalog as it was before that run or after it, never between.
#[derive(Debug, Clone)]
pub struct LocalCatalog {
    file: SqliteFile,
}

impl LocalCatalog {
    /// Opens the catalog file, creating it (and its folder) if missing.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Ok(LocalCatalog {
            file: SqliteFile::create(path, "catalog", SCHEMA)?,
        })
    }

    pub fn path(&self) -> &Path {
        self.file.path()
    }
}

#[async_trait]
impl Catalog for LocalCatalog {
    async fn register_partition(
        &self,
        table: &Table,
        partition: &Partition,
    ) -> Result<Option<Partition>> {
        if let Some(exceeded) = partition.limit_exceeded() {
            return Err(Error::Invalid(exceeded));
        }
        let (table, partition) = (table.clone(), partition.clone());
        self.file
            .run(move |connection| {
                let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
                put_table(&tx, &table)?;
                let key_values = serde_json::to_string(&partition.values)?;
                let replaced: Option<String> = tx
                    .query_row(
                        "SELECT definition FROM catalog_partitions
                     WHERE database = ?1 AND table_name = ?2 AND key_values = ?3",
                        params![table.database, table.name, key_values],
                        |row| row.get(0),
                    )
                    .optional()?;
                tx.execute(
                    "INSERT OR REPLACE INTO catalog_partitions
                 (database, table_name, key_values, definition, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![
                        table.database,
                        table.name,
                        key_values,
                        serde_json::to_string(&partition)?,
                        chrono::Utc::now().to_rfc3339()
                    ],
                )?;
                tx.commit()?;
                replaced
                    .map(|d| serde_json::from_str(&d))
                    .transpose()
                    .map_err(Error::from)
            })
            .await
    }

    async fn put_table(&self, table: &Table) -> Result<()> {
        let table = table.clone();
        self.file
            .run(move |connection| {
                let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
                put_table(&tx, &table)?;
                tx.commit().map_err(Error::from)
            })
            .await
    }

    async fn get_table(&self, database: &str, name: &str) -> Result<Option<Table>> {
        let (database, name) = (database.to_string(), name.to_string());
        self.file
            .run(move |connection| read_table(connection, &database, &name))
            .await
    }

    async fn list_tables(&self, database: &str) -> Result<Vec<Table>> {
        let database = database.to_string();
        self.file
            .run(move |connection| {
                read_definitions(
                    connection,
                    "SELECT definition FROM catalog_tables WHERE database = ?1 ORDER BY name",
                    params![database],
                )
            })
            .await
    }

    async fn list_partitions(&self, database: &str, table: &str) -> Result<Vec<Partition>> {
        let (database, table) = (database.to_string(), table.to_string());
        self.file
            .run(move |connection| {
                read_definitions(
                    connection,
                    "SELECT definition FROM catalog_partitions
                     WHERE database = ?1 AND table_name = ?2 ORDER BY key_values",
                    params![database, table],
                )
            })
            .await
    }

    async fn get_partition(
        &self,
        database: &str,
        table: &str,
        values: &[String],
    ) -> Result<Option<Partition>> {
        let (database, table) = (database.to_string(), table.to_string());
        let key_values = serde_json::to_string(values)?;
        self.file
            .run(move |connection| {
                let mut found: Vec<Partition> = read_definitions(
                    connection,
                    "SELECT definition FROM catalog_partitions
                     WHERE database = ?1 AND table_name = ?2 AND key_values = ?3",
                    params![database, table, key_values],
                )?;
                Ok(found.pop())
            })
            .await
    }
}

/// Creates the database and the table, or updates the table's definition if it changed.
fn put_table(tx: &Connection, table: &Table) -> Result<()> {
    if let Some(exceeded) = table.limit_exceeded() {
        return Err(Error::Invalid(exceeded));
    }
    let now = chrono::Utc::now().to_rfc3339();
    tx.execute(
        "INSERT OR IGNORE INTO catalog_databases (name, created_at) VALUES (?1, ?2)",
        params![table.database, now],
    )?;
    match read_table(tx, &table.database, &table.name)? {
        Some(existing) if existing == *table => return Ok(()),
        Some(existing) => {
            if let Some(conflict) = existing.update_conflict(table) {
                return Err(Error::Conflict(conflict));
            }
        }
        None => {}
    }
    tx.execute(
        "INSERT INTO catalog_tables (database, name, definition, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?4)
         ON CONFLICT (database, name)
         DO UPDATE SET definition = excluded.definition, updated_at = excluded.updated_at",
        params![
            table.database,
            table.name,
            serde_json::to_string(table)?,
            now
        ],
    )?;
    Ok(())
}

/// The JSON definitions a query selects, decoded.
fn read_definitions<T: serde::de::DeserializeOwned>(
    connection: &Connection,
    sql: &str,
    parameters: impl rusqlite::Params,
) -> Result<Vec<T>> {
    let mut statement = connection.prepare(sql)?;
    let definitions = statement
        .query_map(parameters, |row| row.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    definitions
        .iter()
        .map(|d| serde_json::from_str(d).map_err(Error::from))
        .collect()
}

fn read_table(connection: &Connection, database: &str, name: &str) -> Result<Option<Table>> {
    let definition: Option<String> = connection
        .query_row(
            "SELECT definition FROM catalog_tables WHERE database = ?1 AND name = ?2",
            params![database, name],
            |row| row.get(0),
        )
        .optional()?;
    definition
        .map(|d| serde_json::from_str(&d).map_err(Error::from))
        .transpose()
}
