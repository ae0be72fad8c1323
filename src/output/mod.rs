//! What `run` and `plan` print: a line per feature group, or JSON for schedulers.

use std::collections::BTreeMap;

use anyhow::Result;
use chrono::{DateTime, Utc};
use fengine_engine::{
    Backends, BackfillManifest, BackfillProgress, GroupManifest, OnlineOutcome, PlannedPipeline,
    RunManifest, RunOptions, TrainingSetManifest, param_type_name, snapshot_name,
};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

/// `println!` that takes a closed standard output (`fengine run ... | head -1`) as the reader
/// being done: what it printed is the command's report of work already finished, so the
/// command exits 0 without the rest instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::write_line(format_args!($($arg)*))
    };
}

pub fn write_line(line: std::fmt::Arguments) {
    use std::io::Write;
    if let Err(error) = writeln!(std::io::stdout().lock(), "{line}") {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("fengine: cannot write to standard output: {error}");
        std::process::exit(i32::from(crate::EXIT_INFRASTRUCTURE));
    }
}

pub fn print_manifest(manifest: &RunManifest, as_json: bool) -> Result<()> {
    if as_json {
        out!("{}", serde_json::to_string_pretty(manifest)?);
        return Ok(());
    }
    print_groups(&manifest.groups);
    for group in &manifest.unchanged {
        out!(
            "{} v{}: unchanged since run {} of as-of {}: not computed",
            group.group,
            group.version,
            group.run_id,
            group
                .as_of
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
    }
    for model in &manifest.models {
        out!("model {model} registered");
    }
    Ok(())
}

fn print_groups(groups: &[GroupManifest]) {
    for group in groups {
        let online = match &group.online {
            OnlineOutcome::Loaded {
                rows,
                removed,
                as_of,
                run_id,
                completed_unfinished,
            } => {
                let mut text = format!("{rows} rows loaded online");
                if *run_id != group.run_id {
                    text += &format!(
                        " from the newer registered snapshot {} of run {run_id}",
                        as_of.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                    );
                }
                if *removed > 0 {
                    text += &format!(", {removed} keys it no longer has removed");
                }
                if *completed_unfinished {
                    text += ", replacing an unfinished load";
                }
                text
            }
            OnlineOutcome::SkippedNewer { loaded_as_of } => format!(
                "online not loaded: it holds the later as-of {} (--force overrides)",
                loaded_as_of.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
            OnlineOutcome::Superseded { run_id, .. } => format!(
                "online not loaded: run {run_id} registered this as-of again since, and the store \
                 holds its snapshot"
            ),
            OnlineOutcome::UpToDate { loaded_as_of, .. } => format!(
                "online holds its newest snapshot {} already",
                loaded_as_of.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
            OnlineOutcome::NotNewestOfBackfill => {
                "online not loaded: a backfill loads its newest as-of only".to_string()
            }
        };
        let total = group.timings_ms.compute_and_write
            + group.timings_ms.check
            + group.timings_ms.register
            + group.timings_ms.online;
        out!(
            "{} v{}: {} rows -> {} ({}{}), {online} [{:.1} s]",
            group.group,
            group.version,
            group.rows_written,
            group.table,
            group.partition,
            if group.replaced { ", replaced" } else { "" },
            total as f64 / 1000.0
        );
        if !group.expectations.is_empty() {
            out!(
                "  expectations: {}",
                expectations_summary(&group.expectations)
            );
        }
    }
}

/// `6 of 7 passed; failed, published (WARN): spend_ok: 3 of 100 rows checked fail (3.0%)`:
/// of a published snapshot, whose failures can only be WARN ones.
pub(crate) fn expectations_summary(outcomes: &[fengine_engine::ExpectationOutcome]) -> String {
    let passed = outcomes.iter().filter(|o| o.passed).count();
    let mut summary = format!("{passed} of {} passed", outcomes.len());
    for failed in outcomes.iter().filter(|o| !o.passed) {
        summary.push_str(&format!(
            "; failed, published (WARN): {}: {}",
            failed.name, failed.observed
        ));
    }
    summary
}

/// Done/total, rows, elapsed and estimate on a terminal; nothing when stderr is not one.
pub struct BackfillBar {
    bar: ProgressBar,
}

impl BackfillBar {
    pub fn new() -> Self {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{bar:30} {pos}/{len} snapshots, {msg} [{elapsed_precise}, about {eta} left]",
            )
            .expect("a valid template"),
        );
        BackfillBar { bar }
    }

    pub fn advance(&mut self, progress: &BackfillProgress) {
        self.bar.set_length(progress.total as u64);
        self.bar.set_position(progress.done as u64);
        self.bar.set_message(format!(
            "{} rows, {} at {}",
            progress.rows_written,
            progress.group,
            snapshot_name(progress.as_of)
        ));
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

pub fn print_backfill(manifest: &BackfillManifest, as_json: bool) -> Result<()> {
    if as_json {
        out!("{}", serde_json::to_string_pretty(manifest)?);
        return Ok(());
    }
    for as_of in &manifest.as_ofs {
        let time = as_of
            .as_of
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        if !as_of.skipped.is_empty() {
            out!(
                "{time}: skipped {} (registered already; --force recomputes)",
                as_of.skipped.join(", ")
            );
        }
        if !as_of.groups.is_empty() {
            out!("{time}:");
            print_groups(&as_of.groups);
        }
    }
    if !manifest.swept.is_empty() {
        out!(
            "computed in one sweep over their source: {}",
            manifest.swept.join(", ")
        );
    }
    let computed = manifest
        .as_ofs
        .iter()
        .filter(|a| !a.groups.is_empty())
        .count();
    out!(
        "backfill: {computed} of {} as-ofs computed, {} rows written [{:.1} s]",
        manifest.as_ofs.len(),
        manifest.rows_written,
        manifest.elapsed_ms as f64 / 1000.0
    );
    Ok(())
}

pub fn print_training_set(manifest: &TrainingSetManifest, as_json: bool) -> Result<()> {
    if as_json {
        out!("{}", serde_json::to_string_pretty(manifest)?);
        return Ok(());
    }
    out!(
        "{} rows -> {} [{:.1} s]",
        manifest.rows,
        manifest.out,
        manifest.elapsed_ms as f64 / 1000.0
    );
    for group in &manifest.groups {
        let share = if manifest.rows == 0 {
            0.0
        } else {
            100.0 * group.matched_rows as f64 / manifest.rows as f64
        };
        out!(
            "  {} v{}: {} features from {} snapshot(s), {} rows matched ({share:.1}%)",
            group.group,
            group.version,
            group.features.len(),
            group.snapshots.len(),
            group.matched_rows
        );
    }
    if let Some(encoder) = &manifest.encoder {
        out!("  encoded by {encoder}");
    }
    if manifest.spilled_bytes > 0 {
        out!(
            "  sorts spilled {:.1} MiB to disk to stay within memory_limit",
            manifest.spilled_bytes as f64 / (1 << 20) as f64
        );
    }
    if let Some(table) = &manifest.registered {
        out!("  registered as {table}");
    }
    if let Some(model) = &manifest.model {
        out!("  recorded as the features of model {model}");
    }
    Ok(())
}

#[derive(Serialize)]
struct PlanReport {
    as_of: DateTime<Utc>,
    params: BTreeMap<String, ParamReport>,
    groups: Vec<GroupReport>,
}

#[derive(Serialize)]
struct ParamReport {
    #[serde(rename = "type")]
    sql_type: &'static str,
    value: String,
}

#[derive(Serialize)]
struct GroupReport {
    group: String,
    version: u32,
    key: Vec<String>,
    event_time: String,
    columns: Vec<ColumnReport>,
    table: String,
    snapshot_location: String,
    online_ttl_seconds: Option<u64>,
    /// Whether `backfill` computes this group for all its as-ofs in one sweep.
    backfill_sweeps: bool,
    /// The windows fengine's rolling-window operator computes.
    rolling_windows: Vec<String>,
}

#[derive(Serialize)]
struct ColumnReport {
    name: String,
    #[serde(rename = "type")]
    arrow_type: String,
    catalog_type: String,
    nullable: bool,
    comment: Option<String>,
}

pub fn print_plan(
    planned: &PlannedPipeline,
    swept: &[String],
    options: &RunOptions,
    backends: &Backends,
    as_json: bool,
) -> Result<()> {
    let snapshot = snapshot_name(options.as_of);
    let report = PlanReport {
        as_of: options.as_of,
        params: planned
            .params
            .iter()
            .map(|(name, value)| {
                let param = ParamReport {
                    sql_type: param_type_name(value),
                    value: value.to_string(),
                };
                (name.clone(), param)
            })
            .collect(),
        groups: planned
            .groups
            .iter()
            .map(|group| GroupReport {
                group: group.name(),
                version: group.definition.version,
                key: group.definition.key_columns(),
                event_time: group.definition.event_time_column(),
                columns: group
                    .schema
                    .fields()
                    .iter()
                    .zip(&group.table.columns)
                    .map(|(field, column)| ColumnReport {
                        name: field.name().clone(),
                        arrow_type: field.data_type().to_string(),
                        catalog_type: column.data_type.clone(),
                        nullable: field.is_nullable(),
                        comment: column.comment.clone(),
                    })
                    .collect(),
                table: format!("{}.{}", group.table.database, group.table.name),
                snapshot_location: backends
                    .warehouse
                    .snapshot_location(&group.name(), group.definition.version, &snapshot)
                    .to_string(),
                online_ttl_seconds: group.ttl.map(|t| t.as_secs()),
                backfill_sweeps: swept.contains(&group.name()),
                rolling_windows: group.rolling_windows.clone(),
            })
            .collect(),
    };
    if as_json {
        out!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    for (name, param) in &report.params {
        out!("param {name} = {} ({})", param.value, param.sql_type);
    }
    for group in &report.groups {
        out!(
            "feature group {} v{}  key ({})  event time {}",
            group.group,
            group.version,
            group.key.join(", "),
            group.event_time
        );
        for column in &group.columns {
            let comment = column
                .comment
                .as_deref()
                .map(|c| format!("  -- {c}"))
                .unwrap_or_default();
            out!(
                "  {:<24} {:<12} {}{comment}",
                column.name,
                column.catalog_type,
                column.arrow_type
            );
        }
        out!("  -> {} at {}", group.table, group.snapshot_location);
        if !group.rolling_windows.is_empty() {
            out!(
                "  rolling windows by fengine's operator: {}",
                group.rolling_windows.join(", ")
            );
        }
        if group.backfill_sweeps {
            out!("  backfill: one sweep over the source for all as-ofs");
        } else {
            out!("  backfill: computed at each as-of");
        }
    }
    Ok(())
}

pub mod catalogue;
pub mod encoders;
pub mod site;
