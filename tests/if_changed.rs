//! Change-driven refresh: each snapshot records a fingerprint of what its group read, `run
//! --if-changed` computes only the groups an input of which changed since their last run
//! (exiting 6, having written nothing, when none did), and `fengine status` says which.
//! The local file system's cases; tests/aws_end_to_end.rs has S3's and Glue's.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use arrow::datatypes::{Float64Type, Int64Type};
use common::*;

/// `totals` reads the events through a view, `counts` reads them directly, `orders` reads
/// another source; `param('scale')` is one of their inputs.
const PIPELINE: &str = "\
CREATE EXTERNAL TABLE events (k BIGINT NOT NULL, t TIMESTAMP NOT NULL, v DOUBLE NOT NULL)
STORED AS CSV LOCATION 'events/' OPTIONS ('format.has_header' 'true');
CREATE EXTERNAL TABLE orders (k BIGINT NOT NULL, t TIMESTAMP NOT NULL)
STORED AS CSV LOCATION 'orders.csv' OPTIONS ('format.has_header' 'true');
CREATE VIEW scaled AS SELECT k, t, v * param('scale') AS v FROM events;
CREATE FEATURE GROUP totals KEY (k) EVENT TIME t AS
SELECT k, max(t) AS t, sum(v) AS total FROM scaled GROUP BY k;
CREATE FEATURE GROUP counts KEY (k) EVENT TIME t AS
SELECT k, max(t) AS t, count(*) AS n FROM events GROUP BY k;
CREATE FEATURE GROUP orders KEY (k) EVENT TIME t AS
SELECT k, max(t) AS t, count(*) AS orders FROM orders GROUP BY k;
";

const FIRST: &str = "2024-03-02T00:00:00Z";
const LATER: &str = "2024-03-03T00:00:00Z";

fn workspace() -> Workspace {
    let workspace = Workspace::new();
    workspace.write("p.sql", PIPELINE);
    workspace.write("events/a.csv", "k,t,v\n1,2024-03-01T00:00:00Z,1.5\n");
    workspace.write(
        "events/b.csv",
        "k,t,v\n2,2024-03-01T00:00:00Z,2.5\n2,2024-03-01T01:00:00Z,1\n",
    );
    workspace.write("orders.csv", "k,t\n1,2024-03-01T00:00:00Z\n");
    workspace
}

fn run(workspace: &Workspace, as_of: &str, extra: &[&str]) -> Outcome {
    let mut args = vec!["run", "p.sql", "--as-of", as_of, "--param", "scale=2"];
    args.extend_from_slice(extra);
    workspace.fengine(&args)
}

fn run_if_changed(workspace: &Workspace, as_of: &str) -> Outcome {
    run(workspace, as_of, &["--if-changed", "--output", "json"])
}

