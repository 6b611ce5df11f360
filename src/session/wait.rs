//! Waiting for the task: poll `DescribeTasks` until it runs, or explain why it did not.
//!
//! Fargate usually needs tens of seconds, but the first transitions can be quick, so the
//! poll interval starts short and grows (250 ms × 1.5 up to 2 s): responsive early,
//! cheap later. A task that stops instead of running is the most common failure (bad
//! image, missing role, no route to the registry), so the error carries everything ECS
//! knows plus the task's last log lines — usually enough to fix it without a console.
//! A start that takes longer than [`SLOW_START`] is not waited out in silence: the wait
//! says what the task is waiting for (capacity and its network interface, its image, its
//! exec agent), from the task's own status fields, each time that changes.

use std::fmt;
use std::time::{Duration, Instant, SystemTime};

use aws_sdk_ecs::types::Task;
use thiserror::Error;

use crate::aws::{describe_task, ApiError, Clients};
use crate::retry::{self, Backoff};
use crate::task::awslogs::AwsLogs;
use crate::task::{eni, exec_agent_running};

/// How many log lines a stopped-task error shows.
const TAIL_LINES: i32 = 20;
/// How long a start may take before the wait says what it is waiting for.
const SLOW_START: Duration = Duration::from_secs(20);

/// The task did not become usable. Exit code 75.
#[derive(Debug, Error)]
pub enum TaskFailed {
    #[error("ECS refused to start the task: {reason}")]
    Rejected { reason: String },
    #[error(
        "ECS cannot start the task for now: {reason} (jump retries this for a minute; if it \
         persists, add subnets in other availability zones, or try again later)"
    )]
    Shortage { reason: String },
    #[error("the task did not reach RUNNING within {} (last status: {last_status})", humantime::format_duration(*.waited))]
    Timeout {
        waited: Duration,
        last_status: String,
    },
    #[error("{0}")]
    Stopped(Box<StoppedTask>),
}

/// How long a task is started again while ECS cannot assume its roles yet.
const ROLE_SETTLE: Duration = Duration::from_secs(45);

/// Runs `launch` (start a task and wait for it) again, bounded, while the task stops
/// because ECS "was unable to assume the role": what a role created seconds ago looks
/// like while IAM propagates it (as right after `jump init`). `note` hears each retry.
///
/// A relaunch happens only once the previous task has STOPPED (that is what the error
/// says), so the guard, which owns one task at a time, never loses a running one. The
/// same words also mean a role whose trust policy does not let ECS tasks in, which no
/// wait cures: the final error says to check that.
pub async fn until_roles_assumable<T, Fut>(
    launch: impl FnMut() -> Fut,
    mut note: impl FnMut(&str),
) -> anyhow::Result<T>
where
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    retry::until_settled(ROLE_SETTLE, Backoff::settling(), launch, role_not_assumable, |_| {
        note("ECS cannot assume the task's roles yet (a new IAM role takes a few seconds); starting again")
    })
    .await
    .map_err(|err| {
        if role_not_assumable(&err) {
            err.context(
                "ECS still could not assume the task's roles after 45 s: if they are not brand \
                 new, check that their trust policy lets ecs-tasks.amazonaws.com assume them \
                 (templates/ecs-tasks-trust-policy.json) and that you may pass them (iam:PassRole)",
            )
        } else {
            err
        }
    })
}

fn role_not_assumable(err: &anyhow::Error) -> bool {
    matches!(
        err.downcast_ref::<TaskFailed>(),
        Some(TaskFailed::Stopped(stopped)) if stopped
            .stopped_reason
            .as_deref()
            .is_some_and(|r| r.contains("unable to assume the role"))
    )
}

/// Everything known about a task that stopped when it should have been running.
#[derive(Debug, Default)]
pub struct StoppedTask {
    pub task_arn: String,
    pub stopped_reason: Option<String>,
    pub stop_code: Option<String>,
    pub container_reason: Option<String>,
    pub exit_code: Option<i32>,
    pub log_stream: String,
    pub logs: Vec<String>,
}

