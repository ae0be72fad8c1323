//! The browsable catalogue (`fengine catalog docs`): static pages that open from `file://`
//! with no server and no network. Every page carries its own style, script and data; the
//! charts and lineage graphs are SVG drawn here, so a page shows them with scripts off.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use chrono::{DateTime, SecondsFormat, Utc};
use fengine_engine::{
    Catalogue, FeatureStatistics, GroupPage, Histogram, HistoryEvent, ModelDetail, PageStatistics,
    Snapshot, ValueCount, ValueStatistics,
};
use serde::Serialize;

use super::catalogue::{bin_ranges, drift_measures};

/// What was written.
#[derive(Debug, Serialize)]
pub struct Site {
    pub index: String,
    pub group_pages: usize,
    pub model_pages: usize,
}

pub fn write_site(catalogue: &Catalogue, out: &Path) -> Result<Site> {
    for folder in ["groups", "models"] {
        std::fs::create_dir_all(out.join(folder))
            .with_context(|| format!("cannot create '{}'", out.join(folder).display()))?;
    }
    let write = |relative: String, html: String| {
        let path = out.join(&relative);
        std::fs::write(&path, html).with_context(|| format!("cannot write '{}'", path.display()))
    };
    write("index.html".to_string(), index_page(catalogue))?;
    for group in &catalogue.groups {
        write(
            format!("groups/{}.html", group.detail.group),
            group_page(group, catalogue),
        )?;
    }
    let models = newest_models(&catalogue.models);
    for model in models.values() {
        write(
            format!("models/{}.html", model.model),
            model_page(model, &catalogue.models),
        )?;
    }
    Ok(Site {
        index: out.join("index.html").display().to_string(),
        group_pages: catalogue.groups.len(),
        model_pages: models.len(),
    })
}

/// Each model's newest version, by name.
fn newest_models(models: &[ModelDetail]) -> BTreeMap<&str, &ModelDetail> {
    let mut newest: BTreeMap<&str, &ModelDetail> = BTreeMap::new();
    for model in models {
        let slot = newest.entry(model.model.as_str()).or_insert(model);
        if model.version > slot.version {
            *slot = model;
        }
    }
    newest
}

