//! ECS Exec sessions over our own Session Manager client (no session-manager-plugin).
//!
//! The command runs under the exit-status wrapper (`wrapper`), so the session ends with
//! the remote command's own status.
//!
//! Clusters whose ECS Exec configuration names a KMS key get encrypted sessions: the
//! channel asks [`KmsDataKeys`] for a data key bound to the session and the target. We
//! read that configuration ourselves (DescribeClusters) and require it: a session that the
//! agent starts unencrypted, or under another key, ends before any input is sent.
//!
//! With a local terminal, it is put in raw mode for the session (Ctrl-C, Ctrl-\ and
//! Ctrl-Z travel as bytes to the remote side), its size is sent at start and on every
//! SIGWINCH, and it is restored on every way out, including cancellation (a guard).

use std::future::Future;
use std::io::{IsTerminal, Write};
use std::pin::Pin;
use std::sync::Arc;

use anyhow::Context as _;
use aws_sdk_ecs::types::ClusterField;
use tokio::signal::unix::{signal, SignalKind};

use crate::aws::{describe_cluster, ApiError, Clients};
use crate::connect::agent;
use crate::connect::exec_access::diagnose;
use crate::connect::plugin;
use crate::connect::resume::SessionResume;
use crate::connect::target::{execute_command, ssm_target, ExecError, ExecTarget, Opened};
use crate::connect::terminal::{terminal_size, Escape, Escapes, RawTerminal};
use crate::connect::wrapper::{self, pump_input, wrapped_command, InputEnd, InputSink, Screen};
use crate::signals::ChildPid;
use crate::ssm::channel::{closed_for_inactivity, Channel, ChannelError, Event, Sender};
use crate::ssm::cipher::{DataKey, DataKeys, DATA_KEY_BYTES};
use crate::ssm::frame::PayloadType;

/// An opaque "target not connected" usually means a missing permission: name it. Other
/// refusals get the doctor checks that explain them.
async fn explain(clients: &Clients, target: &ExecTarget, err: anyhow::Error) -> anyhow::Error {
    let Some(api) = err.downcast_ref::<ApiError>() else {
        return err;
    };
    let doctor = format!("`jump doctor --task {}`", target.task_arn);
    if api.code.as_deref() == Some("TargetNotConnectedException") {
        return match diagnose(clients, &target.cluster, &target.task_arn).await {
            Some(access) => access.into(),
            None => err.context(format!(
                "the exec agent in the task cannot be reached (checks exec-agent, network-route, \
                 egress-443); {doctor} checks every prerequisite"
            )),
        };
    }
    if api.message.contains("execute command was not enabled") {
        return err.context(format!(
            "ECS Exec is not available in this task (checks exec-enabled, exec-agent); {doctor} \
             says which and how to fix it"
        ));
    }
    err
}

/// Data keys from KMS, bound (through the encryption context) to one session and its
/// target, which is what the agent's Decrypt call will present.
pub struct KmsDataKeys {
    clients: Clients,
    target: ExecTarget,
    session_id: String,
    /// The cluster's ECS Exec key, which every session must use.
    required: Option<String>,
}

impl DataKeys for KmsDataKeys {
    fn generate(
        &self,
        key_id: &str,
    ) -> Pin<Box<dyn Future<Output = Result<DataKey, String>> + Send>> {
        let (clients, target, session_id) = (
            self.clients.clone(),
            self.target.clone(),
            self.session_id.clone(),
        );
        let key_id = key_id.to_string();
        Box::pin(async move {
            let target_id = ssm_target(&clients.ecs, &target)
                .await
                .map_err(|e| format!("{e:#}"))?;
            let out = clients
                .kms
                .generate_data_key()
                .key_id(&key_id)
                .number_of_bytes(DATA_KEY_BYTES)
                .encryption_context("aws:ssm:SessionId", session_id)
                .encryption_context("aws:ssm:TargetId", target_id)
                .send()
                .await
                .map_err(|e| {
                    format!(
                        "{:#}",
                        anyhow::Error::from(ApiError::from_sdk("kms:GenerateDataKey", e))
                    )
                })?;
            match (out.ciphertext_blob(), out.plaintext()) {
                (Some(ciphertext), Some(plaintext)) => Ok(DataKey {
                    ciphertext: ciphertext.as_ref().to_vec(),
                    plaintext: plaintext.as_ref().to_vec(),
                }),
                _ => Err(format!("KMS returned no data key for {key_id}")),
            }
        })
    }

