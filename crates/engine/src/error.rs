use datafusion::error::DataFusionError;
use fengine_dialect::{ParseError, SourceLocation};

/// What a run can fail on, by who can fix it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The pipeline file cannot be parsed.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// The pipeline parses but cannot run as written: a missing column, a wrong type, an
    /// unknown parameter, a source that does not exist.
    #[error("{}{message}", location_prefix(.location))]
    Plan {
        location: Option<SourceLocation>,
        message: String,
    },
    /// The profile or the command's options are wrong.
    #[error("{0}")]
    Config(String),
    /// The computed rows failed a check; nothing of the group was published.
    #[error("{0}")]
    Check(String),
    /// What was asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// Storage or a service failed; running again may succeed.
    #[error("{0}")]
    Infrastructure(String),
}

/// The kinds of failure a scheduler tells apart by exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    BadInput,
    CheckFailed,
    NotFound,
    Infrastructure,
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Parse(_) | Error::Plan { .. } | Error::Config(_) => ErrorKind::BadInput,
            Error::Check(_) => ErrorKind::CheckFailed,
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::Infrastructure(_) => ErrorKind::Infrastructure,
        }
    }

    pub(crate) fn plan(location: &SourceLocation, message: impl Into<String>) -> Self {
        Error::Plan {
            location: Some(location.clone()),
            message: message.into(),
        }
    }

    /// Names the feature group in the message of a pipeline error.
    pub(crate) fn in_group(self, group: &str) -> Self {
        match self {
            Error::Plan { location, message } => Error::Plan {
                location,
                message: format!("feature group '{group}': {message}"),
            },
            other => other,
        }
    }

    /// Says of a failure of the online step that the snapshot itself was published, and
    /// what the store serves meanwhile.
    pub(crate) fn after_registering(self, group: &str, snapshot: &str) -> Self {
        let note = |message: String| {
            format!(
                "feature group '{group}': snapshot {snapshot} is registered, but the online \
                 store was not brought up to date: {message}. The store serves the snapshot it \
                 held before; the next run of this group completes the load"
            )
        };
        match self {
            Error::Parse(_) | Error::Plan { .. } => self,
            Error::Config(m) => Error::Config(note(m)),
            Error::Check(m) => Error::Check(note(m)),
            Error::NotFound(m) => Error::NotFound(note(m)),
            Error::Infrastructure(m) => Error::Infrastructure(note(m)),
        }
    }

    /// A DataFusion error met while planning or running the statement at `location`.
    /// Failures to reach storage are infrastructure faults; anything else is the pipeline's.
    pub(crate) fn from_datafusion(
        location: Option<&SourceLocation>,
        error: DataFusionError,
    ) -> Self {
        let message = describe_datafusion_error(&error);
        if is_infrastructure(&error) {
            let at = location_prefix(&location.cloned());
            let hint = match error.find_root() {
                DataFusionError::ResourcesExhausted(_) => {
                    ". Raise memory_limit in the profile, or give the machine more memory"
                }
                _ => "",
            };
            return Error::Infrastructure(format!("{at}{message}{hint}"));
        }
        Error::Plan {
            location: location.cloned(),
            message,
        }
    }
}

fn location_prefix(location: &Option<SourceLocation>) -> String {
    location
        .as_ref()
        .map(|l| format!("{l}: "))
        .unwrap_or_default()
}

fn is_infrastructure(error: &DataFusionError) -> bool {
    match error.find_root() {
        DataFusionError::ObjectStore(e) => {
            !matches!(e.as_ref(), object_store::Error::NotFound { .. })
        }
        DataFusionError::IoError(e) => e.kind() != std::io::ErrorKind::NotFound,
        DataFusionError::ResourcesExhausted(_) => true,
        _ => false,
    }
}

/// DataFusion's innermost message, without the context layers and prefixes that repeat it.
fn describe_datafusion_error(error: &DataFusionError) -> String {
    let message = error.find_root().message().trim().to_string();
    // The parquet crate's errors wrap each other with the same prefix.
    message.replace("Parquet error: Parquet error: ", "Parquet error: ")
}

impl From<fengine_catalog::Error> for Error {
    fn from(error: fengine_catalog::Error) -> Self {
        match error {
            fengine_catalog::Error::Conflict(message) => Error::Config(message),
            fengine_catalog::Error::Storage(message) => Error::Infrastructure(message),
        }
    }
}

impl From<fengine_online::Error> for Error {
    fn from(error: fengine_online::Error) -> Self {
        match error {
            fengine_online::Error::Invalid(message) => Error::Config(message),
            fengine_online::Error::NotFound(message) => Error::NotFound(message),
            fengine_online::Error::Storage(message)
            | fengine_online::Error::Superseded(message) => Error::Infrastructure(message),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
