//! What a run is asked to do, and the as-of times it accepts.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, SubsecRound, Timelike, Utc};

use crate::backends::Backends;
use crate::error::{Error, Result};

/// What a run is asked to do.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The snapshot time, in whole seconds: `as_of()` in the pipeline.
    pub as_of: DateTime<Utc>,
    /// `param('name')` values, as given on the command line.
    pub params: BTreeMap<String, String>,
    /// Load the online store even if it holds a newer as-of.
    pub force: bool,
    /// Names this run's files, apart from other runs of the same as-of; a retry of a run
    /// passes the same id ([`new_run_id`] makes one).
    pub run_id: String,
    /// The scheduler's job the run is part of (a SageMaker Processing job's name), for the
    /// manifest.
    pub job_name: Option<String>,
    /// Load the online store; a backfill loads only its newest as-of.
    pub load_online: bool,
    /// The snapshot to read of a `features.` source, by group (`--snapshot <group>=<as-of>`);
    /// others read the newest at or before the as-of.
    pub snapshots: BTreeMap<String, DateTime<Utc>>,
    /// Compute only the groups an input of which changed since their last run
    /// (`--if-changed`).
    pub if_changed: bool,
}

impl RunOptions {
    pub fn new(as_of: DateTime<Utc>) -> Self {
        RunOptions {
            as_of,
            params: BTreeMap::new(),
            force: false,
            load_online: true,
            snapshots: BTreeMap::new(),
            run_id: new_run_id(),
            job_name: None,
            if_changed: false,
        }
    }

    pub fn now() -> Self {
        RunOptions::new(Utc::now().trunc_subsecs(0))
    }
}

/// A run id no other run has: 12 hexadecimal digits.
pub fn new_run_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_string()
}

/// Refuses a run id that cannot name a folder and a lease (`run-<id>/`) on every store.
pub fn check_run_id(run_id: &str) -> Result<()> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if (1..=128).contains(&run_id.len()) && run_id.chars().all(allowed) && !run_id.starts_with('.')
    {
        return Ok(());
    }
    Err(Error::Config(format!(
        "run id '{run_id}' may hold 1 to 128 letters, digits, '-', '_' and '.', not starting \
         with '.' (a Step Functions execution name or a SageMaker job name fits)"
    )))
}

/// The partition value of a snapshot: its as-of as `YYYYMMDDTHHMMSSZ`.
pub fn snapshot_name(as_of: DateTime<Utc>) -> String {
    as_of.format("%Y%m%dT%H%M%SZ").to_string()
}

/// Refuses a time with a fraction of a second: snapshots are named, registered and
/// computed at whole seconds, so an as-of with a fraction would be computed at one time and
/// registered at another.
pub(crate) fn check_whole_seconds(what: &str, time: DateTime<Utc>) -> Result<()> {
    if time.nanosecond() == 0 {
        return Ok(());
    }
    if time.nanosecond() >= 1_000_000_000 {
        return Err(Error::Config(format!(
            "{what} {} is a leap second, which Unix time (and so every timestamp fengine \
             computes with) does not have: use {} or the second after",
            time.to_rfc3339_opts(SecondsFormat::Secs, true),
            time.with_nanosecond(0)
                .unwrap_or(time)
                .to_rfc3339_opts(SecondsFormat::Secs, true)
        )));
    }
    Err(Error::Config(format!(
        "{what} {} has a fraction of a second; snapshots are named by whole seconds",
        time.to_rfc3339()
    )))
}

/// How far ahead of now an as-of may be without `--force` unless the profile says: a
/// snapshot of the far future would stand as the newest against every later run's online
/// load.
pub const DEFAULT_AS_OF_HORIZON: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Refuses an as-of past the backends' horizon unless forced.
pub(crate) fn check_horizon(
    what: &str,
    time: DateTime<Utc>,
    force: bool,
    backends: &Backends,
) -> Result<()> {
    let horizon =
        chrono::Duration::from_std(backends.as_of_horizon).unwrap_or(chrono::Duration::MAX);
    if force || time <= Utc::now() + horizon {
        return Ok(());
    }
    let hours = backends.as_of_horizon.as_secs() / 3600;
    Err(Error::Config(format!(
        "{what} {} is more than {hours} hour{} ahead of now (the profile's as_of_horizon_hours): \
         its snapshot would be the newest until then, and every later run's online load would \
         give way to it. Pass --force if the future is meant",
        time.to_rfc3339_opts(SecondsFormat::Secs, true),
        if hours == 1 { "" } else { "s" }
    )))
}
