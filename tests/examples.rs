//! Every pipeline in pipelines/ runs, and its snapshot and online values equal values
//! computed here by nested loops over the sample data.

mod common;

use std::collections::BTreeMap;

use arrow::datatypes::{Float64Type, Int64Type};
use common::*;

const AS_OF: &str = "2024-04-01T00:00:00Z";
const DAY_US: i64 = 86_400_000_000;
const HOUR_US: i64 = 3_600_000_000;

/// Compares a run's results, given its manifest, with the reference.
type Check = fn(&Workspace, &serde_json::Value);

/// Each example with its run arguments and the check of its results.
fn examples() -> BTreeMap<&'static str, (Vec<&'static str>, Check)> {
    BTreeMap::from([
        (
            "customer_spend.sql",
            (vec![], check_customer_spend as Check),
        ),
        (
            "transaction_velocity.sql",
            (
                vec!["--param", "large_amount=150"],
                check_transaction_velocity as _,
            ),
        ),
    ])
}

#[test]
fn every_example_pipeline_runs_and_matches_its_reference() {
    let examples = examples();
    let mut found: Vec<String> = std::fs::read_dir(repo_path("pipelines"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".sql"))
        .collect();
    found.sort();
    let checked: Vec<String> = examples.keys().map(|k| k.to_string()).collect();
    assert_eq!(
        found, checked,
        "every example pipeline needs a reference check here"
    );

    for (file, (extra, check)) in examples {
        let workspace = Workspace::new();
        let pipeline = repo_path(&format!("pipelines/{file}"));
        let mut args = vec![
            "run",
            pipeline.to_str().unwrap(),
            "--as-of",
            AS_OF,
            "--output",
            "json",
        ];
        args.extend(extra);
        let manifest = workspace.fengine(&args).success().json();
        check(&workspace, &manifest);
    }
}

fn group<'a>(manifest: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    manifest["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["group"] == name)
        .unwrap()
}

fn get(workspace: &Workspace, args: &[&str]) -> serde_json::Value {
    let mut full = vec!["get"];
    full.extend(args);
    workspace.fengine(&full).success().json()
}

fn check_customer_spend(workspace: &Workspace, manifest: &serde_json::Value) {
    let as_of = micros(AS_OF);
    let transactions = sample_transactions();
    // customer -> (spend_7d, spend_30d, count_30d, max_30d)
    let mut expected: BTreeMap<i64, (f64, f64, i64, f64)> = BTreeMap::new();
    for t in &transactions {
        if t.event_time_us > as_of - 30 * DAY_US && t.event_time_us <= as_of {
            let entry = expected
                .entry(t.customer_id)
                .or_insert((0.0, 0.0, 0, f64::MIN));
            if t.event_time_us > as_of - 7 * DAY_US {
                entry.0 += t.amount;
            }
            entry.1 += t.amount;
            entry.2 += 1;
            entry.3 = entry.3.max(t.amount);
        }
    }
    let spend = group(manifest, "customer_spend");
    assert_eq!(spend["rows_written"], expected.len());
    assert_eq!(
        spend["online"],
        serde_json::json!({"status": "loaded", "rows": expected.len(), "removed": 0,
                           "as_of": manifest["as_of"], "run_id": spend["run_id"],
                           "completed_unfinished": false})
    );
    let batches = read_parquet_folder(spend["snapshot_location"].as_str().unwrap());
    let customers = column::<Int64Type>(&batches, "customer_id");
    let times = column::<Int64Type>(&batches, "event_time");
    let spend_7d = column::<Float64Type>(&batches, "spend_7d");
    let spend_30d = column::<Float64Type>(&batches, "spend_30d");
    let counts = column::<Int64Type>(&batches, "txn_count_30d");
    let maxima = column::<Float64Type>(&batches, "max_amount_30d");
    assert_eq!(customers.len(), expected.len());
    for i in 0..customers.len() {
        let customer = customers[i].unwrap();
        let (e7, e30, n, max) = expected[&customer];
        assert_eq!(times[i], Some(as_of));
        assert_close(spend_7d[i].unwrap(), e7, &format!("spend_7d of {customer}"));
        assert_close(
            spend_30d[i].unwrap(),
            e30,
            &format!("spend_30d of {customer}"),
        );
        assert_eq!(counts[i], Some(n), "txn_count_30d of {customer}");
        assert_close(
            maxima[i].unwrap(),
            max,
            &format!("max_amount_30d of {customer}"),
        );
    }
    let (&customer, &(e7, e30, n, max)) = expected.iter().nth(3).unwrap();
    let online = get(workspace, &["customer_spend", &customer.to_string()]);
    assert_eq!(online["customer_id"], customer);
    assert_eq!(online["event_time"], AS_OF);
    assert_close(online["spend_7d"].as_f64().unwrap(), e7, "online spend_7d");
    assert_close(
        online["spend_30d"].as_f64().unwrap(),
        e30,
        "online spend_30d",
    );
    assert_eq!(online["txn_count_30d"], n);
    assert_close(
        online["max_amount_30d"].as_f64().unwrap(),
        max,
        "online max",
    );

    // The composite-key group: (customer, category) -> spend, and its share of the customer's.
    let mut by_category: BTreeMap<(i64, String), f64> = BTreeMap::new();
    for t in &transactions {
        if t.event_time_us > as_of - 30 * DAY_US && t.event_time_us <= as_of {
            *by_category
                .entry((t.customer_id, t.category.clone()))
                .or_default() += t.amount;
        }
    }
    let categories = group(manifest, "customer_category_spend");
    assert_eq!(categories["rows_written"], by_category.len());
    let batches = read_parquet_folder(categories["snapshot_location"].as_str().unwrap());
    let customers = column::<Int64Type>(&batches, "customer_id");
    let names = strings(&batches, "category");
    let spend = column::<Float64Type>(&batches, "spend_30d");
    let shares = column::<Float64Type>(&batches, "share_30d");
    assert_eq!(customers.len(), by_category.len());
    for i in 0..customers.len() {
        let key = (customers[i].unwrap(), names[i].clone().unwrap());
        assert_close(
            spend[i].unwrap(),
            by_category[&key],
            &format!("spend_30d of {key:?}"),
        );
        assert_close(
            shares[i].unwrap(),
            by_category[&key] / expected[&key.0].1,
            &format!("share of {key:?}"),
        );
    }
    let ((customer, category), amount) = by_category.iter().next().unwrap();
    let online = get(
        workspace,
        &["customer_category_spend", &customer.to_string(), category],
    );
    assert_eq!(
        (&online["customer_id"], &online["category"]),
        (&serde_json::json!(customer), &serde_json::json!(category))
    );
    assert_close(
        online["spend_30d"].as_f64().unwrap(),
        *amount,
        "online category spend",
    );
}

