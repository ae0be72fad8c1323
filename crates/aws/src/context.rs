use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;

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

    /// Every service at a local `endpoint`, with fixed credentials and region: nothing is
    /// looked up, so nothing but that endpoint is ever contacted (tests, benchmarks).
    pub fn local(endpoint: &str) -> Self {
        let credentials = Credentials::new(
            "fengine-local",
            "fengine-local",
            None,
            None,
            "fengine-local",
        );
        AwsContext {
            config: SdkConfig::builder()
                .behavior_version(BehaviorVersion::latest())
                .endpoint_url(endpoint)
                .region(Region::new("us-east-1"))
                .credentials_provider(SharedCredentialsProvider::new(credentials))
                .build(),
        }
    }

    pub fn sdk_config(&self) -> &SdkConfig {
        &self.config
    }

    pub fn region(&self) -> Option<&str> {
        self.config.region().map(|r| r.as_ref())
    }
}

impl AwsContext {
    /// The ARN of the identity the credentials belong to (STS `GetCallerIdentity`, which
    /// needs no permission), or why it could not be asked.
    pub async fn caller_arn(&self) -> Result<String, String> {
        let client = aws_sdk_sts::Client::new(&self.config);
        match client.get_caller_identity().send().await {
            Ok(identity) => identity
                .arn()
                .map(str::to_string)
                .ok_or_else(|| "STS GetCallerIdentity returned no ARN".to_string()),
            Err(e) => Err(crate::error::classify("STS", "GetCallerIdentity", &e).message),
        }
    }
}
