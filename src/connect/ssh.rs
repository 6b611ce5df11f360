//! Connecting with the system OpenSSH client.
//!
//! The user's own `ssh` handles terminals, escape sequences and everything else people
//! expect from an interactive shell; we only pin it down: the session key and nothing
//! else, the session's `known_hosts` and nothing else (under a per-session host key
//! alias, so an address reused by a later task never meets an old key), strict host key
//! checking. And whatever the user's `~/.ssh/config` says for `Host *`, nothing of theirs
//! goes to the jumphost and nothing runs locally: no agent or X11 forwarding, no shared
//! control connection, no local command, no host keys learnt or looked up elsewhere.
//! With a command, ssh runs non-interactively (BatchMode) and its exit status becomes ours.
//!
//! sshd in the task starts a moment after the host key is logged, so we first wait until
//! its port accepts TCP connections rather than retrying ssh and misreading its errors.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use thiserror::Error;
use tokio::net::TcpStream;

use crate::retry::Backoff;
use crate::signals::ChildPid;

/// ssh's own exit status for connection and protocol failures.
const SSH_FAILURE: i32 = 255;
/// Per-attempt limit for the TCP probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Probes in a row that get no answer at all before we stop waiting. A port whose
/// daemon is not up yet answers at once with a reset; silence is a security group or
/// a route dropping the packets, and waiting longer never changes that.
const SILENT_PROBES: u32 = 3;

/// Could not connect. Exit code 76.
#[derive(Debug, Error)]
pub enum ConnectError {
    #[error("{host}:{port} did not accept connections within {}", humantime::format_duration(*.waited))]
    Unreachable {
        host: String,
        port: u16,
        waited: Duration,
    },
    #[error(
        "{host}:{port} does not answer: {SILENT_PROBES} connection attempts in a row got no reply. \
         A security group with no inbound rule for port {port} from this machine{groups} drops \
         packets like this, as does a network with no route from here to the VPC. Allow port \
         {port} from your address, or set ssh_via = \"ssm\" (or pass --ssh-via ssm) to reach \
         sshd through Session Manager, which needs no inbound rule"
    )]
    Dropped {
        host: String,
        port: u16,
        /// ` (the jumphost's: sg-…)` when they are known, else empty.
        groups: String,
    },
    #[error("cannot run ssh: {0} (is OpenSSH installed and on PATH?)")]
    Spawn(std::io::Error),
    #[error("ssh failed to connect to {0} (exit status 255; see ssh's message above)")]
    Ssh(String),
}

/// Where and as whom to connect, with the session's key material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub identity: PathBuf,
    pub known_hosts: PathBuf,
    /// The name the host key is pinned under in `known_hosts` (`jump-<session>`).
    pub host_key_alias: String,
    /// A command ssh reaches sshd through instead of TCP to `host` (`jump ssh-proxy`).
    pub proxy: Option<Vec<String>>,
}

impl Target {
    /// ssh's settings for this target, as `(option, value)`: what `ssh_args` passes with
    /// `-o` and what `jump ssh-config` writes into a Host block.
    pub fn settings(&self) -> Vec<(&'static str, String)> {
        let mut settings = vec![
            ("IdentityFile", format!("\"{}\"", self.identity.display())),
            ("IdentitiesOnly", "yes".to_string()),
            ("StrictHostKeyChecking", "yes".to_string()),
            // Quoted: ssh splits option values at white space.
            (
                "UserKnownHostsFile",
                format!("\"{}\"", self.known_hosts.display()),
            ),
            ("HostKeyAlias", self.host_key_alias.clone()),
        ];
        settings.extend(LOCKED_DOWN.iter().map(|(k, v)| (*k, v.to_string())));
        if let Some(proxy) = &self.proxy {
            settings.push(("ProxyCommand", remote_command(proxy)));
        }
        settings
    }
}

/// What a session's ssh never does, whatever the user's configuration says.
const LOCKED_DOWN: &[(&str, &str)] = &[
    ("ForwardAgent", "no"),
    ("ForwardX11", "no"),
    ("ControlMaster", "no"),
    ("ControlPath", "none"),
    ("PermitLocalCommand", "no"),
    ("KnownHostsCommand", "none"),
    ("UpdateHostKeys", "no"),
    ("GlobalKnownHostsFile", "/dev/null"),
];

/// The ssh command line (without the program name).
pub fn ssh_args(target: &Target, command: &[String]) -> Vec<String> {
    let mut args = base_args(target);
    if command.is_empty() {
        args.push("-t".into());
    } else {
        args.extend(["-o".into(), "BatchMode=yes".into()]);
    }
    args.extend(destination(target));
    if !command.is_empty() {
        args.push(remote_command(command));
    }
    args
}

