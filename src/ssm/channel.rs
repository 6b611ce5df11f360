//! The reliability layer of the data channel: one WebSocket, two numbered message streams.
//!
//! [`Channel::connect`] opens the socket (TCP_NODELAY on: every keystroke is its own
//! message and Nagle would add up to 40 ms per round trip), sends the opening text frame
//! with the session token, and hands the socket to a background task (the *driver*) that
//! owns all protocol state. The caller talks to the driver through two queues, both
//! bounded, which is what makes the flow control work end to end:
//!
//! - **Outgoing**: [`Sender::send`] splits data into messages of at most 1024 bytes and
//!   takes one permit of a send window per message; the permit comes back when the agent
//!   acknowledges it. A stalled agent therefore blocks the writer instead of growing a
//!   buffer. Unacknowledged messages are retransmitted, oldest first, after an adaptive
//!   timeout (Jacobson/Karels, as both official sides do), and the channel fails after a
//!   bounded number of attempts.
//! - **Incoming**: output is delivered strictly in sequence order through a bounded event
//!   queue, and a message is acknowledged only when it enters that queue. A slow consumer
//!   thus withholds acknowledgements and the agent retransmits later; nothing is ever
//!   dropped or truncated, and output that arrives before the first [`Channel::recv`]
//!   simply waits in the queue. Out-of-order messages wait (unacknowledged) in a bounded
//!   reorder buffer; duplicates of delivered messages are re-acknowledged.
//!
//! Control messages never fail the channel: unknown message and payload types are logged
//! and ignored, and every handshake action we do not implement is answered "unsupported".
//!
//! # Encryption
//! When the agent asks for `KMSEncryption` and the caller supplied [`DataKeys`], the
//! driver gets a data key (delivery pauses meanwhile, so nothing is read before the key
//! exists), answers the agent's challenge, and from then on decrypts Output, StdErr and
//! ExitCode payloads and encrypts the Output payloads it sends (see [`super::cipher`]).
//! No caller data is sent until the agent has shown how the session goes: until its
//! HandshakeComplete, or, for a session without a handshake (a plain ECS Exec shell), its
//! first output. Keystrokes thus never go out in clear text to an agent that is about to
//! require encryption, as the official plugin holds input until the session type is set.
//! When the caller's [`DataKeys`] name a required key (the cluster's), a session the
//! agent starts unencrypted, or under another key, fails the channel before any input
//! leaves. A payload that fails authentication fails the channel; it is never delivered.
//! A closed or failing socket, by contrast, ends the channel at once with
//! [`Event::Failed`], so a killed gateway is reported within one read, unless the
//! channel can resume (below).
//!
//! # Resuming
//! The service closes a data channel's WebSocket now and then (about hourly) and networks
//! drop idle or broken paths, while the session itself, and what runs in the task, carry
//! on. A channel given a [`Resume`] reconnects instead of failing: it asks for a new token
//! (`ssm:ResumeSession`), opens a new WebSocket with the same client id, sends every
//! message still unacknowledged again and goes on with the same sequence numbers both
//! ways, so no byte is lost or repeated and open smux streams survive. Attempts back off
//! for at most [`RESUME_WINDOW`]; a refusal (the session was terminated, access denied,
//! credentials expired) ends the channel at once with the reason. Neither the consumer
//! nor the senders notice anything but a pause. Only a `channel_closed` from the agent,
//! or our own [`Channel::close`], ends a resumable channel.
//!
//! A path can also die without closing (a VPN that drops packets, a laptop that slept):
//! we ping every [`Limits::keepalive`] (which also keeps NAT and VPN idle timers from
//! cutting a quiet session), and a connection silent for [`Limits::silence`] (no message,
//! no pong) counts as lost, so it is resumed within seconds instead of hanging until
//! TCP gives up.
//!
//! # Client version
//! We announce [`CLIENT_VERSION`] = 1.2.339.0. The agent gates behaviour on it, and this
//! is the oldest plugin release consistent with what we implement: at least 1.1.70, so
//! port forwarding is multiplexed with smux (see [`super::smux`]); above 1.2.331.0, so the
//! agent turns smux keepalive NOPs off (we send none); at least 1.2.312.0, the release that
//! introduced the StdErr and ExitCode payload types we handle. It predates 1.2.764.0,
//! which SigV4-signs the WebSocket upgrade, something we do not do.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Bytes, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use uuid::Uuid;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

use super::cipher::{same_key, DataKey, DataKeys, SessionCipher, DATA_KEY_BYTES};
use super::frame::{self, decode, Frame, MessageType, PayloadType};
use crate::proxy::{self, ConnectError};

/// The plugin version we claim to be; see the module documentation for why this one.
pub const CLIENT_VERSION: &str = "1.2.339.0";

/// Largest payload per data message, as both official sides send.
pub const MAX_PAYLOAD: usize = 1024;

/// Values of a Flag payload (PayloadType 10) that we send or act on
/// (1, DisconnectToPort, matters only to non-multiplexed sessions).
pub mod flag {
    pub const TERMINATE_SESSION: u32 = 2;
    pub const CONNECT_TO_PORT_ERROR: u32 = 3;
}

/// Retransmission timer parameters (RFC 6298 style, as the official plugin).
const INITIAL_RTO: Duration = Duration::from_millis(200);
const MAX_RTO: Duration = Duration::from_secs(1);
const CLOCK_GRANULARITY: Duration = Duration::from_millis(10);
const RESEND_CHECK: Duration = Duration::from_millis(100);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a lost connection may take to resume before the channel fails.
pub const RESUME_WINDOW: Duration = Duration::from_secs(60);
/// One resume attempt (the API call and the new connection) gives up after this.
const RESUME_ATTEMPT: Duration = Duration::from_secs(10);
const RESUME_FIRST_DELAY: Duration = Duration::from_millis(100);
const RESUME_MAX_DELAY: Duration = Duration::from_secs(5);

