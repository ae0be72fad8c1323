use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// What an AWS call failed on, keeping the service's own code and message.
pub(crate) fn from_aws_sdk_error<E, R>(
    service: &str,
    operation: &str,
    error: &SdkError<E, R>,
) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match error {
        SdkError::ServiceError(failure) => {
            let failure = failure.err();
            format!(
                "{service} {operation}: {}: {}",
                failure.code().unwrap_or("error"),
                failure.message().unwrap_or("no message")
            )
        }
        other => format!("{service} {operation}: {}", DisplayErrorContext(other)),
    }
}
