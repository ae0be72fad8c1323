//! `fengine catalog`: find, read and retire what is published.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use fengine_engine::{Error, GroupFilter};

use chrono::{DateTime, Utc};

use super::{Output, ProfileArgs, parse_as_of};
use crate::output::catalogue as print;

#[derive(Args)]
pub(crate) struct CatalogArgs {
    #[command(subcommand)]
    command: CatalogCommand,
}

#[derive(Subcommand)]
enum CatalogCommand {
    /// Published feature groups: version, description, tags, features, latest snapshot and
    /// what the online store holds.
    List(ListArgs),
    /// A feature group (its schema, versions, snapshots, online table, lineage and the
    /// models that use it), or a model (the features it uses).
    Show(ShowArgs),
    /// A group's runs, definition changes, rollbacks and retirements, newest first.
    History(HistoryArgs),
    /// How each feature of a group moved between two snapshots: PSI, Kolmogorov–Smirnov
    /// distance, and the largest change in a category's share.
    Drift(DriftArgs),
    /// Retire a group version: drop its online table and mark it retired, keeping its
    /// snapshots. Refused while a registered model uses it.
    Retire(RetireArgs),
    /// Write the catalogue as a static site that opens from file:// with no server: a
    /// searchable index, a page per group and per model.
    Docs(DocsArgs),
}

#[derive(Args)]
struct DocsArgs {
    /// The folder to write the site into (created if missing).
    #[arg(long)]
    out: std::path::PathBuf,
    #[arg(long, value_enum, default_value_t = Output::Text)]
    output: Output,
    #[command(flatten)]
    profile: ProfileArgs,
}

#[derive(Args)]
struct ListArgs {
    /// Words that must each appear (ignoring case) in a group's name, description, feature
    /// names or feature comments.
    #[arg(long)]
    search: Option<String>,
    /// A tag the group must have, exactly; repeat for more.
    #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = parse_tag)]
    tags: Vec<(String, String)>,
    #[arg(long, value_enum, default_value_t = Output::Text)]
    output: Output,
    #[command(flatten)]
    profile: ProfileArgs,
}

#[derive(Args)]
struct ShowArgs {
    /// A feature group or a model.
    name: String,
    /// The version [default: the newest not retired]
    #[arg(long)]
    version: Option<u32>,
    /// Show the model of this name, should a group have it too.
    #[arg(long)]
    model: bool,
    /// Show the statistics of each feature in the group's newest snapshot instead.
    #[arg(long, conflicts_with = "model")]
    stats: bool,
    #[arg(long, value_enum, default_value_t = Output::Text)]
    output: Output,
    #[command(flatten)]
    profile: ProfileArgs,
}

#[derive(Args)]
struct HistoryArgs {
    group: String,
    #[arg(long, value_enum, default_value_t = Output::Text)]
    output: Output,
    #[command(flatten)]
    profile: ProfileArgs,
}

#[derive(Args)]
struct DriftArgs {
    group: String,
    /// The version [default: the newest not retired]
    #[arg(long)]
    version: Option<u32>,
    /// The as-of of the snapshot to measure from [default: the one before --to]
    #[arg(long, value_parser = parse_as_of)]
    from: Option<DateTime<Utc>>,
    /// The as-of of the snapshot to measure [default: the newest]
    #[arg(long, value_parser = parse_as_of)]
    to: Option<DateTime<Utc>>,
    #[arg(long, value_enum, default_value_t = Output::Text)]
    output: Output,
    #[command(flatten)]
    profile: ProfileArgs,
}

#[derive(Args)]
struct RetireArgs {
    group: String,
    /// The version to retire.
    #[arg(long)]
    version: u32,
    /// Why, for the group's history.
    #[arg(long)]
    reason: Option<String>,
    /// Do not ask for confirmation (needed off a terminal).
    #[arg(long)]
    yes: bool,
    #[arg(long, value_enum, default_value_t = Output::Text)]
    output: Output,
    #[command(flatten)]
    profile: ProfileArgs,
}

