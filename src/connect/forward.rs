//! Port forwarding through a task: SSM StartSession with
//! `AWS-StartPortForwardingSessionToRemoteHost` (through a jumphost, to any host it can
//! reach) or `AWS-StartPortForwardingSession` (to a port of the task itself, a service's
//! own REPL for instance, with no jumphost at all), our own data channel, smux v1.
//!
//! One local listener, one port-forwarding session, one smux stream per accepted
//! connection, so connections are isolated: one failing never touches the others.
//! The session is watched: when the data channel dies (task stopped, network gone)
//! we say so at once, and every open local socket is reset rather than closed, so a
//! client can tell a cut tunnel from a finished transfer.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use futures_util::future::BoxFuture;
use futures_util::FutureExt as _;
use thiserror::Error;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

use crate::aws::{describe_task, ApiError, Clients};
use crate::connect::agent::{self, Agent};
use crate::connect::local_command::LocalCommand;
use crate::connect::plugin::{Handoff, Listening};
use crate::connect::resume::SessionResume;
use crate::connect::target::{ssm_target, ExecTarget};
use crate::exit::{Exit, UsageError};
use crate::output::Output;
use crate::ssm::channel::{closed_for_inactivity, Channel, ChannelError, Event};
use crate::ssm::smux::{over_channel, Mux, MuxStream};
use crate::task::eni::private_ip;
use crate::task::{newest, service_tasks};

/// A port session to a host the task reaches.
const TO_REMOTE_HOST: &str = "AWS-StartPortForwardingSessionToRemoteHost";
/// A port session to the task's own localhost.
const TO_TASK: &str = "AWS-StartPortForwardingSession";
/// Events the mux may hold per stream before the channel stops being read.
const STREAM_QUEUE: usize = 64;
/// Bytes buffered between the channel and the mux.
const PIPE_BYTES: usize = 256 * 1024;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Where to forward: `[LOCAL_PORT:]HOST[:PORT]`, HOST being a name, an address,
/// `rds:<db-identifier>` (resolved through the RDS API, which also gives the port),
/// `service:<name>` or `task:<id>` (the task's private address); or, for a forward to
/// a task's own port, `[LOCAL_PORT:]PORT` ([`ForwardSpec::to_task`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardSpec {
    pub local_port: Option<u16>,
    pub host: Host,
    pub port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Name(String),
    Rds(String),
    /// The newest running task of an ECS service of the cluster.
    Service(String),
    /// A task of the cluster, by id or ARN.
    Task(String),
    /// The task the session goes to, on its own localhost.
    Itself,
}

/// A target that cannot be parsed. Exit code 2, before any AWS call.
#[derive(Debug, Error)]
#[error("`{spec}` is not a forward target: {reason} (expected [LOCAL_PORT:]HOST[:PORT], where HOST may be rds:<db-identifier>, service:<name> or task:<id>)")]
pub struct BadTarget {
    pub spec: String,
    pub reason: String,
}

/// The tunnel broke. Exit code 76.
#[derive(Debug, Error)]
pub enum ForwardError {
    #[error("the port-forwarding session could not start: {0}")]
    Handshake(String),
    #[error("the port-forwarding session ended: {0}")]
    Ended(String),
}

impl std::str::FromStr for ForwardSpec {
    type Err = BadTarget;

    fn from_str(spec: &str) -> Result<Self, BadTarget> {
        let bad = |reason: &str| BadTarget {
            spec: spec.to_string(),
            reason: reason.to_string(),
        };
        let port = |text: &str| -> Result<u16, BadTarget> {
            text.parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| bad(&format!("`{text}` is not a port (1-65535)")))
        };
        let mut parts: Vec<&str> = spec.split(':').collect();
        let local_port = if parts.len() > 1 && parts[0].chars().all(|c| c.is_ascii_digit()) {
            let text = parts.remove(0);
            Some(if text == "0" { 0 } else { port(text)? })
        } else {
            None
        };
        let (host, rest) = match parts.as_slice() {
            ["rds", id, rest @ ..] if !id.is_empty() => (Host::Rds(id.to_string()), rest),
            ["service", name, rest @ ..] if !name.is_empty() => {
                (Host::Service(name.to_string()), rest)
            }
            ["task", id, rest @ ..] if !id.is_empty() => (Host::Task(id.to_string()), rest),
            [name, rest @ ..] if !name.is_empty() && !PREFIXES.contains(name) => {
                (Host::Name(name.to_string()), rest)
            }
            _ => return Err(bad("no host")),
        };
        let port = match rest {
            [] => None,
            [p] => Some(port(p)?),
            _ => return Err(bad("too many `:`")),
        };
        if port.is_none() && !matches!(host, Host::Rds(_)) {
            return Err(bad(
                "a remote PORT is needed (only rds: hosts know their own)",
            ));
        }
        Ok(ForwardSpec {
            local_port,
            host,
            port,
        })
    }
}

