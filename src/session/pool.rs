//! A warm pool: an ECS service whose tasks are idle jumphosts, so a session claims one
//! that already runs instead of waiting a minute for Fargate.
//!
//! The service (`jump-pool-NAME`) runs the pool's own task definition
//! ([`provision::pool_task_definition`]) with ECS Exec enabled, and ECS copies its tags
//! (`jump:pool`, `jump:pool-ttl`, `jump:pool-mode`) onto every task it starts. A task is
//! warm while it carries no session tags; a session claims only one of its own mode.
//! A claim:
//!
//! 1. tags the task as the session's (owner, owner-id, session, expiry): under the
//!    shipped user policy this is allowed only on a pool task that no one has tagged, and
//!    only with the caller's own owner-id, and it is what lets the caller ECS Exec into
//!    it at all, so no one can reach a warm task before claiming it;
//! 2. creates a directory in the task through ECS Exec (`mkdir` either creates or fails,
//!    atomically): two clients that both got past the first step can never both win. In
//!    ssh mode the winner's command goes on to install the session's key
//!    (`jump-authorize`, which replaces whatever key was there) and prints the host key,
//!    which is pinned from that answer: ECS Exec is authenticated end to end, while the
//!    log stream a cold jumphost's key travels by can be written by others;
//! 3. the winner tags the task again until a fresh look shows its own session tag, in
//!    case a loser's tags landed last (the user policy refuses those; an account without
//!    it does not).
//!
//! A loser leaves the task alone; a claim that fails halfway (the task tagged, the
//! `mkdir` never run) stops the task it tagged, which the service replaces. From the
//! claim on the task is the session's like any
//! other: teardown stops it (the service starts a fresh one, so a claimed jumphost is
//! never reused) and `jump gc` reaps it once its expiry passes if the client died. Pool
//! tasks nobody claimed are bounded by their own TTL.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use aws_sdk_ecs::types::{LaunchType, PropagateTags, ServiceField, Task};
use ssh_key::rand_core::{OsRng, RngCore};
use ssh_key::PublicKey;
use thiserror::Error;

use super::guard::{stop_task, Guard};
use super::keys::parse_host_key_line;
use super::provision;
use super::tags::{tag, SessionTags, TAG_POOL, TAG_POOL_MODE, TAG_POOL_TTL};
use crate::aws::{describe_task, ApiError, Clients};
use crate::connect::exec;
use crate::connect::ssh::shell_quote;
use crate::connect::target::ExecTarget;
use crate::plan::{Mode, Plan};
use crate::task::{exec_agent_running, service_names, service_tasks};

/// Fargate's public on-demand price in us-east-1 (Linux, x86): per vCPU-hour, per GB-hour.
const VCPU_HOUR_USD: f64 = 0.04048;
const GB_HOUR_USD: f64 = 0.004445;
/// Where in a pool task a claim is made: whoever creates it owns the task.
const CLAIM_DIR: &str = "/tmp/jump-claim";

/// What every pool's service name starts with.
const SERVICE_PREFIX: &str = "jump-pool-";

/// The ECS service of pool `name`.
pub fn service_name(name: &str) -> String {
    format!("{SERVICE_PREFIX}{name}")
}

/// The names of the cluster's pool services.
pub async fn services(ecs: &aws_sdk_ecs::Client, cluster: &str) -> Result<Vec<String>, ApiError> {
    let mut names = service_names(ecs, cluster).await?;
    names.retain(|name| is_pool_service(name));
    Ok(names)
}

/// Whether a service is one of jump's pools.
pub fn is_pool_service(name: &str) -> bool {
    name.starts_with(SERVICE_PREFIX)
}

/// What `jump pool create` asks for.
pub struct PoolSpec<'a> {
    pub name: &'a str,
    pub size: u32,
    /// How long each warm task lives before the service replaces it.
    pub ttl: Duration,
}

/// A pool as `jump pool status` reports it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Status {
    pub name: String,
    pub mode: String,
    pub size: i32,
    pub warm: usize,
    pub claimed: usize,
    pub cost_per_hour_usd: f64,
}

