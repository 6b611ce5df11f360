//! `jump exec`: a shell or a command in a task, through ECS Exec and our own
//! Session Manager client.
//!
//! Unlike `jump ssh`, this needs no local key material, so it works from any machine
//! for any session (or, with `--task` or `--service`, any exec-enabled task).

use crate::aws::Clients;
use crate::cli::{ExecArgs, GlobalArgs};
use crate::connect::exec::{self, Interactive};
use crate::connect::target::ExecTarget;
use crate::exit::{Exit, UsageError};
use crate::output::Output;
use crate::session::record::{session_task, Whose};
use crate::session::SessionId;
use crate::signals::ChildPid;

use super::{cluster, exec_ready_task};

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
    let task_arn = if let Some(id) = session {
        session_task(&clients, &cluster, &id, Whose::Mine).await?
    } else if let Some(task) = args.task {
        task
    } else if let Some(service) = &args.service {
        exec_ready_task(&clients.ecs, &cluster, service, args.container.as_deref()).await?
    } else {
        return Err(UsageError("name a SESSION, a --task or a --service".into()).into());
    };
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
