//! The catalogue's conformance suite: every catalogue operation through the real binary, on
//! the embedded backends and on the AWS ones (the local server tests/run.sh starts, with
//! `--features aws`), compared with values worked out by hand and with what the warehouse
//! holds, read without fengine.

mod common;

use std::sync::Arc;

use arrow::array::{Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema, TimeUnit};
use common::*;
use rstest::rstest;
use serde_json::{Value, json};

#[derive(Clone, Copy, Debug)]
enum Kind {
    Embedded,
    #[cfg(feature = "aws")]
    Aws,
}

/// A workspace with the transactions source, on one kind of backends.
struct Store {
    workspace: Workspace,
    kind: Kind,
    /// The S3 bucket of an AWS workspace.
    #[cfg_attr(not(feature = "aws"), allow(dead_code))]
    bucket: String,
}

const T1: &str = "2024-01-02T00:00:00Z";
const T2: &str = "2024-01-03T00:00:00Z";
const T3: &str = "2024-01-04T00:00:00Z";

impl Store {
    fn new(kind: Kind) -> Self {
        let workspace = Workspace::new();
        let bucket = match kind {
            Kind::Embedded => String::new(),
            #[cfg(feature = "aws")]
            Kind::Aws => {
                let bucket = aws::create_bucket();
                let database = aws::unique_name("catalogue");
                workspace.write(
                    "fengine.toml",
                    &format!(
                        "[profiles.aws]\nwarehouse = 's3://{bucket}/warehouse'\ncatalog = 'glue'\n\
                         glue_database = '{database}'\nonline = 'dynamodb'\n\
                         dynamodb_table_prefix = '{database}_'\n"
                    ),
                );
                bucket
            }
        };
        write_parquet_file(&workspace.path("data/txns/part-0.parquet"), &transactions());
        Store {
            workspace,
            kind,
            bucket,
        }
    }

    fn fengine(&self, args: &[&str]) -> Outcome {
        let mut all: Vec<&str> = args.to_vec();
        if !matches!(self.kind, Kind::Embedded) {
            all.extend(["--profile", "aws"]);
        }
        self.workspace.fengine_with_env(&all, &[("USER", "ana")])
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["--output", "json"]);
        self.fengine(&all).success().json()
    }

    fn run(&self, pipeline: &str, as_of: &str) -> Value {
        self.json(&["run", pipeline, "--as-of", as_of])
    }

    /// The rows of a snapshot's files, read with the parquet crate.
    async fn snapshot_rows(&self, location: &str) -> Vec<RecordBatch> {
        match self.kind {
            Kind::Embedded => read_parquet_folder(location),
            #[cfg(feature = "aws")]
            Kind::Aws => {
                let prefix = location.trim_start_matches(&format!("s3://{}/", self.bucket));
                let keys = aws::list_objects(&self.bucket, prefix).await;
                aws::read_parquet_objects(&self.bucket, &keys).await
            }
        }
    }

    /// The bytes of the objects under a location, listed without fengine.
    async fn bytes_under(&self, location: &str) -> u64 {
        match self.kind {
            Kind::Embedded => {
                let folder = location.strip_prefix("file://").unwrap_or(location);
                std::fs::read_dir(folder)
                    .unwrap()
                    .map(|e| e.unwrap().metadata().unwrap().len())
                    .sum()
            }
            #[cfg(feature = "aws")]
            Kind::Aws => {
                let prefix = location.trim_start_matches(&format!("s3://{}/", self.bucket));
                aws::bytes_under(&self.bucket, prefix).await
            }
        }
    }
}

impl Store {
    /// Writes a file of the workspace; returns its path.
    fn file(&self, name: &str, text: &str) -> String {
        self.workspace
            .write(name, text)
            .to_str()
            .unwrap()
            .to_string()
    }
}

/// Two customers' transactions over three days: hand-computed totals per as-of below.
fn transactions() -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("customer_id", DataType::Int64, false),
        Field::new("amount", DataType::Float64, false),
        Field::new("merchant", DataType::Utf8, false),
        Field::new(
            "event_time",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            false,
        ),
    ]));
    let rows = [
        (1, 10.0, "a", "2024-01-01T10:00:00Z"),
        (1, 20.0, "b", "2024-01-02T10:00:00Z"),
        (1, 40.0, "a", "2024-01-03T10:00:00Z"),
        (2, 5.0, "c", "2024-01-01T12:00:00Z"),
        (2, 7.0, "c", "2024-01-03T12:00:00Z"),
    ];
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
            Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.1))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.2))),
            Arc::new(TimestampMicrosecondArray::from_iter_values(
                rows.iter().map(|r| micros(r.3)),
            )),
        ],
    )
    .unwrap()
}

