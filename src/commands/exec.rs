//! `jump exec`: a shell or a command in a task, through ECS Exec and our own
//! Session Manager client.
//!
//! Unlike `jump ssh`, this needs no local key material, so it works from any machine
//! for any session (or, with `--task` or `--service`, any exec-enabled task).

use crate::aws::Clients;
use crate::cli::{ExecArgs, GlobalArgs};
use crate::connect::exec::{self, Interactive};
use crate::exit::Exit;
use crate::output::Output;
use crate::session::SessionId;
use crate::signals::ChildPid;

use super::choose::exec_target;
use super::cluster;

pub async fn run(
    global: GlobalArgs,
    output: Output,
    child: ChildPid,
    args: ExecArgs,
) -> anyhow::Result<Exit> {
    let session: Option<SessionId> = args.session.as_deref().map(str::parse).transpose()?;
    let cluster = cluster(&args.cluster)?;
    let clients = Clients::new(global.profile.as_deref(), global.region.as_deref())
        .await?
        .with_ssm_plugin(global.ssm_plugin.clone());
    let target = exec_target(&clients, cluster, output, session, args.target, "jump exec").await?;
    if !output.json() {
        output.note(&format!("jump: ECS Exec into {}", target.task_arn));
    }
    let local = Interactive {
        child,
        escape: global.escape,
    };
    let code = exec::run(&clients, &target, &args.command, &local).await?;
    Ok(Exit::Remote(code))
}