const STYLE: &str = "
body { font: 14px/1.45 system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 0; color: #1d2330; background: #f6f7f9; }
header { background: #1d2330; color: #fff; padding: 12px 24px; }
header a { color: #9cc3ff; text-decoration: none; margin-right: 16px; }
main { max-width: 1100px; margin: 0 auto; padding: 16px 24px 48px; }
h1 { font-size: 22px; margin: 8px 0 4px; } h2 { font-size: 16px; margin: 28px 0 8px; }
table { border-collapse: collapse; width: 100%; background: #fff; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #e3e6ea; vertical-align: top; }
th { background: #eef0f3; font-weight: 600; }
code { font: 12px ui-monospace, SFMono-Regular, Menlo, monospace; }
.tag { display: inline-block; background: #e4ecfb; color: #1f4aa8; border-radius: 3px; padding: 0 6px; margin: 0 4px 2px 0; font-size: 12px; }
.muted { color: #687387; } .retired { color: #a33; }
input[type=search] { width: 100%; box-sizing: border-box; font-size: 16px; padding: 8px 10px; border: 1px solid #c5cad3; border-radius: 4px; }
#results li { margin: 2px 0; list-style: none; } #results { padding: 0; }
.kind { display: inline-block; width: 64px; font-size: 11px; text-transform: uppercase; color: #687387; }
svg { background: #fff; border: 1px solid #e3e6ea; }
svg text { font: 11px system-ui, sans-serif; fill: #1d2330; }
svg a text { fill: #1f4aa8; }
#statistics td { font-size: 13px; } #statistics svg { border: 0; background: none; }
";

fn page(title: &str, home: &str, body: &str, script: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body>\
         <header><a href=\"{home}index.html\">fengine catalogue</a></header>\
         <main>{body}</main>{script}</body></html>\n",
        escape(title)
    )
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// JSON inside a `<script>`: `</script>` in a value cannot end it.
fn script_json(value: &impl Serialize) -> String {
    serde_json::to_string(value)
        .expect("catalogue data serializes")
        .replace("</", "<\\/")
}

fn time(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn tags(tags: &BTreeMap<String, String>) -> String {
    tags.iter()
        .map(|(k, v)| format!("<span class=\"tag\">{}={}</span>", escape(k), escape(v)))
        .collect()
}

/// One searchable entry of the index.
#[derive(Serialize)]
struct Entry {
    kind: &'static str,
    name: String,
    detail: String,
    href: String,
    /// Lower-case text the search matches.
    text: String,
}

fn index_entries(catalogue: &Catalogue) -> Vec<Entry> {
    let mut entries = Vec::new();
    for page in &catalogue.groups {
        let group = &page.detail;
        let href = format!("groups/{}.html", group.group);
        let description = group.description.clone().unwrap_or_default();
        let tag_text: Vec<String> = group.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
        entries.push(Entry {
            kind: "group",
            name: format!("{} v{}", group.group, group.version),
            detail: description.clone(),
            href: href.clone(),
            text: format!("{} {description} {}", group.group, tag_text.join(" ")).to_lowercase(),
        });
        for feature in &group.features {
            let comment = feature.comment.clone().unwrap_or_default();
            entries.push(Entry {
                kind: "feature",
                name: format!("{}.{}", group.group, feature.name),
                detail: format!("{} {comment}", feature.data_type),
                href: format!("{href}#feature-{}", feature.name),
                text: format!("{} {} {comment}", group.group, feature.name).to_lowercase(),
            });
        }
    }
    for model in newest_models(&catalogue.models).values() {
        let description = model.description.clone().unwrap_or_default();
        entries.push(Entry {
            kind: "model",
            name: format!("{} v{}", model.model, model.version),
            detail: description.clone(),
            href: format!("models/{}.html", model.model),
            text: format!("{} {description}", model.model).to_lowercase(),
        });
    }
    entries
}

const SEARCH_SCRIPT: &str = r#"<script>
(function () {
  var entries = JSON.parse(document.getElementById("catalogue-data").textContent);
  var input = document.getElementById("search");
  var list = document.getElementById("results");
  var count = document.getElementById("count");
  var LIMIT = 200;
  function render() {
    var words = input.value.toLowerCase().split(/\s+/).filter(function (w) { return w; });
    var shown = 0, matched = 0;
    var fragment = document.createDocumentFragment();
    for (var i = 0; i < entries.length; i++) {
      var e = entries[i];
      if (!words.every(function (w) { return e.text.indexOf(w) >= 0; })) continue;
      matched++;
      if (shown >= LIMIT) continue;
      shown++;
      var li = document.createElement("li");
      li.className = "entry " + e.kind;
      var kind = document.createElement("span");
      kind.className = "kind";
      kind.textContent = e.kind;
      var a = document.createElement("a");
      a.href = e.href;
      a.textContent = e.name;
      var detail = document.createElement("span");
      detail.className = "muted";
      detail.textContent = e.detail ? "  " + e.detail : "";
      li.appendChild(kind); li.appendChild(a); li.appendChild(detail);
      fragment.appendChild(li);
    }
    list.replaceChildren(fragment);
    count.textContent = matched + (matched === 1 ? " match" : " matches") +
      (matched > shown ? ", the first " + shown + " shown" : "");
  }
  input.addEventListener("input", render);
  render();
})();
</script>"#;

fn index_page(catalogue: &Catalogue) -> String {
    let entries = index_entries(catalogue);
    let models = newest_models(&catalogue.models).len();
    let body = format!(
        "<h1>Feature catalogue</h1>\
         <p class=\"muted\">{} feature groups, {} features, {models} models</p>\
         <input type=\"search\" id=\"search\" placeholder=\"Search groups, features and models\" \
         aria-label=\"search\" autofocus>\
         <p id=\"count\" class=\"muted\"></p><ul id=\"results\"></ul>\
         <script id=\"catalogue-data\" type=\"application/json\">{}</script>",
        catalogue.groups.len(),
        catalogue
            .groups
            .iter()
            .map(|g| g.detail.features.len())
            .sum::<usize>(),
        script_json(&entries)
    );
    page("fengine catalogue", "", &body, SEARCH_SCRIPT)
}

fn group_page(page_data: &GroupPage, catalogue: &Catalogue) -> String {
    let group = &page_data.detail;
    let mut body = String::new();
    let _ = write!(
        body,
        "<h1 id=\"group-name\">{} <span class=\"muted\">v{}</span></h1><p>{}</p><p>{}</p>",
        escape(&group.group),
        group.version,
        escape(group.description.as_deref().unwrap_or("")),
        tags(&group.tags)
    );
    let _ = write!(
        body,
        "<table><tr><th>key</th><td><code>{}</code></td></tr>\
         <tr><th>event time</th><td><code>{}</code></td></tr>\
         <tr><th>table</th><td><code>{}</code></td></tr>\
         <tr><th>online</th><td><code>{}</code> {}</td></tr>\
         <tr><th>online ttl</th><td>{}</td></tr>\
         <tr><th>pipeline</th><td><code>{}</code></td></tr></table>",
        escape(&group.key.join(", ")),
        escape(group.event_time.as_deref().unwrap_or("-")),
        escape(&group.table),
        escape(&group.online.table),
        match &group.online.loaded {
            Some(loaded) => format!("holds {}", time(loaded.as_of)),
            None => "holds nothing".to_string(),
        },
        escape(group.online_ttl.as_deref().unwrap_or("-")),
        escape(group.pipeline.as_deref().unwrap_or("-")),
    );
    body += "<h2>Features</h2><table id=\"features\"><tr><th>feature</th><th>type</th><th>comment</th></tr>";
    for feature in &group.features {
        let _ = write!(
            body,
            "<tr id=\"feature-{0}\"><td><code>{0}</code></td><td><code>{1}</code></td><td>{2}</td></tr>",
            escape(&feature.name),
            escape(&feature.data_type),
            escape(feature.comment.as_deref().unwrap_or(""))
        );
    }
    body += "</table><h2>Versions</h2><table><tr><th>version</th><th>table</th><th>state</th></tr>";
    for version in &group.versions {
        let state = match &version.retired {
            Some(r) => format!(
                "<span class=\"retired\">retired {} by {}</span>",
                escape(&r.at),
                escape(&r.by)
            ),
            None => "active".to_string(),
        };
        let _ = write!(
            body,
            "<tr><td>v{}</td><td><code>{}</code></td><td>{state}</td></tr>",
            version.version,
            escape(&version.table)
        );
    }
    body += "</table><h2>Rows per snapshot</h2>";
    body += &rows_chart(&group.snapshots);
    body += &statistics_section(page_data.statistics.as_ref(), &group.snapshots);
    body += "<h2>Lineage</h2>";
    body += &lineage_graph(page_data, catalogue);
    body += "<h2>History</h2>";
    body += &history_table(&page_data.history);
    body += &snapshot_table(&group.snapshots);
    page(
        &format!("{} — fengine catalogue", group.group),
        "../",
        &body,
        "",
    )
}

/// Rows of each snapshot against its as-of, as a line with a point per snapshot.
fn rows_chart(snapshots: &[Snapshot]) -> String {
    const WIDTH: f64 = 860.0;
    const HEIGHT: f64 = 220.0;
    const LEFT: f64 = 70.0;
    const BOTTOM: f64 = 30.0;
    const TOP: f64 = 12.0;
    let points: Vec<(i64, u64, &Snapshot)> = snapshots
        .iter()
        .filter_map(|s| Some((s.as_of.timestamp(), s.rows?, s)))
        .collect();
    if points.is_empty() {
        return "<p class=\"muted\" id=\"rows-chart\">no snapshot yet</p>".to_string();
    }
    let (first, last) = (points[0].0, points[points.len() - 1].0);
    let most = points.iter().map(|p| p.1).max().unwrap_or(0).max(1);
    let x = |t: i64| {
        if last == first {
            LEFT + (WIDTH - LEFT) / 2.0
        } else {
            LEFT + (t - first) as f64 / (last - first) as f64 * (WIDTH - LEFT - 10.0)
        }
    };
    let y = |rows: u64| TOP + (1.0 - rows as f64 / most as f64) * (HEIGHT - TOP - BOTTOM);
    let mut svg = format!(
        "<svg id=\"rows-chart\" role=\"img\" aria-label=\"rows per snapshot\" width=\"{WIDTH}\" \
         height=\"{HEIGHT}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\">"
    );
    let axis_y = HEIGHT - BOTTOM;
    let _ = write!(
        svg,
        "<line x1=\"{LEFT}\" y1=\"{axis_y}\" x2=\"{WIDTH}\" y2=\"{axis_y}\" stroke=\"#9aa3b2\"/>\
         <line x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{axis_y}\" stroke=\"#9aa3b2\"/>\
         <text x=\"{}\" y=\"{}\" text-anchor=\"end\">{most}</text>\
         <text x=\"{}\" y=\"{axis_y}\" text-anchor=\"end\">0</text>\
         <text x=\"{LEFT}\" y=\"{}\">{}</text>\
         <text x=\"{WIDTH}\" y=\"{}\" text-anchor=\"end\">{}</text>",
        LEFT - 6.0,
        TOP + 8.0,
        LEFT - 6.0,
        HEIGHT - 10.0,
        time(points[0].2.as_of),
        HEIGHT - 10.0,
        time(points[points.len() - 1].2.as_of),
    );
    let line: Vec<String> = points
        .iter()
        .map(|(t, rows, _)| format!("{:.1},{:.1}", x(*t), y(*rows)))
        .collect();
    let _ = write!(
        svg,
        "<polyline class=\"rows-line\" fill=\"none\" stroke=\"#2f6fde\" stroke-width=\"2\" points=\"{}\"/>",
        line.join(" ")
    );
    for (t, rows, snapshot) in &points {
        let _ = write!(
            svg,
            "<circle class=\"snapshot-point\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{}\">\
             <title>{}: {rows} rows</title></circle>",
            x(*t),
            y(*rows),
            if snapshot.set_aside.is_some() {
                "#c33"
            } else {
                "#2f6fde"
            },
            time(snapshot.as_of)
        );
    }
    svg + "</svg>"
}

/// A table of the newest standing snapshot's features: the figures of each, its
/// distribution drawn (a numeric's histogram, a category's most frequent values), its drift
/// since the snapshot before, and a numeric's mean in every snapshot.
fn statistics_section(statistics: Option<&PageStatistics>, snapshots: &[Snapshot]) -> String {
    let Some(statistics) = statistics else {
        return "<h2>Statistics</h2><p class=\"muted\" id=\"statistics\">none: no snapshot \
                was published since fengine keeps them</p>"
            .to_string();
    };
    let since = statistics
        .drift
        .as_ref()
        .map(|d| format!(", drift since {}", time(d.from)))
        .unwrap_or_default();
    let mut html = format!(
        "<h2>Statistics <span class=\"muted\">of snapshot {}{since}</span></h2>\
         <table id=\"statistics\"><tr><th>feature</th><th>values</th><th>figures</th>\
         <th>distribution</th><th>drift</th><th>mean per snapshot</th></tr>",
        time(statistics.as_of)
    );
    for feature in &statistics.features {
        let drift = statistics
            .drift
            .as_ref()
            .and_then(|d| d.features.iter().find(|f| f.feature == feature.feature))
            .map(drift_measures)
            .filter(|m| !m.is_empty())
            .map_or_else(
                || "-".to_string(),
                |m| m.iter().map(|s| escape(s)).collect::<Vec<_>>().join("<br>"),
            );
        let _ = write!(
            html,
            "<tr class=\"feature-statistics\" data-feature=\"{0}\"><td><code>{0}</code><br>\
             <span class=\"muted\">{1}</span></td><td>{2}</td><td>{3}</td><td>{4}</td>\
             <td class=\"drift\">{drift}</td><td>{5}</td></tr>",
            escape(&feature.feature),
            escape(&feature.data_type),
            counts(feature),
            figures(&feature.values),
            distribution_chart(feature),
            mean_trend(&feature.feature, snapshots),
        );
    }
    html + "</table>"
}

fn counts(feature: &FeatureStatistics) -> String {
    let rows = feature.count + feature.nulls;
    let share = match rows {
        0 => 0.0,
        rows => 100.0 * feature.nulls as f64 / rows as f64,
    };
    let distinct = feature
        .distinct
        .map_or_else(|| "-".to_string(), |d| format!("~{d}"));
    format!(
        "{} values<br>{} null ({share:.1}%)<br>{distinct} distinct",
        feature.count, feature.nulls
    )
}

/// A number as a reader takes it in: integers whole, others to 6 significant digits.
fn figure(value: f64) -> String {
    match value {
        v if v.fract() == 0.0 && v.abs() < 1e15 => format!("{v}"),
        v if v != 0.0 && (v.abs() >= 1e6 || v.abs() < 1e-3) => format!("{v:.5e}"),
        v => {
            let digits = (5 - v.abs().log10().floor() as i32).max(0) as usize;
            let text = format!("{v:.digits$}");
            match text.contains('.') {
                true => text.trim_end_matches('0').trim_end_matches('.').to_string(),
                false => text,
            }
        }
    }
}

fn figures(values: &ValueStatistics) -> String {
    let number = |n: &Option<f64>| n.map_or_else(|| "-".to_string(), figure);
    match values {
        ValueStatistics::Numeric {
            nan,
            infinite,
            min,
            max,
            mean,
            stddev,
            quantiles,
            ..
        } => {
            let quantile = |name: &str| quantiles.get(name).copied().map(figure);
            let mut html = format!(
                "min {} · max {}<br>mean {} · stddev {}",
                number(min),
                number(max),
                number(mean),
                number(stddev)
            );
            if let (Some(p01), Some(p50), Some(p99)) =
                (quantile("p01"), quantile("p50"), quantile("p99"))
            {
                let _ = write!(html, "<br>p01 {p01} · p50 {p50} · p99 {p99}");
            }
            if *nan > 0 || *infinite > 0 {
                let _ = write!(html, "<br>NaN {nan} · infinite {infinite}");
            }
            html
        }
        ValueStatistics::Categorical { min, max, .. } => format!(
            "min <code>{}</code><br>max <code>{}</code>",
            escape(min.as_deref().unwrap_or("-")),
            escape(max.as_deref().unwrap_or("-"))
        ),
        ValueStatistics::Other => "-".to_string(),
    }
}

fn distribution_chart(feature: &FeatureStatistics) -> String {
    match &feature.values {
        ValueStatistics::Numeric {
            histogram: Some(histogram),
            ..
        } => histogram_chart(histogram),
        ValueStatistics::Categorical { top, other, .. } => {
            top_values_chart(top, *other, feature.count)
        }
        _ => "-".to_string(),
    }
}

/// A bar per bin, the open tails included; each bin's range and count in its tooltip.
fn histogram_chart(histogram: &Histogram) -> String {
    const WIDTH: f64 = 240.0;
    const HEIGHT: f64 = 64.0;
    const LABELS: f64 = 14.0;
    let most = histogram.counts.iter().copied().max().unwrap_or(0).max(1);
    let width = WIDTH / histogram.counts.len() as f64;
    let mut svg = format!(
        "<svg class=\"histogram\" role=\"img\" aria-label=\"histogram\" width=\"{WIDTH}\" \
         height=\"{HEIGHT}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\">"
    );
    let ranges = bin_ranges(histogram);
    for (bin, (range, count)) in ranges.iter().zip(&histogram.counts).enumerate() {
        let height = *count as f64 / most as f64 * (HEIGHT - LABELS);
        let _ = write!(
            svg,
            "<rect class=\"bin\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{height:.1}\" \
             fill=\"#2f6fde\"><title>{range}: {count}</title></rect>",
            bin as f64 * width,
            HEIGHT - LABELS - height,
            (width - 1.0).max(1.0),
        );
    }
    let edges = histogram.edge_values();
    if let (Some(first), Some(last)) = (edges.first(), edges.last()) {
        let _ = write!(
            svg,
            "<text x=\"{width:.1}\" y=\"{HEIGHT}\" text-anchor=\"middle\">{}</text>\
             <text x=\"{:.1}\" y=\"{HEIGHT}\" text-anchor=\"end\">{}</text>",
            figure(*first),
            WIDTH,
            match edges.len() {
                1 => String::new(),
                _ => figure(*last),
            }
        );
    }
    svg + "</svg>"
}

/// A bar per most frequent value and one for the others, as shares of the values.
fn top_values_chart(top: &[ValueCount], other: u64, values: u64) -> String {
    const WIDTH: f64 = 240.0;
    const LABEL: f64 = 96.0;
    const ROW: f64 = 14.0;
    let mut rows: Vec<(String, u64, &str)> = top
        .iter()
        .map(|t| (t.value.clone(), t.count, "top-value"))
        .collect();
    if other > 0 {
        rows.push(("(other)".to_string(), other, "other-values"));
    }
    let height = rows.len() as f64 * ROW + 2.0;
    let mut svg = format!(
        "<svg class=\"top-values\" role=\"img\" aria-label=\"most frequent values\" \
         width=\"{WIDTH}\" height=\"{height}\" viewBox=\"0 0 {WIDTH} {height}\">"
    );
    let values = values.max(1) as f64;
    for (i, (value, count, class)) in rows.iter().enumerate() {
        let y = i as f64 * ROW;
        let share = *count as f64 / values;
        let label: String = value.chars().take(14).collect();
        let _ = write!(
            svg,
            "<g class=\"{class}\"><text x=\"0\" y=\"{:.1}\">{}</text>\
             <rect x=\"{LABEL}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#2f6fde\"/>\
             <title>{}: {count} ({:.1}%)</title></g>",
            y + 11.0,
            escape(&label),
            y + 2.0,
            (share * (WIDTH - LABEL)).max(1.0),
            ROW - 3.0,
            escape(value),
            100.0 * share
        );
    }
    svg + "</svg>"
}

/// A numeric feature's mean in each snapshot the catalog keeps statistics of, in order,
/// those a rollback set aside in red.
fn mean_trend(feature: &str, snapshots: &[Snapshot]) -> String {
    const WIDTH: f64 = 160.0;
    const HEIGHT: f64 = 40.0;
    const PAD: f64 = 4.0;
    let points: Vec<(&Snapshot, f64)> = snapshots
        .iter()
        .filter_map(|snapshot| {
            let statistics = snapshot.statistics.iter().find(|s| s.feature == feature)?;
            match statistics.values {
                ValueStatistics::Numeric {
                    mean: Some(mean), ..
                } => Some((snapshot, mean)),
                _ => None,
            }
        })
        .collect();
    if points.is_empty() {
        return "-".to_string();
    }
    let (low, high) = points
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), (_, m)| {
            (l.min(*m), h.max(*m))
        });
    let x = |i: usize| match points.len() {
        1 => WIDTH / 2.0,
        n => PAD + i as f64 / (n - 1) as f64 * (WIDTH - 2.0 * PAD),
    };
    let y = |mean: f64| match high > low {
        true => PAD + (high - mean) / (high - low) * (HEIGHT - 2.0 * PAD),
        false => HEIGHT / 2.0,
    };
    let line: Vec<String> = points
        .iter()
        .enumerate()
        .map(|(i, (_, mean))| format!("{:.1},{:.1}", x(i), y(*mean)))
        .collect();
    let mut svg = format!(
        "<svg class=\"mean-trend\" role=\"img\" aria-label=\"mean per snapshot\" \
         width=\"{WIDTH}\" height=\"{HEIGHT}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\">\
         <polyline fill=\"none\" stroke=\"#9aa3b2\" points=\"{}\"/>",
        line.join(" ")
    );
    for (i, (snapshot, mean)) in points.iter().enumerate() {
        let _ = write!(
            svg,
            "<circle class=\"trend-point\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\" fill=\"{}\">\
             <title>{}: mean {}</title></circle>",
            x(i),
            y(*mean),
            if snapshot.set_aside.is_some() {
                "#c33"
            } else {
                "#2f6fde"
            },
            time(snapshot.as_of),
            figure(*mean)
        );
    }
    svg + "</svg>"
}

/// The group's neighbourhood: what it reads on the left, what reads it and the models that
/// use it on the right; each neighbour links to its own page, which opens on it.
fn lineage_graph(page_data: &GroupPage, catalogue: &Catalogue) -> String {
    let group = &page_data.detail;
    let published: std::collections::BTreeSet<&str> = catalogue
        .groups
        .iter()
        .map(|g| g.detail.group.as_str())
        .collect();
    let group_node = |r: &fengine_engine::GroupRef| {
        let href = published
            .contains(r.group.as_str())
            .then(|| format!("{}.html", r.group));
        let version = r.version.map(|v| format!(" v{v}")).unwrap_or_default();
        (format!("{}{version}", r.group), href)
    };
    let mut left: Vec<(String, Option<String>)> = group
        .sources
        .iter()
        .map(|s| (format!("source {s}"), None))
        .collect();
    left.extend(group.reads.iter().map(group_node));
    let mut right: Vec<(String, Option<String>)> = group.read_by.iter().map(group_node).collect();
    right.extend(group.models.iter().map(|m| {
        (
            format!("model {} v{}", m.model, m.version),
            Some(format!("../models/{}.html", m.model)),
        )
    }));
    let rows = left.len().max(right.len()).max(1);
    let row_height = 34.0;
    let height = rows as f64 * row_height + 20.0;
    let width = 900.0;
    let (left_x, middle_x, right_x, node_width) = (10.0, 340.0, 620.0, 270.0);
    let middle_y = height / 2.0 - 13.0;
    let mut svg = format!(
        "<svg id=\"lineage-graph\" role=\"img\" aria-label=\"lineage\" width=\"{width}\" \
         height=\"{height}\" viewBox=\"0 0 {width} {height}\">"
    );
    let node = |svg: &mut String, x: f64, y: f64, label: &str, href: Option<&str>, class: &str| {
        let shown: String = label.chars().take(40).collect();
        let text = format!(
            "<rect x=\"{x}\" y=\"{y}\" width=\"{node_width}\" height=\"26\" rx=\"4\" \
             fill=\"#fff\" stroke=\"#9aa3b2\"/><text x=\"{}\" y=\"{}\">{}</text><title>{}</title>",
            x + 8.0,
            y + 17.0,
            escape(&shown),
            escape(label)
        );
        let _ = match href {
            Some(href) => write!(
                svg,
                "<g class=\"lineage-node {class}\"><a href=\"{}\">{text}</a></g>",
                escape(href)
            ),
            None => write!(svg, "<g class=\"lineage-node {class}\">{text}</g>"),
        };
    };
    for (column, nodes, x) in [(0, &left, left_x), (1, &right, right_x)] {
        for (i, (label, href)) in nodes.iter().enumerate() {
            let y = 10.0 + i as f64 * row_height;
            let (x1, x2) = match column {
                0 => (x + node_width, middle_x),
                _ => (middle_x + node_width, x),
            };
            let (y1, y2) = match column {
                0 => (y + 13.0, middle_y + 13.0),
                _ => (middle_y + 13.0, y + 13.0),
            };
            let _ = write!(
                svg,
                "<line class=\"lineage-edge\" x1=\"{x1}\" y1=\"{y1}\" x2=\"{x2}\" y2=\"{y2}\" stroke=\"#9aa3b2\"/>"
            );
            node(&mut svg, x, y, label, href.as_deref(), "neighbour");
        }
    }
    node(
        &mut svg,
        middle_x,
        middle_y,
        &format!("{} v{}", group.group, group.version),
        None,
        "selected",
    );
    svg + "</svg>"
}

fn history_table(events: &[HistoryEvent]) -> String {
    if events.is_empty() {
        return "<p class=\"muted\">nothing recorded</p>".to_string();
    }
    let mut html = String::from(
        "<table id=\"history\"><tr><th>when</th><th>version</th><th>what</th><th>who</th><th>detail</th></tr>",
    );
    for event in events {
        let kind = serde_json::to_value(event.kind).unwrap_or_default();
        let reason = event
            .reason
            .as_deref()
            .map(|r| format!(" <span class=\"muted\">(reason: {})</span>", escape(r)))
            .unwrap_or_default();
        let _ = write!(
            html,
            "<tr><td>{}</td><td>v{}</td><td>{}</td><td>{}</td><td>{}{reason}</td></tr>",
            time(event.at),
            event.version,
            escape(kind.as_str().unwrap_or_default()),
            escape(&event.actor),
            escape(&event.detail)
        );
    }
    html + "</table>"
}

fn snapshot_table(snapshots: &[Snapshot]) -> String {
    let mut html = format!(
        "<h2>Snapshots ({})</h2><table id=\"snapshots\"><tr><th>as-of</th><th>rows</th>\
         <th>bytes</th><th>written at</th><th>run</th></tr>",
        snapshots.len()
    );
    let or_dash = |n: Option<u64>| n.map_or_else(|| "-".to_string(), |n| n.to_string());
    for snapshot in snapshots.iter().rev() {
        let aside = snapshot
            .set_aside
            .as_deref()
            .map(|why| format!(" <span class=\"retired\">{}</span>", escape(why)))
            .unwrap_or_default();
        let _ = write!(
            html,
            "<tr><td>{}{aside}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
            time(snapshot.as_of),
            or_dash(snapshot.rows),
            or_dash(snapshot.bytes),
            snapshot.written_at.map(time).unwrap_or_default(),
            escape(&snapshot.run_id)
        );
    }
    html + "</table>"
}

fn model_page(model: &ModelDetail, all: &[ModelDetail]) -> String {
    let mut body = format!(
        "<h1 id=\"model-name\">model {} <span class=\"muted\">v{}</span></h1><p>{}</p><p>{}</p>\
         <p class=\"muted\">registered {} by {}, from {}</p>",
        escape(&model.model),
        model.version,
        escape(model.description.as_deref().unwrap_or("")),
        tags(&model.tags),
        time(model.registered_at),
        escape(&model.registered_by),
        escape(&model.origin)
    );
    for version in all.iter().filter(|m| m.model == model.model).rev() {
        let _ = write!(
            body,
            "<h2>Version {}</h2><table><tr><th>group</th><th>feature</th></tr>",
            version.version
        );
        for feature in &version.features {
            let _ = write!(
                body,
                "<tr><td><a href=\"../groups/{0}.html\">{0} v{1}</a></td>\
                 <td><a href=\"../groups/{0}.html#feature-{2}\"><code>{2}</code></a></td></tr>",
                escape(&feature.group),
                feature.version,
                escape(&feature.feature)
            );
        }
        body += "</table>";
    }
    page(
        &format!("model {} — fengine catalogue", model.model),
        "../",
        &body,
        "",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_keep_six_significant_digits_and_whole_numbers_whole() {
        for (value, shown) in [
            (20.0, "20"),
            (-50.0, "-50"),
            (1e14, "100000000000000"),
            (33.333_333_333, "33.3333"),
            (8.164_965_809, "8.16497"),
            (0.5, "0.5"),
            (123_450.2, "123450"),
            (-0.012_345_67, "-0.0123457"),
            (2.5e7 + 0.5, "2.50000e7"),
            (0.000_012_5, "1.25000e-5"),
            (f64::INFINITY, "inf"),
            (f64::NAN, "NaN"),
        ] {
            assert_eq!(figure(value), shown, "{value}");
        }
    }
}
