//! `fengine encoder fit`: each `CREATE ENCODER` of a pipeline fitted in one streaming pass
//! over its rows, then registered as the encoder's next version — or not, when the newest
//! version has the same parameters and definition.

use std::path::Path;

use chrono::{DateTime, Utc};
use datafusion::dataframe::DataFrame;
use datafusion::execution::context::SessionContext;
use datafusion::prelude::ParquetReadOptions;
use datafusion::sql::resolve::resolve_table_references;
use datafusion::sql::sqlparser::ast::Statement as SqlStatement;
use fengine_dialect::{
    CreateEncoder, DataFusionStatement, FitOn, Pipeline, SourceLocation, Statement,
};
use futures::StreamExt;
use serde::Serialize;

use crate::backends::Backends;
use crate::catalogue::FeatureSource;
use crate::encoders::{
    EncoderParameters, EncoderRecord, FittedOn, Fitter, SnapshotRead, encoder_versions,
    write_encoder,
};
use crate::error::{Error, Result};
use crate::lease::{Lease, waiting};
use crate::options::RunOptions;
use crate::plan::{pipeline_session, run_definition};

/// What a fit did with an encoder.
#[derive(Debug, Clone, Serialize)]
pub struct FitOutcome {
    pub encoder: String,
    pub version: u32,
    /// False when the newest version already had these parameters: nothing was registered.
    pub registered: bool,
    pub rows: u64,
    pub fitted_on: FittedOn,
}

/// Fits every encoder the pipeline declares, as of `options.as_of` (what `as_of()` and
/// `features.` tables read), and registers those whose parameters changed.
pub async fn fit_encoders(
    pipeline: &Pipeline,
    options: &RunOptions,
    backends: &Backends,
) -> Result<Vec<FitOutcome>> {
    let (context, _, feature_sources) = pipeline_session(pipeline, options, backends).await?;
    let mut encoders = Vec::new();
    for statement in &pipeline.statements {
        let location = &statement.location;
        match &statement.statement {
            Statement::Sql(sql) => {
                run_definition(&context, sql, location, None).await?;
            }
            Statement::CreateEncoder(encoder) => encoders.push((encoder.as_ref(), location)),
            Statement::CreateFeatureGroup(_) | Statement::CreateModel(_) => {}
            Statement::Include(_) => unreachable!("load_pipeline resolves includes"),
        }
    }
    if encoders.is_empty() {
        return Err(Error::Plan {
            location: None,
            message: format!(
                "{} declares no encoder: add a CREATE ENCODER statement",
                pipeline.path.display()
            ),
        });
    }
    let mut outcomes = Vec::new();
    for (encoder, location) in encoders {
        let fitted = fit(&context, encoder, location, &feature_sources).await?;
        outcomes.push(register(backends, pipeline, options.as_of, encoder, fitted).await?);
    }
    Ok(outcomes)
}

struct Fit {
    parameters: EncoderParameters,
    fitted_on: FittedOn,
}

async fn fit(
    context: &SessionContext,
    encoder: &CreateEncoder,
    location: &SourceLocation,
    feature_sources: &[FeatureSource],
) -> Result<Fit> {
    let name = encoder.name();
    let (rows, source, snapshots) = match &encoder.fit_on {
        FitOn::Query(query) => {
            let statement =
                DataFusionStatement::Statement(Box::new(SqlStatement::Query(query.clone())));
            let (tables, _) = resolve_table_references(&statement, true)
                .map_err(|e| Error::from_datafusion(Some(location), e))?;
            let read: Vec<String> = tables.iter().map(|t| t.to_string()).collect();
            let snapshots = feature_sources
                .iter()
                .filter(|f| read.contains(&format!("features.{}", f.table)))
                .map(|f| SnapshotRead {
                    group: f.group.clone(),
                    version: f.version,
                    as_of: f.as_of,
                })
                .collect();
            let plan = context
                .state()
                .statement_to_plan(statement)
                .await
                .map_err(|e| Error::from_datafusion(Some(location), e))?;
            let rows = context
                .execute_logical_plan(plan)
                .await
                .map_err(|e| Error::from_datafusion(Some(location), e))?;
            (rows, query.to_string(), snapshots)
        }
        FitOn::Files(path) => {
            let resolved = resolve(&location.file, path);
            let rows = context
                .read_parquet(&resolved, ParquetReadOptions::default())
                .await
                .map_err(|e| {
                    Error::plan(
                        location,
                        format!("encoder '{name}' is fitted on '{resolved}', which cannot be read as Parquet: {e}"),
                    )
                })?;
            (rows, resolved, Vec::new())
        }
    };
    let (parameters, count) = fit_rows(&name, encoder, location, rows).await?;
    Ok(Fit {
        parameters,
        fitted_on: FittedOn {
            source,
            snapshots,
            rows: count,
        },
    })
}

