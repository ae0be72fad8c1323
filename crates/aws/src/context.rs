use aws_config::{BehaviorVersion, SdkConfig};

/// The shared AWS configuration every client is built from: region, credentials, endpoints.
#[derive(Debug, Clone)]
pub struct AwsContext {
    pub(crate) config: SdkConfig,
}

impl AwsContext {
    /// Loads the standard configuration from the environment and the AWS config files.
    pub async fn load() -> Self {
        AwsContext {
            config: aws_config::defaults(BehaviorVersion::latest()).load().await,
        }
    }

    pub fn region(&self) -> Option<&str> {
        self.config.region().map(|r| r.as_ref())
    }
}
