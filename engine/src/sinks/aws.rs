//! AWS client settings shared by the DynamoDB and Timestream sinks, and the classification of
//! their failed requests as retriable or permanent.
//!
//! The SDK's own retries are disabled: the [batcher](super::batcher) retries every failed
//! write with backoff and jitter, and a second retry layer inside the SDK would multiply the
//! attempts and hide failures from the sink metrics. This module does not build service
//! clients; each sink builds its own from [`sdk_config`].

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::config::{Credentials, SharedCredentialsProvider};
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use serde::{Deserialize, Serialize};

use super::{ErrorClass, SinkError};

/// Region used when the configuration names none.
pub const DEFAULT_REGION: &str = "eu-west-1";

/// Maximum time to open a connection to an AWS endpoint.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Maximum time of one request, from sending it to reading the whole response.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(10);

/// Access key of the static credentials used against an emulator. Emulators such as moto
/// and dynalite accept any well-formed signature.
const EMULATOR_ACCESS_KEY_ID: &str = "valmetal-emulator";
const EMULATOR_SECRET_ACCESS_KEY: &str = "valmetal-emulator-secret";

/// Connection settings of an AWS sink: region and endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AwsConfig {
    /// AWS region of the service, such as `eu-west-1`. Default `eu-west-1`. The region is
    /// never looked up from the environment or the instance metadata service.
    pub region: String,
    /// Fixed endpoint, such as `http://127.0.0.1:4567` for a local emulator. Default none:
    /// the SDK resolves the regional endpoint, and Timestream discovers its cell endpoint.
    ///
    /// When set, credentials come from `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` if
    /// both are in the environment, and are otherwise static test credentials. The default
    /// credential chain is then not used, so the instance metadata service is never queried.
    pub endpoint_url: Option<String>,
}

impl Default for AwsConfig {
    fn default() -> Self {
        Self {
            region: DEFAULT_REGION.to_owned(),
            endpoint_url: None,
        }
    }
}

/// A failure to prepare an AWS resource or client, such as creating a table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{operation} failed: {message}")]
pub struct AwsSetupError {
    /// The AWS operation or step that failed, such as `CreateTable`.
    pub operation: &'static str,
    pub message: String,
}

impl AwsSetupError {
    pub fn new(operation: &'static str, message: impl Into<String>) -> Self {
        Self {
            operation,
            message: message.into(),
        }
    }
}

/// Builds the SDK configuration of `config`: its region and endpoint, SDK retries disabled,
/// connect and operation timeouts set, and credentials as [`AwsConfig::endpoint_url`]
/// describes.
pub async fn sdk_config(config: &AwsConfig) -> SdkConfig {
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(OPERATION_TIMEOUT)
        .operation_timeout(OPERATION_TIMEOUT)
        .build();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(config.region.clone()))
        .retry_config(RetryConfig::disabled())
        .timeout_config(timeouts);
    if let Some(url) = &config.endpoint_url {
        loader = loader
            .endpoint_url(url)
            .credentials_provider(emulator_credentials());
    }
    loader.load().await
}

/// Credentials for a fixed endpoint: the environment's, or static test credentials.
fn emulator_credentials() -> SharedCredentialsProvider {
    let has_environment_credentials = std::env::var_os("AWS_ACCESS_KEY_ID").is_some()
        && std::env::var_os("AWS_SECRET_ACCESS_KEY").is_some();
    if has_environment_credentials {
        SharedCredentialsProvider::new(
            aws_config::environment::EnvironmentVariableCredentialsProvider::new(),
        )
    } else {
        SharedCredentialsProvider::new(Credentials::new(
            EMULATOR_ACCESS_KEY_ID,
            EMULATOR_SECRET_ACCESS_KEY,
            None,
            None,
            "valmetal-emulator",
        ))
    }
}

/// Classifies a failed AWS request of either sink as retriable or permanent.
///
/// Throttling, server errors (5xx), timeouts and failures to connect or read are retriable.
/// Validation errors, denied access and missing resources are permanent, as is any other
/// 4xx response. Errors that a sink handles record by record, such as Timestream's rejected
/// records or DynamoDB's failed conditions, are taken apart by the sink before this.
pub fn classify<E>(error: &SdkError<E, HttpResponse>) -> SinkError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let message = DisplayErrorContext(error).to_string();
    match error {
        SdkError::ConstructionFailure(_) => SinkError::permanent("invalid_request", message),
        SdkError::TimeoutError(_) => SinkError::retriable("timeout", message),
        SdkError::DispatchFailure(failure) if failure.is_timeout() => {
            SinkError::retriable("timeout", message)
        }
        SdkError::DispatchFailure(failure) if failure.is_user() => {
            SinkError::permanent("invalid_request", message)
        }
        SdkError::DispatchFailure(_) => SinkError::retriable("connection", message),
        SdkError::ServiceError(context) => {
            let status = context.raw().status().as_u16();
            let (class, reason) = classify_code(context.err().code(), status);
            SinkError {
                class,
                reason,
                message,
            }
        }
        SdkError::ResponseError(context) => {
            let status = context.raw().status().as_u16();
            let (class, reason) = classify_status(status);
            if class == ErrorClass::Permanent {
                SinkError::permanent(reason, message)
            } else {
                SinkError::retriable("invalid_response", message)
            }
        }
        _ => SinkError::retriable("unknown", message),
    }
}

