//! Encoders end to end: fitted by `fengine encoder fit` on a published group's rows,
//! registered, exported, and applied by `training-set --encode`, all compared with
//! scikit-learn fitting and transforming the same rows (tests/reference/encoders_sklearn.py):
//! fitted attributes and encoded values within 1e-9, and onnxruntime running the ONNX export
//! (tests/reference/encoders_onnx.py) within 1e-9 too, over nulls, NaN, a constant column,
//! integers of several widths, magnitudes near 1e9, unseen categories and values beyond
//! the fitted range. Then versions: a refit of the same rows registers nothing, a refit of
//! new rows the next version, and `--encode <name>@1` still applies the first.

mod common;

use std::process::Command;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, Float32Array, Float64Array, Int16Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray, UInt8Array, UInt64Array,
};
use common::*;

const CUSTOMERS: i64 = 2000;
const AS_OF: &str = "2024-04-01T00:00:00Z";
const CATEGORIES: [&str; 6] = ["grocery", "travel", "fuel", "dining", "books", "toys"];

/// One row per customer. Customers whose id is a multiple of 4 are not fitted on: they hold
/// values beyond the fitted range and a category never seen.
fn payments(offset: f64) -> RecordBatch {
    let mut state: u64 = 7;
    let mut uniform = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    let ids: Vec<i64> = (0..CUSTOMERS).collect();
    let held_out = |id: i64| id % 4 == 0;
    let mut amount = Vec::new();
    let mut n = Vec::new();
    let mut delta = Vec::new();
    let mut category = Vec::new();
    let mut big = Vec::new();
    let mut width = Vec::new();
    let mut count = Vec::new();
    for &id in &ids {
        let (u, v) = (uniform(), uniform());
        let z = (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos();
        amount.push(match id % 23 {
            0 => None,
            1 => Some(f64::NAN),
            _ => Some(100.0 + offset + 20.0 * z),
        });
        n.push(if held_out(id) {
            60 + (id % 7) as i16
        } else {
            (id % 45) as i16
        });
        delta.push(if held_out(id) && id % 8 == 0 {
            -3.0
        } else {
            -0.9 + 6.0 * uniform()
        } as f32);
        // Skewed: grocery most frequent, toys least; ties between dining and books.
        let pick = uniform();
        category.push(if held_out(id) {
            Some("unseen")
        } else if id % 31 == 0 {
            None
        } else {
            let index = [0.40, 0.65, 0.80, 0.88, 0.96, 1.0]
                .iter()
                .position(|edge| pick < *edge)
                .unwrap();
            Some(CATEGORIES[index])
        });
        big.push(if held_out(id) { 2e9 } else { 1e9 + 1000.0 * z });
        width.push((uniform() * 200.0) as u8);
        count.push((id % 6) as u64 * (id % 6) as u64);
    }
    let times: Vec<i64> = ids
        .iter()
        .map(|id| micros("2024-03-01T00:00:00Z") + id)
        .collect();
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("customer_id", Arc::new(Int64Array::from(ids.clone()))),
        (
            "event_time",
            Arc::new(TimestampMicrosecondArray::from(times).with_timezone("UTC")),
        ),
        ("amount", Arc::new(Float64Array::from(amount))),
        ("n", Arc::new(Int16Array::from(n))),
        ("delta", Arc::new(Float32Array::from(delta))),
        ("category", Arc::new(StringArray::from(category))),
        ("big", Arc::new(Float64Array::from(big))),
        ("width", Arc::new(UInt8Array::from(width))),
        ("count", Arc::new(UInt64Array::from(count))),
        (
            "constant",
            Arc::new(Float64Array::from(vec![7.25; CUSTOMERS as usize])),
        ),
        (
            "flat",
            Arc::new(Int64Array::from(vec![42; CUSTOMERS as usize])),
        ),
    ];
    RecordBatch::try_from_iter(columns).unwrap()
}

