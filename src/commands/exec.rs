//! `jump exec`: a shell or a command in a task, through ECS Exec and our own
//! Session Manager client.
//!
//! Unlike `jump ssh`, this needs no local key material, so it works from any machine
//! for any session (or, with `--task`, any exec-enabled task of the cluster).

use crate::aws::Clients;
use crate::cli::{ExecArgs, GlobalArgs};
use crate::connect::exec::{self, ExecTarget};
use crate::exit::{Exit, UsageError};
use crate::output::Output;
use crate::session::record::session_task;
use crate::session::SessionId;

use super::cluster;

pub async fn run(global: GlobalArgs, output: Output, args: ExecArgs) -> anyhow::Result<Exit> {
    let session: Option<SessionId> = args.session.as_deref().map(str::parse).transpose()?;
    let cluster = cluster(&args.cluster)?;
    let clients = Clients::new(global.profile.as_deref(), global.region.as_deref()).await?;
    let task_arn = match session {
        Some(id) => session_task(&clients.ecs, &cluster, &id).await?,
        None => args
            .task
            .ok_or_else(|| UsageError("name a SESSION or a --task".into()))?,
    };
    if !output.json() {
        output.note(&format!("jump: ECS Exec into {task_arn}"));
    }
    let target = ExecTarget {
        cluster,
        task_arn,
        container: args.container,
    };
    let code = exec::run(&clients, &target, &args.command).await?;
    Ok(Exit::Remote(code))
}