/// The words before a `:` that name a kind of host rather than a host.
const PREFIXES: [&str; 3] = ["rds", "service", "task"];

impl ForwardSpec {
    /// A forward to a port of the session's task itself: `[LOCAL_PORT:]PORT`.
    pub fn to_task(spec: &str) -> Result<ForwardSpec, BadTarget> {
        let bad = |reason: &str| BadTarget {
            spec: spec.to_string(),
            reason: format!("{reason}; with --service or --task a target is [LOCAL_PORT:]PORT"),
        };
        let number = |text: &str, zero: bool| -> Result<u16, BadTarget> {
            text.parse::<u16>()
                .ok()
                .filter(|p| zero || *p > 0)
                .ok_or_else(|| bad(&format!("`{text}` is not a port (1-65535)")))
        };
        let (local_port, port) = match spec.split(':').collect::<Vec<_>>().as_slice() {
            [port] => (None, number(port, false)?),
            [local, port] => (Some(number(local, true)?), number(port, false)?),
            _ => return Err(bad("too many `:`")),
        };
        Ok(ForwardSpec {
            local_port,
            host: Host::Itself,
            port: Some(port),
        })
    }
}

/// A target resolved to an address the task can dial (none: the task's own localhost).
#[derive(Debug, Clone)]
pub struct Resolved {
    pub host: Option<String>,
    pub port: u16,
    pub local_port: u16,
}

impl Resolved {
    fn document(&self) -> &'static str {
        if self.host.is_some() {
            TO_REMOTE_HOST
        } else {
            TO_TASK
        }
    }

    /// The host as the far side sees it.
    fn host_name(&self) -> &str {
        self.host.as_deref().unwrap_or("localhost")
    }
}

/// Resolves `rds:`, `service:` and `task:` hosts (the latter two within `cluster`) and
/// fills in default ports.
pub async fn resolve(
    clients: &Clients,
    cluster: &str,
    spec: &ForwardSpec,
) -> anyhow::Result<Resolved> {
    let port = spec.port.unwrap_or_default();
    let (host, port) = match &spec.host {
        Host::Name(name) => (Some(name.clone()), port),
        Host::Itself => (None, port),
        Host::Service(service) => (
            Some(service_address(clients, cluster, service).await?),
            port,
        ),
        Host::Task(task) => (Some(task_address(clients, cluster, task).await?), port),
        Host::Rds(id) => {
            let out = clients
                .rds
                .describe_db_instances()
                .db_instance_identifier(id)
                .send()
                .await
                .map_err(|e| ApiError::from_sdk("rds:DescribeDBInstances", e))?;
            let endpoint = out
                .db_instances()
                .first()
                .and_then(|db| db.endpoint())
                .with_context(|| format!("RDS instance {id} has no endpoint yet"))?;
            let address = endpoint.address().context("RDS endpoint without address")?;
            let port = spec
                .port
                .or_else(|| endpoint.port().and_then(|p| u16::try_from(p).ok()))
                .context("RDS endpoint without port")?;
            (Some(address.to_string()), port)
        }
    };
    Ok(Resolved {
        host,
        port,
        local_port: spec.local_port.unwrap_or(port),
    })
}

/// The private address of the service's newest running task.
async fn service_address(
    clients: &Clients,
    cluster: &str,
    service: &str,
) -> anyhow::Result<String> {
    let tasks = service_tasks(&clients.ecs, cluster, service).await?;
    let running = tasks.iter().filter(|t| t.last_status() == Some("RUNNING"));
    newest(running).and_then(private_ip).ok_or_else(|| {
        UsageError(format!(
            "service:{service}: the service has no running task with an address in cluster \
                 {cluster}"
        ))
        .into()
    })
}

/// The private address of a task of the cluster.
async fn task_address(clients: &Clients, cluster: &str, task: &str) -> anyhow::Result<String> {
    let found = describe_task(&clients.ecs, cluster, task).await?;
    found
        .filter(|t| t.last_status() == Some("RUNNING"))
        .as_ref()
        .and_then(private_ip)
        .ok_or_else(|| {
            UsageError(format!(
                "task:{task}: no running task with that id in cluster {cluster}"
            ))
            .into()
        })
}

