//! Point-in-time training sets: each spine row gets, per requested feature group, the values
//! of the latest row of its key known at the spine row's time, read from every registered
//! snapshot of the group's version.
//!
//! The plan: the spine, numbered in its own order, is sorted by each group's key and time
//! and merged with that group's sorted feature rows by [`AsOfJoinExec`]; groups chain, each
//! join's output being the next one's spine; a last sort by row number restores the spine's
//! order. DataFusion does the sorting, spilling when the memory pool is full.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, SecondsFormat, Utc};
use datafusion::dataframe::DataFrame;
use datafusion::execution::context::SessionContext;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::functions_window::expr_fn::row_number;
use datafusion::logical_expr::{Expr, cast, ident, lit, when};
use datafusion::physical_plan::{ExecutionPlan, execute_stream};
use datafusion::prelude::ParquetReadOptions;
use fengine_catalog::{Column, Partition, Table};
use fengine_dialect::Statement;
use fengine_operators::asof::{AsOfJoinColumns, AsOfJoinExec};
use fengine_operators::timestamps;
use futures::StreamExt;
use object_store::path::Path as ObjectPath;
use serde::Serialize;
use url::Url;

use crate::backends::{Backends, session_config};
use crate::catalogue::{self, UsedFeature};
use crate::encoders::{EncoderDetail, encode_batch, show_encoder};
use crate::error::{Error, Result};
use crate::hive::hive_type;
use crate::options::snapshot_name;
use crate::parquet_file::{self, ParquetFile};
use crate::plan::{is_portable_name, parse_ttl, run_definition};

const ROW: &str = "__fengine_spine_row";
const TIME: &str = "__fengine_spine_time";
const VISIBLE_AT: &str = "__fengine_visible_at";
const SNAPSHOT_AS_OF: &str = "__fengine_snapshot_as_of";
const HIDDEN: &str = "__fengine_";

/// What to build a training set from, and where to write it.
#[derive(Debug, Clone)]
pub struct TrainingSetRequest {
    pub spine: SpineSource,
    /// The spine's time column: a timestamp, a date or a string that casts to a timestamp.
    pub timestamp: String,
    pub features: Vec<FeatureRequest>,
    /// A `.parquet` file, or a folder that gets `part-00000.parquet`; local or a URL.
    pub out: String,
    /// Count a feature row only once its snapshot was written (its as-of at or before the
    /// spine time), so later corrections and backfills never leak into older labels.
    pub as_written: bool,
    /// Registers the training set in the catalog under this table name.
    pub register: Option<String>,
    /// Records the model it is built for, `(name, version)`, as using the requested features.
    pub model: Option<(String, Option<u32>)>,
    /// Writes the columns an encoder transforms encoded: `(name, version)`, the newest
    /// version without one.
    pub encode: Option<(String, Option<u32>)>,
}

/// Where the spine's rows come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpineSource {
    /// A Parquet file or folder, local or a URL.
    Parquet(String),
    /// A catalogued table, `glue.<database>.<table>`.
    Table(String),
    /// A SQL file whose last statement is the spine's query; statements before it may
    /// define sources and views as in a pipeline.
    QueryFile(PathBuf),
}

impl FromStr for SpineSource {
    type Err = std::convert::Infallible;

    fn from_str(text: &str) -> std::result::Result<Self, Self::Err> {
        Ok(if text.ends_with(".sql") {
            SpineSource::QueryFile(PathBuf::from(text))
        } else if !text.contains('/') && text.split('.').count() == 3 && !text.ends_with(".parquet")
        {
            SpineSource::Table(text.to_string())
        } else {
            SpineSource::Parquet(text.to_string())
        })
    }
}

impl std::fmt::Display for SpineSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SpineSource::Parquet(path) | SpineSource::Table(path) => f.write_str(path),
            SpineSource::QueryFile(path) => write!(f, "{}", path.display()),
        }
    }
}

/// `<group>[@<version>][.<feature>,...]`: a group's features (all without a list), of a
/// version (the newest without one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureRequest {
    pub group: String,
    pub version: Option<u32>,
    pub features: Option<Vec<String>>,
}

