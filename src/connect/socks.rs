//! A local SOCKS5 proxy through one task: every connection reaches whatever host and port
//! it asks for inside the VPC (`jump socks`).
//!
//! Only what the proxy needs of RFC 1928 is here, hand-written because it is small and the
//! far side is not a socket but a Session Manager port session: no authentication, the
//! CONNECT command, IPv4 and domain-name targets (names are resolved on the far side, in
//! the task, as `curl --socks5-hostname` expects). Each distinct target gets its own port
//! session (`AWS-StartPortForwardingSessionToRemoteHost`), reused by later connections
//! while it lasts; each connection is one smux stream of it.
//!
//! The agent dials the target when a stream opens and closes the stream if it cannot, with
//! no other signal. So the first connection to a target waits a moment for the far side's
//! first word: a stream closed before any data is a refused connection, answered with a
//! SOCKS failure rather than a success and an empty connection; data or silence (a client
//! that speaks first, as HTTP's do) is a success. Once a target has answered, later
//! connections to it are answered at once.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;

use crate::aws::Clients;
use crate::connect::forward::{listen, open_to, pipe, reset, warn_if_exposed, Accepting, Bind};
use crate::connect::target::{ssm_target, ExecTarget};
use crate::exit::Exit;
use crate::output::Output;
use crate::ssm::smux::Mux;

const VERSION: u8 = 5;
const NO_AUTHENTICATION: u8 = 0;
const NO_ACCEPTABLE_METHOD: u8 = 0xff;
const CONNECT: u8 = 1;
const IPV4: u8 = 1;
const DOMAIN: u8 = 3;
// Replies (RFC 1928, section 6).
const SUCCEEDED: u8 = 0;
const GENERAL_FAILURE: u8 = 1;
const CONNECTION_REFUSED: u8 = 5;
const COMMAND_NOT_SUPPORTED: u8 = 7;
const ADDRESS_TYPE_NOT_SUPPORTED: u8 = 8;
/// How long the first connection to a target waits for the far side to speak or close.
const FIRST_WORD: Duration = Duration::from_millis(1500);
/// A client must finish its SOCKS request within this.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// One target's port session, and whether the target has answered through it yet.
struct Tunnel {
    mux: Arc<Mux>,
    answered: bool,
}

/// A target: host (an address or a name) and port.
type Destination = (String, u16);

/// The port sessions of one proxy, by target. Each target has its own slot, so opening a
/// session to one target never holds up connections to another.
#[derive(Clone)]
struct Tunnels {
    clients: Clients,
    task: ExecTarget,
    target: String,
    slots: Arc<Mutex<HashMap<Destination, Slot>>>,
}

type Slot = Arc<Mutex<Option<Tunnel>>>;

impl Tunnels {
    async fn slot(&self, host: &str, port: u16) -> Slot {
        let mut slots = self.slots.lock().await;
        slots.entry((host.to_string(), port)).or_default().clone()
    }

    /// The target's session, and whether the target has answered through it: the open
    /// one, or a new port session.
    async fn get(&self, host: &str, port: u16) -> anyhow::Result<(Arc<Mux>, bool)> {
        let slot = self.slot(host, port).await;
        let mut tunnel = slot.lock().await;
        if let Some(open) = tunnel.as_ref().filter(|t| !t.mux.is_ended()) {
            return Ok((open.mux.clone(), open.answered));
        }
        let (mux, session) =
            open_to(&self.clients, &self.task, &self.target, Some(host), port).await?;
        // The session's own end is seen through the mux; nothing else waits for it.
        drop(session);
        let mux = Arc::new(mux);
        *tunnel = Some(Tunnel {
            mux: mux.clone(),
            answered: false,
        });
        Ok((mux, false))
    }

    /// The target answered: later connections to it are answered at once.
    async fn answered(&self, host: &str, port: u16) {
        if let Some(tunnel) = self.slot(host, port).await.lock().await.as_mut() {
            tunnel.answered = true;
        }
    }

    async fn forget(&self, host: &str, port: u16) {
        *self.slot(host, port).await.lock().await = None;
    }
}

/// Where `jump socks` listens.
#[derive(Debug, Clone)]
pub struct Proxy {
    pub bind: Bind,
    pub port: u16,
}