/// Where local listeners go: loopback unless the user binds elsewhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bind {
    /// 127.0.0.1, and ::1 on the same port where the machine has it.
    Loopback,
    Address(IpAddr),
}

impl Bind {
    /// The address the first (or only) listener binds.
    pub fn first_address(&self) -> IpAddr {
        match self {
            Bind::Loopback => IpAddr::V4(Ipv4Addr::LOCALHOST),
            Bind::Address(ip) => *ip,
        }
    }

    /// Whether other machines may reach the listeners.
    pub fn is_exposed(&self) -> bool {
        matches!(self, Bind::Address(ip) if !ip.is_loopback())
    }
}

impl std::str::FromStr for Bind {
    type Err = String;

    fn from_str(text: &str) -> Result<Bind, String> {
        let text = text.trim_start_matches('[').trim_end_matches(']');
        text.parse::<IpAddr>()
            .map(Bind::Address)
            .map_err(|_| format!("`{text}` is not an IP address (e.g. 127.0.0.1, ::1 or 0.0.0.0)"))
    }
}

/// Listens locally first, so a busy port fails before anything is started in AWS.
pub async fn listen(bind: &Bind, local_port: u16) -> anyhow::Result<Vec<TcpListener>> {
    let first = bind.first_address();
    let listener = TcpListener::bind((first, local_port))
        .await
        .with_context(|| format!("cannot listen on {}", SocketAddr::new(first, local_port)))?;
    let port = listener.local_addr()?.port();
    let mut listeners = vec![listener];
    if *bind == Bind::Loopback {
        // IPv6 loopback too, on the same port, where the machine has one.
        if let Ok(v6) = TcpListener::bind((Ipv6Addr::LOCALHOST, port)).await {
            listeners.push(v6);
        }
    }
    Ok(listeners)
}

/// A port session as StartSession opened it.
struct Started {
    session_id: String,
    url: String,
    token: String,
}

/// SSM StartSession for a port session to `target` (`ecs:<cluster>_<task-id>_<runtime-id>`,
/// the SSM name of `agent`), once the agent is reachable.
async fn start_session(
    clients: &Clients,
    agent: Agent<'_>,
    target: &str,
    remote: &Resolved,
) -> anyhow::Result<Started> {
    agent::when_reachable(clients, agent, || {
        start_session_once(&clients.ssm, target, remote)
    })
    .await
}

async fn start_session_once(
    ssm: &aws_sdk_ssm::Client,
    target: &str,
    remote: &Resolved,
) -> anyhow::Result<Started> {
    let out = ssm
        .start_session()
        .target(target)
        .document_name(remote.document())
        .set_parameters(Some(parameters(remote)))
        .send()
        .await
        .map_err(|e| ApiError::from_sdk("ssm:StartSession", e))?;
    let field = |value: Option<&str>, what: &str| {
        value
            .map(str::to_string)
            .with_context(|| format!("StartSession returned no {what}"))
    };
    Ok(Started {
        session_id: field(out.session_id(), "session id")?,
        url: field(out.stream_url(), "stream URL")?,
        token: field(out.token_value(), "token")?,
    })
}

fn parameters(remote: &Resolved) -> std::collections::HashMap<String, Vec<String>> {
    let host = remote.host.clone().map(|host| ("host", host));
    host.into_iter()
        .chain([
            ("portNumber", remote.port.to_string()),
            ("localPortNumber", remote.local_port.to_string()),
        ])
        .map(|(name, value)| (name.to_string(), vec![value]))
        .collect()
}

/// A port session through the task to `host:port`, or (no host) to `port` of the task
/// itself, open and handshaken.
pub async fn open_to(
    clients: &Clients,
    task: &ExecTarget,
    target: &str,
    host: Option<&str>,
    port: u16,
) -> anyhow::Result<(Mux, tokio::task::JoinHandle<Option<Event>>)> {
    let remote = Resolved {
        host: host.map(str::to_string),
        port,
        local_port: 0,
    };
    open(clients, task.agent(), target, &remote).await
}