    fn required_key(&self) -> Option<&str> {
        self.required.as_deref()
    }
}

/// The KMS key the cluster's ECS Exec configuration names, if any.
async fn cluster_exec_key(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
) -> anyhow::Result<Option<String>> {
    let described = describe_cluster(ecs, cluster, &[ClusterField::Configurations])
        .await
        .context(
            "reading the cluster's ECS Exec configuration, which says whether sessions must \
             be encrypted",
        )?
        .with_context(|| format!("cluster {cluster} not found"))?;
    Ok(described
        .configuration()
        .and_then(|c| c.execute_command_configuration())
        .and_then(|e| e.kms_key_id())
        .map(str::to_string))
}

/// jump's status when the user ends a session with the escape, as ssh's is.
pub const ESCAPED: i32 = 255;

/// This side of an interactive session: the foreground child (the plugin, whose pid
/// signals are passed to) and the escape character.
#[derive(Debug, Clone, Default)]
pub struct Interactive {
    pub child: ChildPid,
    pub escape: Escape,
}

/// Runs `words` (or a shell) in the task and returns its exit status.
/// `child` is told the official plugin's pid, when one runs, so signals reach it as they
/// reach ssh.
pub async fn run(
    clients: &Clients,
    target: &ExecTarget,
    words: &[String],
    local: &Interactive,
) -> anyhow::Result<i32> {
    let (child, escape) = (&local.child, local.escape);
    let terminal = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let nonce = wrapper::nonce();
    let command = wrapped_command(&nonce, words, terminal);
    // The plugin does its own encryption; only our channel needs the cluster's key.
    let required = async {
        match &clients.ssm_plugin {
            Some(_) => Ok(None),
            None => cluster_exec_key(&clients.ecs, &target.cluster).await,
        }
    };
    let (opened, required) = tokio::join!(
        agent::when_reachable(clients, target.agent(), || {
            execute_command(&clients.ecs, target, &command)
        }),
        required
    );
    let opened = match opened {
        Ok(session) => session,
        Err(err) => return Err(explain(clients, target, err).await),
    };
    if let Some(program) = &clients.ssm_plugin {
        let handoff = plugin::ExecHandoff {
            target,
            opened: &opened,
            nonce: &nonce,
            terminal,
        };
        return plugin::exec(clients, program, handoff, child).await;
    }
    let mut channel = connect(clients, target, &opened, required?).await?;
    let raw = if terminal {
        Some(RawTerminal::enter()?)
    } else {
        None
    };
    let sender = channel.sender();
    if terminal {
        send_size(&sender).await;
    }
    // A local terminal needs no remote set-up; otherwise input waits for `ready`.
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let ready_tx = if terminal {
        let _ = ready_tx.send(());
        None
    } else {
        Some(ready_tx)
    };
    let escapes = terminal.then(|| Escapes::new(escape));
    let mut input = tokio::spawn(pump_input(sender.clone(), escapes, ready_rx));
    let resize = terminal.then(|| tokio::spawn(follow_resizes(sender)));
    let result = tokio::select! {
        result = pump_output(&mut channel, &nonce, ready_tx) => result,
        Ok(InputEnd::Escaped) = &mut input => {
            drop(raw);
            eprintln!("\r\njump: session ended from this side ({})", escape.ending());
            Ok(ESCAPED)
        }
    };
    input.abort();
    if let Some(resize) = resize {
        resize.abort();
    }
    result
}