/// `total` per customer at each as-of: the sum of amounts at or before it.
fn expected_total(customer: i64, as_of: &str) -> f64 {
    let (a, b) = match as_of {
        T1 => (10.0, 5.0),
        T2 => (30.0, 5.0),
        T3 => (70.0, 12.0),
        other => panic!("no expected totals at {other}"),
    };
    if customer == 1 { a } else { b }
}

struct Definition<'a> {
    version: u32,
    description: &'a str,
    tier: &'a str,
    total_comment: &'a str,
}

const FIRST: Definition = Definition {
    version: 1,
    description: "Card spend per customer so far",
    tier: "gold",
    total_comment: "sum of amount",
};

fn spend_pipeline(store: &Store, definition: &Definition) -> String {
    let Definition {
        version,
        description,
        tier,
        total_comment,
    } = definition;
    store.file(
        "spend.sql",
        &format!(
            "CREATE EXTERNAL TABLE txns STORED AS PARQUET LOCATION 'data/txns/';\n\
             CREATE FEATURE GROUP spend VERSION {version} KEY (customer_id) EVENT TIME event_time\n\
               DESCRIPTION '{description}' TAGS (team = 'risk', tier = '{tier}')\n\
               FEATURES (total COMMENT '{total_comment}', n COMMENT 'transactions so far')\n\
             AS SELECT customer_id, as_of() AS event_time, sum(amount) AS total, count(*) AS n\n\
             FROM txns WHERE event_time <= as_of() GROUP BY customer_id;\n\
             CREATE FEATURE GROUP merchant_mix KEY (customer_id) EVENT TIME event_time\n\
               DESCRIPTION 'How many shops a customer uses' TAGS (team = 'growth')\n\
               FEATURES (merchants COMMENT 'distinct MERCHANTS so far')\n\
             AS SELECT customer_id, as_of() AS event_time, count(DISTINCT merchant) AS merchants\n\
             FROM txns WHERE event_time <= as_of() GROUP BY customer_id;\n"
        ),
    )
}

fn names(listed: &Value) -> Vec<&str> {
    listed
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["group"].as_str().unwrap())
        .collect()
}

#[rstest]
#[case::embedded(Kind::Embedded)]
#[cfg_attr(feature = "aws", case::aws(Kind::Aws))]
#[tokio::test]
async fn list_searches_names_descriptions_features_and_comments(#[case] kind: Kind) {
    let store = Store::new(kind);
    let pipeline = spend_pipeline(&store, &FIRST);
    store.run(&pipeline, T1);
    store.run(&pipeline, T2);

    let all = store.json(&["catalog", "list"]);
    assert_eq!(names(&all), ["merchant_mix", "spend"]);
    let spend = &all[1];
    assert_eq!(spend["version"], 1);
    assert_eq!(spend["description"], "Card spend per customer so far");
    assert_eq!(spend["tags"], json!({"team": "risk", "tier": "gold"}));
    assert_eq!(spend["features"], 2);
    assert_eq!(spend["latest_snapshot"], T2);
    assert_eq!(spend["latest_rows"], 2);
    assert_eq!(spend["online_as_of"], T2);

    let search = |text: &str| store.json(&["catalog", "list", "--search", text]);
    assert_eq!(names(&search("SPEND")), ["spend"], "a name, any case");
    assert_eq!(names(&search("shops")), ["merchant_mix"], "a description");
    assert_eq!(names(&search("total")), ["spend"], "a feature's name");
    assert_eq!(
        names(&search("merchants so")),
        ["merchant_mix"],
        "a comment"
    );
    assert_eq!(names(&search("customer")), ["merchant_mix", "spend"]);
    assert_eq!(
        names(&search("customer shops")),
        ["merchant_mix"],
        "every word"
    );
    assert!(names(&search("churn")).is_empty());

    let tagged = |tags: &[&str]| {
        let mut args = vec!["catalog", "list"];
        for tag in tags {
            args.extend(["--tag", tag]);
        }
        store.json(&args)
    };
    assert_eq!(names(&tagged(&["team=risk"])), ["spend"]);
    assert_eq!(names(&tagged(&["team=risk", "tier=gold"])), ["spend"]);
    assert!(names(&tagged(&["team=risk", "tier=silver"])).is_empty());
    assert!(
        names(&tagged(&["team=Risk"])).is_empty(),
        "tags match exactly"
    );
}

