//! Drift end to end, on generated data with a known shift and with none: `catalog drift`
//! measures what a scan of the generated values measures on the same bins (PSI exactly,
//! KS within its sketch's error, category shares exactly); `EXPECT DRIFT` blocks a shifted
//! snapshot and changes nothing; a run and a backfill of the same as-ofs measure alike.

mod common;

use common::*;
use serde_json::Value;

const CUSTOMERS: usize = 3000;
const DAYS: [&str; 3] = ["2024-03-01", "2024-03-02", "2024-03-03"];
const AS_OFS: [&str; 3] = [
    "2024-03-02T00:00:00Z",
    "2024-03-03T00:00:00Z",
    "2024-03-04T00:00:00Z",
];
const CHANNELS: [&str; 3] = ["web", "store", "app"];

/// A day's payment of each customer: a normal amount (mean 100, deviation 20 on the first
/// two days, mean 130 on the third), every 10th missing; and a channel, spread evenly
/// over the three until the third day, when two in three are 'web'.
struct Day {
    amounts: Vec<Option<f64>>,
    channels: Vec<&'static str>,
}

fn generated() -> Vec<Day> {
    let mut state: u64 = 42;
    let mut uniform = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    (0..DAYS.len())
        .map(|day| {
            let mean = if day == 2 { 130.0 } else { 100.0 };
            let mut amounts = Vec::with_capacity(CUSTOMERS);
            let mut channels = Vec::with_capacity(CUSTOMERS);
            for customer in 0..CUSTOMERS {
                let (u, v) = (uniform(), uniform());
                let z = (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos();
                // Rounded as the CSV writes it, so that the scan sees what fengine reads.
                let amount = ((mean + 20.0 * z) * 1000.0).round() / 1000.0;
                amounts.push((customer % 10 != 0).then_some(amount));
                let pick = uniform();
                channels.push(match day {
                    2 if pick < 2.0 / 3.0 => "web",
                    2 => "store",
                    _ => CHANNELS[(pick * 3.0) as usize],
                });
            }
            Day { amounts, channels }
        })
        .collect()
}

fn csv(days: &[Day]) -> String {
    let mut text = String::from("customer_id,amount,channel,event_time\n");
    for (day, generated) in DAYS.iter().zip(days) {
        for customer in 0..CUSTOMERS {
            let amount = generated.amounts[customer].map_or(String::new(), |a| format!("{a}"));
            let channel = generated.channels[customer];
            text.push_str(&format!("{customer},{amount},{channel},{day}T10:00:00Z\n"));
        }
    }
    text
}

fn pipeline(expectations: &str) -> String {
    format!(
        "CREATE EXTERNAL TABLE payments (customer_id BIGINT NOT NULL, amount DOUBLE, \
         channel VARCHAR NOT NULL, event_time TIMESTAMP NOT NULL)
STORED AS CSV LOCATION 'payments.csv' OPTIONS ('format.has_header' 'true');

CREATE FEATURE GROUP daily_spend KEY (customer_id) EVENT TIME event_time
{expectations}
AS
SELECT customer_id, max(event_time) AS event_time, max(amount) AS amount,
       max(channel) AS channel
FROM payments
WHERE event_time <= as_of() AND event_time > as_of() - INTERVAL '1 day'
GROUP BY customer_id;
"
    )
}

fn workspace(expectations: &str) -> (Workspace, Vec<Day>) {
    let days = generated();
    let workspace = Workspace::new();
    workspace.write("payments.csv", &csv(&days));
    workspace.write("daily.sql", &pipeline(expectations));
    (workspace, days)
}

fn run(workspace: &Workspace, as_of: &str) -> Outcome {
    workspace.fengine(&["run", "daily.sql", "--as-of", as_of, "--output", "json"])
}

fn drift(workspace: &Workspace, extra: &[&str]) -> Value {
    let mut args = vec!["catalog", "drift", "daily_spend", "--output", "json"];
    args.extend(extra);
    workspace.fengine(&args).success().json()
}

fn feature<'a>(drift: &'a Value, name: &str) -> &'a Value {
    drift["features"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["feature"] == name)
        .unwrap_or_else(|| panic!("{name} in {drift}"))
}

/// PSI by a scan of the values over `edges` (open tails), the missing in a bin of their own,
/// an empty bin counted as a share of 0.0001.
fn scanned_psi(edges: &[f64], reference: &[Option<f64>], current: &[Option<f64>]) -> f64 {
    let shares = |values: &[Option<f64>]| {
        let mut counts = vec![0.0; edges.len() + 2];
        for value in values {
            let bin = match value {
                None => edges.len() + 1,
                Some(v) => edges.iter().filter(|e| **e <= *v).count(),
            };
            counts[bin] += 1.0;
        }
        counts
            .into_iter()
            .map(|c| f64::max(c / values.len() as f64, 1e-4))
            .collect::<Vec<_>>()
    };
    let (r, c) = (shares(reference), shares(current));
    r.iter().zip(&c).map(|(r, c)| (c - r) * (c / r).ln()).sum()
}

