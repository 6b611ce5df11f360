//! Reaching a task's exec agent while Session Manager is still catching up with it.
//!
//! ECS reports the ExecuteCommandAgent RUNNING a few seconds before Session Manager can
//! route a session to it; meanwhile ExecuteCommand answers `TargetNotConnectedException`
//! and StartSession `TargetNotConnected` (AWS, containers-roadmap#187). jump connects the
//! moment the agent reports RUNNING, so it must expect that answer, but the same answer
//! also means "this task's role may not open channels" or "the agent cannot reach
//! ssmmessages", which never pass. So: a refusal within [`SETTLE`] of the agent's start
//! is retried, unless IAM's simulator already names a missing permission; anything
//! later, or still refused when the window closes, goes to the caller's diagnosis.

use std::future::Future;
use std::time::{Duration, SystemTime};

use super::exec_access::diagnose;
use crate::aws::describe_task;
use crate::aws::{ApiError, Clients};
use crate::retry::{self, Backoff};

/// How long after the agent's start a "not connected" is taken for Session Manager
/// still catching up.
pub const SETTLE: Duration = Duration::from_secs(60);

/// Which agent a session goes to: a task, and the container whose agent it uses (the
/// first with an agent when `None`).
#[derive(Debug, Clone, Copy)]
pub struct Agent<'a> {
    pub cluster: &'a str,
    pub task_arn: &'a str,
    pub container: Option<&'a str>,
}

/// Runs `call` (an ExecuteCommand or StartSession for `target`'s agent), waiting out the
/// agent's first seconds as described in the module docs.
pub async fn when_reachable<T, F, Fut>(
    clients: &Clients,
    target: Agent<'_>,
    mut call: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let refused = match call().await {
        Err(err) if not_connected(&err) => err,
        outcome => return outcome,
    };
    let Some(age) = agent_age(clients, target).await.filter(|age| *age < SETTLE) else {
        return Err(refused);
    };
    if let Some(access) = diagnose(clients, target.cluster, target.task_arn).await {
        return Err(access.into());
    }
    tracing::info!("the exec agent started {age:?} ago and is not reachable yet; retrying");
    retry::until_settled(
        SETTLE - age,
        Backoff::polling(),
        call,
        not_connected,
        |_| {},
    )
    .await
}

/// ECS's and SSM's words for "the agent is not connected to Session Manager".
fn not_connected(err: &anyhow::Error) -> bool {
    err.downcast_ref::<ApiError>().is_some_and(|api| {
        matches!(
            api.code.as_deref(),
            Some("TargetNotConnectedException" | "TargetNotConnected")
        )
    })
}

/// How long ago the target container's exec agent (re)started, by ECS's clock.
async fn agent_age(clients: &Clients, target: Agent<'_>) -> Option<Duration> {
    let task = describe_task(&clients.ecs, target.cluster, target.task_arn)
        .await
        .ok()??;
    let started = task
        .containers()
        .iter()
        .filter(|c| target.container.is_none() || c.name() == target.container)
        .flat_map(|c| c.managed_agents())
        .filter(|a| a.name().map(|n| n.as_str()) == Some("ExecuteCommandAgent"))
        .find_map(|a| a.last_started_at())?;
    let started = SystemTime::try_from(*started).ok()?;
    Some(
        SystemTime::now()
            .duration_since(started)
            .unwrap_or_default(),
    )
}
