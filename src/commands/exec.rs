//! `jump exec`: a shell or a command in a task, through ECS Exec and our own
//! Session Manager client.
//!
//! Unlike `jump ssh`, this needs no local key material, so it works from any machine
//! for any session (or, with `--task` or `--service`, any exec-enabled task).

use aws_sdk_ecs::types::Task;

use crate::aws::Clients;
use crate::cli::{ExecArgs, GlobalArgs};
use crate::connect::exec;
use crate::connect::target::ExecTarget;
use crate::exit::{Exit, UsageError};
use crate::output::Output;
use crate::session::record::{session_task, Whose};
use crate::session::wait::{exec_agent_running, newest, service_tasks, TaskFailed};
use crate::session::SessionId;
use crate::signals::ChildPid;

use super::cluster;

pub async fn run(
    global: GlobalArgs,
    output: Output,
    child: ChildPid,
    args: ExecArgs,
) -> anyhow::Result<Exit> {
    let session: Option<SessionId> = args.session.as_deref().map(str::parse).transpose()?;
    let cluster = cluster(&args.cluster)?;
    let clients = Clients::new(global.profile.as_deref(), global.region.as_deref())
        .await?
        .with_ssm_plugin(global.ssm_plugin.clone());
    let task_arn = if let Some(id) = session {
        session_task(&clients, &cluster, &id, Whose::Mine).await?
    } else if let Some(task) = args.task {
        task
    } else if let Some(service) = &args.service {
        service_task(&clients.ecs, &cluster, service, args.container.as_deref()).await?
    } else {
        return Err(UsageError("name a SESSION, a --task or a --service".into()).into());
    };
    if !output.json() {
        output.note(&format!("jump: ECS Exec into {task_arn}"));
    }
    let target = ExecTarget {
        cluster,
        task_arn,
        container: args.container,
    };
    let code = exec::run(&clients, &target, &args.command, &child).await?;
    Ok(Exit::Remote(code))
}

/// The newest of the service's running tasks whose exec agent runs (in `container`, if
/// named): the one a deployment most recently started, so the current code.
async fn service_task(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
    service: &str,
    container: Option<&str>,
) -> anyhow::Result<String> {
    let tasks = service_tasks(ecs, cluster, service).await?;
    if tasks.is_empty() {
        return Err(TaskFailed::Rejected {
            reason: format!("service {service} has no running tasks in cluster {cluster}"),
        }
        .into());
    }
    let ready = tasks.iter().filter(|t| {
        t.last_status() == Some("RUNNING")
            && t.enable_execute_command()
            && exec_agent_running(t, container)
    });
    match newest(ready).and_then(Task::task_arn) {
        Some(arn) => Ok(arn.to_string()),
        None => {
            Err(TaskFailed::Rejected {
                reason: format!(
                "none of service {service}'s {} running task(s) can be reached with ECS Exec{}: \
                 the service needs enableExecuteCommand and a new deployment, and the exec \
                 agent must be RUNNING (`jump doctor --service {service}` checks each step)",
                tasks.len(),
                container.map(|c| format!(" in container {c}")).unwrap_or_default()
            ),
            }
            .into())
        }
    }
}
