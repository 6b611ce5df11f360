//! Why ECS Exec cannot open a channel into a task, in terms a user can act on.
//!
//! ExecuteCommand answers a task whose role may not open Session Manager channels with
//! an opaque `TargetNotConnectedException` ("internal error, try again later"). The usual
//! cause is the task role, so we ask IAM's policy simulator which of the four
//! `ssmmessages` actions the role is denied, and name them.

use thiserror::Error;

use crate::aws::describe_task;
use crate::aws::Clients;
use crate::policy_sim::{denied, Question};

/// What the task role needs for ECS Exec's control and data channels.
pub const CHANNEL_ACTIONS: [&str; 4] = [
    "ssmmessages:CreateControlChannel",
    "ssmmessages:CreateDataChannel",
    "ssmmessages:OpenControlChannel",
    "ssmmessages:OpenDataChannel",
];

/// A missing ECS Exec prerequisite. Exit code 76.
#[derive(Debug, Error)]
pub enum AccessError {
    #[error(
        "ECS Exec cannot open a channel into task {task}: its task role {role} is not allowed {} \
         (IAM policy simulation, check task-role-channels); add the permission to the role \
         (templates/task-role-policy.json), or give `jump run` a --task-role that has it; \
         `jump doctor --task {task}` checks every ECS Exec prerequisite",
        missing.join(", ")
    )]
    Denied {
        task: String,
        role: String,
        missing: Vec<String>,
    },
    #[error(
        "ECS Exec cannot open a channel into task {task}: the task has no task role, and ECS \
         Exec needs one allowed {} (check task-role); `jump doctor --task {task}` checks \
         every ECS Exec prerequisite",
        CHANNEL_ACTIONS.join(", ")
    )]
    NoRole { task: String },
}

/// The missing prerequisite, if we can name one.
pub async fn diagnose(clients: &Clients, cluster: &str, task_arn: &str) -> Option<AccessError> {
    let task = describe_task(&clients.ecs, cluster, task_arn)
        .await
        .ok()??;
    let overridden = task
        .overrides()
        .and_then(|o| o.task_role_arn())
        .map(str::to_string);
    let role = match overridden {
        Some(role) => Some(role),
        None => task_definition_role(&clients.ecs, task.task_definition_arn()?).await,
    };
    let Some(role) = role else {
        return Some(AccessError::NoRole {
            task: task_arn.to_string(),
        });
    };
    let missing = denied(&clients.iam, &role, &Question::new(&CHANNEL_ACTIONS, "*"))
        .await
        .ok()?;
    (!missing.is_empty()).then(|| AccessError::Denied {
        task: task_arn.to_string(),
        role,
        missing,
    })
}

pub async fn task_definition_role(ecs: &aws_sdk_ecs::Client, arn: &str) -> Option<String> {
    let out = ecs
        .describe_task_definition()
        .task_definition(arn)
        .send()
        .await
        .ok()?;
    out.task_definition()?.task_role_arn().map(str::to_string)
}

crate::exit::exit_class!(Connect: AccessError);
