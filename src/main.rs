//! `fengine`: SQL feature pipelines on DataFusion, published as catalogued Parquet
//! snapshots and online values. This file parses the command line, runs the command (one
//! module each under `commands/`) on its threads, and maps errors to exit codes.

#[macro_use]
mod output;
mod commands;
mod logging;
mod profile;
mod sagemaker;

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};
use fengine_engine::{Error, ErrorKind};

use crate::commands::Outcome;
use crate::logging::LogFormat;
use crate::sagemaker::ProcessingJob;

/// Exit codes, documented in the README: a scheduler retries only infrastructure faults
/// that pass (4), never those that last until someone acts (5).
const EXIT_NOT_FOUND: u8 = 1;
const EXIT_BAD_INPUT: u8 = 2;
const EXIT_CHECK_FAILED: u8 = 3;
const EXIT_INFRASTRUCTURE: u8 = 4;
const EXIT_PERMANENT_FAULT: u8 = 5;
/// `run --if-changed` computed nothing: a scheduler's branch, not a failure.
const EXIT_NOTHING_TO_DO: u8 = 6;

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
    Run(commands::run::RunArgs),
    /// Run a pipeline at every as-of of a range: a snapshot each, registered like a run's;
    /// registered as-ofs are skipped, so a killed backfill resumes; only the newest as-of
    /// goes online.
    Backfill(commands::backfill::BackfillArgs),
    /// Check a pipeline and show what each feature group would publish; writes nothing.
    Plan(commands::plan::PlanArgs),
    /// Print a key's online row as one JSON object.
    Get(commands::get::GetArgs),
    /// Find, read and retire published feature groups and models.
    Catalog(commands::catalog::CatalogArgs),
    /// Fit encoders (scalers, one-hot, buckets) on all the rows of a query, keep them as
    /// versioned catalogue objects, and export them.
    Encoder(commands::encoder::EncoderArgs),
    /// Say per feature group of a pipeline which of its inputs changed since its last run,
    /// and when that was; reads no data.
    Status(commands::status::StatusArgs),
    /// Put the online store back to an earlier registered snapshot, in one step; newer
    /// snapshots are set aside (kept), and the rollback recorded in the group's history.
    Rollback(commands::rollback::RollbackArgs),
    /// Join feature values to a spine of labelled rows, each row getting the values known at
    /// its time (a point-in-time join), and write the result as Parquet.
    TrainingSet(commands::training_set::TrainingSetArgs),
}

/// Stacks for the thread that plans and for the runtime's workers. Planning and running an
/// expression recurse once per level of its nesting (up to the dialect's
/// MAX_EXPRESSION_DEPTH) in places DataFusion cannot guard, such as derived `Clone` and
/// `Drop`; the memory is reserved, and touched only as deep as a plan goes.
const PLANNING_STACK_BYTES: usize = 256 << 20;
const WORKER_STACK_BYTES: usize = 64 << 20;

fn main() -> ExitCode {
    let logs = logging::init();
    let cli = Cli::parse();
    let command = std::thread::Builder::new()
        .name("fengine".to_string())
        .stack_size(PLANNING_STACK_BYTES)
        .spawn(move || run_command(cli, logs));
    match command.map(|thread| thread.join()) {
        Ok(Ok(code)) => code,
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(e) => {
            tracing::error!("cannot start a thread: {e}");
            ExitCode::from(EXIT_INFRASTRUCTURE)
        }
    }
}

fn run_command(mut cli: Cli, logs: LogFormat) -> ExitCode {
    let job = sagemaker::processing_job();
    if let Some(scheduled) = cli.command.scheduled() {
        let run_id = scheduled
            .run_id
            .get_or_insert_with(fengine_engine::new_run_id);
        logging::set_identity(run_id, job.as_ref().map(|j| j.name.as_str()));
        scheduled.job_name = job.as_ref().map(|j| j.name.clone());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(WORKER_STACK_BYTES)
        .build();
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!("cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_INFRASTRUCTURE);
        }
    };
    runtime.spawn(stop_on_signal());
    match runtime.block_on(execute(cli.command)) {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::NothingToDo(why)) => nothing_to_do(&why, logs, job.as_ref()),
        Err(error) => ExitCode::from(report(&error, logs, job.as_ref())),
    }
}

/// Says why the run computed nothing, as [`report`] says why one failed.
fn nothing_to_do(why: &str, logs: LogFormat, job: Option<&ProcessingJob>) -> ExitCode {
    match logs {
        LogFormat::Text => eprintln!("fengine: {why}"),
        LogFormat::Json => tracing::info!(exit_code = EXIT_NOTHING_TO_DO, "{why}"),
    }
    match job {
        // SageMaker marks a job whose container exits other than 0 Failed.
        Some(job) => {
            job.write_exit_message(why);
            ExitCode::SUCCESS
        }
        None => ExitCode::from(EXIT_NOTHING_TO_DO),
    }
}

/// Says why the command failed — a line for a person, a JSON line for a scheduler, and the
/// Processing job's exit message — and returns the exit code.
fn report(error: &anyhow::Error, logs: LogFormat, job: Option<&ProcessingJob>) -> u8 {
    let code = exit_code(error);
    let message = format!("{error:#}");
    match logs {
        LogFormat::Text => eprintln!("fengine: {message}"),
        LogFormat::Json => tracing::error!(
            exit_code = code,
            retryable = code == EXIT_INFRASTRUCTURE,
            "{message}"
        ),
    }
    if let Some(job) = job {
        job.write_exit_message(&format!("fengine exit {code}: {message}"));
    }
    code
}

/// How long a run told to stop may take to reach a safe point before the process exits
/// anyway: ECS kills a task 30 s after SIGTERM.
/// Eight seconds keeps the whole stop within ten.
const STOP_DEADLINE: std::time::Duration = std::time::Duration::from_secs(8);

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
    tracing::warn!(
        signal = name,
        "{name}: stopping at the next safe point (a second signal stops at once)"
    );
    fengine_engine::interrupt(name);
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
        _ = tokio::time::sleep(STOP_DEADLINE) => {}
    }
    tracing::error!(
        signal = name,
        exit_code = EXIT_INFRASTRUCTURE,
        retryable = true,
        "{name}: stopped before a safe point; nothing is half-registered, and the next run \
         completes what this one left"
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

impl Command {
    /// The options a scheduler gives a run (`--run-id`, `--manifest`), for the commands that
    /// publish.
    fn scheduled(&mut self) -> Option<&mut commands::SchedulerArgs> {
        match self {
            Command::Run(args) => Some(&mut args.scheduler),
            Command::Backfill(args) => Some(&mut args.scheduler),
            _ => None,
        }
    }
}

async fn execute(command: Command) -> Result<Outcome> {
    let done = match command {
        Command::Run(args) => return commands::run::run(args).await,
        Command::Backfill(args) => commands::backfill::run(args).await,
        Command::Plan(args) => commands::plan::run(args).await,
        Command::Status(args) => commands::status::run(args).await,
        Command::TrainingSet(args) => commands::training_set::run(args).await,
        Command::Get(args) => commands::get::run(args).await,
        Command::Catalog(args) => commands::catalog::run(args).await,
        Command::Encoder(args) => commands::encoder::run(args).await,
        Command::Rollback(args) => commands::rollback::run(args).await,
    };
    done.map(|()| Outcome::Done)
}