/// Opens the port session to `target` over our own data channel.
pub async fn open(
    clients: &Clients,
    agent: Agent<'_>,
    target: &str,
    remote: &Resolved,
) -> anyhow::Result<(Mux, tokio::task::JoinHandle<Option<Event>>)> {
    let started = start_session(clients, agent, target, remote).await?;
    let resume = Arc::new(SessionResume {
        ssm: clients.ssm.clone(),
        session_id: started.session_id.clone(),
    });
    let mut channel = Channel::connect(&started.url, &started.token, None, Some(resume))
        .await
        .map_err(|e| ForwardError::Handshake(e.to_string()))?;
    tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(&mut channel))
        .await
        .map_err(|_| ForwardError::Handshake("the agent never completed the handshake".into()))??;
    Ok(over_channel(channel, STREAM_QUEUE, PIPE_BYTES))
}

async fn handshake(channel: &mut Channel) -> Result<(), ForwardError> {
    loop {
        match channel.recv().await {
            Some(Event::HandshakeComplete { .. }) => return Ok(()),
            Some(Event::Closed(reason)) => {
                return Err(ForwardError::Handshake(
                    reason.unwrap_or_else(|| "closed".into()),
                ))
            }
            Some(Event::Failed(err)) => return Err(ForwardError::Handshake(err.to_string())),
            None => return Err(ForwardError::Handshake("the channel ended".into())),
            Some(_) => {}
        }
    }
}

/// What opens one target's port sessions: the first, and a fresh one when a session
/// ends for good (it could not be resumed) while the forward runs.
pub struct PortSessions {
    pub clients: Clients,
    pub task: ExecTarget,
    pub target: String,
    pub remote: Resolved,
}

impl PortSessions {
    pub async fn open(&self) -> anyhow::Result<(Mux, tokio::task::JoinHandle<Option<Event>>)> {
        open(&self.clients, self.task.agent(), &self.target, &self.remote).await
    }
}

/// Serves local connections through `first` until the caller stops us. A session that
/// cannot be resumed (terminated, or lost for longer than resuming allows) or that the
/// service ended for its idle timeout resets the connections it carried, and new ones go
/// through a new session from `sessions`; any other end of a session ends the forward
/// (an error).
pub async fn serve(
    listeners: Vec<TcpListener>,
    first: (Mux, tokio::task::JoinHandle<Option<Event>>),
    sessions: PortSessions,
    output: Output,
) -> anyhow::Result<()> {
    let (mux, mut session) = first;
    let mut mux = Arc::new(mux);
    let mut accepted = Accepting::new(listeners);
    loop {
        tokio::select! {
            Some(next) = accepted.next() => {
                let (socket, peer) = next.context("accepting a local connection")?;
                let mux = mux.clone();
                tokio::spawn(async move { connection(socket, peer, &mux).await });
            }
            end = &mut session => {
                let (reason, renew) = match end {
                    Ok(Some(Event::Failed(err))) => {
                        (err.to_string(), matches!(err, ChannelError::Resume { .. }))
                    }
                    Ok(Some(Event::Closed(Some(text)))) if closed_for_inactivity(&text) => (
                        format!(
                            "the port session had no traffic for the account's Session Manager \
                             idle timeout (20 minutes unless changed) and the service ended it \
                             ({})",
                            text.trim()
                        ),
                        true,
                    ),
                    Ok(Some(Event::Closed(Some(text)))) if !text.is_empty() => (text, false),
                    _ => ("the data channel closed".to_string(), false),
                };
                if !renew {
                    return Err(ForwardError::Ended(reason).into());
                }
                output.note(&format!(
                    "jump: {reason}; its open connections were reset, new ones go through a new \
                     session"
                ));
                let (fresh, ended) = sessions
                    .open()
                    .await
                    .with_context(|| format!("{reason}, and no new session could be opened"))?;
                mux = Arc::new(fresh);
                session = ended;
            }
        }
    }
}

/// Connections accepted on every listener of one forward or proxy, in one queue; the
/// accept loops end when this is dropped.
pub struct Accepting {
    queue: tokio::sync::mpsc::Receiver<std::io::Result<(TcpStream, SocketAddr)>>,
    loops: Vec<tokio::task::JoinHandle<()>>,
}

impl Accepting {
    pub fn new(listeners: Vec<TcpListener>) -> Accepting {
        let (accepted, queue) = tokio::sync::mpsc::channel(64);
        let loops = listeners
            .into_iter()
            .map(|listener| {
                let accepted = accepted.clone();
                tokio::spawn(async move {
                    loop {
                        let next = listener.accept().await;
                        if accepted.send(next).await.is_err() {
                            return;
                        }
                    }
                })
            })
            .collect();
        Accepting { queue, loops }
    }

