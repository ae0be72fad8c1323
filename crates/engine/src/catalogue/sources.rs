//! Published groups as sources: a pipeline reads `features.<group>` (the newest version not
//! retired) or `features.<group>_v<n>`, at the newest snapshot registered at or before the
//! run's as-of — so that a backfill reads what was known at each as-of — or at the as-of
//! `--snapshot <group>=<as-of>` names (time travel). Snapshots a rollback set aside are
//! passed over unless named.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use datafusion::catalog::MemorySchemaProvider;
use datafusion::common::TableReference;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::execution::context::SessionContext;
use datafusion::sql::resolve::resolve_table_references;
use datafusion::sql::sqlparser::ast::Statement as SqlStatement;
use fengine_dialect::{DataFusionStatement, FitOn, Pipeline, SourceLocation, Statement};

use crate::backends::Backends;
use crate::error::{Error, Result};
use crate::published::{self, GroupVersion, format_time, pick_version, snapshots};

/// The schema of published groups in a pipeline's SQL.
pub(crate) const FEATURES_SCHEMA: &str = "features";

/// A `features.` table a pipeline reads, and where.
#[derive(Debug, Clone)]
pub(crate) struct FeatureReference {
    /// As written after `features.`: `<group>` or `<group>_v<n>`.
    pub table: String,
    pub location: SourceLocation,
}

/// A `features.` table resolved to a registered snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FeatureSource {
    pub table: String,
    pub group: String,
    pub version: u32,
    pub as_of: DateTime<Utc>,
    pub location: String,
}

/// Every `features.<table>` the pipeline's statements read, in order of appearance.
pub(crate) fn feature_references(pipeline: &Pipeline) -> Result<Vec<FeatureReference>> {
    let mut found: Vec<FeatureReference> = Vec::new();
    for statement in &pipeline.statements {
        let sql = match &statement.statement {
            Statement::Sql(sql) => sql.as_ref().clone(),
            Statement::CreateFeatureGroup(group) => {
                DataFusionStatement::Statement(Box::new(SqlStatement::Query(group.query.clone())))
            }
            Statement::CreateEncoder(encoder) => match &encoder.fit_on {
                FitOn::Query(query) => {
                    DataFusionStatement::Statement(Box::new(SqlStatement::Query(query.clone())))
                }
                FitOn::Files(_) => continue,
            },
            Statement::CreateModel(_) | Statement::Include(_) => continue,
        };
        let (tables, _) = resolve_table_references(&sql, true)
            .map_err(|e| Error::from_datafusion(Some(&statement.location), e))?;
        for table in tables {
            if let TableReference::Partial { schema, table } = &table
                && schema.as_ref() == FEATURES_SCHEMA
                && !found.iter().any(|f| f.table == table.as_ref())
            {
                found.push(FeatureReference {
                    table: table.to_string(),
                    location: statement.location.clone(),
                });
            }
        }
    }
    Ok(found)
}

/// The group and version a `features.` table names: `<group>` is the group's newest
/// version not retired, `<group>_v<n>` its version n (a group whose own name ends so is
/// taken by its name first).
fn resolve_table(
    table: &str,
    groups: &BTreeMap<String, Vec<GroupVersion>>,
) -> Result<GroupVersion> {
    if let Some(versions) = groups.get(table) {
        return pick_version(table, versions.clone(), None);
    }
    if let Some((group, number)) = table.rsplit_once("_v")
        && let Ok(version) = number.parse::<u32>()
        && let Some(versions) = groups.get(group)
    {
        return pick_version(group, versions.clone(), Some(version));
    }
    let known: Vec<&str> = groups.keys().map(String::as_str).collect();
    Err(Error::NotFound(format!(
        "features.{table} names no published feature group{}",
        match known.len() {
            0 => String::new(),
            _ => format!(" (published: {})", known.join(", ")),
        }
    )))
}

/// Whether the `features.` table names `group` (at any version).
pub(crate) fn names_group(table: &str, group: &str) -> bool {
    table == group
        || table
            .strip_prefix(group)
            .and_then(|rest| rest.strip_prefix("_v"))
            .is_some_and(|version| version.parse::<u32>().is_ok())
}

