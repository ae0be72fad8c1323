//! `fengine encoder`: fit the encoders a pipeline declares, read them, export them.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use fengine_engine::Error;

use super::{Output, PipelineArgs, ProfileArgs, parse_versioned, prepare};
use crate::output::encoders as print;

#[derive(Args)]
pub(crate) struct EncoderArgs {
    #[command(subcommand)]
    command: EncoderCommand,
}

#[derive(Subcommand)]
enum EncoderCommand {
    /// Fit each encoder a pipeline declares on all the rows of its FIT ON, in one pass, and
    /// register it as the encoder's next version unless its parameters are unchanged.
    Fit(FitArgs),
    /// An encoder version: its parameters, definition, and what it was fitted on.
    Show(ShowArgs),
    /// Write an encoder version as a file an inference container loads without fengine.
    Export(ExportArgs),
}

#[derive(Args)]
struct FitArgs {
    #[command(flatten)]
    pipeline: PipelineArgs,
}

#[derive(Args)]
struct ShowArgs {
    /// The encoder, as <name> or <name>@<version> [default version: the newest]
    #[arg(value_parser = parse_versioned)]
    encoder: (String, Option<u32>),
    #[arg(long, value_enum, default_value_t = Output::Text)]
    output: Output,
    #[command(flatten)]
    profile: ProfileArgs,
}

#[derive(Args)]
struct ExportArgs {
    /// The encoder, as <name> or <name>@<version> [default version: the newest]
    #[arg(value_parser = parse_versioned)]
    encoder: (String, Option<u32>),
    #[arg(long, value_enum)]
    format: ExportFormat,
    /// The file to write [default: standard output]
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    profile: ProfileArgs,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ExportFormat {
    /// The encoder's name, version and each transform's fitted parameters.
    Json,
    /// An ONNX model (opset 19 and ai.onnx.ml): an input per transformed column, one
    /// output `encoded` of the encoder's outputs, in float64.
    Onnx,
}

pub(crate) async fn run(args: EncoderArgs) -> Result<()> {
    match args.command {
        EncoderCommand::Fit(args) => fit(args).await,
        EncoderCommand::Show(args) => show(args).await,
        EncoderCommand::Export(args) => export(args).await,
    }
}

async fn fit(args: FitArgs) -> Result<()> {
    let (pipeline, options) = prepare(&args.pipeline, false)?;
    let backends = args.pipeline.profile.load().await?;
    let outcomes = fengine_engine::fit_encoders(&pipeline, &options, &backends).await?;
    print::print_fits(&outcomes, args.pipeline.output == Output::Json)
}

async fn show(args: ShowArgs) -> Result<()> {
    let backends = args.profile.load_existing().await?;
    let encoder = find(&backends, &args.encoder).await?;
    print::print_encoder(&encoder, args.output == Output::Json)
}

async fn export(args: ExportArgs) -> Result<()> {
    let backends = args.profile.load_existing().await?;
    let encoder = find(&backends, &args.encoder).await?;
    let bytes = match args.format {
        ExportFormat::Json => {
            let mut text = serde_json::to_string_pretty(&print::exported(&encoder))?;
            text.push('\n');
            text.into_bytes()
        }
        ExportFormat::Onnx => {
            fengine_engine::onnx_model(&encoder.encoder, encoder.version, &encoder.parameters)
        }
    };
    match (&args.out, args.format) {
        (Some(path), _) => std::fs::write(path, bytes)
            .map_err(|e| Error::Config(format!("cannot write '{}': {e}", path.display())))?,
        (None, ExportFormat::Json) => out!("{}", String::from_utf8_lossy(&bytes).trim_end()),
        (None, ExportFormat::Onnx) => bail!(Error::Config(
            "an ONNX model is binary: give the file to write with --out <file>".to_string()
        )),
    }
    Ok(())
}

/// The encoder `(name, version)`, registered.
pub(crate) async fn find(
    backends: &fengine_engine::Backends,
    (name, version): &(String, Option<u32>),
) -> Result<fengine_engine::EncoderDetail> {
    match fengine_engine::show_encoder(backends, name, *version).await? {
        Some(encoder) => Ok(encoder),
        None => bail!(Error::NotFound(format!(
            "no encoder '{name}' is fitted: fit it with `fengine encoder fit <pipeline.sql>`"
        ))),
    }
}
