use datafusion::error::DataFusionError;
use fengine_dialect::{ParseError, SourceLocation};

use crate::manifest::{GroupManifest, OnlineOutcome};

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
    /// Storage or a service failed in a way that passes (throttling, a timeout, a lock, a
    /// file gone while it was read); running again may succeed.
    #[error("{0}")]
    Infrastructure(String),
    /// The process was told to stop (SIGTERM, SIGINT); running again completes the work.
    #[error("{0}")]
    Interrupted(String),
    /// Storage or a service refused in a way that lasts until someone acts (access denied,
    /// a missing bucket, a corrupt or read-only file): running again will not help.
    #[error("{0}")]
    PermanentFault(String),
}

/// The kinds of failure a scheduler tells apart by exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    BadInput,
    CheckFailed,
    NotFound,
    Infrastructure,
    PermanentFault,
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Parse(_) | Error::Plan { .. } | Error::Config(_) => ErrorKind::BadInput,
            Error::Check(_) => ErrorKind::CheckFailed,
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::Infrastructure(_) | Error::Interrupted(_) => ErrorKind::Infrastructure,
            Error::PermanentFault(_) => ErrorKind::PermanentFault,
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

    /// Names the group and its expectation in the message of a pipeline error.
    pub(crate) fn in_expectation(self, group: &str, expectation: &str) -> Self {
        match self {
            Error::Plan { location, message } => Error::Plan {
                location,
                message: format!("expectation '{expectation}': {message}"),
            }
            .in_group(group),
            other => other,
        }
    }

    /// Says, of a failure of one group, what the run published before it: those groups
    /// stay published.
    pub(crate) fn after_publishing(self, published: &[GroupManifest]) -> Self {
        if published.is_empty() {
            return self;
        }
        let groups: Vec<String> = published
            .iter()
            .map(|g| {
                let online = match g.online {
                    OnlineOutcome::Loaded { .. } => "loaded online",
                    _ => "not loaded online",
                };
                format!("{} v{} ({}, {online})", g.group, g.version, g.partition)
            })
            .collect();
        let note = format!(
            ". This run published before it, and they stay published: {}",
            groups.join(", ")
        );
        self.with_message(|message| message + &note)
    }

    /// Says of a failure of the online step that the snapshot itself was published, and
    /// what the store serves meanwhile.
    pub(crate) fn after_registering(self, group: &str, snapshot: &str) -> Self {
        if matches!(self, Error::Plan { .. }) {
            return self;
        }
        self.with_message(|message| {
            format!(
                "feature group '{group}': snapshot {snapshot} is registered, but the online \
                 store was not brought up to date: {message}. The store serves the snapshot it \
                 held before; the next run of this group completes the load"
            )
        })
    }

    /// Says, of a failure to record a registered snapshot in the catalogue's history, that the
    /// snapshot is published all the same.
    pub(crate) fn after_registering_unrecorded(self, group: &str, snapshot: &str) -> Self {
        self.with_message(|message| {
            format!(
                "feature group '{group}': snapshot {snapshot} is registered, but the catalogue \
                 could not record it in the group's history and lineage: {message}. The online \
                 store serves the snapshot it held before; the next run of this group loads it"
            )
        })
    }

    /// The same error, its message rewritten (a parse error keeps its own: it quotes the
    /// line).
    fn with_message(self, rewrite: impl FnOnce(String) -> String) -> Self {
        match self {
            Error::Parse(_) => self,
            Error::Plan { location, message } => Error::Plan {
                location,
                message: rewrite(message),
            },
            Error::Config(m) => Error::Config(rewrite(m)),
            Error::Check(m) => Error::Check(rewrite(m)),
            Error::NotFound(m) => Error::NotFound(rewrite(m)),
            Error::Infrastructure(m) => Error::Infrastructure(rewrite(m)),
            Error::Interrupted(m) => Error::Interrupted(rewrite(m)),
            Error::PermanentFault(m) => Error::PermanentFault(rewrite(m)),
        }
    }

    /// An object store's failure, said as `what` failed: permanent when it will last
    /// (access denied, a missing bucket), otherwise a fault that may pass.
    pub(crate) fn object_store(what: impl std::fmt::Display, error: &object_store::Error) -> Self {
        let message = format!("{what}: {error}");
        match object_store_is_permanent(error) {
            true => Error::PermanentFault(message),
            false => Error::Infrastructure(message),
        }
    }

    /// A DataFusion error met while computing a planned group: the sources existed when
    /// planned, so a file or object gone now vanished mid-run (a fault that may pass, not
    /// the pipeline's), and storage faults are told apart as when planning.
    pub(crate) fn while_running(location: Option<&SourceLocation>, error: DataFusionError) -> Self {
        let at = location_prefix(&location.cloned());
        let message = describe_datafusion_error(&error);
        match storage_fault(&error) {
            Some(true) => Error::PermanentFault(format!("{at}{message}")),
            Some(false) => Error::Infrastructure(format!(
                "{at}{message}{}",
                if is_vanished(&error) {
                    " (a file was removed while the run read it)"
                } else {
                    ""
                }
            )),
            None => Error::from_datafusion(location, error),
        }
    }

    /// A DataFusion error met while planning or running the statement at `location`.
    /// Failures to reach storage are infrastructure faults; anything else is the pipeline's.
    pub(crate) fn from_datafusion(
        location: Option<&SourceLocation>,
        error: DataFusionError,
    ) -> Self {
        // A check of fengine's own, failed inside an operator or function (an encoder's).
        if let DataFusionError::External(inner) = error.find_root()
            && let Some(Error::Check(why)) = inner.downcast_ref::<Error>()
        {
            return Error::Check(format!("{}{why}", location_prefix(&location.cloned())));
        }
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

/// Whether an object store failure lasts until someone acts.
fn object_store_is_permanent(error: &object_store::Error) -> bool {
    let text = error.to_string();
    matches!(
        error,
        object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. }
            | object_store::Error::NotImplemented { .. }
    ) || text.contains("NoSuchBucket")
        || text.contains("AccessDenied")
        || text.contains("InvalidAccessKeyId")
        || text.contains("SignatureDoesNotMatch")
}