/// One pass over the rows: each batch to every transform's accumulator.
async fn fit_rows(
    name: &str,
    encoder: &CreateEncoder,
    location: &SourceLocation,
    rows: DataFrame,
) -> Result<(EncoderParameters, u64)> {
    let schema = rows.schema().as_arrow().clone();
    let mut fitter = Fitter::new(name, &encoder.transforms, &schema, location)?;
    let mut batches = rows
        .execute_stream()
        .await
        .map_err(|e| Error::from_datafusion(Some(location), e))?;
    let mut count = 0u64;
    while let Some(batch) = batches.next().await {
        let batch = batch.map_err(|e| Error::from_datafusion(Some(location), e))?;
        count += batch.num_rows() as u64;
        fitter.observe(&batch)?;
    }
    Ok((fitter.finish()?, count))
}

/// A FIT ON path relative to the pipeline file's folder, unless absolute or a URL.
fn resolve(pipeline_file: &Path, path: &str) -> String {
    if path.contains("://") || Path::new(path).is_absolute() {
        return path.to_string();
    }
    let folder = pipeline_file.parent().unwrap_or(Path::new("."));
    folder.join(path).to_string_lossy().into_owned()
}

/// Registers the fit as the encoder's next version, under the encoder's lease so that two
/// fits at once never take one version number; unless the newest version is the same fit.
async fn register(
    backends: &Backends,
    pipeline: &Pipeline,
    as_of: DateTime<Utc>,
    encoder: &CreateEncoder,
    fit: Fit,
) -> Result<FitOutcome> {
    let name = encoder.name();
    let holder = format!("fit-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let lease = Lease::acquire(
        &backends.warehouse,
        &format!("encoders/{name}"),
        &holder,
        &format!("registering encoder {name}"),
        backends.lease_ttl,
        waiting,
    )
    .await?;
    let registered = register_under_lease(backends, pipeline, as_of, encoder, fit).await;
    let released = lease.release().await;
    let outcome = registered?;
    released?;
    Ok(outcome)
}

async fn register_under_lease(
    backends: &Backends,
    pipeline: &Pipeline,
    as_of: DateTime<Utc>,
    encoder: &CreateEncoder,
    fit: Fit,
) -> Result<FitOutcome> {
    let name = encoder.name();
    let parameters = serde_json::to_string(&fit.parameters).expect("parameters serialize");
    let definition = encoder.to_string();
    let versions = encoder_versions(backends, &name).await?;
    if let Some(newest) = versions.last() {
        if encoder.version < newest.definition_version {
            return Err(Error::Config(format!(
                "encoder '{name}' is declared VERSION {}, older than the VERSION {} its newest \
                 fit (v{}) was declared: fit the newest definition",
                encoder.version, newest.definition_version, newest.version
            )));
        }
        if encoder.version == newest.definition_version && definition != newest.definition {
            return Err(Error::Config(format!(
                "encoder '{name}' VERSION {} was fitted from another definition (v{}: {}); a \
                 change of its transforms or of what it is fitted on needs a new VERSION",
                encoder.version, newest.version, newest.definition
            )));
        }
        if definition == newest.definition && parameters == newest.parameters {
            return Ok(FitOutcome {
                encoder: name,
                version: newest.version,
                registered: false,
                rows: fit.fitted_on.rows,
                fitted_on: fit.fitted_on,
            });
        }
    }
    let version = versions.last().map_or(1, |v| v.version + 1);
    let record = EncoderRecord {
        encoder: name.clone(),
        version,
        definition_version: encoder.version,
        definition,
        parameters,
        fitted_on: serde_json::to_string(&fit.fitted_on).expect("records serialize"),
        rows: fit.fitted_on.rows,
        as_of,
        description: encoder.description.clone(),
        tags: serde_json::to_string(
            &encoder
                .tags
                .iter()
                .map(|(k, v)| (fengine_dialect::normalize_ident(k), v.clone()))
                .collect::<std::collections::BTreeMap<_, _>>(),
        )
        .expect("strings serialize"),
        origin: format!("pipeline {}", pipeline.path.display()),
        registered_at: Utc::now(),
        registered_by: backends.caller.identity().await,
    };
    write_encoder(backends, &record).await?;
    Ok(FitOutcome {
        encoder: name,
        version,
        registered: true,
        rows: fit.fitted_on.rows,
        fitted_on: fit.fitted_on,
    })
}
