//! Runs that overlap, as schedulers start them: many runs of one as-of at once, runs of two
//! as-ofs at once, and runs killed while loading the online store. Whatever the race, each
//! test ends with the consistency check shared by the fault tests.

mod common;

use std::process::{Child, Command, Stdio};

use common::consistency::{assert_consistent, local_files, local_online, local_partitions};
use common::*;

/// Rows enough that runs overlap; `param('keys')` keys, `param('rows')` rows up to the as-of.
const PIPELINE: &str = "\
CREATE FEATURE GROUP totals KEY (k) EVENT TIME t AS
SELECT k, max(t) AS t, sum(v) AS total, count(*) AS n
FROM (SELECT value % param('keys') AS k, to_timestamp_seconds(1704067200 + value * 10) AS t,
             value AS v
      FROM range(300000))
WHERE t <= as_of() AND v < param('rows')
GROUP BY k;
";

fn workspace() -> Workspace {
    let workspace = Workspace::new();
    workspace.write("p.sql", PIPELINE);
    // A killed run's lease lapses within five seconds.
    workspace.write("fengine.toml", "[profiles.default]\nlease_seconds = 5\n");
    workspace
}

fn run_args(as_of: &str, keys: u32, rows: u32) -> Vec<String> {
    [
        "run",
        "p.sql",
        "--as-of",
        as_of,
        "--param",
        &format!("keys={keys}"),
        "--param",
        &format!("rows={rows}"),
        "--output",
        "json",
    ]
    .map(String::from)
    .to_vec()
}

fn fengine(workspace: &Workspace, args: &[String], env: &[(&str, &str)]) -> Outcome {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    workspace.fengine_with_env(&args, env)
}

