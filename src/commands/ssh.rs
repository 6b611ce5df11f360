//! `jump ssh SESSION`: reconnect to a detached session started on this machine; and
//! `jump ssh-config SESSION` / `jump ssh-proxy SESSION`, which let other programs that
//! speak ssh (scp, rsync, sftp, IDEs) reach it the same way.
//!
//! The private key and pinned host key exist only where the session was started, so
//! these work from that machine only; `jump ls` works from anywhere.

use std::time::Duration;

use super::choose::chosen_session;
use super::cluster;
use crate::aws::describe_task;
use crate::aws::Clients;
use crate::cli::{ClusterArgs, GlobalArgs, SessionArg, SshArgs};
use crate::connect::ssh;
use crate::connect::ssh_over_ssm;
use crate::exit::{Exit, UsageError};
use crate::output::Output;
use crate::plan::SshVia;
use crate::session::keys::SessionDir;
use crate::session::lifecycle::ssh_target;
use crate::session::record::SessionRecord;
use crate::session::wait::TaskFailed;
use crate::session::SessionId;
use crate::signals::ChildPid;

/// How long sshd may take to accept connections on a task that is already running.
const PORT_WAIT: Duration = Duration::from_secs(30);

/// A session started on this machine in ssh mode: its directory and record.
fn local_ssh_session(session: &str) -> anyhow::Result<(SessionDir, SessionRecord)> {
    let id: SessionId = session.parse()?;
    let (dir, record) = SessionRecord::local(&id)?.ok_or_else(|| {
        UsageError(format!(
            "no session {id} on this machine: `jump ssh` needs the key kept by `jump up --detach` here (see `jump ls` for running sessions)"
        ))
    })?;
    if record.mode != "ssh" {
        return Err(UsageError(format!(
            "session {id} runs in {} mode, without sshd: use `jump exec {id}`",
            record.mode
        ))
        .into());
    }
    Ok((dir, record))
}

/// One of this machine's ssh-mode sessions in jump.toml's cluster, chosen from a list.
async fn picked_ssh_session(global: &GlobalArgs, output: Output) -> anyhow::Result<SessionId> {
    let cluster = cluster(&ClusterArgs {
        cluster: None,
        config: None,
    })?;
    let clients = Clients::new(global.profile.as_deref(), global.region.as_deref()).await?;
    let here = |id: &SessionId| local_ssh_record(id).is_some();
    chosen_session(None, &clients, &cluster, output, "jump ssh SESSION", here).await
}

async fn clients_for(global: &GlobalArgs, record: &SessionRecord) -> anyhow::Result<Clients> {
    let region = global.region.as_deref().unwrap_or(&record.region);
    Ok(Clients::new(global.profile.as_deref(), Some(region)).await?)
}

pub async fn run(
    global: GlobalArgs,
    output: Output,
    child: ChildPid,
    args: SshArgs,
) -> anyhow::Result<Exit> {
    let named = match args.session {
        Some(session) => session,
        None => picked_ssh_session(&global, output).await?.to_string(),
    };
    let (dir, record) = local_ssh_session(&named)?;
    let target = reachable(&global, output, &dir, &record).await?;
    let code = ssh::run(&target, &args.command, &child).await?;
    Ok(Exit::Remote(code))
}

/// The session's ssh target, once its task runs and its sshd accepts connections.
pub(super) async fn reachable(
    global: &GlobalArgs,
    output: Output,
    dir: &SessionDir,
    record: &SessionRecord,
) -> anyhow::Result<ssh::Target> {
    let id = &record.id;
    let clients = clients_for(global, record).await?;
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
    let target = ssh_target(record, dir, global.profile.as_deref())?;
    if record.ssh_via == SshVia::Ssm.as_str() {
        if !output.json() {
            output.note(&format!(
                "jump: connecting to session {id} through Session Manager"
            ));
        }
        ssh_over_ssm::wait_for_sshd(&clients, &record.exec_target(), PORT_WAIT).await?;
    } else {
        if !output.json() {
            output.note(&format!(
                "jump: connecting to session {id} at {}",
                record.ip
            ));
        }
        ssh::wait_for_port(&record.ip, target.port, &[], PORT_WAIT).await?;
    }
    Ok(target)
}

/// This machine's record of `id` if it is an ssh-mode session started here (which scp
/// can reach with its key).
pub(super) fn local_ssh_record(id: &SessionId) -> Option<(SessionDir, SessionRecord)> {
    match SessionRecord::local(id) {
        Ok(Some((dir, record))) if record.mode == "ssh" => Some((dir, record)),
        _ => None,
    }
}

/// `jump ssh-config SESSION`: an OpenSSH Host block named `jump-<session>`.
pub async fn config(global: GlobalArgs, output: Output, args: SessionArg) -> anyhow::Result<Exit> {
    let (dir, record) = local_ssh_session(&args.session)?;
    let target = ssh_target(&record, &dir, global.profile.as_deref())?;
    let mut block = format!(
        "# jump session {}: valid while the session runs (`jump down {}` ends it)\nHost {}\n  HostName {}\n  Port {}\n  User {}\n",
        record.id, record.id, target.host_key_alias, target.host, target.port, target.user
    );
    for (key, value) in target.settings() {
        block.push_str(&format!("  {key} {value}\n"));
    }
    output.print(block.trim_end());
    Ok(Exit::Success)
}

/// `jump ssh-proxy SESSION`: ssh's ProxyCommand, stdin and stdout to the session's sshd.
pub async fn proxy(global: GlobalArgs, args: SessionArg) -> anyhow::Result<Exit> {
    let (_, record) = local_ssh_session(&args.session)?;
    let clients = clients_for(&global, &record).await?;
    ssh_over_ssm::proxy_stdio(&clients, &record.exec_target()).await?;
    Ok(Exit::Success)
}
