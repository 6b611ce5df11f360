//! `jump run`: a one-off task from a service's own task definition, the way `heroku run`
//! works: same image, environment, secrets, roles, logging and network as the service,
//! ECS Exec enabled, owner tags and a TTL, its main command replaced by a keep-alive so
//! the user's command runs through ECS Exec with a real terminal, and the task stopped
//! afterwards on every exit path (the same teardown guard as `jump up`).

use std::time::{Duration, SystemTime};

use aws_sdk_ecs::types::{
    AwsVpcConfiguration, ContainerOverride, KeyValuePair, LaunchType, NetworkConfiguration,
    TaskOverride,
};

use super::{cluster, layers, Context};
use crate::arn::revision_name;
use crate::aws::{ApiError, Clients};
use crate::cli::{ClusterArgs, RunArgs};
use crate::connect::exec::{self, ExecTarget};
use crate::exit::{Exit, UsageError};
use crate::keys::SessionDir;
use crate::output::Output;
use crate::plan::{check_cpu_memory, check_ttl, parse_duration};
use crate::session::guard::Guard;
use crate::session::provision::{session_tags, start_task, tag, STARTED_BY};
use crate::session::wait::{self, WaitSpec};
use crate::session::SessionId;
use crate::signals::ChildPid;

const WAIT: Duration = Duration::from_secs(5 * 60);

/// Everything checked before the first AWS call.
struct Checked {
    env: Vec<(String, String)>,
    ttl: Duration,
    network: Option<AwsVpcConfiguration>,
}

