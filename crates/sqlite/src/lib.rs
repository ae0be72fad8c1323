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
#[error("{message}")]
pub struct Error {
    message: String,
    permanent: bool,
}

impl Error {
    fn transient(message: String) -> Self {
        Error {
            message,
            permanent: false,
        }
    }

    /// Whether running again cannot help until someone acts: the file is corrupt, not a
    /// database, read-only, or cannot be opened or created.
    pub fn is_permanent(&self) -> bool {
        self.permanent
    }
}

impl From<rusqlite::Error> for Error {
    fn from(error: rusqlite::Error) -> Self {
        Error {
            message: describe(&error),
            permanent: is_permanent(&error),
        }
    }
}

/// Whether a SQLite failure lasts until someone acts on the file (as against a lock held
/// by another process, which passes).
pub fn is_permanent(error: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode::*;
    matches!(
        error.sqlite_error_code(),
        Some(DatabaseCorrupt | NotADatabase | ReadOnly | CannotOpen | PermissionDenied | DiskFull)
    )
}

/// SQLite's message, with what to do where SQLite does not say.
pub fn describe(error: &rusqlite::Error) -> String {
    use rusqlite::ErrorCode::*;
    let hint = match error.sqlite_error_code() {
        Some(DatabaseBusy | DatabaseLocked) => {
            " (another process kept it locked for longer than the 30 s fengine waits; run again)"
        }
        Some(ReadOnly) => " (make the file and its folder writable by this user)",
        Some(DatabaseCorrupt | NotADatabase) => {
            " (the file is damaged or not fengine's: restore it from a backup, or move it away)"
        }
        _ => "",
    };
    format!("{error}{hint}")
}

/// The errors of a store kept in a SQLite file, which take the file's name.
pub trait FileError: From<Error> {
    /// The error, said of the file at `path`.
    fn in_file(self, path: &Path) -> Self;
}

impl FileError for Error {
    fn in_file(self, path: &Path) -> Self {
        Error {
            message: format!("file '{}': {}", path.display(), self.message),
            permanent: self.permanent,
        }
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
            std::fs::create_dir_all(parent).map_err(|e| Error {
                message: format!(
                    "cannot create folder '{}' for the {what}: {e}",
                    parent.display()
                ),
                permanent: true,
            })?;
        }
        let file = SqliteFile { path, what };
        let created = file.connect().and_then(|c| Ok(c.execute_batch(schema)?));
        created.map_err(|e| Error {
            message: format!("the {what} '{}': {}", file.path.display(), e.message),
            permanent: e.permanent,
        })?;
        Ok(file)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A connection to the file; its errors do not name the file (see [`FileError`]).
    pub fn connect(&self) -> Result<Connection, Error> {
        let connection = Connection::open(&self.path).map_err(|e| Error {
            message: format!("cannot open it: {}", describe(&e)),
            permanent: true,
        })?;
        connection.busy_timeout(BUSY_TIMEOUT)?;
        // Switching a new file to WAL takes an exclusive lock and, when processes open the
        // file at once, fails busy without waiting: retried until the busy timeout.
        let started = std::time::Instant::now();
        while let Err(e) = connection.pragma_update(None, "journal_mode", "WAL") {
            let busy = matches!(
                e.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
            );
            if !busy || started.elapsed() > BUSY_TIMEOUT {
                return Err(e.into());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        connection.pragma_update(None, "synchronous", "NORMAL")?;
        connection.pragma_update(None, "foreign_keys", "ON")?;
        Ok(connection)
    }

    /// Runs `work` on a new connection on a blocking thread; its errors name the file.
    pub async fn run<T, E, F>(&self, work: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: FileError + Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, E> + Send + 'static,
    {
        let file = self.clone();
        let what = self.what;
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || work(&mut file.connect()?))
            .await
            .map_err(|e| E::from(Error::transient(format!("{what} task failed: {e}"))))?
            .map_err(|e| e.in_file(&path))
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::OpenFlags;

    use super::*;

    /// Tests run as root, for whom file permissions do not hold: read-only is SQLite's own.
    #[test]
    fn failures_that_last_are_told_from_those_that_pass() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.sqlite");
        Connection::open(&path)
            .unwrap()
            .execute_batch("CREATE TABLE t (a INTEGER)")
            .unwrap();

        let read_only =
            Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        let error = read_only
            .execute("INSERT INTO t VALUES (1)", [])
            .unwrap_err();
        assert!(is_permanent(&error), "{error}");
        assert!(describe(&error).ends_with("(make the file and its folder writable by this user)"));

        let holder = Connection::open(&path).unwrap();
        holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
        let waiter = Connection::open(&path).unwrap();
        waiter.busy_timeout(Duration::ZERO).unwrap();
        let error = waiter.execute("INSERT INTO t VALUES (1)", []).unwrap_err();
        assert!(!is_permanent(&error), "{error}");
        assert!(
            describe(&error).ends_with("run again)"),
            "{}",
            describe(&error)
        );

        let garbage = dir.path().join("garbage.sqlite");
        std::fs::write(&garbage, "not a database ".repeat(300)).unwrap();
        let error = Connection::open(&garbage)
            .unwrap()
            .execute_batch("SELECT * FROM sqlite_master")
            .unwrap_err();
        assert!(is_permanent(&error), "{error}");
        let named = Error::from(error).in_file(&garbage);
        assert!(named.is_permanent());
        assert!(named.to_string().starts_with(&format!(
            "file '{}': file is not a database",
            garbage.display()
        )));
    }
}