/// The storage failure inside a DataFusion error, however wrapped: `Some(permanent)`.
fn storage_fault(error: &DataFusionError) -> Option<bool> {
    if let Some(store) = find_source::<object_store::Error>(error) {
        return Some(object_store_is_permanent(store));
    }
    find_source::<std::io::Error>(error).map(|io| {
        matches!(
            io.kind(),
            std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
        )
    })
}

fn is_vanished(error: &DataFusionError) -> bool {
    find_source::<object_store::Error>(error)
        .is_some_and(|e| matches!(e, object_store::Error::NotFound { .. }))
        || find_source::<std::io::Error>(error)
            .is_some_and(|e| e.kind() == std::io::ErrorKind::NotFound)
}

/// The first error of type `T` in the chain of sources, through DataFusion's wrappers.
fn find_source<T: std::error::Error + 'static>(error: &DataFusionError) -> Option<&T> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(error) = current {
        if let Some(found) = error.downcast_ref::<T>() {
            return Some(found);
        }
        if let Some(DataFusionError::ObjectStore(store)) = error.downcast_ref::<DataFusionError>()
            && let Some(found) = (store.as_ref() as &dyn std::error::Error).downcast_ref::<T>()
        {
            return Some(found);
        }
        current = error.source();
    }
    None
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
            fengine_catalog::Error::Conflict(message)
            | fengine_catalog::Error::Invalid(message) => Error::Config(message),
            fengine_catalog::Error::Storage(message) => Error::Infrastructure(message),
            fengine_catalog::Error::Refused(message) => Error::PermanentFault(message),
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
            fengine_online::Error::Refused(message) => Error::PermanentFault(message),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