/// Classifies an error response by its AWS error code, and by its HTTP status when the code
/// is missing or unknown to the sinks.
fn classify_code(code: Option<&str>, status: u16) -> (ErrorClass, &'static str) {
    use ErrorClass::{Permanent, Retriable};

    match code.unwrap_or_default() {
        "ThrottlingException"
        | "ProvisionedThroughputExceededException"
        | "RequestLimitExceeded"
        | "TooManyRequestsException"
        | "Throttling" => (Retriable, "throttled"),
        "InternalServerException"
        | "InternalServerError"
        | "InternalFailure"
        | "ServiceUnavailable"
        | "ServiceUnavailableException" => (Retriable, "server_error"),
        "RequestTimeout" | "RequestTimeoutException" => (Retriable, "timeout"),
        // Timestream returns this when a discovered endpoint is stale, and the client
        // discovers a new one in the background.
        "InvalidEndpointException" => (Retriable, "invalid_endpoint"),
        // The SDK refreshes expired temporary credentials before the next attempt, and it
        // corrects a skewed clock from the Date header of the error response.
        "ExpiredTokenException" | "RequestExpired" => (Retriable, "credentials"),
        "ValidationException" | "SerializationException" => (Permanent, "invalid_request"),
        "AccessDeniedException" | "UnrecognizedClientException" => (Permanent, "access_denied"),
        "ResourceNotFoundException" => (Permanent, "not_found"),
        "RejectedRecordsException" => (Permanent, "rejected"),
        "ConditionalCheckFailedException" => (Permanent, "condition_failed"),
        _ => classify_status(status),
    }
}

fn classify_status(status: u16) -> (ErrorClass, &'static str) {
    match status {
        429 => (ErrorClass::Retriable, "throttled"),
        408 => (ErrorClass::Retriable, "timeout"),
        500..=599 => (ErrorClass::Retriable, "server_error"),
        400..=499 => (ErrorClass::Permanent, "client_error"),
        _ => (ErrorClass::Retriable, "invalid_response"),
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::error::{ConnectorError, ErrorMetadata};
    use aws_sdk_dynamodb::operation::put_item::PutItemError;
    use aws_sdk_timestreamwrite::operation::write_records::WriteRecordsError;

    use super::*;

    fn response(status: u16) -> HttpResponse {
        HttpResponse::new(status.try_into().unwrap(), "".into())
    }

    fn metadata(code: &str) -> ErrorMetadata {
        ErrorMetadata::builder().code(code).message("test").build()
    }

    fn timestream_error(code: &str, status: u16) -> SinkError {
        let error = WriteRecordsError::generic(metadata(code));
        classify(&SdkError::service_error(error, response(status)))
    }

    fn dynamodb_error(code: &str, status: u16) -> SinkError {
        let error = PutItemError::generic(metadata(code));
        classify(&SdkError::service_error(error, response(status)))
    }

    #[test]
    fn throttling_is_retriable() {
        for error in [
            timestream_error("ThrottlingException", 429),
            dynamodb_error("ProvisionedThroughputExceededException", 400),
            dynamodb_error("ThrottlingException", 400),
            dynamodb_error("RequestLimitExceeded", 400),
        ] {
            assert_eq!(error.class, ErrorClass::Retriable, "{error:?}");
            assert_eq!(error.reason, "throttled");
        }
    }

    #[test]
    fn server_errors_are_retriable() {
        for error in [
            timestream_error("InternalServerException", 500),
            dynamodb_error("InternalServerError", 500),
            timestream_error("", 503),
            dynamodb_error("", 502),
        ] {
            assert_eq!(error.class, ErrorClass::Retriable, "{error:?}");
            assert_eq!(error.reason, "server_error");
        }
    }

    #[test]
    fn request_errors_are_permanent() {
        let cases = [
            (
                timestream_error("ValidationException", 400),
                "invalid_request",
            ),
            (
                dynamodb_error("ValidationException", 400),
                "invalid_request",
            ),
            (
                timestream_error("AccessDeniedException", 403),
                "access_denied",
            ),
            (
                timestream_error("ResourceNotFoundException", 404),
                "not_found",
            ),
            (
                dynamodb_error("ResourceNotFoundException", 400),
                "not_found",
            ),
            (
                timestream_error("RejectedRecordsException", 419),
                "rejected",
            ),
            (
                dynamodb_error("SomeNewClientException", 400),
                "client_error",
            ),
        ];
        for (error, reason) in cases {
            assert_eq!(error.class, ErrorClass::Permanent, "{error:?}");
            assert_eq!(error.reason, reason);
        }
    }

    #[test]
    fn transport_failures_are_retriable() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let dispatch: SdkError<PutItemError, HttpResponse> =
            SdkError::dispatch_failure(ConnectorError::io(Box::new(io)));
        let timeout: SdkError<PutItemError, HttpResponse> =
            SdkError::timeout_error("operation timed out");
        let dispatch = classify(&dispatch);
        let timeout = classify(&timeout);
        assert_eq!(dispatch.class, ErrorClass::Retriable);
        assert_eq!(dispatch.reason, "connection");
        assert_eq!(timeout.class, ErrorClass::Retriable);
        assert_eq!(timeout.reason, "timeout");
    }

    #[test]
    fn config_rejects_unknown_fields() {
        let parsed: Result<AwsConfig, _> = serde_json::from_str(r#"{"regoin": "us-east-1"}"#);
        assert!(parsed.is_err());
        let parsed: AwsConfig = serde_json::from_str(r#"{"region": "us-east-1"}"#).unwrap();
        assert_eq!(parsed.region, "us-east-1");
        assert_eq!(parsed.endpoint_url, None);
    }
}
