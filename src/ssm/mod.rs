//! A client for the Session Manager data channel, the protocol `session-manager-plugin`
//! speaks to the SSM agent through the message gateway (ECS Exec and port forwarding).
//!
//! Why hand-written: the one existing Rust crate was reviewed and rejected. It truncates
//! streams when a local reader is slow, leaves Nagle on, can get stuck on
//! acknowledgements, dies on unknown handshake actions, and drops output that arrives
//! before a consumer subscribes. The protocol is small and documented byte for byte in
//! `ssm-protocol.md`, so we own it:
//!
//! - [`frame`]: the binary message codec;
//! - [`channel`]: the WebSocket, acknowledgements, retransmission, ordering, handshake;
//! - [`cipher`]: AES-256-GCM payloads of KMS-encrypted sessions;
//! - [`smux`]: smux v1 multiplexing over the channel's byte stream, for port forwarding.

pub mod channel;
pub mod cipher;
pub mod frame;
pub mod smux;