/// Creates the pool's service, or brings an existing one to `spec` (idempotent).
/// Returns whether it was created.
pub async fn create(clients: &Clients, plan: &Plan, spec: &PoolSpec<'_>) -> anyhow::Result<bool> {
    let definition = provision::pool_task_definition(plan, &clients.region, spec.name, spec.ttl)?;
    let definition_arn = provision::ensure_task_definition(&clients.ecs, &definition).await?;
    let service = service_name(spec.name);
    let size = i32::try_from(spec.size)?;
    if let Some(existing) = describe(clients, &plan.cluster, spec.name).await? {
        if existing.status() == Some("ACTIVE") {
            clients
                .ecs
                .update_service()
                .cluster(&plan.cluster)
                .service(&service)
                .desired_count(size)
                .task_definition(&definition_arn)
                .enable_execute_command(true)
                .send()
                .await
                .map_err(|e| ApiError::from_sdk("ecs:UpdateService", e))?;
            // Tasks copy the service's tags when they start: from now on they say the new TTL.
            let arn = existing.service_arn().unwrap_or_default();
            clients
                .ecs
                .tag_resource()
                .resource_arn(arn)
                .set_tags(Some(pool_tags(spec, plan.mode)))
                .send()
                .await
                .map_err(|e| ApiError::from_sdk("ecs:TagResource", e))?;
            return Ok(false);
        }
    }
    clients
        .ecs
        .create_service()
        .cluster(&plan.cluster)
        .service_name(&service)
        .task_definition(&definition_arn)
        .desired_count(size)
        .launch_type(LaunchType::Fargate)
        .enable_execute_command(true)
        .network_configuration(
            aws_sdk_ecs::types::NetworkConfiguration::builder()
                .awsvpc_configuration(provision::network(plan)?)
                .build(),
        )
        .propagate_tags(PropagateTags::Service)
        .set_tags(Some(pool_tags(spec, plan.mode)))
        .send()
        .await
        .map_err(|e| ApiError::from_sdk("ecs:CreateService", e))?;
    Ok(true)
}

/// The service's tags, which ECS copies onto each task it starts.
fn pool_tags(spec: &PoolSpec<'_>, mode: Mode) -> Vec<aws_sdk_ecs::types::Tag> {
    vec![
        tag(TAG_POOL, spec.name),
        tag(TAG_POOL_TTL, &spec.ttl.as_secs().to_string()),
        tag(TAG_POOL_MODE, mode.as_str()),
    ]
}

async fn describe(
    clients: &Clients,
    cluster: &str,
    name: &str,
) -> anyhow::Result<Option<aws_sdk_ecs::types::Service>> {
    let out = clients
        .ecs
        .describe_services()
        .cluster(cluster)
        .services(service_name(name))
        .include(ServiceField::Tags)
        .send()
        .await
        .map_err(|e| ApiError::from_sdk("ecs:DescribeServices", e))?;
    Ok(out.services().first().cloned())
}

/// The pool's size, its warm and claimed tasks, and what it costs per hour (its task
/// definition's size at Fargate's us-east-1 price); `None` when there is no such pool.
pub async fn status(
    clients: &Clients,
    cluster: &str,
    name: &str,
) -> anyhow::Result<Option<Status>> {
    let Some(service) = describe(clients, cluster, name).await? else {
        return Ok(None);
    };
    if service.status() != Some("ACTIVE") {
        return Ok(None);
    }
    let tasks = service_tasks(&clients.ecs, cluster, &service_name(name)).await?;
    let warm = tasks.iter().filter(|t| is_warm(t)).count();
    let claimed = tasks.iter().filter(|t| is_claimed(t)).count();
    let size = service.desired_count();
    let definition = clients
        .ecs
        .describe_task_definition()
        .task_definition(service.task_definition().unwrap_or_default())
        .send()
        .await
        .map_err(|e| ApiError::from_sdk("ecs:DescribeTaskDefinition", e))?;
    let units = |text: Option<&str>| text.and_then(|t| t.parse::<f64>().ok()).unwrap_or(0.0);
    let definition = definition.task_definition();
    let (cpu, memory) = (
        units(definition.and_then(|d| d.cpu())),
        units(definition.and_then(|d| d.memory())),
    );
    let per_task = cpu / 1024.0 * VCPU_HOUR_USD + memory / 1024.0 * GB_HOUR_USD;
    Ok(Some(Status {
        name: name.to_string(),
        mode: pool_mode(service.tags()).to_string(),
        size,
        warm,
        claimed,
        cost_per_hour_usd: (per_task * f64::from(size) * 10_000.0).round() / 10_000.0,
    }))
}

/// Scales the pool to nothing and deletes its service; claimed tasks run on until their
/// sessions end. Returns whether there was a pool.
pub async fn delete(clients: &Clients, cluster: &str, name: &str) -> anyhow::Result<bool> {
    match describe(clients, cluster, name).await? {
        Some(service) if service.status() == Some("ACTIVE") => {}
        _ => return Ok(false),
    }
    clients
        .ecs
        .delete_service()
        .cluster(cluster)
        .service(service_name(name))
        .force(true)
        .send()
        .await
        .map_err(|e| ApiError::from_sdk("ecs:DeleteService", e))?;
    Ok(true)
}

fn is_claimed(task: &Task) -> bool {
    SessionTags::of(task).owner_id.is_some()
}