impl FromStr for FeatureRequest {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Self, Self::Err> {
        let (group, features) = match text.split_once('.') {
            Some((group, list)) => {
                let features: Vec<String> = list.split(',').map(|f| f.trim().to_string()).collect();
                if features.iter().any(String::is_empty) {
                    return Err(format!("'{text}' has an empty feature name"));
                }
                (group, Some(features))
            }
            None => (text, None),
        };
        let (group, version) = match group.split_once('@') {
            Some((group, version)) => {
                let version = version.trim_start_matches('v').parse().map_err(|_| {
                    format!("'{text}': the version after '@' must be a number, such as @2")
                })?;
                (group, Some(version))
            }
            None => (group, None),
        };
        if group.is_empty() {
            return Err(format!(
                "'{text}' names no feature group; give <group>[@<version>][.<feature>,...]"
            ));
        }
        Ok(FeatureRequest {
            group: group.to_string(),
            version,
            features,
        })
    }
}

/// What a training set was built from, for the data scientist and the catalog.
#[derive(Debug, Clone, Serialize)]
pub struct TrainingSetManifest {
    pub out: String,
    pub rows: u64,
    pub spine: String,
    pub timestamp: String,
    pub as_written: bool,
    pub groups: Vec<TrainingSetGroup>,
    /// What the sorts wrote to disk to stay within the memory limit.
    pub spilled_bytes: u64,
    /// `<database>.<table>` when registered.
    pub registered: Option<String>,
    /// `<model> v<n>`, when recorded for a model.
    pub model: Option<String>,
    /// `<encoder> v<n>`, when its columns were written encoded.
    pub encoder: Option<String>,
    pub elapsed_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct TrainingSetGroup {
    pub group: String,
    pub version: u32,
    pub table: String,
    /// The group's features, as `(feature, column in the training set)`.
    pub features: Vec<(String, String)>,
    pub event_time_column: String,
    /// The as-ofs of the snapshots read.
    pub snapshots: Vec<String>,
    /// Spine rows that found a value.
    pub matched_rows: u64,
}

/// A requested group, resolved against the catalog.
struct ResolvedGroup {
    request: FeatureRequest,
    table: Table,
    version: u32,
    keys: Vec<String>,
    event_time: String,
    features: Vec<String>,
    ttl_nanos: Option<i64>,
    snapshots: Vec<Partition>,
}

/// Builds the training set, writes it as one Parquet file and optionally registers it.
pub async fn build_training_set(
    request: &TrainingSetRequest,
    backends: &Backends,
) -> Result<TrainingSetManifest> {
    let started = Instant::now();
    if request.features.is_empty() {
        return Err(Error::Config(
            "a training set needs at least one --features <group>".to_string(),
        ));
    }
    let out = OutputLocation::parse(&request.out)?;
    if let Some((model, _)) = &request.model
        && !is_portable_name(model)
    {
        return Err(Error::Config(format!(
            "model name '{model}' must start with a lower-case letter and hold only lower-case \
             letters, digits and underscores"
        )));
    }
    if let Some(name) = &request.register {
        check_table_name(name)?;
        if !out.is_folder {
            return Err(Error::Config(format!(
                "--register needs --out to be a folder (a catalog table's location), not the \
                 file '{}'",
                request.out
            )));
        }
    }
    let runtime = backends.runtime()?;
    let context = backends.session_context_on(runtime.clone(), session_config()?)?;
    // One partition reads the spine in its own order, so that row numbers follow it; its
    // strings stay of the spine's types (DataFusion would read Parquet strings as views).
    let mut spine_config = session_config()?.with_target_partitions(1);
    spine_config
        .options_mut()
        .execution
        .parquet
        .schema_force_view_types = false;
    let spine_context = backends.session_context_on(runtime, spine_config)?;

    let spine = read_spine(&spine_context, &request.spine).await?;
    let spine_columns: Vec<String> = spine
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let mut groups = Vec::new();
    for feature_request in &request.features {
        if groups
            .iter()
            .any(|g: &ResolvedGroup| g.request.group == feature_request.group)
        {
            return Err(Error::Config(format!(
                "--features names group '{}' twice; list its features once, comma-separated",
                feature_request.group
            )));
        }
        groups.push(resolve_group(feature_request, backends).await?);
    }
    let names = output_names(&spine_columns, &groups)?;
    let spine = prepare_spine(spine, request, &groups).await?;

    let mut plan = spine
        .create_physical_plan()
        .await
        .map_err(|e| Error::from_datafusion(None, e))?;
    let partitions = context.state().config().target_partitions();
    // The joins, kept to read how many spine rows each matched once the set is written.
    let mut joins: Vec<Arc<AsOfJoinExec>> = Vec::new();
    for (index, (group, outputs)) in groups.iter().zip(&names).enumerate() {
        let features = read_features(&context, group, request.as_written).await?;
        let features = features
            .create_physical_plan()
            .await
            .map_err(|e| Error::from_datafusion(None, e))?;
        let mut join_outputs: Vec<(String, String)> = group
            .features
            .iter()
            .cloned()
            .zip(outputs.iter().cloned())
            .collect();
        join_outputs.push((group.event_time.clone(), event_time_name(group)));
        let join = AsOfJoinExec::try_new(
            plan,
            features,
            AsOfJoinColumns {
                spine_keys: (0..group.keys.len()).map(|k| key_name(index, k)).collect(),
                spine_time: TIME.to_string(),
                feature_keys: group.keys.clone(),
                visible_at: if request.as_written {
                    VISIBLE_AT.to_string()
                } else {
                    group.event_time.clone()
                },
                event_time: group.event_time.clone(),
                // One snapshot: no ties between snapshots to break, so no column to carry.
                snapshot_as_of: if group.snapshots.len() > 1 {
                    SNAPSHOT_AS_OF.to_string()
                } else {
                    group.event_time.clone()
                },
                outputs: join_outputs,
                ttl_nanos: group.ttl_nanos,
            },
            partitions,
        )
        .map_err(|e| Error::from_datafusion(None, e))?;
        let join = Arc::new(join);
        joins.push(join.clone());
        plan = join;
    }
    let plan = in_spine_order(plan)?;
    let encoder = match &request.encode {
        Some((name, version)) => Some(show_encoder(backends, name, *version).await?.ok_or_else(
            || {
                Error::NotFound(format!(
                    "--encode {name}: no encoder '{name}' is fitted; fit it with `fengine \
                         encoder fit <pipeline.sql>`"
                ))
            },
        )?),
        None => None,
    };
    let (rows, schema) = write_parquet(&context, plan.clone(), &out, encoder.as_ref()).await?;

    let groups: Vec<TrainingSetGroup> = groups
        .iter()
        .zip(names)
        .zip(joins)
        .map(|((group, names), join)| TrainingSetGroup {
            group: group.request.group.clone(),
            version: group.version,
            table: format!("{}.{}", group.table.database, group.table.name),
            features: group.features.iter().cloned().zip(names).collect(),
            event_time_column: event_time_name(group),
            snapshots: group
                .snapshots
                .iter()
                .map(|p| {
                    p.parameters
                        .get("fengine.as_of")
                        .cloned()
                        .unwrap_or_default()
                })
                .collect(),
            matched_rows: join.matched_rows() as u64,
        })
        .collect();
    let mut manifest = TrainingSetManifest {
        out: out.file.to_string(),
        rows,
        spine: request.spine.to_string(),
        timestamp: request.timestamp.clone(),
        as_written: request.as_written,
        groups,
        spilled_bytes: spilled_bytes(plan.as_ref()),
        registered: None,
        model: None,
        encoder: encoder.map(|e| format!("{} v{}", e.encoder, e.version)),
        elapsed_ms: 0,
    };
    if let Some(name) = &request.register {
        manifest.registered = Some(register(name, &out, &schema, &manifest, backends).await?);
    }
    if let Some((model, version)) = &request.model {
        let used = manifest
            .groups
            .iter()
            .flat_map(|g| {
                g.features.iter().map(|(feature, _)| UsedFeature {
                    group: g.group.clone(),
                    version: g.version,
                    feature: feature.clone(),
                })
            })
            .collect();
        let origin = format!("training set {}", manifest.out);
        let recorded =
            catalogue::record_training_set_model(backends, model, *version, used, origin).await?;
        manifest.model = Some(format!("{} v{}", recorded.model, recorded.version));
    }
    manifest.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(manifest)
}

async fn read_spine(context: &SessionContext, source: &SpineSource) -> Result<DataFrame> {
    let frame = match source {
        SpineSource::Parquet(path) => {
            let path = absolute_location(path);
            context
                .read_parquet(path.as_str(), ParquetReadOptions::default())
                .await
        }
        SpineSource::Table(name) => context.table(name.as_str()).await,
        SpineSource::QueryFile(path) => return read_spine_query(context, path).await,
    };
    frame.map_err(|e| {
        let error = Error::from_datafusion(None, e);
        match error {
            Error::Plan { message, .. } => {
                Error::Config(format!("cannot read the spine '{source}': {message}"))
            }
            other => other,
        }
    })
}

async fn read_spine_query(context: &SessionContext, path: &Path) -> Result<DataFrame> {
    let pipeline = fengine_dialect::load_pipeline(path)?;
    let Some((last, definitions)) = pipeline.statements.split_last() else {
        return Err(Error::Config(format!(
            "the spine query file '{}' holds no statement",
            path.display()
        )));
    };
    for statement in definitions {
        let Statement::Sql(sql) = &statement.statement else {
            return Err(Error::plan(
                &statement.location,
                "a spine query file defines sources and views, then ends with one query",
            ));
        };
        run_definition(context, sql, &statement.location, None).await?;
    }
    let not_a_query = || {
        Error::plan(
            &last.location,
            "the last statement of a spine query file must be a query (SELECT ...)",
        )
    };
    let Statement::Sql(sql) = &last.statement else {
        return Err(not_a_query());
    };
    let fengine_dialect::DataFusionStatement::Statement(inner) = sql.as_ref() else {
        return Err(not_a_query());
    };
    if !matches!(
        inner.as_ref(),
        datafusion::sql::sqlparser::ast::Statement::Query(_)
    ) {
        return Err(not_a_query());
    }
    let plan = context
        .state()
        .statement_to_plan(fengine_dialect::DataFusionStatement::Statement(
            inner.clone(),
        ))
        .await
        .map_err(|e| Error::from_datafusion(Some(&last.location), e))?;
    context
        .execute_logical_plan(plan)
        .await
        .map_err(|e| Error::from_datafusion(Some(&last.location), e))
}

/// Finds the group's catalog table (the newest version unless one is asked for) and its
/// snapshots, and checks the requested features.
async fn resolve_group(request: &FeatureRequest, backends: &Backends) -> Result<ResolvedGroup> {
    let group = &request.group;
    let database = &backends.database;
    let table_name = |version: u32| format!("{group}_v{version}");
    let table = match request.version {
        Some(version) => backends
            .catalog
            .get_table(database, &table_name(version))
            .await?
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "feature group '{group}' version {version} is not in catalog database \
                     '{database}' (no table '{}'): run its pipeline first",
                    table_name(version)
                ))
            })?,
        None => crate::published::newest_version(backends, group).await?.1,
    };
    let parameter = |name: &str| {
        table.parameters.get(name).cloned().ok_or_else(|| {
            Error::Config(format!(
                "catalog table '{}.{}' is not a fengine feature group (no '{name}' parameter)",
                table.database, table.name
            ))
        })
    };
    let version: u32 = parameter("fengine.version")?.parse().map_err(|_| {
        Error::Config(format!(
            "catalog table '{}' has a bad fengine.version",
            table.name
        ))
    })?;
    let keys: Vec<String> = parameter("fengine.key")?
        .split(',')
        .map(str::to_string)
        .collect();
    let event_time = parameter("fengine.event_time")?;
    let ttl_nanos = match table.parameters.get("fengine.online_ttl") {
        Some(ttl) => Some(
            parse_ttl(ttl)
                .map_err(Error::Config)?
                .as_nanos()
                .try_into()
                .unwrap_or(i64::MAX),
        ),
        None => None,
    };
    let available: Vec<String> = table
        .columns
        .iter()
        .map(|c| c.name.clone())
        .filter(|name| !keys.contains(name) && *name != event_time)
        .collect();
    let features = match &request.features {
        None => available.clone(),
        Some(asked) => {
            for feature in asked {
                if !available.contains(feature) {
                    return Err(Error::Config(format!(
                        "feature group '{group}' version {version} has no feature '{feature}' \
                         (features: {})",
                        available.join(", ")
                    )));
                }
            }
            asked.clone()
        }
    };
    let snapshots = backends
        .catalog
        .list_partitions(&table.database, &table.name)
        .await?;
    if snapshots.is_empty() {
        return Err(Error::NotFound(format!(
            "feature group '{group}' version {version} has no registered snapshot: run its \
             pipeline first"
        )));
    }
    Ok(ResolvedGroup {
        request: request.clone(),
        table,
        version,
        keys,
        event_time,
        features,
        ttl_nanos,
        snapshots,
    })
}

