//! `fengine backfill`: a snapshot at every as-of of a range.

use std::path::PathBuf;

use anyhow::Result;
use chrono::{DateTime, Utc};
use clap::Args;
use fengine_engine::{BackfillOptions, Error, RunOptions};

use super::{Output, ProfileArgs, SchedulerArgs, collect_params, parse_as_of, parse_param};
use crate::output;

#[derive(Args)]
pub(crate) struct BackfillArgs {
    /// The pipeline file.
    pub(crate) pipeline: PathBuf,
    /// The first as-of, RFC 3339.
    #[arg(long, value_parser = parse_as_of)]
    pub(crate) from: DateTime<Utc>,
    /// The last as-of, RFC 3339; included when the steps land on it.
    #[arg(long, value_parser = parse_as_of)]
    pub(crate) to: DateTime<Utc>,
    /// The step between as-ofs: 1d, 6h, 15m, 30s.
    #[arg(long, value_parser = fengine_engine::parse_every)]
    pub(crate) every: std::time::Duration,
    /// A run parameter for param('name'); repeat for more.
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = parse_param)]
    pub(crate) params: Vec<(String, String)>,
    /// Recompute as-ofs that are registered already, and load the newest online even over
    /// a later as-of.
    #[arg(long)]
    pub(crate) force: bool,
    #[arg(long, value_enum, default_value_t = Output::Text)]
    pub(crate) output: Output,
    #[command(flatten)]
    pub(crate) profile: ProfileArgs,
    #[command(flatten)]
    pub(crate) scheduler: SchedulerArgs,
}

pub(crate) async fn run(args: BackfillArgs) -> Result<()> {
    let pipeline = fengine_dialect::load_pipeline(&args.pipeline).map_err(Error::from)?;
    let mut run = RunOptions::new(args.from);
    run.force = args.force;
    run.params = collect_params(&args.params)?;
    args.scheduler.apply(&mut run);
    let options = BackfillOptions {
        from: args.from,
        to: args.to,
        every: args.every,
        run,
    };
    let backends = args.profile.load().await?;
    let mut progress = output::BackfillBar::new();
    let manifest = fengine_engine::backfill(&pipeline, &options, &backends, &mut |done| {
        progress.advance(done)
    })
    .await;
    progress.finish();
    let manifest = manifest?;
    args.scheduler.deliver(&backends, &manifest).await?;
    output::print_backfill(&manifest, args.output == Output::Json)
}