fn exact_ks(reference: &[Option<f64>], current: &[Option<f64>]) -> f64 {
    let sorted = |values: &[Option<f64>]| {
        let mut v: Vec<f64> = values.iter().flatten().copied().collect();
        v.sort_by(f64::total_cmp);
        v
    };
    let (a, b) = (sorted(reference), sorted(current));
    let at = |v: &[f64], x: f64| v.partition_point(|y| *y <= x) as f64 / v.len() as f64;
    a.iter()
        .chain(&b)
        .map(|&x| (at(&a, x) - at(&b, x)).abs())
        .fold(0.0, f64::max)
}

/// The greatest change of a channel's share between two days, and that channel.
fn largest_share_change(reference: &Day, current: &Day) -> (String, f64, f64) {
    let share = |day: &Day, channel: &str| {
        day.channels.iter().filter(|c| **c == channel).count() as f64 / CUSTOMERS as f64
    };
    CHANNELS
        .iter()
        .map(|c| (c.to_string(), share(reference, c), share(current, c)))
        .max_by(|a, b| (a.2 - a.1).abs().total_cmp(&(b.2 - b.1).abs()))
        .unwrap()
}

/// The histogram edges of `amount` in the newest snapshot.
fn amount_edges(workspace: &Workspace) -> Vec<f64> {
    let stats = workspace
        .fengine(&[
            "catalog",
            "show",
            "daily_spend",
            "--stats",
            "--output",
            "json",
        ])
        .success()
        .json();
    let amount = stats
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["feature"] == "amount")
        .unwrap();
    amount["values"]["numeric"]["histogram"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_f64().unwrap())
        .collect()
}

fn assert_drift(measured: &Value, days: &[Day], from: usize, to: usize, edges: &[f64]) {
    let amount = feature(measured, "amount");
    let (reference, current) = (&days[from].amounts, &days[to].amounts);
    let psi = amount["psi"].as_f64().unwrap();
    assert_close(psi, scanned_psi(edges, reference, current), "PSI of amount");
    assert_eq!(amount.get("psi_estimated"), None, "counted, not estimated");
    let ks = amount["ks"].as_f64().unwrap();
    let exact = exact_ks(reference, current);
    assert!((ks - exact).abs() < 0.015, "KS {ks}, exactly {exact}");
    let channel = feature(measured, "channel");
    let (value, share_from, share_to) = largest_share_change(&days[from], &days[to]);
    let change = &channel["share_change"];
    assert_eq!(change["value"], value.as_str(), "{change}");
    assert_close(change["from"].as_f64().unwrap(), share_from, "share from");
    assert_close(change["to"].as_f64().unwrap(), share_to, "share to");
}

#[test]
fn drift_is_measured_as_a_scan_of_the_generated_values_measures_it() {
    let (workspace, days) = workspace("");
    run(&workspace, AS_OFS[0]).success();
    // The first snapshot is binned on its own deciles, and every later one on those.
    let edges = amount_edges(&workspace);
    assert_eq!(edges.len(), 9, "{edges:?}");
    run(&workspace, AS_OFS[1]).success();
    assert_eq!(amount_edges(&workspace), edges);

    // No shift: small, and as scanned.
    let unshifted = drift(&workspace, &[]);
    assert_eq!(
        (&unshifted["from"], &unshifted["to"]),
        (&Value::from(AS_OFS[0]), &Value::from(AS_OFS[1]))
    );
    assert_drift(&unshifted, &days, 0, 1, &edges);
    assert!(feature(&unshifted, "amount")["psi"].as_f64().unwrap() < 0.02);
    assert!(feature(&unshifted, "amount")["ks"].as_f64().unwrap() < 0.05);

    // A shift of 1.5 deviations, and two thirds 'web'.
    run(&workspace, AS_OFS[2]).success();
    let shifted = drift(&workspace, &[]);
    assert_eq!(shifted["from"], AS_OFS[1]);
    assert_drift(&shifted, &days, 1, 2, &edges);
    // KS of normals 1.5 deviations apart: 2Φ(0.75) − 1 = 0.547.
    let amount = feature(&shifted, "amount");
    assert!(amount["psi"].as_f64().unwrap() > 1.0, "{amount}");
    assert!(
        (amount["ks"].as_f64().unwrap() - 0.547).abs() < 0.04,
        "{amount}"
    );

    // Any two snapshots of the version.
    let across = drift(&workspace, &["--from", AS_OFS[0], "--to", AS_OFS[2]]);
    assert_drift(&across, &days, 0, 2, &edges);

    let text = workspace
        .fengine(&["catalog", "drift", "daily_spend"])
        .success()
        .stdout;
    assert!(
        text.starts_with(
            "drift of daily_spend v1 from snapshot 2024-03-03T00:00:00Z to 2024-03-04T00:00:00Z:"
        ),
        "{text}"
    );
    assert!(text.contains("  channel: PSI "), "{text}");
    let (value, from, to) = largest_share_change(&days[1], &days[2]);
    let change = format!(
        "largest share change '{value}' {:.2}% -> {:.2}%",
        from * 100.0,
        to * 100.0
    );
    assert!(text.contains(&change), "{change} in {text}");

    let missing = workspace.fengine(&[
        "catalog",
        "drift",
        "daily_spend",
        "--to",
        "2024-01-01T00:00:00Z",
    ]);
    assert_eq!(missing.code, 1, "{}", missing.stderr);
    assert!(
        missing.stderr.contains(
            "feature group 'daily_spend' v1 has no snapshot of as-of 2024-01-01T00:00:00Z; its \
             snapshots are 2024-03-02T00:00:00Z, 2024-03-03T00:00:00Z, 2024-03-04T00:00:00Z"
        ),
        "{}",
        missing.stderr
    );
}

