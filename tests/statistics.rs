//! Statistics kept with each snapshot, end to end: the hand-checked fixture's features as
//! `catalog show --stats` prints them, in JSON and as text; and read from their Parquet file
//! beside the snapshot when they outgrow what the catalog keeps.

mod common;

use common::*;

const PAYMENTS: &str = "\
customer_id,amount,channel,event_time
1,10.0,web,2024-03-01T10:00:00Z
1,5.5,web,2024-03-02T11:00:00Z
2,100.0,store,2024-02-01T00:00:00Z
2,-30.0,web,2024-03-02T12:00:00Z
3,7.0,store,2024-03-03T00:00:00Z
4,-50.0,,2024-03-03T06:00:00Z
";

const PIPELINE: &str = "\
CREATE EXTERNAL TABLE payments (customer_id BIGINT NOT NULL, amount DOUBLE NOT NULL, channel VARCHAR, event_time TIMESTAMP NOT NULL)
STORED AS CSV LOCATION 'payments.csv' OPTIONS ('format.has_header' 'true');

CREATE FEATURE GROUP payment_totals KEY (customer_id) EVENT TIME event_time AS
SELECT customer_id, max(event_time) AS event_time, sum(amount) AS total, count(*) AS n,
       max(channel) AS channel
FROM payments WHERE event_time <= as_of() GROUP BY customer_id;
";

#[test]
fn each_feature_s_statistics_are_kept_with_the_snapshot() {
    let workspace = Workspace::new();
    workspace.write("payments.csv", PAYMENTS);
    workspace.write("totals.sql", PIPELINE);
    workspace
        .fengine(&["run", "totals.sql", "--as-of", "2024-03-04T00:00:00Z"])
        .success();
    let shown = workspace
        .fengine(&[
            "catalog",
            "show",
            "payment_totals",
            "--stats",
            "--output",
            "json",
        ])
        .success()
        .json();
    let features: Vec<&str> = shown
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["feature"].as_str().unwrap())
        .collect();
    assert_eq!(
        features,
        ["total", "n", "channel"],
        "not the key or event time"
    );

    // Totals 15.5, 70, 7 and -50: mean 10.625; squared deviations 23.765625, 3525.390625,
    // 13.140625 and 3675.390625, a population variance of 1809.421875.
    assert_eq!(
        (
            &shown[0]["count"],
            &shown[0]["nulls"],
            &shown[0]["distinct"]
        ),
        (&4.into(), &0.into(), &4.into())
    );
    let total = &shown[0]["values"]["numeric"];
    assert_eq!(
        (&total["min"], &total["max"]),
        (&(-50.0).into(), &70.0.into())
    );
    assert_close(total["mean"].as_f64().unwrap(), 10.625, "mean");
    assert_close(
        total["stddev"].as_f64().unwrap(),
        1809.421875f64.sqrt(),
        "stddev",
    );
    let median = total["quantiles"]["p50"].as_f64().unwrap();
    assert!(
        (7.0..=15.5).contains(&median),
        "between the middle two: {median}"
    );
    // The first snapshot of the version is binned on its own deciles, the values of rank
    // 0.4, 0.8, ..., 3.6 among the four (from 0): -50 twice, 7 twice, 15.5 three times, 70
    // twice; one value in each bin from -50 on.
    assert_eq!(
        total["histogram"],
        serde_json::json!({"edges": [-50.0, 7.0, 15.5, 70.0], "counts": [0, 1, 1, 1, 1]})
    );
    // Counts 2, 2, 1, 1.
    let n = &shown[1]["values"]["numeric"];
    assert_close(n["mean"].as_f64().unwrap(), 1.5, "mean");
    assert_close(n["stddev"].as_f64().unwrap(), 0.5, "stddev");
    assert_eq!(
        n["histogram"],
        serde_json::json!({"edges": [1.0, 2.0], "counts": [0, 2, 2]})
    );
    // Customers' channels: web, web (max of store and web), store, and none.
    assert_eq!(
        (&shown[2]["count"], &shown[2]["nulls"]),
        (&3.into(), &1.into())
    );
    let channel = &shown[2]["values"]["categorical"];
    assert_eq!(
        channel["top"],
        serde_json::json!([{"value": "web", "count": 2}, {"value": "store", "count": 1}])
    );
    assert_eq!(channel["other"], 0);

    let text = workspace
        .fengine(&["catalog", "show", "payment_totals", "--stats"])
        .success()
        .stdout;
    for line in [
        "statistics of payment_totals v1, snapshot 2024-03-04T00:00:00Z",
        "  total (Float64): 4 values, 0 null, ~4 distinct",
        "    min -50  max 70  mean 10.625  stddev 42.5",
        "  channel (Utf8View): 3 values, 1 null, ~2 distinct",
        "    top: web 2, store 1; other 0",
    ] {
        assert!(text.contains(line), "{line}\n{text}");
    }
}