/// Each group's feature columns as named in the training set: as in the group, prefixed
/// `<group>__` when the spine or another group has the same name.
fn output_names(spine: &[String], groups: &[ResolvedGroup]) -> Result<Vec<Vec<String>>> {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for name in spine {
        *seen.entry(name).or_default() += 1;
        if name.starts_with(HIDDEN) {
            return Err(Error::Config(format!(
                "spine column '{name}': names starting with '{HIDDEN}' are fengine's own"
            )));
        }
    }
    for group in groups {
        for feature in &group.features {
            *seen.entry(feature).or_default() += 1;
        }
    }
    let names: Vec<Vec<String>> = groups
        .iter()
        .map(|group| {
            group
                .features
                .iter()
                .map(|f| {
                    if seen[f.as_str()] > 1 {
                        format!("{}__{f}", group.request.group)
                    } else {
                        f.clone()
                    }
                })
                .collect()
        })
        .collect();
    let mut all: BTreeSet<&str> = spine.iter().map(String::as_str).collect();
    let event_times: Vec<String> = groups.iter().map(event_time_name).collect();
    for name in names.iter().flatten().chain(&event_times) {
        if !all.insert(name) {
            return Err(Error::Config(format!(
                "the training set would have two columns named '{name}'; rename the spine \
                 column"
            )));
        }
    }
    Ok(names)
}

