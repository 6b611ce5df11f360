//! ECS Exec sessions over our own Session Manager client (no session-manager-plugin).
//!
//! The platform does not reliably report a remote command's exit status, so we
//! obtain it ourselves: the command runs under a tiny `sh` wrapper that, when it
//! finishes, prints an OSC escape sequence carrying a per-session random nonce and
//! the status (`ESC ] jump;<nonce>;exit=<n> BEL`). The stream scanner below removes
//! such sequences from the output (a terminal would ignore them anyway) and keeps
//! what they say. Without a local terminal the wrapper first turns off the remote
//! pty's echo and CR/LF translation and then says `ready=1`; local input is held
//! until then, so piped input is never echoed back and output bytes arrive as the
//! command wrote them.
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
use thiserror::Error;
use tokio::io::AsyncReadExt;
use tokio::signal::unix::{signal, SignalKind};

use crate::aws::{describe_cluster, ApiError, Clients};
use crate::connect::agent::{self, Agent};
use crate::connect::exec_access::diagnose;
use crate::connect::plugin;
use crate::connect::ssh::{remote_command, shell_quote};
use crate::session::wait::describe_task;
use crate::signals::ChildPid;
use crate::ssm::channel::{Channel, ChannelError, Event, Sender};
use crate::ssm::cipher::{DataKey, DataKeys, DATA_KEY_BYTES};
use crate::ssm::frame::PayloadType;

/// What `jump exec` and `jump up --mode exec` connect to.
#[derive(Debug, Clone)]
pub struct ExecTarget {
    pub cluster: String,
    pub task_arn: String,
    pub container: Option<String>,
}

impl ExecTarget {
    /// The exec agent this target's sessions go to.
    pub fn agent(&self) -> Agent<'_> {
        Agent {
            cluster: &self.cluster,
            task_arn: &self.task_arn,
            container: self.container.as_deref(),
        }
    }
}

/// The session ended without telling us how. Exit code 76.
#[derive(Debug, Error)]
pub enum ExecError {
    #[error("the ECS Exec data channel failed: {0}")]
    Channel(String),
    #[error("the ECS Exec session ended without reporting the command's exit status")]
    NoStatus,
    #[error("the ECS Exec agent ended the session: {0}")]
    Ended(String),
    #[error(
        "the container cannot take piped input byte for byte: it needs `stty` and `head -c` \
         (coreutils or busybox); add them to the image, or run jump from a terminal"
    )]
    InputUnfit,
}

/// The command the agent runs: the user's words under the status-reporting wrapper.
pub fn wrapped_command(nonce: &str, words: &[String], local_terminal: bool) -> String {
    let mark = |field: &str| format!("printf '\\033]jump;{nonce};{field}\\007'");
    let run = if local_terminal {
        "\"$@\"; s=$?".to_string()
    } else {
        // The pty goes raw, so no byte is interpreted; input arrives in frames of
        // `LENGTH\n` and that many bytes, ended by `0\n`, and reaches the command
        // through a pipe, whose end is its end of input.
        format!(
            "if stty raw -echo -iexten 2>/dev/null && head -c 0 </dev/null >/dev/null 2>&1; \
             then {ready}; \
             while IFS= read -r n && [ \"$n\" -gt 0 ]; do head -c \"$n\" || break; done | \"$@\"; s=$?; \
             else {unfit}; s=125; fi",
            ready = mark("ready=1"),
            unfit = mark("unfit=1"),
        )
    };
    let script = format!("{run}; printf '\\033]jump;{nonce};exit=%d\\007' \"$s\"; exit \"$s\"");
    let default_shell = [
        "sh".to_string(),
        "-c".to_string(),
        "if command -v bash >/dev/null 2>&1; then bash; else sh; fi".to_string(),
    ];
    let words = if words.is_empty() {
        &default_shell[..]
    } else {
        words
    };
    format!(
        "sh -c {} jump-exec {}",
        shell_quote(&script),
        remote_command(words)
    )
}

/// Finds and removes the wrapper's sequences from a stream of output chunks.
#[derive(Debug)]
pub struct StatusScanner {
    marker: Vec<u8>,
    pending: Vec<u8>,
    status: Option<i32>,
    ready: bool,
    unfit: bool,
}

impl StatusScanner {
    pub fn new(nonce: &str) -> Self {
        StatusScanner {
            marker: format!("\x1b]jump;{nonce};").into_bytes(),
            pending: Vec::new(),
            status: None,
            ready: false,
            unfit: false,
        }
    }

