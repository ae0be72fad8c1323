//! Statistics kept with each snapshot, end to end: the hand-checked fixture's features as
//! `catalog show --stats` prints them, in JSON and as text.

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
    // Counts 2, 2, 1, 1.
    let n = &shown[1]["values"]["numeric"];
    assert_close(n["mean"].as_f64().unwrap(), 1.5, "mean");
    assert_close(n["stddev"].as_f64().unwrap(), 0.5, "stddev");
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