    /// The next connection, or a listener's error.
    pub async fn next(&mut self) -> Option<std::io::Result<(TcpStream, SocketAddr)>> {
        self.queue.recv().await
    }
}

impl Drop for Accepting {
    fn drop(&mut self) {
        for task in &self.loops {
            task.abort();
        }
    }
}

/// Says so when a listener accepts connections from other machines (`what`: the tunnel,
/// the proxy).
pub fn warn_if_exposed(bind: &Bind, local: SocketAddr, what: &str, output: Output) {
    if bind.is_exposed() {
        output.note(&format!(
            "jump: warning: {local} accepts connections from other machines: anyone who can \
             reach it can use the {what}"
        ));
    }
}

/// One local connection over one smux stream.
async fn connection(socket: TcpStream, peer: SocketAddr, mux: &Mux) {
    let _ = socket.set_nodelay(true);
    match mux.open().await {
        Ok(stream) => pipe(socket, stream, Vec::new(), mux).await,
        Err(err) => {
            tracing::warn!(%peer, %err, "cannot open a stream for a local connection");
            reset(socket);
        }
    }
}

/// Carries a local connection over its stream both ways (`first`: what the far side
/// already sent) until both ends are done; a cut tunnel resets the local socket.
pub(crate) async fn pipe(mut socket: TcpStream, mut stream: MuxStream, first: Vec<u8>, mux: &Mux) {
    if !first.is_empty() && socket.write_all(&first).await.is_err() {
        return;
    }
    let writer = stream.writer();
    let (mut local_read, mut local_write) = socket.split();
    let upload = writer.copy_from(&mut local_read);
    let download = async {
        while let Some(data) = stream.read().await {
            if local_write.write_all(&data).await.is_err() {
                return;
            }
        }
        if !mux.is_ended() {
            let _ = local_write.shutdown().await;
        }
    };
    {
        let mut upload = std::pin::pin!(upload);
        let mut download = std::pin::pin!(download);
        tokio::select! {
            _ = &mut upload => download.await,
            _ = &mut download => {
                // A clean end from the far side still lets the local side finish sending;
                // a cut tunnel does not wait for anything.
                if !mux.is_ended() {
                    upload.await;
                }
            }
        }
    }
    if mux.is_ended() {
        // The tunnel was cut: the local client must see a reset, not a clean end.
        reset(socket);
    }
}

/// Closes with RST (SO_LINGER 0): how a client learns its data was cut short.
pub(crate) fn reset(socket: TcpStream) {
    let _ = socket.set_zero_linger();
    drop(socket);
}

/// What `jump forward` was asked for: its targets, where to listen for them, and the
/// local command to run through them, if any.
#[derive(Debug, Clone)]
pub struct Forwards {
    pub specs: Vec<ForwardSpec>,
    pub bind: Bind,
    pub then: Option<LocalCommand>,
}