fn event_time_name(group: &ResolvedGroup) -> String {
    format!("{}__event_time", group.request.group)
}

fn key_name(group: usize, key: usize) -> String {
    format!("{HIDDEN}key_{group}_{key}")
}

/// The spine with its row number, its time as a timestamp and each group's key columns
/// cast to the group's key types.
async fn prepare_spine(
    spine: DataFrame,
    request: &TrainingSetRequest,
    groups: &[ResolvedGroup],
) -> Result<DataFrame> {
    let schema = spine.schema().as_arrow().clone();
    let columns: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let time = schema.field_with_name(&request.timestamp).map_err(|_| {
        Error::Config(format!(
            "the spine has no column '{}' (--timestamp); its columns: {}",
            request.timestamp,
            columns.join(", ")
        ))
    })?;
    let time_expr = match time.data_type() {
        DataType::Timestamp(_, _) => ident(&request.timestamp),
        DataType::Date32 | DataType::Date64 => cast(
            ident(&request.timestamp),
            DataType::Timestamp(TimeUnit::Microsecond, None),
        ),
        // Text may hold nanoseconds: read it to the nanosecond.
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => cast(
            ident(&request.timestamp),
            DataType::Timestamp(TimeUnit::Nanosecond, None),
        ),
        other => {
            return Err(Error::Config(format!(
                "spine column '{}' (--timestamp) is of type {other}; it must be a timestamp, a \
                 date or a string holding one",
                request.timestamp
            )));
        }
    };
    let mut hidden = vec![time_expr.alias(TIME)];
    for (index, group) in groups.iter().enumerate() {
        for (k, key) in group.keys.iter().enumerate() {
            if schema.field_with_name(key).is_err() {
                return Err(Error::Config(format!(
                    "the spine has no column '{key}', a KEY of feature group '{}'; the spine \
                     needs every key column of each group, by name (its columns: {})",
                    group.request.group,
                    columns.join(", ")
                )));
            }
            let key_type = group.key_type(key)?;
            hidden.push(cast(ident(key), key_type).alias(key_name(index, k)));
        }
    }
    let mut projection: Vec<Expr> = columns.iter().map(|c| ident(*c)).collect();
    projection.extend(hidden);
    projection.push(ident(ROW));
    spine
        .window(vec![row_number().alias(ROW)])
        .and_then(|f| f.select(projection))
        .map_err(|e| Error::from_datafusion(None, e))
}

