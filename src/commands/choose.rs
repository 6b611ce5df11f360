//! Which task a command means when the command line does not say: a session, a service,
//! a task or a container chosen from a list on a terminal (`crate::pick`), for every
//! command that takes one; and, for `exec` and `cp`, the whole way from what was named
//! (or nothing) to an ECS Exec target.

use aws_sdk_ecs::types::Task;

use super::{ls, Existing};
use crate::aws::{describe_task, ApiError, Caller, Clients};
use crate::cli::TaskArgs;
use crate::connect::target::ExecTarget;
use crate::output::{short_duration, Output};
use crate::pick::{self, Candidate, Choosing};
use crate::session::pool::is_pool_service;
use crate::session::record::{list_remote, RemoteSession};
use crate::session::SessionId;
use crate::task::{exec_agent_status, running_tasks, service_names, task_id};

/// Where `jump exec` and `jump cp` go: the session named (or, with no `--task` or
/// `--service` either, one chosen), else the task or service named or chosen; then the
/// container named, or chosen when the task has several. `how` is the command
/// (`jump exec`), for the messages that say how to name each on the command line.
pub async fn exec_target(
    clients: &Clients,
    cluster: String,
    output: Output,
    session: Option<SessionId>,
    args: TaskArgs,
    how: &str,
) -> anyhow::Result<ExecTarget> {
    let session = match session {
        None if args.task.is_none() && args.service.is_none() => {
            let instead = format!("{how} SESSION, --task TASK or --service NAME");
            Some(chosen_session(None, clients, &cluster, output, &instead, |_| true).await?)
        }
        named => named,
    };
    let task = match args.task {
        Some(named) => Some(
            chosen_task(
                &named,
                clients,
                &cluster,
                output,
                &format!("{how} --task TASK"),
            )
            .await?,
        ),
        None => None,
    };
    let service = match args.service {
        Some(named) => {
            let instead = format!("{how} --service NAME");
            Some(chosen_service(&named, clients, &cluster, output, &instead).await?)
        }
        None => None,
    };
    let task_arn = Existing::named(session, task, service)?
        .task_arn(clients, &cluster, args.container.as_deref())
        .await?;
    let instead = format!("{how} --container NAME");
    let container = chosen_container(
        args.container,
        clients,
        &cluster,
        &task_arn,
        output,
        &instead,
    )
    .await?;
    Ok(ExecTarget {
        cluster,
        task_arn,
        container,
    })
}

/// The session the user means: the one named, or else one of the caller's running
/// sessions in `cluster` (those `keep` accepts), chosen from a list on a terminal
/// (`crate::pick`); `instead` says how to name one on the command line.
pub async fn chosen_session(
    named: Option<&str>,
    clients: &Clients,
    cluster: &str,
    output: Output,
    instead: &str,
    keep: impl Fn(&SessionId) -> bool,
) -> anyhow::Result<SessionId> {
    if let Some(named) = named {
        return Ok(named.parse()?);
    }
    let me = clients.caller().await?;
    let sessions = list_remote(&clients.ecs, cluster).await?;
    pick_session(&sessions, &me, output, instead, keep)
}

/// One of `me`'s sessions among `sessions` (those `keep` accepts), chosen from a list.
pub fn pick_session(
    sessions: &[RemoteSession],
    me: &Caller,
    output: Output,
    instead: &str,
    keep: impl Fn(&SessionId) -> bool,
) -> anyhow::Result<SessionId> {
    let now = std::time::SystemTime::now();
    let candidates: Vec<Candidate> = sessions
        .iter()
        .rev() // newest first
        .filter(|s| s.tags.belongs_to(me))
        .filter_map(|s| {
            let id = s.tags.session.as_ref().filter(|id| keep(id))?;
            Some(Candidate {
                value: id.to_string(),
                label: ls::row(s, now).join("  "),
            })
        })
        .collect();
    let choosing = Choosing {
        what: "session",
        instead,
    };
    Ok(pick::one(&choosing, &candidates, output)?.parse()?)
}

