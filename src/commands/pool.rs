//! `jump pool create|status|delete`: a warm pool's service (`session::pool`).

use std::time::Duration;

use super::{layers, Context};
use crate::aws::Clients;
use crate::cli::{PoolArgs, PoolCommand, PoolCreateArgs};
use crate::exit::{Exit, UsageError};
use crate::output::Output;
use crate::plan::{check_pool_name, Layers};
use crate::session::pool::{self, PoolSpec};

const MAX_SIZE: u32 = 20;
const MIN_RECYCLE: Duration = Duration::from_secs(10 * 60);
const MAX_RECYCLE: Duration = Duration::from_secs(24 * 60 * 60);

pub async fn run(ctx: &mut Context, command: PoolCommand) -> anyhow::Result<Exit> {
    let (global, output) = (ctx.global.clone(), ctx.output);
    match command {
        PoolCommand::Create(args) => {
            let work = async move {
                let (plan, name, spec_size, ttl) = create_input(&args)?;
                let clients =
                    Clients::new(global.profile.as_deref(), global.region.as_deref()).await?;
                let spec = PoolSpec {
                    name: &name,
                    size: spec_size,
                    ttl,
                };
                let created = pool::create(&clients, &plan, &spec).await?;
                report_created(output, &spec, plan.mode.as_str(), created);
                Ok(Exit::Success)
            };
            ctx.supervised(work).await
        }
        PoolCommand::Status(args) => {
            let work = async move {
                let (cluster, name) = named(&args)?;
                let clients =
                    Clients::new(global.profile.as_deref(), global.region.as_deref()).await?;
                match pool::status(&clients, &cluster, &name).await? {
                    Some(status) => {
                        report_status(output, &status);
                        Ok(Exit::Success)
                    }
                    None => Err(UsageError(format!(
                        "there is no pool `{name}` in cluster {cluster} (`jump pool create --name {name}`)"
                    ))
                    .into()),
                }
            };
            ctx.supervised(work).await
        }
        PoolCommand::Delete(args) => {
            let work = async move {
                let (cluster, name) = named(&args)?;
                let clients =
                    Clients::new(global.profile.as_deref(), global.region.as_deref()).await?;
                let deleted = pool::delete(&clients, &cluster, &name).await?;
                if output.json() {
                    output
                        .print(&serde_json::json!({"name": name, "deleted": deleted}).to_string());
                } else if deleted {
                    output.print(&format!(
                        "pool {name} deleted; claimed jumphosts run on until their sessions end"
                    ));
                } else {
                    output.print(&format!("no pool {name}: nothing to delete"));
                }
                Ok(Exit::Success)
            };
            ctx.supervised(work).await
        }
    }
}

/// Everything `pool create` needs, checked before any AWS call.
fn create_input(
    args: &PoolCreateArgs,
) -> anyhow::Result<(crate::plan::Plan, String, u32, Duration)> {
    let layers = layers(args.config.as_deref(), &args.settings.pairs())?;
    let name = pool_name(args.name.as_deref(), &layers)?;
    if !(1..=MAX_SIZE).contains(&args.size) {
        return Err(UsageError(format!(
            "--size: a pool keeps 1 to {MAX_SIZE} warm tasks (got {})",
            args.size
        ))
        .into());
    }
    let ttl = humantime::parse_duration(&args.recycle_after)
        .map_err(|e| UsageError(format!("--recycle-after: {e} (e.g. 4h)")))?;
    if !(MIN_RECYCLE..=MAX_RECYCLE).contains(&ttl) {
        return Err(UsageError("--recycle-after: between 10m and 24h".into()).into());
    }
    let plan = layers.into_pool_plan(&name)?;
    Ok((plan, name, args.size, ttl))
}

/// The cluster and the pool's name for `status` and `delete`.
fn named(args: &PoolArgs) -> anyhow::Result<(String, String)> {
    let flags: Vec<(&str, String)> = args
        .cluster
        .iter()
        .map(|c| ("cluster", c.clone()))
        .collect();
    let layers = layers(args.config.as_deref(), &flags)?;
    let name = pool_name(args.name.as_deref(), &layers)?;
    Ok((layers.cluster()?, name))
}

fn pool_name(given: Option<&str>, layers: &Layers) -> anyhow::Result<String> {
    let name = given.or(layers.pool()).ok_or_else(|| {
        UsageError(
            "name the pool: --name NAME, or `pool = \"NAME\"` in jump.toml (JUMP_POOL)".into(),
        )
    })?;
    check_pool_name(name).map_err(|e| UsageError(format!("--name: {e}")))?;
    Ok(name.to_string())
}

fn report_created(output: Output, spec: &PoolSpec<'_>, mode: &str, created: bool) {
    let (name, size) = (spec.name, spec.size);
    if output.json() {
        output.print(
            &serde_json::json!({"name": name, "mode": mode, "size": size, "created": created})
                .to_string(),
        );
    } else {
        let what = if created { "created" } else { "updated" };
        let how = match mode {
            "ssh" => format!("--pool {name} --mode ssh"),
            _ => format!("--pool {name}"),
        };
        output.print(&format!(
            "pool {name} {what}: {size} warm {mode}-mode jumphosts (service {}); claim one with \
             {how}, or `pool = \"{name}\"` in jump.toml",
            pool::service_name(name)
        ));
    }
}

fn report_status(output: Output, status: &pool::Status) {
    if output.json() {
        output.print(&serde_json::to_string(status).unwrap_or_default());
    } else {
        output.print(&format!(
            "pool     {}\nmode     {}\nsize     {}\nwarm     {}\nclaimed  {}\ncost     ${:.4}/hour (Fargate, us-east-1 prices)",
            status.name, status.mode, status.size, status.warm, status.claimed, status.cost_per_hour_usd
        ));
    }
}
