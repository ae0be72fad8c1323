//! Checking a pipeline before any data is read: its statements run (sources and views are
//! defined, which checks that sources exist) and each feature group's query is planned and
//! its output checked against the group's declaration.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::{DataType, SchemaRef};
use datafusion::catalog::view::ViewTable;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{ScalarValue, TableReference};
use datafusion::dataframe::DataFrame;
use datafusion::datasource::source_as_provider;
use datafusion::error::DataFusionError;
use datafusion::execution::context::SessionContext;
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::sqlparser::ast::Statement as SqlStatement;
use fengine_catalog::{Column, Table};
use fengine_dialect::{
    CreateFeatureGroup, CreateModel, DataFusionStatement, Pipeline, SourceLocation, Statement,
};
use fengine_online::{KeyKind, OnlineTable};
use fengine_operators::functions::{as_of_udf, param_udf, parse_param_value};
use fengine_operators::timestamps::fixed_length;
use fengine_operators::window::rolling_windows;

use crate::backends::Backends;
use crate::catalogue::{
    self, FEATURES_SCHEMA, FeatureSource, ModelDefinition, UpstreamKind, UsedFeature,
};
use crate::encoders::encode_udf;
use crate::error::{Error, Result};
use crate::expectations::Expectations;
use crate::hive::hive_type;
use crate::options::{RunOptions, check_horizon, check_whole_seconds};
use crate::published;
use crate::source_cache::SourceCache;
use crate::source_files;
use crate::statistics::Profiler;

/// A pipeline whose checks passed, ready to compute.
pub struct PlannedPipeline {
    pub(crate) context: SessionContext,
    pub groups: Vec<PlannedGroup>,
    pub params: BTreeMap<String, ScalarValue>,
    /// The locations of the sources the pipeline defines, relative ones made absolute.
    pub sources: Vec<String>,
    /// The models it declares, registered once its groups are published.
    pub models: Vec<PlannedModel>,
    /// The published group versions it reads (`features.<group>`).
    pub published_sources: Vec<(String, u32)>,
    /// The snapshots of them it reads.
    pub(crate) feature_sources: Vec<FeatureSource>,
}

/// A model whose features exist: published, or about to be by the pipeline's groups.
#[derive(Debug, Clone)]
pub struct PlannedModel {
    pub definition: ModelDefinition,
    pub uses: Vec<UsedFeature>,
}

/// A feature group whose query planned and whose output fits its declaration.
#[derive(Clone)]
pub struct PlannedGroup {
    pub definition: CreateFeatureGroup,
    pub location: SourceLocation,
    pub(crate) frame: DataFrame,
    pub schema: SchemaRef,
    pub ttl: Option<Duration>,
    /// The catalog table its snapshots are registered in.
    pub table: Table,
    /// The windows fengine's rolling-window operator computes, as `sum over 7 days`
    /// (DataFusion computes the group's others).
    pub rolling_windows: Vec<String>,
    /// The table as the catalog held it when planned; `None` for a version's first run.
    pub published: Option<Table>,
    /// What its query scans: sources, source tables, published groups.
    pub upstream: Vec<Upstream>,
    /// Its `EXPECT` clauses, compiled against its output.
    pub(crate) expectations: Expectations,
    /// The features its snapshots' statistics are of.
    pub(crate) profiler: Profiler,
}

/// A source a pipeline defines (`CREATE EXTERNAL TABLE`): its name and locations.
#[derive(Debug, Clone)]
pub(crate) struct DefinedSource {
    pub name: TableReference,
    pub locations: Vec<String>,
}

/// Something a group's query scans.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Upstream {
    pub kind: UpstreamKind,
    /// A location, a table's name, or a group's.
    pub name: String,
    /// The version read, of a group.
    pub version: Option<u32>,
}

impl PlannedGroup {
    pub fn name(&self) -> String {
        self.definition.name()
    }

    /// Turns DataFusion's errors met computing the group into the group's.
    pub(crate) fn error_from(&self, error: DataFusionError) -> Error {
        self.datafusion_errors()(error)
    }

    /// [`PlannedGroup::error_from`], for where the group itself is out of reach (a writer
    /// task).
    pub(crate) fn datafusion_errors(
        &self,
    ) -> impl Fn(DataFusionError) -> Error + Clone + Send + use<> {
        let location = self.location.clone();
        let name = self.name();
        move |error| Error::while_running(Some(&location), error).in_group(&name)
    }