/// The service the user means: the one named, or else (`--service` given alone) one of
/// the cluster's services but jump's own pools, chosen from a list on a terminal.
pub async fn chosen_service(
    named: &str,
    clients: &Clients,
    cluster: &str,
    output: Output,
    instead: &str,
) -> anyhow::Result<String> {
    if !named.is_empty() {
        return Ok(named.to_string());
    }
    let mut names = service_names(&clients.ecs, cluster).await?;
    names.retain(|name| !is_pool_service(name));
    let mut candidates = Vec::new();
    for batch in names.chunks(10) {
        let out = clients
            .ecs
            .describe_services()
            .cluster(cluster)
            .set_services(Some(batch.to_vec()))
            .send()
            .await
            .map_err(|e| ApiError::from_sdk("ecs:DescribeServices", e))?;
        for service in out.services() {
            let name = service.service_name().unwrap_or_default();
            let definition = service
                .task_definition()
                .and_then(|d| d.rsplit('/').next())
                .unwrap_or("-");
            candidates.push(Candidate {
                value: name.to_string(),
                label: format!(
                    "{name}  {}/{} running  {definition}",
                    service.running_count(),
                    service.desired_count()
                ),
            });
        }
    }
    let choosing = Choosing {
        what: "service",
        instead,
    };
    pick::one(&choosing, &candidates, output)
}

/// The task the user means: the one named, or else (`--task` given alone) one of the
/// cluster's running tasks, newest first, chosen from a list on a terminal.
pub async fn chosen_task(
    named: &str,
    clients: &Clients,
    cluster: &str,
    output: Output,
    instead: &str,
) -> anyhow::Result<String> {
    if !named.is_empty() {
        return Ok(named.to_string());
    }
    let mut tasks = running_tasks(&clients.ecs, cluster).await?;
    tasks.sort_by_key(|t| std::cmp::Reverse(t.started_at().map(|d| d.secs())));
    let now = std::time::SystemTime::now();
    let candidates: Vec<Candidate> = tasks
        .iter()
        .filter_map(|task| {
            let arn = task.task_arn()?;
            Some(Candidate {
                value: arn.to_string(),
                label: task_label(task, arn, now),
            })
        })
        .collect();
    let choosing = Choosing {
        what: "task",
        instead,
    };
    pick::one(&choosing, &candidates, output)
}

/// A task in a list: id, definition, group, when it started, whether ECS Exec can reach it.
fn task_label(task: &Task, arn: &str, now: std::time::SystemTime) -> String {
    let definition = task
        .task_definition_arn()
        .and_then(|d| d.rsplit('/').next())
        .unwrap_or("-");
    let started = task
        .started_at()
        .and_then(|at| std::time::SystemTime::try_from(*at).ok())
        .and_then(|at| now.duration_since(at).ok())
        .map(|age| format!("started {} ago", short_duration(age)))
        .unwrap_or_else(|| task.last_status().unwrap_or("-").to_lowercase());
    let exec = if task.enable_execute_command() {
        "exec"
    } else {
        "no exec"
    };
    format!(
        "{}  {definition}  {}  {started}  {exec}",
        task_id(arn),
        task.group().unwrap_or("-")
    )
}

/// The container the user means: the one named, else none when the task has one, else
/// one of its containers chosen from a list on a terminal (ECS Exec needs a name then).
pub async fn chosen_container(
    named: Option<String>,
    clients: &Clients,
    cluster: &str,
    task_arn: &str,
    output: Output,
    instead: &str,
) -> anyhow::Result<Option<String>> {
    if named.is_some() {
        return Ok(named);
    }
    let Some(task) = describe_task(&clients.ecs, cluster, task_arn).await? else {
        return Ok(None);
    };
    let containers = task.containers();
    if containers.len() < 2 {
        return Ok(None);
    }
    let candidates: Vec<Candidate> = containers
        .iter()
        .filter_map(|c| {
            let name = c.name()?;
            let image = c.image().unwrap_or("-");
            let status = c.last_status().unwrap_or("-");
            let agent = exec_agent_status(c).unwrap_or("none");
            Some(Candidate {
                value: name.to_string(),
                label: format!("{name}  {image}  {status}  exec agent {agent}"),
            })
        })
        .collect();
    let choosing = Choosing {
        what: "container",
        instead,
    };
    Ok(Some(pick::one(&choosing, &candidates, output)?))
}
