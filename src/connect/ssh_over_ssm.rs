//! ssh to a jumphost's sshd through Session Manager: a port session to the task's own
//! port 22 (`AWS-StartPortForwardingSession`, through the task's exec agent), so the
//! jumphost's security group needs no inbound rule and the client needs no route to it.
//!
//! ssh is the system OpenSSH client as ever; its `ProxyCommand` is `jump ssh-proxy
//! SESSION`, which carries ssh's bytes over one smux stream of such a port session. The
//! same command serves `scp`, `rsync -e ssh`, `sftp` and IDE remote extensions through
//! `jump ssh-config`. Before the first connection jump waits until sshd answers through
//! the session (its banner), as it waits for the port on the network path.

use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;

use crate::aws::Clients;
use crate::connect::forward::{open_to, ForwardError};
use crate::connect::ssh::ConnectError;
use crate::connect::target::{ssm_target, ExecTarget};
use crate::retry::Backoff;

/// sshd's port in the jumphost.
pub const SSH_PORT: u16 = 22;

/// Waits until sshd in the task answers through a port session (its `SSH-` banner).
pub async fn wait_for_sshd(
    clients: &Clients,
    task: &ExecTarget,
    timeout: Duration,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let target = ssm_target(&clients.ecs, task).await?;
    let (mux, _session) = open_to(clients, task, &target, None, SSH_PORT).await?;
    let mut backoff = Backoff::polling();
    loop {
        if let Ok(mut stream) = mux.open().await {
            if let Ok(Some(first)) = tokio::time::timeout(timeout, stream.read()).await {
                if first.starts_with(b"SSH-") {
                    return Ok(());
                }
            }
        }
        if started.elapsed() >= timeout || mux.is_ended() {
            return Err(ConnectError::Unreachable {
                host: format!("sshd of {} (through Session Manager)", task.task_arn),
                port: SSH_PORT,
                waited: timeout,
            }
            .into());
        }
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

/// Carries stdin and stdout to sshd in the task and back, until either side ends: what
/// ssh runs as its `ProxyCommand`.
pub async fn proxy_stdio(clients: &Clients, task: &ExecTarget) -> anyhow::Result<()> {
    let target = ssm_target(&clients.ecs, task).await?;
    let (mux, mut session) = open_to(clients, task, &target, None, SSH_PORT).await?;
    let mut stream = mux.open().await?;
    let writer = stream.writer();
    let upload = async {
        writer.copy_from(&mut tokio::io::stdin()).await;
        std::future::pending::<()>().await;
    };
    let download = async {
        let mut stdout = tokio::io::stdout();
        while let Some(data) = stream.read().await {
            if stdout.write_all(&data).await.is_err() || stdout.flush().await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        () = upload => Ok(()),
        () = download => Ok(()),
        end = &mut session => {
            let reason = format!("{end:?}");
            Err(ForwardError::Ended(reason).into())
        }
    }
}
