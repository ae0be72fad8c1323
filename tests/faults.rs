//! Faults told apart by cause, each injected: those that pass exit 4 (a scheduler retries),
//! those that last until someone acts exit 5 (it must not). Each message
//! says the service or file, what failed and what to do, and each run ends with nothing
//! half-published.

mod common;

use std::process::{Command, Stdio};

use common::*;

const EXIT_RETRYABLE: i32 = 4;
const EXIT_PERMANENT: i32 = 5;

const PIPELINE: &str = "\
CREATE EXTERNAL TABLE events (k BIGINT NOT NULL, t TIMESTAMP NOT NULL, v DOUBLE NOT NULL)
STORED AS CSV LOCATION 'events/' OPTIONS ('format.has_header' 'true');
CREATE FEATURE GROUP totals KEY (k) EVENT TIME t AS
SELECT k, max(t) AS t, sum(v) AS total FROM events GROUP BY k;
";

fn workspace() -> Workspace {
    let workspace = Workspace::new();
    workspace.write("p.sql", PIPELINE);
    workspace.write("events/a.csv", "k,t,v\n1,2024-03-01T00:00:00Z,1.5\n");
    workspace.write("events/b.csv", "k,t,v\n2,2024-03-01T00:00:00Z,2.5\n");
    workspace
}

const RUN: [&str; 4] = ["run", "p.sql", "--as-of", "2024-03-02T00:00:00Z"];

#[test]
fn a_source_file_removed_mid_run_is_a_fault_to_retry() {
    let workspace = workspace();
    let run = Command::new(FENGINE)
        // The exact messages, as a person reads them; the log tests ask for JSON.
        .env("FENGINE_LOG_FORMAT", "text")
        .args(RUN)
        .current_dir(workspace.path(""))
        .env("FENGINE_PAUSE_AT", "before_compute")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let marker = workspace.path("fengine-paused-before_compute");
    while !marker.exists() {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::fs::remove_file(workspace.path("events/b.csv")).unwrap();
    std::fs::remove_file(&marker).unwrap();
    let output = run.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(EXIT_RETRYABLE), "{stderr}");
    assert!(stderr.contains("b.csv"), "{stderr}");
    assert!(
        stderr.contains("(a file was removed while the run read it)"),
        "{stderr}"
    );
    assert!(workspace.partitions("totals_v1").is_empty());
    // The retry plans with what is there now.
    workspace.fengine(&RUN).success();
    assert_eq!(workspace.partitions("totals_v1").len(), 1);
}

#[test]
fn a_corrupt_catalog_file_is_a_fault_retrying_cannot_fix() {
    let workspace = workspace();
    workspace.write("warehouse/catalog.sqlite", &"not a database ".repeat(300));
    let before = workspace.files();
    let outcome = workspace.fengine(&RUN);
    assert_eq!(outcome.code, EXIT_PERMANENT, "{}", outcome.stderr);
    assert_eq!(
        outcome.stderr,
        "fengine: the catalog './warehouse/catalog.sqlite': file is not a \
         database (the file is damaged or not fengine's: restore it from a backup, or move it \
         away)\n"
    );
    let after = workspace.files();
    assert_eq!(
        after.get(std::path::Path::new("warehouse/catalog.sqlite")),
        before.get(std::path::Path::new("warehouse/catalog.sqlite"))
    );
}

/// The AWS faults: a service that cannot be reached, one that refuses with a bare 403, a
/// caller it does not know, a bucket that does not exist.
#[cfg(feature = "aws")]
mod on_aws {
    use super::*;
    use fengine_testing::RefusingEndpoint;

    fn profile(workspace: &Workspace, settings: &str) {
        workspace.write("fengine.toml", &format!("[profiles.aws]\n{settings}\n"));
    }

    fn run(workspace: &Workspace, env: &[(&str, &str)]) -> Outcome {
        let mut args = RUN.to_vec();
        args.extend(["--profile", "aws"]);
        workspace.fengine_with_env(&args, env)
    }

    #[test]
    fn an_unreachable_online_store_is_a_fault_to_retry() {
        let workspace = workspace();
        profile(&workspace, "online = 'dynamodb'");
        // Nothing listens on port 1 of loopback.
        let outcome = run(
            &workspace,
            &[("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:1")],
        );
        assert_eq!(outcome.code, EXIT_RETRYABLE, "{}", outcome.stderr);
        assert!(
            outcome
                .stderr
                .starts_with("fengine: DynamoDB DescribeTable: ")
                && outcome
                    .stderr
                    .contains("(the service could not be reached or did not answer; retry)"),
            "{}",
            outcome.stderr
        );
        assert!(
            !outcome.stderr.contains("DispatchFailure"),
            "{}",
            outcome.stderr
        );
        assert!(workspace.partitions("totals_v1").is_empty());
    }

