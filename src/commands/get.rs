//! `fengine get`: a key's online row.

use anyhow::Result;
use clap::Args;

use super::ProfileArgs;

#[derive(Args)]
pub(crate) struct GetArgs {
    /// The feature group.
    pub(crate) group: String,
    /// The key's values, in KEY order.
    #[arg(required = true)]
    pub(crate) key: Vec<String>,
    /// The group version [default: the newest loaded]
    #[arg(long)]
    pub(crate) version: Option<u32>,
    #[command(flatten)]
    pub(crate) profile: ProfileArgs,
}

pub(crate) async fn run(args: GetArgs) -> Result<()> {
    let backends = args.profile.load_existing().await?;
    let row = fengine_engine::get(&backends, &args.group, args.version, &args.key).await?;
    out!("{}", serde_json::Value::Object(row.values));
    Ok(())
}
