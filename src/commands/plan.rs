//! `fengine plan`: check a pipeline and show what it would publish, or the IAM policy it
//! needs.

use anyhow::Result;
use clap::Args;

use super::{Output, PipelineArgs, prepare};
use crate::output;

#[derive(Args)]
pub(crate) struct PlanArgs {
    #[command(flatten)]
    pub(crate) pipeline: PipelineArgs,
    /// Print the least-privilege IAM policy that running the pipeline under the profile
    /// needs (S3 prefixes, Glue tables, DynamoDB tables, KMS key), instead of the plan.
    #[arg(long)]
    pub(crate) iam_policy: bool,
}

pub(crate) async fn run(args: PlanArgs) -> Result<()> {
    let (pipeline, options) = prepare(&args.pipeline, false)?;
    let profile = args.pipeline.profile.resolve()?;
    let backends = profile.backends().await?;
    let planned = fengine_engine::plan(&pipeline, &options, &backends).await?;
    if args.iam_policy {
        let policy = profile.iam_policy(&planned).await?;
        out!("{}", serde_json::to_string_pretty(&policy)?);
        return Ok(());
    }
    let swept = fengine_engine::swept_groups(&planned).await?;
    output::print_plan(
        &planned,
        &swept,
        &options,
        &backends,
        args.pipeline.output == Output::Json,
    )
}
