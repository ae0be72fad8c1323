//! deploy/ as the tests can check it without an AWS account: the CloudFormation template
//! linted by cfn-lint and its task role equal to what `fengine plan --iam-policy` prints
//! for the example pipeline, the state machine linted by statelint and walked through each
//! exit code, and the SageMaker Processing job definition valid against botocore's model.
//! The checks are Python's (tests/deploy_checks.py, with the tools tests/run.sh installs);
//! the IAM case runs `fengine plan` against the local AWS server.
#![cfg(feature = "aws")]

mod common;

use std::process::Command;

use common::*;

fn check(args: &[&str]) {
    let done = Command::new("python3")
        .arg(repo_path("tests/deploy_checks.py"))
        .args(args)
        .output()
        .expect("python3 runs");
    assert!(
        done.status.success(),
        "deploy check {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&done.stdout),
        String::from_utf8_lossy(&done.stderr)
    );
}

#[test]
fn the_template_and_the_state_machine_pass_their_linters() {
    check(&["lint"]);
}

#[test]
fn the_processing_job_is_a_valid_create_processing_job_request() {
    check(&["processing-job"]);
}

#[test]
fn each_exit_code_takes_its_branch_of_the_state_machine() {
    check(&["walk"]);
}

#[test]
fn the_task_role_grants_what_plan_iam_policy_prints() {
    let bucket = aws::unique_name("fengine").replace('_', "-");
    let database = aws::unique_name("features");
    let prefix = "fs_";
    let account = "123456789012";
    let region = "us-east-1";
    let key = format!("arn:aws:kms:{region}:{account}:key/1234abcd-12ab-34cd-56ef-1234567890ab");
    let workspace = Workspace::new();
    workspace.write(
        "fengine.toml",
        &format!(
            "[profiles.prod]\nwarehouse = 's3://{bucket}/warehouse'\ncatalog = 'glue'\n\
             glue_database = '{database}'\nonline = 'dynamodb'\ndynamodb_table_prefix = '{prefix}'\n\
             aws_account_id = '{account}'\ns3_sse_kms_key_id = '{key}'\n"
        ),
    );
    let pipeline = repo_path("pipelines/customer_spend.sql");
    let policy = workspace
        .fengine_with_env(
            &[
                "plan",
                pipeline.to_str().unwrap(),
                "--profile",
                "prod",
                "--iam-policy",
            ],
            &[("AWS_REGION", region)],
        )
        .success();
    let policy_file = workspace.write("policy.json", &policy.stdout);
    let values = serde_json::json!({
        "BucketName": bucket,
        "GlueDatabaseName": database,
        "DynamoDbTablePrefix": prefix,
        "AWS::AccountId": account,
        "AWS::Region": region,
        "FeatureStoreKey.Arn": key,
    });
    let values_file = workspace.write("values.json", &values.to_string());
    check(&[
        "iam",
        policy_file.to_str().unwrap(),
        values_file.to_str().unwrap(),
    ]);
}