    /// The group version as the online store holds it.
    pub(crate) fn online_table(&self) -> OnlineTable {
        OnlineTable {
            group: self.name(),
            version: self.definition.version,
            schema: self.schema.clone(),
            key_columns: self.definition.key_columns(),
            event_time_column: self.definition.event_time_column(),
            ttl: self.ttl,
        }
    }
}

/// Checks the pipeline without reading data: statements run, feature group queries plan,
/// their outputs fit their declarations and the catalog's published schemas.
pub async fn plan(
    pipeline: &Pipeline,
    options: &RunOptions,
    backends: &Backends,
) -> Result<PlannedPipeline> {
    check_whole_seconds("the as-of", options.as_of)?;
    check_horizon("the as-of", options.as_of, options.force, backends)?;
    plan_pipeline(pipeline, options, backends, None).await
}

/// Plans the pipeline; with `sources`, its external sources are read from (or into) that
/// in-memory cache, which a backfill shares across as-ofs.
pub(crate) async fn plan_pipeline(
    pipeline: &Pipeline,
    options: &RunOptions,
    backends: &Backends,
    sources: Option<&SourceCache>,
) -> Result<PlannedPipeline> {
    let (context, params, feature_sources) = pipeline_session(pipeline, options, backends).await?;
    let mut groups: Vec<PlannedGroup> = Vec::new();
    let mut models = Vec::new();
    let mut encoders = 0;
    let mut defined = Vec::new();
    for statement in &pipeline.statements {
        let location = &statement.location;
        match &statement.statement {
            Statement::Sql(sql) => {
                defined.extend(run_definition(&context, sql, location, sources).await?)
            }
            Statement::CreateFeatureGroup(group) => {
                if let Some(first) = groups.iter().find(|g| g.name() == group.name()) {
                    return Err(Error::plan(
                        location,
                        format!(
                            "feature group '{}' is defined twice: first at {}",
                            group.name(),
                            first.location
                        ),
                    ));
                }
                let sources = Sources {
                    defined: &defined,
                    features: &feature_sources,
                };
                groups.push(plan_group(&context, group, location, sources, backends).await?);
            }
            Statement::CreateModel(model) => models.push((model, location)),
            Statement::CreateEncoder(_) => encoders += 1,
            Statement::Include(_) => unreachable!("load_pipeline resolves includes"),
        }
    }
    if groups.is_empty() && models.is_empty() {
        return Err(Error::Plan {
            location: None,
            message: format!(
                "{} defines no feature group or model: add a CREATE FEATURE GROUP statement{}",
                pipeline.path.display(),
                match encoders {
                    0 => "",
                    _ => "; its encoders are fitted with `fengine encoder fit`",
                }
            ),
        });
    }
    let models = plan_models(pipeline, &models, &groups, backends).await?;
    Ok(PlannedPipeline {
        context,
        groups,
        params,
        sources: defined.into_iter().flat_map(|s| s.locations).collect(),
        models,
        published_sources: feature_sources
            .iter()
            .map(|f| (f.group.clone(), f.version))
            .collect(),
        feature_sources,
    })
}

/// The session a pipeline's statements run on: fengine's functions (`as_of()` of the
/// options' as-of, `param()` of their params) and the `features.` tables it reads
/// registered; the params parsed; the feature sources.
pub(crate) async fn pipeline_session(
    pipeline: &Pipeline,
    options: &RunOptions,
    backends: &Backends,
) -> Result<(
    SessionContext,
    BTreeMap<String, ScalarValue>,
    Vec<FeatureSource>,
)> {
    let params: BTreeMap<String, ScalarValue> = options
        .params
        .iter()
        .map(|(name, text)| (name.clone(), parse_param_value(text)))
        .collect();
    let context = backends.session_context()?;
    context.register_udf(as_of_udf(options.as_of));
    context.register_udf(param_udf(params.clone()));
    context.register_udf(encode_udf(pipeline, backends).await?);
    let defined_groups: Vec<String> = pipeline.feature_groups().map(|(g, _)| g.name()).collect();
    let feature_sources = catalogue::register_feature_sources(
        &context,
        pipeline,
        &defined_groups,
        options.as_of,
        &options.snapshots,
        backends,
    )
    .await?;
    Ok((context, params, feature_sources))
}