#[rstest]
#[case::embedded(Kind::Embedded)]
#[cfg_attr(feature = "aws", case::aws(Kind::Aws))]
#[tokio::test]
async fn show_describes_schema_snapshots_online_and_sources(#[case] kind: Kind) {
    let store = Store::new(kind);
    let pipeline = spend_pipeline(&store, &FIRST);
    let runs = [store.run(&pipeline, T1), store.run(&pipeline, T2)];
    let shown = store.json(&["catalog", "show", "spend"]);
    assert_eq!(shown["key"], json!(["customer_id"]));
    assert_eq!(shown["event_time"], "event_time");
    assert_eq!(
        shown["features"],
        json!([
            {"name": "total", "data_type": "double", "comment": "sum of amount"},
            {"name": "n", "data_type": "bigint", "comment": "transactions so far"},
        ])
    );
    assert_eq!(shown["versions"].as_array().unwrap().len(), 1);
    assert_eq!(shown["versions"][0]["retired"], Value::Null);
    let snapshots = shown["snapshots"].as_array().unwrap();
    assert_eq!(snapshots.len(), 2);
    for (snapshot, (run, as_of)) in snapshots.iter().zip(runs.iter().zip([T1, T2])) {
        assert_eq!(snapshot["as_of"], as_of);
        assert_eq!(snapshot["run_id"], run["groups"][0]["run_id"]);
        let location = snapshot["location"].as_str().unwrap();
        let rows = store.snapshot_rows(location).await;
        assert_eq!(snapshot["rows"], row_count(&rows) as u64);
        assert_eq!(snapshot["bytes"], store.bytes_under(location).await);
        assert!(snapshot["written_at"].is_string());
    }
    assert_eq!(shown["online"]["loaded"]["as_of"], T2);
    assert!(
        shown["online"]["table"]
            .as_str()
            .unwrap()
            .ends_with("spend_v1"),
        "{}",
        shown["online"]
    );
    let sources = shown["sources"].as_array().unwrap();
    assert_eq!(sources.len(), 1);
    assert!(
        sources[0].as_str().unwrap().ends_with("data/txns/"),
        "{sources:?}"
    );

    let missing = store.fengine(&["catalog", "show", "spnd"]);
    assert_eq!(missing.code, 1, "{missing:?}");
    assert!(
        missing.stderr.contains(
            "'spnd' is neither a published feature group nor a registered model; the published \
             groups are: merchant_mix, spend"
        ),
        "{}",
        missing.stderr
    );
    let no_version = store.fengine(&["catalog", "show", "spend", "--version", "4"]);
    assert_eq!(no_version.code, 1);
    assert!(
        no_version
            .stderr
            .contains("feature group 'spend' has no version 4; its versions are 1"),
        "{}",
        no_version.stderr
    );
}

#[rstest]
#[case::embedded(Kind::Embedded)]
#[cfg_attr(feature = "aws", case::aws(Kind::Aws))]
#[tokio::test]
async fn a_description_tag_or_comment_change_updates_the_version_in_place(#[case] kind: Kind) {
    let store = Store::new(kind);
    store.run(&spend_pipeline(&store, &FIRST), T1);
    let changed = Definition {
        description: "Card spend per customer, all time",
        tier: "silver",
        total_comment: "sum of amount, in euros",
        ..FIRST
    };
    store.run(&spend_pipeline(&store, &changed), T2);

    let shown = store.json(&["catalog", "show", "spend"]);
    assert_eq!(shown["version"], 1);
    assert_eq!(
        shown["versions"].as_array().unwrap().len(),
        1,
        "no new version"
    );
    assert_eq!(shown["description"], "Card spend per customer, all time");
    assert_eq!(shown["tags"]["tier"], "silver");
    assert_eq!(shown["features"][0]["comment"], "sum of amount, in euros");

    let history = store.json(&["catalog", "history", "spend"]);
    let entries: Vec<(&str, &str)> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["kind"].as_str().unwrap(), e["detail"].as_str().unwrap()))
        .collect();
    assert_eq!(
        entries,
        [
            ("run", "snapshot 2024-01-03T00:00:00Z registered"),
            (
                "definition",
                "comment of total changed from 'sum of amount' to 'sum of amount, in euros'"
            ),
            ("definition", "tag tier changed from 'gold' to 'silver'"),
            (
                "definition",
                "description changed from 'Card spend per customer so far' to 'Card spend per \
                 customer, all time'"
            ),
            ("run", "snapshot 2024-01-02T00:00:00Z registered"),
            ("published", "version 1 published with 2 features"),
        ]
    );
    for entry in history.as_array().unwrap() {
        assert_eq!(entry["version"], 1);
        assert!(
            entry["actor"] == "ana" || entry["actor"].as_str().unwrap().starts_with("arn:aws:"),
            "{entry}"
        );
    }
}