    /// The command's exit status, once the wrapper has reported it.
    pub fn status(&self) -> Option<i32> {
        self.status
    }

    /// Whether the wrapper has set up the remote terminal (non-terminal sessions).
    pub fn ready(&self) -> bool {
        self.ready
    }

    /// Whether the wrapper found the container unable to carry piped input exactly.
    pub fn unfit(&self) -> bool {
        self.unfit
    }

    /// Takes a chunk of output; returns what is safe to show now.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<u8> {
        self.pending.extend_from_slice(chunk);
        let mut shown = Vec::new();
        loop {
            match find(&self.pending, &self.marker) {
                Some(at) => {
                    let rest = at + self.marker.len();
                    let Some(end) = self.pending[rest..].iter().position(|&b| b == 0x07) else {
                        shown.extend_from_slice(&self.pending[..at]);
                        self.pending.drain(..at);
                        return shown;
                    };
                    let field = String::from_utf8_lossy(&self.pending[rest..rest + end]);
                    match field.split_once('=') {
                        Some(("exit", code)) => self.status = code.trim().parse().ok(),
                        Some(("ready", _)) => self.ready = true,
                        Some(("unfit", _)) => self.unfit = true,
                        _ => {}
                    }
                    shown.extend_from_slice(&self.pending[..at]);
                    self.pending.drain(..rest + end + 1);
                }
                None => {
                    // Hold back only a tail that could still become the marker.
                    let keep = partial_suffix(&self.pending, &self.marker);
                    let cut = self.pending.len() - keep;
                    shown.extend_from_slice(&self.pending[..cut]);
                    self.pending.drain(..cut);
                    return shown;
                }
            }
        }
    }

    /// What is left at the end of the stream.
    pub fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.pending)
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The length of the longest suffix of `data` that is a proper prefix of `marker`.
fn partial_suffix(data: &[u8], marker: &[u8]) -> usize {
    (1..marker.len().min(data.len() + 1))
        .rev()
        .find(|&n| data.ends_with(&marker[..n]))
        .unwrap_or(0)
}

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