/// Our own channel to an opened session: encrypted under `required` when the cluster
/// names a key, and resumed if its connection is lost.
async fn connect(
    clients: &Clients,
    target: &ExecTarget,
    opened: &Opened,
    required: Option<String>,
) -> anyhow::Result<Channel> {
    let keys = Arc::new(KmsDataKeys {
        clients: clients.clone(),
        target: target.clone(),
        session_id: opened.session_id.clone(),
        required,
    });
    let resume = Arc::new(SessionResume {
        ssm: clients.ssm.clone(),
        session_id: opened.session_id.clone(),
    });
    Ok(
        Channel::connect(&opened.url, &opened.token, Some(keys), Some(resume))
            .await
            .map_err(|e| ExecError::Channel(e.to_string()))?,
    )
}

/// Runs `command` (ECS Exec's command line) in the task over jump's own channel,
/// encrypted when the cluster says so, for jump's own programs in the task (a pool
/// claim, `jump cp`), never for the user's commands.
pub async fn open(
    clients: &Clients,
    target: &ExecTarget,
    command: &str,
) -> anyhow::Result<Channel> {
    let (opened, required) = tokio::join!(
        agent::when_reachable(clients, target.agent(), || {
            execute_command(&clients.ecs, target, command)
        }),
        cluster_exec_key(&clients.ecs, &target.cluster)
    );
    let opened = match opened {
        Ok(session) => session,
        Err(err) => return Err(explain(clients, target, err).await),
    };
    connect(clients, target, &opened, required?).await
}

/// Runs `command` (ECS Exec's command line) in the task and returns what it printed: for
/// jump's own short probes, such as a pool claim ([`open`]).
pub async fn capture(
    clients: &Clients,
    target: &ExecTarget,
    command: &str,
) -> anyhow::Result<Vec<u8>> {
    let mut channel = open(clients, target, command).await?;
    let mut printed = Vec::new();
    while let Some(event) = channel.recv().await {
        match event {
            Event::Output(bytes) => printed.extend_from_slice(&bytes),
            Event::Failed(err) => return Err(ExecError::Channel(err.to_string()).into()),
            Event::Closed(_) => break,
            _ => {}
        }
    }
    Ok(printed)
}

async fn pump_output(
    channel: &mut Channel,
    nonce: &str,
    ready: Option<tokio::sync::oneshot::Sender<()>>,
) -> anyhow::Result<i32> {
    let mut screen = Screen::new(nonce, ready);
    let mut reported = None;
    let mut closed = None;
    while let Some(event) = channel.recv().await {
        match event {
            Event::Output(bytes) => screen.show(&bytes),
            Event::StdErr(bytes) => {
                let _ = std::io::stderr().write_all(&bytes);
            }
            Event::ExitCode(code) => reported = Some(code),
            Event::Closed(reason) => {
                closed = reason;
                break;
            }
            Event::Failed(err @ ChannelError::Encryption(_)) => {
                return Err(ExecError::Channel(format!(
                    "{err} (checks exec-kms-key, task-role-kms: `jump doctor` explains)"
                ))
                .into())
            }
            Event::Failed(err) => return Err(ExecError::Channel(err.to_string()).into()),
            Event::Flag(_) | Event::HandshakeComplete { .. } => {}
        }
    }
    screen.finish()?.or(reported).ok_or_else(|| match closed {
        Some(reason) if closed_for_inactivity(&reason) => {
            ExecError::Idle(reason.trim().to_string()).into()
        }
        Some(reason) => ExecError::Ended(reason.trim().to_string()).into(),
        None => ExecError::NoStatus.into(),
    })
}

impl InputSink for Sender {
    async fn put(&mut self, bytes: &[u8]) -> bool {
        self.send(PayloadType::Output, bytes).await.is_ok()
    }
}

async fn follow_resizes(sender: Sender) {
    let Ok(mut changes) = signal(SignalKind::window_change()) else {
        return;
    };
    while changes.recv().await.is_some() {
        send_size(&sender).await;
    }
}

async fn send_size(sender: &Sender) {
    if let Some((cols, rows)) = terminal_size() {
        let size = serde_json::json!({ "cols": cols, "rows": rows }).to_string();
        let _ = sender.send(PayloadType::Size, size.as_bytes()).await;
    }
}
