//! `fengine`: SQL feature pipelines on DataFusion, published as catalogued Parquet
//! snapshots and online values.

#[macro_use]
mod output;
mod profile;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand, ValueEnum};
use fengine_engine::{
    BackfillOptions, Error, ErrorKind, FeatureRequest, RunOptions, SpineSource, TrainingSetRequest,
};

/// Exit codes, documented in the README: a scheduler retries only infrastructure faults
/// that pass (4), never those that last until someone acts (5).
const EXIT_NOT_FOUND: u8 = 1;
const EXIT_BAD_INPUT: u8 = 2;
const EXIT_CHECK_FAILED: u8 = 3;
const EXIT_INFRASTRUCTURE: u8 = 4;
const EXIT_PERMANENT_FAULT: u8 = 5;

#[derive(Parser)]
#[command(
    name = "fengine",
    version,
    about = "SQL feature pipelines on DataFusion"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a pipeline, compute its feature groups, publish their snapshots and load the
    /// latest values online.
    Run(RunArgs),
    /// Run a pipeline at every as-of of a range: a snapshot each, registered like a run's;
    /// registered as-ofs are skipped, so a killed backfill resumes; only the newest as-of
    /// goes online.
    Backfill(BackfillArgs),
    /// Check a pipeline and show what each feature group would publish; writes nothing.
    Plan(PlanArgs),
    /// Print a key's online row as one JSON object.
    Get(GetArgs),
    /// Join feature values to a spine of labelled rows, each row getting the values known at
    /// its time (a point-in-time join), and write the result as Parquet.
    TrainingSet(TrainingSetArgs),
}

#[derive(Args)]
struct ProfileArgs {
    /// The profile in the config file; without one, the embedded defaults.
    #[arg(long, env = "FENGINE_PROFILE")]
    profile: Option<String>,
    /// The config file [default: ./fengine.toml]
    #[arg(long, env = "FENGINE_CONFIG")]
    config: Option<PathBuf>,
}

impl ProfileArgs {
    fn resolve(&self) -> Result<profile::ResolvedProfile> {
        profile::resolve(self.config.as_deref(), self.profile.as_deref())
    }

    async fn load(&self) -> Result<fengine_engine::Backends> {
        self.resolve()?.backends().await
    }

    /// The backends of a command that only reads: creates no warehouse.
    async fn load_existing(&self) -> Result<fengine_engine::Backends> {
        self.resolve()?.existing_backends().await
    }
}

#[derive(Args)]
struct PipelineArgs {
    /// The pipeline file.
    pipeline: PathBuf,
    /// The snapshot time, RFC 3339 in whole seconds [default: now]
    #[arg(long, value_parser = parse_as_of)]
    as_of: Option<DateTime<Utc>>,
    /// A run parameter for param('name'); repeat for more.
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = parse_param)]
    params: Vec<(String, String)>,
    #[arg(long, value_enum, default_value_t = Output::Text)]
    output: Output,
    #[command(flatten)]
    profile: ProfileArgs,
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    pipeline: PipelineArgs,
    /// Load the online store even if it holds values of a later as-of.
    #[arg(long)]
    force: bool,
}

#[derive(Args)]
struct BackfillArgs {
    /// The pipeline file.
    pipeline: PathBuf,
    /// The first as-of, RFC 3339.
    #[arg(long, value_parser = parse_as_of)]
    from: DateTime<Utc>,
    /// The last as-of, RFC 3339; included when the steps land on it.
    #[arg(long, value_parser = parse_as_of)]
    to: DateTime<Utc>,
    /// The step between as-ofs: 1d, 6h, 15m, 30s.
    #[arg(long, value_parser = fengine_engine::parse_every)]
    every: std::time::Duration,
    /// A run parameter for param('name'); repeat for more.
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = parse_param)]
    params: Vec<(String, String)>,
    /// Recompute as-ofs that are registered already, and load the newest online even over
    /// a later as-of.
    #[arg(long)]
    force: bool,
    #[arg(long, value_enum, default_value_t = Output::Text)]
    output: Output,
    #[command(flatten)]
    profile: ProfileArgs,
}

