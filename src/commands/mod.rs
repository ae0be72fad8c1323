//! One module per command, and the option groups they share.

pub(crate) mod backfill;
pub(crate) mod catalog;
pub(crate) mod encoder;
pub(crate) mod get;
pub(crate) mod plan;
pub(crate) mod rollback;
pub(crate) mod run;
pub(crate) mod status;
pub(crate) mod training_set;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use clap::{Args, ValueEnum};
use fengine_engine::{Error, RunOptions};

use crate::profile;

#[derive(Args)]
pub(crate) struct ProfileArgs {
    /// The profile in the config file; without one, the embedded defaults.
    #[arg(long, env = "FENGINE_PROFILE")]
    pub(crate) profile: Option<String>,
    /// The config file [default: ./fengine.toml]
    #[arg(long, env = "FENGINE_CONFIG")]
    pub(crate) config: Option<PathBuf>,
}

impl ProfileArgs {
    pub(crate) fn resolve(&self) -> Result<profile::ResolvedProfile> {
        profile::resolve(self.config.as_deref(), self.profile.as_deref())
    }

    pub(crate) async fn load(&self) -> Result<fengine_engine::Backends> {
        self.resolve()?.backends().await
    }

    /// The backends of a command that only reads: creates no warehouse.
    pub(crate) async fn load_existing(&self) -> Result<fengine_engine::Backends> {
        self.resolve()?.existing_backends().await
    }
}

#[derive(Args)]
pub(crate) struct PipelineArgs {
    /// The pipeline file.
    pub(crate) pipeline: PathBuf,
    /// The snapshot time, RFC 3339 in whole seconds [default: now]
    #[arg(long, value_parser = parse_as_of)]
    pub(crate) as_of: Option<DateTime<Utc>>,
    /// A run parameter for param('name'); repeat for more.
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = parse_param)]
    pub(crate) params: Vec<(String, String)>,
    #[arg(long, value_enum, default_value_t = Output::Text)]
    pub(crate) output: Output,
    #[command(flatten)]
    pub(crate) profile: ProfileArgs,
}

/// What a scheduler gives a run that publishes.
#[derive(Args)]
pub(crate) struct SchedulerArgs {
    /// Names the run in its files, the catalog, the manifest and every log line; a retry
    /// with the same id and as-of completes the first attempt's work instead of redoing it
    /// [default: generated]
    #[arg(long, value_parser = parse_run_id)]
    pub(crate) run_id: Option<String>,
    /// Also write the manifest (JSON) here: a file, or an s3:// URL on an AWS profile.
    #[arg(long, value_name = "PATH|URL")]
    pub(crate) manifest: Option<String>,
    /// The SageMaker Processing job the process runs in, from its configuration.
    #[arg(skip)]
    pub(crate) job_name: Option<String>,
}

impl SchedulerArgs {
    /// Gives the run its id and job.
    pub(crate) fn apply(&self, options: &mut RunOptions) {
        if let Some(run_id) = &self.run_id {
            options.run_id = run_id.clone();
        }
        options.job_name = self.job_name.clone();
    }

    /// Writes the manifest where `--manifest` says, if it does.
    pub(crate) async fn deliver(
        &self,
        backends: &fengine_engine::Backends,
        manifest: &impl serde::Serialize,
    ) -> Result<()> {
        let Some(target) = &self.manifest else {
            return Ok(());
        };
        let bytes = serde_json::to_vec_pretty(manifest)?;
        fengine_engine::deliver_manifest(backends, target, bytes).await?;
        tracing::info!(manifest = %target, "manifest written");
        Ok(())
    }
}

fn parse_run_id(text: &str) -> Result<String> {
    fengine_engine::check_run_id(text)?;
    Ok(text.to_string())
}

/// How a command that did not fail ended.
pub(crate) enum Outcome {
    Done,
    /// `run --if-changed` found every group's last run standing: why, for the scheduler.
    NothingToDo(String),
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Output {
    /// A line per feature group.
    Text,
    /// The run manifest or plan as JSON.
    Json,
}

pub(crate) fn prepare(
    args: &PipelineArgs,
    force: bool,
) -> Result<(fengine_dialect::Pipeline, RunOptions)> {
    let pipeline =
        fengine_dialect::load_pipeline(Path::new(&args.pipeline)).map_err(Error::from)?;
    let mut options = match args.as_of {
        Some(as_of) => RunOptions::new(as_of),
        None => RunOptions::now(),
    };
    options.force = force;
    options.params = collect_params(&args.params)?;
    Ok((pipeline, options))
}

pub(crate) fn collect_params(given: &[(String, String)]) -> Result<BTreeMap<String, String>> {
    let mut params = BTreeMap::new();
    for (name, value) in given {
        if params.insert(name.clone(), value.clone()).is_some() {
            bail!(Error::Config(format!(
                "--param {name} is given more than once"
            )));
        }
    }
    Ok(params)
}

pub(crate) fn parse_as_of(text: &str) -> Result<DateTime<Utc>> {
    let time = DateTime::parse_from_rfc3339(text).with_context(|| {
        format!("'{text}' is not an RFC 3339 time such as 2024-03-01T00:00:00Z")
    })?;
    Ok(time.with_timezone(&Utc))
}

pub(crate) fn parse_param(text: &str) -> Result<(String, String)> {
    let Some((name, value)) = text.split_once('=') else {
        bail!("'{text}' is not NAME=VALUE");
    };
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        bail!("parameter name '{name}' may hold only letters, digits and underscores");
    }
    Ok((name.to_string(), value.to_string()))
}

/// `<name>[@<version>]` of a model or an encoder.
pub(crate) fn parse_versioned(text: &str) -> Result<(String, Option<u32>)> {
    match text.split_once('@') {
        None => Ok((text.to_string(), None)),
        Some((name, version)) => match version.parse::<u32>() {
            Ok(version) if version > 0 => Ok((name.to_string(), Some(version))),
            _ => anyhow::bail!("'{version}' is not a version (a positive whole number)"),
        },
    }
}
