//! The channel against a tiny in-process fake agent over a real loopback WebSocket.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{timeout, Instant};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::*;

/// The agent end of one connection.
struct Agent {
    ws: WebSocketStream<TcpStream>,
    opening: Value,
}

async fn listen() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "ws://{}/v1/data-channel/s-1",
        listener.local_addr().unwrap()
    );
    (listener, url)
}

/// Connects a channel with `limits` to a fresh fake agent.
async fn pair(limits: Limits) -> (Channel, Agent) {
    pair_with(limits, None).await
}

async fn pair_with(limits: Limits, keys: Option<Arc<dyn DataKeys>>) -> (Channel, Agent) {
    let (listener, url) = listen().await;
    let agent = tokio::spawn(async move { accept(&listener).await });
    let channel = Channel::connect_with(&url, "token-1", limits, keys, None)
        .await
        .unwrap();
    (channel, agent.await.unwrap())
}

/// The agent end of the next connection to `listener`, once its opening frame is in.
async fn accept(listener: &TcpListener) -> Agent {
    let (tcp, _) = listener.accept().await.unwrap();
    let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
    let opening = match ws.next().await.unwrap().unwrap() {
        Message::Text(text) => serde_json::from_str(&text).unwrap(),
        other => panic!("expected the opening text frame, got {other:?}"),
    };
    Agent { ws, opening }
}

fn data(seq: i64, payload_type: PayloadType, payload: &[u8]) -> Frame {
    let flags = if seq == 0 { frame::flags::SYN } else { 0 };
    Frame::new(
        MessageType::OutputStreamData,
        seq,
        flags,
        payload_type,
        payload.to_vec(),
    )
}

fn control(message_type: MessageType, payload: &[u8]) -> Frame {
    Frame::new(message_type, 0, 0, PayloadType::Unset, payload.to_vec())
}

fn ack_for(frame: &Frame) -> Frame {
    let payload = json!({
        "AcknowledgedMessageType": frame.message_type.as_str(),
        "AcknowledgedMessageId": frame.message_id.to_string(),
        "AcknowledgedMessageSequenceNumber": frame.sequence_number,
        "IsSequentialMessage": true,
    });
    Frame::new(
        MessageType::Acknowledge,
        0,
        3,
        PayloadType::Unset,
        payload.to_string().into_bytes(),
    )
}

fn acked_seq(frame: &Frame) -> i64 {
    assert_eq!(frame.message_type, MessageType::Acknowledge);
    assert_eq!(frame.flags, 3);
    let ack: Value = serde_json::from_slice(&frame.payload).unwrap();
    assert_eq!(ack["IsSequentialMessage"], true);
    ack["AcknowledgedMessageSequenceNumber"].as_i64().unwrap()
}

impl Agent {
    async fn send(&mut self, frame: &Frame) {
        self.ws
            .send(Message::binary(frame.encode().unwrap()))
            .await
            .unwrap();
    }

    /// The next binary message, or None on close or after `wait`.
    async fn next_within(&mut self, wait: Duration) -> Option<Frame> {
        let deadline = Instant::now() + wait;
        loop {
            let message = timeout(
                deadline.saturating_duration_since(Instant::now()),
                self.ws.next(),
            )
            .await
            .ok()??
            .ok()?;
            if let Message::Binary(bytes) = message {
                return Some(decode(&bytes).unwrap());
            }
        }
    }

    async fn next(&mut self) -> Frame {
        self.next_within(Duration::from_secs(10))
            .await
            .expect("a message from the client before the hang guard")
    }
}

async fn next_event(channel: &mut Channel) -> Event {
    timeout(Duration::from_secs(10), channel.recv())
        .await
        .expect("an event before the hang guard")
        .expect("an open channel")
}

/// A plain shell session under way: the agent's first output (a prompt) has arrived,
/// which is what lets caller input go out.
async fn started(limits: Limits) -> (Channel, Agent) {
    let (mut channel, mut agent) = pair(limits).await;
    agent.send(&data(0, PayloadType::Output, b"$ ")).await;
    assert_eq!(acked_seq(&agent.next().await), 0);
    assert_eq!(
        next_event(&mut channel).await,
        Event::Output(b"$ ".to_vec())
    );
    (channel, agent)
}

