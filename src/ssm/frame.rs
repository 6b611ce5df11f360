//! The binary message codec of the Session Manager data channel.
//!
//! Every WebSocket frame after the opening text frame carries one message: a fixed
//! 120-byte header (big-endian integers, a space-padded type name, a SHA-256 digest of the
//! payload) followed by the payload. The layout is documented in `ssm-protocol.md`; this
//! module is the only place that knows the offsets.
//!
//! [`decode`] reads bytes straight off the network, so it must never panic: every read is
//! a bounds-checked slice and all offset arithmetic is checked. Message and payload types
//! that we do not know are carried as raw values so that newer agents never break us; the
//! channel decides what to ignore.

use sha2::{Digest, Sha256};
use thiserror::Error;
use uuid::Uuid;

/// Value of the HeaderLength field: the bytes before the PayloadLength field.
pub const HEADER_LENGTH: u32 = 116;
/// Bytes before the payload: the header plus the 4-byte PayloadLength.
const PAYLOAD_OFFSET: usize = HEADER_LENGTH as usize + 4;
/// Width of the space-padded MessageType field.
const MESSAGE_TYPE_LEN: usize = 32;
/// The only schema version either side has ever sent.
pub const SCHEMA_VERSION: u32 = 1;

/// The message kinds named in the MessageType field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageType {
    InputStreamData,
    OutputStreamData,
    Acknowledge,
    ChannelClosed,
    StartPublication,
    PausePublication,
    /// Anything else, as read (trimmed). Never produced by us.
    Other(String),
}

impl MessageType {
    pub fn as_str(&self) -> &str {
        match self {
            MessageType::InputStreamData => "input_stream_data",
            MessageType::OutputStreamData => "output_stream_data",
            MessageType::Acknowledge => "acknowledge",
            MessageType::ChannelClosed => "channel_closed",
            MessageType::StartPublication => "start_publication",
            MessageType::PausePublication => "pause_publication",
            MessageType::Other(name) => name,
        }
    }

    fn parse(name: &str) -> Self {
        match name {
            "input_stream_data" => MessageType::InputStreamData,
            "output_stream_data" => MessageType::OutputStreamData,
            "acknowledge" => MessageType::Acknowledge,
            "channel_closed" => MessageType::ChannelClosed,
            "start_publication" => MessageType::StartPublication,
            "pause_publication" => MessageType::PausePublication,
            other => MessageType::Other(other.to_string()),
        }
    }
}

/// What a data message's payload means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadType {
    /// 0: not a data payload; acknowledgements and control messages leave it unset.
    Unset,
    Output,
    Error,
    Size,
    Parameter,
    HandshakeRequest,
    HandshakeResponse,
    HandshakeComplete,
    EncChallengeRequest,
    EncChallengeResponse,
    Flag,
    StdErr,
    ExitCode,
    /// A value this version does not know.
    Other(u32),
}

impl From<u32> for PayloadType {
    fn from(value: u32) -> Self {
        match value {
            0 => PayloadType::Unset,
            1 => PayloadType::Output,
            2 => PayloadType::Error,
            3 => PayloadType::Size,
            4 => PayloadType::Parameter,
            5 => PayloadType::HandshakeRequest,
            6 => PayloadType::HandshakeResponse,
            7 => PayloadType::HandshakeComplete,
            8 => PayloadType::EncChallengeRequest,
            9 => PayloadType::EncChallengeResponse,
            10 => PayloadType::Flag,
            11 => PayloadType::StdErr,
            12 => PayloadType::ExitCode,
            other => PayloadType::Other(other),
        }
    }
}