/// The online row of customer `key`, as `fengine get` serves it.
fn online(store: &Store, key: &str) -> Value {
    store.fengine(&["get", "spend", key]).success().json()
}

#[rstest]
#[case::embedded(Kind::Embedded)]
#[cfg_attr(feature = "aws", case::aws(Kind::Aws))]
#[tokio::test]
async fn rollback_serves_an_earlier_snapshot_and_records_who_and_why(#[case] kind: Kind) {
    let store = Store::new(kind);
    let pipeline = spend_pipeline(&store, &FIRST);
    store.run(&pipeline, T1);
    store.run(&pipeline, T2);
    assert_eq!(online(&store, "1")["total"], expected_total(1, T2));

    let rolled = store.json(&[
        "rollback",
        "spend",
        "--to",
        T1,
        "--reason",
        "bad upstream file",
    ]);
    assert_eq!(rolled["restored"]["as_of"], T1);
    assert_eq!(rolled["replaced"]["as_of"], T2);
    assert_eq!(rolled["set_aside"][0]["as_of"], T2);

    // What is served equals the T1 snapshot's rows, read from its files.
    let shown = store.json(&["catalog", "show", "spend"]);
    let t1 = &shown["snapshots"][0];
    assert_eq!(t1["as_of"], T1);
    let rows = store.snapshot_rows(t1["location"].as_str().unwrap()).await;
    let customers = column::<Int64Type>(&rows, "customer_id");
    let totals = column::<Float64Type>(&rows, "total");
    for (customer, total) in customers.iter().zip(&totals) {
        let served = online(&store, &customer.unwrap().to_string());
        assert_eq!(served["total"], total.unwrap());
        assert_eq!(served["event_time"], T1);
    }
    assert_eq!(totals.len(), 2);
    assert_eq!(shown["online"]["loaded"]["as_of"], T1);
    assert!(
        shown["snapshots"][1]["set_aside"]
            .as_str()
            .unwrap()
            .contains("bad upstream file"),
        "the T2 snapshot is kept, marked: {}",
        shown["snapshots"][1]
    );

    let history = store.json(&["catalog", "history", "spend"]);
    let rollback = &history[0];
    assert_eq!(rollback["kind"], "rollback");
    assert_eq!(rollback["reason"], "bad upstream file");
    assert_eq!(rollback["as_of"], T1);
    match kind {
        Kind::Embedded => assert_eq!(rollback["actor"], "ana"),
        #[cfg(feature = "aws")]
        Kind::Aws => assert!(
            rollback["actor"].as_str().unwrap().starts_with("arn:aws:"),
            "the caller's ARN: {rollback}"
        ),
    }

    // A rerun of an as-of older than the set-aside one does not bring it back...
    store.run(&pipeline, T1);
    assert_eq!(online(&store, "1")["total"], expected_total(1, T1));
    // ...and the next scheduled run of a newer as-of loads as usual.
    let next = store.run(&pipeline, T3);
    assert_eq!(next["groups"][0]["online"]["status"], "loaded");
    assert_eq!(online(&store, "1")["total"], expected_total(1, T3));
    assert_eq!(online(&store, "2")["total"], expected_total(2, T3));
}

