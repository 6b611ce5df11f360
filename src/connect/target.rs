//! What an ECS Exec session goes to, and how one is opened: the task and container,
//! SSM's name for them (which KMS binds session keys to), and `ExecuteCommand`. Shared by
//! our own client (`exec`), port forwarding (`forward`) and the official plugin
//! (`plugin`).

use anyhow::Context as _;
use thiserror::Error;

use crate::aws::describe_task;
use crate::aws::ApiError;
use crate::connect::agent::Agent;

/// What `jump exec` and `jump up --mode exec` connect to.
#[derive(Debug, Clone)]
pub struct ExecTarget {
    pub cluster: String,
    pub task_arn: String,
    pub container: Option<String>,
}

impl ExecTarget {
    /// The exec agent this target's sessions go to.
    pub fn agent(&self) -> Agent<'_> {
        Agent {
            cluster: &self.cluster,
            task_arn: &self.task_arn,
            container: self.container.as_deref(),
        }
    }
}

/// The session ended without telling us how. Exit code 76.
#[derive(Debug, Error)]
pub enum ExecError {
    #[error("the ECS Exec data channel failed: {0}")]
    Channel(String),
    #[error("the ECS Exec session ended without reporting the command's exit status")]
    NoStatus,
    #[error("the ECS Exec agent ended the session: {0}")]
    Ended(String),
    #[error(
        "{0} ECS Exec ends a session after 20 minutes without input (output does not count, \
         and AWS does not let the limit be changed), and the processes it started end with \
         it: keep long work in tmux or nohup on the task, or run it with `jump run`"
    )]
    Idle(String),
    #[error(
        "the container cannot take piped input byte for byte: it needs `stty` and `head -c` \
         (coreutils or busybox); add them to the image, or run jump from a terminal"
    )]
    InputUnfit,
}

/// SSM's name for the task's container: `ecs:<cluster>_<task-id>_<runtime-id>`.
pub async fn ssm_target(ecs: &aws_sdk_ecs::Client, task: &ExecTarget) -> anyhow::Result<String> {
    let described = describe_task(ecs, &task.cluster, &task.task_arn)
        .await?
        .with_context(|| format!("task {} not found", task.task_arn))?;
    let containers = described.containers();
    let container = containers
        .iter()
        .find(|c| c.name() == task.container.as_deref())
        .or_else(|| containers.first())
        .context("the task has no containers")?;
    let runtime = container
        .runtime_id()
        .context("the container has no runtime id yet (is it running?)")?;
    let cluster = task.cluster.rsplit('/').next().unwrap_or(&task.cluster);
    let task_id = task.task_arn.rsplit('/').next().unwrap_or(&task.task_arn);
    Ok(format!("ecs:{cluster}_{task_id}_{runtime}"))
}

/// An open ECS Exec session, before we connect to it.
pub struct Opened {
    pub session_id: String,
    pub url: String,
    pub token: String,
}

/// Opens the session with ECS ExecuteCommand.
pub async fn execute_command(
    ecs: &aws_sdk_ecs::Client,
    target: &ExecTarget,
    command: &str,
) -> anyhow::Result<Opened> {
    let out = ecs
        .execute_command()
        .cluster(&target.cluster)
        .task(&target.task_arn)
        .set_container(target.container.clone())
        .command(command)
        .interactive(true)
        .send()
        .await
        .map_err(|e| ApiError::from_sdk("ecs:ExecuteCommand", e))?;
    let session = out
        .session()
        .context("ECS ExecuteCommand returned no session")?;
    let url = session
        .stream_url()
        .context("no stream URL in the session")?;
    let token = session.token_value().context("no token in the session")?;
    let session_id = session.session_id().context("no session id")?;
    Ok(Opened {
        session_id: session_id.to_string(),
        url: url.to_string(),
        token: token.to_string(),
    })
}

crate::exit::exit_class!(Connect: ExecError);