/// Forwards every target through `task` until one session ends or the caller stops us,
/// or, with a local command, until that command exits (its status is jump's).
pub async fn forward_all(
    clients: &Clients,
    task: &ExecTarget,
    forwards: &Forwards,
    output: Output,
) -> anyhow::Result<Exit> {
    let target = ssm_target(&clients.ecs, task).await?;
    let bind = &forwards.bind;
    let mut serving: Vec<BoxFuture<'static, anyhow::Result<()>>> = Vec::new();
    let mut ready = Vec::new();
    for spec in &forwards.specs {
        let mut remote = resolve(clients, &task.cluster, spec).await?;
        let listeners = listen(bind, remote.local_port).await?;
        let local = listeners[0].local_addr()?;
        let serve_it = match &clients.ssm_plugin {
            None => {
                let sessions = PortSessions {
                    clients: clients.clone(),
                    task: task.clone(),
                    target: target.clone(),
                    remote: remote.clone(),
                };
                let first = sessions.open().await?;
                serve(listeners, first, sessions, output).boxed()
            }
            Some(program) => {
                // The plugin listens itself: free the port (chosen by us if it was 0).
                drop(listeners);
                remote.local_port = local.port();
                let started = start_session(clients, task.agent(), &target, &remote).await?;
                let handoff = Handoff {
                    session: serde_json::json!({
                        "SessionId": started.session_id,
                        "StreamUrl": started.url,
                        "TokenValue": started.token,
                    }),
                    request: serde_json::json!({
                        "Target": target,
                        "DocumentName": remote.document(),
                        "Parameters": parameters(&remote),
                    }),
                    service: "ssm",
                };
                Listening::start(clients, program, &handoff)
                    .await?
                    .ended()
                    .boxed()
            }
        };
        let through = match &remote.host {
            Some(host) => format!("{host}:{} through the jumphost", remote.port),
            None => format!("port {} of task {}", remote.port, task.task_arn),
        };
        if forwards.then.is_some() {
            // Stdout is the command's; the addresses reach it as arguments and environment.
            output.note(&format!("jump: forwarding {local} to {through}"));
        } else if output.json() {
            // One line per target, printed when it is ready: the forward keeps running,
            // so a script reads lines rather than waiting for a whole document.
            let ready = serde_json::json!({
                "local_address": local.to_string(),
                "remote_host": remote.host_name(),
                "remote_port": remote.port,
                "task_arn": task.task_arn,
            });
            output.print(&ready.to_string());
        } else {
            output.print(&local.to_string());
            output.note(&format!(
                "jump: forwarding {local} to {through}; Ctrl-C stops"
            ));
        }
        warn_if_exposed(bind, local, "tunnel", output);
        serving.push(serve_it);
        ready.push(local);
    }
    let served = futures_util::future::try_join_all(serving);
    match &forwards.then {
        None => served.await.map(|_| Exit::Success),
        Some(command) => tokio::select! {
            ended = served => ended.map(|_| Exit::Success),
            status = command.run(&ready) => Ok(Exit::Remote(status?)),
        },
    }
}

crate::exit::exit_class!(Connect: ForwardError);

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(text: &str) -> ForwardSpec {
        text.parse().unwrap()
    }

    #[test]
    fn targets_parse_in_every_documented_form() {
        let name = |n: &str| Host::Name(n.to_string());
        let rds = |n: &str| Host::Rds(n.to_string());
        let cases = [
            (
                "15432:db.internal:5432",
                Some(15432),
                name("db.internal"),
                Some(5432),
            ),
            ("db.internal:5432", None, name("db.internal"), Some(5432)),
            ("15432:rds:orders", Some(15432), rds("orders"), None),
            ("rds:orders", None, rds("orders"), None),
            ("rds:orders:6432", None, rds("orders"), Some(6432)),
            ("0:10.0.1.5:7888", Some(0), name("10.0.1.5"), Some(7888)),
            (
                "6666:service:api:55555",
                Some(6666),
                Host::Service("api".into()),
                Some(55555),
            ),
            (
                "task:0abc:8080",
                None,
                Host::Task("0abc".into()),
                Some(8080),
            ),
        ];
        for (text, local_port, host, port) in cases {
            assert_eq!(
                spec(text),
                ForwardSpec {
                    local_port,
                    host,
                    port
                },
                "{text}"
            );
        }
    }

    #[test]
    fn bad_targets_say_why() {
        for (text, why) in [
            ("db.internal", "remote PORT"),
            ("5432:db:70000", "not a port"),
            ("rds:", "no host"),
            ("1:2:3:4", "too many"),
            ("", "no host"),
            ("service:api", "remote PORT"),
            ("task:", "no host"),
        ] {
            let err = text.parse::<ForwardSpec>().unwrap_err().to_string();
            assert!(err.contains(why), "{text}: {err}");
        }
    }

    #[test]
    fn a_task_s_own_ports_are_local_and_remote_port_only() {
        let own = |text: &str| ForwardSpec::to_task(text).map(|s| (s.local_port, s.port));
        assert_eq!(own("55555").unwrap(), (None, Some(55555)));
        assert_eq!(own("6666:55555").unwrap(), (Some(6666), Some(55555)));
        assert_eq!(own("0:55555").unwrap(), (Some(0), Some(55555)));
        for bad in ["0", "rds:x", "1:2:3", "db:5432", "70000"] {
            assert!(own(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bind_addresses_are_ip_addresses_and_only_loopback_is_private() {
        let bind = |text: &str| text.parse::<Bind>();
        assert!(!bind("127.0.0.2").unwrap().is_exposed());
        assert!(!bind("[::1]").unwrap().is_exposed());
        assert!(bind("0.0.0.0").unwrap().is_exposed());
        assert!(bind("10.1.2.3").unwrap().is_exposed());
        assert!(!Bind::Loopback.is_exposed());
        assert!(bind("localhost").is_err());
    }
}