/// ActionStatus values in a HandshakeResponse.
const ACTION_SUCCESS: u32 = 1;
const ACTION_FAILED: u32 = 2;
const ACTION_UNSUPPORTED: u32 = 3;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Bounds of the channel's queues and retry policy.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Outgoing messages that may be unacknowledged at once (the send window).
    pub window: usize,
    /// Out-of-order incoming messages buffered ahead of the next expected one.
    pub reorder: usize,
    /// Events buffered for the consumer; beyond this, acknowledgements are withheld.
    pub queue: usize,
    /// Transmissions of one message before the channel gives up.
    pub max_attempts: u32,
    /// How long [`Channel::close`] waits for outstanding acknowledgements.
    pub close_grace: Duration,
    /// How often we ping the gateway. The plugin pings about every 5 minutes and the agent
    /// every 54 s; more often keeps NAT and VPN idle timers from cutting a quiet session.
    pub keepalive: Duration,
    /// Silence (not a message, not a pong) after which the connection counts as dead and
    /// is resumed: a path that drops everything never closes by itself.
    pub silence: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            window: 128,
            reorder: 512,
            queue: 64,
            // The plugin's 3000 attempts at up to 1 s apart: about five minutes.
            max_attempts: 3000,
            close_grace: Duration::from_secs(1),
            keepalive: Duration::from_secs(5),
            silence: Duration::from_secs(15),
        }
    }
}

/// Why the channel could not be opened or stopped working.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ChannelError {
    #[error("invalid stream URL: {0}")]
    Url(String),
    #[error("cannot connect to the session gateway: {0}")]
    Connect(String),
    #[error("the session gateway connection failed: {0}")]
    Socket(String),
    #[error("the session gateway closed the connection")]
    PeerClosed,
    #[error("the session gateway stopped answering ({}s without a word)", .0.as_secs())]
    Silent(Duration),
    #[error("message {seq} was not acknowledged after {attempts} attempts")]
    Unacknowledged { seq: i64, attempts: u32 },
    #[error("the session channel is closed")]
    Closed,
    #[error("session encryption failed: {0}")]
    Encryption(String),
    #[error("{lost}, and the session could not be resumed: {why}")]
    Resume {
        lost: Box<ChannelError>,
        why: String,
    },
}

/// A new connection's address and token for the same session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resumed {
    pub stream_url: String,
    pub token: String,
}

/// Why a session cannot be resumed, now or at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResumeError {
    /// Worth another try: the API or the gateway did not answer.
    Transient(String),
    /// Final: the session is gone, or the caller may not resume it.
    Refused(String),
}

/// Where a channel gets a new token when its connection is lost while the session lives
/// on. The caller supplies it: only the caller holds the AWS clients and the session id.
pub trait Resume: Send + Sync {
    fn resume(&self) -> Pin<Box<dyn Future<Output = Result<Resumed, ResumeError>> + Send>>;
}

/// Something the agent said, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// PayloadType 1: terminal or port data.
    Output(Vec<u8>),
    /// PayloadType 11: standard error of a non-interactive command.
    StdErr(Vec<u8>),
    /// PayloadType 12: the exit status of a non-interactive command.
    ExitCode(i32),
    /// PayloadType 10; see [`flag`].
    Flag(u32),
    /// The agent finished the handshake it started.
    HandshakeComplete {
        agent_version: Option<String>,
        session_type: Option<String>,
        customer_message: Option<String>,
    },
    /// The agent closed the channel (`channel_closed`), with its message if any. Last event.
    Closed(Option<String>),
    /// The connection broke. Last event.
    Failed(ChannelError),
}

/// Whether a `channel_closed` message is the service ending a session for its idle
/// timeout ("Your session timed out due to inactivity and has been terminated.").
/// Only input from the client counts as activity there: output, acknowledgements and
/// WebSocket pings do not, so no keepalive of ours can hold it off.
pub fn closed_for_inactivity(output: &str) -> bool {
    output.contains("timed out due to inactivity")
}

/// An open data channel. Dropping it closes the socket without ceremony; prefer
/// [`Channel::close`].
pub struct Channel {
    sender: Sender,
    events: mpsc::Receiver<Event>,
    driver: JoinHandle<()>,
}

/// The writing side of a channel; cheap to clone, usable from several tasks.
#[derive(Clone)]
pub struct Sender {
    shared: Arc<Shared>,
}

struct Shared {
    commands: mpsc::UnboundedSender<Command>,
    /// One permit per message that may be in flight.
    window: Semaphore,
    /// Keeps the chunks of one `send` contiguous in the sequence.
    order: tokio::sync::Mutex<()>,
    failure: StdMutex<Option<ChannelError>>,
}

impl Shared {
    fn error(&self) -> ChannelError {
        self.failure
            .lock()
            .ok()
            .and_then(|f| f.clone())
            .unwrap_or(ChannelError::Closed)
    }
}

enum Command {
    Data {
        payload_type: PayloadType,
        bytes: Vec<u8>,
    },
    Close {
        done: oneshot::Sender<()>,
    },
}

