//! AWS configuration and the bundle of service clients every command shares.
//!
//! Configuration comes from the standard chain only (environment, profiles, SSO,
//! credential processes), so `jump` behaves like the AWS CLI. `AWS_ENDPOINT_URL` (and the
//! per-service `AWS_ENDPOINT_URL_<SERVICE>`) is read by `aws-config` itself; that is how
//! the test sandbox is reached, with no test-only code path here.
//!
//! SDK errors are flattened into one [`ApiError`] so callers can classify them (exit code
//! 69, retry on throttling, "not found" as success) without naming five error enums.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_ecs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use thiserror::Error;

/// Attempts per API call, including the first; the SDK backs off between them.
const MAX_ATTEMPTS: u32 = 5;
/// Bounds on every API call, so that a silent network or endpoint can hang neither a
/// command nor its teardown: per connection, per attempt, and per call with its retries.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(20);
const OPERATION_TIMEOUT: Duration = Duration::from_secs(60);

/// Who is calling, as STS says.
#[derive(Debug, Clone)]
pub struct Caller {
    pub arn: String,
    pub user_id: String,
}

/// The service clients a session needs, built from one [`SdkConfig`].
#[derive(Clone, Debug)]
pub struct Clients {
    pub ecs: aws_sdk_ecs::Client,
    pub ec2: aws_sdk_ec2::Client,
    pub logs: aws_sdk_cloudwatchlogs::Client,
    pub sts: aws_sdk_sts::Client,
    pub ssm: aws_sdk_ssm::Client,
    pub iam: aws_sdk_iam::Client,
    pub kms: aws_sdk_kms::Client,
    pub rds: aws_sdk_rds::Client,
    pub events: aws_sdk_eventbridge::Client,
    /// EventBridge Scheduler, for the reaper's schedule (`jump init --reaper`).
    pub scheduler: aws_sdk_scheduler::Client,
    /// The resolved region, needed for the task's `awslogs-region` option.
    pub region: String,
    /// The profile named with `--profile`, passed on to session-manager-plugin.
    pub profile: Option<String>,
    /// `--ssm-plugin`: hand data channels to this program instead of our own client.
    pub ssm_plugin: Option<PathBuf>,
}

/// No region could be resolved; a configuration problem, reported before any API call.
#[derive(Debug, Error)]
#[error(
    "no AWS region configured: pass --region, set AWS_REGION, or set `region` in your AWS profile"
)]
pub struct NoRegion;

/// A failed AWS API call, with enough detail to classify it.
#[derive(Debug, Error)]
pub struct ApiError {
    /// The operation, as `service:Operation`.
    pub operation: &'static str,
    /// The service's error code, when the service answered.
    pub code: Option<String>,
    pub message: String,
    /// Worth retrying: throttling, timeouts, dispatch failures, server-side errors.
    pub transient: bool,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.code {
            Some(code) => write!(f, "{} failed: {code}: {}", self.operation, self.message),
            None => write!(f, "{} failed: {}", self.operation, self.message),
        }
    }
}

impl ApiError {
    /// Converts any SDK error; every AWS SDK crate shares the `SdkError` type.
    pub fn from_sdk<E>(operation: &'static str, err: SdkError<E>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let code = err.code().map(str::to_string);
        let transient = match &err {
            SdkError::TimeoutError(_)
            | SdkError::DispatchFailure(_)
            | SdkError::ResponseError(_) => true,
            SdkError::ServiceError(_) => code.as_deref().is_some_and(is_transient_code),
            _ => false,
        };
        let message = match (&err, err.message()) {
            (SdkError::ServiceError(_), Some(message)) => message.to_string(),
            (SdkError::TimeoutError(_), _) => "the request timed out".to_string(),
            // The raw body (often an HTML error page) would drown the message.
            (SdkError::ResponseError(_), _) => format!(
                "unexpected response from the service (HTTP {})",
                err.raw_response().map_or(0, |r| r.status().as_u16())
            ),
            _ => DisplayErrorContext(&err).to_string(),
        };
        ApiError {
            operation,
            code,
            message,
            transient,
        }
    }