impl ResolvedGroup {
    /// A key column's Arrow type, from the catalog's Hive type.
    fn key_type(&self, key: &str) -> Result<DataType> {
        let column = self
            .table
            .columns
            .iter()
            .find(|c| c.name == key)
            .ok_or_else(|| {
                Error::Config(format!(
                    "catalog table '{}' has no column '{key}'",
                    self.table.name
                ))
            })?;
        match column.data_type.as_str() {
            "tinyint" | "smallint" | "int" | "bigint" => Ok(DataType::Int64),
            "string" => Ok(DataType::Utf8View),
            "date" => Ok(DataType::Date32),
            other => Err(Error::Config(format!(
                "feature group '{}': KEY column '{key}' is of catalog type {other}",
                self.request.group
            ))),
        }
    }
}

/// Every registered snapshot of the group, with the columns the join needs: keys (as the
/// spine's key columns are cast), event time, the snapshot's as-of and when each row became
/// known.
async fn read_features(
    context: &SessionContext,
    group: &ResolvedGroup,
    as_written: bool,
) -> Result<DataFrame> {
    let mut union: Option<DataFrame> = None;
    for snapshot in &group.snapshots {
        let as_of = snapshot_as_of(group, snapshot)?;
        let frame = context
            .read_parquet(snapshot.location.as_str(), ParquetReadOptions::default())
            .await
            .map_err(|e| Error::from_datafusion(None, e))?;
        let event_type = frame
            .schema()
            .as_arrow()
            .field_with_name(&group.event_time)
            .map(|f| f.data_type().clone())
            .map_err(|_| {
                Error::Config(format!(
                    "snapshot '{}' of feature group '{}' has no event time column '{}'",
                    snapshot.location, group.request.group, group.event_time
                ))
            })?;
        // The snapshot's instant in the event time's own type: a cast from a zoneless
        // literal would read the as-of as local time of the event time's zone.
        let as_of = lit(timestamps::scalar(as_of, &event_type).ok_or_else(|| {
            Error::Config(format!(
                "feature group '{}': event time column '{}' is of type {event_type}, not a \
                 timestamp that holds the snapshot's as-of {as_of}",
                group.request.group, group.event_time
            ))
        })?);
        let event_time = ident(&group.event_time);
        let mut columns: Vec<Expr> = Vec::new();
        for key in &group.keys {
            columns.push(cast(ident(key), group.key_type(key)?).alias(key));
        }
        columns.push(event_time);
        columns.extend(group.features.iter().map(ident));
        if as_written {
            // Known from the later of its event time and its snapshot's as-of; otherwise
            // from its event time, which the join then reads directly.
            let visible_at = when(
                ident(&group.event_time).gt_eq(as_of.clone()),
                ident(&group.event_time),
            )
            .otherwise(as_of.clone())
            .map_err(|e| Error::from_datafusion(None, e))?;
            columns.push(visible_at.alias(VISIBLE_AT));
        }
        if group.snapshots.len() > 1 {
            columns.push(as_of.alias(SNAPSHOT_AS_OF));
        }
        let frame = frame
            .select(columns)
            .map_err(|e| Error::from_datafusion(None, e))?;
        union = Some(match union {
            None => frame,
            Some(union) => union
                .union(frame)
                .map_err(|e| Error::from_datafusion(None, e))?,
        });
    }
    Ok(union.expect("a resolved group has snapshots"))
}