/// SSM's name for the task's container: `ecs:<cluster>_<task-id>_<runtime-id>`.
pub async fn ssm_target(ecs: &aws_sdk_ecs::Client, task: &ExecTarget) -> anyhow::Result<String> {
    let described = describe_task(ecs, &task.cluster, &task.task_arn)
        .await?
        .with_context(|| format!("task {} not found", task.task_arn))?;
    let containers = described.containers();
    let container = containers
        .iter()
        .find(|c| c.name() == task.container.as_deref())
        .or_else(|| containers.first())
        .context("the task has no containers")?;
    let runtime = container
        .runtime_id()
        .context("the container has no runtime id yet (is it running?)")?;
    let cluster = task.cluster.rsplit('/').next().unwrap_or(&task.cluster);
    let task_id = task.task_arn.rsplit('/').next().unwrap_or(&task.task_arn);
    Ok(format!("ecs:{cluster}_{task_id}_{runtime}"))
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

/// An open ECS Exec session, before we connect to it.
pub struct Opened {
    pub session_id: String,
    pub url: String,
    pub token: String,
}

/// Opens the session with ECS ExecuteCommand.
async fn execute_command(
    ecs: &aws_sdk_ecs::Client,
    target: &ExecTarget,
    command: &str,
) -> anyhow::Result<Opened> {
    let out = ecs
        .execute_command()
        .cluster(&target.cluster)
        .task(&target.task_arn)
        .set_container(target.container.clone())
        .command(command)
        .interactive(true)
        .send()
        .await
        .map_err(|e| ApiError::from_sdk("ecs:ExecuteCommand", e))?;
    let session = out
        .session()
        .context("ECS ExecuteCommand returned no session")?;
    let url = session
        .stream_url()
        .context("no stream URL in the session")?;
    let token = session.token_value().context("no token in the session")?;
    let session_id = session.session_id().context("no session id")?;
    Ok(Opened {
        session_id: session_id.to_string(),
        url: url.to_string(),
        token: token.to_string(),
    })
}

/// Runs `words` (or a shell) in the task and returns its exit status.
/// `child` is told the official plugin's pid, when one runs, so signals reach it as they
/// reach ssh.
pub async fn run(
    clients: &Clients,
    target: &ExecTarget,
    words: &[String],
    child: &ChildPid,
) -> anyhow::Result<i32> {
    let terminal = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let nonce = crate::session::SessionId::random().to_string();
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
    let keys = Arc::new(KmsDataKeys {
        clients: clients.clone(),
        target: target.clone(),
        session_id: opened.session_id.clone(),
        required: required?,
    });
    let mut channel = Channel::connect(&opened.url, &opened.token, Some(keys))
        .await
        .map_err(|e| ExecError::Channel(e.to_string()))?;
    let _raw = if terminal {
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
    let input = tokio::spawn(pump_input(sender.clone(), terminal, ready_rx));
    let resize = terminal.then(|| tokio::spawn(follow_resizes(sender)));
    let result = pump_output(&mut channel, &nonce, ready_tx).await;
    input.abort();
    if let Some(resize) = resize {
        resize.abort();
    }
    result
}

/// Remote output on our stdout, minus the wrapper's sequences, which it acts on.
pub(crate) struct Screen {
    scanner: StatusScanner,
    ready: Option<tokio::sync::oneshot::Sender<()>>,
    stdout: std::io::Stdout,
}

impl Screen {
    pub(crate) fn new(nonce: &str, ready: Option<tokio::sync::oneshot::Sender<()>>) -> Self {
        Screen {
            scanner: StatusScanner::new(nonce),
            ready,
            stdout: std::io::stdout(),
        }
    }

    pub(crate) fn show(&mut self, bytes: &[u8]) {
        let shown = self.scanner.feed(bytes);
        let _ = self.stdout.write_all(&shown);
        let _ = self.stdout.flush();
        if self.scanner.ready() {
            if let Some(ready) = self.ready.take() {
                let _ = ready.send(());
            }
        }
    }

    /// Shows what was held back and gives the status the wrapper reported, if it did.
    pub(crate) fn finish(mut self) -> Result<Option<i32>, ExecError> {
        let _ = self.stdout.write_all(&self.scanner.finish());
        let _ = self.stdout.flush();
        if self.scanner.unfit() {
            return Err(ExecError::InputUnfit);
        }
        Ok(self.scanner.status())
    }
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
        Some(reason) => ExecError::Ended(reason.trim().to_string()).into(),
        None => ExecError::NoStatus.into(),
    })
}

/// Where local input goes: our data channel, or the plugin's stdin.
pub(crate) trait InputSink {
    /// False once the other side is gone.
    async fn put(&mut self, bytes: &[u8]) -> bool;
}

impl InputSink for Sender {
    async fn put(&mut self, bytes: &[u8]) -> bool {
        self.send(PayloadType::Output, bytes).await.is_ok()
    }
}

/// Local input to the remote pty, once it is set up. Without a terminal it travels in
/// the wrapper's frames (see [`frame_input`]), and end of input is the empty frame.
pub(crate) async fn pump_input(
    mut sink: impl InputSink,
    terminal: bool,
    ready: tokio::sync::oneshot::Receiver<()>,
) {
    if ready.await.is_err() {
        return;
    }
    let mut stdin = tokio::io::stdin();
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let n = match stdin.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let sent = if terminal {
            sink.put(&buffer[..n]).await
        } else {
            sink.put(&frame_input(&buffer[..n])).await
        };
        if !sent {
            return;
        }
    }
    if !terminal {
        sink.put(&frame_input(&[])).await;
    }
}

/// One frame of piped input as the wrapper reads it: the length in decimal, a newline,
/// then the bytes; the empty frame (`0\n`) is the end of input.
pub(crate) fn frame_input(bytes: &[u8]) -> Vec<u8> {
    let mut frame = format!("{}\n", bytes.len()).into_bytes();
    frame.extend_from_slice(bytes);
    frame
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

fn terminal_size() -> Option<(u16, u16)> {
    // SAFETY: TIOCGWINSZ fills a winsize struct we own; fd 1 is our stdout.
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut size) } == 0;
    (ok && size.ws_col > 0).then_some((size.ws_col, size.ws_row))
}

/// The local terminal in raw mode for as long as this lives.
struct RawTerminal {
    /// Put back when the session ends, by dropping it.
    _restore: SavedTerminal,
}

