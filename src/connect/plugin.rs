//! The fallback for teams that must use AWS's session-manager-plugin (`--ssm-plugin`).
//!
//! jump still does everything around the session (launch, tags, TTL, watching, teardown,
//! the exit-status wrapper); only the data channel is handed over, with the arguments
//! the AWS CLI passes: `PLUGIN <session JSON> <region> StartSession <profile> <request
//! JSON> <endpoint>`. What the plugin cannot do, we say rather than hide: it reports no
//! remote exit status, so with a terminal (which it must own) jump exits with the
//! plugin's own status and says so; without a terminal its output passes through the
//! same status scanner as our own client, so CI keeps exact exit codes.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::Context as _;
use serde_json::{json, Value};
use thiserror::Error;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};

use crate::aws::Clients;
use crate::connect::target::{ssm_target, ExecError, ExecTarget, Opened};
use crate::connect::terminal::SavedTerminal;
use crate::connect::wrapper::{pump_input, InputSink, Screen};
use crate::signals::ChildPid;

/// The plugin prints this once its local listener accepts connections.
const LISTENING: &str = "Waiting for connections";
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The plugin could not be run or stopped working. Exit code 76.
#[derive(Debug, Error)]
pub enum PluginError {
    #[error("cannot run the session-manager-plugin {path}: {source}")]
    Spawn {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the session-manager-plugin {0}")]
    Ended(String),
}

/// A session for the plugin: StartSession's or ExecuteCommand's answer, and the request.
pub struct Handoff {
    pub session: Value,
    pub request: Value,
    /// The service the session came from (`ecs` or `ssm`), for the endpoint argument.
    pub service: &'static str,
}

/// The service endpoint as the AWS CLI would pass it: an override from the standard
/// environment variables, else the regional default.
fn endpoint(service: &str, region: &str) -> String {
    std::env::var(format!("AWS_ENDPOINT_URL_{}", service.to_ascii_uppercase()))
        .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
        .unwrap_or_else(|_| format!("https://{service}.{region}.amazonaws.com"))
}

fn invocation(program: &Path, clients: &Clients, handoff: &Handoff) -> Command {
    let mut command = Command::new(program);
    command
        .arg(handoff.session.to_string())
        .arg(&clients.region)
        .arg("StartSession")
        .arg(clients.profile.as_deref().unwrap_or_default())
        .arg(handoff.request.to_string())
        .arg(endpoint(handoff.service, &clients.region))
        .kill_on_drop(true);
    command
}

fn spawn(command: &mut Command, program: &Path) -> Result<Child, PluginError> {
    command.spawn().map_err(|source| PluginError::Spawn {
        path: program.to_path_buf(),
        source,
    })
}

fn ended(status: ExitStatus) -> PluginError {
    PluginError::Ended(format!("exited ({status})"))
}

impl InputSink for ChildStdin {
    async fn put(&mut self, bytes: &[u8]) -> bool {
        self.write_all(bytes).await.is_ok() && self.flush().await.is_ok()
    }
}

/// An opened ECS Exec session for the plugin to carry.
pub struct ExecHandoff<'a> {
    pub target: &'a ExecTarget,
    pub opened: &'a Opened,
    /// The status wrapper's nonce.
    pub nonce: &'a str,
    /// Whether the plugin gets our terminal.
    pub terminal: bool,
}

/// Runs an ECS Exec session through the plugin; see the module documentation for what
/// happens to the exit status. The plugin's pid goes to `child` while it runs, so a
/// signal reaches it as it would reach ssh; with a terminal, the terminal's settings are
/// put back afterwards whatever state the plugin left it in.
pub async fn exec(
    clients: &Clients,
    program: &Path,
    session: ExecHandoff<'_>,
    child: &ChildPid,
) -> anyhow::Result<i32> {
    let ExecHandoff {
        target,
        opened,
        nonce,
        terminal,
    } = session;
    let handoff = Handoff {
        session: json!({
            "sessionId": opened.session_id,
            "streamUrl": opened.url,
            "tokenValue": opened.token,
        }),
        request: json!({ "Target": ssm_target(&clients.ecs, target).await? }),
        service: "ecs",
    };
    let mut command = invocation(program, clients, &handoff);
    if terminal {
        let _restore = SavedTerminal::save()?;
        let mut plugin = spawn(&mut command, program)?;
        child.set(plugin.id());
        let status = plugin.wait().await;
        child.set(None);
        let status = status.context("waiting for the session-manager-plugin")?;
        eprintln!(
            "jump: the session-manager-plugin does not report the remote exit status; \
             exiting with the plugin's own ({status})"
        );
        return Ok(status.code().unwrap_or(1));
    }
    command.stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut plugin = spawn(&mut command, program)?;
    child.set(plugin.id());
    let stdin = plugin.stdin.take().context("no stdin pipe to the plugin")?;
    let mut stdout = plugin
        .stdout
        .take()
        .context("no stdout pipe from the plugin")?;
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let input = tokio::spawn(pump_input(stdin, None, ready_rx));
    let mut screen = Screen::new(nonce, Some(ready_tx));
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        match stdout.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => screen.show(&buffer[..n]),
        }
    }
    let status = plugin.wait().await;
    child.set(None);
    let status = status.context("waiting for the session-manager-plugin")?;
    input.abort();
    match screen.finish()? {
        Some(code) => Ok(code),
        None if !status.success() => Err(ended(status).into()),
        None => Err(ExecError::NoStatus.into()),
    }
}

/// A port-forwarding plugin, listening: the local address is usable once this exists.
pub struct Listening {
    child: Child,
}

impl Listening {
    /// Starts the plugin for a StartSession answer and waits until it listens.
    pub async fn start(
        clients: &Clients,
        program: &Path,
        handoff: &Handoff,
    ) -> anyhow::Result<Self> {
        let mut command = invocation(program, clients, handoff);
        command.stdin(Stdio::null()).stdout(Stdio::piped());
        let mut child = spawn(&mut command, program)?;
        let stdout = child
            .stdout
            .take()
            .context("no stdout pipe from the plugin")?;
        let mut lines = BufReader::new(stdout).lines();
        let waiting = async {
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::debug!(%line, "session-manager-plugin");
                if line.contains(LISTENING) {
                    return true;
                }
            }
            false
        };
        match tokio::time::timeout(READY_TIMEOUT, waiting).await {
            Ok(true) => {}
            Ok(false) => {
                let status = child.wait().await.context("waiting for the plugin")?;
                return Err(ended(status).into());
            }
            Err(_) => {
                return Err(PluginError::Ended(format!(
                    "did not start listening within {}s",
                    READY_TIMEOUT.as_secs()
                ))
                .into())
            }
        }
        // Keep draining its output so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Listening { child })
    }

    /// Resolves when the plugin exits, which always ends the forward with an error.
    pub async fn ended(mut self) -> anyhow::Result<()> {
        let status = self
            .child
            .wait()
            .await
            .context("waiting for the session-manager-plugin")?;
        Err(ended(status).into())
    }
}

crate::exit::exit_class!(Connect: PluginError);