fn snapshot_as_of(group: &ResolvedGroup, snapshot: &Partition) -> Result<DateTime<Utc>> {
    snapshot
        .parameters
        .get("fengine.as_of")
        .and_then(|text| DateTime::parse_from_rfc3339(text).ok())
        .map(|time| time.with_timezone(&Utc))
        .ok_or_else(|| {
            Error::Config(format!(
                "snapshot {:?} of feature group '{}' has no fengine.as_of parameter",
                snapshot.values, group.request.group
            ))
        })
}

/// The joined rows in the spine's order, without fengine's own columns.
fn in_spine_order(plan: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
    use datafusion::physical_expr::{LexOrdering, PhysicalSortExpr};
    use datafusion::physical_plan::expressions::col;
    use datafusion::physical_plan::projection::ProjectionExec;
    use datafusion::physical_plan::sorts::sort::SortExec;
    use datafusion::physical_plan::sorts::sort_preserving_merge::SortPreservingMergeExec;

    let schema = plan.schema();
    let sorted = col(ROW, &schema)
        .map(|row| {
            let ordering = LexOrdering::new([PhysicalSortExpr::new_default(row)])
                .expect("one sort expression");
            // Each partition sorted on its own, then merged.
            let sorted = SortExec::new(ordering.clone(), plan).with_preserve_partitioning(true);
            Arc::new(SortPreservingMergeExec::new(ordering, Arc::new(sorted)))
                as Arc<dyn ExecutionPlan>
        })
        .map_err(|e| Error::from_datafusion(None, e))?;
    let visible = schema
        .fields()
        .iter()
        .filter(|f| !f.name().starts_with(HIDDEN))
        .map(|f| Ok((col(f.name(), &schema)?, f.name().clone())))
        .collect::<datafusion::error::Result<Vec<_>>>()
        .map_err(|e| Error::from_datafusion(None, e))?;
    let projection =
        ProjectionExec::try_new(visible, sorted).map_err(|e| Error::from_datafusion(None, e))?;
    Ok(Arc::new(projection))
}

