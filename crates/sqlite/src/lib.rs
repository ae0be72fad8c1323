//! The SQLite files behind fengine's embedded backends (the local catalog, the online
//! store): opened one way — WAL journal, a busy timeout for concurrent runs, foreign keys —
//! and used on blocking threads, never on the async runtime's workers.
//!
//! ```no_run
//! # async fn example() -> Result<(), fengine_sqlite::Error> {
//! let file = fengine_sqlite::SqliteFile::create("warehouse/notes.sqlite", "notes", "CREATE TABLE IF NOT EXISTS notes (text TEXT)")?;
//! let count = file
//!     .run(|connection| -> Result<i64, fengine_sqlite::Error> {
//!         Ok(connection.query_row("SELECT count(*) FROM notes", [], |row| row.get(0))?)
//!     })
//!     .await?;
//! # Ok(())
//! # }
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::Connection;

/// Adds the columns of `columns` (name, declaration) that `table` lacks: how a file written
/// by an earlier fengine gains the columns a later one needs. One transaction, so that
/// processes opening the file at once add each column once.
pub fn add_missing_columns(
    connection: &mut Connection,
    table: &str,
    columns: &[(&str, &str)],
) -> Result<(), Error> {
    let quoted = format!("\"{}\"", table.replace('"', "\"\""));
    let transaction =
        connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let existing: Vec<String> = transaction
        .prepare(&format!(
            "SELECT name FROM pragma_table_info({})",
            sql_text(table)
        ))?
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    for (name, declaration) in columns {
        if !existing.iter().any(|e| e == name) {
            transaction.execute_batch(&format!(
                "ALTER TABLE {quoted} ADD COLUMN \"{name}\" {declaration}"
            ))?;
        }
    }
    transaction.commit()?;
    Ok(())
}

fn sql_text(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A SQLite file could not be opened, read or written.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Error(String);

impl From<rusqlite::Error> for Error {
    fn from(error: rusqlite::Error) -> Self {
        Error(error.to_string())
    }
}

/// How long a writer waits for another process's transaction before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct SqliteFile {
    path: PathBuf,
    /// What the file holds, for messages: "catalog", "online store".
    what: &'static str,
}

impl SqliteFile {
    /// Opens the file, creating it, its folder and `schema` if missing.
    pub fn create(path: impl AsRef<Path>, what: &'static str, schema: &str) -> Result<Self, Error> {
        let path = path.as_ref().to_path_buf();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                Error(format!(
                    "cannot create folder '{}' for the {what}: {e}",
                    parent.display()
                ))
            })?;
        }
        let file = SqliteFile { path, what };
        file.connect()?.execute_batch(schema)?;
        Ok(file)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn connect(&self) -> Result<Connection, Error> {
        let connection = Connection::open(&self.path).map_err(|e| {
            Error(format!(
                "cannot open the {} '{}': {e}",
                self.what,
                self.path.display()
            ))
        })?;
        connection.busy_timeout(BUSY_TIMEOUT)?;
        connection.pragma_update(None, "journal_mode", "WAL")?;
        connection.pragma_update(None, "synchronous", "NORMAL")?;
        connection.pragma_update(None, "foreign_keys", "ON")?;
        Ok(connection)
    }

    /// Runs `work` on a new connection on a blocking thread.
    pub async fn run<T, E, F>(&self, work: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<Error> + Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, E> + Send + 'static,
    {
        let file = self.clone();
        let what = self.what;
        tokio::task::spawn_blocking(move || work(&mut file.connect()?))
            .await
            .map_err(|e| E::from(Error(format!("{what} task failed: {e}"))))?
    }
}