impl Sender {
    /// Sends `bytes` as one or more data messages of `payload_type`, waiting while the
    /// send window is full. Concurrent calls do not interleave their messages. If the
    /// future is dropped part way, a prefix of `bytes` may have been sent.
    pub async fn send(&self, payload_type: PayloadType, bytes: &[u8]) -> Result<(), ChannelError> {
        let _order = self.shared.order.lock().await;
        for chunk in bytes.chunks(MAX_PAYLOAD) {
            let permit = self
                .shared
                .window
                .acquire()
                .await
                .map_err(|_| self.shared.error())?;
            permit.forget();
            if self.shared.window.is_closed() {
                return Err(self.shared.error());
            }
            self.shared
                .commands
                .send(Command::Data {
                    payload_type,
                    bytes: chunk.to_vec(),
                })
                .map_err(|_| self.shared.error())?;
        }
        Ok(())
    }
}

impl Channel {
    /// Opens the channel to `stream_url` (`wss://` for AWS, `ws://` in tests).
    /// `keys` is where a data key comes from if the agent requires KMS encryption;
    /// without it such a session is refused.
    /// `resume`, if given, is how the channel reconnects when its connection is lost.
    pub async fn connect(
        stream_url: &str,
        token: &str,
        keys: Option<Arc<dyn DataKeys>>,
        resume: Option<Arc<dyn Resume>>,
    ) -> Result<Channel, ChannelError> {
        Self::connect_with(stream_url, token, Limits::default(), keys, resume).await
    }

    /// [`Channel::connect`] with explicit limits.
    pub async fn connect_with(
        stream_url: &str,
        token: &str,
        limits: Limits,
        keys: Option<Arc<dyn DataKeys>>,
        resume: Option<Arc<dyn Resume>>,
    ) -> Result<Channel, ChannelError> {
        let client_id = Uuid::new_v4().to_string();
        let (sink, stream) = open_channel_socket(stream_url, token, &client_id).await?;

        let (commands, command_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            commands,
            window: Semaphore::new(limits.window),
            order: tokio::sync::Mutex::new(()),
            failure: StdMutex::new(None),
        });
        let (events_tx, events) = mpsc::channel(limits.queue.max(1));
        let (out, out_rx) = mpsc::unbounded_channel();
        let writer = tokio::spawn(write_socket(sink, out_rx));
        let driver = Driver {
            limits,
            shared: shared.clone(),
            out,
            events: events_tx,
            next_seq: 0,
            unacked: BTreeMap::new(),
            rto: Rto::new(),
            paused: false,
            expected: 0,
            reorder: BTreeMap::new(),
            closed: None,
            agent_version: None,
            session_type: None,
            keys,
            cipher: None,
            gate: Gate::AwaitingAgent,
            held: Vec::new(),
            key_request: None,
            pending_response: None,
            resume,
            client_id,
        };
        let driver = tokio::spawn(driver.run(stream, writer, command_rx));
        Ok(Channel {
            sender: Sender { shared },
            events,
            driver,
        })
    }

    /// A handle for sending from other tasks.
    pub fn sender(&self) -> Sender {
        self.sender.clone()
    }

    /// The next event; `None` after [`Event::Closed`] or [`Event::Failed`].
    pub async fn recv(&mut self) -> Option<Event> {
        self.events.recv().await
    }

    /// Ends the session: unless the agent already closed the channel, sends the
    /// TerminateSession flag and waits briefly for outstanding acknowledgements, then
    /// closes the socket.
    pub async fn close(self) {
        let (done, finished) = oneshot::channel();
        if self
            .sender
            .shared
            .commands
            .send(Command::Close { done })
            .is_ok()
        {
            let _ = tokio::time::timeout(Duration::from_secs(3), finished).await;
        }
        drop(self.events);
        let _ = tokio::time::timeout(Duration::from_secs(1), self.driver).await;
    }
}

/// Where a stream URL points: host and port. Plain `ws://` carries the session token and
/// every keystroke in the clear, so it is accepted only for a loopback host (a local
/// gateway, as in the sandbox); anything else must be `wss://`.
fn stream_endpoint(
    uri: &tokio_tungstenite::tungstenite::http::Uri,
) -> Result<(String, u16), ChannelError> {
    let host = uri
        .host()
        .ok_or_else(|| ChannelError::Url("no host".to_string()))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    let default_port = match uri.scheme_str() {
        Some("wss") => 443,
        Some("ws") if loopback => 80,
        Some("ws") => {
            return Err(ChannelError::Url(format!(
                "ws:// to {host} would carry the session unencrypted; only wss:// is accepted \
                 for a host that is not loopback"
            )))
        }
        other => return Err(ChannelError::Url(format!("unsupported scheme {other:?}"))),
    };
    Ok((host, uri.port_u16().unwrap_or(default_port)))
}

/// Opens the socket and sends the opening text frame with `token` (a new token, with the
/// same client id, when resuming).
async fn open_channel_socket(
    stream_url: &str,
    token: &str,
    client_id: &str,
) -> Result<(SplitSink<Ws, Message>, SplitStream<Ws>), ChannelError> {
    let ws = tokio::time::timeout(CONNECT_TIMEOUT, open_socket(stream_url))
        .await
        .map_err(|_| ChannelError::Connect("timed out".to_string()))??;
    let (mut sink, stream) = ws.split();
    let opening = serde_json::json!({
        "MessageSchemaVersion": "1.0",
        "RequestId": Uuid::new_v4().to_string(),
        "TokenValue": token,
        "ClientId": client_id,
        "ClientVersion": CLIENT_VERSION,
    });
    sink.send(Message::text(opening.to_string()))
        .await
        .map_err(|e| ChannelError::Socket(e.to_string()))?;
    Ok((sink, stream))
}