impl From<PayloadType> for u32 {
    fn from(value: PayloadType) -> Self {
        match value {
            PayloadType::Unset => 0,
            PayloadType::Output => 1,
            PayloadType::Error => 2,
            PayloadType::Size => 3,
            PayloadType::Parameter => 4,
            PayloadType::HandshakeRequest => 5,
            PayloadType::HandshakeResponse => 6,
            PayloadType::HandshakeComplete => 7,
            PayloadType::EncChallengeRequest => 8,
            PayloadType::EncChallengeResponse => 9,
            PayloadType::Flag => 10,
            PayloadType::StdErr => 11,
            PayloadType::ExitCode => 12,
            PayloadType::Other(other) => other,
        }
    }
}

/// Flags field bits.
pub mod flags {
    /// Set by the agent on its first data message.
    pub const SYN: u64 = 1;
    /// Set, together with SYN, on acknowledgements.
    pub const FIN: u64 = 2;
}

/// One decoded message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub message_type: MessageType,
    pub schema_version: u32,
    /// Epoch milliseconds.
    pub created_date: u64,
    pub sequence_number: i64,
    pub flags: u64,
    pub message_id: Uuid,
    pub payload_type: PayloadType,
    pub payload: Vec<u8>,
}

/// Why bytes could not be read as a message, or a message could not be written.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    #[error("message too short: {0} bytes")]
    TooShort(usize),
    #[error("invalid header length {0}")]
    HeaderLength(u32),
    #[error("payload length {declared} exceeds the {available} bytes present")]
    PayloadLength { declared: u32, available: usize },
    #[error("payload digest does not match the payload")]
    Digest,
    #[error("message type is not ASCII text")]
    MessageTypeText,
    #[error("message type {0:?} does not fit the 32-byte field")]
    MessageTypeTooLong(String),
    #[error("payload of {0} bytes is too large")]
    PayloadTooLarge(usize),
}

impl Frame {
    /// A message stamped now with a fresh random id.
    pub fn new(
        message_type: MessageType,
        sequence_number: i64,
        flags: u64,
        payload_type: PayloadType,
        payload: Vec<u8>,
    ) -> Self {
        Frame {
            message_type,
            schema_version: SCHEMA_VERSION,
            created_date: now_millis(),
            sequence_number,
            flags,
            message_id: Uuid::new_v4(),
            payload_type,
            payload,
        }
    }

    /// Serializes the message, computing the payload digest.
    pub fn encode(&self) -> Result<Vec<u8>, FrameError> {
        let name = self.message_type.as_str().as_bytes();
        if name.len() > MESSAGE_TYPE_LEN {
            return Err(FrameError::MessageTypeTooLong(
                self.message_type.as_str().to_string(),
            ));
        }
        let payload_len = u32::try_from(self.payload.len())
            .map_err(|_| FrameError::PayloadTooLarge(self.payload.len()))?;
        let mut out = Vec::with_capacity(PAYLOAD_OFFSET + self.payload.len());
        out.extend_from_slice(&HEADER_LENGTH.to_be_bytes());
        out.extend_from_slice(name);
        out.resize(4 + MESSAGE_TYPE_LEN, b' ');
        out.extend_from_slice(&self.schema_version.to_be_bytes());
        out.extend_from_slice(&self.created_date.to_be_bytes());
        out.extend_from_slice(&self.sequence_number.to_be_bytes());
        out.extend_from_slice(&self.flags.to_be_bytes());
        let id = self.message_id.as_bytes();
        out.extend_from_slice(&id[8..16]);
        out.extend_from_slice(&id[0..8]);
        out.extend_from_slice(&Sha256::digest(&self.payload));
        out.extend_from_slice(&u32::from(self.payload_type).to_be_bytes());
        out.extend_from_slice(&payload_len.to_be_bytes());
        out.extend_from_slice(&self.payload);
        Ok(out)
    }
}