const PIPELINE: &str = "\
CREATE EXTERNAL TABLE payments STORED AS PARQUET LOCATION 'payments/';
CREATE FEATURE GROUP spend KEY (customer_id) EVENT TIME event_time AS
SELECT * FROM payments WHERE event_time <= as_of();
";

const ENCODER: &str = "\
CREATE ENCODER inputs
  FIT ON (SELECT * FROM features.spend WHERE customer_id % 4 <> 0)
  (standard_scale(amount), standard_scale(constant),
   min_max(n, out_of_range => 'clip'),
   log1p(delta, out_of_range => 'null'),
   one_hot(category, max_categories => 4, unknown => 'infrequent'),
   bucketize(big, quantiles => 10),
   bucketize(width, uniform => 5),
   bucketize(flat, quantiles => 3, method => 'linear'),
   bucketize(count, quantiles => 4, method => 'inverted_cdf'))
  DESCRIPTION 'inputs of the spend model';
";

fn published(offset: f64) -> Workspace {
    let workspace = Workspace::new();
    write_parquet_file(
        &workspace.path("payments/part-0.parquet"),
        &payments(offset),
    );
    workspace.write("spend.sql", PIPELINE);
    workspace.write("inputs.sql", ENCODER);
    workspace
        .fengine(&["run", "spend.sql", "--as-of", AS_OF])
        .success();
    let spine = RecordBatch::try_from_iter(vec![
        (
            "customer_id",
            Arc::new(Int64Array::from((0..CUSTOMERS).collect::<Vec<_>>())) as ArrayRef,
        ),
        (
            "ts",
            Arc::new(
                TimestampMicrosecondArray::from(vec![micros(AS_OF); CUSTOMERS as usize])
                    .with_timezone("UTC"),
            ),
        ),
    ])
    .unwrap();
    write_parquet_file(&workspace.path("spine.parquet"), &spine);
    workspace
}

fn fit(workspace: &Workspace) -> serde_json::Value {
    workspace
        .fengine(&[
            "encoder",
            "fit",
            "inputs.sql",
            "--as-of",
            AS_OF,
            "--output",
            "json",
        ])
        .success()
        .json()
}

fn training_set(workspace: &Workspace, out: &str, extra: &[&str]) -> Outcome {
    let mut args = vec![
        "training-set",
        "--spine",
        "spine.parquet",
        "--timestamp",
        "ts",
        "--features",
        "spend",
        "--out",
        out,
        "--output",
        "json",
    ];
    args.extend(extra);
    workspace.fengine(&args)
}

#[test]
fn encoders_fit_and_transform_as_scikit_learn_does() {
    let workspace = published(0.0);
    let fits = fit(&workspace);
    assert_eq!(fits[0]["encoder"], "inputs");
    assert_eq!(
        (&fits[0]["version"], &fits[0]["registered"]),
        (&1.into(), &true.into())
    );
    let fitted_rows = (0..CUSTOMERS).filter(|id| id % 4 != 0).count();
    assert_eq!(fits[0]["rows"], fitted_rows);
    assert_eq!(fits[0]["fitted_on"]["snapshots"][0]["group"], "spend");
    assert_eq!(fits[0]["fitted_on"]["snapshots"][0]["as_of"], AS_OF);

    training_set(&workspace, "raw.parquet", &[]).success();
    let encoded = training_set(&workspace, "encoded.parquet", &["--encode", "inputs"])
        .success()
        .json();
    assert_eq!(encoded["encoder"], "inputs v1");
    let export = workspace.path("inputs.json");
    workspace
        .fengine(&[
            "encoder",
            "export",
            "inputs",
            "--format",
            "json",
            "--out",
            export.to_str().unwrap(),
        ])
        .success();

    let snapshot = workspace.path("warehouse/spend/v1/snapshot_ts=20240401T000000Z");
    let run_folder = std::fs::read_dir(&snapshot)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("run-"))
        .unwrap();
    let (raw, encoded) = (
        workspace.path("raw.parquet"),
        workspace.path("encoded.parquet"),
    );
    reference(
        "encoders_sklearn.py",
        &[run_folder.as_path(), &raw, &encoded, &export],
    );

    // The ONNX export, run by onnxruntime on the raw rows, encodes as fengine did.
    let model = workspace.path("inputs.onnx");
    workspace
        .fengine(&[
            "encoder",
            "export",
            "inputs",
            "--format",
            "onnx",
            "--out",
            model.to_str().unwrap(),
        ])
        .success();
    reference("encoders_onnx.py", &[&model, &raw, &encoded, &export]);
}

