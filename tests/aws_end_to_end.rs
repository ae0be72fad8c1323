//! The example pipeline against the local AWS server: snapshots written to S3, registered in
//! Glue the way Athena reads them. Run by tests/run.sh with `--features aws`.
#![cfg(feature = "aws")]

mod common;

use common::*;

fn aws_workspace() -> (Workspace, String, String) {
    let bucket = aws::create_bucket();
    let database = aws::unique_name("fengine");
    let workspace = Workspace::new();
    workspace.write(
        "fengine.toml",
        &format!(
            "[profiles.aws]\nwarehouse = 's3://{bucket}/warehouse'\ncatalog = 'glue'\n\
             glue_database = '{database}'\nonline = 'sqlite'\nonline_path = 'online.sqlite'\n"
        ),
    );
    (workspace, bucket, database)
}

fn run(workspace: &Workspace, as_of: &str) -> serde_json::Value {
    let pipeline = repo_path("pipelines/customer_spend.sql");
    workspace
        .fengine(&[
            "run",
            pipeline.to_str().unwrap(),
            "--as-of",
            as_of,
            "--profile",
            "aws",
            "--output",
            "json",
        ])
        .success()
        .json()
}

#[tokio::test]
async fn snapshots_land_on_s3_and_in_glue_as_athena_reads_them() {
    use fengine_catalog::Catalog;
    let (workspace, bucket, database) = aws_workspace();
    let manifest = run(&workspace, "2024-04-01T00:00:00Z");
    let group = &manifest["groups"][0];
    let location = group["snapshot_location"].as_str().unwrap();
    assert!(
        location.starts_with(&format!(
            "s3://{bucket}/warehouse/customer_spend/v1/snapshot_ts=20240401T000000Z/run-"
        )),
        "{location}"
    );
    assert_eq!(group["table"], format!("{database}.customer_spend_v1"));

    let glue = fengine_aws::GlueCatalog::new(&aws::context().await);
    let table = glue
        .get_table(&database, "customer_spend_v1")
        .await
        .unwrap()
        .unwrap();
    let columns: Vec<(&str, &str)> = table
        .columns
        .iter()
        .map(|c| (c.name.as_str(), c.data_type.as_str()))
        .collect();
    assert_eq!(
        columns,
        [
            ("customer_id", "bigint"),
            ("event_time", "timestamp"),
            ("spend_7d", "double"),
            ("spend_30d", "double"),
            ("txn_count_30d", "bigint"),
            ("max_amount_30d", "double"),
        ]
    );
    assert_eq!(
        table.columns[2].comment.as_deref(),
        Some("sum of amount, last 7 days")
    );
    assert_eq!(
        table.location,
        format!("s3://{bucket}/warehouse/customer_spend/v1/")
    );
    assert_eq!(table.parameters["fengine.key"], "customer_id");
    let partitions = glue
        .list_partitions(&database, "customer_spend_v1")
        .await
        .unwrap();
    assert_eq!(partitions.len(), 1);
    assert_eq!(partitions[0].values, ["20240401T000000Z"]);
    assert_eq!(partitions[0].location, location);

    let objects = aws::list_objects(&bucket, "warehouse/customer_spend/v1/").await;
    assert!(
        !objects.is_empty()
            && objects
                .iter()
                .all(|o| o.starts_with(location.trim_start_matches(&format!("s3://{bucket}/")))),
        "{objects:?}"
    );
    let rows = aws::read_parquet_objects(&bucket, &objects).await;
    assert_eq!(
        row_count(&rows),
        group["rows_written"].as_u64().unwrap() as usize
    );

    // A rerun of the same as-of replaces the partition and deletes the first run's objects.
    let rerun = run(&workspace, "2024-04-01T00:00:00Z");
    let new_location = rerun["groups"][0]["snapshot_location"].as_str().unwrap();
    let partitions = glue
        .list_partitions(&database, "customer_spend_v1")
        .await
        .unwrap();
    assert_eq!(
        (partitions.len(), partitions[0].location.as_str()),
        (1, new_location)
    );
    let objects = aws::list_objects(&bucket, "warehouse/customer_spend/v1/").await;
    let new_prefix = new_location
        .trim_start_matches(&format!("s3://{bucket}/"))
        .to_string();
    assert!(
        objects.iter().all(|o| o.starts_with(&new_prefix)),
        "{objects:?}"
    );

    let online = workspace
        .fengine(&["get", "customer_spend", "7", "--profile", "aws"])
        .success()
        .json();
    assert_eq!(online["customer_id"], 7);
}
