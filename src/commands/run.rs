//! `fengine run`: plan, compute and publish each group of one or more pipelines once,
//! pipelines that read published groups (`features.<group>`) after those defining them.

use std::path::PathBuf;

use anyhow::Result;
use chrono::{DateTime, Utc};
use clap::Args;
use fengine_engine::Error;

use super::{Outcome, Output, PipelineArgs, SchedulerArgs, parse_as_of, prepare};
use crate::output;

#[derive(Args)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    pub(crate) pipeline: PipelineArgs,
    /// More pipeline files, run in the order their `features.` reads need.
    #[arg(value_name = "PIPELINE")]
    pub(crate) more: Vec<PathBuf>,
    /// Load the online store even if it holds values of a later as-of.
    #[arg(long)]
    pub(crate) force: bool,
    /// Read this snapshot of a `features.` source (time travel) instead of the newest at or
    /// before the as-of; repeat for more groups.
    #[arg(long = "snapshot", value_name = "GROUP=AS-OF", value_parser = parse_snapshot)]
    pub(crate) snapshots: Vec<(String, DateTime<Utc>)>,
    /// Compute only the groups something they read changed for since their last run
    /// (sources' files, Glue partitions, `features.` snapshots, the pipeline's text, the
    /// params); when none did, write nothing and exit 6.
    #[arg(long)]
    pub(crate) if_changed: bool,
    #[command(flatten)]
    pub(crate) scheduler: SchedulerArgs,
}

pub(crate) async fn run(args: RunArgs) -> Result<Outcome> {
    let (first, mut options) = prepare(&args.pipeline, args.force)?;
    args.scheduler.apply(&mut options);
    options.if_changed = args.if_changed;
    for (group, as_of) in &args.snapshots {
        if options.snapshots.insert(group.clone(), *as_of).is_some() {
            anyhow::bail!(Error::Config(format!(
                "--snapshot {group} is given more than once"
            )));
        }
    }
    let mut pipelines = vec![first];
    for path in &args.more {
        pipelines.push(fengine_dialect::load_pipeline(path).map_err(Error::from)?);
    }
    let pipelines = fengine_engine::order_pipelines(pipelines)?;
    let backends = args.pipeline.profile.load().await?;
    let as_json = args.pipeline.output == Output::Json;
    tracing::info!(
        pipelines = pipelines.len(),
        as_of = %options.as_of.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "run started"
    );
    let mut manifests = Vec::with_capacity(pipelines.len());
    for pipeline in &pipelines {
        let manifest = fengine_engine::run(pipeline, &options, &backends).await?;
        if !as_json {
            output::print_manifest(&manifest, false)?;
        }
        manifests.push(manifest);
    }
    match manifests.as_slice() {
        [one] => args.scheduler.deliver(&backends, one).await?,
        many => args.scheduler.deliver(&backends, &many).await?,
    }
    tracing::info!("run finished");
    match (as_json, manifests.as_slice()) {
        (true, [one]) => output::print_manifest(one, true)?,
        (true, many) => out!("{}", serde_json::to_string_pretty(many)?),
        (false, _) => {}
    }
    Ok(outcome(&manifests))
}

/// Nothing to do when no group was computed and at least one was found unchanged.
fn outcome(manifests: &[fengine_engine::RunManifest]) -> Outcome {
    let computed = manifests.iter().any(|m| !m.groups.is_empty());
    let unchanged: Vec<String> = manifests
        .iter()
        .flat_map(|m| &m.unchanged)
        .map(|g| format!("{} v{} (run {})", g.group, g.version, g.run_id))
        .collect();
    match (computed, unchanged.is_empty()) {
        (false, false) => Outcome::NothingToDo(format!(
            "nothing to do: nothing read changed since the last run of {}",
            unchanged.join(", ")
        )),
        _ => Outcome::Done,
    }
}

fn parse_snapshot(text: &str) -> Result<(String, DateTime<Utc>)> {
    let Some((group, as_of)) = text.split_once('=') else {
        anyhow::bail!("'{text}' is not GROUP=AS-OF");
    };
    Ok((group.to_string(), parse_as_of(as_of)?))
}
