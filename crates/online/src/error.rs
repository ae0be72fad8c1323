/// What can go wrong with an online store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request or the data cannot be served as it is; retrying will not help.
    #[error("{0}")]
    Invalid(String),
    /// The feature group or version is not in the store.
    #[error("{0}")]
    NotFound(String),
    /// Another load of the same table began while this one ran: this one is not recorded.
    #[error("{0}")]
    Superseded(String),
    /// The store could not be read or written; retrying may help.
    #[error("online store: {0}")]
    Storage(String),
    /// The store refused in a way that lasts until someone acts (access denied, a missing
    /// table's permissions, a corrupt or read-only file): retrying will not help.
    #[error("online store: {0}")]
    Refused(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// No completed load of the group (or of that version of it) is in the store.
    pub fn not_loaded(group: &str, version: Option<u32>) -> Self {
        Error::NotFound(match version {
            Some(v) => format!("feature group '{group}' version {v} has not been loaded online"),
            None => format!("feature group '{group}' has not been loaded online"),
        })
    }

    /// Another load (`loading`, if any still) began on `table` after this one.
    pub fn superseded(table: &str, run_id: &str, loading: Option<&str>) -> Self {
        let since = match loading {
            Some(other) => format!("a load of run {other} began since"),
            None => "another load completed since".to_string(),
        };
        Error::Superseded(format!(
            "the load of run {run_id} into online table '{table}' was not recorded: {since} \
             (the lease that keeps loads apart had lapsed); the store holds the rows of the \
             later load once it completes"
        ))
    }
}

impl From<rusqlite::Error> for Error {
    fn from(error: rusqlite::Error) -> Self {
        fengine_sqlite::Error::from(error).into()
    }
}

impl From<arrow::error::ArrowError> for Error {
    fn from(error: arrow::error::ArrowError) -> Self {
        Error::Invalid(error.to_string())
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