/// Connects TCP ourselves (to set TCP_NODELAY, and through the environment's proxy if it
/// names one), then TLS if `wss`, then the upgrade.
async fn open_socket(stream_url: &str) -> Result<Ws, ChannelError> {
    let request = stream_url
        .into_client_request()
        .map_err(|e| ChannelError::Url(e.to_string()))?;
    let (host, port) = stream_endpoint(request.uri())?;
    let scheme = request.uri().scheme_str().unwrap_or("wss");
    let tcp = proxy::connect(scheme, &host, port)
        .await
        .map_err(|e| match e {
            ConnectError::Direct(e) => ChannelError::Connect(format!("{host}:{port}: {e}")),
            ConnectError::Proxy(e) => ChannelError::Connect(e.to_string()),
        })?;
    tcp.set_nodelay(true)
        .map_err(|e| ChannelError::Connect(format!("cannot set TCP_NODELAY: {e}")))?;
    let (ws, _response) = tokio_tungstenite::client_async_tls(request, tcp)
        .await
        .map_err(|e| ChannelError::Connect(e.to_string()))?;
    Ok(ws)
}

/// Owns the socket's write half so a slow peer never stalls reading (and acking).
/// Ends with the queue (closing the socket) or on the first write error.
async fn write_socket(
    mut sink: SplitSink<Ws, Message>,
    mut out: mpsc::UnboundedReceiver<Message>,
) -> String {
    while let Some(message) = out.recv().await {
        if let Err(e) = sink.send(message).await {
            return e.to_string();
        }
    }
    let _ = sink.close().await;
    "closed".to_string()
}

/// Jacobson/Karels retransmission timeout.
#[derive(Debug)]
struct Rto {
    srtt: Option<Duration>,
    rttvar: Duration,
    current: Duration,
}

impl Rto {
    fn new() -> Self {
        Rto {
            srtt: None,
            rttvar: Duration::ZERO,
            current: INITIAL_RTO,
        }
    }

    /// Folds in one round-trip sample: alpha 1/8, beta 1/4.
    fn sample(&mut self, rtt: Duration) {
        let srtt = match self.srtt {
            None => {
                self.rttvar = rtt / 2;
                rtt
            }
            Some(srtt) => {
                let deviation = srtt.abs_diff(rtt);
                self.rttvar = self.rttvar * 3 / 4 + deviation / 4;
                srtt * 7 / 8 + rtt / 8
            }
        };
        self.srtt = Some(srtt);
        self.current = (srtt + CLOCK_GRANULARITY.max(self.rttvar * 4)).min(MAX_RTO);
    }
}

/// An outgoing data message awaiting its acknowledgement.
struct Unacked {
    bytes: Bytes,
    /// None while publication is paused and it was never sent.
    last_sent: Option<Instant>,
    attempts: u32,
    /// Whether it holds a send-window permit (caller data does; our own replies do not).
    permit: bool,
}

struct Driver {
    limits: Limits,
    shared: Arc<Shared>,
    out: mpsc::UnboundedSender<Message>,
    events: mpsc::Sender<Event>,
    next_seq: i64,
    unacked: BTreeMap<i64, Unacked>,
    rto: Rto,
    paused: bool,
    /// Sequence number of the next message to deliver.
    expected: i64,
    /// Received, not yet delivered (nor acknowledged) messages, by sequence number.
    reorder: BTreeMap<i64, Frame>,
    /// A `channel_closed` waiting to be delivered after the in-order output.
    closed: Option<Option<String>>,
    agent_version: Option<String>,
    session_type: Option<String>,
    keys: Option<Arc<dyn DataKeys>>,
    cipher: Option<SessionCipher>,
    /// Whether caller data may go out yet.
    gate: Gate,
    /// Caller data sent before the gate opened, in order; each holds a window permit.
    held: Vec<(PayloadType, Vec<u8>)>,
    /// A data key being generated, handed to the run loop to await.
    key_request: Option<oneshot::Receiver<Result<DataKey, String>>>,
    /// The handshake response waiting for that key.
    pending_response: Option<HandshakeResponse>,
    /// How to reconnect when the connection is lost; without it, a loss fails the channel.
    resume: Option<Arc<dyn Resume>>,
    /// Ours for the whole session: a resumed connection presents the same one.
    client_id: String,
}

/// When caller data may be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gate {
    /// Nothing from the agent yet: it may be about to start a handshake.
    AwaitingAgent,
    /// Between the agent's HandshakeRequest and its HandshakeComplete.
    Handshaking,
    Open,
}

/// How the driver loop ended.
enum End {
    /// Closed on request, or nobody is listening any more.
    Quiet,
    /// The agent closed the channel and then the socket: deliver what is left.
    Drain,
    Failed(ChannelError),
}