impl fmt::Display for StoppedTask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the task stopped: {}",
            self.stopped_reason.as_deref().unwrap_or("no reason given")
        )?;
        if let Some(code) = &self.stop_code {
            write!(f, " [{code}]")?;
        }
        if let Some(reason) = &self.container_reason {
            write!(f, "\n  container: {reason}")?;
        }
        if let Some(code) = self.exit_code {
            write!(f, "\n  container exit code: {code}")?;
        }
        write!(f, "\n  task: {}", self.task_arn)?;
        if self.log_stream.is_empty() {
            write!(f, "\n  (the container does not log to CloudWatch Logs)")?;
        } else if self.logs.is_empty() {
            write!(f, "\n  (no log lines in {})", self.log_stream)?;
        } else {
            write!(f, "\n  last log lines from {}:", self.log_stream)?;
            for line in &self.logs {
                write!(f, "\n    {line}")?;
            }
        }
        Ok(())
    }
}

/// Where to reach a running task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub private_ip: String,
    pub public_ip: Option<String>,
    /// When the task's image was pulled (else when the task was created): its container
    /// cannot have logged anything earlier.
    pub not_before: SystemTime,
}

/// What to wait for.
#[derive(Debug, Clone)]
pub struct WaitSpec<'a> {
    pub cluster: &'a str,
    pub task_arn: &'a str,
    pub container: &'a str,
    /// Where the container's awslogs driver writes; without it (or without a stream
    /// prefix) a stopped task's error carries no log lines.
    pub logs: Option<&'a AwsLogs>,
    pub public: bool,
    /// Also wait for the ECS Exec agent (exec mode connects through it).
    pub exec_agent: bool,
    pub timeout: Duration,
}