#[rstest]
#[case::embedded(Kind::Embedded)]
#[cfg_attr(feature = "aws", case::aws(Kind::Aws))]
#[tokio::test]
async fn a_rollback_to_an_as_of_without_a_snapshot_changes_nothing(#[case] kind: Kind) {
    let store = Store::new(kind);
    let pipeline = spend_pipeline(&store, &FIRST);
    store.run(&pipeline, T1);
    store.run(&pipeline, T2);
    let before = store.json(&["catalog", "show", "spend"]);
    let history = store.json(&["catalog", "history", "spend"]);

    let refused = store.fengine(&["rollback", "spend", "--to", "2024-01-02T12:00:00Z"]);
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(
        refused.stderr.contains(
            "feature group 'spend' version 1 has no snapshot at 2024-01-02T12:00:00Z; its \
             newest snapshots are 2024-01-03T00:00:00Z, 2024-01-02T00:00:00Z. Nothing was changed"
        ),
        "{}",
        refused.stderr
    );
    let unknown = store.fengine(&["rollback", "spnd", "--to", T1]);
    assert_eq!(unknown.code, 1);
    assert!(
        unknown
            .stderr
            .contains("feature group 'spnd' is not published"),
        "{}",
        unknown.stderr
    );
    assert_eq!(store.json(&["catalog", "show", "spend"]), before);
    assert_eq!(store.json(&["catalog", "history", "spend"]), history);
    assert_eq!(online(&store, "1")["total"], expected_total(1, T2));
}

fn write_models(store: &Store, uses: &str) -> String {
    store.file(
        "models.sql",
        &format!(
            "CREATE MODEL churn USES ({uses}) DESCRIPTION 'churn within 30 days' \
             TAGS (owner = 'ml-platform');"
        ),
    )
}

#[rstest]
#[case::embedded(Kind::Embedded)]
#[cfg_attr(feature = "aws", case::aws(Kind::Aws))]
#[tokio::test]
async fn models_are_answered_both_ways_and_hold_their_versions(#[case] kind: Kind) {
    let store = Store::new(kind);
    let pipeline = spend_pipeline(&store, &FIRST);
    store.run(&pipeline, T1);
    let models = write_models(&store, "spend.total, spend@1.n, merchant_mix.merchants");
    let registered = store.json(&["run", &models]);
    assert_eq!(registered["models"], json!(["churn v1"]));

    let model = store.json(&["catalog", "show", "churn"]);
    assert_eq!(model["description"], "churn within 30 days");
    assert_eq!(model["tags"], json!({"owner": "ml-platform"}));
    assert_eq!(
        model["features"],
        json!([
            {"group": "merchant_mix", "version": 1, "feature": "merchants"},
            {"group": "spend", "version": 1, "feature": "n"},
            {"group": "spend", "version": 1, "feature": "total"},
        ])
    );
    let group = store.json(&["catalog", "show", "spend"]);
    assert_eq!(
        group["models"],
        json!([{"model": "churn", "version": 1, "features": ["n", "total"]}])
    );

    // A training set built for a model records the features it requested.
    write_parquet_file(&store.workspace.path("spine/labels.parquet"), &spine());
    let spine = store.workspace.path("spine/labels.parquet");
    let out = store.workspace.path("train/set.parquet");
    let build_for_churn = || {
        store.json(&[
            "training-set",
            "--spine",
            spine.to_str().unwrap(),
            "--timestamp",
            "label_time",
            "--features",
            "spend.total",
            "--out",
            out.to_str().unwrap(),
            "--model",
            "churn",
        ])
    };
    let built = build_for_churn();
    assert_eq!(built["model"], "churn v2", "other features: a new version");
    let again = build_for_churn();
    assert_eq!(
        again["model"], "churn v2",
        "the same features: the same version"
    );
    let newest = store.json(&["catalog", "show", "churn"]);
    assert_eq!(newest["version"], 2);
    assert_eq!(newest["versions"], json!([1, 2]));
    assert_eq!(
        newest["features"],
        json!([{"group": "spend", "version": 1, "feature": "total"}])
    );
    let first = store.json(&["catalog", "show", "churn", "--version", "1"]);
    assert_eq!(first["features"].as_array().unwrap().len(), 3);
}

fn spine() -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("customer_id", DataType::Int64, false),
        Field::new(
            "label_time",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            false,
        ),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(vec![1, 2])),
            Arc::new(TimestampMicrosecondArray::from(vec![
                micros("2024-01-02T06:00:00Z"),
                micros("2024-01-02T06:00:00Z"),
            ])),
        ],
    )
    .unwrap()
}