/// Listens where `proxy` says, says where, and serves SOCKS clients through `task` until
/// the caller stops us.
pub async fn run(
    clients: &Clients,
    task: &ExecTarget,
    proxy: &Proxy,
    output: Output,
) -> anyhow::Result<Exit> {
    let listeners = listen(&proxy.bind, proxy.port).await?;
    let local = listeners[0].local_addr()?;
    announce(output, &proxy.bind, local, &task.task_arn);
    serve(clients, task, listeners).await?;
    Ok(Exit::Success)
}

/// Says where the proxy listens: the address on stdout (`--json`: with the task), how
/// to stop it on stderr, and a warning when `bind` exposes it to other machines.
pub fn announce(output: Output, bind: &Bind, local: SocketAddr, task_arn: &str) {
    if output.json() {
        let ready = serde_json::json!({
            "socks_address": local.to_string(),
            "task_arn": task_arn,
        });
        output.print(&ready.to_string());
    } else {
        output.print(&local.to_string());
        output.note(&format!(
            "jump: SOCKS5 proxy on {local} into the VPC through task {task_arn}; Ctrl-C stops"
        ));
    }
    warn_if_exposed(bind, local, "proxy", output);
}

/// Serves SOCKS clients on `listeners` through `task` until the caller stops us.
async fn serve(
    clients: &Clients,
    task: &ExecTarget,
    listeners: Vec<TcpListener>,
) -> anyhow::Result<()> {
    let tunnels = Tunnels {
        clients: clients.clone(),
        task: task.clone(),
        target: ssm_target(&clients.ecs, task).await?,
        slots: Arc::default(),
    };
    let mut accepted = Accepting::new(listeners);
    while let Some(next) = accepted.next().await {
        let socket = match next {
            Ok((socket, _)) => socket,
            Err(err) => {
                tracing::debug!(%err, "accepting a SOCKS client");
                continue;
            }
        };
        let tunnels = tunnels.clone();
        tokio::spawn(async move {
            if let Err(err) = client(socket, &tunnels).await {
                tracing::debug!(%err, "SOCKS client");
            }
        });
    }
    Ok(())
}

/// What a client asked to connect to.
#[derive(Debug, PartialEq, Eq)]
enum Request {
    Connect {
        host: String,
        port: u16,
    },
    /// Answered with this failure and closed.
    Refused(u8),
}

/// Reads the greeting and the request; `Ok(None)` when the client offered no method we
/// take (it has been told).
async fn handshake(socket: &mut TcpStream) -> anyhow::Result<Option<Request>> {
    let mut head = [0u8; 2];
    socket.read_exact(&mut head).await?;
    anyhow::ensure!(
        head[0] == VERSION,
        "not a SOCKS5 client (version {})",
        head[0]
    );
    let mut methods = vec![0u8; usize::from(head[1])];
    socket.read_exact(&mut methods).await?;
    if !methods.contains(&NO_AUTHENTICATION) {
        socket.write_all(&[VERSION, NO_ACCEPTABLE_METHOD]).await?;
        return Ok(None);
    }
    socket.write_all(&[VERSION, NO_AUTHENTICATION]).await?;
    let mut request = [0u8; 4];
    socket.read_exact(&mut request).await?;
    anyhow::ensure!(request[0] == VERSION, "not a SOCKS5 request");
    let host = match request[3] {
        IPV4 => {
            let mut octets = [0u8; 4];
            socket.read_exact(&mut octets).await?;
            Ipv4Addr::from(octets).to_string()
        }
        DOMAIN => {
            let len = socket.read_u8().await?;
            let mut name = vec![0u8; usize::from(len)];
            socket.read_exact(&mut name).await?;
            String::from_utf8(name).context("a domain name that is not UTF-8")?
        }
        _ => return Ok(Some(Request::Refused(ADDRESS_TYPE_NOT_SUPPORTED))),
    };
    let port = socket.read_u16().await?;
    if request[1] != CONNECT {
        return Ok(Some(Request::Refused(COMMAND_NOT_SUPPORTED)));
    }
    Ok(Some(Request::Connect { host, port }))
}

/// The reply to a request; the bound address is not meaningful through a tunnel.
fn reply(code: u8) -> [u8; 10] {
    [VERSION, code, 0, IPV4, 0, 0, 0, 0, 0, 0]
}