/// Runs a statement that defines sources, views or settings; returns the source it
/// defines, if it defines one. Queries and statements that write are refused: a pipeline's
/// output is its feature groups.
pub(crate) async fn run_definition(
    context: &SessionContext,
    statement: &DataFusionStatement,
    location: &SourceLocation,
    cache: Option<&SourceCache>,
) -> Result<Option<DefinedSource>> {
    let mut statement = statement.clone();
    let mut source = None;
    let mut cached_as = None;
    let mut declares_columns = false;
    let mut defined = None;
    match &mut statement {
        DataFusionStatement::CreateExternalTable(table) => {
            let folder = location.file.parent().unwrap_or_else(|| Path::new(""));
            for path in &mut table.locations {
                *path = resolve_relative_location(folder, path);
            }
            defined = Some(DefinedSource {
                name: TableReference::parse_str(&table.name.to_string()),
                locations: table.locations.clone(),
            });
            cached_as = Some((table.name.to_string(), table.locations.join(",")));
            declares_columns = !table.columns.is_empty();
            source = Some(format!(
                "source '{}' at '{}'",
                table.name,
                table.locations.join("', '")
            ));
        }
        DataFusionStatement::Statement(inner) if !is_definition(inner) => {
            return Err(Error::plan(
                location,
                "only statements that define sources, views and settings (CREATE EXTERNAL TABLE, \
                 CREATE VIEW, SET, ...) may stand alone in a pipeline; put queries in a CREATE \
                 FEATURE GROUP",
            ));
        }
        DataFusionStatement::CopyTo(_) | DataFusionStatement::Explain(_) => {
            return Err(Error::plan(
                location,
                "COPY and EXPLAIN are not pipeline statements",
            ));
        }
        _ => {}
    }
    if let (Some(cache), Some((name, at))) = (cache, &cached_as)
        && let Some(Some(table)) = cache.cached(name, at)
    {
        // Defined and read by an earlier as-of: no need to list and infer it again.
        return context
            .register_table(name.as_str(), table)
            .map(|_| defined)
            .map_err(|e| Error::from_datafusion(Some(location), e));
    }
    let described = |e| {
        let error = Error::from_datafusion(Some(location), e);
        match (&source, error) {
            (Some(source), Error::Plan { location, message }) => Error::Plan {
                location,
                message: format!("{source}: {message}"),
            },
            (_, error) => error,
        }
    };
    let plan = context
        .state()
        .statement_to_plan(statement)
        .await
        .map_err(described)?;
    let execute = async { context.execute_logical_plan(plan).await?.collect().await };
    execute.await.map_err(described)?;
    if let Some((name, at)) = &cached_as {
        source_files::check_source_files(context, name, declares_columns)
            .await
            .map_err(|e| match e {
                Error::Config(message) => Error::plan(location, message),
                other => other,
            })?;
        if let Some(cache) = cache {
            cache
                .substitute(context, name, at)
                .await
                .map_err(described)?;
        }
    }
    Ok(defined)
}

fn is_definition(statement: &SqlStatement) -> bool {
    matches!(
        statement,
        SqlStatement::CreateView { .. }
            | SqlStatement::CreateTable { .. }
            | SqlStatement::CreateSchema { .. }
            | SqlStatement::CreateDatabase { .. }
            | SqlStatement::CreateFunction { .. }
            | SqlStatement::Drop { .. }
            | SqlStatement::Set(_)
    )
}

/// A source LOCATION without a scheme is relative to the file that names it, so that a
/// pipeline runs from any working directory.
fn resolve_relative_location(folder: &Path, location: &str) -> String {
    if location.contains("://") || Path::new(location).is_absolute() {
        return location.to_string();
    }
    let joined = folder.join(location);
    let resolved = joined
        .canonicalize()
        .or_else(|_| std::path::absolute(&joined))
        .unwrap_or(joined);
    let mut text = resolved.display().to_string();
    if location.ends_with('/') && !text.ends_with('/') {
        text.push('/');
    }
    text
}

/// What a group's query may read, besides views: the pipeline's sources defined before it,
/// and published groups.
#[derive(Clone, Copy)]
struct Sources<'a> {
    defined: &'a [DefinedSource],
    features: &'a [FeatureSource],
}