#[rstest]
#[case::unknown_group(
    "spnd.total",
    "model 'churn' uses 'spnd.total', but feature group 'spnd' is not published"
)]
#[case::unknown_version(
    "spend@3.total",
    "model 'churn' uses 'spend@3.total': feature group 'spend' has no version 3; its versions are 1"
)]
#[case::unknown_feature(
    "spend.totl",
    "model 'churn' uses 'spend.totl', but 'spend' v1 has no feature 'totl'; its features are total, n"
)]
#[case::key_is_no_feature(
    "spend.customer_id",
    "'spend' v1 has no feature 'customer_id'; its features are total, n"
)]
fn bad_uses_are_refused_registering_nothing(#[case] uses: &str, #[case] message: &str) {
    let store = Store::new(Kind::Embedded);
    store.run(&spend_pipeline(&store, &FIRST), T1);
    let models = write_models(&store, uses);
    let refused = store.fengine(&["run", &models]);
    assert_eq!(refused.code, 2, "{refused:?}");
    assert!(
        refused.stderr.contains("models.sql:1:1") && refused.stderr.contains(message),
        "{}",
        refused.stderr
    );
    let shown = store.fengine(&["catalog", "show", "churn", "--model"]);
    assert_eq!(shown.code, 1, "nothing registered: {shown:?}");
}

#[rstest]
#[case::embedded(Kind::Embedded)]
#[cfg_attr(feature = "aws", case::aws(Kind::Aws))]
#[tokio::test]
async fn retire_is_refused_while_a_model_uses_the_version(#[case] kind: Kind) {
    let store = Store::new(kind);
    store.run(&spend_pipeline(&store, &FIRST), T1);
    store.json(&["run", &write_models(&store, "spend.total")]);

    let refused = store.fengine(&["catalog", "retire", "spend", "--version", "1", "--yes"]);
    assert_eq!(refused.code, 2, "{refused:?}");
    assert!(
        refused
            .stderr
            .contains("feature group 'spend' version 1 is used by registered models: churn v1"),
        "{}",
        refused.stderr
    );
    assert_eq!(online(&store, "1")["total"], expected_total(1, T1));

    // Version 2, a model version on it, then version 1 retires.
    let second = Definition {
        version: 2,
        ..FIRST
    };
    store.run(&spend_pipeline(&store, &second), T2);
    store.workspace.write(
        "models.sql",
        "CREATE MODEL churn VERSION 1 USES (spend@2.total);",
    );
    store.json(&["run", store.workspace.path("models.sql").to_str().unwrap()]);
    let retired = store.json(&[
        "catalog",
        "retire",
        "spend",
        "--version",
        "1",
        "--yes",
        "--reason",
        "replaced by v2",
    ]);
    assert!(retired["dropped_online_table"].is_string(), "{retired}");
    assert_eq!(retired["snapshots_kept"], 1);

    let gone = store.fengine(&["get", "spend", "1", "--version", "1"]);
    assert_eq!(gone.code, 1, "{gone:?}");
    let shown = store.json(&["catalog", "show", "spend", "--version", "1"]);
    let retired_by = shown["versions"][0]["retired"]["by"].clone();
    assert_eq!(shown["snapshots"].as_array().unwrap().len(), 1, "kept");
    let rows = store
        .snapshot_rows(shown["snapshots"][0]["location"].as_str().unwrap())
        .await;
    assert_eq!(row_count(&rows), 2, "its files are kept");
    let listed = store.json(&["catalog", "list", "--search", "spend"]);
    assert_eq!(listed[0]["version"], 2);
    let history = store.json(&["catalog", "history", "spend"]);
    assert_eq!(history[0]["kind"], "retire");
    assert_eq!(
        history[0]["actor"], retired_by,
        "who retired it, both places"
    );
    assert_eq!(history[0]["reason"], "replaced by v2");

    // A retired version neither runs nor is read as a source.
    let rerun = store.fengine(&["run", &spend_pipeline(&store, &FIRST), "--as-of", T3]);
    assert_eq!(rerun.code, 2, "{rerun:?}");
    assert!(
        rerun.stderr.contains("version 1 was retired at"),
        "{}",
        rerun.stderr
    );
    let reader = store.workspace.write(
        "reader.sql",
        "CREATE FEATURE GROUP reader KEY (customer_id) EVENT TIME event_time \
         AS SELECT customer_id, event_time, total FROM features.spend_v1;",
    );
    let read = store.fengine(&["run", reader.to_str().unwrap(), "--as-of", T3]);
    assert_eq!(read.code, 2, "{read:?}");
    assert!(
        read.stderr
            .contains("features.spend_v1 reads 'spend' version 1, which was retired at"),
        "{}",
        read.stderr
    );
    assert_eq!(store.fengine(&["catalog", "show", "reader"]).code, 1);
}