impl RawTerminal {
    fn enter() -> anyhow::Result<Self> {
        let saved = SavedTerminal::save()?;
        let mut raw = saved.saved;
        // SAFETY: cfmakeraw/tcsetattr on stdin with a termios struct we own.
        unsafe {
            libc::cfmakeraw(&mut raw);
            if libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &raw) != 0 {
                return Err(std::io::Error::last_os_error()).context("cannot set raw mode");
            }
        }
        Ok(RawTerminal { _restore: saved })
    }
}

/// The local terminal's settings, put back when this is dropped: whatever a child that
/// owned the terminal (the official plugin) left behind, even if it was killed.
pub(crate) struct SavedTerminal {
    saved: libc::termios,
}

impl SavedTerminal {
    pub(crate) fn save() -> anyhow::Result<Self> {
        // SAFETY: tcgetattr on stdin into a termios struct we own.
        unsafe {
            let mut saved: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(libc::STDIN_FILENO, &mut saved) != 0 {
                return Err(std::io::Error::last_os_error())
                    .context("cannot read terminal settings");
            }
            Ok(SavedTerminal { saved })
        }
    }
}

impl Drop for SavedTerminal {
    fn drop(&mut self) {
        // SAFETY: restores the settings saved in `enter`.
        unsafe {
            libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &self.saved);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_in_pieces(stream: &[u8], piece: usize, nonce: &str) -> (Vec<u8>, Option<i32>) {
        let mut scanner = StatusScanner::new(nonce);
        let mut shown = Vec::new();
        for chunk in stream.chunks(piece) {
            shown.extend(scanner.feed(chunk));
        }
        shown.extend(scanner.finish());
        (shown, scanner.status())
    }

    #[test]
    fn the_status_is_found_and_removed_however_the_stream_is_cut() {
        let stream = b"\x1b]jump;abc123;ready=1\x07hello\r\nworld\x1b]jump;abc123;exit=42\x07";
        for piece in 1..=stream.len() {
            let (shown, status) = scan_in_pieces(stream, piece, "abc123");
            assert_eq!(shown, b"hello\r\nworld", "piece size {piece}");
            assert_eq!(status, Some(42), "piece size {piece}");
            let ready_len = b"\x1b]jump;abc123;ready=1\x07".len();
            let mut scanner = StatusScanner::new("abc123");
            scanner.feed(&stream[..piece.min(ready_len)]);
            assert_eq!(scanner.ready(), piece >= ready_len, "piece size {piece}");
        }
    }

    #[test]
    fn other_escape_sequences_and_other_nonces_pass_through() {
        let stream = b"\x1b]0;title\x07ok \x1b]jump;other;exit=1\x07\x1b]jump;mine;exit=0\x07";
        let (shown, status) = scan_in_pieces(stream, 3, "mine");
        assert_eq!(shown, b"\x1b]0;title\x07ok \x1b]jump;other;exit=1\x07");
        assert_eq!(status, Some(0));
    }

    #[test]
    fn without_the_sequence_everything_is_shown_and_no_status() {
        let (shown, status) = scan_in_pieces(b"plain output \x1b]jum", 4, "n");
        assert_eq!(shown, b"plain output \x1b]jum");
        assert_eq!(status, None);
    }

    #[test]
    fn wrapped_command_quotes_every_word_and_reports_status() {
        let words = vec!["printf".to_string(), "%s\n".to_string(), "it's".to_string()];
        let command = wrapped_command("n0nce", &words, false);
        assert!(command.starts_with("sh -c 'if stty raw -echo -iexten 2>/dev/null && head -c 0"));
        assert!(command.contains("jump;n0nce;exit=%d"));
        assert!(command.contains("jump;n0nce;ready=1"));
        assert!(command.contains("jump;n0nce;unfit=1"));
        assert!(command.ends_with(
            r#"jump-exec printf '%s
' 'it'\''s'"#
        ));
        let interactive = wrapped_command("n", &[], true);
        assert!(!interactive.contains("stty"));
        assert!(interactive.contains("command -v bash"));
    }

    #[test]
    fn piped_input_is_framed_by_length_and_ends_with_an_empty_frame() {
        assert_eq!(frame_input(b"\x04\n\x03"), b"3\n\x04\n\x03");
        assert_eq!(frame_input(&[]), b"0\n");
    }

    #[test]
    fn a_container_unfit_for_piped_input_is_named() {
        let mut scanner = StatusScanner::new("n");
        assert!(scanner
            .feed(b"\x1b]jump;n;unfit=1\x07\x1b]jump;n;exit=125\x07")
            .is_empty());
        assert!(scanner.unfit());
    }
}
