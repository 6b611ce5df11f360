//! Launching: the one place jump builds and sends `RunTask`, whatever the task's source.
//!
//! A session's task starts from jump's own task definition (a cold jumphost) or from a
//! service's (a one-off, as `heroku run` works); either way it is tagged with its owner,
//! session and expiry, marked `startedBy`, and started through the guard, so the guard
//! owns it even when the session is cancelled mid-call. ECS answers a capacity or ENI
//! shortage with `failures` instead of a task: that is retried with backoff for a bounded
//! time, and any other failure ends the launch with ECS's own reasons.

use std::time::Duration;

use aws_sdk_ecs::operation::run_task::builders::RunTaskFluentBuilder;
use aws_sdk_ecs::operation::run_task::RunTaskOutput;
use aws_sdk_ecs::types::{
    AwsVpcConfiguration, ContainerOverride, LaunchType, NetworkConfiguration, TaskOverride,
};

use super::guard::Guard;
use super::tags::{tag, STARTED_BY};
use super::wait::TaskFailed;
use crate::aws::ApiError;
use crate::retry::{self, Backoff};

/// One RunTask call: what to run, where, with which overrides and tags.
#[derive(Debug, Clone)]
pub struct RunSpec {
    pub cluster: String,
    /// A task definition ARN (a resolved revision, never a bare family).
    pub task_definition: String,
    pub network: AwsVpcConfiguration,
    /// `enableExecuteCommand`: ECS refuses it for a task without a task role.
    pub exec: bool,
    /// The overrides of the container sessions use: environment, command.
    pub container: ContainerOverride,
    pub task_role: Option<String>,
    pub cpu: Option<u32>,
    pub memory: Option<u32>,
    pub tags: Vec<(&'static str, String)>,
}

impl RunSpec {
    fn request(&self, ecs: &aws_sdk_ecs::Client) -> RunTaskFluentBuilder {
        let mut overrides = TaskOverride::builder()
            .container_overrides(self.container.clone())
            .set_task_role_arn(self.task_role.clone());
        if let Some(cpu) = self.cpu {
            overrides = overrides.cpu(cpu.to_string());
        }
        if let Some(memory) = self.memory {
            overrides = overrides.memory(memory.to_string());
        }
        let mut request = ecs
            .run_task()
            .cluster(&self.cluster)
            .task_definition(&self.task_definition)
            .launch_type(LaunchType::Fargate)
            .count(1)
            .enable_execute_command(self.exec)
            .started_by(STARTED_BY)
            .network_configuration(
                NetworkConfiguration::builder()
                    .awsvpc_configuration(self.network.clone())
                    .build(),
            )
            .overrides(overrides.build());
        for (key, value) in &self.tags {
            request = request.tags(tag(key, value));
        }
        request
    }
}

/// How long RunTask is retried while ECS reports capacity or ENI shortages.
const RUN_TASK_BUDGET: Duration = Duration::from_secs(60);

/// The started task's ARN, or ECS's reasons for not starting one.
fn started_task(out: &RunTaskOutput) -> Result<String, TaskFailed> {
    if let Some(arn) = out.tasks().first().and_then(|t| t.task_arn()) {
        return Ok(arn.to_string());
    }
    let reasons: Vec<&str> = out
        .failures()
        .iter()
        .map(|f| f.reason().unwrap_or("unknown reason"))
        .collect();
    let reason = out
        .failures()
        .iter()
        .map(|f| {
            format!(
                "{}{}",
                f.reason().unwrap_or("unknown reason"),
                f.detail().map(|d| format!(" ({d})")).unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    if !reasons.is_empty() && reasons.iter().all(|r| is_passing_shortage(r)) {
        return Err(TaskFailed::Shortage { reason });
    }
    Err(TaskFailed::Rejected { reason })
}

/// Failure reasons that say "not now" rather than "not like this" (ECS API failure
/// reasons): Fargate out of capacity in the zone, or short of ENIs or other resources.
fn is_passing_shortage(reason: &str) -> bool {
    reason.starts_with("RESOURCE:") || reason.contains("Capacity is unavailable")
}

/// Sends the RunTask request and returns the task's ARN, retrying with backoff (bounded)
/// while ECS answers with a passing shortage. Each call goes through the guard on its
/// own, so the guard owns whatever it starts, and a session that is being torn down
/// starts nothing more (the guard refuses).
pub async fn run_task(
    ecs: &aws_sdk_ecs::Client,
    guard: &Guard,
    spec: &RunSpec,
) -> anyhow::Result<String> {
    let request = spec.request(ecs);
    retry::until_settled(
        RUN_TASK_BUDGET,
        Backoff::settling(),
        || {
            let request = request.clone();
            guard.launch(async move {
                let out = request
                    .send()
                    .await
                    .map_err(|e| ApiError::from_sdk("ecs:RunTask", e))?;
                Ok(started_task(&out)?)
            })
        },
        |err| matches!(err.downcast_ref(), Some(TaskFailed::Shortage { .. })),
        |err| tracing::warn!("{err}; retrying"),
    )
    .await
}