fn check(args: &RunArgs) -> anyhow::Result<Checked> {
    let env = args
        .env
        .iter()
        .map(|pair| match pair.split_once('=') {
            Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
            _ => Err(UsageError(format!("`-e {pair}` is not KEY=VALUE"))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let ttl = parse_duration(&args.ttl).map_err(|e| UsageError(format!("--ttl: {e}")))?;
    if check_ttl(ttl).is_err() {
        return Err(UsageError(format!(
            "--ttl must be between 1m and 24h, not {}",
            args.ttl
        ))
        .into());
    }
    if let (Some(cpu), Some(memory)) = (args.cpu, args.memory) {
        check_cpu_memory(cpu, memory)?;
    }
    if let Some(role) = &args.task_role {
        if !role.starts_with("arn:") {
            return Err(UsageError(format!("--task-role must be an ARN, not `{role}`")).into());
        }
    }
    // A bare task definition runs where jump.toml says jumphosts run.
    let network = match args.service {
        Some(_) => None,
        None => {
            let (subnets, groups) = layers(args.config.as_deref(), &[])?.network()?;
            Some(
                AwsVpcConfiguration::builder()
                    .set_subnets(Some(subnets))
                    .set_security_groups(Some(groups))
                    .build()?,
            )
        }
    };
    Ok(Checked { env, ttl, network })
}

pub async fn run(ctx: &mut Context, args: RunArgs) -> anyhow::Result<Exit> {
    let checked = check(&args)?;
    let cluster = cluster(&ClusterArgs {
        cluster: args.cluster.clone(),
        config: args.config.clone(),
    })?;
    let clients = Clients::new(ctx.global.profile.as_deref(), ctx.global.region.as_deref())
        .await?
        .with_ssm_plugin(ctx.global.ssm_plugin.clone());
    let id = SessionId::random();
    let dir = SessionDir::create(&id)?;
    let guard = Guard::new(clients.ecs.clone(), &cluster, dir);
    let local = Local {
        output: ctx.output,
        child: ctx.child.clone(),
    };
    let work = one_off(clients, cluster, id, guard.clone(), args, checked, local);
    ctx.guarded(&guard, work).await
}

/// This side of the session: where notes go, and the foreground child (the plugin).
struct Local {
    output: Output,
    child: ChildPid,
}

async fn one_off(
    clients: Clients,
    cluster: String,
    id: SessionId,
    guard: Guard,
    args: RunArgs,
    checked: Checked,
    local: Local,
) -> anyhow::Result<Exit> {
    let Local { output, child } = local;
    let caller = clients.caller().await?;
    let owner = caller.arn;
    let (task_definition, network) = match (&args.service, checked.network) {
        (Some(service), _) => from_service(&clients.ecs, &cluster, service).await?,
        (None, network) => (
            args.task_definition.clone().unwrap_or_default(),
            network.ok_or_else(|| UsageError("no network configuration".into()))?,
        ),
    };
    let chosen = choose_container(
        &clients.ecs,
        &task_definition,
        args.container.as_deref(),
        args.task_role.as_deref(),
    )
    .await?;
    let container = chosen.name.clone();
    let expires = SystemTime::now() + checked.ttl;
    // A family names whatever revision is latest when ECS reads it; the one whose
    // containers were just checked is the one that runs, and the user is told which.
    let task_definition = chosen.revision.clone();
    if !output.json() {
        output.note(&format!(
            "jump: one-off task of {}",
            revision_name(&task_definition)
        ));
    }

    // The keep-alive: the task lives for its TTL, whatever the image's own command was.
    let mut keep_alive = ContainerOverride::builder()
        .name(&container)
        .command("sleep")
        .command(checked.ttl.as_secs().to_string());
    for (key, value) in &checked.env {
        keep_alive = keep_alive.environment(KeyValuePair::builder().name(key).value(value).build());
    }
    let mut overrides = TaskOverride::builder()
        .container_overrides(keep_alive.build())
        .set_task_role_arn(args.task_role.clone());
    if let Some(cpu) = args.cpu {
        overrides = overrides.cpu(cpu.to_string());
    }
    if let Some(memory) = args.memory {
        overrides = overrides.memory(memory.to_string());
    }
    let mut request = clients
        .ecs
        .run_task()
        .cluster(&cluster)
        .task_definition(&task_definition)
        .launch_type(LaunchType::Fargate)
        .enable_execute_command(true)
        .started_by(STARTED_BY)
        .network_configuration(
            NetworkConfiguration::builder()
                .awsvpc_configuration(network)
                .build(),
        )
        .overrides(overrides.build());
    for (key, value) in session_tags(&owner, &caller.user_id, &id, expires) {
        request = request.tags(tag(key, &value));
    }
    let attempt = || async {
        let task_arn = start_task(&guard, &request).await?;
        let spec = WaitSpec {
            cluster: &cluster,
            task_arn: &task_arn,
            container: &container,
            log_group: &chosen.log_group,
            log_stream_prefix: &chosen.log_stream_prefix,
            public: false,
            exec_agent: true,
            timeout: WAIT,
        };
        wait::wait_running(&clients, &spec, |status| {
            tracing::info!(status, "one-off task")
        })
        .await?;
        Ok(task_arn)
    };
    let task_arn = wait::until_roles_assumable(attempt, |note| tracing::warn!("{note}")).await?;
    let target = ExecTarget {
        cluster: cluster.clone(),
        task_arn,
        container: Some(container),
    };
    Ok(Exit::Remote(
        exec::run(&clients, &target, &args.command, &child).await?,
    ))
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
        .ok_or_else(|| UsageError(format!("service {service} has no awsvpc network configuration (jump run needs Fargate services)")))?;
    Ok((task_definition.to_string(), network))
}

/// The container commands run in, and where its awslogs driver writes (empty if it does
/// not), so that a task that stops before the command runs is explained with its logs.
struct Chosen {
    /// The task definition revision described, as an ARN: what RunTask is given.
    revision: String,
    name: String,
    log_group: String,
    log_stream_prefix: String,
}

impl Chosen {
    fn from(revision: &str, container: &aws_sdk_ecs::types::ContainerDefinition) -> Option<Chosen> {
        let options = container
            .log_configuration()
            .filter(|l| l.log_driver().as_str() == "awslogs")
            .and_then(|l| l.options());
        let option = |key: &str| {
            options
                .and_then(|o| o.get(key))
                .cloned()
                .unwrap_or_default()
        };
        let prefix = option("awslogs-stream-prefix");
        Some(Chosen {
            revision: revision.to_string(),
            name: container.name()?.to_string(),
            // Without a stream prefix the stream name holds a container id we cannot know.
            log_group: if prefix.is_empty() {
                String::new()
            } else {
                option("awslogs-group")
            },
            log_stream_prefix: prefix,
        })
    }
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
    if let Some(chosen) = found.and_then(|c| Chosen::from(revision, c)) {
        return Ok(chosen);
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
