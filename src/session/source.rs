//! Where a session's task comes from (its launch source), and what it takes to start one.
//!
//! A cold jumphost runs jump's own task definition where jump.toml says (`up`,
//! `forward`). A one-off runs a service's own task definition, network and roles, or a
//! task definition's, with its main command replaced by a keep-alive, so the user's
//! command runs through ECS Exec with a real terminal (`run`). Each source ends in the
//! same [`Prepared`] launch, so the lifecycle (`super::lifecycle`) treats them alike; a
//! warm pool will be one more source.

use std::time::{Duration, SystemTime};

use aws_sdk_ecs::types::{AwsVpcConfiguration, ContainerOverride, KeyValuePair};

use super::keys::SessionDir;
use super::launch::RunSpec;
use super::provision::{self, Launch};
use super::tags::session_tags;
use super::SessionId;
use crate::arn::revision_name;
use crate::aws::{ApiError, Caller, Clients};
use crate::exit::UsageError;
use crate::output::Output;
use crate::plan::{Mode, Plan, SshVia};
use crate::task::awslogs::AwsLogs;

/// How long a one-off task may take to start.
const ONE_OFF_WAIT: Duration = Duration::from_secs(5 * 60);

/// Where the session's task comes from.
pub enum Source {
    /// jump's own task definition, as the plan says.
    Cold(Box<Plan>),
    /// A service's or a task definition's own, as `jump run` was asked.
    OneOff(Box<OneOff>),
}

/// A one-off task, its input checked before any AWS call.
pub struct OneOff {
    pub cluster: String,
    pub origin: Origin,
    /// The container commands run in; else the first essential one.
    pub container: Option<String>,
    pub task_role: Option<String>,
    pub cpu: Option<u32>,
    pub memory: Option<u32>,
    pub env: Vec<(String, String)>,
    pub ttl: Duration,
}

/// What a one-off copies.
pub enum Origin {
    /// The service's current task definition and network configuration.
    Service(String),
    /// A task definition (family, `family:revision` or ARN), placed where jump.toml says.
    TaskDefinition {
        name: String,
        network: AwsVpcConfiguration,
    },
}

/// How the session reaches its task once it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// sshd in the task, its host key pinned from the log stream.
    Ssh,
    /// ECS Exec.
    Exec,
}

/// A launch, ready to start: its RunTask and what waiting and connecting need.
pub struct Prepared {
    pub run: RunSpec,
    /// The container sessions use.
    pub container: String,
    pub logs: Option<AwsLogs>,
    pub public: bool,
    pub reach: Reach,
    /// Also wait for the ECS Exec agent: exec mode, or ssh through Session Manager.
    pub exec_agent: bool,
    pub wait_timeout: Duration,
    pub expires: SystemTime,
    /// ssh mode: the session's public key (in the task's environment when it starts cold;
    /// installed by the claim when it comes from a pool).
    pub authorized_key: Option<String>,
}

/// What preparing a launch may use of the session.
pub struct Preparing<'a> {
    pub clients: &'a Clients,
    pub id: &'a SessionId,
    pub dir: &'a SessionDir,
    pub caller: &'a Caller,
    pub output: Output,
}

impl Source {
    pub fn cluster(&self) -> &str {
        match self {
            Source::Cold(plan) => &plan.cluster,
            Source::OneOff(one_off) => &one_off.cluster,
        }
    }

    /// Whether the user watches the launch's stages (a one-off shows only its command).
    pub fn shows_stages(&self) -> bool {
        matches!(self, Source::Cold(_))
    }

    /// Looks up (and for a cold jumphost registers) what the task runs, and builds its
    /// RunTask; `stage` hears what is being done.
    pub async fn prepare(
        &self,
        session: &Preparing<'_>,
        stage: impl Fn(&str),
    ) -> anyhow::Result<Prepared> {
        match self {
            Source::Cold(plan) => cold(plan, session, stage).await,
            Source::OneOff(one_off) => one_off.prepare(session).await,
        }
    }
}

async fn cold(
    plan: &Plan,
    session: &Preparing<'_>,
    stage: impl Fn(&str),
) -> anyhow::Result<Prepared> {
    let clients = session.clients;
    stage("preparing the task definition");
    let definition = provision::task_definition(plan, &clients.region)?;
    let definition_arn = provision::ensure_task_definition(&clients.ecs, &definition).await?;
    let reach = match plan.mode {
        Mode::Exec => Reach::Exec,
        Mode::Ssh => Reach::Ssh,
    };
    let authorized_key = match reach {
        Reach::Ssh => Some(session.dir.generate_keypair(session.id)?),
        Reach::Exec => None,
    };
    let expires = SystemTime::now() + plan.ttl;
    let launch = Launch {
        plan,
        task_definition_arn: &definition_arn,
        session: session.id,
        owner: &session.caller.arn,
        owner_id: &session.caller.user_id,
        authorized_key: authorized_key.as_deref(),
        expires,
    };
    Ok(Prepared {
        run: launch.run_spec()?,
        container: plan.container_name.clone(),
        logs: Some(AwsLogs::jumphost(&plan.log_group)),
        public: plan.public,
        reach,
        exec_agent: reach == Reach::Exec || plan.ssh_via == SshVia::Ssm,
        wait_timeout: plan.wait_timeout,
        expires,
        authorized_key,
    })
}

