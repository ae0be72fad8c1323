//! The example pipeline against the local AWS server: snapshots written to S3, registered in
//! Glue the way Athena reads them, latest values in DynamoDB. Run by tests/run.sh with
//! `--features aws`.
#![cfg(feature = "aws")]

mod common;

use common::*;

/// A workspace whose `aws` profile uses a bucket, a Glue database and a DynamoDB table
/// prefix of its own; returns them too.
fn aws_workspace() -> (Workspace, String, String, String) {
    let bucket = aws::create_bucket();
    let database = aws::unique_name("fengine");
    let prefix = format!("{database}_");
    let workspace = Workspace::new();
    workspace.write(
        "fengine.toml",
        &format!(
            "[profiles.aws]\nwarehouse = 's3://{bucket}/warehouse'\ncatalog = 'glue'\n\
             glue_database = '{database}'\nonline = 'dynamodb'\ndynamodb_table_prefix = '{prefix}'\n"
        ),
    );
    (workspace, bucket, database, prefix)
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
    let (workspace, bucket, database, prefix) = aws_workspace();
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

    // The run's files, and the snapshot's statistics file beside them.
    let objects = aws::list_objects(&bucket, "warehouse/customer_spend/v1/").await;
    let statistics_file = &partitions[0].parameters["fengine.statistics_file"];
    let (statistics, snapshot): (Vec<String>, Vec<String>) = objects
        .iter()
        .cloned()
        .partition(|o| *statistics_file == format!("s3://{bucket}/{o}"));
    assert_eq!(statistics.len(), 1, "{statistics_file} in {objects:?}");
    assert!(
        !snapshot.is_empty()
            && snapshot
                .iter()
                .all(|o| o.starts_with(location.trim_start_matches(&format!("s3://{bucket}/")))),
        "{objects:?}"
    );
    let rows = aws::read_parquet_objects(&bucket, &snapshot).await;
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
    let new_statistics_file = &partitions[0].parameters["fengine.statistics_file"];
    assert_ne!(new_statistics_file, statistics_file);
    assert!(
        objects
            .iter()
            .all(|o| o.starts_with(&new_prefix)
                || *new_statistics_file == format!("s3://{bucket}/{o}")),
        "{objects:?}"
    );

    // The online values, read with DynamoDB's own API, then through `fengine get`.
    use fengine_aws::sdk::dynamodb::types::AttributeValue;
    let spend = snapshot_spend(&bucket).await;
    let dynamodb = fengine_aws::sdk::dynamodb::Client::new(aws::context().await.sdk_config());
    let composite = dynamodb
        .get_item()
        .table_name(format!("{prefix}customer_category_spend_v1"))
        .key("fengine_key", AttributeValue::S("7#grocery".into()))
        .send()
        .await
        .unwrap();
    let item = composite.item().expect("customer 7 bought groceries");
    assert_eq!(item["category"].as_s().unwrap(), "grocery");
    assert_eq!(item["event_time"].as_n().unwrap(), "1711929600");
    for (customer, spend_30d) in spend.iter().take(5) {
        let output = dynamodb
            .get_item()
            .table_name(format!("{prefix}customer_spend_v1"))
            .key("customer_id", AttributeValue::N(customer.to_string()))
            .send()
            .await
            .unwrap();
        let item = output.item().unwrap();
        let stored: f64 = item["spend_30d"].as_n().unwrap().parse().unwrap();
        assert_close(stored, *spend_30d, "spend_30d in DynamoDB");
    }
    let (customer, spend_30d) = spend.iter().next().unwrap();
    let online = workspace
        .fengine(&[
            "get",
            "customer_spend",
            &customer.to_string(),
            "--profile",
            "aws",
        ])
        .success()
        .json();
    assert_eq!(online["customer_id"], *customer);
    assert_eq!(online["event_time"], "2024-04-01T00:00:00Z");
    assert_close(
        online["spend_30d"].as_f64().unwrap(),
        *spend_30d,
        "spend_30d from get",
    );
    let keys: Vec<&String> = online.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "customer_id",
            "event_time",
            "spend_7d",
            "spend_30d",
            "txn_count_30d",
            "max_amount_30d"
        ]
    );
}

