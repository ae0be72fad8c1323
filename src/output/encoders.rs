//! What `fengine encoder` prints, and the JSON an encoder exports to.

use anyhow::Result;
use fengine_engine::{EncoderDetail, FitOutcome, Fitted};
use serde::Serialize;

use super::catalogue::time;

pub fn print_fits(outcomes: &[FitOutcome], as_json: bool) -> Result<()> {
    if as_json {
        out!("{}", serde_json::to_string_pretty(outcomes)?);
        return Ok(());
    }
    for fit in outcomes {
        let snapshots: Vec<String> = fit
            .fitted_on
            .snapshots
            .iter()
            .map(|s| format!("{} v{} snapshot {}", s.group, s.version, time(s.as_of)))
            .collect();
        let on = match snapshots.is_empty() {
            true => String::new(),
            false => format!(" ({})", snapshots.join(", ")),
        };
        match fit.registered {
            true => out!(
                "{} v{}: fitted on {} rows{on}, registered",
                fit.encoder,
                fit.version,
                fit.rows
            ),
            false => out!(
                "{} v{}: fitted on {} rows{on}, the same parameters as v{}: nothing registered",
                fit.encoder,
                fit.version,
                fit.rows,
                fit.version
            ),
        }
    }
    Ok(())
}

pub fn print_encoder(encoder: &EncoderDetail, as_json: bool) -> Result<()> {
    if as_json {
        out!("{}", serde_json::to_string_pretty(encoder)?);
        return Ok(());
    }
    out!(
        "encoder {} v{} (versions {}), fitted {} by {} on {} rows as of {}",
        encoder.encoder,
        encoder.version,
        encoder
            .versions
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        time(encoder.registered_at),
        encoder.registered_by,
        encoder.fitted_on.rows,
        time(encoder.as_of)
    );
    out!(
        "  definition (VERSION {}): {}",
        encoder.definition_version,
        encoder.definition
    );
    for snapshot in &encoder.fitted_on.snapshots {
        out!(
            "  read {} v{} snapshot {}",
            snapshot.group,
            snapshot.version,
            time(snapshot.as_of)
        );
    }
    for transform in &encoder.parameters.transforms {
        out!("  {}", describe(transform));
    }
    Ok(())
}

fn describe(transform: &Fitted) -> String {
    match transform {
        Fitted::StandardScale(t) => format!(
            "standard_scale({}): mean {}, scale {} (var {}, {} values in [{}, {}])",
            t.column, t.mean, t.scale, t.var, t.count, t.data_min, t.data_max
        ),
        Fitted::MinMax(t) => format!(
            "min_max({}): data_min {}, data_max {}",
            t.column, t.data_min, t.data_max
        ),
        Fitted::Log1p(t) => format!("log1p({})", t.column),
        Fitted::OneHot(t) => format!(
            "one_hot({}): {} categories{}",
            t.column,
            t.categories.len(),
            match t.infrequent.len() {
                0 => String::new(),
                n => format!(", {n} of them infrequent"),
            }
        ),
        Fitted::Bucketize(t) => format!(
            "bucketize({}): {} buckets, edges {:?}",
            t.column,
            t.bin_edges.len() - 1,
            t.bin_edges
        ),
    }
}

/// `encoder export --format json`: everything applying the encoder needs, nothing of the
/// catalogue's.
#[derive(Serialize)]
pub struct Exported<'a> {
    /// "fengine.encoder", version 1 of the layout.
    pub format: &'static str,
    pub format_version: u32,
    pub encoder: &'a str,
    pub version: u32,
    /// The columns written, in order: each transformed column's outputs where it stands.
    pub outputs: Vec<String>,
    pub transforms: &'a [Fitted],
}

pub fn exported(encoder: &EncoderDetail) -> Exported<'_> {
    Exported {
        format: "fengine.encoder",
        format_version: 1,
        encoder: &encoder.encoder,
        version: encoder.version,
        outputs: encoder
            .parameters
            .transforms
            .iter()
            .flat_map(Fitted::outputs)
            .collect(),
        transforms: &encoder.parameters.transforms,
    }
}
