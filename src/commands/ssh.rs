//! `jump ssh SESSION`: reconnect to a detached session started on this machine.
//!
//! The private key and pinned host key exist only where the session was started, so
//! this works from that machine only; `jump ls` works from anywhere.

use std::time::Duration;

use crate::aws::describe_task;
use crate::aws::Clients;
use crate::cli::{GlobalArgs, SshArgs};
use crate::connect::ssh::{self, Target};
use crate::exit::{Exit, UsageError};
use crate::output::Output;
use crate::session::keys::{host_key_alias, SessionDir};
use crate::session::record::SessionRecord;
use crate::session::wait::TaskFailed;
use crate::session::SessionId;
use crate::signals::ChildPid;

/// How long sshd may take to accept connections on a task that is already running.
const PORT_WAIT: Duration = Duration::from_secs(30);
const SSH_PORT: u16 = 22;

pub async fn run(
    global: GlobalArgs,
    output: Output,
    child: ChildPid,
    args: SshArgs,
) -> anyhow::Result<Exit> {
    let id: SessionId = args.session.parse()?;
    let dir = SessionDir::open(&id)?.ok_or_else(|| {
        UsageError(format!(
            "no session {id} on this machine: `jump ssh` needs the key kept by `jump up --detach` here (see `jump ls` for running sessions)"
        ))
    })?;
    let record = SessionRecord::load(&dir)?;
    if record.mode != "ssh" {
        return Err(UsageError(format!(
            "session {id} runs in {} mode, without sshd: use `jump exec {id}`",
            record.mode
        ))
        .into());
    }
    let region = global
        .region
        .clone()
        .unwrap_or_else(|| record.region.clone());
    let clients = Clients::new(global.profile.as_deref(), Some(&region)).await?;
    let task = describe_task(&clients.ecs, &record.cluster, &record.task_arn).await?;
    let status = task
        .as_ref()
        .and_then(|t| t.last_status())
        .unwrap_or("MISSING")
        .to_string();
    if status != "RUNNING" {
        return Err(TaskFailed::Rejected {
            reason: format!(
                "session {id} is not running (task status {status}); run `jump down {id}` to clean up"
            ),
        }
        .into());
    }
    if !output.json() {
        output.note(&format!(
            "jump: connecting to session {id} at {}",
            record.ip
        ));
    }
    ssh::wait_for_port(&record.ip, SSH_PORT, PORT_WAIT).await?;
    let target = Target {
        host: record.ip.clone(),
        port: SSH_PORT,
        user: record.login_user.clone(),
        identity: dir.private_key_path(),
        known_hosts: dir.known_hosts_path(),
        host_key_alias: host_key_alias(&id),
    };
    let code = ssh::run(&target, &args.command, &child).await?;
    Ok(Exit::Remote(code))
}
