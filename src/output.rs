//! What `run` and `plan` print: a line per feature group, or JSON for schedulers.

use anyhow::Result;
use fengine_engine::{
    Backends, OnlineOutcome, PlannedPipeline, RunManifest, RunOptions, param_type_name,
    snapshot_name,
};
use serde_json::json;

pub fn print_manifest(manifest: &RunManifest, as_json: bool) -> Result<()> {
    if as_json {
        println!("{}", serde_json::to_string_pretty(manifest)?);
        return Ok(());
    }
    for group in &manifest.groups {
        let online = match &group.online {
            OnlineOutcome::Loaded { rows } => format!("{rows} rows loaded online"),
            OnlineOutcome::SkippedNewer { loaded_as_of } => format!(
                "online not loaded: it holds the later as-of {} (--force overrides)",
                loaded_as_of.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
        };
        let total = group.timings_ms.compute_and_write
            + group.timings_ms.check
            + group.timings_ms.register
            + group.timings_ms.online;
        println!(
            "{} v{}: {} rows -> {} ({}{}), {online} [{:.1} s]",
            group.group,
            group.version,
            group.rows_written,
            group.table,
            group.partition,
            if group.replaced { ", replaced" } else { "" },
            total as f64 / 1000.0
        );
    }
    Ok(())
}

pub fn print_plan(
    planned: &PlannedPipeline,
    options: &RunOptions,
    backends: &Backends,
    as_json: bool,
) -> Result<()> {
    let snapshot = snapshot_name(options.as_of);
    let groups: Vec<serde_json::Value> = planned
        .groups
        .iter()
        .map(|group| {
            let definition = &group.definition;
            let columns: Vec<serde_json::Value> = group
                .schema
                .fields()
                .iter()
                .zip(&group.table.columns)
                .map(|(field, column)| {
                    json!({"name": field.name(), "type": field.data_type().to_string(),
                           "catalog_type": column.data_type, "nullable": field.is_nullable(),
                           "comment": column.comment})
                })
                .collect();
            json!({
                "group": group.name(),
                "version": definition.version,
                "key": definition.key_columns(),
                "event_time": definition.event_time_column(),
                "columns": columns,
                "table": format!("{}.{}", group.table.database, group.table.name),
                "snapshot_location": backends.warehouse.snapshot_location(&group.name(), definition.version, &snapshot).to_string(),
                "online_ttl_seconds": group.ttl.map(|t| t.as_secs()),
            })
        })
        .collect();
    if as_json {
        let params: serde_json::Map<String, serde_json::Value> = planned
            .params
            .iter()
            .map(|(name, value)| {
                (
                    name.clone(),
                    json!({"type": param_type_name(value), "value": value.to_string()}),
                )
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(
                &json!({"as_of": options.as_of, "params": params, "groups": groups})
            )?
        );
        return Ok(());
    }
    for (name, value) in &planned.params {
        println!("param {name} = {value} ({})", param_type_name(value));
    }
    for group in &groups {
        println!(
            "feature group {} v{}  key ({})  event time {}",
            group["group"].as_str().unwrap_or_default(),
            group["version"],
            group["key"]
                .as_array()
                .map(|k| k
                    .iter()
                    .filter_map(|v| v.as_str())
                    .collect::<Vec<_>>()
                    .join(", "))
                .unwrap_or_default(),
            group["event_time"].as_str().unwrap_or_default()
        );
        for column in group["columns"].as_array().into_iter().flatten() {
            println!(
                "  {:<24} {}{}",
                column["name"].as_str().unwrap_or_default(),
                column["type"].as_str().unwrap_or_default(),
                column["comment"]
                    .as_str()
                    .map(|c| format!("  -- {c}"))
                    .unwrap_or_default()
            );
        }
        println!(
            "  -> {} at {}",
            group["table"].as_str().unwrap_or_default(),
            group["snapshot_location"].as_str().unwrap_or_default()
        );
    }
    Ok(())
}
