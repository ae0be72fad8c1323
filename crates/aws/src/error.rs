use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// An AWS call's failure, as a person needs it: the service, the operation, the HTTP
/// status, the service's code and message, and whether it passes with time.
pub(crate) struct AwsFault {
    pub(crate) message: String,
    /// Throttling, a server error, a timeout or a lost connection: retrying may succeed.
    /// Anything else the service answered (access denied, a missing resource, a validation
    /// error) lasts until someone acts.
    pub(crate) transient: bool,
}

/// What an AWS call failed on, keeping the service's own code and message.
pub(crate) fn from_aws_sdk_error<E>(
    service: &str,
    operation: &str,
    error: &SdkError<E, HttpResponse>,
) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    classify(service, operation, error).message
}

/// The one place AWS failures are told apart: see [`AwsFault`].
pub(crate) fn classify<E>(
    service: &str,
    operation: &str,
    error: &SdkError<E, HttpResponse>,
) -> AwsFault
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match error {
        SdkError::ServiceError(failure) => {
            let status = failure.raw().status().as_u16();
            let code = failure.err().code();
            let transient = status >= 500
                || status == 429
                || code.is_some_and(|code| {
                    matches!(
                        code,
                        "ProvisionedThroughputExceededException"
                            | "ThrottlingException"
                            | "Throttling"
                            | "RequestLimitExceeded"
                            | "TooManyRequestsException"
                            | "InternalServerError"
                            | "InternalServiceException"
                            | "ServiceUnavailable"
                            | "ConcurrentModificationException"
                    )
                });
            let said = match (code, failure.err().message()) {
                (Some(code), Some(message)) => format!("{code}: {message}"),
                (Some(code), None) => code.to_string(),
                (None, Some(message)) => message.to_string(),
                (None, None) => "the response gave no error code or message".to_string(),
            };
            let hint = match status {
                401 | 403 => {
                    ": check the credentials and that their policy allows this (`fengine plan \
                     --iam-policy` prints what a run needs)"
                }
                _ => "",
            };
            AwsFault {
                message: format!("{service} {operation}: HTTP {status}, {said}{hint}"),
                transient,
            }
        }
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            AwsFault {
                message: format!(
                    "{service} {operation}: {} (the service could not be reached or did not \
                     answer; retry)",
                    causes(error)
                ),
                transient: true,
            }
        }
        other => AwsFault {
            message: format!("{service} {operation}: {}", causes(other)),
            transient: false,
        },
    }
}

/// An error and its causes, each said once: the SDK's wrappers repeat their sources.
fn causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut said: Vec<String> = Vec::new();
    let mut current = Some(error);
    while let Some(error) = current {
        let text = error.to_string();
        if !said.iter().any(|s| s.contains(&text)) {
            said.push(text);
        }
        current = error.source();
    }
    said.join(": ")
}