fn downstream(store: &Store) -> String {
    store.file(
        "downstream.sql",
        "CREATE FEATURE GROUP spend_doubled KEY (customer_id) EVENT TIME event_time \
         DESCRIPTION 'reads the published spend' \
         AS SELECT customer_id, as_of() AS event_time, total * 2 AS doubled, \
                   event_time AS spend_as_of \
         FROM features.spend;",
    )
}

#[rstest]
#[case::embedded(Kind::Embedded)]
#[cfg_attr(feature = "aws", case::aws(Kind::Aws))]
#[tokio::test]
async fn a_downstream_pipeline_reads_published_features_and_older_snapshots(#[case] kind: Kind) {
    let store = Store::new(kind);
    let upstream = spend_pipeline(&store, &FIRST);
    let reader = downstream(&store);
    store.run(&upstream, T1);
    // Given in the wrong order: the reader runs after the pipeline it reads.
    let runs = store.json(&["run", &reader, &upstream, "--as-of", T2]);
    let order: Vec<&str> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["groups"][0]["group"].as_str().unwrap())
        .collect();
    assert_eq!(order, ["spend", "spend_doubled"]);
    let served = store
        .fengine(&["get", "spend_doubled", "1"])
        .success()
        .json();
    assert_eq!(served["doubled"], 2.0 * expected_total(1, T2));
    assert_eq!(served["spend_as_of"], T2);

    // Time travel: the older snapshot, named.
    store.json(&[
        "run",
        &reader,
        "--as-of",
        T3,
        "--snapshot",
        &format!("spend={T1}"),
    ]);
    let served = store
        .fengine(&["get", "spend_doubled", "2"])
        .success()
        .json();
    assert_eq!(served["doubled"], 2.0 * expected_total(2, T1));
    assert_eq!(served["spend_as_of"], T1);

    let shown = store.json(&["catalog", "show", "spend_doubled"]);
    assert_eq!(shown["reads"], json!([{"group": "spend", "version": 1}]));
    let upstream_shown = store.json(&["catalog", "show", "spend"]);
    assert_eq!(
        upstream_shown["read_by"],
        json!([{"group": "spend_doubled", "version": 1}])
    );

    #[cfg(feature = "aws")]
    if matches!(kind, Kind::Aws) {
        // The reader's least privilege: the upstream snapshots, and the tables that find them.
        let policy = store.json(&["plan", &reader, "--as-of", T3, "--iam-policy"]);
        let statement = |sid: &str| {
            policy["Statement"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["Sid"] == sid)
                .unwrap_or_else(|| panic!("no {sid} in {policy}"))
                .clone()
        };
        assert_eq!(
            statement("ReadSources")["Resource"],
            json!([format!(
                "arn:aws:s3:::{}/warehouse/spend/v1/*",
                store.bucket
            )])
        );
        let register = statement("RegisterSnapshots");
        assert!(
            register["Action"]
                .as_array()
                .unwrap()
                .contains(&json!("glue:GetTables"))
        );
        assert!(
            register["Resource"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r.as_str().unwrap().ends_with("/spend_v1")),
            "{register}"
        );
    }

    let missing = store.fengine(&[
        "run",
        &reader,
        "--as-of",
        T3,
        "--snapshot",
        "spend=2024-01-02T12:00:00Z",
    ]);
    assert_eq!(missing.code, 2, "{missing:?}");
    assert!(
        missing.stderr.contains(
            "--snapshot spend=2024-01-02T12:00:00Z: 'spend' v1 has no snapshot at that as-of"
        ),
        "{}",
        missing.stderr
    );
}

#[test]
fn pipelines_reading_each_other_around_a_circle_are_refused() {
    let store = Store::new(Kind::Embedded);
    let a = store.workspace.write(
        "a.sql",
        "CREATE FEATURE GROUP a KEY (customer_id) EVENT TIME event_time \
         AS SELECT customer_id, event_time, total FROM features.b;",
    );
    let b = store.workspace.write(
        "b.sql",
        "CREATE FEATURE GROUP b KEY (customer_id) EVENT TIME event_time \
         AS SELECT customer_id, event_time, total FROM features.a;",
    );
    let refused = store.fengine(&[
        "run",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--as-of",
        T1,
    ]);
    assert_eq!(refused.code, 2, "{refused:?}");
    assert!(
        refused.stderr.contains(&format!(
            "the pipelines read each other's groups around a circle: {} reads features.b, \
             defined by {} reads features.a, defined by {}",
            a.display(),
            b.display(),
            a.display()
        )),
        "{}",
        refused.stderr
    );
    assert!(
        !store.workspace.path("warehouse/catalog.sqlite").exists(),
        "nothing ran"
    );
}

