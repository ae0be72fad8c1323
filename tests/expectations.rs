//! Expectations (`EXPECT`) end to end: a failing one blocks publishing (exit 3, nothing
//! registered, the online store as it was) and says what failed where; a WARN one publishes
//! and its outcome is kept in the manifest and the catalog; rules that cannot be checked are
//! refused when the pipeline is planned. The counts are worked out by hand from the fixture.

mod common;

use common::*;
use serde_json::json;

/// Six payments. Totals per customer at as-of 2024-03-02T12:00:00Z: 1 → 15.5, 2 → 70.0
/// (100 − 30); at 2024-03-04T00:00:00Z also 3 → 7.0 and 4 → −50.0.
const PAYMENTS: &str = "\
customer_id,amount,event_time
1,10.0,2024-03-01T10:00:00Z
1,5.5,2024-03-02T11:00:00Z
2,100.0,2024-02-01T00:00:00Z
2,-30.0,2024-03-02T12:00:00Z
3,7.0,2024-03-03T00:00:00Z
4,-50.0,2024-03-03T06:00:00Z
";

fn pipeline(expectations: &str) -> String {
    format!(
        "CREATE EXTERNAL TABLE payments (customer_id BIGINT NOT NULL, amount DOUBLE NOT NULL, \
         event_time TIMESTAMP NOT NULL)
STORED AS CSV LOCATION 'payments.csv' OPTIONS ('format.has_header' 'true');

CREATE FEATURE GROUP payment_totals
  KEY (customer_id)
  EVENT TIME event_time
{expectations}
AS
SELECT customer_id, max(event_time) AS event_time, sum(amount) AS total, count(*) AS n
FROM payments
WHERE event_time <= as_of()
GROUP BY customer_id;
"
    )
}

fn workspace(expectations: &str) -> Workspace {
    let workspace = Workspace::new();
    workspace.write("payments.csv", PAYMENTS);
    workspace.write("totals.sql", &pipeline(expectations));
    workspace
}

fn run(workspace: &Workspace, as_of: &str) -> Outcome {
    workspace.fengine(&["run", "totals.sql", "--as-of", as_of, "--output", "json"])
}

const SPEND_OK: &str = "  EXPECT spend_ok AS (total >= 0)";

#[test]
fn a_failing_expectation_publishes_nothing_and_names_what_failed() {
    let workspace = workspace(SPEND_OK);
    let first = run(&workspace, "2024-03-02T12:00:00Z").success().json();
    assert_eq!(
        first["groups"][0]["expectations"],
        json!([{
            "name": "spend_ok", "rule": "(total >= 0)", "severity": "block", "passed": true,
            "observed": "all 2 rows checked pass", "checked_rows": 2, "failed_rows": 0
        }])
    );
    let registered = workspace.partitions("payment_totals_v1");
    let online_before = workspace
        .fengine(&["get", "payment_totals", "1"])
        .success()
        .json();

    let blocked = run(&workspace, "2024-03-04T00:00:00Z");
    assert_eq!(blocked.code, 3, "{}", blocked.stderr);
    assert!(
        blocked.stderr.contains(
            "feature group 'payment_totals', as-of 2024-03-04T00:00:00Z: expectation \
             'spend_ok' (totals.sql:7:3) failed: `(total >= 0)`: 1 of 4 rows checked fail \
             (25.0%); failing rows: (customer_id=4, event_time=2024-03-03T06:00:00, \
             total=-50.0). Nothing of this group was published"
        ),
        "{}",
        blocked.stderr
    );
    assert_eq!(workspace.partitions("payment_totals_v1"), registered);
    let folder = workspace.path("warehouse/payment_totals/v1/snapshot_ts=20240304T000000Z");
    assert_eq!(
        consistency::local_files(&folder),
        Vec::<String>::new(),
        "the blocked snapshot's files are deleted"
    );
    assert_eq!(
        workspace
            .fengine(&["get", "payment_totals", "1"])
            .success()
            .json(),
        online_before,
        "the online store keeps the last published values"
    );
    assert_eq!(workspace.fengine(&["get", "payment_totals", "4"]).code, 1);
}