/// Running, reachable through ECS Exec, and nobody's.
fn is_warm(task: &Task) -> bool {
    task.last_status() == Some("RUNNING") && exec_agent_running(task, None) && !is_claimed(task)
}

/// The mode a pool's (or pool task's) jumphosts run in, by its tags; pools from before
/// ssh-mode pools are exec.
fn pool_mode(tags: &[aws_sdk_ecs::types::Tag]) -> &str {
    tags.iter()
        .find(|t| t.key() == Some(TAG_POOL_MODE))
        .and_then(|t| t.value())
        .unwrap_or(Mode::Exec.as_str())
}

/// How long a pool task has left before its own TTL ends it.
fn life_left(task: &Task, now: SystemTime) -> Option<Duration> {
    let ttl = task
        .tags()
        .iter()
        .find(|t| t.key() == Some(TAG_POOL_TTL))
        .and_then(|t| t.value()?.parse::<u64>().ok())?;
    let created = task.created_at()?;
    let born = SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(created.secs()).ok()?);
    let age = now.duration_since(born).unwrap_or_default();
    Some(Duration::from_secs(ttl).saturating_sub(age))
}

/// Someone else's `mkdir` came first.
#[derive(Debug, Error)]
#[error("another session claimed the task first")]
struct LostClaim;

/// What a claim needs to know of the session claiming.
pub struct Claimant<'a> {
    pub session: &'a str,
    /// The session's tags (owner, owner-id, session, expiry).
    pub tags: &'a [(&'static str, String)],
    /// How long the session may last: a task with less life left is passed over.
    pub ttl: Duration,
    pub container: &'a str,
    /// The session's mode: only a task of the same mode is claimed.
    pub mode: Mode,
    /// ssh mode: the session's public key, installed in the task by the claim.
    pub authorized_key: Option<&'a str>,
}

/// How a claim came out.
pub enum Claim {
    /// This task, now the session's and owned by the guard; in ssh mode, the host key
    /// its sshd serves, read through ECS Exec.
    Won {
        task_arn: String,
        host_key: Option<PublicKey>,
    },
    /// No warm task could be had: every one is claimed, starting, or too near its end.
    NoneWarm,
    /// The pool's warm tasks are all of another mode than the session's.
    OtherMode(String),
    /// The cluster has no such pool.
    NoPool,
}

/// Claims a warm task of pool `name` for the session (the caller starts one cold when
/// none can be had).
pub async fn claim(
    clients: &Clients,
    guard: &Guard,
    cluster: &str,
    name: &str,
    claimant: &Claimant<'_>,
) -> anyhow::Result<Claim> {
    let now = SystemTime::now();
    let tasks = match service_tasks(&clients.ecs, cluster, &service_name(name)).await {
        Ok(tasks) => tasks,
        Err(err) if err.code.as_deref() == Some("ServiceNotFoundException") => {
            return Ok(Claim::NoPool)
        }
        Err(err) => return Err(err.into()),
    };
    let (mine, other): (Vec<Task>, Vec<Task>) = tasks
        .into_iter()
        .filter(is_warm)
        .partition(|t| pool_mode(t.tags()) == claimant.mode.as_str());
    if mine.is_empty() {
        if let Some(task) = other.first() {
            return Ok(Claim::OtherMode(pool_mode(task.tags()).to_string()));
        }
    }
    let mut candidates: Vec<Task> = mine
        .into_iter()
        .filter(|t| life_left(t, now).is_some_and(|left| left >= claimant.ttl))
        .collect();
    // Concurrent claimers start from different tasks, so most win their first try.
    if !candidates.is_empty() {
        let start = OsRng.next_u32() as usize % candidates.len();
        candidates.rotate_left(start);
    }
    for task in candidates {
        let Some(arn) = task.task_arn().map(str::to_string) else {
            continue;
        };
        match claim_one(clients, guard, cluster, &arn, claimant).await {
            Ok(Some(host_key)) => {
                return Ok(Claim::Won {
                    task_arn: arn,
                    host_key,
                })
            }
            Ok(None) => tracing::debug!(arn, "another session claimed it first"),
            Err(err) => {
                tracing::warn!(arn, "could not claim a pool task: {err:#}");
                release(clients, cluster, &arn, claimant.session).await;
            }
        }
    }
    Ok(Claim::NoneWarm)
}

