//! `fengine training-set`: a point-in-time join of features to a spine.

use anyhow::Result;
use clap::Args;
use fengine_engine::{FeatureRequest, SpineSource, TrainingSetRequest};

use super::{Output, ProfileArgs, parse_versioned};
use crate::output;

#[derive(Args)]
pub(crate) struct TrainingSetArgs {
    /// The spine: a Parquet file or folder (local or s3://), a catalogued table
    /// (glue.<database>.<table>), or a .sql file whose last statement is the query.
    #[arg(long)]
    pub(crate) spine: SpineSource,
    /// The spine's time column: each row gets the feature values known at this time.
    #[arg(long)]
    pub(crate) timestamp: String,
    /// <group>[@<version>][.<feature>,...]: a group's features (all without a list) of a
    /// version (the newest without one); repeat for more groups.
    #[arg(long = "features", required = true, value_name = "GROUP[.FEATURE,...]")]
    pub(crate) features: Vec<FeatureRequest>,
    /// Where to write: a .parquet file, or a folder (that gets part-00000.parquet).
    #[arg(long)]
    pub(crate) out: String,
    /// Count a feature row only once the snapshot holding it was written (its as-of at or
    /// before the spine time): later corrections and backfills do not leak into older labels.
    #[arg(long)]
    pub(crate) as_written: bool,
    /// Also register the training set in the catalog as this table, with the groups,
    /// features and snapshots it was built from.
    #[arg(long, value_name = "TABLE")]
    pub(crate) register: Option<String>,
    /// Record, in the catalogue, that this model (version) uses the features requested:
    /// without a version, the newest registered if its features are the same, else the next.
    #[arg(long, value_name = "NAME[@VERSION]", value_parser = parse_versioned)]
    pub(crate) model: Option<(String, Option<u32>)>,
    /// Write the columns this encoder (version) transforms encoded, as it was fitted:
    /// without a version, its newest.
    #[arg(long, value_name = "ENCODER[@VERSION]", value_parser = parse_versioned)]
    pub(crate) encode: Option<(String, Option<u32>)>,
    #[arg(long, value_enum, default_value_t = Output::Text)]
    pub(crate) output: Output,
    #[command(flatten)]
    pub(crate) profile: ProfileArgs,
}

pub(crate) async fn run(args: TrainingSetArgs) -> Result<()> {
    let backends = args.profile.load().await?;
    let request = TrainingSetRequest {
        spine: args.spine,
        timestamp: args.timestamp,
        features: args.features,
        out: args.out,
        as_written: args.as_written,
        register: args.register,
        model: args.model,
        encode: args.encode,
    };
    let manifest = fengine_engine::build_training_set(&request, &backends).await?;
    output::print_training_set(&manifest, args.output == Output::Json)
}
