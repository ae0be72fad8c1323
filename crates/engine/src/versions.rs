//! Which version of a feature group a reader gets when it names none: the highest one
//! registered in the catalog, for training sets and online reads alike, so that training
//! and serving never disagree on it.

use fengine_catalog::Table;

use crate::backends::Backends;
use crate::error::{Error, Result};

/// The catalog table of the group's highest registered version, and that version.
pub(crate) async fn newest_version(backends: &Backends, group: &str) -> Result<(u32, Table)> {
    let database = &backends.database;
    let tables = backends.catalog.list_tables(database).await?;
    tables
        .into_iter()
        .filter_map(|table| Some((version_of(&table, group)?, table)))
        .max_by_key(|(version, _)| *version)
        .ok_or_else(|| {
            Error::NotFound(format!(
                "feature group '{group}' has no published version in catalog database \
                 '{database}': run its pipeline first"
            ))
        })
}

/// The version of `group` that `table` holds, if it is one of the group's.
fn version_of(table: &Table, group: &str) -> Option<u32> {
    if table.parameters.get("fengine.group").map(String::as_str) != Some(group) {
        return None;
    }
    let version: u32 = table.parameters.get("fengine.version")?.parse().ok()?;
    (table.name == format!("{group}_v{version}")).then_some(version)
}
