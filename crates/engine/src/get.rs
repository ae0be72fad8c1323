//! Reading a feature group's online row, as a model would.

use chrono::{SecondsFormat, Utc};
use fengine_online::OnlineRow;

use crate::backends::Backends;
use crate::error::{Error, Result};
use crate::published;

/// The online row of `key`, unless missing or past its time to live.
pub async fn get(
    backends: &Backends,
    group: &str,
    version: Option<u32>,
    key: &[String],
) -> Result<OnlineRow> {
    let describe = || {
        format!(
            "feature group '{group}' has no online value for key ({})",
            key.join(", ")
        )
    };
    let version = match version {
        Some(version) => version,
        None => published::newest_version(backends, group).await?.0,
    };
    match backends.online.get(group, Some(version), key).await? {
        Some(row) if row.is_expired(Utc::now()) => Err(Error::NotFound(format!(
            "{}: its value of {} is past the group's ttl",
            describe(),
            row.event_time.to_rfc3339_opts(SecondsFormat::AutoSi, true)
        ))),
        Some(row) => Ok(row),
        None => Err(Error::NotFound(describe())),
    }
}