#[test]
fn a_warn_expectation_publishes_and_its_outcome_is_kept_with_the_snapshot() {
    let workspace = workspace(
        "  EXPECT spend_ok AS (total >= 0) WARN
  EXPECT NOT NULL (total, n)
  EXPECT RANGE n BETWEEN 1 AND 2
  EXPECT ROWS BETWEEN 1 AND 10
  EXPECT FRESHNESS event_time WITHIN '1 day'",
    );
    let manifest = run(&workspace, "2024-03-04T00:00:00Z").success().json();
    let outcomes = &manifest["groups"][0]["expectations"];
    assert_eq!(
        outcomes,
        &json!([
            {"name": "spend_ok", "rule": "(total >= 0)", "severity": "warn", "passed": false,
             "observed": "1 of 4 rows checked fail (25.0%)", "checked_rows": 4, "failed_rows": 1,
             "failing_rows_sample": ["customer_id=4, event_time=2024-03-03T06:00:00, total=-50.0"]},
            {"name": "not_null(total, n)", "rule": "NOT NULL (total, n)", "severity": "block",
             "passed": true, "observed": "all 4 rows checked pass", "checked_rows": 4,
             "failed_rows": 0},
            {"name": "range(n)", "rule": "RANGE n BETWEEN 1 AND 2", "severity": "block",
             "passed": true, "observed": "all 4 rows checked pass", "checked_rows": 4,
             "failed_rows": 0},
            {"name": "rows", "rule": "ROWS BETWEEN 1 AND 10", "severity": "block",
             "passed": true, "observed": "4 rows"},
            {"name": "freshness(event_time)", "rule": "FRESHNESS event_time WITHIN '1 day'",
             "severity": "block", "passed": true,
             "observed": "the newest value, 2024-03-03T06:00:00Z, is 18 hours before the as-of"}
        ])
    );
    assert_eq!(
        workspace
            .fengine(&["get", "payment_totals", "4"])
            .success()
            .json()["total"],
        -50.0,
        "published despite the warning"
    );
    let partition = &consistency::local_partitions(&workspace, "payment_totals_v1")[0];
    let kept: serde_json::Value =
        serde_json::from_str(&partition.parameters["fengine.expectations"]).unwrap();
    assert_eq!(&kept, outcomes, "the catalog keeps the outcomes");
    let shown = workspace
        .fengine(&["catalog", "show", "payment_totals"])
        .success();
    assert!(
        shown.stdout.contains(
            "    expectations: 4 of 5 passed; failed, published (WARN): spend_ok: 1 of 4 rows \
             checked fail (25.0%)"
        ),
        "{}",
        shown.stdout
    );
    assert!(
        run(&workspace, "2024-03-04T00:00:00Z")
            .stderr
            .contains("warning: expectation 'spend_ok' failed, published all the same (WARN)"),
        "a WARN failure is logged"
    );
}

#[test]
fn stale_data_fails_freshness_and_too_few_rows_fail_rows() {
    let workspace =
        workspace("  EXPECT FRESHNESS event_time WITHIN '1 day'\n  EXPECT ROWS BETWEEN 5 AND 10");
    let blocked = run(&workspace, "2024-03-10T00:00:00Z");
    assert_eq!(blocked.code, 3, "{}", blocked.stderr);
    for said in [
        "expectation 'freshness(event_time)' (totals.sql:7:3) failed: `FRESHNESS event_time \
         WITHIN '1 day'`: the newest value, 2024-03-03T06:00:00Z, is 6 days 18 hours before \
         the as-of, more than 1 day allowed",
        "expectation 'rows' (totals.sql:8:3) failed: `ROWS BETWEEN 5 AND 10`: 4 rows",
    ] {
        assert!(blocked.stderr.contains(said), "{}", blocked.stderr);
    }
    assert!(workspace.partitions("payment_totals_v1").is_empty());
}

#[test]
fn a_backfill_stops_at_the_as_of_that_fails_and_keeps_those_before_it() {
    let workspace = workspace("  EXPECT ROWS BETWEEN 1 AND 3");
    let backfill = workspace.fengine(&[
        "backfill",
        "totals.sql",
        "--from",
        "2024-03-02T12:00:00Z",
        "--to",
        "2024-03-04T12:00:00Z",
        "--every",
        "1d",
    ]);
    assert_eq!(backfill.code, 3, "{}", backfill.stderr);
    // The two failing as-ofs are published at once: either may be the one reported.
    let failing_as_of = ["2024-03-03T12:00:00Z", "2024-03-04T12:00:00Z"].map(|as_of| {
        format!(
            "as-of {as_of}: expectation 'rows' (totals.sql:7:3) failed: `ROWS BETWEEN 1 AND \
             3`: 4 rows"
        )
    });
    assert!(
        failing_as_of
            .iter()
            .any(|said| backfill.stderr.contains(said)),
        "{}",
        backfill.stderr
    );
    let registered: Vec<String> = workspace
        .partitions("payment_totals_v1")
        .into_iter()
        .map(|(ts, _)| ts)
        .collect();
    assert_eq!(
        registered,
        ["20240302T120000Z"],
        "the as-of of 2 rows passes; those of 4 do not"
    );
}

#[test]
fn rules_that_cannot_be_checked_are_refused_before_anything_is_read() {
    for (clause, message) in [
        (
            "  EXPECT NOT NULL (totl)",
            "totals.sql:7:3: feature group 'payment_totals': expectation 'not_null(totl)': column \
             'totl' is not in the query's output (columns: customer_id, event_time, total, n)",
        ),
        (
            "  EXPECT big AS (total * 2)",
            "totals.sql:7:3: feature group 'payment_totals': expectation 'big': `total * 2` is \
             of type Float64; a condition is true or false",
        ),
        (
            "  EXPECT FRESHNESS total WITHIN '1 day'",
            "totals.sql:7:3: feature group 'payment_totals': expectation 'freshness(total)': \
             FRESHNESS measures a timestamp or a date; column 'total' is of type Float64",
        ),
    ] {
        let workspace = workspace(clause);
        let refused = run(&workspace, "2024-03-04T00:00:00Z");
        assert_eq!(refused.code, 2, "{}", refused.stderr);
        assert!(refused.stderr.contains(message), "{}", refused.stderr);
        assert!(workspace.partitions("payment_totals_v1").is_empty());
        assert!(!workspace.path("warehouse/payment_totals").exists());
    }
}
