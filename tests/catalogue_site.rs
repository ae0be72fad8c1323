//! The browsable catalogue in a real browser: `fengine catalog docs` writes the site, Debian's
//! headless Chromium (driven by Selenium, tests/browser/check_site.py) opens every page from
//! file:// behind a proxy that refuses every request, searches the index and reads a group
//! page's chart and lineage graph. tests/run.sh installs Chromium, its driver and Selenium;
//! the screenshot of the group page is left in `$FENGINE_ARTEFACTS` (default
//! `target/artefacts/`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use arrow::array::{Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use common::*;
use serde_json::Value;

const AS_OFS: [&str; 3] = [
    "2024-01-02T00:00:00Z",
    "2024-01-03T00:00:00Z",
    "2024-01-04T00:00:00Z",
];

fn transactions() -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("customer_id", DataType::Int64, false),
        Field::new("amount", DataType::Float64, false),
        Field::new("channel", DataType::Utf8, false),
        Field::new(
            "event_time",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            false,
        ),
    ]));
    let times = [
        "2024-01-01T10:00:00Z",
        "2024-01-02T10:00:00Z",
        "2024-01-02T11:00:00Z",
        "2024-01-03T10:00:00Z",
    ];
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(vec![1, 2, 3, 1])),
            Arc::new(Float64Array::from(vec![10.0, 20.0, 30.0, 40.0])),
            Arc::new(StringArray::from(vec!["web", "store", "web", "store"])),
            Arc::new(TimestampMicrosecondArray::from_iter_values(
                times.iter().map(|t| micros(t)),
            )),
        ],
    )
    .unwrap()
}

/// A catalogue of two groups, one reading the other, and a model: a neighbourhood on both
/// sides of `spend`.
fn catalogue() -> Workspace {
    let workspace = Workspace::new();
    write_parquet_file(&workspace.path("data/txns/part-0.parquet"), &transactions());
    let spend = workspace.write(
        "spend.sql",
        "CREATE EXTERNAL TABLE txns STORED AS PARQUET LOCATION 'data/txns/';\n\
         CREATE FEATURE GROUP spend KEY (customer_id) EVENT TIME event_time\n\
           DESCRIPTION 'Card spend per customer <so far>' TAGS (team = 'risk')\n\
           FEATURES (total COMMENT 'sum of amount, in euros')\n\
         AS SELECT customer_id, as_of() AS event_time, sum(amount) AS total,\n\
           max(channel) AS channel\n\
         FROM txns WHERE event_time <= as_of() GROUP BY customer_id;",
    );
    let doubled = workspace.write(
        "doubled.sql",
        "CREATE FEATURE GROUP spend_doubled KEY (customer_id) EVENT TIME event_time \
         DESCRIPTION 'Twice the spend' \
         AS SELECT customer_id, as_of() AS event_time, total * 2 AS doubled FROM features.spend;",
    );
    let models = workspace.write(
        "models.sql",
        "CREATE MODEL churn USES (spend.total, spend_doubled.doubled) DESCRIPTION 'churn risk';",
    );
    let path = |p: &PathBuf| p.to_str().unwrap().to_string();
    for as_of in AS_OFS {
        workspace
            .fengine(&["run", &path(&spend), &path(&doubled), "--as-of", as_of])
            .success();
    }
    workspace.fengine(&["run", &path(&models)]).success();
    workspace
        .fengine(&[
            "rollback",
            "spend",
            "--to",
            AS_OFS[1],
            "--reason",
            "late file",
        ])
        .success();
    workspace
}

fn pages(site: &Path) -> Vec<PathBuf> {
    let mut pages = Vec::new();
    for folder in [site.to_path_buf(), site.join("groups"), site.join("models")] {
        for entry in std::fs::read_dir(folder).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "html") {
                pages.push(path);
            }
        }
    }
    pages.sort();
    pages
}

#[test]
fn the_site_holds_everything_it_shows_and_references_nothing_outside() {
    let workspace = catalogue();
    let site = workspace.path("site");
    let written = workspace
        .fengine(&[
            "catalog",
            "docs",
            "--out",
            site.to_str().unwrap(),
            "--output",
            "json",
        ])
        .success()
        .json();
    assert_eq!(written["group_pages"], 2);
    assert_eq!(written["model_pages"], 1);
    let names: Vec<String> = pages(&site)
        .iter()
        .map(|p| p.strip_prefix(&site).unwrap().display().to_string())
        .collect();
    assert_eq!(
        names,
        [
            "groups/spend.html",
            "groups/spend_doubled.html",
            "index.html",
            "models/churn.html"
        ]
    );
    for page in pages(&site) {
        let html = std::fs::read_to_string(&page).unwrap();
        for outside in ["http://", "https://", "src=\"", "<link", "@import", "url("] {
            assert!(
                !html.contains(outside),
                "{} refers outside itself ({outside})",
                page.display()
            );
        }
    }
    let spend = std::fs::read_to_string(site.join("groups/spend.html")).unwrap();
    assert!(
        spend.contains("Card spend per customer &lt;so far&gt;"),
        "text is escaped"
    );
    assert!(spend.contains("sum of amount, in euros"));
    assert!(
        spend.contains("late file"),
        "the rollback is in its history"
    );
}

