//! `jump forward`: local ports to hosts inside the VPC, through a session's task, a
//! jumphost started for the purpose, or straight to a port of a task itself.
//!
//! Every target is parsed, the bind address checked and every explicit local port checked
//! free before the first AWS call: a typo or a busy port must not cost a task.

use crate::aws::Clients;
use crate::cli::{ClusterArgs, ForwardArgs, GlobalArgs};
use crate::connect::forward::{self, Bind, ForwardSpec, Forwards};
use crate::connect::local_command::{env_name, LocalCommand};
use crate::connect::target::ExecTarget;
use crate::exit::{Exit, UsageError};
use crate::output::Output;
use crate::plan::Layers;
use crate::session::lifecycle::Then;
use crate::session::SessionId;

use super::choose::{chosen_container, chosen_session};
use super::up;
use super::{check_port_free, cluster, layers, Context, Existing};

/// Which task the forwards go through.
enum Through {
    /// A session's task, to hosts it reaches; or a task of the cluster or the newest
    /// exec-ready one of a service, to its own ports.
    Existing(Existing),
    /// One of the caller's sessions, chosen from a list (`--session` alone).
    ChosenSession,
    /// A jumphost started for the purpose.
    Jumphost,
}

/// `--bind`'s address, checked.
pub(super) fn bind_address(text: Option<&str>) -> Result<Bind, UsageError> {
    match text {
        None => Ok(Bind::Loopback),
        Some(text) => text
            .parse::<Bind>()
            .map_err(|e| UsageError(format!("--bind: {e}"))),
    }
}

pub async fn run(ctx: &mut Context, args: ForwardArgs) -> anyhow::Result<Exit> {
    let bind = bind_address(args.bind.as_deref())?;
    if bind != Bind::Loopback && ctx.global.ssm_plugin.is_some() {
        return Err(UsageError(
            "--bind cannot be combined with --ssm-plugin: the plugin listens on localhost only"
                .into(),
        )
        .into());
    }
    let to_task = args.service.is_some() || args.task.is_some();
    if args.container.is_some() && !to_task {
        return Err(UsageError("--container goes with --service or --task".into()).into());
    }
    let (through, words) = match args.targets.split_first() {
        _ if to_task => {
            let existing = Existing::named(None, args.task.clone(), args.service.clone())?;
            (Through::Existing(existing), &args.targets[..])
        }
        _ if args.chosen.is_some() => match args.chosen.as_deref() {
            Some("") | None => (Through::ChosenSession, &args.targets[..]),
            Some(named) => (
                Through::Existing(Existing::Session(named.parse()?)),
                &args.targets[..],
            ),
        },
        Some((first, rest)) if !rest.is_empty() => match first.parse::<SessionId>() {
            Ok(id) => (Through::Existing(Existing::Session(id)), rest),
            Err(_) => (Through::Jumphost, &args.targets[..]),
        },
        _ => (Through::Jumphost, &args.targets[..]),
    };
    let mut flags = args.settings.pairs();
    flags.push(("mode", "exec".to_string()));
    let layers = layers(args.config.as_deref(), &flags)?;
    let (specs, names) = if to_task {
        let specs = words
            .iter()
            .map(|word| ForwardSpec::to_task(word).map_err(|e| UsageError(e.to_string()).into()))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let names = (0..specs.len()).map(|i| env_name(None, i)).collect();
        (specs, names)
    } else {
        targets(&layers, words)?
    };
    for port in specs.iter().filter_map(|s| s.local_port) {
        check_port_free(&bind, port, "local port", "pick another")?;
    }
    let then = local_command(args.command, names, ctx)?;
    let forwards = Forwards { specs, bind, then };
    match through {
        Through::Jumphost => up::run_plan(ctx, layers.into_plan()?, Then::Forward(forwards)).await,
        Through::Existing(_) | Through::ChosenSession => {
            let cluster = cluster(&ClusterArgs {
                cluster: args.settings.cluster.clone(),
                config: args.config.clone(),
            })?;
            let existing = match through {
                Through::Existing(existing) => Some(existing),
                _ => None,
            };
            let container = args.container.clone();
            let work = through_task(
                ctx.global.clone(),
                ctx.output,
                cluster,
                existing,
                container,
                forwards,
            );
            ctx.supervised(work).await
        }
    }
}

/// Targets from the command line, with names looked up in `[forwards]`, and each one's
/// name for a local command's environment.
fn targets(layers: &Layers, words: &[String]) -> anyhow::Result<(Vec<ForwardSpec>, Vec<String>)> {
    words
        .iter()
        .enumerate()
        .map(|(position, word)| {
            let named = layers.forwards().iter().find(|(name, _)| name == word);
            let text = named.map_or(word.as_str(), |(_, spec)| spec.as_str());
            let spec = text
                .parse::<ForwardSpec>()
                .map_err(|err| UsageError(err.to_string()))?;
            Ok((
                spec,
                env_name(named.map(|(name, _)| name.as_str()), position),
            ))
        })
        .collect::<anyhow::Result<Vec<_>>>()
        .map(|pairs| pairs.into_iter().unzip())
}

/// The command after `--`, checked runnable before anything starts for it.
fn local_command(
    words: Vec<String>,
    names: Vec<String>,
    ctx: &Context,
) -> anyhow::Result<Option<LocalCommand>> {
    if words.is_empty() {
        return Ok(None);
    }
    if ctx.output.json() {
        return Err(UsageError(
            "--json prints the forwards' addresses for a script to read; with -- COMMAND, the \
             command gets them in its arguments ({host}, {port}) and environment instead"
                .into(),
        )
        .into());
    }
    let command = LocalCommand {
        words,
        names,
        child: ctx.child.clone(),
    };
    command.check()?;
    Ok(Some(command))
}

/// Forwards through an existing task: the one named, or (`existing` none) the task of
/// a session chosen from a list; its container named, or chosen when it has several.
async fn through_task(
    global: GlobalArgs,
    output: Output,
    cluster: String,
    existing: Option<Existing>,
    container: Option<String>,
    forwards: Forwards,
) -> anyhow::Result<Exit> {
    let clients = Clients::new(global.profile.as_deref(), global.region.as_deref())
        .await?
        .with_ssm_plugin(global.ssm_plugin.clone());
    let existing = match existing {
        Some(existing) => existing,
        None => {
            let instead = "jump forward SESSION TARGET… or --session SESSION";
            Existing::Session(
                chosen_session(None, &clients, &cluster, output, instead, |_| true).await?,
            )
        }
    };
    let task_arn = existing
        .task_arn(&clients, &cluster, container.as_deref())
        .await?;
    let instead = "jump forward --container NAME";
    let container =
        chosen_container(container, &clients, &cluster, &task_arn, output, instead).await?;
    let target = ExecTarget {
        cluster,
        task_arn,
        container,
    };
    forward::forward_all(&clients, &target, &forwards, output).await
}