#[derive(Args)]
struct PlanArgs {
    #[command(flatten)]
    pipeline: PipelineArgs,
    /// Print the least-privilege IAM policy that running the pipeline under the profile
    /// needs (S3 prefixes, Glue tables, DynamoDB tables, KMS key), instead of the plan.
    #[arg(long)]
    iam_policy: bool,
}

#[derive(Args)]
struct GetArgs {
    /// The feature group.
    group: String,
    /// The key's values, in KEY order.
    #[arg(required = true)]
    key: Vec<String>,
    /// The group version [default: the newest loaded]
    #[arg(long)]
    version: Option<u32>,
    #[command(flatten)]
    profile: ProfileArgs,
}

#[derive(Args)]
struct TrainingSetArgs {
    /// The spine: a Parquet file or folder (local or s3://), a catalogued table
    /// (glue.<database>.<table>), or a .sql file whose last statement is the query.
    #[arg(long)]
    spine: SpineSource,
    /// The spine's time column: each row gets the feature values known at this time.
    #[arg(long)]
    timestamp: String,
    /// <group>[@<version>][.<feature>,...]: a group's features (all without a list) of a
    /// version (the newest without one); repeat for more groups.
    #[arg(long = "features", required = true, value_name = "GROUP[.FEATURE,...]")]
    features: Vec<FeatureRequest>,
    /// Where to write: a .parquet file, or a folder (that gets part-00000.parquet).
    #[arg(long)]
    out: String,
    /// Count a feature row only once the snapshot holding it was written (its as-of at or
    /// before the spine time): later corrections and backfills do not leak into older labels.
    #[arg(long)]
    as_written: bool,
    /// Also register the training set in the catalog as this table, with the groups,
    /// features and snapshots it was built from.
    #[arg(long, value_name = "TABLE")]
    register: Option<String>,
    #[arg(long, value_enum, default_value_t = Output::Text)]
    output: Output,
    #[command(flatten)]
    profile: ProfileArgs,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    /// A line per feature group.
    Text,
    /// The run manifest or plan as JSON.
    Json,
}

/// Stacks for the thread that plans and for the runtime's workers. Planning and running an
/// expression recurse once per level of its nesting (up to the dialect's
/// MAX_EXPRESSION_DEPTH) in places DataFusion cannot guard, such as derived `Clone` and
/// `Drop`; the memory is reserved, and touched only as deep as a plan goes.
const PLANNING_STACK_BYTES: usize = 256 << 20;
const WORKER_STACK_BYTES: usize = 64 << 20;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = std::thread::Builder::new()
        .name("fengine".to_string())
        .stack_size(PLANNING_STACK_BYTES)
        .spawn(move || run_command(cli));
    match command.map(|thread| thread.join()) {
        Ok(Ok(code)) => code,
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(e) => {
            eprintln!("fengine: cannot start a thread: {e}");
            ExitCode::from(EXIT_INFRASTRUCTURE)
        }
    }
}

fn run_command(cli: Cli) -> ExitCode {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(WORKER_STACK_BYTES)
        .build();
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("fengine: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_INFRASTRUCTURE);
        }
    };
    runtime.spawn(stop_on_signal());
    match runtime.block_on(execute(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("fengine: {error:#}");
            ExitCode::from(exit_code(&error))
        }
    }
}

/// How long a run told to stop may take to reach a safe point before the process exits
/// anyway: ECS kills a task 30 s after SIGTERM.
const STOP_DEADLINE: std::time::Duration = std::time::Duration::from_secs(20);