/// The ssh command line of a SOCKS proxy on `listen`: no command, no terminal, and ssh
/// exits (instead of carrying on without it) if it cannot listen there.
pub fn socks_args(target: &Target, listen: SocketAddr) -> Vec<String> {
    let mut args = base_args(target);
    args.extend(["-o".into(), "BatchMode=yes".into()]);
    args.extend(["-o".into(), "ExitOnForwardFailure=yes".into()]);
    args.extend(["-N".into(), "-D".into(), listen.to_string()]);
    args.extend(destination(target));
    args
}

/// Which way scp copies, with the local path and the path on the jumphost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScpCopy {
    Upload { local: String, remote: String },
    Download { remote: String, local: String },
}

/// The scp command line (without the program name): the session's ssh settings, then
/// the two sides; `quiet` leaves out scp's progress meter.
pub fn scp_args(target: &Target, copy: &ScpCopy, recursive: bool, quiet: bool) -> Vec<String> {
    let mut args = base_args(target);
    args.extend(["-o".into(), "BatchMode=yes".into()]);
    args.extend(["-P".into(), target.port.to_string()]);
    args.extend(recursive.then(|| "-r".to_string()));
    args.extend(quiet.then(|| "-q".to_string()));
    args.push("--".into());
    let remote = |path: &str| format!("{}@{}:{path}", target.user, target.host);
    match copy {
        ScpCopy::Upload {
            local,
            remote: path,
        } => args.extend([local.clone(), remote(path)]),
        ScpCopy::Download {
            remote: path,
            local,
        } => args.extend([remote(path), local.clone()]),
    }
    args
}

/// Runs scp in the foreground (its meter on our terminal, its messages on our stderr)
/// and returns its exit code.
pub async fn scp(
    target: &Target,
    copy: &ScpCopy,
    recursive: bool,
    quiet: bool,
    child: &ChildPid,
) -> Result<i32, ConnectError> {
    let args = scp_args(target, copy, recursive, quiet);
    tracing::debug!(?args, "running scp");
    let mut process = tokio::process::Command::new("scp")
        .args(&args)
        .stdin(Stdio::null())
        .stdout(if quiet {
            Stdio::null()
        } else {
            Stdio::inherit()
        })
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(ConnectError::Spawn)?;
    child.set(process.id());
    let status = process.wait().await;
    child.set(None);
    Ok(exit_code(status.map_err(ConnectError::Spawn)?))
}

fn base_args(target: &Target) -> Vec<String> {
    let option = |setting: String| ["-o".to_string(), setting];
    let mut args = vec!["-i".to_string(), target.identity.display().to_string()];
    for (key, value) in target.settings() {
        if key != "IdentityFile" {
            args.extend(option(format!("{key}={value}")));
        }
    }
    args.extend(option("ConnectTimeout=10".into()));
    args
}

fn destination(target: &Target) -> Vec<String> {
    let mut args = vec!["-p".into(), target.port.to_string()];
    args.extend(["-l".into(), target.user.clone()]);
    args.push("--".into());
    args.push(target.host.clone());
    args
}

/// Joins words into one string the remote shell splits back into exactly those words.
pub fn remote_command(words: &[String]) -> String {
    words
        .iter()
        .map(|w| shell_quote(w))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Quotes a word for a POSIX shell; words made only of safe characters stay readable.
pub fn shell_quote(word: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c);
    if !word.is_empty() && word.chars().all(safe) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Waits until `host:port` accepts a TCP connection; gives up early when the packets
/// are dropped (`groups`, if known, name the security groups that may be dropping them).
pub async fn wait_for_port(
    host: &str,
    port: u16,
    groups: &[String],
    timeout: Duration,
) -> Result<(), ConnectError> {
    let started = Instant::now();
    let mut backoff = Backoff::polling();
    let mut silent = 0;
    loop {
        let attempt = tokio::time::timeout(PROBE_TIMEOUT, TcpStream::connect((host, port))).await;
        match attempt {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(e)) => {
                silent = 0;
                tracing::debug!(host, port, error = %e, "port not ready");
            }
            Err(_) => {
                silent += 1;
                tracing::debug!(host, port, silent, "port probe got no answer");
                if silent >= SILENT_PROBES {
                    return Err(ConnectError::Dropped {
                        host: host.to_string(),
                        port,
                        groups: if groups.is_empty() {
                            String::new()
                        } else {
                            format!(" (the jumphost's: {})", groups.join(", "))
                        },
                    });
                }
            }
        }
        if started.elapsed() >= timeout {
            return Err(ConnectError::Unreachable {
                host: host.to_string(),
                port,
                waited: timeout,
            });
        }
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

/// The exit code to report for a finished ssh: its own code, or 128 + signal.
pub fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1)
}

/// Runs ssh in the foreground and returns the remote command's exit code (or the shell's).
/// `child` is told ssh's pid so signals can be forwarded to it.
pub async fn run(
    target: &Target,
    command: &[String],
    child: &ChildPid,
) -> Result<i32, ConnectError> {
    let mut process = spawn(&ssh_args(target, command), Stdio::inherit)?;
    child.set(process.id());
    let status = process.wait().await;
    child.set(None);
    finished(target, status)
}