/// Parses one message. Never panics; trailing bytes after the payload are ignored, as
/// the official implementations do.
pub fn decode(bytes: &[u8]) -> Result<Frame, FrameError> {
    if bytes.len() < PAYLOAD_OFFSET {
        return Err(FrameError::TooShort(bytes.len()));
    }
    let header_length = be_u32(bytes, 0)?;
    // The PayloadLength field sits at HeaderLength; the fixed fields need at least 116.
    if header_length < HEADER_LENGTH {
        return Err(FrameError::HeaderLength(header_length));
    }
    let length_at =
        usize::try_from(header_length).map_err(|_| FrameError::HeaderLength(header_length))?;
    let payload_at = length_at
        .checked_add(4)
        .ok_or(FrameError::HeaderLength(header_length))?;
    let declared = be_u32(bytes, length_at).map_err(|_| FrameError::HeaderLength(header_length))?;
    let available = bytes.len().saturating_sub(payload_at);
    let payload_end = usize::try_from(declared)
        .ok()
        .and_then(|len| payload_at.checked_add(len))
        .filter(|end| *end <= bytes.len())
        .ok_or(FrameError::PayloadLength {
            declared,
            available,
        })?;
    let payload = slice(bytes, payload_at, payload_end)?.to_vec();
    if Sha256::digest(&payload).as_slice() != slice(bytes, 80, 112)? {
        return Err(FrameError::Digest);
    }

    let name = std::str::from_utf8(slice(bytes, 4, 36)?)
        .map_err(|_| FrameError::MessageTypeText)?
        .trim_matches(|c| c == ' ' || c == '\0');
    let mut id = [0u8; 16];
    id[8..16].copy_from_slice(slice(bytes, 64, 72)?);
    id[0..8].copy_from_slice(slice(bytes, 72, 80)?);

    Ok(Frame {
        message_type: MessageType::parse(name),
        schema_version: be_u32(bytes, 36)?,
        created_date: be_u64(bytes, 40)?,
        sequence_number: be_u64(bytes, 48)? as i64,
        flags: be_u64(bytes, 56)?,
        message_id: Uuid::from_bytes(id),
        payload_type: PayloadType::from(be_u32(bytes, 112)?),
        payload,
    })
}

fn slice(bytes: &[u8], start: usize, end: usize) -> Result<&[u8], FrameError> {
    bytes
        .get(start..end)
        .ok_or(FrameError::TooShort(bytes.len()))
}

fn be_u32(bytes: &[u8], at: usize) -> Result<u32, FrameError> {
    let end = at.checked_add(4).ok_or(FrameError::TooShort(bytes.len()))?;
    let raw: [u8; 4] = slice(bytes, at, end)?
        .try_into()
        .map_err(|_| FrameError::TooShort(bytes.len()))?;
    Ok(u32::from_be_bytes(raw))
}

fn be_u64(bytes: &[u8], at: usize) -> Result<u64, FrameError> {
    let end = at.checked_add(8).ok_or(FrameError::TooShort(bytes.len()))?;
    let raw: [u8; 8] = slice(bytes, at, end)?
        .try_into()
        .map_err(|_| FrameError::TooShort(bytes.len()))?;
    Ok(u64::from_be_bytes(raw))
}

fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 123-byte test vector from ssm-protocol.md.
    const VECTOR: &str = concat!(
        "00000074",
        "696e7075745f73747265616d5f64617461",
        "202020202020202020202020202020",
        "00000001",
        "0000015e0baa7884",
        "0000000000000001",
        "0000000000000000",
        "08090a0b0c0d0e0f",
        "0001020304050607",
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        "00000001",
        "00000003",
        "616263",
    );

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    fn vector_frame() -> Frame {
        Frame {
            message_type: MessageType::InputStreamData,
            schema_version: 1,
            created_date: 1_503_434_274_948,
            sequence_number: 1,
            flags: 0,
            message_id: Uuid::parse_str("00010203-0405-0607-0809-0a0b0c0d0e0f").unwrap(),
            payload_type: PayloadType::Output,
            payload: b"abc".to_vec(),
        }
    }

    #[test]
    fn test_vector_round_trips_byte_for_byte() {
        let bytes = hex(VECTOR);
        assert_eq!(bytes.len(), 123);
        assert_eq!(vector_frame().encode().unwrap(), bytes);
        assert_eq!(decode(&bytes).unwrap(), vector_frame());
    }

    #[test]
    fn message_type_trims_spaces_and_nuls() {
        let mut bytes = hex(VECTOR);
        // "input_stream_data" followed by NULs instead of spaces.
        for b in &mut bytes[4 + 17..36] {
            *b = 0;
        }
        assert_eq!(
            decode(&bytes).unwrap().message_type,
            MessageType::InputStreamData
        );
    }

    #[test]
    fn unknown_types_are_carried_raw() {
        let mut frame = vector_frame();
        frame.message_type = MessageType::Other("agent_session_state".to_string());
        frame.payload_type = PayloadType::Other(99);
        let decoded = decode(&frame.encode().unwrap()).unwrap();
        assert_eq!(decoded, frame);
    }

    #[test]
    fn corrupt_payload_is_rejected() {
        let mut bytes = hex(VECTOR);
        bytes[120] = b'x';
        assert_eq!(decode(&bytes), Err(FrameError::Digest));
        assert!(matches!(
            decode(&bytes[..122]),
            Err(FrameError::PayloadLength { .. })
        ));
        assert_eq!(decode(&bytes[..50]), Err(FrameError::TooShort(50)));
    }

    #[test]
    fn over_long_type_cannot_be_encoded() {
        let mut frame = vector_frame();
        frame.message_type = MessageType::Other("x".repeat(33));
        assert!(matches!(
            frame.encode(),
            Err(FrameError::MessageTypeTooLong(_))
        ));
    }

    /// xorshift64*: a seeded generator so failures reproduce.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    /// A seeded mutation fuzzer on stable Rust: `decode` must return, never panic.
    #[test]
    fn decode_never_panics_on_mutated_input() {
        let mut rng = Rng(0x5eed_1234_abcd_ef01);
        let seeds: Vec<Vec<u8>> = [0usize, 1, 3, 64, 1024]
            .iter()
            .map(|&n| {
                let mut frame = vector_frame();
                frame.payload = (0..n).map(|i| i as u8).collect();
                frame.encode().unwrap()
            })
            .collect();
        let mut accepted = 0;
        for _ in 0..200_000 {
            let mut bytes = seeds[rng.below(seeds.len())].clone();
            for _ in 0..=rng.below(4) {
                match rng.below(6) {
                    0 => {
                        let i = rng.below(bytes.len());
                        let bit = rng.below(8);
                        if let Some(b) = bytes.get_mut(i) {
                            *b ^= 1 << bit;
                        }
                    }
                    1 => bytes.truncate(rng.below(bytes.len() + 1)),
                    2 => {
                        // Corrupt HeaderLength or PayloadLength with extreme or random values.
                        let at = if rng.below(2) == 0 { 0 } else { 116 };
                        let value = match rng.below(4) {
                            0 => u32::MAX,
                            1 => 0,
                            2 => rng.next() as u32,
                            _ => (rng.next() % 300) as u32,
                        };
                        if bytes.len() >= at + 4 {
                            bytes[at..at + 4].copy_from_slice(&value.to_be_bytes());
                        }
                    }
                    3 => {
                        let n = rng.below(300);
                        bytes = (0..n).map(|_| rng.next() as u8).collect();
                    }
                    4 => {
                        let extra = rng.below(64);
                        bytes.extend((0..extra).map(|_| rng.next() as u8));
                    }
                    _ => {
                        let i = rng.below(bytes.len());
                        let value = rng.next() as u8;
                        if let Some(b) = bytes.get_mut(i) {
                            *b = value;
                        }
                    }
                }
            }
            if decode(&bytes).is_ok() {
                accepted += 1;
            }
        }
        // Untouched-length mutations of header fields still decode; sanity-check that the
        // loop exercised both outcomes.
        assert!(accepted > 0);
    }
}
