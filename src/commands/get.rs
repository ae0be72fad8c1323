//! `fengine get`: a key's online row.

use anyhow::Result;
use clap::Args;

use super::{ProfileArgs, parse_versioned};

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
    /// Return the features this encoder (version) transforms encoded, as training sets
    /// encode them: without a version, its newest.
    #[arg(long, value_name = "ENCODER[@VERSION]", value_parser = parse_versioned)]
    pub(crate) encode: Option<(String, Option<u32>)>,
    #[command(flatten)]
    pub(crate) profile: ProfileArgs,
}

pub(crate) async fn run(args: GetArgs) -> Result<()> {
    let backends = args.profile.load_existing().await?;
    let row = fengine_engine::get(&backends, &args.group, args.version, &args.key).await?;
    let values = match &args.encode {
        None => row.values,
        Some(encoder) => {
            let encoder = super::encoder::find(&backends, encoder).await?;
            fengine_engine::encode_row(&encoder.encoder, &encoder.parameters, &row.values)?
        }
    };
    out!("{}", serde_json::Value::Object(values));
    Ok(())
}