pub(crate) async fn run(args: CatalogArgs) -> Result<()> {
    match args.command {
        CatalogCommand::List(args) => list(args).await,
        CatalogCommand::Show(args) => show(args).await,
        CatalogCommand::History(args) => history(args).await,
        CatalogCommand::Drift(args) => drift(args).await,
        CatalogCommand::Retire(args) => retire(args).await,
        CatalogCommand::Docs(args) => docs(args).await,
    }
}

async fn docs(args: DocsArgs) -> Result<()> {
    let backends = args.profile.load_existing().await?;
    let catalogue = fengine_engine::describe_catalogue(&backends).await?;
    let site = crate::output::site::write_site(&catalogue, &args.out)
        .map_err(|e| Error::Config(format!("{e:#}")))?;
    match args.output {
        Output::Json => out!("{}", serde_json::to_string_pretty(&site)?),
        Output::Text => out!(
            "{} group pages and {} model pages; open {}",
            site.group_pages,
            site.model_pages,
            site.index
        ),
    }
    Ok(())
}

async fn list(args: ListArgs) -> Result<()> {
    let backends = args.profile.load_existing().await?;
    let filter = GroupFilter {
        search: args.search,
        tags: args.tags,
    };
    let groups = fengine_engine::list_groups(&backends, &filter).await?;
    print::print_group_list(&groups, args.output == Output::Json)
}

async fn show(args: ShowArgs) -> Result<()> {
    let backends = args.profile.load_existing().await?;
    let as_json = args.output == Output::Json;
    if !args.model
        && let Some(group) = fengine_engine::show_group(&backends, &args.name, args.version).await?
    {
        if !args.stats {
            return print::print_group_detail(&group, as_json);
        }
        let Some(snapshot) = group.snapshots.iter().rev().find(|s| s.set_aside.is_none()) else {
            bail!(Error::NotFound(format!(
                "feature group '{}' v{} has no snapshot to show the statistics of",
                group.group, group.version
            )));
        };
        let statistics = fengine_engine::snapshot_statistics(&backends.warehouse, snapshot).await;
        return print::print_group_statistics(&group, snapshot, &statistics, as_json);
    }
    match fengine_engine::show_model(&backends, &args.name, args.version).await? {
        Some(model) => print::print_model_detail(&model, as_json),
        None => {
            let groups = fengine_engine::published_group_names(&backends).await?;
            bail!(Error::NotFound(format!(
                "'{}' is neither a published feature group nor a registered model; the \
                 published groups are: {}",
                args.name,
                if groups.is_empty() {
                    "none".to_string()
                } else {
                    groups.join(", ")
                }
            )))
        }
    }
}

async fn history(args: HistoryArgs) -> Result<()> {
    let backends = args.profile.load_existing().await?;
    let events = fengine_engine::group_history(&backends, &args.group).await?;
    print::print_history(&events, args.output == Output::Json)
}

async fn drift(args: DriftArgs) -> Result<()> {
    let backends = args.profile.load_existing().await?;
    let drift =
        fengine_engine::group_drift(&backends, &args.group, args.version, args.from, args.to)
            .await?;
    print::print_drift(&drift, args.output == Output::Json)
}

async fn retire(args: RetireArgs) -> Result<()> {
    let backends = args.profile.load_existing().await?;
    if !args.yes {
        confirm(&format!(
            "Retire {} v{}? Its online table is dropped; its snapshots stay. [y/N] ",
            args.group, args.version
        ))?;
    }
    let outcome =
        fengine_engine::retire(&backends, &args.group, args.version, args.reason.as_deref())
            .await?;
    print::print_retire(&outcome, args.output == Output::Json)
}

/// Asks on the terminal; off one, refuses: a script says `--yes`.
fn confirm(question: &str) -> Result<()> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        bail!(Error::Config(
            "this changes what is served and asks for confirmation: pass --yes when not on a \
             terminal"
                .to_string()
        ));
    }
    eprint!("{question}");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    stdin.lock().read_line(&mut answer)?;
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        bail!(Error::Config(
            "not confirmed; nothing was changed".to_string()
        ))
    }
}

fn parse_tag(text: &str) -> Result<(String, String)> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => bail!("'{text}' is not KEY=VALUE"),
    }
}
