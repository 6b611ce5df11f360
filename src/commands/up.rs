//! `jump up`: a jumphost for this session, connected to, and gone afterwards.
//!
//! The plan is validated before any AWS call; the session's lifecycle is
//! `session::lifecycle`'s. `--detach` prints how to reach and stop the session and hands
//! it over instead.

use serde_json::json;

use super::{layers, Context};
use crate::aws::Clients;
use crate::cli::UpArgs;
use crate::connect::exec::Interactive;
use crate::exit::Exit;
use crate::output::Output;
use crate::plan::Plan;
use crate::session::lifecycle::{Local, Session, Then};
use crate::session::record::SessionRecord;
use crate::session::source::Source;

pub async fn run(ctx: &mut Context, args: UpArgs) -> anyhow::Result<Exit> {
    let mut flags = args.settings.pairs();
    if args.public {
        flags.push(("public", "true".to_string()));
    }
    let plan = layers(args.config.as_deref(), &flags)?.into_plan()?;
    let then = if args.detach {
        let output = ctx.output;
        Then::Detach(Box::new(move |record| announce(output, record)))
    } else {
        Then::Run(args.command)
    };
    run_plan(ctx, plan, then).await
}

/// A cold jumphost for a validated plan, connected to as `then` says, always torn down.
pub async fn run_plan(ctx: &mut Context, plan: Plan, then: Then) -> anyhow::Result<Exit> {
    let source = Source::Cold(Box::new(plan));
    start(ctx, source, then).await
}

/// Runs a session from `source` under the signal policy, then its teardown.
pub async fn start(ctx: &mut Context, source: Source, then: Then) -> anyhow::Result<Exit> {
    let clients = Clients::new(ctx.global.profile.as_deref(), ctx.global.region.as_deref())
        .await?
        .with_ssm_plugin(ctx.global.ssm_plugin.clone());
    let local = Local {
        output: ctx.output,
        interactive: Interactive {
            child: ctx.child.clone(),
            escape: ctx.global.escape,
        },
        profile: ctx.global.profile.clone(),
    };
    let session = Session::new(clients, source, local)?;
    let guard = session.guard();
    ctx.guarded(&guard, session.run(then)).await
}

/// How to reach and stop a detached session, on stdout.
fn announce(output: Output, record: &SessionRecord) -> std::io::Result<()> {
    let ssh = format!("jump {} {}", record.mode, record.id);
    if output.json() {
        output.deliver_json(&json!({
            "session": record.id,
            "task_arn": record.task_arn,
            "cluster": record.cluster,
            "ip": record.ip,
            "private_ip": record.private_ip,
            "public_ip": record.public_ip,
            "expires": record.expires,
            "owner": record.owner,
            "ssh": ssh,
        }))
    } else {
        output.deliver(&format!(
            "session  {}\ntask     {}\nip       {}\nexpires  {}\nconnect  {ssh}\nstop     jump down {}",
            record.id, record.task_arn, record.ip, record.expires, record.id
        ))
    }
}
