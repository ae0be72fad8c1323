/// What can go wrong with a catalog.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request contradicts what the catalog holds.
    #[error("{0}")]
    Conflict(String),
    /// The catalog could not be read or written; retrying may help.
    #[error("catalog storage: {0}")]
    Storage(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<rusqlite::Error> for Error {
    fn from(error: rusqlite::Error) -> Self {
        Error::Storage(error.to_string())
    }
}

impl From<serde_json::Error> for Error {
    fn from(error: serde_json::Error) -> Self {
        Error::Storage(format!("malformed catalog entry: {error}"))
    }
}

impl From<fengine_sqlite::Error> for Error {
    fn from(error: fengine_sqlite::Error) -> Self {
        Error::Storage(error.to_string())
    }
}
