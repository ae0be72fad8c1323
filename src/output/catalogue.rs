//! What the catalogue commands print: aligned text for people, JSON for tools.

use anyhow::Result;
use chrono::{DateTime, SecondsFormat, Utc};
use fengine_engine::{
    FeatureStatistics, GroupDetail, GroupSummary, HistoryEvent, ModelDetail, RetireOutcome,
    RollbackOutcome, Snapshot, ValueStatistics,
};
use serde::Serialize;

pub(crate) fn time(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn optional_time(value: Option<DateTime<Utc>>) -> String {
    value.map_or_else(|| "-".to_string(), time)
}

fn json(value: &impl Serialize) -> Result<()> {
    out!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn tags(tags: &std::collections::BTreeMap<String, String>) -> String {
    tags.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

pub fn print_group_list(groups: &[GroupSummary], as_json: bool) -> Result<()> {
    if as_json {
        return json(&groups);
    }
    if groups.is_empty() {
        out!("no feature group matches");
        return Ok(());
    }
    out!(
        "{:<28} {:>4} {:>8} {:<20} {:>12} {:<20} {:<24} DESCRIPTION",
        "GROUP",
        "VER",
        "FEATURES",
        "LATEST SNAPSHOT",
        "ROWS",
        "ONLINE AS-OF",
        "TAGS"
    );
    for group in groups {
        let version = match group.retired {
            true => format!("{}r", group.version),
            false => group.version.to_string(),
        };
        out!(
            "{:<28} {:>4} {:>8} {:<20} {:>12} {:<20} {:<24} {}",
            group.group,
            version,
            group.features,
            optional_time(group.latest_snapshot),
            group
                .latest_rows
                .map_or_else(|| "-".to_string(), |r| r.to_string()),
            optional_time(group.online_as_of),
            tags(&group.tags),
            group.description.as_deref().unwrap_or("")
        );
    }
    Ok(())
}

pub fn print_group_detail(group: &GroupDetail, as_json: bool) -> Result<()> {
    if as_json {
        return json(group);
    }
    out!(
        "feature group {} v{}  ({})",
        group.group,
        group.version,
        group.table
    );
    if let Some(description) = &group.description {
        out!("  {description}");
    }
    out!("  key:         {}", group.key.join(", "));
    out!(
        "  event time:  {}",
        group.event_time.as_deref().unwrap_or("-")
    );
    if !group.tags.is_empty() {
        out!("  tags:        {}", tags(&group.tags));
    }
    if let Some(ttl) = &group.online_ttl {
        out!("  online ttl:  {ttl}");
    }
    if let Some(pipeline) = &group.pipeline {
        out!("  pipeline:    {pipeline}");
    }
    out!("features:");
    for feature in &group.features {
        let comment = feature
            .comment
            .as_deref()
            .map(|c| format!("  -- {c}"))
            .unwrap_or_default();
        out!("  {:<28} {:<16}{comment}", feature.name, feature.data_type);
    }
    out!("versions:");
    for version in &group.versions {
        let state = match &version.retired {
            Some(retired) => format!("retired at {} by {}", retired.at, retired.by),
            None => "active".to_string(),
        };
        out!("  v{:<4} {:<40} {state}", version.version, version.table);
    }
    out!("snapshots ({}):", group.snapshots.len());
    out!(
        "  {:<20} {:>12} {:>12} {:<20} {:<14}",
        "AS-OF",
        "ROWS",
        "BYTES",
        "WRITTEN AT",
        "RUN"
    );
    for snapshot in group.snapshots.iter().rev() {
        let aside = snapshot
            .set_aside
            .as_deref()
            .map(|why| format!("  ({why})"))
            .unwrap_or_default();
        out!(
            "  {:<20} {:>12} {:>12} {:<20} {:<14}{aside}",
            time(snapshot.as_of),
            snapshot
                .rows
                .map_or_else(|| "-".to_string(), |r| r.to_string()),
            snapshot
                .bytes
                .map_or_else(|| "-".to_string(), |b| b.to_string()),
            optional_time(snapshot.written_at),
            snapshot.run_id
        );
        if !snapshot.expectations.is_empty() {
            out!(
                "    expectations: {}",
                super::expectations_summary(&snapshot.expectations)
            );
        }
    }
    let online = match &group.online.loaded {
        Some(loaded) => format!("holds {} (run {})", time(loaded.as_of), loaded.run_id),
        None => "holds nothing".to_string(),
    };
    out!("online: {} {online}", group.online.table);
    if let Some(unfinished) = &group.online.unfinished {
        out!(
            "  a load of {} (run {}) began and did not complete",
            time(unfinished.as_of),
            unfinished.run_id
        );
    }
    let none = || vec!["-".to_string()];
    let or_none = |items: Vec<String>| if items.is_empty() { none() } else { items };
    out!("sources:  {}", or_none(group.sources.clone()).join(", "));
    let refs = |refs: &[fengine_engine::GroupRef]| {
        or_none(
            refs.iter()
                .map(|r| match r.version {
                    Some(v) => format!("{} v{v}", r.group),
                    None => r.group.clone(),
                })
                .collect(),
        )
        .join(", ")
    };
    out!("reads:    {}", refs(&group.reads));
    out!("read by:  {}", refs(&group.read_by));
    out!(
        "models:   {}",
        or_none(
            group
                .models
                .iter()
                .map(|m| format!("{} v{} ({})", m.model, m.version, m.features.join(", ")))
                .collect()
        )
        .join(", ")
    );
    Ok(())
}

pub fn print_model_detail(model: &ModelDetail, as_json: bool) -> Result<()> {
    if as_json {
        return json(model);
    }
    out!("model {} v{}", model.model, model.version);
    if let Some(description) = &model.description {
        out!("  {description}");
    }
    if !model.tags.is_empty() {
        out!("  tags:        {}", tags(&model.tags));
    }
    out!(
        "  versions:    {}",
        model
            .versions
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    out!(
        "  registered:  {} by {}, from {}",
        time(model.registered_at),
        model.registered_by,
        model.origin
    );
    out!("uses:");
    for feature in &model.features {
        out!(
            "  {} v{}: {}",
            feature.group,
            feature.version,
            feature.feature
        );
    }
    Ok(())
}

pub fn print_history(events: &[HistoryEvent], as_json: bool) -> Result<()> {
    if as_json {
        return json(&events);
    }
    for event in events {
        let kind = serde_json::to_value(event.kind)?;
        let reason = event
            .reason
            .as_deref()
            .map(|r| format!(" (reason: {r})"))
            .unwrap_or_default();
        out!(
            "{}  v{:<3} {:<10} {:<24} {}{reason}",
            time(event.at),
            event.version,
            kind.as_str().unwrap_or_default(),
            event.actor,
            event.detail
        );
    }
    Ok(())
}

pub fn print_retire(outcome: &RetireOutcome, as_json: bool) -> Result<()> {
    if as_json {
        return json(outcome);
    }
    if outcome.already_retired {
        out!(
            "{} v{} was retired already; nothing changed",
            outcome.group,
            outcome.version
        );
        return Ok(());
    }
    let online = match &outcome.dropped_online_table {
        Some(table) => format!("online table {table} dropped"),
        None => "it had no online table".to_string(),
    };
    out!(
        "{} v{} retired: {online}; {} snapshots kept",
        outcome.group,
        outcome.version,
        outcome.snapshots_kept
    );
    Ok(())
}

pub fn print_rollback(outcome: &RollbackOutcome, as_json: bool) -> Result<()> {
    if as_json {
        return json(outcome);
    }
    let from = match &outcome.replaced {
        Some(replaced) => format!(
            " (it held {} of run {})",
            time(replaced.as_of),
            replaced.run_id
        ),
        None => String::new(),
    };
    out!(
        "{} v{}: online store serves snapshot {} of run {} again{from}",
        outcome.group,
        outcome.version,
        time(outcome.restored.as_of),
        outcome.restored.run_id
    );
    if !outcome.set_aside.is_empty() {
        out!(
            "  set aside (kept, not served): {}",
            outcome
                .set_aside
                .iter()
                .map(|s| time(s.as_of))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}

/// Each bin's range, `[low, high)`, the tails open.
pub(crate) fn bin_ranges(histogram: &fengine_engine::Histogram) -> Vec<String> {
    let edges = histogram.edge_values();
    (0..histogram.counts.len())
        .map(|bin| {
            let low = bin
                .checked_sub(1)
                .map_or("-inf".to_string(), |i| edges[i].to_string());
            let high = edges.get(bin).map_or("inf".to_string(), f64::to_string);
            format!("[{low}, {high})")
        })
        .collect()
}

/// What was measured of a feature's drift: `PSI 0.0123`, `KS 0.0400`, the largest change
/// of a category's share; none when nothing could be.
pub(crate) fn drift_measures(feature: &fengine_engine::FeatureDrift) -> Vec<String> {
    let mut measures = Vec::new();
    if let Some(psi) = feature.psi {
        let estimated = if feature.psi_estimated {
            " (estimated)"
        } else {
            ""
        };
        measures.push(format!("PSI {psi:.4}{estimated}"));
    }
    if let Some(ks) = feature.ks {
        measures.push(format!("KS {ks:.4}"));
    }
    if let Some(change) = &feature.share_change {
        let value = change
            .value
            .as_deref()
            .map_or_else(|| "null".to_string(), |v| format!("'{v}'"));
        measures.push(format!(
            "largest share change {value} {:.2}% -> {:.2}%",
            100.0 * change.from,
            100.0 * change.to
        ));
    }
    measures
}

/// How each feature moved between two snapshots.
pub fn print_drift(drift: &fengine_engine::GroupDrift, as_json: bool) -> Result<()> {
    if as_json {
        return json(drift);
    }
    out!(
        "drift of {} v{} from snapshot {} to {}:",
        drift.group,
        drift.version,
        time(drift.from),
        time(drift.to)
    );
    if drift.features.is_empty() {
        out!("  none measured: the snapshots have no statistics of the same features");
    }
    for feature in &drift.features {
        let mut measures = drift_measures(feature);
        if measures.is_empty() {
            measures.push("not measurable".to_string());
        }
        out!("  {}: {}", feature.feature, measures.join(", "));
    }
    Ok(())
}

/// The features' statistics in one of the group's snapshots.
pub fn print_group_statistics(
    group: &GroupDetail,
    snapshot: &Snapshot,
    statistics: &[FeatureStatistics],
    as_json: bool,
) -> Result<()> {
    if as_json {
        return json(&statistics);
    }
    out!(
        "statistics of {} v{}, snapshot {} (run {}):",
        group.group,
        group.version,
        time(snapshot.as_of),
        snapshot.run_id
    );
    if statistics.is_empty() {
        out!("  none: the snapshot was published before fengine kept statistics");
    }
    for feature in statistics {
        let distinct = feature
            .distinct
            .map_or_else(|| "-".to_string(), |d| format!("~{d}"));
        out!(
            "  {} ({}): {} values, {} null, {distinct} distinct",
            feature.feature,
            feature.data_type,
            feature.count,
            feature.nulls
        );
        match &feature.values {
            ValueStatistics::Numeric {
                nan,
                infinite,
                min,
                max,
                mean,
                stddev,
                quantiles,
                histogram,
            } => {
                let number =
                    |n: &Option<f64>| n.map_or_else(|| "-".to_string(), |n| format!("{n}"));
                out!(
                    "    min {}  max {}  mean {}  stddev {}{}{}",
                    number(min),
                    number(max),
                    number(mean),
                    number(stddev),
                    if *nan > 0 {
                        format!("  NaN {nan}")
                    } else {
                        String::new()
                    },
                    if *infinite > 0 {
                        format!("  infinite {infinite}")
                    } else {
                        String::new()
                    }
                );
                if !quantiles.is_empty() {
                    let shown: Vec<String> =
                        quantiles.iter().map(|(q, v)| format!("{q} {v}")).collect();
                    out!("    {}", shown.join("  "));
                }
                if let Some(histogram) = histogram {
                    let bins: Vec<String> = bin_ranges(histogram)
                        .iter()
                        .zip(&histogram.counts)
                        .map(|(range, count)| format!("{range} {count}"))
                        .collect();
                    out!("    histogram: {}", bins.join("  "));
                }
            }
            ValueStatistics::Categorical {
                min,
                max,
                top,
                other,
            } => {
                out!(
                    "    min {}  max {}",
                    min.as_deref().unwrap_or("-"),
                    max.as_deref().unwrap_or("-")
                );
                let shown: Vec<String> = top
                    .iter()
                    .map(|t| format!("{} {}", t.value, t.count))
                    .collect();
                out!("    top: {}; other {other}", shown.join(", "));
            }
            ValueStatistics::Other => {}
        }
    }
    Ok(())
}