/// Resolves the pipeline's `features.` tables and registers each in `context` as its
/// snapshot's files. `defined` are the groups the pipeline defines, which it may not read
/// as `features.` (this run has not published them when it plans).
pub(crate) async fn register_feature_sources(
    context: &SessionContext,
    pipeline: &Pipeline,
    defined: &[String],
    as_of: DateTime<Utc>,
    chosen: &BTreeMap<String, DateTime<Utc>>,
    backends: &Backends,
) -> Result<Vec<FeatureSource>> {
    let references = feature_references(pipeline)?;
    if references.is_empty() {
        return Ok(Vec::new());
    }
    let groups = published::all_groups(backends).await?;
    let schema = Arc::new(MemorySchemaProvider::new());
    context
        .catalog("datafusion")
        .expect("the default catalog exists")
        .register_schema(FEATURES_SCHEMA, schema)
        .map_err(|e| Error::from_datafusion(None, e))?;
    let mut resolved = Vec::new();
    for reference in &references {
        let at = |message: String| Error::plan(&reference.location, message);
        if defined.iter().any(|g| names_group(&reference.table, g)) {
            return Err(at(format!(
                "features.{} is a group this pipeline defines, which it cannot read as a \
                 published source (this run publishes it after planning): read its query as a \
                 view, or move the reader to another file and run both (fengine run {} \
                 <reader>.sql)",
                reference.table,
                pipeline.path.display()
            )));
        }
        let version = resolve_table(&reference.table, &groups).map_err(|e| at(e.to_string()))?;
        if let Some(retired) = version.retired() {
            return Err(at(format!(
                "features.{} reads '{}' version {}, which was retired at {}: read a version \
                 that is not retired",
                reference.table, version.group, version.version, retired.at
            )));
        }
        let source = pick_snapshot(&reference.table, &version, as_of, chosen, backends)
            .await
            .map_err(|e| match e {
                Error::NotFound(message) => at(message),
                other => other,
            })?;
        register_snapshot(context, &source).await?;
        resolved.push(source);
    }
    Ok(resolved)
}

/// The snapshot a run at `as_of` reads of a group version.
async fn pick_snapshot(
    table: &str,
    version: &GroupVersion,
    as_of: DateTime<Utc>,
    chosen: &BTreeMap<String, DateTime<Utc>>,
    backends: &Backends,
) -> Result<FeatureSource> {
    let registered = snapshots(backends, version).await?;
    let wanted = chosen.get(&version.group).or_else(|| chosen.get(table));
    let picked = match wanted {
        Some(wanted) => registered
            .iter()
            .find(|(s, _)| s.as_of == *wanted)
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "--snapshot {}={}: '{}' v{} has no snapshot at that as-of",
                    version.group,
                    format_time(*wanted),
                    version.group,
                    version.version
                ))
            })?,
        None => registered
            .iter()
            .rev()
            .find(|(s, _)| s.as_of <= as_of && s.set_aside.is_none())
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "features.{table}: '{}' v{} has no snapshot at or before the run's as-of \
                     {}: run its pipeline at that as-of first, or choose one with --snapshot \
                     {}=<as-of>",
                    version.group,
                    version.version,
                    format_time(as_of),
                    version.group
                ))
            })?,
    };
    Ok(FeatureSource {
        table: table.to_string(),
        group: version.group.clone(),
        version: version.version,
        as_of: picked.0.as_of,
        location: picked.0.location.clone(),
    })
}

async fn register_snapshot(context: &SessionContext, source: &FeatureSource) -> Result<()> {
    let failed = |e| Error::from_datafusion(None, e);
    let url = ListingTableUrl::parse(&source.location).map_err(failed)?;
    let options =
        ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
    let schema = options
        .infer_schema(&context.state(), &url)
        .await
        .map_err(failed)?;
    let config = ListingTableConfig::new(url)
        .with_listing_options(options)
        .with_schema(schema);
    let table = ListingTable::try_new(config).map_err(failed)?;
    context
        .register_table(
            TableReference::partial(FEATURES_SCHEMA, source.table.as_str()),
            Arc::new(table),
        )
        .map_err(failed)?;
    Ok(())
}