#[tokio::test]
async fn opens_with_token_and_acknowledges_both_ways() {
    let (mut channel, mut agent) = pair(Limits::default()).await;
    assert_eq!(agent.opening["TokenValue"], "token-1");
    assert_eq!(agent.opening["MessageSchemaVersion"], "1.0");
    assert_eq!(agent.opening["ClientVersion"], CLIENT_VERSION);
    assert!(Uuid::parse_str(agent.opening["ClientId"].as_str().unwrap()).is_ok());

    for seq in 0..3 {
        let frame = data(seq, PayloadType::Output, format!("out{seq}").as_bytes());
        agent.send(&frame).await;
        let ack = agent.next().await;
        assert_eq!(acked_seq(&ack), seq);
        let ack: Value = serde_json::from_slice(&ack.payload).unwrap();
        assert_eq!(ack["AcknowledgedMessageId"], frame.message_id.to_string());
        assert_eq!(ack["AcknowledgedMessageType"], "output_stream_data");
    }
    for seq in 0..3 {
        assert_eq!(
            next_event(&mut channel).await,
            Event::Output(format!("out{seq}").into_bytes())
        );
    }

    // 2500 bytes go out as three messages numbered from 0 with Flags 0.
    channel
        .sender()
        .send(PayloadType::Output, &[7; 2500])
        .await
        .unwrap();
    for (seq, len) in [(0, 1024), (1, 1024), (2, 452)] {
        let frame = agent.next().await;
        assert_eq!(frame.message_type, MessageType::InputStreamData);
        assert_eq!((frame.sequence_number, frame.flags), (seq, 0));
        assert_eq!(frame.payload.len(), len);
        agent.send(&ack_for(&frame)).await;
    }
}

