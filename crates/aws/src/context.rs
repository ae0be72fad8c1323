use aws_config::{BehaviorVersion, SdkConfig};

/// The shared AWS configuration every client is built from: region, credentials, endpoints.
#[derive(Debug, Clone)]
pub struct AwsContext {
    pub(crate) config: SdkConfig,
}

impl AwsContext {
    /// Loads the standard configuration from the environment and the AWS config files.
    pub async fn load() -> Self {
        AwsContext::load_with_endpoint(None).await
    }

    /// The standard configuration, with every service at `endpoint` when given.
    pub async fn load_with_endpoint(endpoint: Option<&str>) -> Self {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(endpoint) = endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        AwsContext {
            config: loader.load().await,
        }
    }

    pub fn sdk_config(&self) -> &SdkConfig {
        &self.config
    }

    pub fn region(&self) -> Option<&str> {
        self.config.region().map(|r| r.as_ref())
    }
}