#[test]
fn every_page_loads_in_chromium_search_filters_and_a_group_shows_its_chart_and_graph() {
    let workspace = catalogue();
    let site = workspace.path("site");
    workspace
        .fengine(&["catalog", "docs", "--out", site.to_str().unwrap()])
        .success();
    let artefacts = std::env::var_os("FENGINE_ARTEFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_path("target/artefacts"));
    let screenshot = artefacts.join("catalogue-group-page.png");
    let _ = std::fs::remove_file(&screenshot);
    assert!(
        Path::new("/usr/bin/chromium").exists() && Path::new("/usr/bin/chromedriver").exists(),
        "this test drives Debian's chromium and chromium-driver: tests/run.sh installs them"
    );
    let output = Command::new("python3")
        .arg(repo_path("tests/browser/check_site.py"))
        .arg(&site)
        .arg("spend")
        .arg(&screenshot)
        .args(["SPEND", "euros", "churn", "nothing-matches-this"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "the browser check failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();

    let loaded = report["pages"].as_object().unwrap();
    assert_eq!(loaded.len(), 4, "{report}");
    for (page, seen) in loaded {
        assert_eq!(seen["errors"], serde_json::json!([]), "{page}");
        assert!(
            seen["title"]
                .as_str()
                .unwrap()
                .contains("fengine catalogue"),
            "{page}"
        );
    }
    assert_eq!(report["search_errors"], serde_json::json!([]));

    let results = |word: &str| -> Vec<String> {
        report["search"][word]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap().to_string())
            .collect()
    };
    // Two groups, their three features and the model, before anything is typed.
    assert_eq!(results("").len(), 6, "{:?}", results(""));
    let spend = results("SPEND");
    assert_eq!(spend.len(), 5, "both groups and their features: {spend:?}");
    assert!(spend.iter().all(|r| r.to_lowercase().contains("spend")));
    assert_eq!(results("euros").len(), 1, "a feature's comment");
    assert!(results("euros")[0].contains("spend.total"));
    assert_eq!(results("churn").len(), 1);
    assert!(results("churn")[0].starts_with("MODEL") || results("churn")[0].starts_with("model"));
    assert!(results("nothing-matches-this").is_empty());

    let group = &report["group"];
    assert_eq!(group["heading"], "spend v1");
    assert_eq!(group["chart_displayed"], true);
    assert_eq!(group["chart_points"], AS_OFS.len(), "a point per snapshot");
    assert_eq!(group["graph_displayed"], true);
    assert_eq!(group["graph_selected"], serde_json::json!(["spend v1"]));
    let neighbours: Vec<&str> = group["graph_neighbours"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    assert_eq!(neighbours.len(), 3, "{neighbours:?}");
    assert!(
        neighbours[0].starts_with("model churn v1"),
        "{neighbours:?}"
    );
    assert!(neighbours[1].starts_with("source "), "{neighbours:?}");
    assert_eq!(neighbours[2], "spend_doubled v1");
    assert_eq!(
        group["graph_links"],
        serde_json::json!(["churn.html", "spend_doubled.html"])
    );
    assert_eq!(group["followed_to"], "spend_doubled v1");
    assert_statistics(group);
    let png = std::fs::read(&screenshot).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a screenshot is written");
}

/// The statistics `spend`'s page shows, hand-checked. The rollback set the snapshot of
/// 2024-01-04 aside, so the page shows 2024-01-03's (totals 10, 20 and 30; channels web,
/// store, web) and its drift since 2024-01-02's (customer 1 alone: 10, web).
fn assert_statistics(group: &Value) {
    assert_eq!(
        group["statistics_heading"],
        "Statistics of snapshot 2024-01-03T00:00:00Z, drift since 2024-01-02T00:00:00Z"
    );
    let total = &group["statistics"]["total"];
    assert_eq!(total["displayed"], true);
    assert_eq!(total["bars_drawn"], true);
    // Binned on the edges of the version's first snapshot: its deciles, all 10.
    assert_eq!(
        total["bins"],
        serde_json::json!(["[-inf, 10): 0", "[10, inf): 3"])
    );
    // Every value in the same bin both times: PSI 0. At 10 all of the reference's values
    // and a third of the current's: KS 2/3.
    assert_eq!(total["drift"], "PSI 0.0000\nKS 0.6667");
    // Three snapshots, the third set aside.
    assert_eq!(
        total["trend"],
        serde_json::json!([
            "2024-01-02T00:00:00Z: mean 10",
            "2024-01-03T00:00:00Z: mean 20",
            "2024-01-04T00:00:00Z: mean 33.3333"
        ])
    );
    let channel = &group["statistics"]["channel"];
    assert_eq!(
        channel["top_values"],
        serde_json::json!(["web: 2 (66.7%)", "store: 1 (33.3%)"])
    );
    assert_eq!(channel["bins"], serde_json::json!([]));
    assert_eq!(channel["trend"], serde_json::json!([]));
    // Shares web 1 -> 2/3 and store 0 (counted as 1e-4) -> 1/3, no nulls.
    let psi =
        (2.0 / 3.0 - 1.0) * (2.0f64 / 3.0).ln() + (1.0 / 3.0 - 1e-4) * ((1.0 / 3.0) / 1e-4f64).ln();
    let drift = channel["drift"].as_str().unwrap();
    assert!(
        drift.starts_with(&format!("PSI {psi:.4}\n")),
        "{drift} vs {psi}"
    );
}