    #[test]
    fn glue_refusing_with_a_bare_403_is_a_fault_retrying_cannot_fix() {
        let workspace = workspace();
        let glue = RefusingEndpoint::start(403, "");
        profile(&workspace, "catalog = 'glue'");
        let outcome = run(
            &workspace,
            &[("AWS_ENDPOINT_URL_GLUE", glue.endpoint.as_str())],
        );
        assert_eq!(outcome.code, EXIT_PERMANENT, "{}", outcome.stderr);
        assert_eq!(
            outcome.stderr,
            "fengine: Glue GetTable: HTTP 403, the response gave no error code \
             or message: check the credentials and that their policy allows this (`fengine plan \
             --iam-policy` prints what a run needs)\n"
        );
    }

    #[test]
    fn a_caller_dynamodb_does_not_know_is_a_fault_retrying_cannot_fix() {
        let workspace = workspace();
        let dynamodb = RefusingEndpoint::start(
            400,
            r#"{"__type":"com.amazon.coral.service#UnrecognizedClientException","message":"The security token included in the request is invalid."}"#,
        );
        profile(&workspace, "online = 'dynamodb'");
        let outcome = run(
            &workspace,
            &[("AWS_ENDPOINT_URL_DYNAMODB", dynamodb.endpoint.as_str())],
        );
        assert_eq!(outcome.code, EXIT_PERMANENT, "{}", outcome.stderr);
        assert!(
            outcome.stderr.starts_with(
                "fengine: DynamoDB DescribeTable: HTTP 400, \
                 UnrecognizedClientException: The security token included in the request is \
                 invalid."
            ),
            "{}",
            outcome.stderr
        );
    }

    #[test]
    fn a_missing_bucket_is_a_fault_retrying_cannot_fix() {
        let workspace = workspace();
        let bucket = aws::unique_name("missing").replace('_', "-");
        profile(
            &workspace,
            &format!(
                "warehouse = 's3://{bucket}/warehouse'\ncatalog_path = 'catalog.sqlite'\nonline_path = 'online.sqlite'"
            ),
        );
        let outcome = run(&workspace, &[]);
        assert_eq!(outcome.code, EXIT_PERMANENT, "{}", outcome.stderr);
        assert!(
            outcome.stderr.contains("NoSuchBucket"),
            "{}",
            outcome.stderr
        );
    }
}

/// Runs `args` paused at `point`, sends `signal` there, lets it go on: its outcome.
fn signalled_at(workspace: &Workspace, args: &[&str], point: &str, signal: &str) -> Outcome {
    let run = Command::new(FENGINE)
        // The exact messages, as a person reads them; the log tests ask for JSON.
        .env("FENGINE_LOG_FORMAT", "text")
        .args(args)
        .current_dir(workspace.path(""))
        .env("FENGINE_PAUSE_AT", point)
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let marker = workspace.path(&format!("fengine-paused-{point}"));
    while !marker.exists() {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let started = std::time::Instant::now();
    let sent = Command::new("kill")
        .args([&format!("-{signal}"), &run.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let output = run.wait_with_output().unwrap();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    let _ = std::fs::remove_file(&marker);
    Outcome {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

#[rstest::rstest]
#[case::sigterm("TERM", "SIGTERM")]
#[case::sigint("INT", "SIGINT")]
fn a_signal_while_computing_stops_the_run_publishing_nothing(
    #[case] signal: &str,
    #[case] name: &str,
) {
    let workspace = workspace();
    let outcome = signalled_at(&workspace, &RUN, "before_compute", signal);
    assert_eq!(outcome.code, EXIT_RETRYABLE, "{}", outcome.stderr);
    assert_eq!(
        outcome.stderr,
        format!(
            "fengine: {name}: stopping at the next safe point (a second signal stops at once)\n\
             fengine: stopped by {name}: nothing more was published\n"
        )
    );
    assert!(workspace.partitions("totals_v1").is_empty());
    let snapshots = common::consistency::local_files(&workspace.path("warehouse/totals"));
    assert!(snapshots.is_empty(), "files left: {snapshots:?}");
    // The lease was released: the next run does not wait for it to lapse.
    let started = std::time::Instant::now();
    workspace.fengine(&RUN).success();
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
}

#[test]
fn sigterm_during_the_online_load_leaves_it_for_the_next_run_to_complete() {
    let workspace = workspace();
    let outcome = signalled_at(&workspace, &RUN, "during_online_load", "TERM");
    assert_eq!(outcome.code, EXIT_RETRYABLE, "{}", outcome.stderr);
    assert!(
        outcome.stderr.contains(
            "snapshot 20240302T000000Z is registered, but the online store was not brought up to \
             date: stopped by SIGTERM: nothing more was published"
        ),
        "{}",
        outcome.stderr
    );
    assert_eq!(workspace.partitions("totals_v1").len(), 1);
    let next = workspace
        .fengine(&[
            "run",
            "p.sql",
            "--as-of",
            "2024-03-01T00:00:00Z",
            "--output",
            "json",
        ])
        .success()
        .json();
    assert_eq!(next["groups"][0]["online"]["as_of"], "2024-03-02T00:00:00Z");
    common::consistency::assert_consistent(
        &common::consistency::local_partitions(&workspace, "totals_v1"),
        &common::consistency::local_files(&workspace.path("warehouse/totals/v1")),
        &common::consistency::local_online(&workspace, "totals", 1),
        "k",
        "t",
        read_parquet_folder,
    );
}