    /// True when the error says the named resource does not exist.
    pub fn is_not_found(&self) -> bool {
        let code = self.code.as_deref().unwrap_or_default();
        code.contains("NotFound")
            || ((code == "InvalidParameterException" || code == "ClientException")
                && self.message.to_ascii_lowercase().contains("not found"))
    }
}

fn is_transient_code(code: &str) -> bool {
    code.contains("Throttl")
        || matches!(
            code,
            "RequestLimitExceeded"
                | "TooManyRequestsException"
                | "ServiceUnavailable"
                | "ServiceUnavailableException"
                | "InternalError"
                | "InternalFailure"
                | "InternalServerError"
                | "ServerException"
        )
}

/// Loads configuration from the standard chain, honouring `--profile` and `--region`.
pub async fn load_config(profile: Option<&str>, region: Option<&str>) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                .operation_timeout(OPERATION_TIMEOUT)
                .build(),
        );
    if let Some(profile) = profile {
        loader = loader.profile_name(profile);
    }
    if let Some(region) = region {
        loader = loader.region(Region::new(region.to_string()));
    }
    loader.load().await
}

impl Clients {
    /// Builds the clients; fails only when no region can be resolved.
    pub async fn new(profile: Option<&str>, region: Option<&str>) -> Result<Self, NoRegion> {
        let config = load_config(profile, region).await;
        let region = config.region().ok_or(NoRegion)?.to_string();
        Ok(Clients {
            ecs: aws_sdk_ecs::Client::new(&config),
            ec2: aws_sdk_ec2::Client::new(&config),
            logs: aws_sdk_cloudwatchlogs::Client::new(&config),
            sts: aws_sdk_sts::Client::new(&config),
            ssm: aws_sdk_ssm::Client::new(&config),
            iam: aws_sdk_iam::Client::new(&config),
            kms: aws_sdk_kms::Client::new(&config),
            rds: aws_sdk_rds::Client::new(&config),
            events: aws_sdk_eventbridge::Client::new(&config),
            scheduler: aws_sdk_scheduler::Client::new(&config),
            region,
            profile: profile.map(str::to_string),
            ssm_plugin: None,
        })
    }

    /// The same clients, handing data channels to `plugin` when it is set.
    pub fn with_ssm_plugin(mut self, plugin: Option<PathBuf>) -> Self {
        self.ssm_plugin = plugin;
        self
    }

    /// The ARN of the caller, used as the `jump:owner` of every session it starts.
    pub async fn caller_arn(&self) -> Result<String, ApiError> {
        Ok(self.caller().await?.arn)
    }

    /// The caller's ARN and user id (what IAM's `${aws:userid}` evaluates to, so that
    /// policies can limit users to the tasks they started: `jump:owner-id`).
    pub async fn caller(&self) -> Result<Caller, ApiError> {
        let identity = self
            .sts
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| ApiError::from_sdk("sts:GetCallerIdentity", e))?;
        match (identity.arn, identity.user_id) {
            (Some(arn), Some(user_id)) => Ok(Caller { arn, user_id }),
            _ => Err(ApiError {
                operation: "sts:GetCallerIdentity",
                code: None,
                message: "the response carried no ARN or user id".to_string(),
                transient: false,
            }),
        }
    }
}

/// Describes one task; `None` when ECS does not know it (yet, or any more).
pub async fn describe_task(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
    task_arn: &str,
) -> Result<Option<aws_sdk_ecs::types::Task>, ApiError> {
    let out = ecs
        .describe_tasks()
        .cluster(cluster)
        .tasks(task_arn)
        .include(aws_sdk_ecs::types::TaskField::Tags)
        .send()
        .await
        .map_err(|e| ApiError::from_sdk("ecs:DescribeTasks", e))?;
    Ok(out.tasks().first().cloned())
}

