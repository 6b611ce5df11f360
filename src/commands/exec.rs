//! `jump exec`: a shell or a command in a task, through ECS Exec and our own
//! Session Manager client.
//!
//! Unlike `jump ssh`, this needs no local key material, so it works from any machine
//! for any session (or, with `--task` or `--service`, any exec-enabled task).

use crate::aws::Clients;
use crate::cli::{ExecArgs, GlobalArgs};
use crate::connect::exec::{self, Interactive};
use crate::connect::target::ExecTarget;
use crate::exit::Exit;
use crate::output::Output;
use crate::session::SessionId;
use crate::signals::ChildPid;

use super::{chosen_service, chosen_session, cluster, Existing};

pub async fn run(
    global: GlobalArgs,
    output: Output,
    child: ChildPid,
    args: ExecArgs,
) -> anyhow::Result<Exit> {
    let mut session: Option<SessionId> = args.session.as_deref().map(str::parse).transpose()?;
    let cluster = cluster(&args.cluster)?;
    let clients = Clients::new(global.profile.as_deref(), global.region.as_deref())
        .await?
        .with_ssm_plugin(global.ssm_plugin.clone());
    if session.is_none() && args.task.is_none() && args.service.is_none() {
        let instead = "jump exec SESSION, --task TASK or --service NAME";
        session = Some(chosen_session(None, &clients, &cluster, output, instead, |_| true).await?);
    }
    let service = match args.service {
        Some(named) => {
            let instead = "jump exec --service NAME";
            Some(chosen_service(&named, &clients, &cluster, output, instead).await?)
        }
        None => None,
    };
    let existing = Existing::named(session, args.task, service)?;
    let task_arn = existing
        .task_arn(&clients, &cluster, args.container.as_deref())
        .await?;
    if !output.json() {
        output.note(&format!("jump: ECS Exec into {task_arn}"));
    }
    let target = ExecTarget {
        cluster,
        task_arn,
        container: args.container,
    };
    let local = Interactive {
        child,
        escape: global.escape,
    };
    let code = exec::run(&clients, &target, &args.command, &local).await?;
    Ok(Exit::Remote(code))
}
