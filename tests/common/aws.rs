//! The AWS cases talk to the local server tests/run.sh starts, and never to anything else.

use std::sync::atomic::{AtomicU32, Ordering};

use fengine_aws::AwsContext;

/// The local endpoint, refusing to run against anything but loopback.
pub fn endpoint() -> String {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
    let host = endpoint
        .trim_start_matches("http://")
        .split([':', '/'])
        .next()
        .unwrap_or_default();
    assert!(
        matches!(host, "127.0.0.1" | "localhost" | "[::1]"),
        "the AWS cases need a local server: run them with tests/run.sh (AWS_ENDPOINT_URL is '{endpoint}')"
    );
    endpoint
}

pub async fn context() -> AwsContext {
    endpoint();
    AwsContext::load().await
}

/// A name no other case of this run uses, valid for Glue and DynamoDB.
pub fn unique_name(prefix: &str) -> String {
    unique(prefix).replace('-', "_")
}

fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}-{}-{nanos:x}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Creates a bucket of its own for a case on the local server; returns its name.
pub fn create_bucket() -> String {
    let bucket = unique("fengine");
    create_named_bucket(&bucket);
    bucket
}

pub fn create_named_bucket(bucket: &str) {
    let response = raw_request("PUT", &format!("/{bucket}"));
    assert!(
        response.starts_with("HTTP/1.1 200"),
        "cannot create bucket {bucket}: {response}"
    );
}

/// The response head of a HEAD of the object: the headers S3 stores with it.
pub fn object_headers(bucket: &str, key: &str) -> String {
    raw_request("HEAD", &format!("/{bucket}/{key}"))
}