fn spilled_bytes(plan: &dyn ExecutionPlan) -> u64 {
    let own = plan.metrics().and_then(|m| m.spilled_bytes()).unwrap_or(0) as u64;
    own + plan
        .children()
        .into_iter()
        .map(|child| spilled_bytes(child.as_ref()))
        .sum::<u64>()
}

/// Where the training set goes: the Parquet file, and the folder a catalog table points at.
struct OutputLocation {
    file: Url,
    folder: Url,
    is_folder: bool,
}

impl OutputLocation {
    fn parse(out: &str) -> Result<Self> {
        let url = if out.contains("://") {
            Url::parse(out)
                .map_err(|e| Error::Config(format!("--out '{out}' is not a valid URL: {e}")))?
        } else {
            let path = std::path::absolute(out)
                .map_err(|e| Error::Config(format!("--out '{out}': {e}")))?;
            Url::from_file_path(&path)
                .map_err(|_| Error::Config(format!("--out '{out}' is not a usable path")))?
        };
        if url.path().ends_with(".parquet") {
            let folder = url.join("./").expect("a file URL has a folder");
            return Ok(OutputLocation {
                file: url,
                folder,
                is_folder: false,
            });
        }
        let mut folder = url;
        if !folder.path().ends_with('/') {
            folder.set_path(&format!("{}/", folder.path()));
        }
        Ok(OutputLocation {
            file: folder
                .join("part-00000.parquet")
                .expect("a valid file name"),
            folder,
            is_folder: true,
        })
    }
}

/// Streams the plan's batches into one Parquet file; returns the row count.
/// Writes the plan's rows, encoded by `encoder` if given; the rows written and their schema.
async fn write_parquet(
    context: &SessionContext,
    plan: Arc<dyn ExecutionPlan>,
    out: &OutputLocation,
    encoder: Option<&EncoderDetail>,
) -> Result<(u64, SchemaRef)> {
    let encode = |batch: RecordBatch| match encoder {
        Some(e) => encode_batch(&e.encoder, &e.parameters, &batch),
        None => Ok(batch),
    };
    let schema = encode(RecordBatch::new_empty(plan.schema()))?.schema();
    let store = ObjectStoreUrl::parse(&out.file[..url::Position::BeforePath])
        .and_then(|url| context.runtime_env().object_store(url))
        .map_err(|e| Error::Config(format!("--out '{}': {e}", out.file)))?;
    let path = ObjectPath::from_url_path(out.file.path())
        .map_err(|e| Error::Config(format!("--out '{}': {e}", out.file)))?;
    let name = out.file.to_string();
    let buffer = parquet_file::buffer_size(context);
    let mut parquet = ParquetFile::create(store, path, name, schema.clone(), buffer)?;
    let mut batches =
        execute_stream(plan, context.task_ctx()).map_err(|e| Error::from_datafusion(None, e))?;
    let mut rows = 0;
    while let Some(batch) = batches.next().await {
        let batch = encode(batch.map_err(|e| Error::from_datafusion(None, e))?)?;
        rows += batch.num_rows() as u64;
        parquet.write(&batch).await?;
    }
    parquet.close().await?;
    Ok((rows, schema))
}

