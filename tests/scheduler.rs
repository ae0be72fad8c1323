//! The contract with the schedulers that start runs (Step Functions on ECS, SageMaker
//! Processing): off a terminal every log line is a JSON object carrying the run id; no
//! credential appears in a log; `--run-id` names the run everywhere and makes a retry of the
//! same as-of idempotent; `--manifest` writes the manifest where the scheduler reads it.

mod common;

use common::*;

const PIPELINE: &str = "\
CREATE EXTERNAL TABLE events (k BIGINT NOT NULL, t TIMESTAMP NOT NULL, v DOUBLE NOT NULL)
STORED AS CSV LOCATION 'events/' OPTIONS ('format.has_header' 'true');
CREATE FEATURE GROUP totals KEY (k) EVENT TIME t AS
SELECT k, max(t) AS t, sum(v) AS total FROM events GROUP BY k;
CREATE FEATURE GROUP counts KEY (k) EVENT TIME t AS
SELECT k, max(t) AS t, count(*) AS n FROM events GROUP BY k;
";

const AS_OF: &str = "2024-03-02T00:00:00Z";

fn workspace() -> Workspace {
    let workspace = Workspace::new();
    workspace.write("p.sql", PIPELINE);
    workspace.write("events/a.csv", "k,t,v\n1,2024-03-01T00:00:00Z,1.5\n");
    workspace.write(
        "events/b.csv",
        "k,t,v\n2,2024-03-01T00:00:00Z,2.5\n2,2024-03-01T01:00:00Z,1\n",
    );
    workspace
}

/// Runs with stderr a pipe and no format asked for: what a scheduler sees.
fn scheduled(workspace: &Workspace, args: &[&str], env: &[(&str, &str)]) -> Outcome {
    let mut env = env.to_vec();
    env.push(("FENGINE_LOG_FORMAT", ""));
    workspace.fengine_with_env(args, &env)
}

/// Each line of stderr as JSON; fails on a line that is not an object.
fn log_lines(stderr: &str) -> Vec<serde_json::Value> {
    stderr
        .lines()
        .map(|line| {
            let value: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}\n{stderr}"));
            assert!(value.is_object(), "{line}");
            value
        })
        .collect()
}

#[test]
fn off_a_terminal_every_log_line_is_json_with_the_run_id() {
    let workspace = workspace();
    let outcome = scheduled(
        &workspace,
        &["run", "p.sql", "--as-of", AS_OF, "--run-id", "sfn-exec-42"],
        &[],
    )
    .success();
    let lines = log_lines(&outcome.stderr);
    assert!(lines.len() >= 4, "{}", outcome.stderr);
    for line in &lines {
        assert_eq!(line["run_id"], "sfn-exec-42", "{line}");
        assert_eq!(line["level"], "info", "{line}");
        let time = line["time"].as_str().unwrap();
        chrono::DateTime::parse_from_rfc3339(time).unwrap();
        assert!(line["message"].is_string(), "{line}");
    }
    let published: Vec<_> = lines
        .iter()
        .filter(|l| l["message"] == "published")
        .map(|l| (l["group"].as_str().unwrap(), l["rows"].as_u64().unwrap()))
        .collect();
    assert_eq!(published, [("totals", 2), ("counts", 2)]);
    // The run id names the snapshot's files and its partition.
    let partitions = workspace.partitions("totals_v1");
    assert_eq!(partitions.len(), 1);
    assert!(
        partitions[0].1.ends_with("/run-sfn-exec-42/"),
        "{partitions:?}"
    );
}

#[test]
fn a_failure_off_a_terminal_is_one_json_line_with_its_exit_code() {
    let workspace = workspace();
    workspace.write("bad.sql", "CREATE VIEW v AS SELEC 1;\n");
    let outcome = scheduled(&workspace, &["run", "bad.sql", "--run-id", "r1"], &[]);
    assert_eq!(outcome.code, 2, "{}", outcome.stderr);
    let lines = log_lines(&outcome.stderr);
    let error = lines.last().unwrap();
    assert_eq!(error["level"], "error");
    assert_eq!(error["exit_code"], 2);
    assert_eq!(error["retryable"], false);
    assert_eq!(error["run_id"], "r1");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .starts_with("bad.sql:1:18: Expected: SELECT"),
        "{error}"
    );
}