/// Polls until the task runs and has the addresses we need, reporting each new status
/// through `on_stage`.
pub async fn wait_running(
    clients: &Clients,
    spec: &WaitSpec<'_>,
    mut on_stage: impl FnMut(&str),
) -> anyhow::Result<Endpoint> {
    let started = Instant::now();
    let mut backoff = Backoff::polling();
    let mut last_status = String::from("UNKNOWN");
    let mut said = String::new();
    loop {
        if let Some(task) = describe_task(&clients.ecs, spec.cluster, spec.task_arn).await? {
            let status = task.last_status().unwrap_or("UNKNOWN");
            if status != last_status {
                on_stage(status);
                last_status = status.to_string();
            }
            if started.elapsed() >= SLOW_START {
                let now = waiting_for(&task, spec);
                if now != said {
                    let after = started.elapsed().as_secs();
                    on_stage(&format!("still starting after {after}s: waiting for {now}"));
                    said = now;
                }
            }
            match status {
                "STOPPED" => return Err(stopped_error(clients, spec, &task).await.into()),
                "RUNNING" => {
                    if let Some(endpoint) = endpoint(clients, spec, &task).await? {
                        return Ok(endpoint);
                    }
                }
                _ => {}
            }
        }
        if started.elapsed() >= spec.timeout {
            return Err(TaskFailed::Timeout {
                waited: spec.timeout,
                last_status,
            }
            .into());
        }
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

/// What a task that is not usable yet waits for, in words, from what ECS reports of it.
fn waiting_for(task: &Task, spec: &WaitSpec<'_>) -> String {
    let interface = task
        .attachments()
        .iter()
        .find(|a| a.r#type() == Some("ElasticNetworkInterface"))
        .and_then(|a| a.status());
    let images = || {
        task.containers()
            .iter()
            .filter_map(|c| c.image())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match task.last_status().unwrap_or("UNKNOWN") {
        "PROVISIONING" => match interface {
            Some(status) => format!(
                "Fargate capacity and the task's network interface (ENI {})",
                status.to_ascii_lowercase()
            ),
            None => "Fargate capacity".to_string(),
        },
        "PENDING" => match (task.pull_started_at(), task.pull_stopped_at()) {
            (Some(_), None) => format!("its image to be pulled ({})", images()),
            (Some(_), Some(_)) => "its containers to start (the image is pulled)".to_string(),
            _ => "the image pull to begin (registry access, the route to it)".to_string(),
        },
        "ACTIVATING" => "ECS to finish activating it".to_string(),
        "RUNNING" if eni::private_ip(task).is_none() => "its private address".to_string(),
        "RUNNING" if spec.exec_agent && !exec_agent_running(task, None) => {
            let agent = task
                .containers()
                .iter()
                .find_map(crate::task::exec_agent_status)
                .unwrap_or("not reported yet");
            format!("its ECS Exec agent (status: {agent})")
        }
        "RUNNING" if spec.public => "its public address".to_string(),
        other => format!("ECS (the task is {other})"),
    }
}

/// The endpoint once every address it needs has been assigned.
async fn endpoint(
    clients: &Clients,
    spec: &WaitSpec<'_>,
    task: &Task,
) -> Result<Option<Endpoint>, ApiError> {
    let Some(private_ip) = eni::private_ip(task) else {
        return Ok(None);
    };
    if spec.exec_agent && !exec_agent_running(task, None) {
        return Ok(None);
    }
    let public_ip = if spec.public {
        let Some(eni) = eni::interface_id(task) else {
            return Ok(None);
        };
        match eni::public_ip(&clients.ec2, &eni).await? {
            Some(ip) => Some(ip),
            None => return Ok(None),
        }
    } else {
        None
    };
    let not_before = task
        .pull_stopped_at()
        .or(task.created_at())
        .and_then(|t| SystemTime::try_from(*t).ok())
        .unwrap_or(SystemTime::UNIX_EPOCH);
    Ok(Some(Endpoint {
        private_ip,
        public_ip,
        not_before,
    }))
}

/// Returns once the task has stopped, with why: raced against a wait for something the
/// task provides (its host key, its sshd), so that a task dying meanwhile ends the wait
/// at once with its own reason instead of at the deadline with a vaguer one.
pub async fn until_stopped(clients: &Clients, spec: &WaitSpec<'_>) -> TaskFailed {
    let mut backoff = Backoff::polling();
    loop {
        tokio::time::sleep(backoff.next_delay()).await;
        if let Ok(Some(task)) = describe_task(&clients.ecs, spec.cluster, spec.task_arn).await {
            if task.last_status() == Some("STOPPED") {
                return stopped_error(clients, spec, &task).await;
            }
        }
    }
}

/// Builds the stopped-task error from the task and its last log lines.
pub async fn stopped_error(clients: &Clients, spec: &WaitSpec<'_>, task: &Task) -> TaskFailed {
    let container = task
        .containers()
        .iter()
        .find(|c| c.name() == Some(spec.container))
        .or_else(|| task.containers().first());
    let stream = spec.logs.and_then(|logs| {
        let name = logs.stream(spec.container, spec.task_arn)?;
        Some((logs.group.as_str(), name))
    });
    let logs = match &stream {
        Some((group, name)) => recent_logs(&clients.logs, group, name).await,
        None => Vec::new(),
    };
    TaskFailed::Stopped(Box::new(StoppedTask {
        task_arn: spec.task_arn.to_string(),
        stopped_reason: task.stopped_reason().map(str::to_string),
        stop_code: task.stop_code().map(|c| c.as_str().to_string()),
        container_reason: container.and_then(|c| c.reason()).map(str::to_string),
        exit_code: container.and_then(|c| c.exit_code()),
        log_stream: stream.map_or_else(String::new, |(group, name)| format!("{group}:{name}")),
        logs,
    }))
}

/// The last lines of a log stream; best effort, since this only decorates an error.
async fn recent_logs(
    logs: &aws_sdk_cloudwatchlogs::Client,
    group: &str,
    stream: &str,
) -> Vec<String> {
    let out = logs
        .get_log_events()
        .log_group_name(group)
        .log_stream_name(stream)
        .start_from_head(false)
        .limit(TAIL_LINES)
        .send()
        .await;
    match out {
        Ok(out) => out
            .events()
            .iter()
            .filter_map(|e| e.message())
            .map(|m| m.trim_end().to_string())
            .collect(),
        Err(e) => {
            tracing::debug!(error = %ApiError::from_sdk("logs:GetLogEvents", e), "no task logs");
            Vec::new()
        }
    }
}

crate::exit::exit_class!(TaskFailed: TaskFailed);

#[cfg(test)]
mod tests {
    use aws_sdk_ecs::primitives::DateTime;
    use aws_sdk_ecs::types::{Attachment, Container, ManagedAgent, ManagedAgentName};

    use super::*;

    #[test]
    fn a_slow_start_says_what_the_task_waits_for() {
        let spec = WaitSpec {
            cluster: "c",
            task_arn: "t",
            container: "jumphost",
            logs: None,
            public: false,
            exec_agent: true,
            timeout: Duration::from_secs(300),
        };
        let eni = |status: &str| {
            Attachment::builder()
                .r#type("ElasticNetworkInterface")
                .status(status)
                .build()
        };
        let image = Container::builder().image("registry/jumphost:1").build();
        let provisioning = Task::builder()
            .last_status("PROVISIONING")
            .attachments(eni("PRECREATED"))
            .build();
        let pulling = Task::builder()
            .last_status("PENDING")
            .pull_started_at(DateTime::from_secs(1))
            .containers(image.clone())
            .build();
        let pulled = Task::builder()
            .last_status("PENDING")
            .pull_started_at(DateTime::from_secs(1))
            .pull_stopped_at(DateTime::from_secs(9))
            .build();
        let agent = ManagedAgent::builder()
            .name(ManagedAgentName::ExecuteCommandAgent)
            .last_status("PENDING")
            .build();
        let addressed = Attachment::builder()
            .r#type("ElasticNetworkInterface")
            .status("ATTACHED")
            .details(
                aws_sdk_ecs::types::KeyValuePair::builder()
                    .name("privateIPv4Address")
                    .value("10.0.0.5")
                    .build(),
            )
            .build();
        let agent_starting = Task::builder()
            .last_status("RUNNING")
            .attachments(addressed)
            .containers(Container::builder().managed_agents(agent).build())
            .build();
        let said = |task: &Task| waiting_for(task, &spec);
        assert_eq!(
            said(&provisioning),
            "Fargate capacity and the task's network interface (ENI precreated)"
        );
        assert_eq!(
            said(&pulling),
            "its image to be pulled (registry/jumphost:1)"
        );
        assert_eq!(
            said(&pulled),
            "its containers to start (the image is pulled)"
        );
        assert_eq!(
            said(&agent_starting),
            "its ECS Exec agent (status: PENDING)"
        );
    }

    #[test]
    fn stopped_message_carries_details() {
        let text = TaskFailed::Stopped(Box::new(StoppedTask {
            task_arn: "arn:t".into(),
            stopped_reason: Some("Essential container in task exited".into()),
            stop_code: Some("EssentialContainerExited".into()),
            container_reason: Some("CannotPullContainerError".into()),
            exit_code: Some(1),
            log_stream: "/g:jump/c/t".into(),
            logs: vec!["line one".into(), "line two".into()],
        }))
        .to_string();
        for part in [
            "Essential container in task exited",
            "[EssentialContainerExited]",
            "CannotPullContainerError",
            "exit code: 1",
            "line two",
            "/g:jump/c/t",
        ] {
            assert!(text.contains(part), "{part} missing from {text}");
        }
    }
}