async fn plan_group(
    context: &SessionContext,
    group: &CreateFeatureGroup,
    location: &SourceLocation,
    sources: Sources<'_>,
    backends: &Backends,
) -> Result<PlannedGroup> {
    let name = group.name();
    check_group_name(&name, location)?;
    let query = DataFusionStatement::Statement(Box::new(SqlStatement::Query(group.query.clone())));
    let plan = context
        .state()
        .statement_to_plan(query)
        .await
        .map_err(|e| Error::from_datafusion(Some(location), e))
        .map_err(|e| e.in_group(&name))?;
    let frame = context
        .execute_logical_plan(plan)
        .await
        .map_err(|e| Error::from_datafusion(Some(location), e))?;
    // Physical planning runs type coercion and the optimizer, which is where a wrong
    // param() or function argument shows; it reads no data.
    let physical = frame
        .clone()
        .create_physical_plan()
        .await
        .map_err(|e| Error::from_datafusion(Some(location), e))
        .map_err(|e| e.in_group(&name))?;
    let rolling_windows = rolling_windows(physical.as_ref());
    let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
    check_output(group, &schema, location)?;
    let expectations = Expectations::compile(&context.state(), group, &schema, location)?;
    let profiler = Profiler::new(&schema, &group.key_columns(), &group.event_time_column());
    let ttl = group
        .online
        .ttl
        .as_deref()
        .map(|ttl| {
            parse_ttl(ttl)
                .map_err(|m| Error::plan(location, format!("feature group '{name}': {m}")))
        })
        .transpose()?;
    let upstream = upstream(frame.logical_plan(), sources);
    let table = catalog_table(group, &schema, backends, location)?;
    if let Some(exceeded) = table.limit_exceeded() {
        return Err(Error::plan(
            location,
            format!("feature group '{name}': {exceeded}"),
        ));
    }
    let registered = backends
        .catalog
        .get_table(&table.database, &table.name)
        .await?;
    if let Some(registered) = &registered
        && !registered.is_fengine_table()
    {
        return Err(Error::plan(
            location,
            format!(
                "feature group '{name}': catalog table '{}.{}' exists and was not registered \
                 by fengine (it has no fengine.* parameters): fengine does not take it over; \
                 rename the feature group, or drop or move that table",
                table.database, table.name
            ),
        ));
    }
    if let Some(retired) = registered
        .as_ref()
        .and_then(|t| t.parameters.get(published::RETIRED_AT))
    {
        return Err(Error::plan(
            location,
            format!(
                "feature group '{name}' version {} was retired at {retired}: its snapshots stay \
                 readable, but it takes no new ones. Bump VERSION to publish again",
                group.version
            ),
        ));
    }
    if let Some(registered) = &registered
        && let Some(conflict) = registered.schema_conflict(&table)
    {
        return Err(Error::plan(
            location,
            format!(
                "feature group '{name}' version {} changes the schema of a published version: \
                 {conflict}. Bump VERSION to publish the new schema as a new table",
                group.version
            ),
        ));
    }
    let planned = PlannedGroup {
        definition: group.clone(),
        location: location.clone(),
        frame,
        schema,
        ttl,
        table,
        rolling_windows,
        published: registered,
        upstream,
        expectations,
        profiler,
    };
    // A store table of the same name keyed otherwise would be found only after the
    // snapshot is registered.
    if let Err(e) = backends.online.check_table(&planned.online_table()).await {
        return Err(match Error::from(e) {
            Error::Config(message) => {
                Error::plan(location, format!("feature group '{name}': {message}"))
            }
            other => other,
        });
    }
    Ok(planned)
}

