//! `fengine status`: per feature group of a pipeline, when it last ran and which of its
//! inputs changed since — what `run --if-changed` would compute.

use anyhow::Result;
use clap::Args;
use fengine_engine::GroupStatus;

use super::{Output, PipelineArgs, prepare};

#[derive(Args)]
pub(crate) struct StatusArgs {
    #[command(flatten)]
    pub(crate) pipeline: PipelineArgs,
}

pub(crate) async fn run(args: StatusArgs) -> Result<()> {
    let (pipeline, options) = prepare(&args.pipeline, false)?;
    let backends = args.pipeline.profile.load_existing().await?;
    let statuses = fengine_engine::status(&pipeline, &options, &backends).await?;
    if args.pipeline.output == Output::Json {
        out!("{}", serde_json::to_string_pretty(&statuses)?);
        return Ok(());
    }
    for status in &statuses {
        out!("{}", line(status));
    }
    Ok(())
}

fn line(status: &GroupStatus) -> String {
    let name = format!("{} v{}", status.group, status.version);
    let last = match &status.last_run {
        Some(last) => format!(
            "last run {} (as-of {}{})",
            last.run_id,
            time(last.as_of),
            last.written_at
                .map(|t| format!(", written {}", time(t)))
                .unwrap_or_default()
        ),
        None => "never run".to_string(),
    };
    match status.changed.as_slice() {
        [] => format!("{name}: unchanged; {last}"),
        changed => format!("{name}: changed: {}; {last}", changed.join(", ")),
    }
}

fn time(time: chrono::DateTime<chrono::Utc>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
