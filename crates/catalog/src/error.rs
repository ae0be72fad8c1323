/// What can go wrong with a catalog.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request contradicts what the catalog holds.
    #[error("{0}")]
    Conflict(String),
    /// The request breaks a limit of the catalog's model (Glue's sizes).
    #[error("{0}")]
    Invalid(String),
    /// The catalog could not be read or written; retrying may help.
    #[error("catalog storage: {0}")]
    Storage(String),
    /// The catalog refused in a way that lasts until someone acts (access denied, a corrupt
    /// or read-only file): retrying will not help.
    #[error("catalog storage: {0}")]
    Refused(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<rusqlite::Error> for Error {
    fn from(error: rusqlite::Error) -> Self {
        fengine_sqlite::Error::from(error).into()
    }
}

impl From<serde_json::Error> for Error {
    fn from(error: serde_json::Error) -> Self {
        Error::Storage(format!("malformed catalog entry: {error}"))
    }
}

impl From<fengine_sqlite::Error> for Error {
    fn from(error: fengine_sqlite::Error) -> Self {
        match error.is_permanent() {
            true => Error::Refused(error.to_string()),
            false => Error::Storage(error.to_string()),
        }
    }
}

impl fengine_sqlite::FileError for Error {
    fn in_file(self, path: &std::path::Path) -> Self {
        let named = |message: String| format!("file '{}': {message}", path.display());
        match self {
            Error::Storage(message) => Error::Storage(named(message)),
            Error::Refused(message) => Error::Refused(named(message)),
            other => other,
        }
    }
}