fn check_transaction_velocity(workspace: &Workspace, manifest: &serde_json::Value) {
    let as_of = micros(AS_OF);
    let transactions: Vec<Transaction> = sample_transactions()
        .into_iter()
        .filter(|t| t.event_time_us <= as_of)
        .collect();
    // (customer, time) -> (count in the last hour, spend in the last 7 days, large in 7 days);
    // RANGE frames include the boundary and every row of the same time.
    let mut expected: BTreeMap<(i64, i64), (i64, f64, i64)> = BTreeMap::new();
    for t in &transactions {
        let mut value = (0, 0.0, 0);
        for other in transactions
            .iter()
            .filter(|o| o.customer_id == t.customer_id && o.event_time_us <= t.event_time_us)
        {
            if other.event_time_us >= t.event_time_us - HOUR_US {
                value.0 += 1;
            }
            if other.event_time_us >= t.event_time_us - 7 * DAY_US {
                value.1 += other.amount;
                value.2 += i64::from(other.amount >= 150.0);
            }
        }
        expected.insert((t.customer_id, t.event_time_us), value);
    }
    assert_eq!(
        expected.len(),
        transactions.len(),
        "the sample has one transaction per customer and time"
    );
    let velocity = group(manifest, "transaction_velocity");
    assert_eq!(velocity["rows_written"], transactions.len());
    let batches = read_parquet_folder(velocity["snapshot_location"].as_str().unwrap());
    let customers = column::<Int64Type>(&batches, "customer_id");
    let times = column::<Int64Type>(&batches, "event_time");
    let hour_counts = column::<Int64Type>(&batches, "txn_count_1h");
    let week_spend = column::<Float64Type>(&batches, "spend_7d");
    let large = column::<Int64Type>(&batches, "large_count_7d");
    assert_eq!(customers.len(), expected.len());
    for i in 0..customers.len() {
        let key = (customers[i].unwrap(), times[i].unwrap());
        let (count, spend, large_count) = expected[&key];
        assert_eq!(hour_counts[i], Some(count), "txn_count_1h of {key:?}");
        assert_close(
            week_spend[i].unwrap(),
            spend,
            &format!("spend_7d of {key:?}"),
        );
        assert_eq!(large[i], Some(large_count), "large_count_7d of {key:?}");
    }
    // Online: each customer's latest transaction.
    let latest: BTreeMap<i64, (i64, f64)> = expected
        .iter()
        .map(|(&(customer, time), &(_, spend, _))| (customer, (time, spend)))
        .collect();
    assert_eq!(velocity["online"]["rows"], latest.len());
    let (customer, (time, spend)) = latest.iter().nth(5).unwrap();
    let online = get(workspace, &["transaction_velocity", &customer.to_string()]);
    let served =
        chrono::DateTime::parse_from_rfc3339(online["event_time"].as_str().unwrap()).unwrap();
    assert_eq!(served.timestamp_micros(), *time);
    assert_close(
        online["spend_7d"].as_f64().unwrap(),
        *spend,
        "online spend_7d",
    );
}