impl OneOff {
    async fn prepare(&self, session: &Preparing<'_>) -> anyhow::Result<Prepared> {
        let ecs = &session.clients.ecs;
        let (task_definition, network) = match &self.origin {
            Origin::Service(service) => from_service(ecs, &self.cluster, service).await?,
            Origin::TaskDefinition { name, network } => (name.clone(), network.clone()),
        };
        let chosen = choose_container(
            ecs,
            &task_definition,
            self.container.as_deref(),
            self.task_role.as_deref(),
        )
        .await?;
        // A family names whatever revision is latest when ECS reads it; the one whose
        // containers were just checked is the one that runs, and the user is told which.
        if !session.output.json() {
            session.output.note(&format!(
                "jump: one-off task of {}",
                revision_name(&chosen.revision)
            ));
        }
        // The keep-alive: the task lives for its TTL, whatever the image's own command was.
        let mut keep_alive = ContainerOverride::builder()
            .name(&chosen.name)
            .command("sleep")
            .command(self.ttl.as_secs().to_string());
        for (key, value) in &self.env {
            keep_alive =
                keep_alive.environment(KeyValuePair::builder().name(key).value(value).build());
        }
        let expires = SystemTime::now() + self.ttl;
        let caller = session.caller;
        Ok(Prepared {
            run: RunSpec {
                cluster: self.cluster.clone(),
                task_definition: chosen.revision,
                network,
                exec: true,
                container: keep_alive.build(),
                task_role: self.task_role.clone(),
                cpu: self.cpu,
                memory: self.memory,
                tags: session_tags(&caller.arn, &caller.user_id, session.id, expires),
            },
            container: chosen.name,
            logs: chosen.logs,
            public: false,
            reach: Reach::Exec,
            exec_agent: true,
            wait_timeout: ONE_OFF_WAIT,
            expires,
            authorized_key: None,
        })
    }
}

/// The service's task definition and network configuration, as the service runs them.
async fn from_service(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
    service: &str,
) -> anyhow::Result<(String, AwsVpcConfiguration)> {
    let out = ecs
        .describe_services()
        .cluster(cluster)
        .services(service)
        .send()
        .await
        .map_err(|e| ApiError::from_sdk("ecs:DescribeServices", e))?;
    let found = out
        .services()
        .first()
        .ok_or_else(|| UsageError(format!("no service {service} in cluster {cluster}")))?;
    let task_definition = found
        .task_definition()
        .ok_or_else(|| UsageError(format!("service {service} has no task definition")))?;
    let network = found
        .network_configuration()
        .and_then(|n| n.awsvpc_configuration())
        .cloned()
        .ok_or_else(|| {
            UsageError(format!(
                "service {service} has no awsvpc network configuration (jump run needs \
                 Fargate services)"
            ))
        })?;
    Ok((task_definition.to_string(), network))
}

/// The container commands run in, the revision it was read from (an ARN: what RunTask is
/// given), and where its awslogs driver writes, so that a task that stops before the
/// command runs is explained with its logs.
struct Chosen {
    revision: String,
    name: String,
    logs: Option<AwsLogs>,
}

/// The named container, or the task definition's first essential one.
async fn choose_container(
    ecs: &aws_sdk_ecs::Client,
    task_definition: &str,
    wanted: Option<&str>,
    task_role: Option<&str>,
) -> anyhow::Result<Chosen> {
    let out = ecs
        .describe_task_definition()
        .task_definition(task_definition)
        .send()
        .await
        .map_err(|e| ApiError::from_sdk("ecs:DescribeTaskDefinition", e))?;
    // ECS refuses RunTask with ECS Exec on a task without a task role; say so first.
    let role = task_role.or(out.task_definition().and_then(|d| d.task_role_arn()));
    if role.is_none() {
        return Err(UsageError(format!(
            "{task_definition} has no task role, and jump run reaches its task through ECS \
             Exec, which needs one: pass --task-role ARN (a role with \
             templates/task-role-policy.json), or give the task definition a taskRoleArn"
        ))
        .into());
    }
    let containers = out
        .task_definition()
        .map(|d| d.container_definitions())
        .unwrap_or_default();
    let found = match wanted {
        Some(name) => containers.iter().find(|c| c.name() == Some(name)),
        None => containers.iter().find(|c| c.essential().unwrap_or(true)),
    };
    let revision = out
        .task_definition()
        .and_then(|d| d.task_definition_arn())
        .unwrap_or(task_definition);
    if let Some((container, name)) = found.and_then(|c| Some((c, c.name()?))) {
        return Ok(Chosen {
            revision: revision.to_string(),
            name: name.to_string(),
            logs: AwsLogs::of_container(container),
        });
    }
    let names: Vec<&str> = containers.iter().filter_map(|c| c.name()).collect();
    Err(UsageError(match wanted {
        Some(name) => format!(
            "no container {name} in {task_definition} (it has: {})",
            names.join(", ")
        ),
        None => format!("{task_definition} has no containers"),
    })
    .into())
}
