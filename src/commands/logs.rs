//! `jump logs SESSION [--follow]`: a session task's container output, read from the
//! CloudWatch Logs stream the awslogs driver writes (the task definition says where).

use std::time::Duration;

use anyhow::Context as _;

use super::choose::chosen_session;
use super::cluster;
use crate::aws::describe_task;
use crate::aws::{log_page_from_head, ApiError, Clients};
use crate::cli::{GlobalArgs, LogsArgs};
use crate::exit::Exit;
use crate::output::Output;
use crate::session::record::{session_task, Whose};
use crate::task::awslogs::AwsLogs;

const FOLLOW_INTERVAL: Duration = Duration::from_secs(1);

pub async fn run(global: GlobalArgs, output: Output, args: LogsArgs) -> anyhow::Result<Exit> {
    let cluster = cluster(&args.cluster)?;
    let clients = Clients::new(global.profile.as_deref(), global.region.as_deref()).await?;
    let named = args.session.as_deref();
    let id = chosen_session(
        named,
        &clients,
        &cluster,
        output,
        "jump logs SESSION",
        |_| true,
    )
    .await?;
    let task_arn = session_task(&clients, &cluster, &id, Whose::Anyones).await?;
    let (group, stream) = log_stream(&clients.ecs, &cluster, &task_arn).await?;
    let mut token: Option<String> = None;
    // After the task has stopped, one more read picks up what it wrote last.
    let mut last_read = !args.follow;
    loop {
        let page = log_page_from_head(&clients.logs, &group, &stream, token.clone()).await?;
        for event in page.events() {
            let message = event.message().unwrap_or_default();
            if output.json() {
                output.print(
                    &serde_json::json!({ "timestamp": event.timestamp(), "message": message })
                        .to_string(),
                );
            } else {
                output.print(message);
            }
        }
        let next = page.next_forward_token().map(str::to_string);
        let drained = page.events().is_empty() || next == token;
        token = next;
        if drained {
            if last_read {
                return Ok(Exit::Success);
            }
            last_read = stopped(&clients.ecs, &cluster, &task_arn).await?;
            if !last_read {
                tokio::time::sleep(FOLLOW_INTERVAL).await;
            }
        }
    }
}

async fn stopped(ecs: &aws_sdk_ecs::Client, cluster: &str, task_arn: &str) -> anyhow::Result<bool> {
    let task = describe_task(ecs, cluster, task_arn).await?;
    Ok(task.is_none_or(|t| t.last_status() == Some("STOPPED")))
}

/// Where the awslogs driver writes the task's first container: `<prefix>/<container>/<id>`.
async fn log_stream(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
    task_arn: &str,
) -> anyhow::Result<(String, String)> {
    let task = describe_task(ecs, cluster, task_arn)
        .await?
        .with_context(|| format!("task {task_arn} not found"))?;
    let definition = ecs
        .describe_task_definition()
        .task_definition(task.task_definition_arn().unwrap_or_default())
        .send()
        .await
        .map_err(|e| ApiError::from_sdk("ecs:DescribeTaskDefinition", e))?;
    let container = definition
        .task_definition()
        .and_then(|d| d.container_definitions().first())
        .context("the task definition has no containers")?;
    let name = container.name().unwrap_or_default();
    let logs = AwsLogs::of_container(container)
        .context("the task's container does not log to CloudWatch Logs (awslogs)")?;
    let stream = logs.stream(name, task_arn).with_context(|| {
        format!(
            "the task's container logs to {} without an awslogs-stream-prefix, so its stream \
             is named after a container id jump cannot know",
            logs.group
        )
    })?;
    Ok((logs.group, stream))
}