impl Driver {
    async fn run(
        mut self,
        mut stream: SplitStream<Ws>,
        mut writer: JoinHandle<String>,
        mut commands: mpsc::UnboundedReceiver<Command>,
    ) {
        let mut resend = tokio::time::interval(RESEND_CHECK);
        resend.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let keepalive = self.limits.keepalive;
        let mut ping = tokio::time::interval_at(Instant::now() + keepalive, keepalive);
        let mut heard = Instant::now();
        let mut closing: Option<(Instant, oneshot::Sender<()>)> = None;
        let events = self.events.clone();
        let mut key_wait: Option<oneshot::Receiver<Result<DataKey, String>>> = None;

        let end = loop {
            if key_wait.is_none() {
                key_wait = self.key_request.take();
            }
            let mut lost = None;
            if let Some((deadline, _)) = &closing {
                if self.unacked.is_empty() || Instant::now() >= *deadline {
                    break End::Quiet;
                }
            }
            let deliverable = self.deliverable();
            tokio::select! {
                permit = events.reserve(), if deliverable => match permit {
                    Ok(permit) => match self.deliver(permit) {
                        Ok(true) => break End::Quiet,
                        Ok(false) => {}
                        Err(e) => break End::Failed(e),
                    },
                    Err(_) => break End::Quiet,
                },
                key = async { key_wait.as_mut().expect("guarded").await }, if key_wait.is_some() => {
                    key_wait = None;
                    let key = key.unwrap_or_else(|_| Err("the key request was abandoned".to_string()));
                    if let Err(e) = self.finish_handshake(key) {
                        break End::Failed(e);
                    }
                }
                () = events.closed(), if closing.is_none() => break End::Quiet,
                message = stream.next() => match message {
                    Some(Ok(Message::Binary(bytes))) => {
                        heard = Instant::now();
                        self.on_message(&bytes);
                    }
                    Some(Ok(Message::Close(_))) | None => lost = Some(ChannelError::PeerClosed),
                    // Pings are answered by tungstenite itself; pongs answer ours.
                    Some(Ok(_)) => heard = Instant::now(),
                    Some(Err(e)) => lost = Some(ChannelError::Socket(e.to_string())),
                },
                command = commands.recv(), if closing.is_none() => match command {
                    Some(Command::Data { payload_type, bytes }) if self.gate == Gate::Open => {
                        self.transmit_new(payload_type, bytes, true);
                    }
                    Some(Command::Data { payload_type, bytes }) => self.held.push((payload_type, bytes)),
                    Some(Command::Close { done }) => {
                        if self.closed.is_none() {
                            let value = flag::TERMINATE_SESSION.to_be_bytes().to_vec();
                            self.transmit_new(PayloadType::Flag, value, false);
                        }
                        closing = Some((Instant::now() + self.limits.close_grace, done));
                    }
                    None => break End::Quiet,
                },
                _ = resend.tick() => {
                    if let Err(e) = self.resend() {
                        break End::Failed(e);
                    }
                }
                _ = ping.tick() => {
                    if heard.elapsed() >= self.limits.silence {
                        lost = Some(ChannelError::Silent(self.limits.silence));
                    } else {
                        let _ = self.out.send(Message::Ping(Bytes::new()));
                    }
                }
                reason = &mut writer => {
                    let reason = reason.unwrap_or_else(|e| e.to_string());
                    lost = Some(ChannelError::Socket(reason));
                }
            }
            if let Some(error) = lost {
                if self.closed.is_some() || closing.is_some() {
                    break self.socket_ended(error);
                }
                match self.reconnect(error).await {
                    Ok((sink, new_stream)) => {
                        writer.abort();
                        let (out, out_rx) = mpsc::unbounded_channel();
                        self.out = out;
                        writer = tokio::spawn(write_socket(sink, out_rx));
                        stream = new_stream;
                        heard = Instant::now();
                        self.resend_all();
                    }
                    Err(error) => break End::Failed(error),
                }
            }
        };

        drop(stream);
        self.shared.window.close();
        match end {
            End::Quiet => {}
            End::Drain => self.drain(&events).await,
            End::Failed(e) => {
                tracing::debug!(error = %e, "data channel failed");
                if let Ok(mut failure) = self.shared.failure.lock() {
                    *failure = Some(e.clone());
                }
                // Output received in order before the failure is still the consumer's.
                self.drain(&events).await;
                let _ = events.send(Event::Failed(e)).await;
            }
        }
        // Closing the queue makes the writer send a Close frame and finish.
        drop(self.out);
        if !writer.is_finished() {
            let _ = tokio::time::timeout(Duration::from_secs(1), writer).await;
        }
        if let Some((_, done)) = closing {
            let _ = done.send(());
        }
    }

    /// A new connection to the same session, or why there is none: without a [`Resume`],
    /// `lost` itself; a refusal at once; transient failures retried with backoff for at
    /// most [`RESUME_WINDOW`].
    async fn reconnect(
        &mut self,
        lost: ChannelError,
    ) -> Result<(SplitSink<Ws, Message>, SplitStream<Ws>), ChannelError> {
        let Some(resume) = self.resume.clone() else {
            return Err(lost);
        };
        tracing::debug!(error = %lost, "data channel connection lost; resuming");
        let started = Instant::now();
        let mut delay = RESUME_FIRST_DELAY;
        loop {
            let attempt = async {
                let resumed = resume.resume().await?;
                tracing::trace!("resuming: new token; connecting");
                open_channel_socket(&resumed.stream_url, &resumed.token, &self.client_id)
                    .await
                    .map_err(|e| ResumeError::Transient(e.to_string()))
            };
            let attempt = tokio::time::timeout(RESUME_ATTEMPT, attempt)
                .await
                .unwrap_or_else(|_| Err(ResumeError::Transient("the attempt timed out".into())));
            let why = match attempt {
                Ok(socket) => {
                    tracing::debug!(after = ?started.elapsed(), "data channel resumed");
                    return Ok(socket);
                }
                Err(ResumeError::Refused(why)) => {
                    return Err(ChannelError::Resume {
                        lost: Box::new(lost),
                        why,
                    })
                }
                Err(ResumeError::Transient(why)) => why,
            };
            if started.elapsed() + delay > RESUME_WINDOW {
                return Err(ChannelError::Resume {
                    lost: Box::new(lost),
                    why: format!("still failing after {}s: {why}", RESUME_WINDOW.as_secs()),
                });
            }
            tracing::debug!(%why, ?delay, "resume attempt failed; retrying");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(RESUME_MAX_DELAY);
        }
    }