crate::exit::exit_class!(Usage: NoRegion);

crate::exit::exit_class!(Aws: ApiError);

#[cfg(test)]
mod tests {
    use super::*;

    fn err(code: &str, message: &str) -> ApiError {
        ApiError {
            operation: "ecs:StopTask",
            code: Some(code.to_string()),
            message: message.to_string(),
            transient: false,
        }
    }

    #[test]
    fn not_found_detection() {
        assert!(err(
            "InvalidParameterException",
            "The referenced task was not found."
        )
        .is_not_found());
        assert!(err("ResourceNotFoundException", "x").is_not_found());
        assert!(!err("InvalidParameterException", "bad subnet").is_not_found());
        assert!(!err("AccessDeniedException", "not found").is_not_found());
    }

    #[test]
    fn transient_codes() {
        assert!(is_transient_code("ThrottlingException"));
        assert!(is_transient_code("ServerException"));
        assert!(!is_transient_code("AccessDeniedException"));
    }

    #[test]
    fn display_includes_operation_and_code() {
        let text = err("AccessDeniedException", "no").to_string();
        assert_eq!(text, "ecs:StopTask failed: AccessDeniedException: no");
    }
}

/// Keeps the raw body of a response, for checks that must see every field the service
/// sent: the SDK drops the fields its model does not know, and a field ECS added after
/// this SDK was built can still change what a task runs (see `session::reuse`).
#[derive(Debug, Clone, Default)]
pub struct RawBody(std::sync::Arc<std::sync::Mutex<Option<Vec<u8>>>>);

impl RawBody {
    /// The last response body as JSON, if one was received and parses.
    pub fn json(&self) -> Option<serde_json::Value> {
        let body = self.0.lock().ok()?.clone()?;
        serde_json::from_slice(&body).ok()
    }
}

impl aws_sdk_ecs::config::Intercept for RawBody {
    fn name(&self) -> &'static str {
        "RawBody"
    }

    fn read_after_deserialization(
        &self,
        context: &aws_sdk_ecs::config::interceptors::AfterDeserializationInterceptorContextRef<'_>,
        _components: &aws_sdk_ecs::config::RuntimeComponents,
        _config: &mut aws_sdk_ecs::config::ConfigBag,
    ) -> Result<(), aws_sdk_ecs::error::BoxError> {
        if let (Some(bytes), Ok(mut kept)) = (context.response().body().bytes(), self.0.lock()) {
            *kept = Some(bytes.to_vec());
        }
        Ok(())
    }
}

/// One cluster as DescribeClusters describes it, with the `include`d parts (ECS leaves
/// configuration, settings and tags out unless asked); `None` if ECS does not know it.
pub async fn describe_cluster(
    ecs: &aws_sdk_ecs::Client,
    name: &str,
    include: &[aws_sdk_ecs::types::ClusterField],
) -> Result<Option<aws_sdk_ecs::types::Cluster>, ApiError> {
    let out = ecs
        .describe_clusters()
        .clusters(name)
        .set_include(Some(include.to_vec()))
        .send()
        .await
        .map_err(|e| ApiError::from_sdk("ecs:DescribeClusters", e))?;
    Ok(out.clusters().first().cloned())
}

/// One page of a log stream read from its head; `token` is the previous page's forward
/// token (none for the first page). The end is reached when a page brings no events or
/// the same token back.
pub async fn log_page_from_head(
    logs: &aws_sdk_cloudwatchlogs::Client,
    group: &str,
    stream: &str,
    token: Option<String>,
) -> Result<aws_sdk_cloudwatchlogs::operation::get_log_events::GetLogEventsOutput, ApiError> {
    logs.get_log_events()
        .log_group_name(group)
        .log_stream_name(stream)
        .start_from_head(true)
        .set_next_token(token)
        .send()
        .await
        .map_err(|e| ApiError::from_sdk("logs:GetLogEvents", e))
}