/// The groups a run computed, and those it found unchanged.
fn computed_and_unchanged(outcome: &Outcome) -> (Vec<String>, Vec<String>) {
    let manifest = outcome.json();
    let names = |field: &str| {
        manifest[field]
            .as_array()
            .map(|groups| {
                groups
                    .iter()
                    .map(|g| g["group"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    (names("groups"), names("unchanged"))
}

/// Every file but the pipeline's sources: what a run that has nothing to do must not touch.
fn written(workspace: &Workspace) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    let mut files = workspace.files();
    files.retain(|path, _| path.starts_with("warehouse"));
    files
}

fn status(workspace: &Workspace) -> String {
    workspace
        .fengine(&["status", "p.sql", "--param", "scale=2"])
        .success()
        .stdout
}

#[test]
fn nothing_changed_exits_6_and_writes_nothing() {
    let workspace = workspace();
    run(&workspace, FIRST, &[]).success();
    let before = written(&workspace);
    assert!(!before.is_empty());

    let outcome = run_if_changed(&workspace, LATER);
    assert_eq!(outcome.code, 6, "{}", outcome.stderr);
    assert!(
        outcome
            .stderr
            .contains("nothing to do: nothing read changed since the last run of totals v1"),
        "{}",
        outcome.stderr
    );
    let (computed, unchanged) = computed_and_unchanged(&outcome);
    assert!(computed.is_empty(), "{computed:?}");
    assert_eq!(unchanged, ["totals", "counts", "orders"]);
    assert_eq!(
        written(&workspace),
        before,
        "a run with nothing to do wrote"
    );
    assert_eq!(
        workspace.partitions("totals_v1"),
        [(
            "20240302T000000Z".to_string(),
            workspace.partitions("totals_v1")[0].1.clone()
        )]
    );

    // Without --if-changed the same run computes every group.
    let forced = run(&workspace, LATER, &["--output", "json"]).success();
    assert_eq!(computed_and_unchanged(&forced).0.len(), 3);
    assert_eq!(workspace.partitions("totals_v1").len(), 2);
}

#[test]
fn a_first_run_under_if_changed_computes_every_group() {
    let workspace = workspace();
    let outcome = run_if_changed(&workspace, FIRST).success();
    assert_eq!(
        computed_and_unchanged(&outcome),
        (
            vec!["totals".into(), "counts".into(), "orders".into()],
            vec![]
        )
    );
}

/// Runs once, changes the events as `change` does, and expects `--if-changed` to compute
/// the groups that read them (and those only) with the changed rows: `expected` is k ->
/// total.
fn events_change_is_seen(change: impl FnOnce(&Workspace), expected: &[(i64, f64)]) {
    let workspace = workspace();
    run(&workspace, FIRST, &[]).success();
    // A rewrite within the file system's clock tick would keep its modification time.
    std::thread::sleep(Duration::from_millis(20));
    change(&workspace);

    let outcome = run_if_changed(&workspace, LATER).success();
    let (computed, unchanged) = computed_and_unchanged(&outcome);
    assert_eq!(computed, ["totals", "counts"]);
    assert_eq!(unchanged, ["orders"]);
    assert_eq!(workspace.partitions("orders_v1").len(), 1);
    let location = &workspace.partitions("totals_v1")[1].1;
    let rows = read_parquet_folder(location);
    let keys = column::<Int64Type>(&rows, "k");
    let totals = column::<Float64Type>(&rows, "total");
    let mut got: Vec<(i64, f64)> = keys
        .into_iter()
        .zip(totals)
        .map(|(k, t)| (k.unwrap(), t.unwrap()))
        .collect();
    got.sort_by_key(|(k, _)| *k);
    assert_eq!(got, expected);

    // The new snapshot recorded what it read: nothing is left to do.
    let again = run_if_changed(&workspace, LATER);
    assert_eq!(again.code, 6, "{}", again.stderr);
}

#[test]
fn an_added_file_is_a_change() {
    events_change_is_seen(
        |w| {
            w.write("events/c.csv", "k,t,v\n3,2024-03-01T00:00:00Z,4\n");
        },
        &[(1, 3.0), (2, 7.0), (3, 8.0)],
    );
}

#[test]
fn a_removed_file_is_a_change() {
    events_change_is_seen(
        |w| std::fs::remove_file(w.path("events/a.csv")).unwrap(),
        &[(2, 7.0)],
    );
}

#[test]
fn a_file_rewritten_in_place_with_the_same_size_is_a_change() {
    events_change_is_seen(
        |w| {
            let path = w.path("events/a.csv");
            let before = std::fs::metadata(&path).unwrap().len();
            std::fs::write(&path, "k,t,v\n1,2024-03-01T00:00:00Z,9.5\n").unwrap();
            assert_eq!(std::fs::metadata(&path).unwrap().len(), before);
        },
        &[(1, 19.0), (2, 7.0)],
    );
}

#[test]
fn a_file_read_again_untouched_is_no_change() {
    let workspace = workspace();
    run(&workspace, FIRST, &[]).success();
    // Read, copied away and back would change it; only reading it does not.
    let _ = std::fs::read(workspace.path("events/a.csv")).unwrap();
    let outcome = run_if_changed(&workspace, LATER);
    assert_eq!(outcome.code, 6, "{}", outcome.stderr);
}

#[test]
fn the_parameters_and_the_pipeline_text_are_inputs() {
    let workspace = workspace();
    run(&workspace, FIRST, &[]).success();

    let other_param = workspace.fengine(&[
        "run",
        "p.sql",
        "--as-of",
        LATER,
        "--param",
        "scale=3",
        "--if-changed",
        "--output",
        "json",
    ]);
    let (computed, unchanged) = computed_and_unchanged(&other_param.success());
    // Every group has every parameter as an input: a parameter is the pipeline's.
    assert_eq!(computed, ["totals", "counts", "orders"]);
    assert!(unchanged.is_empty());

    // Back to scale=2: the newest snapshot recorded scale=3, so this is a change too.
    let back = run_if_changed(&workspace, "2024-03-04T00:00:00Z").success();
    assert_eq!(computed_and_unchanged(&back).0.len(), 3);

    workspace.write("p.sql", &format!("-- reviewed\n{PIPELINE}"));
    let edited = run_if_changed(&workspace, "2024-03-05T00:00:00Z").success();
    assert_eq!(computed_and_unchanged(&edited).0.len(), 3);
    let nothing = run_if_changed(&workspace, "2024-03-06T00:00:00Z");
    assert_eq!(nothing.code, 6, "{}", nothing.stderr);
}

#[test]
fn an_included_file_is_part_of_the_pipeline_text() {
    let workspace = workspace();
    workspace.write(
        "sources.sql",
        "CREATE EXTERNAL TABLE orders (k BIGINT NOT NULL, t TIMESTAMP NOT NULL)\n\
         STORED AS CSV LOCATION 'orders.csv' OPTIONS ('format.has_header' 'true');\n",
    );
    workspace.write(
        "q.sql",
        "INCLUDE 'sources.sql';\n\
         CREATE FEATURE GROUP orders KEY (k) EVENT TIME t AS\n\
         SELECT k, max(t) AS t, count(*) AS orders FROM orders GROUP BY k;\n",
    );
    let args = |as_of: &'static str| ["run", "q.sql", "--as-of", as_of, "--if-changed"];
    workspace.fengine(&args(FIRST)).success();
    assert_eq!(workspace.fengine(&args(LATER)).code, 6);
    workspace.write(
        "sources.sql",
        "-- a comment\nCREATE EXTERNAL TABLE orders (k BIGINT NOT NULL, t TIMESTAMP NOT NULL)\n\
         STORED AS CSV LOCATION 'orders.csv' OPTIONS ('format.has_header' 'true');\n",
    );
    workspace.fengine(&args(LATER)).success();
}

#[test]
fn a_published_group_read_through_features_is_an_input() {
    let workspace = workspace();
    workspace.write(
        "reader.sql",
        "CREATE FEATURE GROUP big_totals KEY (k) EVENT TIME t AS\n\
         SELECT k, t, total FROM features.totals WHERE total > 3;\n",
    );
    let reader = |as_of: &str| {
        workspace.fengine(&[
            "run",
            "reader.sql",
            "--as-of",
            as_of,
            "--if-changed",
            "--output",
            "json",
        ])
    };
    run(&workspace, FIRST, &[]).success();
    reader(FIRST).success();
    // A later as-of reads the same snapshot of totals: nothing to do.
    let same = reader(LATER);
    assert_eq!(same.code, 6, "{}", same.stderr);

    // A new snapshot of totals, even with the same rows, is a change for its reader.
    run(&workspace, LATER, &[]).success();
    let changed = reader(LATER).success();
    assert_eq!(computed_and_unchanged(&changed).0, ["big_totals"]);
    let status = workspace
        .fengine(&["status", "reader.sql"])
        .success()
        .stdout;
    assert!(
        status.starts_with("big_totals v1: unchanged; last run "),
        "{status}"
    );
}

#[test]
fn status_says_per_group_what_changed_and_when_it_last_ran() {
    let workspace = workspace();
    // Where nothing was ever published, status says so rather than guess.
    let nowhere = workspace.fengine(&["status", "p.sql"]);
    assert_eq!(nowhere.code, 1, "{}", nowhere.stderr);
    assert!(
        nowhere
            .stderr
            .contains("'./warehouse' does not exist, so nothing has been published"),
        "{}",
        nowhere.stderr
    );
    run(&workspace, FIRST, &["--run-id", "first"]).success();
    workspace.write(
        "more.sql",
        "CREATE EXTERNAL TABLE orders (k BIGINT NOT NULL, t TIMESTAMP NOT NULL)\n\
         STORED AS CSV LOCATION 'orders.csv' OPTIONS ('format.has_header' 'true');\n\
         CREATE FEATURE GROUP later KEY (k) EVENT TIME t AS SELECT k, t FROM orders;\n",
    );
    let never = workspace.fengine(&["status", "more.sql"]).success().stdout;
    assert_eq!(
        never,
        "later v1: changed: no snapshot registered yet; never run\n"
    );
    let lines: Vec<String> = status(&workspace).lines().map(String::from).collect();
    for (line, group) in lines.iter().zip(["totals", "counts", "orders"]) {
        let prefix = format!(
            "{group} v1: unchanged; last run first (as-of 2024-03-02T00:00:00Z, written 20"
        );
        assert!(line.starts_with(&prefix), "{line}");
    }

    workspace.write("events/c.csv", "k,t,v\n3,2024-03-01T00:00:00Z,4\n");
    let events = format!(
        "source {}/",
        workspace.path("events").canonicalize().unwrap().display()
    );
    let lines: Vec<String> = status(&workspace).lines().map(String::from).collect();
    assert!(
        lines[0].starts_with(&format!("totals v1: changed: {events}; last run first")),
        "{lines:?}"
    );
    assert!(
        lines[1].starts_with(&format!("counts v1: changed: {events}; last run first")),
        "{lines:?}"
    );
    assert!(lines[2].starts_with("orders v1: unchanged"), "{lines:?}");

    let json = workspace
        .fengine(&["status", "p.sql", "--param", "scale=2", "--output", "json"])
        .success()
        .json();
    assert_eq!(json[0]["group"], "totals");
    assert_eq!(json[0]["changed"], serde_json::json!([events]));
    assert_eq!(json[0]["last_run"]["run_id"], "first");
    assert_eq!(json[2]["changed"], serde_json::json!([]));
    let inputs: Vec<&str> = json[0]["fingerprint"]["inputs"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(inputs, ["param scale", "pipeline text", events.as_str()]);
}

#[test]
fn a_group_whose_online_load_did_not_finish_is_not_unchanged() {
    let workspace = workspace();
    let failed = workspace.fengine_with_env(
        &["run", "p.sql", "--as-of", FIRST, "--param", "scale=2"],
        &[("FENGINE_FAIL_AT", "during_online_load")],
    );
    assert_ne!(failed.code, 0, "{}", failed.stderr);
    let text = status(&workspace);
    assert!(
        text.lines()
            .next()
            .unwrap()
            .starts_with("totals v1: changed: the online store does not hold its last snapshot"),
        "{text}"
    );
    let outcome = run_if_changed(&workspace, LATER).success();
    assert!(
        computed_and_unchanged(&outcome)
            .0
            .contains(&"totals".to_string())
    );
}

#[test]
fn a_table_function_and_a_created_table_are_fingerprinted_by_what_they_hold() {
    let workspace = Workspace::new();
    let pipeline = |n: u32| {
        format!(
            "CREATE TABLE labels AS SELECT * FROM (VALUES (1, 'a'), (2, 'b')) AS l(k, label);\n\
             CREATE FEATURE GROUP generated KEY (k) EVENT TIME t AS\n\
             SELECT value AS k, to_timestamp_seconds(1704067200) AS t FROM range({n});\n\
             CREATE FEATURE GROUP labelled KEY (k) EVENT TIME t AS\n\
             SELECT CAST(k AS BIGINT) AS k, to_timestamp_seconds(1704067200) AS t, label FROM labels;\n"
        )
    };
    workspace.write("g.sql", &pipeline(5));
    let args = |as_of: &'static str| ["run", "g.sql", "--as-of", as_of, "--if-changed"];
    workspace.fengine(&args(FIRST)).success();
    let again = workspace.fengine(&args(LATER));
    assert_eq!(again.code, 6, "{}", again.stderr);
    workspace.write("g.sql", &pipeline(6));
    workspace.fengine(&args(LATER)).success();
}