/// Runs a reference script of tests/reference, which exits 1 naming each difference.
fn reference(script: &str, args: &[&std::path::Path]) {
    let run = Command::new("python3")
        .arg(repo_path(&format!("tests/reference/{script}")))
        .args(args)
        .output()
        .expect("python3 runs");
    assert!(
        run.status.success(),
        "{script} disagrees:\n{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
}

#[test]
fn a_refit_registers_a_version_only_when_the_parameters_change() {
    let workspace = published(0.0);
    assert_eq!(fit(&workspace)[0]["version"], 1);
    let same = fit(&workspace);
    assert_eq!(
        (&same[0]["version"], &same[0]["registered"]),
        (&1.into(), &false.into())
    );

    // New rows at a later as-of: the next version.
    write_parquet_file(&workspace.path("payments/part-0.parquet"), &payments(50.0));
    workspace
        .fengine(&["run", "spend.sql", "--as-of", "2024-04-02T00:00:00Z"])
        .success();
    let refit = workspace
        .fengine(&[
            "encoder",
            "fit",
            "inputs.sql",
            "--as-of",
            "2024-04-02T00:00:00Z",
            "--output",
            "json",
        ])
        .success()
        .json();
    assert_eq!(
        (&refit[0]["version"], &refit[0]["registered"]),
        (&2.into(), &true.into())
    );

    let mean = |version: &str| {
        let shown = workspace
            .fengine(&["encoder", "show", version, "--output", "json"])
            .success()
            .json();
        shown["parameters"]["transforms"][0]["standard_scale"]["mean"]
            .as_f64()
            .unwrap()
    };
    let (first, second) = (mean("inputs@1"), mean("inputs"));
    assert!((second - first - 50.0).abs() < 2.0, "{first} then {second}");

    // A training set encoded by v1 scales by v1's mean, whatever the newest is.
    training_set(&workspace, "v1.parquet", &["--encode", "inputs@1"]).success();
    let rows = read_parquet_file(&workspace.path("v1.parquet"));
    let amounts = column::<arrow::datatypes::Float64Type>(&rows, "amount");
    let encoded_mean: f64 = amounts
        .iter()
        .flatten()
        .filter(|a| !a.is_nan())
        .sum::<f64>()
        / amounts.iter().flatten().filter(|a| !a.is_nan()).count() as f64;
    assert!(
        encoded_mean > 1.5,
        "scaled by v1's mean, 50 below: {encoded_mean}"
    );

    // A changed definition under the same VERSION is refused.
    workspace.write(
        "inputs.sql",
        &ENCODER.replace("quantiles => 10", "quantiles => 5"),
    );
    let changed = workspace.fengine(&["encoder", "fit", "inputs.sql", "--as-of", AS_OF]);
    assert_eq!(changed.code, 2, "{}", changed.stderr);
    assert!(
        changed
            .stderr
            .contains("a change of its transforms or of what it is fitted on needs a new VERSION"),
        "{}",
        changed.stderr
    );
}

#[test]
fn what_an_encoder_cannot_take_is_refused_clearly() {
    let workspace = published(0.0);
    // A string scaled: located at the transform.
    workspace.write(
        "bad.sql",
        "CREATE ENCODER bad FIT ON (SELECT * FROM features.spend)\n  (standard_scale(category))",
    );
    let refused = workspace.fengine(&["encoder", "fit", "bad.sql", "--as-of", AS_OF]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains(
            "bad.sql:2:4: encoder 'bad': standard_scale cannot take column 'category' of type \
             Utf8View: it takes numbers"
        ),
        "{}",
        refused.stderr
    );

    // An unknown category, declared an error: the training set is not written.
    workspace.write(
        "strict.sql",
        "CREATE ENCODER strict FIT ON (SELECT * FROM features.spend WHERE customer_id % 4 <> 0) \
         (one_hot(category))",
    );
    workspace
        .fengine(&["encoder", "fit", "strict.sql", "--as-of", AS_OF])
        .success();
    let unknown = training_set(&workspace, "strict.parquet", &["--encode", "strict"]);
    assert_eq!(unknown.code, 3, "{}", unknown.stderr);
    assert!(
        unknown.stderr.contains(
            "encoder 'strict' cannot encode column 'category': 'unseen' is a category it was \
             not fitted on (unknown => 'error'; 'ignore' encodes it as zeros)"
        ),
        "{}",
        unknown.stderr
    );
    assert!(
        !workspace.path("strict.parquet").exists(),
        "no half-written training set"
    );

    // The same in a pipeline's SQL: a failed check, nothing published.
    workspace.write(
        "strict_group.sql",
        "CREATE FEATURE GROUP strict_group KEY (customer_id) EVENT TIME event_time AS
SELECT customer_id, event_time, encode('strict', 'category_grocery', category) AS grocery
FROM features.spend;",
    );
    let failed = workspace.fengine(&["run", "strict_group.sql", "--as-of", AS_OF]);
    assert_eq!(failed.code, 3, "{}", failed.stderr);
    assert!(
        failed
            .stderr
            .contains("'unseen' is a category it was not fitted on"),
        "{}",
        failed.stderr
    );
    assert_eq!(workspace.partitions("strict_group_v1"), Vec::new());

    let missing = training_set(&workspace, "none.parquet", &["--encode", "nothing"]);
    assert_eq!(missing.code, 1, "{}", missing.stderr);
    assert!(
        missing.stderr.contains("no encoder 'nothing' is fitted"),
        "{}",
        missing.stderr
    );
}

#[test]
fn fits_at_once_register_one_version() {
    let workspace = published(0.0);
    let fits: Vec<serde_json::Value> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..3).map(|_| scope.spawn(|| fit(&workspace))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let registered: Vec<bool> = fits
        .iter()
        .map(|f| f[0]["registered"].as_bool().unwrap())
        .collect();
    assert_eq!(registered.iter().filter(|r| **r).count(), 1, "{fits:?}");
    assert!(fits.iter().all(|f| f[0]["version"] == 1), "{fits:?}");
    let shown = workspace
        .fengine(&["encoder", "show", "inputs", "--output", "json"])
        .success()
        .json();
    assert_eq!(shown["versions"], serde_json::json!([1]));
}

#[test]
fn pipelines_apply_an_encoder_in_sql_as_training_sets_do() {
    let workspace = published(0.0);
    fit(&workspace);
    training_set(&workspace, "encoded.parquet", &["--encode", "inputs"]).success();
    workspace.write(
        "scored.sql",
        "CREATE FEATURE GROUP scored KEY (customer_id) EVENT TIME event_time AS
SELECT customer_id, event_time, encode('inputs', 'amount', amount) AS amount_z,
       encode('inputs@1', 'category_grocery', category) AS grocery,
       encode('inputs', 'big', big) AS big_bucket
FROM features.spend;",
    );
    let run = workspace
        .fengine(&["run", "scored.sql", "--as-of", AS_OF, "--output", "json"])
        .success()
        .json();
    let scored = read_parquet_folder(run["groups"][0]["snapshot_location"].as_str().unwrap());
    let encoded = read_parquet_file(&workspace.path("encoded.parquet"));
    use arrow::datatypes::{Float64Type, Int64Type};
    let by_customer = |batches: &[RecordBatch], name: &str| {
        let ids = column::<Int64Type>(batches, "customer_id");
        let values = column::<Float64Type>(batches, name);
        let mut pairs: Vec<(i64, Option<u64>)> = ids
            .into_iter()
            .zip(values)
            .map(|(id, v)| (id.unwrap(), v.map(f64::to_bits)))
            .collect();
        pairs.sort();
        pairs
    };
    for (ours, theirs) in [
        ("amount_z", "amount"),
        ("grocery", "category_grocery"),
        ("big_bucket", "big"),
    ] {
        assert_eq!(
            by_customer(&scored, ours),
            by_customer(&encoded, theirs),
            "{ours}"
        );
    }

    workspace.write(
        "wrong.sql",
        "CREATE FEATURE GROUP wrong KEY (customer_id) EVENT TIME event_time AS
SELECT customer_id, event_time, encode('inputs', 'category_food', category) AS x
FROM features.spend;",
    );
    let wrong = workspace.fengine(&["run", "wrong.sql", "--as-of", AS_OF]);
    assert_eq!(wrong.code, 2, "{}", wrong.stderr);
    assert!(
        wrong.stderr.contains(
            "encode('inputs', 'category_food', ...): encoder 'inputs' v1 writes no column \
             'category_food'; it writes amount, constant, n, delta, category_fuel, \
             category_grocery, category_travel, category_infrequent, big, width, flat, count"
        ),
        "{}",
        wrong.stderr
    );
    workspace.write(
        "missing.sql",
        "CREATE FEATURE GROUP missing KEY (customer_id) EVENT TIME event_time AS
SELECT customer_id, event_time, encode('outputs', 'x', amount) AS x FROM features.spend;",
    );
    let missing = workspace.fengine(&["run", "missing.sql", "--as-of", AS_OF]);
    assert_eq!(missing.code, 2, "{}", missing.stderr);
    assert!(
        missing.stderr.contains(
            "missing.sql:1:1: encode('outputs', ...): no encoder 'outputs' is fitted; fit it \
             with `fengine encoder fit <file.sql>`"
        ),
        "{}",
        missing.stderr
    );
}

#[test]
fn an_online_row_is_encoded_as_training_sets_encode_it() {
    let workspace = published(0.0);
    fit(&workspace);
    training_set(&workspace, "encoded.parquet", &["--encode", "inputs"]).success();
    let rows = read_parquet_file(&workspace.path("encoded.parquet"));
    use arrow::datatypes::{Float64Type, Int64Type};
    let ids = column::<Int64Type>(&rows, "customer_id");
    // Fitted on, held out (an unseen category, n clipped, delta null), a NaN amount, a null
    // category.
    for id in [5i64, 8, 24, 31] {
        let row = ids.iter().position(|i| *i == Some(id)).unwrap();
        let online = workspace
            .fengine(&["get", "spend", &id.to_string(), "--encode", "inputs"])
            .success()
            .json();
        for name in [
            "amount",
            "constant",
            "n",
            "delta",
            "category_fuel",
            "category_grocery",
            "category_travel",
            "category_infrequent",
            "big",
            "width",
            "flat",
            "count",
        ] {
            // As `get` serves a double: NaN as "NaN".
            let expected = match column::<Float64Type>(&rows, name)[row] {
                Some(v) if v.is_nan() => serde_json::json!("NaN"),
                Some(v) => serde_json::json!(v),
                None => serde_json::Value::Null,
            };
            assert_eq!(online[name], expected, "customer {id}, {name}: {online}");
        }
        assert_eq!(online.get("category"), None, "replaced by its columns");
        assert!(
            online["event_time"].is_string(),
            "the rest as `get` returns it"
        );
    }
}