/// Resolves the features each declared model uses, against the published groups and those
/// the pipeline is about to publish.
async fn plan_models(
    pipeline: &Pipeline,
    declared: &[(&CreateModel, &SourceLocation)],
    groups: &[PlannedGroup],
    backends: &Backends,
) -> Result<Vec<PlannedModel>> {
    if declared.is_empty() {
        return Ok(Vec::new());
    }
    let published = published::all_groups(backends).await?;
    let pending: Vec<published::GroupVersion> = groups
        .iter()
        .filter_map(|g| published::GroupVersion::of(g.table.clone()))
        .collect();
    let mut planned: Vec<PlannedModel> = Vec::new();
    for (model, location) in declared {
        let definition = ModelDefinition {
            name: model.name(),
            version: model.version,
            uses: model
                .uses
                .iter()
                .map(|u| catalogue::FeatureUse {
                    group: u.group_name(),
                    version: u.version,
                    feature: u.feature_name(),
                })
                .collect(),
            description: model.description.clone(),
            tags: model
                .tags
                .iter()
                .map(|(k, v)| (k.value.clone(), v.clone()))
                .collect(),
            origin: format!("pipeline {}", pipeline.path.display()),
        };
        if !is_portable_name(&definition.name) {
            return Err(Error::plan(
                location,
                format!(
                    "model name '{}' must start with a lower-case letter and hold only \
                     lower-case letters, digits and underscores",
                    definition.name
                ),
            ));
        }
        if planned.iter().any(|p| {
            p.definition.name == definition.name && p.definition.version == definition.version
        }) {
            return Err(Error::plan(
                location,
                format!(
                    "model '{}' version {} is declared twice",
                    definition.name, definition.version
                ),
            ));
        }
        let uses = catalogue::resolve_uses(&definition, &published, &pending)
            .map_err(|e| Error::plan(location, e.to_string()))?;
        planned.push(PlannedModel { definition, uses });
    }
    Ok(planned)
}

/// What a group's plan scans: the pipeline's sources by their locations, published groups
/// (`features.<group>`), and other tables by name; through views, what they scan.
fn upstream(plan: &LogicalPlan, sources: Sources<'_>) -> Vec<Upstream> {
    let mut found = Vec::new();
    scanned(plan, sources, &mut found);
    found.sort();
    found.dedup();
    found
}

fn scanned(plan: &LogicalPlan, sources: Sources<'_>, found: &mut Vec<Upstream>) {
    plan.apply(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            if let Ok(provider) = source_as_provider(&scan.source)
                && let Some(view) = provider.downcast_ref::<ViewTable>()
            {
                scanned(view.logical_plan(), sources, found);
                return Ok(TreeNodeRecursion::Continue);
            }
            let feature = sources.features.iter().find(|f| {
                scan.table_name == TableReference::partial(FEATURES_SCHEMA, f.table.as_str())
            });
            if let Some(feature) = feature {
                found.push(Upstream {
                    kind: UpstreamKind::Group,
                    name: feature.group.clone(),
                    version: Some(feature.version),
                });
                return Ok(TreeNodeRecursion::Continue);
            }
            match sources
                .defined
                .iter()
                .rev()
                .find(|s| s.name == scan.table_name)
            {
                Some(source) => found.extend(source.locations.iter().map(|l| Upstream {
                    kind: UpstreamKind::Source,
                    name: l.clone(),
                    version: None,
                })),
                None => found.push(Upstream {
                    kind: UpstreamKind::Table,
                    name: scan.table_name.to_string(),
                    version: None,
                }),
            }
        }
        Ok(TreeNodeRecursion::Continue)
    })
    .expect("the visitor does not fail");
}

/// Group names become table, folder and online table names: lower-case letters, digits and
/// underscores work everywhere those do (Glue, S3, DynamoDB, SQLite).
fn check_group_name(name: &str, location: &SourceLocation) -> Result<()> {
    if is_portable_name(name) {
        Ok(())
    } else {
        Err(Error::plan(
            location,
            format!(
                "feature group name '{name}' must start with a lower-case letter and hold only \
                 lower-case letters, digits and underscores"
            ),
        ))
    }
}

