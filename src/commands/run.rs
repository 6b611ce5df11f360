//! `jump run`: a one-off task from a service's own task definition, the way `heroku run`
//! works: same image, environment, secrets, roles, logging and network as the service,
//! ECS Exec enabled, owner tags and a TTL, its main command replaced by a keep-alive so
//! the user's command runs through ECS Exec with a real terminal, and the task stopped
//! afterwards on every exit path (the lifecycle and teardown of `jump up`, with a
//! one-off launch source: `session::source`).

use std::time::Duration;

use aws_sdk_ecs::types::AwsVpcConfiguration;

use super::choose::chosen_service;
use super::up::start;
use super::{cluster, layers, Context};
use crate::aws::Clients;
use crate::cli::{ClusterArgs, RunArgs};
use crate::exit::{Exit, UsageError};
use crate::plan::{check_cpu_memory, check_ttl, parse_duration};
use crate::session::lifecycle::Then;
use crate::session::source::{OneOff, Origin, Source};

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
    let service = match args.service {
        Some(named) if named.is_empty() => {
            let clients =
                Clients::new(ctx.global.profile.as_deref(), ctx.global.region.as_deref()).await?;
            let instead = "jump run --service NAME";
            Some(chosen_service(&named, &clients, &cluster, ctx.output, instead).await?)
        }
        other => other,
    };
    let origin = match (service, checked.network) {
        (Some(service), _) => Origin::Service(service),
        (None, network) => Origin::TaskDefinition {
            name: args.task_definition.unwrap_or_default(),
            network: network.ok_or_else(|| UsageError("no network configuration".into()))?,
        },
    };
    let one_off = OneOff {
        cluster,
        origin,
        container: args.container,
        task_role: args.task_role,
        cpu: args.cpu,
        memory: args.memory,
        env: checked.env,
        ttl: checked.ttl,
    };
    start(
        ctx,
        Source::OneOff(Box::new(one_off)),
        Then::Run(args.command),
    )
    .await
}