/// On SIGTERM or SIGINT, asks the run to stop at its next safe point (it then exits with
/// the retryable code, saying what it published); on a second signal or past the deadline,
/// exits at once: registration is atomic, so nothing is left half-registered, and the
/// leases lapse.
async fn stop_on_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut terminate), Ok(mut interrupt)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return;
    };
    let name = tokio::select! {
        _ = terminate.recv() => "SIGTERM",
        _ = interrupt.recv() => "SIGINT",
    };
    eprintln!("fengine: {name}: stopping at the next safe point (a second signal stops at once)");
    fengine_engine::interrupt(name);
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
        _ = tokio::time::sleep(STOP_DEADLINE) => {}
    }
    eprintln!(
        "fengine: {name}: stopped before a safe point; nothing is half-registered, and the \
         next run completes what this one left"
    );
    std::process::exit(i32::from(EXIT_INFRASTRUCTURE));
}

fn exit_code(error: &anyhow::Error) -> u8 {
    match error.downcast_ref::<Error>().map(Error::kind) {
        Some(ErrorKind::NotFound) => EXIT_NOT_FOUND,
        Some(ErrorKind::BadInput) => EXIT_BAD_INPUT,
        Some(ErrorKind::CheckFailed) => EXIT_CHECK_FAILED,
        Some(ErrorKind::PermanentFault) => EXIT_PERMANENT_FAULT,
        Some(ErrorKind::Infrastructure) | None => EXIT_INFRASTRUCTURE,
    }
}

async fn execute(command: Command) -> Result<()> {
    match command {
        Command::Run(args) => {
            let (pipeline, options) = prepare(&args.pipeline, args.force)?;
            let backends = args.pipeline.profile.load().await?;
            let manifest = fengine_engine::run(&pipeline, &options, &backends).await?;
            output::print_manifest(&manifest, args.pipeline.output == Output::Json)
        }
        Command::Backfill(args) => {
            let pipeline = fengine_dialect::load_pipeline(&args.pipeline).map_err(Error::from)?;
            let mut run = RunOptions::new(args.from);
            run.force = args.force;
            run.params = collect_params(&args.params)?;
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
            output::print_backfill(&manifest?, args.output == Output::Json)
        }
        Command::Plan(args) => {
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
        Command::TrainingSet(args) => {
            let backends = args.profile.load().await?;
            let request = TrainingSetRequest {
                spine: args.spine,
                timestamp: args.timestamp,
                features: args.features,
                out: args.out,
                as_written: args.as_written,
                register: args.register,
            };
            let manifest = fengine_engine::build_training_set(&request, &backends).await?;
            output::print_training_set(&manifest, args.output == Output::Json)
        }
        Command::Get(args) => {
            let backends = args.profile.load_existing().await?;
            let row = fengine_engine::get(&backends, &args.group, args.version, &args.key).await?;
            out!("{}", serde_json::Value::Object(row.values));
            Ok(())
        }
    }
}

fn prepare(args: &PipelineArgs, force: bool) -> Result<(fengine_dialect::Pipeline, RunOptions)> {
    let pipeline =
        fengine_dialect::load_pipeline(Path::new(&args.pipeline)).map_err(Error::from)?;
    let mut options = match args.as_of {
        Some(as_of) => RunOptions::new(as_of),
        None => RunOptions::now(),
    };
    options.force = force;
    options.params = collect_params(&args.params)?;
    Ok((pipeline, options))
}

fn collect_params(given: &[(String, String)]) -> Result<BTreeMap<String, String>> {
    let mut params = BTreeMap::new();
    for (name, value) in given {
        if params.insert(name.clone(), value.clone()).is_some() {
            bail!(Error::Config(format!(
                "--param {name} is given more than once"
            )));
        }
    }
    Ok(params)
}

fn parse_as_of(text: &str) -> Result<DateTime<Utc>> {
    let time = DateTime::parse_from_rfc3339(text).with_context(|| {
        format!("'{text}' is not an RFC 3339 time such as 2024-03-01T00:00:00Z")
    })?;
    Ok(time.with_timezone(&Utc))
}

fn parse_param(text: &str) -> Result<(String, String)> {
    let Some((name, value)) = text.split_once('=') else {
        bail!("'{text}' is not NAME=VALUE");
    };
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        bail!("parameter name '{name}' may hold only letters, digits and underscores");
    }
    Ok((name.to_string(), value.to_string()))
}
