//! `jump forward`: local ports to hosts inside the VPC, through a session's task or a
//! jumphost started for the purpose.
//!
//! Every target is parsed, and every explicit local port checked free, before the first
//! AWS call: a typo or a busy port must not cost a task.

use std::net::TcpListener;

use crate::aws::Clients;
use crate::cli::{ClusterArgs, ForwardArgs, GlobalArgs};
use crate::connect::forward::{self, ForwardSpec};
use crate::connect::target::ExecTarget;
use crate::exit::{Exit, UsageError};
use crate::output::Output;
use crate::plan::Layers;
use crate::session::lifecycle::Then;
use crate::session::record::{session_task, Whose};
use crate::session::SessionId;

use super::up;
use super::{cluster, layers, Context};

pub async fn run(ctx: &mut Context, args: ForwardArgs) -> anyhow::Result<Exit> {
    let (session, words) = match args.targets.split_first() {
        Some((first, rest)) if !rest.is_empty() => match first.parse::<SessionId>() {
            Ok(id) => (Some(id), rest),
            Err(_) => (None, &args.targets[..]),
        },
        _ => (None, &args.targets[..]),
    };
    let mut flags = args.settings.pairs();
    flags.push(("mode", "exec".to_string()));
    let layers = layers(args.config.as_deref(), &flags)?;
    let specs = targets(&layers, words)?;
    check_ports_free(&specs)?;
    match session {
        Some(id) => {
            let cluster = cluster(&ClusterArgs {
                cluster: args.settings.cluster.clone(),
                config: args.config.clone(),
            })?;
            let work = through_session(ctx.global.clone(), ctx.output, cluster, id, specs);
            ctx.supervised(work).await
        }
        None => up::run_plan(ctx, layers.into_plan()?, Then::Forward(specs)).await,
    }
}

/// Targets from the command line, with names looked up in `[forwards]`.
fn targets(layers: &Layers, words: &[String]) -> anyhow::Result<Vec<ForwardSpec>> {
    words
        .iter()
        .map(|word| {
            let named = layers.forwards().iter().find(|(name, _)| name == word);
            let text = named.map_or(word.as_str(), |(_, spec)| spec.as_str());
            text.parse::<ForwardSpec>()
                .map_err(|err| UsageError(err.to_string()).into())
        })
        .collect()
}

fn check_ports_free(specs: &[ForwardSpec]) -> Result<(), UsageError> {
    for port in specs
        .iter()
        .filter_map(|s| s.local_port)
        .filter(|p| *p != 0)
    {
        TcpListener::bind(("127.0.0.1", port)).map_err(|err| {
            UsageError(format!(
                "local port {port} is not available ({err}); pick another, e.g. 0 for any"
            ))
        })?;
    }
    Ok(())
}

async fn through_session(
    global: GlobalArgs,
    output: Output,
    cluster: String,
    id: SessionId,
    specs: Vec<ForwardSpec>,
) -> anyhow::Result<Exit> {
    let clients = Clients::new(global.profile.as_deref(), global.region.as_deref())
        .await?
        .with_ssm_plugin(global.ssm_plugin.clone());
    let task_arn = session_task(&clients, &cluster, &id, Whose::Mine).await?;
    let target = ExecTarget {
        cluster,
        task_arn,
        container: None,
    };
    forward::forward_all(&clients, &target, &specs, output).await
}
