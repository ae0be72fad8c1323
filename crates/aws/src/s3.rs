//! S3 through `object_store`, signed with the AWS SDK's credential chain.

use std::sync::Arc;

use async_trait::async_trait;
use aws_credential_types::provider::ProvideCredentials;
use datafusion::error::DataFusionError;
use datafusion::execution::object_store::{DefaultObjectStoreRegistry, ObjectStoreRegistry};
use object_store::aws::{AmazonS3, AmazonS3Builder, AwsCredential};
use object_store::{CredentialProvider, ObjectStore};
use url::Url;

use crate::AwsContext;

/// The store serving the bucket of `url` (`s3://bucket/...`). `AWS_ENDPOINT_URL_S3` or
/// `AWS_ENDPOINT_URL` points it elsewhere than AWS (path-style addressing, and plain HTTP when
/// `AWS_ALLOW_HTTP=true`); objects are encrypted with `sse_kms_key_id` when given.
pub fn s3_store(
    aws: &AwsContext,
    url: &Url,
    sse_kms_key_id: Option<&str>,
) -> Result<Arc<dyn ObjectStore>, String> {
    let bucket = url
        .host_str()
        .filter(|_| url.scheme() == "s3")
        .ok_or_else(|| format!("'{url}' is not an s3://<bucket>/<prefix> URL"))?;
    let mut builder = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_credentials(Arc::new(SdkCredentials(aws.clone())));
    if let Some(region) = aws.region() {
        builder = builder.with_region(region);
    }
    if let Some(endpoint) = endpoint("S3") {
        builder = builder
            .with_endpoint(endpoint)
            .with_virtual_hosted_style_request(false);
    }
    if let Some(key) = sse_kms_key_id {
        builder = builder.with_sse_kms_encryption(key);
    }
    let store: AmazonS3 = builder
        .build()
        .map_err(|e| format!("S3 bucket '{bucket}': {e}"))?;
    Ok(Arc::new(store))
}

/// `AWS_ENDPOINT_URL_<SERVICE>`, else `AWS_ENDPOINT_URL`, as the SDKs read them.
fn endpoint(service: &str) -> Option<String> {
    std::env::var(format!("AWS_ENDPOINT_URL_{service}"))
        .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
        .ok()
        .filter(|e| !e.is_empty())
}

/// Hands object_store the credentials of the SDK's chain, refreshed as the chain refreshes.
#[derive(Debug)]
struct SdkCredentials(AwsContext);

#[async_trait]
impl CredentialProvider for SdkCredentials {
    type Credential = AwsCredential;

    async fn get_credential(&self) -> object_store::Result<Arc<AwsCredential>> {
        let provider =
            self.0
                .config
                .credentials_provider()
                .ok_or_else(|| object_store::Error::Generic {
                    store: "S3",
                    source: "no AWS credentials are configured".into(),
                })?;
        let credentials =
            provider
                .provide_credentials()
                .await
                .map_err(|e| object_store::Error::Generic {
                    store: "S3",
                    source: Box::new(e),
                })?;
        Ok(Arc::new(AwsCredential {
            key_id: credentials.access_key_id().to_string(),
            secret_key: credentials.secret_access_key().to_string(),
            token: credentials.session_token().map(str::to_string),
        }))
    }
}

/// DataFusion's object stores, with a store for any `s3://` bucket made on first use, so
/// that sources anywhere on S3 need no registration.
#[derive(Debug)]
pub struct S3StoreRegistry {
    aws: AwsContext,
    stores: DefaultObjectStoreRegistry,
}

impl S3StoreRegistry {
    pub fn new(aws: &AwsContext) -> Self {
        S3StoreRegistry {
            aws: aws.clone(),
            stores: DefaultObjectStoreRegistry::new(),
        }
    }
}

impl ObjectStoreRegistry for S3StoreRegistry {
    fn register_store(
        &self,
        url: &Url,
        store: Arc<dyn ObjectStore>,
    ) -> Option<Arc<dyn ObjectStore>> {
        self.stores.register_store(url, store)
    }

    fn get_store(&self, url: &Url) -> datafusion::error::Result<Arc<dyn ObjectStore>> {
        match self.stores.get_store(url) {
            Ok(store) => Ok(store),
            Err(_) if url.scheme() == "s3" => {
                let store =
                    s3_store(&self.aws, url, None).map_err(DataFusionError::Configuration)?;
                self.stores.register_store(url, store.clone());
                Ok(store)
            }
            Err(e) => Err(e),
        }
    }
}
