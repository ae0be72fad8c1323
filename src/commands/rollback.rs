//! `fengine rollback`: the online store put back to an earlier registered snapshot.

use anyhow::Result;
use chrono::{DateTime, Utc};
use clap::Args;
use fengine_engine::RollbackRequest;

use super::{Output, ProfileArgs, parse_as_of};
use crate::output::catalogue as print;

#[derive(Args)]
pub(crate) struct RollbackArgs {
    /// The feature group.
    group: String,
    /// The version [default: the newest not retired]
    #[arg(long)]
    version: Option<u32>,
    /// The as-of of the registered snapshot to serve, RFC 3339.
    #[arg(long, value_parser = parse_as_of)]
    to: DateTime<Utc>,
    /// Why, for the group's history.
    #[arg(long)]
    reason: Option<String>,
    #[arg(long, value_enum, default_value_t = Output::Text)]
    output: Output,
    #[command(flatten)]
    profile: ProfileArgs,
}

pub(crate) async fn run(args: RollbackArgs) -> Result<()> {
    let backends = args.profile.load_existing().await?;
    let request = RollbackRequest {
        group: args.group,
        version: args.version,
        to: args.to,
        reason: args.reason,
    };
    let outcome = fengine_engine::rollback(&backends, &request).await?;
    print::print_rollback(&outcome, args.output == Output::Json)
}