/// Steps 1 to 3 of the module doc for one task: `None` if another session won it, else
/// (in ssh mode) the host key the task's answer gave.
async fn claim_one(
    clients: &Clients,
    guard: &Guard,
    cluster: &str,
    arn: &str,
    claimant: &Claimant<'_>,
) -> anyhow::Result<Option<Option<PublicKey>>> {
    if owner_of(clients, cluster, arn).await?.is_some() {
        return Ok(None); // claimed since it was listed
    }
    tag_task(clients, arn, claimant.tags).await?;
    let target = ExecTarget {
        cluster: cluster.to_string(),
        task_arn: arn.to_string(),
        container: Some(claimant.container.to_string()),
    };
    // The marker is printed in two pieces so that no echo of the command can look like it;
    // it comes before the key is installed, so a winner whose install fails knows it won
    // (and releases the task) instead of taking itself for a loser.
    let marker = format!("jump-claimed-{}", claimant.session);
    let authorize = match claimant.authorized_key {
        Some(key) => format!(" && jump-authorize {}", shell_quote(key)),
        None => String::new(),
    };
    let script = format!(
        "mkdir -m 700 {CLAIM_DIR} 2>/dev/null && printf 'jump-%s-%s\\n' claimed {}{authorize}",
        shell_quote(claimant.session)
    );
    let command = format!("sh -c {}", shell_quote(&script));
    let answer = Arc::new(Mutex::new(String::new()));
    let (clients, arn, tags) = (clients.clone(), arn.to_string(), claimant.tags.to_vec());
    let (cluster, session, printed) = (
        cluster.to_string(),
        claimant.session.to_string(),
        answer.clone(),
    );
    let won = guard
        .launch(async move {
            let output = exec::capture(&clients, &target, &command).await?;
            let output = String::from_utf8_lossy(&output).into_owned();
            let ours = output.contains(&marker);
            *printed.lock().unwrap_or_else(PoisonError::into_inner) = output;
            if !ours {
                return Err(LostClaim.into());
            }
            // The loser's tags may have landed after ours (under the user policy they
            // cannot, once ours are there): the task is ours, so its tags say so.
            for _ in 0..3 {
                tag_task(&clients, &arn, &tags).await?;
                if session_of(&clients, &cluster, &arn).await?.as_deref() == Some(session.as_str())
                {
                    return Ok(arn);
                }
            }
            anyhow::bail!("another session keeps tagging task {arn} as its own")
        })
        .await;
    match won {
        Ok(_) if claimant.authorized_key.is_some() => {
            let printed = answer.lock().unwrap_or_else(PoisonError::into_inner);
            Ok(Some(Some(host_key_in(&printed)?)))
        }
        Ok(_) => Ok(Some(None)),
        Err(err) if err.is::<LostClaim>() => Ok(None),
        Err(err) => Err(err),
    }
}

/// The one host key line of a claim's answer (`jump-authorize` prints it).
fn host_key_in(printed: &str) -> anyhow::Result<PublicKey> {
    let mut keys = printed.lines().filter_map(parse_host_key_line);
    match (keys.next(), keys.next()) {
        (Some(key), None) => Ok(key?),
        (None, _) => anyhow::bail!(
            "the pool task printed no host key when claimed (is it jump's jumphost image, with \
             jump-authorize?): {}",
            printed.trim()
        ),
        (Some(_), Some(_)) => anyhow::bail!("the pool task printed more than one host key"),
    }
}

/// A claim that failed halfway (tagged, but the claim inside never ran) leaves a task
/// nobody else may claim: if it still says it is this session's, it is stopped, and the
/// service replaces it.
async fn release(clients: &Clients, cluster: &str, arn: &str, session: &str) {
    let ours = matches!(session_of(clients, cluster, arn).await, Ok(Some(s)) if s == session);
    if ours {
        if let Err(err) = stop_task(&clients.ecs, cluster, arn, "jump: a pool claim failed").await {
            tracing::warn!(arn, "could not release a half-claimed pool task: {err}");
        }
    }
}

/// The owner id and session tags a task carries now.
async fn claim_tags(clients: &Clients, cluster: &str, arn: &str) -> anyhow::Result<SessionTags> {
    let task = describe_task(&clients.ecs, cluster, arn).await?;
    Ok(task.as_ref().map(SessionTags::of).unwrap_or_default())
}

async fn owner_of(clients: &Clients, cluster: &str, arn: &str) -> anyhow::Result<Option<String>> {
    Ok(claim_tags(clients, cluster, arn).await?.owner_id)
}

async fn session_of(clients: &Clients, cluster: &str, arn: &str) -> anyhow::Result<Option<String>> {
    Ok(claim_tags(clients, cluster, arn)
        .await?
        .session
        .map(|id| id.to_string()))
}

async fn tag_task(
    clients: &Clients,
    arn: &str,
    tags: &[(&'static str, String)],
) -> anyhow::Result<()> {
    clients
        .ecs
        .tag_resource()
        .resource_arn(arn)
        .set_tags(Some(tags.iter().map(|(k, v)| tag(k, v)).collect()))
        .send()
        .await
        .map_err(|e| ApiError::from_sdk("ecs:TagResource", e))?;
    Ok(())
}