fn check_table_name(name: &str) -> Result<()> {
    if is_portable_name(name) {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "--register '{name}': a table name starts with a lower-case letter and holds only \
             lower-case letters, digits and underscores"
        )))
    }
}

/// Registers the training set as a table partitioned by build time: each build is a
/// partition that records the groups, features and snapshots it was built from.
async fn register(
    name: &str,
    out: &OutputLocation,
    schema: &Schema,
    manifest: &TrainingSetManifest,
    backends: &Backends,
) -> Result<String> {
    let columns = schema
        .fields()
        .iter()
        .map(|field| column(field))
        .collect::<Result<Vec<_>>>()?;
    let built_at = Utc::now();
    let table = Table {
        database: backends.database.clone(),
        name: name.to_string(),
        description: Some(format!("fengine training set over {}", manifest.spine)),
        location: out.folder.to_string(),
        columns,
        partition_keys: vec![Column {
            name: "built_at".to_string(),
            data_type: "string".to_string(),
            comment: Some("when the training set was built, YYYYMMDDTHHMMSSZ".to_string()),
        }],
        parameters: BTreeMap::from([
            ("classification".to_string(), "parquet".to_string()),
            ("fengine.kind".to_string(), "training_set".to_string()),
        ]),
    };
    let lineage = serde_json::to_string(&manifest.groups).expect("a manifest serializes");
    let partition = Partition {
        values: vec![snapshot_name(built_at)],
        location: out.folder.to_string(),
        parameters: BTreeMap::from([
            (
                "fengine.built_at".to_string(),
                built_at.to_rfc3339_opts(SecondsFormat::Secs, true),
            ),
            ("fengine.groups".to_string(), lineage),
            ("fengine.spine".to_string(), manifest.spine.clone()),
            ("fengine.timestamp".to_string(), manifest.timestamp.clone()),
            (
                "fengine.as_written".to_string(),
                manifest.as_written.to_string(),
            ),
            ("fengine.rows".to_string(), manifest.rows.to_string()),
        ]),
    };
    backends
        .catalog
        .register_partition(&table, &partition)
        .await?;
    Ok(format!("{}.{}", table.database, table.name))
}

fn column(field: &Field) -> Result<Column> {
    let data_type = hive_type(field.data_type()).ok_or_else(|| {
        Error::Config(format!(
            "training set column '{}' is of type {}, which the catalog cannot describe",
            field.name(),
            field.data_type()
        ))
    })?;
    Ok(Column {
        name: field.name().clone(),
        data_type,
        comment: None,
    })
}

/// A local path made absolute (folders with a trailing '/', as DataFusion lists them);
/// URLs as given.
fn absolute_location(location: &str) -> String {
    if location.contains("://") {
        return location.to_string();
    }
    let path = std::path::absolute(location).unwrap_or_else(|_| PathBuf::from(location));
    let mut text = path.display().to_string();
    if path.is_dir() && !text.ends_with('/') {
        text.push('/');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feature_requests_name_a_group_a_version_and_features() {
        assert_eq!(
            "spend@2.spend_7d,spend_30d".parse::<FeatureRequest>(),
            Ok(FeatureRequest {
                group: "spend".to_string(),
                version: Some(2),
                features: Some(vec!["spend_7d".to_string(), "spend_30d".to_string()]),
            })
        );
        assert_eq!(
            "spend".parse::<FeatureRequest>(),
            Ok(FeatureRequest {
                group: "spend".to_string(),
                version: None,
                features: None,
            })
        );
        assert!("spend@x".parse::<FeatureRequest>().is_err());
        assert!("spend.a,,b".parse::<FeatureRequest>().is_err());
    }

    #[test]
    fn spine_sources_are_told_apart_by_their_shape() {
        let parse = |s: &str| s.parse::<SpineSource>().unwrap();
        assert_eq!(
            parse("glue.db.labels"),
            SpineSource::Table("glue.db.labels".to_string())
        );
        assert_eq!(
            parse("labels.sql"),
            SpineSource::QueryFile("labels.sql".into())
        );
        assert_eq!(
            parse("data/labels.parquet"),
            SpineSource::Parquet("data/labels.parquet".to_string())
        );
        assert_eq!(
            parse("s3://bucket/labels/"),
            SpineSource::Parquet("s3://bucket/labels/".to_string())
        );
    }
}