#[tokio::test]
async fn delivers_in_order_and_reacknowledges_duplicates() {
    let (mut channel, mut agent) = pair(Limits::default()).await;
    for seq in [2, 0, 3, 1] {
        agent
            .send(&data(seq, PayloadType::Output, &[b'a' + seq as u8]))
            .await;
    }
    let mut events = Vec::new();
    for _ in 0..4 {
        events.push(next_event(&mut channel).await);
    }
    let bytes: Vec<u8> = events
        .into_iter()
        .flat_map(|e| match e {
            Event::Output(b) => b,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(bytes, b"abcd");
    // Acknowledged as delivered: 0 and then the rest, each once.
    let mut acked = Vec::new();
    for _ in 0..4 {
        acked.push(acked_seq(&agent.next().await));
    }
    acked.sort();
    assert_eq!(acked, vec![0, 1, 2, 3]);
    // A duplicate of a delivered message is acknowledged again, not delivered again.
    agent.send(&data(1, PayloadType::Output, b"b")).await;
    assert_eq!(acked_seq(&agent.next().await), 1);
    assert!(timeout(Duration::from_millis(100), channel.recv())
        .await
        .is_err());
}

#[tokio::test]
async fn lost_input_is_retransmitted_and_the_window_applies_backpressure() {
    let limits = Limits {
        window: 2,
        ..Limits::default()
    };
    let (channel, mut agent) = started(limits).await;
    channel
        .sender()
        .send(PayloadType::Output, b"one")
        .await
        .unwrap();
    let first = agent.next().await;
    // Drop it: the client must send it again after the RTO (200 ms at first).
    let again = agent.next().await;
    assert_eq!(again.sequence_number, 0);
    assert_eq!(again.payload, b"one");
    agent.send(&ack_for(&first)).await;

    channel
        .sender()
        .send(PayloadType::Output, b"two")
        .await
        .unwrap();
    channel
        .sender()
        .send(PayloadType::Output, b"three")
        .await
        .unwrap();
    // The window (2) is full: a third message waits for an acknowledgement.
    let sender = channel.sender();
    let blocked = tokio::spawn(async move { sender.send(PayloadType::Output, b"four").await });
    let two = agent.next().await;
    let three = agent.next().await;
    assert_eq!((two.sequence_number, three.sequence_number), (1, 2));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!blocked.is_finished());
    agent.send(&ack_for(&two)).await;
    timeout(Duration::from_secs(1), blocked)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let four = loop {
        let frame = agent.next().await;
        if frame.sequence_number == 3 {
            break frame;
        }
    };
    assert_eq!(four.payload, b"four");
}

#[tokio::test]
async fn gives_up_after_bounded_attempts() {
    let limits = Limits {
        max_attempts: 2,
        ..Limits::default()
    };
    let (mut channel, _agent) = started(limits).await;
    channel
        .sender()
        .send(PayloadType::Output, b"x")
        .await
        .unwrap();
    assert_eq!(
        next_event(&mut channel).await,
        Event::Failed(ChannelError::Unacknowledged {
            seq: 0,
            attempts: 2
        })
    );
    assert_eq!(
        channel.sender().send(PayloadType::Output, b"y").await,
        Err(ChannelError::Unacknowledged {
            seq: 0,
            attempts: 2
        })
    );
}

/// 5 MB to a consumer that starts late and reads slowly: every byte arrives in order,
/// and the agent sees acknowledgements withheld while the queue is full.
///
/// The consumer holds off until the agent has seen the queue's worth acknowledged and
/// had to send something again; it then sends a marker, and reads once the agent has it.
/// The channel writes everything through one ordered socket writer, so the
/// acknowledgements the agent has when the marker arrives are all given before anyone read.
#[tokio::test]
async fn slow_consumer_gets_every_byte() {
    const MESSAGES: i64 = 5 * 1024;
    let limits = Limits::default();
    let queue = limits.queue;
    let (mut channel, mut agent) = pair(limits).await;
    let (stalled_tx, stalled_rx) = tokio::sync::oneshot::channel();
    let (marked_tx, marked_rx) = tokio::sync::oneshot::channel();

    let agent = tokio::spawn(async move {
        let pattern =
            |seq: i64| -> Vec<u8> { (0..1024).map(|i| (seq as usize * 7 + i) as u8).collect() };
        let mut in_flight: BTreeMap<i64, (Frame, Instant)> = BTreeMap::new();
        let mut next = 0;
        let mut acked = 0usize;
        let mut retransmissions = 0;
        let mut stalled = Some(stalled_tx);
        let mut marked = Some(marked_tx);
        let mut acked_before_reading = None;
        while next < MESSAGES || !in_flight.is_empty() || acked_before_reading.is_none() {
            // Keep up to 256 messages in flight, like an agent with a modest buffer.
            while next < MESSAGES && in_flight.len() < 256 {
                let frame = data(next, PayloadType::Output, &pattern(next));
                agent.send(&frame).await;
                in_flight.insert(next, (frame, Instant::now()));
                next += 1;
            }
            // Take in everything that has arrived before deciding what to send again.
            let mut wait = Duration::from_millis(20);
            while let Some(frame) = agent.next_within(wait).await {
                wait = Duration::ZERO;
                if frame.message_type == MessageType::Acknowledge {
                    if in_flight.remove(&acked_seq(&frame)).is_some() {
                        acked += 1;
                    }
                } else if frame.message_type == MessageType::InputStreamData {
                    agent.send(&ack_for(&frame)).await;
                    acked_before_reading = Some(acked);
                    if let Some(marked) = marked.take() {
                        marked.send(()).unwrap();
                    }
                }
            }
            if acked >= queue && retransmissions > 0 {
                if let Some(stalled) = stalled.take() {
                    stalled.send(()).unwrap();
                }
            }
            let now = Instant::now();
            for (frame, sent) in in_flight.values_mut() {
                if now.duration_since(*sent) > Duration::from_millis(50) {
                    agent.send(frame).await;
                    *sent = now;
                    retransmissions += 1;
                }
            }
        }
        acked_before_reading
    });

    timeout(Duration::from_secs(30), stalled_rx)
        .await
        .expect("the agent never saw the queue fill and stall")
        .unwrap();
    channel
        .sender()
        .send(PayloadType::Output, b"reading now")
        .await
        .unwrap();
    timeout(Duration::from_secs(30), marked_rx)
        .await
        .expect("the marker never reached the agent")
        .unwrap();
    let mut received = Vec::with_capacity(MESSAGES as usize * 1024);
    let mut events = 0;
    while received.len() < MESSAGES as usize * 1024 {
        match next_event(&mut channel).await {
            Event::Output(bytes) => received.extend_from_slice(&bytes),
            other => panic!("unexpected {other:?}"),
        }
        events += 1;
        if events % 500 == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    for (seq, chunk) in received.chunks(1024).enumerate() {
        assert!(
            chunk
                .iter()
                .enumerate()
                .all(|(i, b)| *b == (seq * 7 + i) as u8),
            "message {seq} corrupted"
        );
    }
    // Only what fit the delivery queue was acknowledged before the consumer read.
    assert_eq!(agent.await.unwrap(), Some(queue));
}

#[tokio::test]
async fn handshake_answers_unknown_actions_unsupported() {
    let (mut channel, mut agent) = pair(Limits::default()).await;
    let request = json!({
        "AgentVersion": "3.3.0.0",
        "RequestedClientActions": [
            {"ActionType": "SessionType", "ActionParameters": {"SessionType": "Port", "Properties": {"type": "LocalPortForwarding"}}},
            {"ActionType": "KMSEncryption", "ActionParameters": {"KMSKeyId": "k"}},
            {"ActionType": "SomethingNew", "ActionParameters": 42},
        ]
    });
    agent
        .send(&data(
            0,
            PayloadType::HandshakeRequest,
            request.to_string().as_bytes(),
        ))
        .await;
    assert_eq!(acked_seq(&agent.next().await), 0);
    let response = agent.next().await;
    assert_eq!(response.message_type, MessageType::InputStreamData);
    assert_eq!(response.payload_type, PayloadType::HandshakeResponse);
    let body: Value = serde_json::from_slice(&response.payload).unwrap();
    assert_eq!(body["ClientVersion"], CLIENT_VERSION);
    let statuses: Vec<(String, u64)> = body["ProcessedClientActions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["ActionType"].as_str().unwrap().to_string(),
                a["ActionStatus"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        vec![
            ("SessionType".to_string(), 1),
            ("KMSEncryption".to_string(), 3),
            ("SomethingNew".to_string(), 3)
        ]
    );
    assert_ne!(body["ProcessedClientActions"][1]["Error"], "");
    agent.send(&ack_for(&response)).await;

    let complete = json!({"HandshakeTimeToComplete": 1_000_000, "CustomerMessage": "hello"});
    agent
        .send(&data(
            1,
            PayloadType::HandshakeComplete,
            complete.to_string().as_bytes(),
        ))
        .await;
    assert_eq!(
        next_event(&mut channel).await,
        Event::HandshakeComplete {
            agent_version: Some("3.3.0.0".to_string()),
            session_type: Some("Port".to_string()),
            customer_message: Some("hello".to_string()),
        }
    );
}

/// A fixed data key (or a failure), standing in for KMS in these protocol tests.
struct FixedKey(Result<Vec<u8>, String>);

impl DataKeys for FixedKey {
    fn generate(
        &self,
        key_id: &str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<DataKey, String>> + Send>> {
        let answer = self.0.clone().map(|plaintext| DataKey {
            ciphertext: format!("sealed:{key_id}").into_bytes(),
            plaintext,
        });
        Box::pin(async move {
            // Slow enough that later messages arrive while the key is pending.
            tokio::time::sleep(Duration::from_millis(50)).await;
            answer
        })
    }
}

fn data_key() -> Vec<u8> {
    (100u8..164).collect()
}

/// The agent's cipher for `data_key`: it sends with the first half, reads the second.
fn agent_cipher() -> SessionCipher {
    let key = data_key();
    let swapped: Vec<u8> = key[32..].iter().chain(&key[..32]).copied().collect();
    SessionCipher::from_data_key(&swapped).unwrap()
}

fn kms_request() -> Vec<u8> {
    json!({
        "AgentVersion": "3.3.1142.0",
        "RequestedClientActions": [
            {"ActionType": "KMSEncryption", "ActionParameters": {"KMSKeyId": "alias/jump"}},
            {"ActionType": "SessionType", "ActionParameters": {"SessionType": "InteractiveCommands", "Properties": {}}},
        ]
    })
    .to_string()
    .into_bytes()
}

/// Reads client messages, acknowledging data, until one of `payload_type` arrives.
async fn expect_data(agent: &mut Agent, payload_type: PayloadType) -> Frame {
    loop {
        let frame = agent.next().await;
        if frame.message_type == MessageType::InputStreamData {
            agent.send(&ack_for(&frame)).await;
            if frame.payload_type == payload_type {
                return frame;
            }
        }
    }
}

#[tokio::test]
async fn kms_sessions_agree_a_key_answer_the_challenge_and_encrypt_both_ways() {
    let keys: Arc<dyn DataKeys> = Arc::new(FixedKey(Ok(data_key())));
    let (mut channel, mut agent) = pair_with(Limits::default(), Some(keys)).await;
    let agent_cipher = agent_cipher();
    agent
        .send(&data(0, PayloadType::HandshakeRequest, &kms_request()))
        .await;
    assert_eq!(acked_seq(&agent.next().await), 0);
    // Typed while the handshake runs: must not leave in clear text.
    channel
        .sender()
        .send(PayloadType::Output, b"early")
        .await
        .unwrap();
    let challenge_plain = b"sixty-four random bytes, more or less, from the agent side......";
    let challenge = json!({ "Challenge": BASE64.encode(agent_cipher.seal(challenge_plain)) });
    agent
        .send(&data(
            1,
            PayloadType::EncChallengeRequest,
            challenge.to_string().as_bytes(),
        ))
        .await;

    let response = expect_data(&mut agent, PayloadType::HandshakeResponse).await;
    let body: Value = serde_json::from_slice(&response.payload).unwrap();
    let kms = &body["ProcessedClientActions"][0];
    assert_eq!(kms["ActionType"], "KMSEncryption");
    assert_eq!(kms["ActionStatus"], 1);
    assert_eq!(
        kms["ActionResult"]["KMSCipherTextKey"],
        BASE64.encode("sealed:alias/jump")
    );
    let answer = expect_data(&mut agent, PayloadType::EncChallengeResponse).await;
    let answer: Value = serde_json::from_slice(&answer.payload).unwrap();
    let sealed = BASE64
        .decode(answer["Challenge"].as_str().unwrap())
        .unwrap();
    assert_eq!(agent_cipher.open(&sealed).unwrap(), challenge_plain);
    // Still handshaking: the early input is held back.
    assert!(agent
        .next_within(Duration::from_millis(300))
        .await
        .is_none());

    agent
        .send(&data(2, PayloadType::HandshakeComplete, b"{}"))
        .await;
    let early = expect_data(&mut agent, PayloadType::Output).await;
    assert_ne!(early.payload, b"early");
    assert_eq!(agent_cipher.open(&early.payload).unwrap(), b"early");
    assert!(matches!(
        next_event(&mut channel).await,
        Event::HandshakeComplete { .. }
    ));

    let output = agent_cipher.seal(b"secret output");
    agent.send(&data(3, PayloadType::Output, &output)).await;
    assert_eq!(
        next_event(&mut channel).await,
        Event::Output(b"secret output".to_vec())
    );
    let code = agent_cipher.seal(b"EXIT_CODE: 7");
    agent.send(&data(4, PayloadType::ExitCode, &code)).await;
    assert_eq!(next_event(&mut channel).await, Event::ExitCode(7));

    // A payload that fails authentication ends the channel and is never delivered.
    let mut forged = agent_cipher.seal(b"forged");
    forged[20] ^= 0xff;
    agent.send(&data(5, PayloadType::Output, &forged)).await;
    match next_event(&mut channel).await {
        Event::Failed(ChannelError::Encryption(why)) => assert!(why.contains("authentication")),
        other => panic!("expected an encryption failure, got {other:?}"),
    }
}

#[tokio::test]
async fn a_session_that_needs_a_key_fails_clearly_without_one() {
    // No key source: the action is unsupported, as for the official plugin's old versions.
    let (_channel, mut agent) = pair(Limits::default()).await;
    agent
        .send(&data(0, PayloadType::HandshakeRequest, &kms_request()))
        .await;
    let response = expect_data(&mut agent, PayloadType::HandshakeResponse).await;
    let body: Value = serde_json::from_slice(&response.payload).unwrap();
    assert_eq!(body["ProcessedClientActions"][0]["ActionStatus"], 3);

    // KMS refuses: the agent is told (status 2) and the caller gets the reason.
    let keys: Arc<dyn DataKeys> = Arc::new(FixedKey(Err("AccessDeniedException: no".into())));
    let (mut channel, mut agent) = pair_with(Limits::default(), Some(keys)).await;
    agent
        .send(&data(0, PayloadType::HandshakeRequest, &kms_request()))
        .await;
    let response = expect_data(&mut agent, PayloadType::HandshakeResponse).await;
    let body: Value = serde_json::from_slice(&response.payload).unwrap();
    assert_eq!(body["ProcessedClientActions"][0]["ActionStatus"], 2);
    assert!(body["Errors"][0].as_str().unwrap().contains("AccessDenied"));
    match next_event(&mut channel).await {
        Event::Failed(ChannelError::Encryption(why)) => assert!(why.contains("AccessDenied")),
        other => panic!("expected an encryption failure, got {other:?}"),
    }

    // A challenge that does not decrypt under the agreed key fails the channel.
    let keys: Arc<dyn DataKeys> = Arc::new(FixedKey(Ok(data_key())));
    let (mut channel, mut agent) = pair_with(Limits::default(), Some(keys)).await;
    agent
        .send(&data(0, PayloadType::HandshakeRequest, &kms_request()))
        .await;
    let wrong = SessionCipher::from_data_key(&[9; 64]).unwrap().seal(b"x");
    let challenge = json!({ "Challenge": BASE64.encode(wrong) });
    agent
        .send(&data(
            1,
            PayloadType::EncChallengeRequest,
            challenge.to_string().as_bytes(),
        ))
        .await;
    match next_event(&mut channel).await {
        Event::Failed(ChannelError::Encryption(why)) => assert!(why.contains("challenge")),
        other => panic!("expected an encryption failure, got {other:?}"),
    }
}

/// The stand-in KMS of these tests, with the cluster's key required.
struct RequiredKey(&'static str);

impl DataKeys for RequiredKey {
    fn generate(
        &self,
        key_id: &str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<DataKey, String>> + Send>> {
        FixedKey(Ok(data_key())).generate(key_id)
    }

    fn required_key(&self) -> Option<&str> {
        Some(self.0)
    }
}

fn handshake_request(actions: Value) -> Vec<u8> {
    json!({ "AgentVersion": "3.3.1142.0", "RequestedClientActions": actions })
        .to_string()
        .into_bytes()
}

#[tokio::test]
async fn input_waits_until_the_agent_has_started_the_session() {
    let (mut channel, mut agent) = pair(Limits::default()).await;
    let sender = channel.sender();
    sender.send(PayloadType::Output, b"typed").await.unwrap();
    sender.send(PayloadType::Size, b"{}").await.unwrap();
    // The agent may be about to ask for encryption: nothing leaves yet.
    assert!(agent
        .next_within(Duration::from_millis(300))
        .await
        .is_none());
    // A plain shell says its first words without a handshake: now the input goes, in order.
    agent.send(&data(0, PayloadType::Output, b"$ ")).await;
    assert_eq!(acked_seq(&agent.next().await), 0);
    let typed = expect_data(&mut agent, PayloadType::Output).await;
    assert_eq!(
        (typed.sequence_number, typed.payload.as_slice()),
        (0, &b"typed"[..])
    );
    let size = expect_data(&mut agent, PayloadType::Size).await;
    assert_eq!(size.sequence_number, 1);
    assert_eq!(
        next_event(&mut channel).await,
        Event::Output(b"$ ".to_vec())
    );
}

#[tokio::test]
async fn a_cluster_key_is_required_not_just_accepted() {
    let required = || -> Option<Arc<dyn DataKeys>> { Some(Arc::new(RequiredKey("alias/jump"))) };
    let refused = |event: Event, needle: &str| match event {
        Event::Failed(ChannelError::Encryption(why)) => {
            assert!(why.contains(needle), "{why}");
        }
        other => panic!("expected an encryption failure, got {other:?}"),
    };

    // The agent starts the session in clear text: refused, the held input never sent.
    let (mut channel, mut agent) = pair_with(Limits::default(), required()).await;
    channel
        .sender()
        .send(PayloadType::Output, b"secret")
        .await
        .unwrap();
    agent.send(&data(0, PayloadType::Output, b"$ ")).await;
    refused(
        next_event(&mut channel).await,
        "started this one unencrypted",
    );
    while let Some(frame) = agent.next_within(Duration::from_millis(200)).await {
        assert_ne!(frame.payload, b"secret");
    }

    // A handshake without encryption, or under another key: refused.
    let other_key =
        json!([{"ActionType": "KMSEncryption", "ActionParameters": {"KMSKeyId": "alias/other"}}]);
    let no_key = json!([{"ActionType": "SessionType", "ActionParameters": {"SessionType": "InteractiveCommands"}}]);
    for (actions, needle) in [
        (other_key, "did not ask for that key"),
        (no_key, "did not ask for that key"),
    ] {
        let (mut channel, mut agent) = pair_with(Limits::default(), required()).await;
        agent
            .send(&data(
                0,
                PayloadType::HandshakeRequest,
                &handshake_request(actions),
            ))
            .await;
        refused(next_event(&mut channel).await, needle);
    }

    // The same key by its ARN is the required key: the key is agreed.
    let (_channel, mut agent) = pair_with(Limits::default(), required()).await;
    let arn = json!([{"ActionType": "KMSEncryption",
        "ActionParameters": {"KMSKeyId": "arn:aws:kms:us-east-1:123456789012:alias/jump"}}]);
    agent
        .send(&data(
            0,
            PayloadType::HandshakeRequest,
            &handshake_request(arn),
        ))
        .await;
    let response = expect_data(&mut agent, PayloadType::HandshakeResponse).await;
    let body: Value = serde_json::from_slice(&response.payload).unwrap();
    assert_eq!(
        body["ProcessedClientActions"][0]["ActionStatus"], 1,
        "{body}"
    );
}

#[test]
fn key_spellings_match_their_arns_only() {
    use crate::ssm::cipher::same_key;
    let arn = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    assert!(same_key(arn, "1234abcd-12ab-34cd-56ef-1234567890ab"));
    assert!(same_key(
        "alias/jump",
        "arn:aws:kms:eu-west-1:123456789012:alias/jump"
    ));
    assert!(same_key("alias/jump", "alias/jump"));
    assert!(!same_key(
        "alias/jump",
        "arn:aws:kms:eu-west-1:123456789012:alias/jumpy"
    ));
    assert!(!same_key(arn, "abcd-12ab-34cd-56ef-1234567890ab"));
    assert!(!same_key("alias/jump", "alias/other"));
}

#[tokio::test]
async fn unknown_types_are_ignored_but_acknowledged() {
    let (mut channel, mut agent) = pair(Limits::default()).await;
    agent
        .send(&control(
            MessageType::Other("agent_session_state".into()),
            b"{}",
        ))
        .await;
    agent.send(&data(0, PayloadType::Other(99), b"?")).await;
    agent.send(&data(1, PayloadType::Flag, &[0, 0, 0, 3])).await;
    agent
        .send(&data(2, PayloadType::ExitCode, b"EXIT_CODE: 7"))
        .await;
    assert_eq!(
        next_event(&mut channel).await,
        Event::Flag(flag::CONNECT_TO_PORT_ERROR)
    );
    assert_eq!(next_event(&mut channel).await, Event::ExitCode(7));
    for seq in 0..3 {
        assert_eq!(acked_seq(&agent.next().await), seq);
    }
}

#[tokio::test]
async fn pause_publication_holds_input() {
    let (channel, mut agent) = started(Limits::default()).await;
    agent
        .send(&control(MessageType::PausePublication, b""))
        .await;
    // Frames are handled in order: once the next one is acknowledged, the pause is in.
    agent.send(&data(1, PayloadType::Output, b"$ ")).await;
    assert_eq!(acked_seq(&agent.next().await), 1);
    channel
        .sender()
        .send(PayloadType::Output, b"held")
        .await
        .unwrap();
    assert!(agent
        .next_within(Duration::from_millis(300))
        .await
        .is_none());
    agent
        .send(&control(MessageType::StartPublication, b""))
        .await;
    let frame = agent.next().await;
    assert_eq!(
        (frame.sequence_number, frame.payload.as_slice()),
        (0, &b"held"[..])
    );
}

#[tokio::test]
async fn killed_gateway_fails_the_channel() {
    let (mut channel, agent) = pair(Limits::default()).await;
    let mut agent = agent;
    agent
        .send(&data(0, PayloadType::Output, b"last words"))
        .await;
    drop(agent);
    assert_eq!(
        next_event(&mut channel).await,
        Event::Output(b"last words".to_vec())
    );
    assert!(matches!(
        next_event(&mut channel).await,
        Event::Failed(ChannelError::PeerClosed | ChannelError::Socket(_))
    ));
    assert_eq!(channel.recv().await, None);
}

#[tokio::test]
async fn channel_closed_is_reported_with_its_output() {
    let (mut channel, mut agent) = pair(Limits::default()).await;
    agent.send(&data(0, PayloadType::Output, b"bye\n")).await;
    let closed =
        json!({"MessageType": "channel_closed", "Output": "Exiting session", "SessionId": "s-1"});
    agent
        .send(&control(
            MessageType::ChannelClosed,
            closed.to_string().as_bytes(),
        ))
        .await;
    assert_eq!(
        next_event(&mut channel).await,
        Event::Output(b"bye\n".to_vec())
    );
    assert_eq!(
        next_event(&mut channel).await,
        Event::Closed(Some("Exiting session".to_string()))
    );
    assert_eq!(channel.recv().await, None);
}

#[tokio::test]
async fn pings_are_answered() {
    let (_channel, mut agent) = pair(Limits::default()).await;
    agent
        .ws
        .send(Message::Ping(Bytes::from_static(b"hi")))
        .await
        .unwrap();
    let pong = timeout(Duration::from_secs(1), agent.ws.next())
        .await
        .unwrap();
    assert_eq!(
        pong.unwrap().unwrap(),
        Message::Pong(Bytes::from_static(b"hi"))
    );
}

#[tokio::test]
async fn close_terminates_the_session() {
    // Even before the agent has said anything: ending is never held back.
    let (channel, mut agent) = pair(Limits::default()).await;
    let closer = tokio::spawn(channel.close());
    let flag = agent.next().await;
    assert_eq!(flag.payload_type, PayloadType::Flag);
    assert_eq!(flag.payload, 2u32.to_be_bytes());
    agent.send(&ack_for(&flag)).await;
    timeout(Duration::from_secs(1), closer)
        .await
        .unwrap()
        .unwrap();
    assert!(agent.next_within(Duration::from_secs(1)).await.is_none());
}

#[test]
fn rto_follows_jacobson_karels() {
    let mut rto = Rto::new();
    assert_eq!(rto.current, INITIAL_RTO);
    rto.sample(Duration::from_millis(100));
    // srtt 100, rttvar 50: 100 + 4 * 50.
    assert_eq!(rto.current, Duration::from_millis(300));
    rto.sample(Duration::from_millis(100));
    // rttvar 37.5, srtt 100: 100 + 150.
    assert_eq!(rto.current, Duration::from_millis(250));
    rto.sample(Duration::from_secs(5));
    assert_eq!(rto.current, MAX_RTO);
    let mut fast = Rto::new();
    fast.sample(Duration::from_micros(100));
    assert!(fast.current >= Duration::from_micros(100) + CLOCK_GRANULARITY);
}

#[test]
fn exit_codes_parse() {
    assert_eq!(parse_exit_code(b"EXIT_CODE: 3"), Some(3));
    assert_eq!(parse_exit_code(b"0\n"), Some(0));
    assert_eq!(parse_exit_code(b"nope"), None);
}

/// `wss://` builds a rustls client config (which panics if the dependency graph holds
/// no or two crypto providers) and then fails cleanly against a peer that is not TLS.
#[tokio::test]
async fn wss_uses_the_single_rustls_provider() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "wss://localhost:{}/v1/data-channel/s-1",
        listener.local_addr().unwrap().port()
    );
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        drop(tcp);
    });
    let result = Channel::connect(&url, "t", None, None).await;
    assert!(
        matches!(result, Err(ChannelError::Connect(_))),
        "{:?}",
        result.err()
    );
}

#[test]
fn plain_ws_only_to_loopback() {
    let endpoint = |url: &str| stream_endpoint(&url.parse().unwrap());
    assert_eq!(
        endpoint("wss://ssmmessages.eu-west-1.amazonaws.com/v1/data-channel/s").unwrap(),
        ("ssmmessages.eu-west-1.amazonaws.com".to_string(), 443)
    );
    assert_eq!(
        endpoint("ws://127.0.0.1:8080/x").unwrap(),
        ("127.0.0.1".to_string(), 8080)
    );
    assert_eq!(endpoint("ws://[::1]/x").unwrap(), ("::1".to_string(), 80));
    assert!(endpoint("ws://localhost:1/x").is_ok());
    for url in [
        "ws://ssmmessages.eu-west-1.amazonaws.com/x",
        "ws://10.0.0.5/x",
        "ws://127.0.0.1.evil.example/x",
    ] {
        let err = endpoint(url).unwrap_err().to_string();
        assert!(err.contains("only wss:// is accepted"), "{url}: {err}");
    }
    assert!(endpoint("http://127.0.0.1/x").is_err());
}

/// Hands out one scripted answer per resume: a new URL and token, or a refusal.
struct Scripted {
    answers: StdMutex<Vec<Result<Resumed, ResumeError>>>,
}

impl Resume for Scripted {
    fn resume(&self) -> Pin<Box<dyn Future<Output = Result<Resumed, ResumeError>> + Send>> {
        let answer = self
            .answers
            .lock()
            .unwrap()
            .pop()
            .unwrap_or_else(|| Err(ResumeError::Refused("no more answers".into())));
        Box::pin(async move { answer })
    }
}

#[tokio::test]
async fn a_lost_connection_resumes_with_the_same_client_and_sends_the_unacknowledged_again() {
    let (listener, url) = listen().await;
    let resume = Arc::new(Scripted {
        answers: StdMutex::new(vec![Ok(Resumed {
            stream_url: url.clone(),
            token: "token-2".into(),
        })]),
    });
    let connecting = Channel::connect(&url, "token-1", None, Some(resume));
    let (channel, mut agent) = tokio::join!(connecting, accept(&listener));
    let mut channel = channel.unwrap();
    agent.send(&data(0, PayloadType::Output, b"$ ")).await;
    assert_eq!(acked_seq(&agent.next().await), 0);
    assert_eq!(
        next_event(&mut channel).await,
        Event::Output(b"$ ".to_vec())
    );
    channel
        .sender()
        .send(PayloadType::Output, b"ls\n")
        .await
        .unwrap();
    let first = agent.next().await;
    assert_eq!(first.sequence_number, 0);

    // The agent's side drops the connection without acknowledging the input.
    let client = agent.opening["ClientId"].clone();
    drop(agent);
    let mut agent = accept(&listener).await;
    assert_eq!(agent.opening["TokenValue"], "token-2");
    assert_eq!(agent.opening["ClientId"], client);
    let again = agent.next().await;
    assert_eq!(
        (again.sequence_number, &again.payload[..]),
        (0, &b"ls\n"[..])
    );
    agent.send(&ack_for(&again)).await;
    // Output goes on with the next sequence number, delivered once.
    agent.send(&data(1, PayloadType::Output, b"file\n")).await;
    assert_eq!(acked_seq(&agent.next().await), 1);
    assert_eq!(
        next_event(&mut channel).await,
        Event::Output(b"file\n".to_vec())
    );
}

#[tokio::test]
async fn a_refused_resume_fails_the_channel_with_the_reason() {
    let (listener, url) = listen().await;
    let resume = Arc::new(Scripted {
        answers: StdMutex::new(vec![Err(ResumeError::Refused(
            "session s-1 no longer exists".into(),
        ))]),
    });
    let connecting = Channel::connect(&url, "token-1", None, Some(resume));
    let (channel, agent) = tokio::join!(connecting, accept(&listener));
    let mut channel = channel.unwrap();
    drop(agent);
    match next_event(&mut channel).await {
        Event::Failed(ChannelError::Resume { why, .. }) => {
            assert!(why.contains("no longer exists"), "{why}")
        }
        other => panic!("expected a failed resume, got {other:?}"),
    }
}

#[tokio::test]
async fn a_silent_connection_is_declared_dead_and_resumed() {
    let (listener, url) = listen().await;
    let resume = Arc::new(Scripted {
        answers: StdMutex::new(vec![Ok(Resumed {
            stream_url: url.clone(),
            token: "token-2".into(),
        })]),
    });
    let limits = Limits {
        keepalive: Duration::from_millis(50),
        silence: Duration::from_millis(300),
        ..Limits::default()
    };
    let connecting = Channel::connect_with(&url, "token-1", limits, None, Some(resume));
    let (channel, silent) = tokio::join!(connecting, accept(&listener));
    let mut channel = channel.unwrap();
    // The first agent reads nothing (so it never answers a ping) and never closes.
    let mut agent = timeout(Duration::from_secs(5), accept(&listener))
        .await
        .expect("a new connection once the old one went quiet");
    assert_eq!(agent.opening["TokenValue"], "token-2");
    agent
        .send(&data(0, PayloadType::Output, b"still here"))
        .await;
    assert_eq!(
        next_event(&mut channel).await,
        Event::Output(b"still here".to_vec())
    );
    drop(silent);
}