async fn client(mut socket: TcpStream, tunnels: &Tunnels) -> anyhow::Result<()> {
    let _ = socket.set_nodelay(true);
    let request = tokio::time::timeout(REQUEST_TIMEOUT, handshake(&mut socket))
        .await
        .context("the SOCKS client took too long to ask")??;
    let (host, port) = match request {
        None => return Ok(()),
        Some(Request::Refused(code)) => return Ok(socket.write_all(&reply(code)).await?),
        Some(Request::Connect { host, port }) => (host, port),
    };
    let (mux, answered) = match tunnels.get(&host, port).await {
        Ok(tunnel) => tunnel,
        Err(err) => {
            tracing::warn!(host, port, "cannot open a port session: {err:#}");
            return Ok(socket.write_all(&reply(GENERAL_FAILURE)).await?);
        }
    };
    let Ok(mut stream) = mux.open().await else {
        tunnels.forget(&host, port).await;
        return Ok(socket.write_all(&reply(GENERAL_FAILURE)).await?);
    };
    let mut first = Vec::new();
    if !answered {
        match tokio::time::timeout(FIRST_WORD, stream.read()).await {
            Ok(None) => {
                // Closed before a word: the agent could not connect.
                tunnels.forget(&host, port).await;
                return Ok(socket.write_all(&reply(CONNECTION_REFUSED)).await?);
            }
            Ok(Some(data)) => first = data,
            Err(_) => {}
        }
        tunnels.answered(&host, port).await;
    }
    if socket.write_all(&reply(SUCCEEDED)).await.is_err() {
        reset(socket);
        return Ok(());
    }
    pipe(socket, stream, first, &mux).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `handshake` on the server side of a loopback connection fed `bytes`.
    async fn handshake_of(bytes: &[u8]) -> (anyhow::Result<Option<Request>>, Vec<u8>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let bytes = bytes.to_vec();
        let client = tokio::spawn(async move {
            let mut stream = TcpStream::connect(address).await.unwrap();
            stream.write_all(&bytes).await.unwrap();
            stream.shutdown().await.unwrap();
            let mut answer = Vec::new();
            let _ = stream.read_to_end(&mut answer).await;
            answer
        });
        let (mut socket, _) = listener.accept().await.unwrap();
        let request = handshake(&mut socket).await;
        drop(socket);
        (request, client.await.unwrap())
    }

    #[tokio::test]
    async fn connect_requests_by_address_and_by_name() {
        let (request, answer) = handshake_of(&[5, 1, 0, 5, 1, 0, 1, 10, 0, 3, 7, 0x1f, 0x90]).await;
        assert_eq!(answer, [5, 0]);
        let expected = Request::Connect {
            host: "10.0.3.7".into(),
            port: 8080,
        };
        assert_eq!(request.unwrap(), Some(expected));
        let mut by_name = vec![5, 2, 2, 0, 5, 1, 0, 3, 11];
        by_name.extend_from_slice(b"db.internal");
        by_name.extend_from_slice(&5432u16.to_be_bytes());
        let (request, _) = handshake_of(&by_name).await;
        let expected = Request::Connect {
            host: "db.internal".into(),
            port: 5432,
        };
        assert_eq!(request.unwrap(), Some(expected));
    }

    #[tokio::test]
    async fn what_the_proxy_does_not_do_is_refused_in_socks_terms() {
        let (request, answer) = handshake_of(&[5, 1, 2]).await;
        assert_eq!(answer, [5, 0xff], "only no-authentication is offered");
        assert_eq!(request.unwrap(), None);
        let bind = [5, 1, 0, 5, 2, 0, 1, 10, 0, 0, 1, 0, 80];
        let (request, _) = handshake_of(&bind).await;
        assert_eq!(
            request.unwrap(),
            Some(Request::Refused(COMMAND_NOT_SUPPORTED))
        );
        let mut ipv6 = vec![5, 1, 0, 5, 1, 0, 4];
        ipv6.extend_from_slice(&[0; 18]);
        let (request, _) = handshake_of(&ipv6).await;
        assert_eq!(
            request.unwrap(),
            Some(Request::Refused(ADDRESS_TYPE_NOT_SUPPORTED))
        );
        assert!(handshake_of(&[4, 1, 0, 80]).await.0.is_err(), "SOCKS4");
    }
}