    /// On a new connection, everything unacknowledged goes out again at once (the old
    /// connection may have lost any of it), oldest first.
    fn resend_all(&mut self) {
        self.paused = false; // a pause was the old connection's
        for unacked in self.unacked.values_mut() {
            unacked.last_sent = None;
        }
        self.send_unsent();
    }

    /// After `channel_closed` the socket going away is expected, not a failure.
    fn socket_ended(&self, error: ChannelError) -> End {
        if self.closed.is_some() {
            End::Drain
        } else {
            End::Failed(error)
        }
    }

    /// Delivers whatever is deliverable, for as long as the consumer listens.
    async fn drain(&mut self, events: &mpsc::Sender<Event>) {
        while self.deliverable() {
            match events.reserve().await {
                Ok(permit) => {
                    if !matches!(self.deliver(permit), Ok(false)) {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
    }

    /// Nothing is delivered while a data key is on its way: what follows needs it.
    fn deliverable(&self) -> bool {
        self.pending_response.is_none()
            && (self.reorder.contains_key(&self.expected) || self.closed.is_some())
    }

    /// Hands the next in-order message (or the pending Closed) to the consumer and
    /// acknowledges it. Returns true when the channel is finished.
    fn deliver(&mut self, permit: mpsc::Permit<'_, Event>) -> Result<bool, ChannelError> {
        let Some(frame) = self.reorder.remove(&self.expected) else {
            if let Some(output) = self.closed.take() {
                permit.send(Event::Closed(output));
                return Ok(true);
            }
            return Ok(false);
        };
        self.expected += 1;
        self.acknowledge(&frame);
        if let Some(event) = self.interpret(frame)? {
            permit.send(event);
        }
        Ok(false)
    }

    fn on_message(&mut self, bytes: &[u8]) {
        let frame = match decode(bytes) {
            Ok(frame) => frame,
            Err(e) => {
                // Not acknowledged, so the agent will send it again.
                tracing::debug!(error = %e, "ignoring undecodable message");
                return;
            }
        };
        match frame.message_type {
            MessageType::OutputStreamData => self.on_data(frame),
            MessageType::Acknowledge => self.on_ack(&frame.payload),
            MessageType::ChannelClosed => {
                let output = serde_json::from_slice::<ChannelClosed>(&frame.payload)
                    .ok()
                    .and_then(|c| c.output)
                    .filter(|o| !o.is_empty());
                self.closed.get_or_insert(output);
            }
            MessageType::PausePublication => self.paused = true,
            MessageType::StartPublication => {
                self.paused = false;
                self.send_unsent();
            }
            other => tracing::debug!(message_type = other.as_str(), "ignoring message"),
        }
    }

    fn on_data(&mut self, frame: Frame) {
        let seq = frame.sequence_number;
        if seq < self.expected {
            // Delivered already; our acknowledgement was lost.
            self.acknowledge(&frame);
            return;
        }
        let ahead = usize::try_from(seq - self.expected).unwrap_or(usize::MAX);
        if ahead >= self.limits.reorder {
            tracing::debug!(seq, "dropping message beyond the reorder buffer");
            return;
        }
        self.reorder.entry(seq).or_insert(frame);
    }

    fn on_ack(&mut self, payload: &[u8]) {
        let ack: Acknowledgement = match serde_json::from_slice(payload) {
            Ok(ack) => ack,
            Err(e) => {
                tracing::debug!(error = %e, "ignoring malformed acknowledgement");
                return;
            }
        };
        if let Some(acked) = self.unacked.remove(&ack.sequence_number) {
            // Karn: a retransmitted message gives an ambiguous sample.
            if let (1, Some(sent)) = (acked.attempts, acked.last_sent) {
                self.rto.sample(sent.elapsed());
            }
            if acked.permit {
                self.shared.window.add_permits(1);
            }
        }
    }

    /// Turns a delivered data message into an event, answering handshakes on the way.
    fn interpret(&mut self, frame: Frame) -> Result<Option<Event>, ChannelError> {
        let payload = match (&self.cipher, frame.payload_type) {
            (Some(cipher), PayloadType::Output | PayloadType::StdErr | PayloadType::ExitCode) => {
                cipher.open(&frame.payload).map_err(|e| {
                    ChannelError::Encryption(format!("message {}: {e}", frame.sequence_number))
                })?
            }
            _ => frame.payload,
        };
        if self.gate == Gate::AwaitingAgent
            && matches!(
                frame.payload_type,
                PayloadType::Output | PayloadType::StdErr | PayloadType::ExitCode
            )
        {
            // The agent started the session without a handshake, so without encryption.
            if let Some(required) = self.required_key() {
                return Err(ChannelError::Encryption(format!(
                    "the cluster requires sessions encrypted with {required}, but the agent \
                     started this one unencrypted"
                )));
            }
            self.open_gate();
        }
        Ok(match frame.payload_type {
            PayloadType::Output => Some(Event::Output(payload)),
            PayloadType::StdErr => Some(Event::StdErr(payload)),
            PayloadType::ExitCode => match parse_exit_code(&payload) {
                Some(code) => Some(Event::ExitCode(code)),
                None => {
                    tracing::debug!("ignoring unreadable exit code");
                    None
                }
            },
            PayloadType::Flag => match <[u8; 4]>::try_from(payload.as_slice()) {
                Ok(raw) => Some(Event::Flag(u32::from_be_bytes(raw))),
                Err(_) => {
                    tracing::debug!("ignoring malformed flag");
                    None
                }
            },
            PayloadType::HandshakeRequest => {
                self.gate = Gate::Handshaking;
                let response = self.answer_handshake(&payload);
                if self.key_request.is_some() {
                    self.pending_response = Some(response);
                } else {
                    self.send_handshake_response(&response);
                    if let Some(required) = self.required_key() {
                        return Err(ChannelError::Encryption(format!(
                            "the cluster requires sessions encrypted with {required}, but the \
                             agent did not ask for that key"
                        )));
                    }
                }
                None
            }
            PayloadType::EncChallengeRequest => {
                self.answer_challenge(&payload)?;
                None
            }
            PayloadType::HandshakeComplete => {
                if let (Some(required), None) = (self.required_key(), &self.cipher) {
                    return Err(ChannelError::Encryption(format!(
                        "the cluster requires sessions encrypted with {required}, but the \
                         handshake agreed no key"
                    )));
                }
                self.open_gate();
                let complete: HandshakeComplete =
                    serde_json::from_slice(&payload).unwrap_or_default();
                Some(Event::HandshakeComplete {
                    agent_version: self.agent_version.clone(),
                    session_type: self.session_type.clone(),
                    customer_message: complete.customer_message.filter(|m| !m.is_empty()),
                })
            }
            other => {
                tracing::debug!(payload_type = u32::from(other), "ignoring payload");
                None
            }
        })
    }

    /// Processes the requested actions. A KMSEncryption request starts a data key
    /// request and leaves its action to [`Driver::finish_handshake`].
    fn answer_handshake(&mut self, payload: &[u8]) -> HandshakeResponse {
        let mut errors = Vec::new();
        let request: HandshakeRequest = serde_json::from_slice(payload).unwrap_or_else(|e| {
            errors.push(format!("cannot read the handshake request: {e}"));
            HandshakeRequest::default()
        });
        self.agent_version = request.agent_version;
        let actions = request
            .requested_client_actions
            .into_iter()
            .map(|action| {
                let (status, error) = match action.action_type.as_str() {
                    "SessionType" => {
                        self.session_type = action
                            .action_parameters
                            .get("SessionType")
                            .and_then(|t| t.as_str())
                            .map(str::to_string);
                        (ACTION_SUCCESS, String::new())
                    }
                    "KMSEncryption" => self.request_key(&action.action_parameters),
                    other => (ACTION_UNSUPPORTED, format!("unsupported action {other}")),
                };
                ProcessedAction {
                    action_type: action.action_type,
                    action_status: status,
                    action_result: None,
                    error,
                }
            })
            .collect();
        HandshakeResponse {
            client_version: CLIENT_VERSION,
            processed_client_actions: actions,
            errors,
        }
    }

    /// Starts generating a data key for a KMSEncryption action; the status is provisional.
    fn request_key(&mut self, parameters: &serde_json::Value) -> (u32, String) {
        let Some(keys) = self.keys.clone() else {
            return (
                ACTION_UNSUPPORTED,
                "this client was not given a way to reach KMS".to_string(),
            );
        };
        let Some(key_id) = parameters.get("KMSKeyId").and_then(|k| k.as_str()) else {
            return (ACTION_FAILED, "the request names no KMSKeyId".to_string());
        };
        if let Some(required) = keys.required_key() {
            if !same_key(key_id, required) {
                return (
                    ACTION_FAILED,
                    format!("sessions on this cluster must use {required}, not {key_id}"),
                );
            }
        }
        let (tx, rx) = oneshot::channel();
        let generating = keys.generate(key_id);
        tokio::spawn(async move {
            let _ = tx.send(generating.await);
        });
        self.key_request = Some(rx);
        (ACTION_SUCCESS, String::new())
    }

    /// Completes the KMSEncryption action with the generated key and sends the response.
    /// Without a key the agent is told why and the channel fails: a session that must
    /// be encrypted cannot go on.
    fn finish_handshake(&mut self, key: Result<DataKey, String>) -> Result<(), ChannelError> {
        let mut response = self.pending_response.take().unwrap_or_default();
        let outcome = key.and_then(|key| {
            let cipher = SessionCipher::from_data_key(&key.plaintext).map_err(|e| e.to_string())?;
            Ok((cipher, key.ciphertext))
        });
        let kms = response
            .processed_client_actions
            .iter_mut()
            .find(|a| a.action_type == "KMSEncryption");
        let result = match (outcome, kms) {
            (Ok((cipher, ciphertext)), Some(action)) => {
                action.action_result =
                    Some(serde_json::json!({ "KMSCipherTextKey": BASE64.encode(ciphertext) }));
                self.cipher = Some(cipher);
                Ok(())
            }
            (Err(why), Some(action)) => {
                action.action_status = ACTION_FAILED;
                action.error = format!("cannot get a {DATA_KEY_BYTES}-byte data key: {why}");
                response.errors.push(action.error.clone());
                Err(ChannelError::Encryption(action.error.clone()))
            }
            (_, None) => Ok(()),
        };
        self.send_handshake_response(&response);
        result
    }

    /// Lets caller data go out, starting with what was held.
    fn open_gate(&mut self) {
        self.gate = Gate::Open;
        for (payload_type, bytes) in std::mem::take(&mut self.held) {
            self.transmit_new(payload_type, bytes, true);
        }
    }

    /// The key the caller requires every session to be encrypted with, if any.
    fn required_key(&self) -> Option<String> {
        self.keys
            .as_ref()
            .and_then(|keys| keys.required_key().map(str::to_string))
    }

    fn send_handshake_response(&mut self, response: &HandshakeResponse) {
        let bytes = serde_json::to_vec(response).unwrap_or_default();
        self.transmit_new(PayloadType::HandshakeResponse, bytes, false);
    }

    /// Proves we hold the key: the agent's random bytes back, under our sending key.
    fn answer_challenge(&mut self, payload: &[u8]) -> Result<(), ChannelError> {
        let fail = |why: String| ChannelError::Encryption(format!("encryption challenge: {why}"));
        let cipher = self
            .cipher
            .as_ref()
            .ok_or_else(|| fail("the agent sent one but no key was agreed".to_string()))?;
        let request: Challenge =
            serde_json::from_slice(payload).map_err(|e| fail(e.to_string()))?;
        let sealed = BASE64
            .decode(request.challenge)
            .map_err(|e| fail(e.to_string()))?;
        let plain = cipher.open(&sealed).map_err(|e| fail(e.to_string()))?;
        let answer = Challenge {
            challenge: BASE64.encode(cipher.seal(&plain)),
        };
        let bytes = serde_json::to_vec(&answer).unwrap_or_default();
        self.transmit_new(PayloadType::EncChallengeResponse, bytes, false);
        Ok(())
    }

    /// Numbers and sends (or, while paused, holds) a new outgoing data message.
    fn transmit_new(&mut self, payload_type: PayloadType, payload: Vec<u8>, permit: bool) {
        let payload = match (&self.cipher, payload_type) {
            (Some(cipher), PayloadType::Output) => cipher.seal(&payload),
            _ => payload,
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        let frame = Frame::new(MessageType::InputStreamData, seq, 0, payload_type, payload);
        let bytes = match frame.encode() {
            Ok(bytes) => Bytes::from(bytes),
            Err(e) => {
                // Unreachable for our own types and ≤ 1 KiB payloads; never panic.
                tracing::warn!(error = %e, "cannot encode a message");
                return;
            }
        };
        let mut unacked = Unacked {
            bytes,
            last_sent: None,
            attempts: 0,
            permit,
        };
        if !self.paused {
            self.transmit(&mut unacked);
        }
        self.unacked.insert(seq, unacked);
    }

    fn transmit(&self, unacked: &mut Unacked) {
        unacked.attempts += 1;
        unacked.last_sent = Some(Instant::now());
        let _ = self.out.send(Message::Binary(unacked.bytes.clone()));
    }

    fn send_unsent(&mut self) {
        let unsent: Vec<i64> = self
            .unacked
            .iter()
            .filter(|(_, u)| u.last_sent.is_none())
            .map(|(seq, _)| *seq)
            .collect();
        for seq in unsent {
            if let Some(mut unacked) = self.unacked.remove(&seq) {
                self.transmit(&mut unacked);
                self.unacked.insert(seq, unacked);
            }
        }
    }

    /// Re-sends the oldest unacknowledged message once it is older than the RTO.
    fn resend(&mut self) -> Result<(), ChannelError> {
        if self.paused {
            return Ok(());
        }
        let rto = self.rto.current;
        let max_attempts = self.limits.max_attempts;
        let Some((&seq, oldest)) = self.unacked.iter_mut().next() else {
            return Ok(());
        };
        let Some(sent) = oldest.last_sent else {
            return Ok(());
        };
        if sent.elapsed() < rto {
            return Ok(());
        }
        if oldest.attempts >= max_attempts {
            return Err(ChannelError::Unacknowledged {
                seq,
                attempts: oldest.attempts,
            });
        }
        tracing::trace!(seq, attempt = oldest.attempts + 1, "retransmitting");
        oldest.attempts += 1;
        oldest.last_sent = Some(Instant::now());
        let _ = self.out.send(Message::Binary(oldest.bytes.clone()));
        Ok(())
    }

    fn acknowledge(&self, frame: &Frame) {
        let ack = Acknowledgement {
            message_type: frame.message_type.as_str().to_string(),
            message_id: frame.message_id.to_string(),
            sequence_number: frame.sequence_number,
            is_sequential_message: true,
        };
        let payload = serde_json::to_vec(&ack).unwrap_or_default();
        let ack = Frame::new(
            MessageType::Acknowledge,
            0,
            frame::flags::SYN | frame::flags::FIN,
            PayloadType::Unset,
            payload,
        );
        if let Ok(bytes) = ack.encode() {
            let _ = self.out.send(Message::binary(bytes));
        }
    }
}

/// The ExitCode payload is text, `EXIT_CODE: <n>`; accept the bare number too.
fn parse_exit_code(payload: &[u8]) -> Option<i32> {
    let text = std::str::from_utf8(payload).ok()?.trim();
    let number = text.strip_prefix("EXIT_CODE:").unwrap_or(text).trim();
    number.parse().ok()
}

#[derive(Debug, Serialize, Deserialize)]
struct Acknowledgement {
    #[serde(rename = "AcknowledgedMessageType")]
    message_type: String,
    #[serde(rename = "AcknowledgedMessageId")]
    message_id: String,
    #[serde(rename = "AcknowledgedMessageSequenceNumber")]
    sequence_number: i64,
    #[serde(rename = "IsSequentialMessage")]
    is_sequential_message: bool,
}

#[derive(Debug, Deserialize)]
struct ChannelClosed {
    #[serde(rename = "Output")]
    output: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HandshakeRequest {
    agent_version: Option<String>,
    #[serde(default)]
    requested_client_actions: Vec<RequestedAction>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RequestedAction {
    action_type: String,
    #[serde(default)]
    action_parameters: serde_json::Value,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
struct HandshakeResponse {
    client_version: &'static str,
    processed_client_actions: Vec<ProcessedAction>,
    errors: Vec<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct ProcessedAction {
    action_type: String,
    action_status: u32,
    action_result: Option<serde_json::Value>,
    error: String,
}

/// EncChallengeRequest and EncChallengeResponse payloads (base64 of sealed bytes).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Challenge {
    challenge: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HandshakeComplete {
    customer_message: Option<String>,
}

#[cfg(test)]
mod tests;