#[test]
fn plan_prints_the_least_privilege_iam_policy() {
    let (workspace, bucket, database, prefix) = aws_workspace();
    let config = std::fs::read_to_string(workspace.path("fengine.toml")).unwrap();
    workspace.write(
        "fengine.toml",
        &format!("{config}aws_account_id = '123456789012'\ns3_sse_kms_key_id = 'k1'\n"),
    );
    let pipeline = repo_path("pipelines/customer_spend.sql");
    let policy = workspace
        .fengine(&[
            "plan",
            pipeline.to_str().unwrap(),
            "--profile",
            "aws",
            "--iam-policy",
        ])
        .success()
        .json();
    let resources = |sid: &str| -> Vec<String> {
        let statement = policy["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["Sid"] == sid)
            .unwrap();
        statement["Resource"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        resources("WriteSnapshots"),
        [
            format!("arn:aws:s3:::{bucket}/warehouse/customer_spend/v1/*"),
            format!("arn:aws:s3:::{bucket}/warehouse/customer_category_spend/v1/*"),
            format!("arn:aws:s3:::{bucket}/warehouse/_fengine/leases/customer_spend/v1/*"),
            format!("arn:aws:s3:::{bucket}/warehouse/_fengine/leases/customer_category_spend/v1/*"),
            format!("arn:aws:s3:::{bucket}/warehouse/_fengine/catalogue/*"),
        ]
    );
    let glue = "arn:aws:glue:us-east-1:123456789012";
    assert_eq!(
        resources("RegisterSnapshots"),
        [
            format!("{glue}:catalog"),
            format!("{glue}:database/{database}"),
            format!("{glue}:table/{database}/customer_spend_v1"),
            format!("{glue}:table/{database}/customer_category_spend_v1"),
            format!("{glue}:table/{database}/fengine_history"),
            format!("{glue}:table/{database}/fengine_lineage"),
            format!("{glue}:table/{database}/fengine_models"),
            format!("{glue}:table/{database}/fengine_encoders"),
        ]
    );
    let dynamodb = "arn:aws:dynamodb:us-east-1:123456789012:table";
    assert_eq!(
        resources("LoadOnlineStore"),
        [
            format!("{dynamodb}/{prefix}customer_spend_v1"),
            format!("{dynamodb}/{prefix}customer_category_spend_v1"),
            format!("{dynamodb}/{prefix}fengine_online_tables"),
        ]
    );
    assert_eq!(
        resources("EncryptSnapshots"),
        ["arn:aws:kms:us-east-1:123456789012:key/k1"]
    );
    // The example's source is a local folder: no S3 read access is granted.
    assert!(
        policy["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["Sid"] != "ReadSources")
    );
}

#[tokio::test]
async fn snapshots_are_uploaded_in_parts_and_encrypted_with_the_profile_kms_key() {
    let (workspace, bucket, _, _) = aws_workspace();
    let config = std::fs::read_to_string(workspace.path("fengine.toml")).unwrap();
    workspace.write(
        "fengine.toml",
        &format!("{config}s3_sse_kms_key_id = 'fengine-test-key'\n"),
    );
    let pipeline = repo_path("pipelines/customer_spend.sql");
    // A 1 KiB buffer makes every snapshot file a multipart upload (tests/run.sh lets moto
    // take parts that small).
    workspace.write(
        "small_parts.sql",
        &format!(
            "SET datafusion.execution.objectstore_writer_buffer_size = 1024;\nINCLUDE '{}';",
            pipeline.display()
        ),
    );
    let manifest = workspace
        .fengine(&[
            "run",
            "small_parts.sql",
            "--as-of",
            "2024-04-01T00:00:00Z",
            "--profile",
            "aws",
            "--output",
            "json",
        ])
        .success()
        .json();
    let objects = aws::list_object_etags(&bucket, "warehouse/customer_spend/v1/").await;
    assert!(!objects.is_empty());
    for (key, etag) in &objects {
        assert!(
            etag.contains('-'),
            "{key} was not uploaded in parts (ETag {etag})"
        );
    }
    let keys: Vec<String> = objects
        .into_iter()
        .map(|(key, _)| key)
        .filter(|key| !key.contains("/_statistics/"))
        .collect();
    let rows = aws::read_parquet_objects(&bucket, &keys).await;
    assert_eq!(
        row_count(&rows),
        manifest["groups"][0]["rows_written"].as_u64().unwrap() as usize
    );
}

/// Every example pipeline under the profile committed in tests/local-aws.toml gives, on S3,
/// the same snapshot rows as on the embedded defaults (which tests/examples.rs checks
/// against nested-loop references), and serves the same online rows.
#[tokio::test]
async fn every_example_runs_on_the_committed_local_aws_profile() {
    aws::create_named_bucket("fengine-examples");
    let config = repo_path("tests/local-aws.toml");
    let examples = [
        ("customer_spend.sql", vec![]),
        (
            "transaction_velocity.sql",
            vec!["--param", "large_amount=150"],
        ),
    ];
    for (file, extra) in examples {
        let pipeline = repo_path(&format!("pipelines/{file}"));
        let embedded = Workspace::new();
        let on_aws = Workspace::new();
        let mut args = vec![
            "run",
            pipeline.to_str().unwrap(),
            "--as-of",
            "2024-04-01T00:00:00Z",
            "--output",
            "json",
        ];
        args.extend(extra);
        let local = embedded.fengine(&args).success().json();
        let mut aws_args = args.clone();
        aws_args.extend([
            "--config",
            config.to_str().unwrap(),
            "--profile",
            "local-aws",
        ]);
        let remote = on_aws.fengine(&aws_args).success().json();
        for (local_group, remote_group) in local["groups"]
            .as_array()
            .unwrap()
            .iter()
            .zip(remote["groups"].as_array().unwrap())
        {
            assert_eq!(
                local_group["rows_written"], remote_group["rows_written"],
                "{file}"
            );
            assert_eq!(
                remote_group["table"],
                format!(
                    "fengine_examples.{}_v1",
                    local_group["group"].as_str().unwrap()
                )
            );
            let location = remote_group["snapshot_location"].as_str().unwrap();
            let prefix = location.trim_start_matches("s3://fengine-examples/");
            let remote_rows = aws::read_parquet_objects(
                "fengine-examples",
                &aws::list_objects("fengine-examples", prefix).await,
            )
            .await;
            let local_rows =
                read_parquet_folder(local_group["snapshot_location"].as_str().unwrap());
            let what = format!("{file}: {}", local_group["group"]);
            assert_same_rows(&remote_rows, &local_rows, &what);
        }
        let group = local["groups"][0]["group"].as_str().unwrap();
        let embedded_row = embedded.fengine(&["get", group, "7"]).success().json();
        let remote_row = on_aws
            .fengine(&[
                "get",
                group,
                "7",
                "--config",
                config.to_str().unwrap(),
                "--profile",
                "local-aws",
            ])
            .success()
            .json();
        // Same columns in the same order, numbers equal as numbers (DynamoDB writes 5.0 as 5).
        let (embedded_row, remote_row) = (
            embedded_row.as_object().unwrap(),
            remote_row.as_object().unwrap(),
        );
        assert_eq!(
            embedded_row.keys().collect::<Vec<_>>(),
            remote_row.keys().collect::<Vec<_>>(),
            "{file}"
        );
        for (column, value) in embedded_row {
            match (value.as_f64(), remote_row[column].as_f64()) {
                (Some(a), Some(b)) => assert_eq!(a, b, "{file}: {column}"),
                _ => assert_eq!(value, &remote_row[column], "{file}: {column}"),
            }
        }
    }
}

/// The same rows whatever their file and row order; floats equal to 1e-12, since sums are
/// added up in whatever order the batches come.
fn assert_same_rows(
    actual: &[arrow::array::RecordBatch],
    expected: &[arrow::array::RecordBatch],
    what: &str,
) {
    let (actual, expected) = (sorted_rows(actual), sorted_rows(expected));
    assert_eq!(actual.len(), expected.len(), "{what}: row count");
    for (a, e) in actual.iter().zip(&expected) {
        let same = a.len() == e.len()
            && a.iter()
                .zip(e)
                .all(|(x, y)| match (x.parse::<f64>(), y.parse::<f64>()) {
                    (Ok(x), Ok(y)) => (x - y).abs() <= 1e-12 * y.abs().max(1.0),
                    _ => x == y,
                });
        assert!(same, "{what}: {a:?} != {e:?}");
    }
}

/// Each row's values as text, rows sorted.
fn sorted_rows(batches: &[arrow::array::RecordBatch]) -> Vec<Vec<String>> {
    let mut rows: Vec<Vec<String>> = Vec::new();
    for batch in batches {
        for row in 0..batch.num_rows() {
            rows.push(
                batch
                    .columns()
                    .iter()
                    .map(|c| arrow::util::display::array_value_to_string(c, row).unwrap())
                    .collect(),
            );
        }
    }
    rows.sort();
    rows
}

/// `labels`: the Parquet objects under s3://<bucket>/spines/ as a Glue table.
async fn register_spine_table(bucket: &str, database: &str) {
    use fengine_aws::sdk::glue::types::TableInput;
    let descriptor = parquet_descriptor(
        &[("customer_id", "bigint"), ("label_time", "timestamp")],
        format!("s3://{bucket}/spines/"),
    );
    fengine_aws::sdk::glue::Client::new(aws::context().await.sdk_config())
        .create_table()
        .database_name(database)
        .table_input(
            TableInput::builder()
                .name("labels")
                .table_type("EXTERNAL_TABLE")
                .storage_descriptor(descriptor)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
}

/// customer -> spend_30d, read from the snapshot's objects in S3.
async fn snapshot_spend(bucket: &str) -> std::collections::BTreeMap<i64, f64> {
    spend_30d(bucket, "warehouse/customer_spend/v1/").await
}

/// customer -> spend_30d of the customer_spend snapshot objects under `prefix` (not their
/// statistics).
async fn spend_30d(bucket: &str, prefix: &str) -> std::collections::BTreeMap<i64, f64> {
    use arrow::datatypes::{Float64Type, Int64Type};
    let mut objects = aws::list_objects(bucket, prefix).await;
    objects.retain(|o| !o.contains("/_statistics/"));
    let batches = aws::read_parquet_objects(bucket, &objects).await;
    let customers = column::<Int64Type>(&batches, "customer_id");
    let spend = column::<Float64Type>(&batches, "spend_30d");
    customers
        .into_iter()
        .zip(spend)
        .map(|(c, s)| (c.unwrap(), s.unwrap()))
        .collect()
}

/// The sample transactions as a Glue table partitioned by category, one Parquet object per
/// category, the 'travel' partition away from the table's folder, and a partition 'missing'
/// on a store no scan can reach, which a query selecting other categories must not read.
async fn register_partitioned_transactions(bucket: &str, database: &str) {
    use arrow::array::{AsArray, BooleanArray};
    use fengine_aws::sdk::glue::types::{PartitionInput, TableInput};
    let batches = read_parquet_folder(repo_path("pipelines/data/transactions").to_str().unwrap());
    let glue = fengine_aws::sdk::glue::Client::new(aws::context().await.sdk_config());
    let descriptor = |location: String| {
        let columns = [
            ("customer_id", "bigint"),
            ("merchant_id", "bigint"),
            ("amount", "double"),
            ("event_time", "timestamp"),
        ];
        parquet_descriptor(&columns, location)
    };
    create_database(&glue, database).await;
    glue.create_table()
        .database_name(database)
        .table_input(
            TableInput::builder()
                .name("transactions")
                .table_type("EXTERNAL_TABLE")
                .partition_keys(glue_column("category", "string"))
                .storage_descriptor(descriptor(format!("s3://{bucket}/raw/transactions/")))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let categories = [
        "apparel",
        "dining",
        "electronics",
        "fuel",
        "grocery",
        "online",
        "pharmacy",
        "travel",
    ];
    for category in categories {
        let mut file = Vec::new();
        let data_schema = std::sync::Arc::new(batches[0].schema().project(&[0, 1, 2, 4]).unwrap());
        let mut writer =
            parquet::arrow::ArrowWriter::try_new(&mut file, data_schema, None).unwrap();
        for batch in &batches {
            let mask: BooleanArray = batch
                .column_by_name("category")
                .unwrap()
                .as_string::<i32>()
                .iter()
                .map(|c| Some(c == Some(category)))
                .collect();
            let rows = arrow::compute::filter_record_batch(batch, &mask).unwrap();
            writer.write(&rows.project(&[0, 1, 2, 4]).unwrap()).unwrap();
        }
        writer.close().unwrap();
        let folder = if category == "travel" {
            "raw/elsewhere/travel".to_string()
        } else {
            format!("raw/transactions/category={category}")
        };
        aws::put_object(bucket, &format!("{folder}/part-0.parquet"), file).await;
        glue.create_partition()
            .database_name(database)
            .table_name("transactions")
            .partition_input(
                PartitionInput::builder()
                    .values(category)
                    .storage_descriptor(descriptor(format!("s3://{bucket}/{folder}/")))
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_partitioned_glue_table_is_a_source() {
    use arrow::datatypes::{Float64Type, Int64Type};
    let (workspace, bucket, database, _) = aws_workspace();
    register_partitioned_transactions(&bucket, &database).await;
    workspace.write(
        "travel.sql",
        &format!(
            "CREATE FEATURE GROUP category_spend KEY (customer_id, category) EVENT TIME event_time AS
             SELECT customer_id, category, as_of() AS event_time, sum(amount) AS spend, count(*) AS n
             FROM glue.{database}.transactions
             WHERE category IN ('travel', 'grocery')
               AND event_time <= as_of() AND event_time > as_of() - INTERVAL '30 days'
             GROUP BY customer_id, category;"
        ),
    );
    let manifest = workspace
        .fengine(&[
            "run",
            "travel.sql",
            "--as-of",
            "2024-04-01T00:00:00Z",
            "--profile",
            "aws",
            "--output",
            "json",
        ])
        .success()
        .json();

    let as_of = micros("2024-04-01T00:00:00Z");
    let mut expected: std::collections::BTreeMap<(i64, String), (f64, i64)> = Default::default();
    for t in sample_transactions() {
        let recent = t.event_time_us <= as_of && t.event_time_us > as_of - 30 * 86_400_000_000;
        if recent && (t.category == "travel" || t.category == "grocery") {
            let entry = expected
                .entry((t.customer_id, t.category.clone()))
                .or_default();
            entry.0 += t.amount;
            entry.1 += 1;
        }
    }
    let group = &manifest["groups"][0];
    assert_eq!(group["rows_written"], expected.len());
    let location = group["snapshot_location"].as_str().unwrap();
    let prefix = location.trim_start_matches(&format!("s3://{bucket}/"));
    let objects = aws::list_objects(&bucket, prefix).await;
    let batches = aws::read_parquet_objects(&bucket, &objects).await;
    let customers = column::<Int64Type>(&batches, "customer_id");
    let categories = strings(&batches, "category");
    let spend = column::<Float64Type>(&batches, "spend");
    let counts = column::<Int64Type>(&batches, "n");
    assert_eq!(customers.len(), expected.len());
    assert!(
        categories.iter().any(|c| c.as_deref() == Some("travel")),
        "the partition outside the table's folder is read"
    );
    for i in 0..customers.len() {
        let key = (customers[i].unwrap(), categories[i].clone().unwrap());
        let (amount, n) = expected[&key];
        assert_close(spend[i].unwrap(), amount, &format!("spend of {key:?}"));
        assert_eq!(counts[i], Some(n), "count of {key:?}");
    }
}

/// A CSV table of the Glue catalog (Hive's LazySimpleSerDe, a header line to skip) is a source
/// too: a hand-checked fixture.
#[tokio::test]
async fn a_csv_glue_table_is_a_source() {
    use arrow::datatypes::{Float64Type, Int64Type};
    use fengine_aws::sdk::glue::types::{SerDeInfo, StorageDescriptor, TableInput};
    let (workspace, bucket, database, _) = aws_workspace();
    let csv = "customer_id,amount,event_time\n1,10.5,2024-03-01 10:00:00\n1,4.5,2024-03-02 11:00:00\n2,7.0,2024-03-03 12:00:00\n";
    aws::put_object(
        &bucket,
        "raw/payments/payments.csv",
        csv.as_bytes().to_vec(),
    )
    .await;
    let glue = fengine_aws::sdk::glue::Client::new(aws::context().await.sdk_config());
    create_database(&glue, &database).await;
    glue.create_table()
        .database_name(&database)
        .table_input(
            TableInput::builder()
                .name("payments")
                .table_type("EXTERNAL_TABLE")
                .parameters("skip.header.line.count", "1")
                .storage_descriptor(
                    StorageDescriptor::builder()
                        .set_columns(Some(glue_columns(&[
                            ("customer_id", "bigint"),
                            ("amount", "double"),
                            ("event_time", "timestamp"),
                        ])))
                        .location(format!("s3://{bucket}/raw/payments/"))
                        .input_format("org.apache.hadoop.mapred.TextInputFormat")
                        .serde_info(
                            SerDeInfo::builder()
                                .serialization_library(
                                    "org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe",
                                )
                                .parameters("field.delim", ",")
                                .build(),
                        )
                        .build(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    workspace.write(
        "totals.sql",
        &format!(
            "CREATE FEATURE GROUP totals KEY (customer_id) EVENT TIME event_time AS
             SELECT customer_id, max(event_time) AS event_time, sum(amount) AS total
             FROM glue.{database}.payments GROUP BY customer_id;"
        ),
    );
    let manifest = workspace
        .fengine(&[
            "run",
            "totals.sql",
            "--as-of",
            "2024-04-01T00:00:00Z",
            "--profile",
            "aws",
            "--output",
            "json",
        ])
        .success()
        .json();
    let location = manifest["groups"][0]["snapshot_location"].as_str().unwrap();
    let prefix = location.trim_start_matches(&format!("s3://{bucket}/"));
    let batches =
        aws::read_parquet_objects(&bucket, &aws::list_objects(&bucket, prefix).await).await;
    let ids = column::<Int64Type>(&batches, "customer_id");
    let totals = column::<Float64Type>(&batches, "total");
    let times = column::<Int64Type>(&batches, "event_time");
    let mut rows: Vec<(i64, f64, i64)> = (0..ids.len())
        .map(|i| (ids[i].unwrap(), totals[i].unwrap(), times[i].unwrap()))
        .collect();
    rows.sort_by_key(|r| r.0);
    assert_eq!(
        rows,
        [
            (1, 15.0, micros("2024-03-02T11:00:00Z")),
            (2, 7.0, micros("2024-03-03T12:00:00Z"))
        ]
    );
}

#[tokio::test]
async fn training_sets_read_and_write_s3_and_register_in_glue() {
    use std::sync::Arc;

    use arrow::array::{Int64Array, RecordBatch, TimestampMicrosecondArray};
    use arrow::datatypes::{Float64Type, Int64Type};
    use fengine_catalog::Catalog;

    let (workspace, bucket, database, _) = aws_workspace();
    let march = run(&workspace, "2024-03-01T00:00:00Z");
    let april = run(&workspace, "2024-04-01T00:00:00Z");
    let spend_at = |manifest: &serde_json::Value| {
        let location = manifest["groups"][0]["snapshot_location"].as_str().unwrap();
        location
            .trim_start_matches(&format!("s3://{bucket}/"))
            .to_string()
    };
    let (march_prefix, april_prefix) = (spend_at(&march), spend_at(&april));

    let spine: Vec<(i64, &str)> = vec![
        (7, "2024-03-15T00:00:00Z"),
        (13, "2024-03-15T00:00:00Z"),
        (7, "2024-04-02T00:00:00Z"),
        (99_999, "2024-04-02T00:00:00Z"),
        (7, "2024-02-01T00:00:00Z"),
    ];
    let batch = RecordBatch::try_from_iter([
        (
            "customer_id",
            Arc::new(Int64Array::from_iter_values(spine.iter().map(|s| s.0))) as _,
        ),
        (
            "label_time",
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(spine.iter().map(|s| micros(s.1)))
                    .with_timezone("UTC"),
            ) as _,
        ),
    ])
    .unwrap();
    let mut file = Vec::new();
    let mut writer = parquet::arrow::ArrowWriter::try_new(&mut file, batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    aws::put_object(&bucket, "spines/labels.parquet", file).await;

    let manifest = workspace
        .fengine(&[
            "training-set",
            "--spine",
            &format!("s3://{bucket}/spines/labels.parquet"),
            "--timestamp",
            "label_time",
            "--features",
            "customer_spend.spend_30d",
            "--out",
            &format!("s3://{bucket}/sets/fraud"),
            "--register",
            "fraud_set",
            "--profile",
            "aws",
            "--output",
            "json",
        ])
        .success()
        .json();
    assert_eq!(manifest["rows"], 5);
    assert_eq!(manifest["groups"][0]["matched_rows"], 3);

    // The snapshots' own values, read from S3 with the parquet crate.
    let (in_march, in_april) = (
        spend_30d(&bucket, &march_prefix).await,
        spend_30d(&bucket, &april_prefix).await,
    );
    let objects = aws::list_objects(&bucket, "sets/fraud/").await;
    assert_eq!(objects, ["sets/fraud/part-00000.parquet"]);
    let rows = aws::read_parquet_objects(&bucket, &objects).await;
    let customers = column::<Int64Type>(&rows, "customer_id");
    let values = column::<Float64Type>(&rows, "spend_30d");
    assert_eq!(
        customers,
        spine.iter().map(|s| Some(s.0)).collect::<Vec<_>>(),
        "spine order"
    );
    assert_eq!(
        values,
        [
            Some(in_march[&7]),
            Some(in_march[&13]),
            Some(in_april[&7]),
            None,
            None
        ]
    );

    // The same spine as a table of the Glue Data Catalog.
    register_spine_table(&bucket, &database).await;
    let from_glue = workspace
        .fengine(&[
            "training-set",
            "--spine",
            &format!("glue.{database}.labels"),
            "--timestamp",
            "label_time",
            "--features",
            "customer_spend.spend_30d",
            "--out",
            "from-glue.parquet",
            "--profile",
            "aws",
        ])
        .success();
    assert!(
        from_glue.stdout.starts_with("5 rows"),
        "{}",
        from_glue.stdout
    );
    let rows = read_parquet_file(&workspace.path("from-glue.parquet"));
    assert_eq!(column::<Float64Type>(&rows, "spend_30d"), values);

    let glue = fengine_aws::GlueCatalog::new(&aws::context().await);
    let table = glue
        .get_table(&database, "fraud_set")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(table.location, format!("s3://{bucket}/sets/fraud/"));
    assert_eq!(table.parameters["fengine.kind"], "training_set");
    let partitions = glue.list_partitions(&database, "fraud_set").await.unwrap();
    assert_eq!(partitions.len(), 1);
    assert!(
        partitions[0].parameters["fengine.groups"].contains("\"customer_spend\""),
        "{:?}",
        partitions[0].parameters
    );
}

fn glue_column(name: &str, data_type: &str) -> fengine_aws::sdk::glue::types::Column {
    fengine_aws::sdk::glue::types::Column::builder()
        .name(name)
        .r#type(data_type)
        .build()
        .unwrap()
}

fn glue_columns(columns: &[(&str, &str)]) -> Vec<fengine_aws::sdk::glue::types::Column> {
    columns
        .iter()
        .map(|(name, data_type)| glue_column(name, data_type))
        .collect()
}

/// Parquet files at `location`, described as Athena's `STORED AS PARQUET` describes them.
fn parquet_descriptor(
    columns: &[(&str, &str)],
    location: String,
) -> fengine_aws::sdk::glue::types::StorageDescriptor {
    use fengine_aws::sdk::glue::types::{SerDeInfo, StorageDescriptor};
    StorageDescriptor::builder()
        .set_columns(Some(glue_columns(columns)))
        .location(location)
        .input_format("org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat")
        .serde_info(
            SerDeInfo::builder()
                .serialization_library(
                    "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe",
                )
                .build(),
        )
        .build()
}

async fn create_database(glue: &fengine_aws::sdk::glue::Client, name: &str) {
    use fengine_aws::sdk::glue::types::DatabaseInput;
    glue.create_database()
        .database_input(DatabaseInput::builder().name(name).build().unwrap())
        .send()
        .await
        .unwrap();
}

/// What DynamoDB cannot take is found before the Glue partition is registered: a table of
/// the group version's name keyed otherwise, and a row over DynamoDB's 400 KB.
#[tokio::test]
async fn what_dynamodb_refuses_is_found_before_anything_is_registered() {
    let (workspace, _bucket, database, prefix) = aws_workspace();
    let dynamodb = fengine_aws::sdk::dynamodb::Client::new(aws::context().await.sdk_config());
    use fengine_aws::sdk::dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    dynamodb
        .create_table()
        .table_name(format!("{prefix}wide_v1"))
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("id")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("id")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let pipeline = |size: usize| {
        format!(
            "CREATE FEATURE GROUP wide KEY (id) EVENT TIME t AS SELECT 7 AS id, \
             TIMESTAMP '2024-03-01 00:00:00' AS t, repeat('x', {size}) AS blob;"
        )
    };
    workspace.write("wide.sql", &pipeline(10));
    let args = [
        "run",
        "wide.sql",
        "--as-of",
        "2024-03-02T00:00:00Z",
        "--profile",
        "aws",
    ];
    let refused = workspace.fengine(&args);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.starts_with(&format!(
            "fengine: wide.sql:1:1: feature group 'wide': DynamoDB table '{prefix}wide_v1' exists \
             with the key schema (id HASH S), but the group needs (id HASH N)"
        )),
        "{}",
        refused.stderr
    );
    let glue = fengine_aws::sdk::glue::Client::new(aws::context().await.sdk_config());
    let tables = glue.get_tables().database_name(&database).send().await;
    assert!(tables.map(|t| t.table_list().is_empty()).unwrap_or(true));

    dynamodb
        .delete_table()
        .table_name(format!("{prefix}wide_v1"))
        .send()
        .await
        .unwrap();
    workspace.write("wide.sql", &pipeline(500 * 1024));
    let refused = workspace.fengine(&args);
    assert_eq!(refused.code, 3, "{}", refused.stderr);
    assert!(
        refused.stderr.contains(
            "feature group 'wide': the online store cannot hold a row: the row of key (7) takes up to"
        ),
        "{}",
        refused.stderr
    );
    let tables = glue.get_tables().database_name(&database).send().await;
    assert!(tables.map(|t| t.table_list().is_empty()).unwrap_or(true));
}

/// `run --if-changed` on S3: exit 6 while the objects under the source prefix are as the
/// last run listed them; a run for each object added, deleted, or rewritten with the same
/// size (its ETag changes), with the rows that change brings.
#[tokio::test]
async fn if_changed_sees_objects_added_deleted_and_rewritten_on_s3() {
    let (workspace, bucket, database, _) = aws_workspace();
    workspace.write(
        "p.sql",
        &format!(
            "CREATE EXTERNAL TABLE events (k BIGINT NOT NULL, t TIMESTAMP NOT NULL, v DOUBLE NOT NULL)
             STORED AS CSV LOCATION 's3://{bucket}/events/' OPTIONS ('format.has_header' 'true');
             CREATE FEATURE GROUP totals KEY (k) EVENT TIME t AS
             SELECT k, max(t) AS t, sum(v) AS total FROM events GROUP BY k;"
        ),
    );
    aws::put_object(
        &bucket,
        "events/a.csv",
        b"k,t,v\n1,2024-03-01T00:00:00Z,1.5\n".to_vec(),
    )
    .await;
    aws::put_object(
        &bucket,
        "events/b.csv",
        b"k,t,v\n2,2024-03-01T00:00:00Z,2.5\n".to_vec(),
    )
    .await;
    let run = |day: u32| {
        workspace.fengine(&[
            "run",
            "p.sql",
            "--as-of",
            &format!("2024-03-{day:02}T00:00:00Z"),
            "--if-changed",
            "--profile",
            "aws",
            "--output",
            "json",
        ])
    };
    use std::collections::BTreeMap;
    let totals = |outcome: Outcome| snapshot_totals(&bucket, outcome.success().json());
    let registered = || async {
        let glue = fengine_aws::GlueCatalog::new(&aws::context().await);
        fengine_catalog::Catalog::list_partitions(&glue, &database, "totals_v1")
            .await
            .unwrap()
            .len()
    };
    assert_eq!(totals(run(2)).await, BTreeMap::from([(1, 1.5), (2, 2.5)]));
    let untouched = run(3);
    assert_eq!(untouched.code, 6, "{}", untouched.stderr);
    assert_eq!(registered().await, 1);

    aws::put_object(
        &bucket,
        "events/c.csv",
        b"k,t,v\n3,2024-03-01T00:00:00Z,4.0\n".to_vec(),
    )
    .await;
    assert_eq!(
        totals(run(3)).await,
        BTreeMap::from([(1, 1.5), (2, 2.5), (3, 4.0)])
    );
    aws::delete_object(&bucket, "events/a.csv").await;
    assert_eq!(totals(run(4)).await, BTreeMap::from([(2, 2.5), (3, 4.0)]));
    aws::put_object(
        &bucket,
        "events/b.csv",
        b"k,t,v\n2,2024-03-01T00:00:00Z,9.5\n".to_vec(),
    )
    .await;
    assert_eq!(totals(run(5)).await, BTreeMap::from([(2, 9.5), (3, 4.0)]));
    let again = run(6);
    assert_eq!(again.code, 6, "{}", again.stderr);
    assert_eq!(registered().await, 4);
}

/// k -> total of the snapshot a run's manifest names, read from S3 with the parquet crate.
async fn snapshot_totals(
    bucket: &str,
    manifest: serde_json::Value,
) -> std::collections::BTreeMap<i64, f64> {
    use arrow::datatypes::{Float64Type, Int64Type};
    let location = manifest["groups"][0]["snapshot_location"].as_str().unwrap();
    let prefix = location.trim_start_matches(&format!("s3://{bucket}/"));
    let objects = aws::list_objects(bucket, prefix).await;
    let batches = aws::read_parquet_objects(bucket, &objects).await;
    let keys = column::<Int64Type>(&batches, "k");
    let totals = column::<Float64Type>(&batches, "total");
    keys.into_iter()
        .zip(totals)
        .map(|(k, t)| (k.unwrap(), t.unwrap()))
        .collect()
}

/// A partitioned Glue table's fingerprint: its partitions' values and locations, and the
/// objects under them, the partition outside the table's folder too.
#[tokio::test]
async fn if_changed_sees_glue_partitions_and_their_objects() {
    use fengine_aws::sdk::glue::types::PartitionInput;
    let (workspace, bucket, database, _) = aws_workspace();
    register_partitioned_transactions(&bucket, &database).await;
    workspace.write(
        "spend.sql",
        &format!(
            "CREATE FEATURE GROUP category_spend KEY (customer_id, category) EVENT TIME event_time AS
             SELECT customer_id, category, max(event_time) AS event_time, sum(amount) AS spend
             FROM glue.{database}.transactions GROUP BY customer_id, category;"
        ),
    );
    let run = |day: u32| {
        workspace.fengine(&[
            "run",
            "spend.sql",
            "--as-of",
            &format!("2024-04-{day:02}T00:00:00Z"),
            "--if-changed",
            "--profile",
            "aws",
        ])
    };
    run(1).success();
    let untouched = run(2);
    assert_eq!(untouched.code, 6, "{}", untouched.stderr);

    // An object added to the partition outside the table's folder.
    let travel = aws::list_objects(&bucket, "raw/elsewhere/travel/").await;
    let object = aws::read_parquet_objects(&bucket, &travel).await;
    let mut file = Vec::new();
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(&mut file, object[0].schema(), None).unwrap();
    for batch in &object {
        writer.write(batch).unwrap();
    }
    writer.close().unwrap();
    aws::put_object(&bucket, "raw/elsewhere/travel/part-1.parquet", file.clone()).await;
    let status = workspace
        .fengine(&["status", "spend.sql", "--profile", "aws"])
        .success()
        .stdout;
    assert!(
        status.starts_with(&format!(
            "category_spend v1: changed: table glue.{database}.transactions; last run"
        )),
        "{status}"
    );
    run(2).success();
    assert_eq!(run(3).code, 6);

    // A partition registered with no object yet is a change too.
    let glue = fengine_aws::sdk::glue::Client::new(aws::context().await.sdk_config());
    let columns = [
        ("customer_id", "bigint"),
        ("merchant_id", "bigint"),
        ("amount", "double"),
        ("event_time", "timestamp"),
    ];
    glue.create_partition()
        .database_name(&database)
        .table_name("transactions")
        .partition_input(
            PartitionInput::builder()
                .values("books")
                .storage_descriptor(parquet_descriptor(
                    &columns,
                    format!("s3://{bucket}/raw/transactions/category=books/"),
                ))
                .build(),
        )
        .send()
        .await
        .unwrap();
    run(3).success();
    assert_eq!(run(4).code, 6);
}