#[test]
fn a_pipeline_cannot_read_a_group_it_defines_as_published() {
    let store = Store::new(Kind::Embedded);
    let pipeline = store.workspace.write(
        "self.sql",
        "CREATE EXTERNAL TABLE txns STORED AS PARQUET LOCATION 'data/txns/';\n\
         CREATE FEATURE GROUP spend KEY (customer_id) EVENT TIME event_time \
         AS SELECT customer_id, as_of() AS event_time, sum(amount) AS total FROM txns GROUP BY customer_id;\n\
         CREATE FEATURE GROUP spend_doubled KEY (customer_id) EVENT TIME event_time \
         AS SELECT customer_id, event_time, total * 2 AS doubled FROM features.spend;",
    );
    let refused = store.fengine(&["run", pipeline.to_str().unwrap(), "--as-of", T2]);
    assert_eq!(refused.code, 2, "{refused:?}");
    assert!(
        refused
            .stderr
            .contains("features.spend is a group this pipeline defines"),
        "{}",
        refused.stderr
    );
}

/// The catalogue's tables are Parquet in Hive's layout, which any SQL engine reads: here
/// DataFusion's own listing, with the partition column, as Athena would.
#[tokio::test]
async fn the_catalogue_tables_answer_sql() {
    use datafusion::datasource::file_format::parquet::ParquetFormat;
    use datafusion::datasource::listing::ListingOptions;
    use datafusion::prelude::SessionContext;

    let store = Store::new(Kind::Embedded);
    let pipeline = spend_pipeline(&store, &FIRST);
    store.run(&pipeline, T1);
    store.run(&pipeline, T2);
    store.json(&[
        "run",
        &write_models(&store, "spend.total, merchant_mix.merchants"),
    ]);
    store.json(&["rollback", "spend", "--to", T1, "--reason", "audit me"]);

    let root = store.workspace.path("warehouse/_fengine/catalogue");
    let context = SessionContext::new();
    let history = ListingOptions::new(std::sync::Arc::new(ParquetFormat::default()))
        .with_file_extension(".parquet")
        .with_table_partition_cols(vec![("group_name".to_string(), DataType::Utf8)]);
    context
        .register_listing_table(
            "history",
            format!("{}/fengine_history/", root.display()),
            history,
            None,
            None,
        )
        .await
        .unwrap();
    for table in ["fengine_lineage", "fengine_models"] {
        context
            .register_parquet(
                table,
                format!("{}/{table}/", root.display()),
                Default::default(),
            )
            .await
            .unwrap();
    }
    let query = |sql: &str| {
        let context = context.clone();
        let sql = sql.to_string();
        async move {
            let batches = context.sql(&sql).await.unwrap().collect().await.unwrap();
            arrow::util::pretty::pretty_format_batches(&batches)
                .unwrap()
                .to_string()
        }
    };
    let counts = query(
        "SELECT group_name, kind, count(*) AS events FROM history \
         GROUP BY group_name, kind ORDER BY group_name, kind",
    )
    .await;
    assert_eq!(
        counts.trim(),
        "+--------------+-----------+--------+\n\
         | group_name   | kind      | events |\n\
         +--------------+-----------+--------+\n\
         | merchant_mix | published | 1      |\n\
         | merchant_mix | run       | 2      |\n\
         | spend        | published | 1      |\n\
         | spend        | rollback  | 1      |\n\
         | spend        | run       | 2      |\n\
         +--------------+-----------+--------+"
    );
    let why = query("SELECT actor, reason FROM history WHERE kind = 'rollback'").await;
    assert!(why.contains("| ana   | audit me |"), "{why}");
    let lineage = query(
        "SELECT group_name, upstream_kind, count(*) AS edges FROM fengine_lineage \
         GROUP BY group_name, upstream_kind ORDER BY group_name",
    )
    .await;
    assert!(
        lineage.contains("| merchant_mix | source        | 1     |"),
        "{lineage}"
    );
    assert!(
        lineage.contains("| spend        | source        | 1     |"),
        "{lineage}"
    );
    let uses =
        query("SELECT model, group_name, feature FROM fengine_models ORDER BY group_name, feature")
            .await;
    assert!(
        uses.contains("| churn | merchant_mix | merchants |"),
        "{uses}"
    );
    assert!(
        uses.contains("| churn | spend        | total     |"),
        "{uses}"
    );
}