#[test]
fn a_retry_with_the_same_run_id_and_as_of_completes_instead_of_redoing() {
    let workspace = workspace();
    let args = [
        "run", "p.sql", "--as-of", AS_OF, "--run-id", "attempt", "--output", "json",
    ];
    let first = workspace.fengine(&args).success().json();
    let files = workspace.files();
    let partitions = workspace.partitions("totals_v1");

    let again = workspace.fengine(&args).success().json();
    for group in again["groups"].as_array().unwrap() {
        assert_eq!(group["already_registered"], true, "{group}");
        assert_eq!(group["replaced"], false, "{group}");
        assert_eq!(group["online"]["status"], "up_to_date", "{group}");
    }
    assert_eq!(
        again["groups"][0]["rows_written"],
        first["groups"][0]["rows_written"]
    );
    assert_eq!(workspace.partitions("totals_v1"), partitions);
    // Only the leases' records changed: no snapshot file was rewritten.
    let unchanged = |all: &std::collections::BTreeMap<std::path::PathBuf, Vec<u8>>| {
        all.iter()
            .filter(|(path, _)| path.extension().is_some_and(|e| e == "parquet"))
            .map(|(p, b)| (p.clone(), b.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(unchanged(&workspace.files()), unchanged(&files));

    // Another run id of the same as-of is a new run: it replaces the snapshot.
    let other = workspace
        .fengine(&[
            "run", "p.sql", "--as-of", AS_OF, "--run-id", "other", "--output", "json",
        ])
        .success()
        .json();
    assert_eq!(other["groups"][0]["replaced"], true);
    assert_eq!(other["groups"][0]["already_registered"], false);
}

#[test]
fn a_retry_of_an_attempt_killed_before_its_commit_starts_clean() {
    let workspace = workspace();
    let args = [
        "run", "p.sql", "--as-of", AS_OF, "--run-id", "killed", "--output", "json",
    ];
    let killed = workspace.fengine_with_env(&args, &[("FENGINE_FAIL_AT", "before_register")]);
    assert_ne!(killed.code, 0);
    // The killed attempt's files, plus one it never wrote: a retry must not register it.
    let folder = "warehouse/totals/v1/snapshot_ts=20240302T000000Z/run-killed";
    workspace.write(&format!("{folder}/part-99.parquet"), "not parquet");
    let retried = workspace.fengine(&args).success().json();
    assert_eq!(retried["groups"][0]["already_registered"], false);
    assert_eq!(retried["groups"][0]["rows_written"], 2);
    let files = common::consistency::local_files(&workspace.path(folder));
    assert!(!files.iter().any(|f| f.contains("part-99")), "{files:?}");
    let totals = read_parquet_folder(workspace.path(folder).to_str().unwrap());
    assert_eq!(row_count(&totals), 2);
}

#[test]
fn the_manifest_is_written_where_asked_and_equals_what_is_printed() {
    let workspace = workspace();
    let printed = workspace
        .fengine(&[
            "run",
            "p.sql",
            "--as-of",
            AS_OF,
            "--run-id",
            "m1",
            "--output",
            "json",
            "--manifest",
            "out/runs/m1.json",
        ])
        .success()
        .json();
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(workspace.path("out/runs/m1.json")).unwrap())
            .unwrap();
    assert_eq!(written, printed);
    assert_eq!(written["run_id"], "m1");
    assert!(written.get("job_name").is_none(), "{written}");
    // No partial file is left beside it.
    let names: Vec<_> = std::fs::read_dir(workspace.path("out/runs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["m1.json"]);
}

#[test]
fn a_backfill_takes_the_run_id_and_the_manifest_too() {
    let workspace = workspace();
    let outcome = scheduled(
        &workspace,
        &[
            "backfill",
            "p.sql",
            "--from",
            "2024-03-02T00:00:00Z",
            "--to",
            "2024-03-03T00:00:00Z",
            "--every",
            "1d",
            "--run-id",
            "bf",
            "--manifest",
            "bf.json",
        ],
        &[],
    )
    .success();
    for line in log_lines(&outcome.stderr) {
        assert_eq!(line["run_id"], "bf", "{line}");
    }
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(workspace.path("bf.json")).unwrap()).unwrap();
    assert!(manifest.is_object(), "{manifest}");
    assert_eq!(workspace.partitions("totals_v1").len(), 2);
}

#[rstest::rstest]
#[case::empty("")]
#[case::slash("a/b")]
#[case::dot_first(".hidden")]
#[case::space("a b")]
#[case::too_long(&"x".repeat(129))]
fn a_run_id_that_cannot_name_a_folder_is_refused(#[case] run_id: &str) {
    let workspace = workspace();
    let outcome = workspace.fengine(&["run", "p.sql", "--run-id", run_id]);
    assert_eq!(outcome.code, 2, "{}", outcome.stderr);
    assert!(
        outcome.stderr.contains("may hold 1 to 128 letters"),
        "{}",
        outcome.stderr
    );
    assert!(workspace.partitions("totals_v1").is_empty());
}

#[cfg(feature = "aws")]
mod on_aws {
    use super::*;

    const ACCESS_KEY: &str = "AKIAFENGINELOGTEST42";
    const SECRET_KEY: &str = "fengine+secret/never-in-a-log/0123456789abcdef";
    const SESSION_TOKEN: &str = "fengine-session-token-never-in-a-log";

    fn aws_workspace() -> (Workspace, String) {
        let workspace = workspace();
        let bucket = aws::create_bucket();
        workspace.write(
            "fengine.toml",
            &format!(
                "[profiles.aws]\nwarehouse = 's3://{bucket}/warehouse'\ncatalog = 'glue'\n\
                 glue_database = '{}'\nonline = 'dynamodb'\ndynamodb_table_prefix = '{}_'\n",
                aws::unique_name("logs"),
                aws::unique_name("logs")
            ),
        );
        (workspace, bucket)
    }

    const CREDENTIALS: [(&str, &str); 3] = [
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
        ("AWS_SESSION_TOKEN", SESSION_TOKEN),
    ];

    #[rstest::rstest]
    #[case::default_level(None)]
    #[case::debug(Some("debug"))]
    fn no_credential_appears_in_a_runs_logs(#[case] level: Option<&str>) {
        let (workspace, bucket) = aws_workspace();
        let mut env = CREDENTIALS.to_vec();
        if let Some(level) = level {
            env.push(("FENGINE_LOG", level));
        }
        let manifest = format!("s3://{bucket}/manifests/logs.json");
        let outcome = scheduled(
            &workspace,
            &[
                "run",
                "p.sql",
                "--as-of",
                AS_OF,
                "--profile",
                "aws",
                "--run-id",
                "logs",
                "--manifest",
                &manifest,
            ],
            &env,
        )
        .success();
        let everything = format!("{}{}", outcome.stdout, outcome.stderr);
        for (name, value) in CREDENTIALS {
            assert!(!everything.contains(value), "{name} appears in the output");
        }
        // Nor a presigned URL's signature.
        assert!(!everything.contains("X-Amz-Signature"), "{everything}");
        if level.is_none() {
            for line in log_lines(&outcome.stderr) {
                assert_eq!(line["run_id"], "logs", "{line}");
            }
        }
        let written: serde_json::Value =
            serde_json::from_str(&aws::object_body(&bucket, "manifests/logs.json")).unwrap();
        assert_eq!(written["run_id"], "logs");
        assert_eq!(written["groups"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn a_failing_aws_run_logs_no_credential_either() {
        let (workspace, _) = aws_workspace();
        let mut env = CREDENTIALS.to_vec();
        env.push(("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:1"));
        let outcome = scheduled(
            &workspace,
            &["run", "p.sql", "--as-of", AS_OF, "--profile", "aws"],
            &env,
        );
        assert_eq!(outcome.code, 4, "{}", outcome.stderr);
        let error = log_lines(&outcome.stderr).pop().unwrap();
        assert_eq!(error["retryable"], true);
        let message = error["message"].as_str().unwrap();
        assert!(message.starts_with("DynamoDB DescribeTable: "), "{message}");
        for (name, value) in CREDENTIALS {
            assert!(
                !outcome.stderr.contains(value),
                "{name} appears in the output"
            );
        }
    }
}