/// ssh with these arguments; stdin and stdout from `stdio`, stderr always ours (its
/// messages are the user's to read).
fn spawn(args: &[String], stdio: fn() -> Stdio) -> Result<tokio::process::Child, ConnectError> {
    tracing::debug!(?args, "running ssh");
    tokio::process::Command::new("ssh")
        .args(args)
        .stdin(stdio())
        .stdout(stdio())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(ConnectError::Spawn)
}

/// ssh's exit code, or the error its own failure (255) stands for.
fn finished(target: &Target, status: std::io::Result<ExitStatus>) -> Result<i32, ConnectError> {
    let code = exit_code(status.map_err(ConnectError::Spawn)?);
    if code == SSH_FAILURE {
        return Err(ConnectError::Ssh(target.host.clone()));
    }
    Ok(code)
}

/// Runs OpenSSH's own SOCKS proxy (`ssh -N -D`) through the jumphost until ssh ends or
/// is stopped; `ready` runs once the proxy accepts connections. Returns ssh's exit code.
pub async fn socks(
    target: &Target,
    listen: SocketAddr,
    child: &ChildPid,
    ready: impl FnOnce(),
) -> Result<i32, ConnectError> {
    let mut process = spawn(&socks_args(target, listen), Stdio::null)?;
    child.set(process.id());
    let mut backoff = Backoff::polling();
    let status = loop {
        tokio::select! {
            status = process.wait() => break status,
            () = tokio::time::sleep(backoff.next_delay()) => {
                if TcpStream::connect(listen).await.is_ok() {
                    ready();
                    break process.wait().await;
                }
            }
        }
    };
    child.set(None);
    finished(target, status)
}

crate::exit::exit_class!(Connect: ConnectError);

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Target {
        Target {
            host: "10.0.1.5".into(),
            port: 22,
            user: "jump".into(),
            identity: "/s/id_ed25519".into(),
            known_hosts: "/s/known_hosts".into(),
            host_key_alias: "jump-00112233aabb".into(),
            proxy: None,
        }
    }

    fn words(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn interactive_args() {
        let args = ssh_args(&target(), &[]).join(" ");
        assert_eq!(
            args,
            "-i /s/id_ed25519 -o IdentitiesOnly=yes -o StrictHostKeyChecking=yes \
             -o UserKnownHostsFile=\"/s/known_hosts\" -o HostKeyAlias=jump-00112233aabb \
             -o ForwardAgent=no -o ForwardX11=no -o ControlMaster=no -o ControlPath=none \
             -o PermitLocalCommand=no -o KnownHostsCommand=none -o UpdateHostKeys=no \
             -o GlobalKnownHostsFile=/dev/null -o ConnectTimeout=10 -t -p 22 -l jump -- 10.0.1.5"
        );
    }

    #[test]
    fn command_args_are_batch_and_quoted() {
        let args = ssh_args(&target(), &words(&["psql", "-c", "select 1"]));
        assert!(args.contains(&"BatchMode=yes".to_string()));
        assert!(!args.contains(&"-t".to_string()));
        assert_eq!(args[args.len() - 2], "10.0.1.5");
        assert_eq!(args[args.len() - 1], "psql -c 'select 1'");
    }

    #[test]
    fn socks_args_listen_and_run_nothing() {
        let args = socks_args(&target(), "127.0.0.1:1080".parse().unwrap()).join(" ");
        assert!(
            args.contains("-o ExitOnForwardFailure=yes -N -D 127.0.0.1:1080 -p 22"),
            "{args}"
        );
        assert!(args.ends_with("-l jump -- 10.0.1.5"), "{args}");
        assert!(!args.contains(" -t "), "{args}");
    }

    #[test]
    fn scp_args_pin_the_session_and_name_the_remote_side() {
        let upload = ScpCopy::Upload {
            local: "-odd name".into(),
            remote: "/tmp/x y".into(),
        };
        let args = scp_args(&target(), &upload, true, true).join(" ");
        assert!(args.contains("-o HostKeyAlias=jump-00112233aabb"), "{args}");
        assert!(
            args.ends_with("-P 22 -r -q -- -odd name jump@10.0.1.5:/tmp/x y"),
            "{args}"
        );
        let download = ScpCopy::Download {
            remote: "log".into(),
            local: ".".into(),
        };
        let args = scp_args(&target(), &download, false, false);
        assert_eq!(args[args.len() - 3..], ["--", "jump@10.0.1.5:log", "."]);
        assert!(!args.contains(&"-r".to_string()));
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("plain-word_1.2"), "plain-word_1.2");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote("$HOME;rm"), "'$HOME;rm'");
        assert_eq!(
            remote_command(&words(&["echo", "a*b", "x"])),
            "echo 'a*b' x"
        );
    }

    #[test]
    fn exit_codes() {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(exit_code(ExitStatus::from_raw(3 << 8)), 3);
        assert_eq!(exit_code(ExitStatus::from_raw(libc::SIGTERM)), 143);
    }
}