/// Starts with a lower-case letter, holds only lower-case letters, digits and underscores.
pub(crate) fn is_portable_name(name: &str) -> bool {
    name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn check_output(
    group: &CreateFeatureGroup,
    schema: &SchemaRef,
    location: &SourceLocation,
) -> Result<()> {
    let name = group.name();
    let columns: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let find = |column: &str, role: &str| {
        schema.field_with_name(column).map_err(|_| {
            Error::plan(
                location,
                format!(
                    "feature group '{name}': {role} column '{column}' is not in the query's output \
                     (columns: {})",
                    columns.join(", ")
                ),
            )
        })
    };
    let mut seen = HashSet::new();
    for key in group.key_columns() {
        let field = find(&key, "KEY")?;
        if !seen.insert(key.clone()) {
            return Err(Error::plan(
                location,
                format!("feature group '{name}': KEY names column '{key}' twice"),
            ));
        }
        if KeyKind::of(field.data_type()).is_none() {
            return Err(Error::plan(
                location,
                format!(
                    "feature group '{name}': KEY column '{key}' is of type {}; a key must be a whole \
                     number, a string or a date",
                    field.data_type()
                ),
            ));
        }
    }
    let event_time = group.event_time_column();
    let field = find(&event_time, "EVENT TIME")?;
    if !matches!(field.data_type(), DataType::Timestamp(_, _)) {
        return Err(Error::plan(
            location,
            format!(
                "feature group '{name}': EVENT TIME column '{event_time}' is of type {}; it must be \
                 a timestamp (CAST it AS TIMESTAMP)",
                field.data_type()
            ),
        ));
    }
    if seen.contains(&event_time) {
        return Err(Error::plan(
            location,
            format!(
                "feature group '{name}': column '{event_time}' cannot be both KEY and EVENT TIME"
            ),
        ));
    }
    for feature in &group.features {
        find(&feature.column_name(), "FEATURES")?;
    }
    for field in schema.fields() {
        if hive_type(field.data_type()).is_none() {
            return Err(Error::plan(
                location,
                format!(
                    "feature group '{name}': column '{}' is of type {}, which Parquet snapshots in \
                     the catalog cannot hold; CAST it to another type",
                    field.name(),
                    field.data_type()
                ),
            ));
        }
    }
    Ok(())
}

/// `'30 days'`, `'12 hours'`, `'90 minutes'`: a fixed length of time (months vary in length,
/// so they are refused).
pub(crate) fn parse_ttl(text: &str) -> std::result::Result<Duration, String> {
    fixed_length(text).map_err(|e| e.describe("ONLINE ttl", text))
}

fn catalog_table(
    group: &CreateFeatureGroup,
    schema: &SchemaRef,
    backends: &Backends,
    location: &SourceLocation,
) -> Result<Table> {
    let name = group.name();
    let comments: BTreeMap<String, &str> = group
        .features
        .iter()
        .map(|f| (f.column_name(), f.comment.as_str()))
        .collect();
    let columns = schema
        .fields()
        .iter()
        .map(|field| Column {
            name: field.name().clone(),
            data_type: hive_type(field.data_type()).expect("checked by check_output"),
            comment: comments.get(field.name()).map(|c| c.to_string()),
        })
        .collect();
    let tags: BTreeMap<String, &str> = group
        .tags
        .iter()
        .map(|(k, v)| (k.value.clone(), v.as_str()))
        .collect();
    let mut parameters = BTreeMap::from([
        ("classification".to_string(), "parquet".to_string()),
        ("fengine.group".to_string(), name.clone()),
        ("fengine.version".to_string(), group.version.to_string()),
        ("fengine.key".to_string(), group.key_columns().join(",")),
        ("fengine.event_time".to_string(), group.event_time_column()),
        (
            "fengine.tags".to_string(),
            serde_json::to_string(&tags).expect("strings serialize"),
        ),
        (
            "fengine.pipeline".to_string(),
            location.file.display().to_string(),
        ),
    ]);
    if let Some(description) = &group.description {
        parameters.insert("fengine.description".to_string(), description.clone());
    }
    if let Some(ttl) = &group.online.ttl {
        parameters.insert("fengine.online_ttl".to_string(), ttl.clone());
    }
    Ok(Table {
        database: backends.database.clone(),
        name: format!("{name}_v{}", group.version),
        description: group.description.clone(),
        location: backends
            .warehouse
            .table_location(&name, group.version)
            .to_string(),
        columns,
        partition_keys: vec![Column {
            name: "snapshot_ts".to_string(),
            data_type: "string".to_string(),
            comment: Some("the run's as-of, YYYYMMDDTHHMMSSZ".to_string()),
        }],
        parameters,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_is_a_fixed_length_of_time() {
        assert_eq!(parse_ttl("30 days"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_ttl("12 hours"), Ok(Duration::from_secs(12 * 3_600)));
        assert_eq!(
            parse_ttl("1 day 6 hours"),
            Ok(Duration::from_secs(30 * 3_600))
        );
        assert!(parse_ttl("1 month").unwrap_err().contains("months"));
        assert!(
            parse_ttl("soon")
                .unwrap_err()
                .contains("is not a length of time")
        );
        assert!(parse_ttl("0 days").is_err());
    }
}
