//! Publishing: reruns replace a snapshot, older as-ofs never overwrite newer online values,
//! a killed run leaves the catalog as it was, and a hand-checked fixture end to end.

mod common;

use common::*;
use serde_json::json;

/// Five transactions whose features are worked out by hand below.
const FIXTURE_CSV: &str = "\
customer_id,amount,event_time
1,10.0,2024-03-01T10:00:00Z
1,5.5,2024-03-02T11:00:00Z
2,100.0,2024-02-01T00:00:00Z
2,1.0,2024-03-02T12:00:00Z
3,7.0,2024-03-03T00:00:00Z
";

const FIXTURE_PIPELINE: &str = "\
CREATE EXTERNAL TABLE payments (customer_id BIGINT NOT NULL, amount DOUBLE NOT NULL, event_time TIMESTAMP NOT NULL)
STORED AS CSV LOCATION 'payments.csv' OPTIONS ('format.has_header' 'true');

CREATE FEATURE GROUP payment_totals
  KEY (customer_id)
  EVENT TIME event_time
  FEATURES (total COMMENT 'sum of amount up to the as-of')
  ONLINE (ttl = '36500 days')
AS
SELECT customer_id, max(event_time) AS event_time, sum(amount) AS total, count(*) AS n
FROM payments
WHERE event_time <= as_of()
GROUP BY customer_id;
";

fn fixture() -> Workspace {
    let workspace = Workspace::new();
    workspace.write("payments.csv", FIXTURE_CSV);
    workspace.write("totals.sql", FIXTURE_PIPELINE);
    workspace
}

fn run(workspace: &Workspace, as_of: &str, extra: &[&str]) -> Outcome {
    let mut args = vec!["run", "totals.sql", "--as-of", as_of, "--output", "json"];
    args.extend(extra);
    workspace.fengine(&args)
}