/// The body of an object, read with object_store directly.
pub fn object_body(bucket: &str, key: &str) -> String {
    use object_store::ObjectStoreExt;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let bytes = runtime.block_on(async {
        let store = bucket_store(bucket);
        store
            .get(&object_store::path::Path::from(key))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
    });
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// An unsigned request to the local server, which takes them; its whole response.
fn raw_request(method: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let address = endpoint()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let mut stream = std::net::TcpStream::connect(&address).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

fn bucket_store(bucket: &str) -> object_store::aws::AmazonS3 {
    object_store::aws::AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_endpoint(endpoint())
        .with_allow_http(true)
        .build()
        .unwrap()
}

/// The keys under `prefix`, read with object_store directly.
pub async fn list_objects(bucket: &str, prefix: &str) -> Vec<String> {
    use futures::TryStreamExt;
    use object_store::ObjectStore;
    let store = bucket_store(bucket);
    let mut keys: Vec<String> = store
        .list(Some(&object_store::path::Path::from(prefix)))
        .map_ok(|meta| meta.location.to_string())
        .try_collect()
        .await
        .unwrap();
    keys.sort();
    keys
}

/// The bytes of the objects under `prefix`, listed with object_store directly.
pub async fn bytes_under(bucket: &str, prefix: &str) -> u64 {
    use futures::TryStreamExt;
    use object_store::ObjectStore;
    bucket_store(bucket)
        .list(Some(&object_store::path::Path::from(prefix)))
        .map_ok(|meta| meta.size)
        .try_fold(0, |total, size| async move { Ok(total + size) })
        .await
        .unwrap()
}

/// (key, ETag) of the objects under `prefix`: a multipart upload's ETag ends in `-<parts>`.
pub async fn list_object_etags(bucket: &str, prefix: &str) -> Vec<(String, String)> {
    use futures::TryStreamExt;
    use object_store::ObjectStore;
    bucket_store(bucket)
        .list(Some(&object_store::path::Path::from(prefix)))
        .map_ok(|meta| (meta.location.to_string(), meta.e_tag.unwrap_or_default()))
        .try_collect()
        .await
        .unwrap()
}

/// Every row of these Parquet objects.
pub async fn read_parquet_objects(bucket: &str, keys: &[String]) -> Vec<arrow::array::RecordBatch> {
    use object_store::ObjectStoreExt;
    let store = bucket_store(bucket);
    let mut batches = Vec::new();
    for key in keys {
        let bytes = store
            .get(&object_store::path::Path::from(key.as_str()))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
            .unwrap()
            .build()
            .unwrap();
        batches.extend(reader.map(|b| b.unwrap()));
    }
    batches
}

/// Writes an object, with object_store directly.
pub async fn put_object(bucket: &str, key: &str, bytes: Vec<u8>) {
    use object_store::ObjectStoreExt;
    bucket_store(bucket)
        .put(&object_store::path::Path::from(key), bytes.into())
        .await
        .unwrap();
}

/// Deletes an object, with object_store directly.
pub async fn delete_object(bucket: &str, key: &str) {
    use object_store::ObjectStoreExt;
    bucket_store(bucket)
        .delete(&object_store::path::Path::from(key))
        .await
        .unwrap();
}

/// What the consistency check reads of a group version on the local AWS server: the Glue
/// partitions, every object under the table's location (as `s3://` URLs), what DynamoDB
/// holds, and the rows of each partition's files.
pub async fn registered_state(
    bucket: &str,
    database: &str,
    prefix: &str,
    group: &str,
    version: u32,
) -> (
    Vec<super::consistency::Registered>,
    Vec<String>,
    super::consistency::OnlineContents,
    std::collections::HashMap<String, Vec<arrow::array::RecordBatch>>,
) {
    use fengine_aws::sdk::dynamodb::types::AttributeValue;
    let aws = context().await;
    let table = format!("{group}_v{version}");
    let glue = fengine_aws::sdk::glue::Client::new(aws.sdk_config());
    let listed = glue
        .get_partitions()
        .database_name(database)
        .table_name(&table)
        .send()
        .await
        .unwrap();
    let partitions: Vec<super::consistency::Registered> = listed
        .partitions()
        .iter()
        .map(|p| super::consistency::Registered {
            snapshot_ts: p.values()[0].clone(),
            location: p
                .storage_descriptor()
                .unwrap()
                .location()
                .unwrap()
                .to_string(),
            parameters: p
                .parameters()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        })
        .collect();
    let keys = list_objects(bucket, &format!("warehouse/{group}/v{version}/")).await;
    let mut rows = std::collections::HashMap::new();
    for partition in &partitions {
        let under = partition
            .location
            .trim_start_matches(&format!("s3://{bucket}/"))
            .to_string();
        let files: Vec<String> = keys
            .iter()
            .filter(|k| k.starts_with(&under))
            .cloned()
            .collect();
        rows.insert(
            partition.location.clone(),
            read_parquet_objects(bucket, &files).await,
        );
    }
    let files = keys.iter().map(|k| format!("s3://{bucket}/{k}")).collect();

    let dynamodb = fengine_aws::sdk::dynamodb::Client::new(aws.sdk_config());
    let metadata = dynamodb
        .get_item()
        .table_name(format!("{prefix}fengine_online_tables"))
        .key("table_name", AttributeValue::S(format!("{prefix}{table}")))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    let metadata = metadata.item().cloned().unwrap_or_default();
    let text = |name: &str| metadata.get(name).and_then(|v| v.as_s().ok()).cloned();
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let page = dynamodb
            .scan()
            .table_name(format!("{prefix}{table}"))
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap();
        items.extend(page.items().iter().map(|item| {
            serde_json::Value::Object(
                item.iter()
                    .filter_map(|(name, value)| {
                        let json = match value {
                            AttributeValue::N(n) => serde_json::from_str(n).ok()?,
                            AttributeValue::S(s) => serde_json::Value::String(s.clone()),
                            _ => return None,
                        };
                        Some((name.clone(), json))
                    })
                    .collect(),
            )
        }));
        start = page.last_evaluated_key().cloned();
        if start.is_none() {
            break;
        }
    }
    let online = super::consistency::OnlineContents {
        loaded_run_id: text("loaded_run_id"),
        loading_run_id: text("loading_run_id"),
        ..Default::default()
    }
    .with_rows(items);
    (partitions, files, online, rows)
}
