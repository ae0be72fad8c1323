//! The run manifest: what a run read, wrote, registered and loaded, for the scheduler that
//! started it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize)]
pub struct RunManifest {
    /// Names the run in its files, the catalog and every log line (`--run-id`).
    pub run_id: String,
    /// The scheduler's job the run was part of (a SageMaker Processing job's name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_name: Option<String>,
    pub pipeline: String,
    pub as_of: DateTime<Utc>,
    pub params: BTreeMap<String, String>,
    pub warehouse: String,
    pub groups: Vec<GroupManifest>,
    /// Groups `--if-changed` did not compute: nothing they read changed since their last
    /// run.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unchanged: Vec<UnchangedGroup>,
    /// The models registered, as `<model> v<n>`.
    pub models: Vec<String>,
    pub elapsed_ms: u64,
}

/// A group whose last run's snapshot stands: what it reads is as that run found it.
#[derive(Debug, Clone, Serialize)]
pub struct UnchangedGroup {
    pub group: String,
    pub version: u32,
    /// The run that registered the snapshot that stands, and its as-of.
    pub run_id: String,
    pub as_of: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GroupManifest {
    pub group: String,
    pub version: u32,
    /// The run that wrote the snapshot (a backfill's names the as-of too).
    pub run_id: String,
    /// `<database>.<table>` in the catalog.
    pub table: String,
    pub rows_written: u64,
    pub snapshot_location: String,
    /// `snapshot_ts=<as-of>`
    pub partition: String,
    /// Whether an earlier snapshot of the same as-of was replaced.
    pub replaced: bool,
    /// An earlier attempt of this run (the same run id and as-of: a scheduler's retry)
    /// registered the snapshot: it was not computed again.
    pub already_registered: bool,
    pub online: OnlineOutcome,
    /// The outcome of each of the group's expectations on this snapshot.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub expectations: Vec<ExpectationOutcome>,
    pub timings_ms: Timings,
}

/// What an expectation (`EXPECT`) found of a snapshot. Kept with the snapshot in the
/// catalog, and in the run manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpectationOutcome {
    pub name: String,
    /// The rule as the pipeline writes it.
    pub rule: String,
    pub severity: Severity,
    pub passed: bool,
    /// What was measured, for a person: `12 of 1000 rows checked fail (1.2%)`.
    pub observed: String,
    /// Of a rule checked row by row: the rows it was true or false of, and the false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checked_rows: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_rows: Option<u64>,
    /// The first few failing rows: key, event time and the columns the rule reads.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failing_rows_sample: Vec<String>,
}

/// What a failed expectation does to its snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Stops it from being published: the default.
    Block,
    /// Reported; the snapshot is published all the same.
    Warn,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum OnlineOutcome {
    /// The store now holds exactly this snapshot's latest rows: its own, or a newer
    /// registered one whose load had not completed.
    Loaded {
        rows: u64,
        /// Rows of keys the snapshot does not have, removed.
        removed: u64,
        as_of: DateTime<Utc>,
        run_id: String,
        /// A load begun earlier and never completed was replaced.
        completed_unfinished: bool,
    },
    /// The store holds a newer snapshot; loading this one would put older values over newer.
    SkippedNewer { loaded_as_of: DateTime<Utc> },
    /// A later run of the same as-of registered its snapshot, and the store holds it.
    Superseded {
        loaded_as_of: DateTime<Utc>,
        run_id: String,
    },
    /// The store held the newest registered snapshot already (a resumed backfill whose
    /// load had completed).
    UpToDate {
        loaded_as_of: DateTime<Utc>,
        run_id: String,
    },
    /// A backfill loads only its newest as-of.
    NotNewestOfBackfill,
}

impl OnlineOutcome {
    /// The outcome's name, as the manifest's `status` says it.
    pub fn status(&self) -> &'static str {
        match self {
            OnlineOutcome::Loaded { .. } => "loaded",
            OnlineOutcome::SkippedNewer { .. } => "skipped_newer",
            OnlineOutcome::Superseded { .. } => "superseded",
            OnlineOutcome::UpToDate { .. } => "up_to_date",
            OnlineOutcome::NotNewestOfBackfill => "not_newest_of_backfill",
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Timings {
    pub compute_and_write: u64,
    pub check: u64,
    pub register: u64,
    pub online: u64,
}