#[test]
fn a_hand_checked_fixture_publishes_its_snapshot_catalog_entry_and_online_rows() {
    let workspace = fixture();
    let manifest = run(&workspace, "2024-03-02T12:00:00Z", &[])
        .success()
        .json();
    let group = &manifest["groups"][0];
    assert_eq!(
        group["rows_written"], 2,
        "customer 3's only payment is after the as-of"
    );
    assert_eq!(group["partition"], "snapshot_ts=20240302T120000Z");
    assert_eq!(group["table"], "fengine.payment_totals_v1");

    let batches = read_parquet_folder(group["snapshot_location"].as_str().unwrap());
    let mut rows: Vec<(i64, i64, f64, i64)> = {
        use arrow::datatypes::{Float64Type, Int64Type};
        let ids = column::<Int64Type>(&batches, "customer_id");
        let times = column::<Int64Type>(&batches, "event_time");
        let totals = column::<Float64Type>(&batches, "total");
        let counts = column::<Int64Type>(&batches, "n");
        (0..ids.len())
            .map(|i| {
                (
                    ids[i].unwrap(),
                    times[i].unwrap(),
                    totals[i].unwrap(),
                    counts[i].unwrap(),
                )
            })
            .collect()
    };
    rows.sort_by_key(|r| r.0);
    assert_eq!(
        rows,
        [
            // CSV timestamps are read as nanoseconds.
            (1, micros("2024-03-02T11:00:00Z") * 1000, 15.5, 2),
            (2, micros("2024-03-02T12:00:00Z") * 1000, 101.0, 2),
        ]
    );

    let table = workspace.table("payment_totals_v1").unwrap();
    let columns: Vec<(String, String)> = table["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["data_type"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = [
        ("customer_id", "bigint"),
        ("event_time", "timestamp"),
        ("total", "double"),
        ("n", "bigint"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(columns, expected);
    assert_eq!(
        table["columns"][2]["comment"],
        "sum of amount up to the as-of"
    );
    assert_eq!(table["partition_keys"][0]["name"], "snapshot_ts");
    assert_eq!(table["parameters"]["fengine.key"], "customer_id");
    assert_eq!(table["parameters"]["fengine.event_time"], "event_time");
    assert_eq!(table["parameters"]["fengine.version"], "1");
    assert_eq!(table["parameters"]["fengine.online_ttl"], "36500 days");
    assert_eq!(
        workspace.partitions("payment_totals_v1"),
        [(
            "20240302T120000Z".to_string(),
            group["snapshot_location"].as_str().unwrap().to_string()
        )]
    );

    let online = workspace
        .fengine(&["get", "payment_totals", "1"])
        .success()
        .json();
    assert_eq!(
        online,
        json!({"customer_id": 1, "event_time": "2024-03-02T11:00:00Z", "total": 15.5, "n": 2})
    );
    let missing = workspace.fengine(&["get", "payment_totals", "3"]);
    assert_eq!(missing.code, 1);
    assert_eq!(
        missing.stderr,
        "fengine: feature group 'payment_totals' has no online value for key (3)\n"
    );
}

#[test]
fn a_rerun_of_the_same_as_of_replaces_the_snapshot() {
    let workspace = fixture();
    let first = run(&workspace, "2024-03-02T12:00:00Z", &[])
        .success()
        .json();
    let second = run(&workspace, "2024-03-02T12:00:00Z", &[])
        .success()
        .json();
    let (first, second) = (&first["groups"][0], &second["groups"][0]);
    assert_eq!(second["replaced"], true);
    assert_ne!(first["snapshot_location"], second["snapshot_location"]);
    let partitions = workspace.partitions("payment_totals_v1");
    assert_eq!(partitions.len(), 1);
    assert_eq!(
        partitions[0].1,
        second["snapshot_location"].as_str().unwrap()
    );
    // The first run's files are gone: the snapshot folder holds the second run's rows and
    // statistics only.
    let snapshot_folder =
        workspace.path("warehouse/payment_totals/v1/snapshot_ts=20240302T120000Z");
    let second_run = format!("run-{}", second["run_id"].as_str().unwrap());
    for folder in [snapshot_folder.clone(), snapshot_folder.join("_statistics")] {
        assert_eq!(run_folders(&folder), [second_run.as_str()]);
    }
    assert_eq!(
        row_count(&read_parquet_folder(
            second["snapshot_location"].as_str().unwrap()
        )),
        2
    );
}

#[test]
fn an_older_as_of_does_not_overwrite_newer_online_values_unless_forced() {
    let workspace = fixture();
    run(&workspace, "2024-03-05T00:00:00Z", &[]).success();
    let newer = workspace
        .fengine(&["get", "payment_totals", "1"])
        .success()
        .json();
    assert_eq!(newer["total"], 15.5);

    // 2024-03-01T12:00: customer 1 had paid 10.0 only.
    let older = run(&workspace, "2024-03-01T12:00:00Z", &[])
        .success()
        .json();
    assert_eq!(
        older["groups"][0]["online"],
        json!({"status": "skipped_newer", "loaded_as_of": "2024-03-05T00:00:00Z"})
    );
    assert_eq!(
        workspace
            .fengine(&["get", "payment_totals", "1"])
            .success()
            .json(),
        newer
    );
    assert_eq!(
        workspace.partitions("payment_totals_v1").len(),
        2,
        "the older snapshot is still published offline"
    );

    let forced = run(&workspace, "2024-03-01T12:00:00Z", &["--force"])
        .success()
        .json();
    assert_eq!(forced["groups"][0]["online"]["status"], "loaded");
    assert_eq!(
        workspace
            .fengine(&["get", "payment_totals", "1"])
            .success()
            .json()["total"],
        10.0
    );
}

#[test]
fn values_past_their_ttl_are_not_served() {
    let workspace = fixture();
    workspace.write(
        "totals.sql",
        &FIXTURE_PIPELINE.replace("36500 days", "1 day"),
    );
    run(&workspace, "2024-03-02T12:00:00Z", &[]).success();
    let expired = workspace.fengine(&["get", "payment_totals", "1"]);
    assert_eq!(expired.code, 1);
    assert_eq!(
        expired.stderr,
        "fengine: feature group 'payment_totals' has no online value for key (1): its value of \
         2024-03-02T11:00:00Z is past the group's ttl\n"
    );
}

#[test]
fn a_run_killed_between_writing_and_registering_leaves_the_catalog_as_it_was() {
    let workspace = fixture();
    run(&workspace, "2024-03-02T12:00:00Z", &[]).success();
    let before = workspace.partitions("payment_totals_v1");
    let online_before = workspace
        .fengine(&["get", "payment_totals", "1"])
        .success()
        .json();

    let killed = workspace.fengine_with_env(
        &["run", "totals.sql", "--as-of", "2024-03-02T12:00:00Z"],
        &[("FENGINE_FAIL_AT", "before_register")],
    );
    assert_ne!(killed.code, 0);
    assert!(killed.stderr.contains("aborting"), "{}", killed.stderr);
    assert_eq!(workspace.partitions("payment_totals_v1"), before);
    assert_eq!(
        workspace
            .fengine(&["get", "payment_totals", "1"])
            .success()
            .json(),
        online_before
    );
    // The killed run's files were written but never registered; the next run removes them.
    let snapshot_folder =
        workspace.path("warehouse/payment_totals/v1/snapshot_ts=20240302T120000Z");
    assert_eq!(run_folders(&snapshot_folder).len(), 2);

    let killed_new = workspace.fengine_with_env(
        &["run", "totals.sql", "--as-of", "2024-03-04T00:00:00Z"],
        &[("FENGINE_FAIL_AT", "before_register")],
    );
    assert_ne!(killed_new.code, 0);
    assert_eq!(
        workspace.partitions("payment_totals_v1"),
        before,
        "no partition for the killed as-of"
    );

    let rerun = run(&workspace, "2024-03-02T12:00:00Z", &[])
        .success()
        .json();
    let rerun_id = rerun["groups"][0]["run_id"].as_str().unwrap();
    assert_eq!(run_folders(&snapshot_folder), [format!("run-{rerun_id}")]);
    assert_eq!(
        run_folders(&snapshot_folder.join("_statistics")),
        [format!("run-{rerun_id}")],
        "the killed runs' statistics are removed with their files"
    );
    assert_eq!(
        workspace.partitions("payment_totals_v1")[0].1,
        rerun["groups"][0]["snapshot_location"].as_str().unwrap()
    );
}

/// The runs' folders in a snapshot's folder (or in its `_statistics`), by name.
fn run_folders(folder: &std::path::Path) -> Vec<String> {
    let mut runs: Vec<String> = std::fs::read_dir(folder)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("run-"))
        .collect();
    runs.sort();
    runs
}

#[test]
fn plan_shows_each_group_and_writes_nothing() {
    let workspace = fixture();
    let before = workspace.files();
    let plan = workspace
        .fengine(&[
            "plan",
            "totals.sql",
            "--as-of",
            "2024-03-02T12:00:00Z",
            "--output",
            "json",
        ])
        .success()
        .json();
    let group = &plan["groups"][0];
    assert_eq!(group["group"], "payment_totals");
    assert_eq!(group["key"], json!(["customer_id"]));
    assert_eq!(group["event_time"], "event_time");
    assert_eq!(group["table"], "fengine.payment_totals_v1");
    let names: Vec<&str> = group["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["customer_id", "event_time", "total", "n"]);
    assert!(
        group["snapshot_location"]
            .as_str()
            .unwrap()
            .ends_with("/warehouse/payment_totals/v1/snapshot_ts=20240302T120000Z/")
    );
    let after: Vec<_> = workspace
        .files()
        .into_keys()
        .filter(|p| !p.starts_with("warehouse"))
        .collect();
    assert_eq!(after, before.into_keys().collect::<Vec<_>>());
    assert!(workspace.partitions("payment_totals_v1").is_empty());
}

#[test]
fn a_snapshot_without_rows_is_published_with_its_schema() {
    let workspace = fixture();
    let manifest = run(&workspace, "2024-01-01T00:00:00Z", &[])
        .success()
        .json();
    let group = &manifest["groups"][0];
    assert_eq!(
        (&group["rows_written"], &group["online"]["rows"]),
        (&json!(0), &json!(0))
    );
    let location = group["snapshot_location"].as_str().unwrap();
    assert_eq!(row_count(&read_parquet_folder(location)), 0);
    let folder = location.strip_prefix("file://").unwrap();
    let file = std::fs::read_dir(folder)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        std::fs::File::open(file).unwrap(),
    )
    .unwrap();
    let names: Vec<String> = reader
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(names, ["customer_id", "event_time", "total", "n"]);
    assert_eq!(workspace.partitions("payment_totals_v1").len(), 1);
}

/// A catalog table of the group's name that fengine did not register (no fengine.*
/// parameters: another tool's) is refused before any data is read, and left as it was.
#[test]
fn a_catalog_table_fengine_did_not_register_is_not_taken_over() {
    let workspace = fixture();
    run(&workspace, "2024-03-04T00:00:00Z", &[]).success();
    let catalog = rusqlite::Connection::open(workspace.path("warehouse/catalog.sqlite")).unwrap();
    let definition: String = catalog
        .query_row(
            "SELECT definition FROM catalog_tables WHERE name = 'payment_totals_v1'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    let mut foreign: serde_json::Value = serde_json::from_str(&definition).unwrap();
    foreign["parameters"] = json!({"owner": "etl"});
    catalog
        .execute(
            "UPDATE catalog_tables SET definition = ?1 WHERE name = 'payment_totals_v1'",
            [foreign.to_string()],
        )
        .unwrap();
    drop(catalog);
    let outcome = run(&workspace, "2024-03-05T00:00:00Z", &[]);
    assert_eq!(outcome.code, 2, "{}", outcome.stderr);
    assert!(
        outcome.stderr.contains(
            "feature group 'payment_totals': catalog table 'fengine.payment_totals_v1' exists \
             and was not registered by fengine (it has no fengine.* parameters): fengine does \
             not take it over; rename the feature group, or drop or move that table"
        ),
        "{}",
        outcome.stderr
    );
    let table = workspace.table("payment_totals_v1").unwrap();
    assert_eq!(table["parameters"], json!({"owner": "etl"}));
    assert_eq!(workspace.partitions("payment_totals_v1").len(), 1);
    assert!(
        !workspace
            .path("warehouse/payment_totals/v1/snapshot_ts=20240305T000000Z")
            .exists()
    );
}

/// `fengine run ... | head -1`: the reader closes the pipe before fengine prints. The run
/// has finished by then, so fengine exits 0 without a panic, its work published.
#[test]
fn a_closed_standard_output_ends_the_command_quietly() {
    let workspace = fixture();
    let mut child = std::process::Command::new(FENGINE)
        // The exact messages, as a person reads them; the log tests ask for JSON.
        .env("FENGINE_LOG_FORMAT", "text")
        .args([
            "run",
            "totals.sql",
            "--as-of",
            "2024-03-04T00:00:00Z",
            "--output",
            "json",
        ])
        .current_dir(workspace.dir.path())
        .env_remove("FENGINE_PROFILE")
        .env_remove("FENGINE_CONFIG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(stderr, "");
    assert_eq!(workspace.partitions("payment_totals_v1").len(), 1);
}
