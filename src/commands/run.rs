//! `fengine run`: plan, compute and publish each group of a pipeline once.

use anyhow::Result;
use clap::Args;

use super::{Output, PipelineArgs, prepare};
use crate::output;

#[derive(Args)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    pub(crate) pipeline: PipelineArgs,
    /// Load the online store even if it holds values of a later as-of.
    #[arg(long)]
    pub(crate) force: bool,
}

pub(crate) async fn run(args: RunArgs) -> Result<()> {
    let (pipeline, options) = prepare(&args.pipeline, args.force)?;
    let backends = args.pipeline.profile.load().await?;
    let manifest = fengine_engine::run(&pipeline, &options, &backends).await?;
    output::print_manifest(&manifest, args.pipeline.output == Output::Json)
}