fn spawn(workspace: &Workspace, args: &[String]) -> Child {
    Command::new(FENGINE)
        // The exact messages, as a person reads them; the log tests ask for JSON.
        .env("FENGINE_LOG_FORMAT", "text")
        .args(args)
        .current_dir(workspace.path(""))
        .env_remove("FENGINE_PROFILE")
        .env_remove("FENGINE_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Starts every run at once and waits for all: each must succeed.
fn race(workspace: &Workspace, runs: &[Vec<String>]) -> Vec<serde_json::Value> {
    let children: Vec<Child> = runs.iter().map(|args| spawn(workspace, args)).collect();
    children
        .into_iter()
        .map(|child| {
            let output = child.wait_with_output().unwrap();
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(output.status.success(), "a racing run failed: {stderr}");
            serde_json::from_slice(&output.stdout).unwrap()
        })
        .collect()
}

fn assert_workspace_consistent(workspace: &Workspace) {
    assert_consistent(
        &local_partitions(workspace, "totals_v1"),
        &local_files(&workspace.path("warehouse/totals/v1")),
        &local_online(workspace, "totals", 1),
        "k",
        "t",
        read_parquet_folder,
    );
}

#[test]
fn many_runs_of_one_as_of_at_once_leave_one_complete_snapshot() {
    let workspace = workspace();
    for round in 0..2 {
        let runs = vec![run_args("2024-01-20T00:00:00Z", 5000, 200_000); 6];
        let manifests = race(&workspace, &runs);
        let replaced = manifests
            .iter()
            .filter(|m| m["groups"][0]["replaced"] == true)
            .count();
        // Each run waits for the one before it, then replaces its snapshot.
        assert_eq!(replaced, if round == 0 { 5 } else { 6 });
        assert_workspace_consistent(&workspace);
    }
}

#[test]
fn runs_of_two_as_ofs_at_once_leave_the_newer_online() {
    let workspace = workspace();
    for _ in 0..3 {
        // The older as-of has more keys: a mixed store would show them.
        let runs: Vec<Vec<String>> = (0..6)
            .map(|i| match i % 2 {
                0 => run_args("2024-01-10T00:00:00Z", 7000, 300_000),
                _ => run_args("2024-01-20T00:00:00Z", 3000, 300_000),
            })
            .collect();
        race(&workspace, &runs);
        assert_workspace_consistent(&workspace);
        let online = local_online(&workspace, "totals", 1);
        assert_eq!(online.rows.len(), 3000);
    }
}

#[test]
fn a_rerun_with_fewer_keys_removes_the_others_online() {
    let workspace = workspace();
    fengine(&workspace, &run_args("2024-01-20T00:00:00Z", 50, 1000), &[]).success();
    let rerun = fengine(&workspace, &run_args("2024-01-20T00:00:00Z", 10, 1000), &[])
        .success()
        .json();
    assert_eq!(rerun["groups"][0]["online"]["removed"], 40);
    let gone = workspace.fengine(&["get", "totals", "42"]);
    assert_eq!(
        (gone.code, gone.stderr.as_str()),
        (
            1,
            "fengine: feature group 'totals' has no online value for key (42)\n"
        )
    );
    assert_workspace_consistent(&workspace);

    // A snapshot of no rows leaves nothing online.
    let empty = fengine(&workspace, &run_args("2024-01-20T00:00:00Z", 10, 0), &[])
        .success()
        .json();
    assert_eq!(empty["groups"][0]["online"]["removed"], 10);
    assert!(local_online(&workspace, "totals", 1).rows.is_empty());
}

#[test]
fn a_run_killed_while_loading_online_is_completed_by_the_next_run() {
    let workspace = workspace();
    let args = |as_of, keys| run_args(as_of, keys, 300_000);
    fengine(&workspace, &args("2024-01-10T00:00:00Z", 3000), &[]).success();
    let killed = fengine(
        &workspace,
        &args("2024-01-20T00:00:00Z", 5000),
        &[("FENGINE_FAIL_AT", "during_online_load")],
    );
    assert_ne!(killed.code, 0);
    let online = local_online(&workspace, "totals", 1);
    assert!(
        online.loading_run_id.is_some(),
        "the killed load is not recorded"
    );

    // A later run of an older as-of completes the newer registered snapshot's load.
    let manifest = fengine(&workspace, &args("2024-01-15T00:00:00Z", 1000), &[])
        .success()
        .json();
    let loaded = &manifest["groups"][0]["online"];
    assert_eq!(loaded["status"], "loaded");
    assert_eq!(loaded["as_of"], "2024-01-20T00:00:00Z");
    assert_eq!(loaded["completed_unfinished"], true);
    assert_workspace_consistent(&workspace);
    assert_eq!(local_online(&workspace, "totals", 1).rows.len(), 5000);
}

#[test]
fn a_resumed_backfill_completes_the_online_load_it_was_killed_in() {
    let workspace = workspace();
    let backfill = [
        "backfill",
        "p.sql",
        "--from",
        "2024-01-05T00:00:00Z",
        "--to",
        "2024-01-25T00:00:00Z",
        "--every",
        "10d",
        "--param",
        "keys=4000",
        "--param",
        "rows=300000",
        "--output",
        "json",
    ];
    let killed =
        workspace.fengine_with_env(&backfill, &[("FENGINE_FAIL_AT", "during_online_load")]);
    assert_ne!(killed.code, 0);
    let resumed = workspace.fengine(&backfill).success().json();
    assert!(
        resumed["as_ofs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["groups"].as_array().unwrap().is_empty())
    );
    assert_eq!(resumed["online"]["totals"]["status"], "loaded");
    assert_workspace_consistent(&workspace);
    // Once complete, a second resume finds nothing to load.
    let again = workspace.fengine(&backfill).success().json();
    assert_eq!(again["online"]["totals"]["status"], "up_to_date");
}

/// The same races on S3, Glue and DynamoDB (the local server of tests/run.sh).
#[cfg(feature = "aws")]
mod on_aws {
    use super::*;

    struct AwsWorkspace {
        workspace: Workspace,
        bucket: String,
        database: String,
        prefix: String,
    }

    fn aws_workspace() -> AwsWorkspace {
        let bucket = aws::create_bucket();
        let database = aws::unique_name("fengine");
        let prefix = format!("{database}_");
        let workspace = Workspace::new();
        workspace.write("p.sql", PIPELINE);
        workspace.write(
            "fengine.toml",
            &format!(
                "[profiles.default]\nwarehouse = 's3://{bucket}/warehouse'\ncatalog = 'glue'\n\
                 glue_database = '{database}'\nonline = 'dynamodb'\n\
                 dynamodb_table_prefix = '{prefix}'\nlease_seconds = 10\n"
            ),
        );
        AwsWorkspace {
            workspace,
            bucket,
            database,
            prefix,
        }
    }

    async fn assert_aws_consistent(aws: &AwsWorkspace) {
        let (partitions, files, online, rows) =
            aws::registered_state(&aws.bucket, &aws.database, &aws.prefix, "totals", 1).await;
        assert_consistent(&partitions, &files, &online, "k", "t", |location| {
            rows[location].clone()
        });
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn runs_racing_on_aws_leave_one_complete_snapshot_and_the_newest_online() {
        let aws = aws_workspace();
        let same_as_of = vec![run_args("2024-01-20T00:00:00Z", 300, 20_000); 4];
        race(&aws.workspace, &same_as_of);
        assert_aws_consistent(&aws).await;

        let two_as_ofs: Vec<Vec<String>> = (0..4)
            .map(|i| match i % 2 {
                0 => run_args("2024-01-10T00:00:00Z", 500, 20_000),
                _ => run_args("2024-01-25T00:00:00Z", 200, 20_000),
            })
            .collect();
        race(&aws.workspace, &two_as_ofs);
        assert_aws_consistent(&aws).await;

        // A load killed half-way is completed by the next run.
        let killed = fengine(
            &aws.workspace,
            &run_args("2024-02-01T00:00:00Z", 400, 30_000),
            &[("FENGINE_FAIL_AT", "during_online_load")],
        );
        assert_ne!(killed.code, 0);
        let next = fengine(
            &aws.workspace,
            &run_args("2024-01-15T00:00:00Z", 100, 20_000),
            &[],
        )
        .success()
        .json();
        assert_eq!(next["groups"][0]["online"]["as_of"], "2024-02-01T00:00:00Z");
        assert_aws_consistent(&aws).await;
    }
}
