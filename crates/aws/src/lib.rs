//! fengine's AWS backends, kept apart from the core so that it builds and tests without
//! the AWS SDKs: S3 (through `object_store`, with the SDK's credential chain), the Glue Data
//! Catalog as the offline catalog, DynamoDB as the online store.
//!
//! Every client honours the standard settings: the credential chain (environment, profiles,
//! SSO, web identity, ECS and EC2 roles), `AWS_REGION`, and `AWS_ENDPOINT_URL` with its
//! per-service variants (`AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL_GLUE`), which is how the
//! tests point them at a local server.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let aws = fengine_aws::AwsContext::load().await;
//! let catalog = fengine_aws::GlueCatalog::new(&aws);
//! let bucket = fengine_aws::s3_store(&aws, &url::Url::parse("s3://my-bucket/warehouse/")?, None)?;
//! # Ok(())
//! # }
//! ```

mod context;
mod dynamodb;
mod error;
mod glue;
mod iam;
mod s3;

pub use context::AwsContext;
pub use dynamodb::{DynamoDbOnlineStore, WriteSettings};
pub use glue::{GlueCatalog, GlueSourceCatalog};
pub use iam::{PolicyScope, iam_policy};
pub use s3::{S3StoreRegistry, s3_store};

/// The SDKs, for callers that talk to the services directly, as the tests do to read back
/// what fengine wrote.
pub mod sdk {
    pub use aws_sdk_dynamodb as dynamodb;
    pub use aws_sdk_glue as glue;
}