#[test]
fn a_backfill_measures_drift_as_runs_do() {
    let (runs, _) = workspace("");
    for as_of in AS_OFS {
        run(&runs, as_of).success();
    }
    let (backfilled, _) = workspace("");
    backfilled
        .fengine(&[
            "backfill",
            "daily.sql",
            "--from",
            AS_OFS[0],
            "--to",
            AS_OFS[2],
            "--every",
            "1d",
        ])
        .success();
    for range in [vec![], vec!["--from", AS_OFS[0], "--to", AS_OFS[1]]] {
        assert_eq!(drift(&backfilled, &range), drift(&runs, &range));
    }
}

#[test]
fn expect_drift_blocks_a_shifted_snapshot_and_changes_nothing() {
    let (workspace, _) =
        workspace("EXPECT DRIFT amount PSI < 0.2\nEXPECT moved AS DRIFT channel SHARE < 0.1 WARN");
    let first = run(&workspace, AS_OFS[0]).success().json();
    assert_eq!(
        first["groups"][0]["expectations"][0]["observed"],
        "no previous snapshot of this version to compare with"
    );
    let second = run(&workspace, AS_OFS[1]).success().json();
    let observed = second["groups"][0]["expectations"][0]["observed"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        observed.starts_with("PSI 0.0")
            && observed.ends_with("since snapshot 2024-03-02T00:00:00Z"),
        "{observed}"
    );
    let registered = workspace.partitions("daily_spend_v1");
    let online = workspace
        .fengine(&["get", "daily_spend", "7"])
        .success()
        .json();

    let blocked = run(&workspace, AS_OFS[2]);
    assert_eq!(blocked.code, 3, "{}", blocked.stderr);
    assert!(
        blocked.stderr.contains(
            "feature group 'daily_spend', as-of 2024-03-04T00:00:00Z: expectation \
             'drift_psi(amount)' (daily.sql:5:1) failed: `DRIFT amount PSI < 0.2`: PSI "
        ),
        "{}",
        blocked.stderr
    );
    assert!(
        blocked
            .stderr
            .contains("expectation 'moved' failed, published all the same (WARN)"),
        "{}",
        blocked.stderr
    );
    assert_eq!(workspace.partitions("daily_spend_v1"), registered);
    let folder = workspace.path("warehouse/daily_spend/v1/snapshot_ts=20240304T000000Z");
    assert_eq!(
        consistency::local_files(&folder),
        Vec::<String>::new(),
        "neither the snapshot's files nor its statistics are left"
    );
    assert_eq!(
        workspace
            .fengine(&["get", "daily_spend", "7"])
            .success()
            .json(),
        online
    );
}

#[test]
fn drift_that_cannot_be_measured_is_refused_where_it_is_written() {
    for (rule, message) in [
        (
            "EXPECT DRIFT channel KS < 0.1",
            "daily.sql:5:1: feature group 'daily_spend': expectation 'drift_ks(channel)': DRIFT \
             KS cannot measure column 'channel' of type Utf8View: PSI \
             measures numbers, strings and booleans, KS numbers, SHARE strings and booleans",
        ),
        (
            "EXPECT DRIFT customer_id PSI < 0.1",
            "daily.sql:5:1: feature group 'daily_spend': expectation 'drift_psi(customer_id)': \
             DRIFT measures a feature; 'customer_id' is the group's key or event \
             time",
        ),
        (
            "EXPECT DRIFT amount PSI 0.1",
            "daily.sql:5:25: expected '<' after the measure, found 0.1",
        ),
    ] {
        let (workspace, _) = workspace(rule);
        let refused = run(&workspace, AS_OFS[0]);
        assert_eq!(refused.code, 2, "{rule}: {}", refused.stderr);
        assert!(
            refused.stderr.contains(message),
            "{rule}: {}",
            refused.stderr
        );
    }
}
