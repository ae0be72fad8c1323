//! `fengine backfill`: each as-of's snapshot equals a nested-loop reference at that as-of
//! (the sources are read once, but views over `as_of()` must not keep the first as-of), a
//! killed backfill resumes where it stopped, and only the newest as-of goes online.

mod common;

use std::collections::BTreeMap;

use arrow::datatypes::{Float64Type, Int64Type};
use common::*;

const DAY_US: i64 = 86_400_000_000;

fn backfill(workspace: &Workspace, from: &str, to: &str, extra: &[&str]) -> Outcome {
    let pipeline = repo_path("pipelines/customer_spend.sql");
    let mut args = vec![
        "backfill",
        pipeline.to_str().unwrap(),
        "--from",
        from,
        "--to",
        to,
        "--every",
        "4d",
        "--output",
        "json",
    ];
    args.extend(extra);
    workspace.fengine(&args)
}

/// customer -> (spend_30d, txn_count_30d) at `as_of`, by a scan of the sample data.
fn reference(as_of: i64) -> BTreeMap<i64, (f64, i64)> {
    let mut expected: BTreeMap<i64, (f64, i64)> = BTreeMap::new();
    for t in sample_transactions() {
        if t.event_time_us > as_of - 30 * DAY_US && t.event_time_us <= as_of {
            let entry = expected.entry(t.customer_id).or_default();
            entry.0 += t.amount;
            entry.1 += 1;
        }
    }
    expected
}

fn group<'a>(as_of: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    as_of["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["group"] == name)
        .unwrap_or_else(|| panic!("no group {name} in {as_of}"))
}

#[test]
fn each_as_of_gets_its_own_snapshot_and_only_the_newest_goes_online() {
    let workspace = Workspace::new();
    let manifest = backfill(
        &workspace,
        "2024-03-20T00:00:00Z",
        "2024-04-01T00:00:00Z",
        &[],
    )
    .success()
    .json();
    let as_ofs = manifest["as_ofs"].as_array().unwrap();
    let times: Vec<&str> = as_ofs
        .iter()
        .map(|a| a["as_of"].as_str().unwrap())
        .collect();
    assert_eq!(
        times,
        [
            "2024-03-20T00:00:00Z",
            "2024-03-24T00:00:00Z",
            "2024-03-28T00:00:00Z",
            "2024-04-01T00:00:00Z"
        ]
    );
    for (i, as_of) in as_ofs.iter().enumerate() {
        let spend = group(as_of, "customer_spend");
        let expected = reference(micros(as_of["as_of"].as_str().unwrap()));
        let batches = read_parquet_folder(spend["snapshot_location"].as_str().unwrap());
        let customers = column::<Int64Type>(&batches, "customer_id");
        let spend_30d = column::<Float64Type>(&batches, "spend_30d");
        let counts = column::<Int64Type>(&batches, "txn_count_30d");
        assert_eq!(
            customers.len(),
            expected.len(),
            "customers at {}",
            as_of["as_of"]
        );
        for row in 0..customers.len() {
            let customer = customers[row].unwrap();
            let (spend, count) = expected[&customer];
            let what = format!("customer {customer} at {}", as_of["as_of"]);
            assert_close(spend_30d[row].unwrap(), spend, &what);
            assert_eq!(counts[row], Some(count), "{what}");
        }
        let online = &spend["online"]["status"];
        if i + 1 == as_ofs.len() {
            assert_eq!(online, "loaded");
        } else {
            assert_eq!(online, "not_newest_of_backfill");
        }
    }
    assert_eq!(workspace.partitions("customer_spend_v1").len(), 4);
    assert_eq!(workspace.partitions("customer_category_spend_v1").len(), 4);
    let (&customer, _) = reference(micros("2024-04-01T00:00:00Z"))
        .iter()
        .next()
        .unwrap();
    let online = workspace
        .fengine(&["get", "customer_spend", &customer.to_string()])
        .success();
    assert!(
        online
            .stdout
            .contains("\"event_time\":\"2024-04-01T00:00:00Z\""),
        "{}",
        online.stdout
    );
}

#[test]
fn a_killed_backfill_resumes_where_it_stopped() {
    let workspace = Workspace::new();
    let pipeline = repo_path("pipelines/customer_spend.sql");
    let killed = workspace.fengine_with_env(
        &[
            "backfill",
            pipeline.to_str().unwrap(),
            "--from",
            "2024-03-20T00:00:00Z",
            "--to",
            "2024-04-01T00:00:00Z",
            "--every",
            "4d",
        ],
        &[("FENGINE_FAIL_AT", "before_register")],
    );
    assert_ne!(killed.code, 0);
    assert!(workspace.partitions("customer_spend_v1").is_empty());

    // A backfill that got through the first three as-ofs before it stopped.
    backfill(
        &workspace,
        "2024-03-20T00:00:00Z",
        "2024-03-28T00:00:00Z",
        &[],
    )
    .success();
    let before = workspace.partitions("customer_spend_v1");
    assert_eq!(before.len(), 3);

    let manifest = backfill(
        &workspace,
        "2024-03-20T00:00:00Z",
        "2024-04-01T00:00:00Z",
        &[],
    )
    .success()
    .json();
    let as_ofs = manifest["as_ofs"].as_array().unwrap();
    assert_eq!(as_ofs.len(), 4, "the manifest lists every as-of");
    for as_of in &as_ofs[..3] {
        assert_eq!(
            as_of["skipped"],
            serde_json::json!(["customer_spend", "customer_category_spend"])
        );
        assert_eq!(as_of["groups"], serde_json::json!([]));
    }
    assert_eq!(
        group(&as_ofs[3], "customer_spend")["online"]["status"],
        "loaded"
    );
    let after = workspace.partitions("customer_spend_v1");
    assert_eq!(after.len(), 4);
    assert_eq!(&after[..3], &before[..], "registered as-ofs are left alone");

    // An older range never puts older values online over newer ones.
    let older = backfill(
        &workspace,
        "2024-03-01T00:00:00Z",
        "2024-03-09T00:00:00Z",
        &[],
    )
    .success()
    .json();
    let newest_of_older = &older["as_ofs"][2];
    assert_eq!(
        group(newest_of_older, "customer_spend")["online"]["status"],
        "skipped_newer"
    );

    // --force recomputes a registered as-of, replacing its snapshot.
    let forced = backfill(
        &workspace,
        "2024-03-20T00:00:00Z",
        "2024-03-20T00:00:00Z",
        &["--force"],
    )
    .success()
    .json();
    assert_eq!(
        group(&forced["as_ofs"][0], "customer_spend")["replaced"],
        true
    );
}