/// Features enough that their statistics outgrow a catalog parameter (512,000 bytes).
const WIDE: usize = 1200;

#[test]
fn statistics_too_large_for_the_catalog_are_read_from_their_parquet_file() {
    let workspace = Workspace::new();
    workspace.write("payments.csv", PAYMENTS);
    let features: Vec<String> = (0..WIDE)
        .map(|i| format!("sum(amount) + {i} AS f{i:04}"))
        .collect();
    workspace.write(
        "wide.sql",
        &PIPELINE.replace("payment_totals", "wide_totals").replace(
            "sum(amount) AS total, count(*) AS n,\n       max(channel) AS channel",
            &features.join(", "),
        ),
    );
    let run = workspace
        .fengine(&["run", "wide.sql", "--as-of", "2024-03-04T00:00:00Z"])
        .success();
    assert!(
        run.stderr
            .contains(&format!("warning: the statistics of {WIDE} features take"))
            && run
                .stderr
                .contains("more than a catalog parameter holds (512000): kept in file://"),
        "{}",
        run.stderr
    );

    let [partition] = &consistency::local_partitions(&workspace, "wide_totals_v1")[..] else {
        panic!("one snapshot")
    };
    assert_eq!(partition.parameters.get("fengine.statistics"), None);
    let file = &partition.parameters["fengine.statistics_file"];
    let snapshot_folder = partition.location.trim_end_matches('/');
    let snapshot_folder = &snapshot_folder[..snapshot_folder.rfind('/').unwrap()];
    assert!(
        file.starts_with(&format!("{snapshot_folder}/_statistics/run-")),
        "beside the snapshot's run folders, not in one: {file} of {}",
        partition.location
    );
    let rows = read_parquet_file(std::path::Path::new(file.strip_prefix("file://").unwrap()));
    assert_eq!(row_count(&rows), WIDE);
    // Totals 15.5, 70, 7 and -50, each plus the feature's number.
    let means = column::<arrow::datatypes::Float64Type>(&rows, "mean");
    for (i, mean) in means.iter().enumerate() {
        assert_close(mean.unwrap(), 10.625 + i as f64, "mean in the file");
    }

    let shown = workspace
        .fengine(&[
            "catalog",
            "show",
            "wide_totals",
            "--stats",
            "--output",
            "json",
        ])
        .success()
        .json();
    let shown = shown.as_array().unwrap();
    assert_eq!(shown.len(), WIDE);
    let last = &shown[WIDE - 1];
    assert_eq!(last["feature"], format!("f{:04}", WIDE - 1));
    let numeric = &last["values"]["numeric"];
    assert_eq!(
        (&numeric["min"], &numeric["max"]),
        (&(WIDE as f64 - 51.0).into(), &(WIDE as f64 + 69.0).into())
    );
    assert_close(
        numeric["stddev"].as_f64().unwrap(),
        1809.421875f64.sqrt(),
        "stddev",
    );
}
