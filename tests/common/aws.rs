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
