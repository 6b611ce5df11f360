"""Session Manager data-channel messages, as the agent side writes and reads them.

Written from the layout in shared/ssm-protocol.md, independently of jump's Rust
codec, so that the two check each other in every end-to-end test.
"""

import hashlib
import json
import struct
import time
import uuid
from dataclasses import dataclass

HEADER_LENGTH = 116
SCHEMA_VERSION = 1

INPUT = "input_stream_data"
OUTPUT = "output_stream_data"
ACK = "acknowledge"
CHANNEL_CLOSED = "channel_closed"
START_PUBLICATION = "start_publication"
PAUSE_PUBLICATION = "pause_publication"

# Payload types
P_OUTPUT, P_ERROR, P_SIZE, P_PARAMETER = 1, 2, 3, 4
P_HANDSHAKE_REQUEST, P_HANDSHAKE_RESPONSE, P_HANDSHAKE_COMPLETE = 5, 6, 7
P_ENC_CHALLENGE_REQUEST, P_ENC_CHALLENGE_RESPONSE = 8, 9
P_FLAG, P_STDERR, P_EXIT_CODE = 10, 11, 12
# Flag payloads
FLAG_DISCONNECT_TO_PORT, FLAG_TERMINATE_SESSION, FLAG_CONNECT_TO_PORT_ERROR = 1, 2, 3

FLAG_SYN, FLAG_FIN = 1, 2


@dataclass
class Message:
    message_type: str
    sequence: int
    flags: int
    message_id: uuid.UUID
    payload_type: int
    payload: bytes
    created: int = 0


def encode(msg: Message) -> bytes:
    created = msg.created or int(time.time() * 1000)
    raw_id = msg.message_id.bytes
    header = struct.pack(
        ">I32sIQqQ16s32sI",
        HEADER_LENGTH,
        msg.message_type.encode().ljust(32, b" "),
        SCHEMA_VERSION,
        created,
        msg.sequence,
        msg.flags,
        raw_id[8:] + raw_id[:8],
        hashlib.sha256(msg.payload).digest(),
        msg.payload_type,
    )
    return header + struct.pack(">I", len(msg.payload)) + msg.payload


class FrameError(ValueError):
    pass


def decode(data: bytes, check_digest: bool = True) -> Message:
    """Reads one message as the official plugin does; the agent checks less (no digest).

    Both refuse a message without CreatedDate, except the gateway's publication notices.
    """
    if len(data) < HEADER_LENGTH + 4:
        raise FrameError(f"frame of {len(data)} bytes is shorter than a header")
    (header_length, mtype, _schema, created, seq, flags, raw_id, digest, ptype) = struct.unpack(
        ">I32sIQqQ16s32sI", data[:HEADER_LENGTH]
    )
    if header_length != HEADER_LENGTH:
        raise FrameError(f"header length {header_length}, expected {HEADER_LENGTH}")
    (length,) = struct.unpack(">I", data[HEADER_LENGTH : HEADER_LENGTH + 4])
    payload = data[HEADER_LENGTH + 4 : HEADER_LENGTH + 4 + length]
    if len(payload) != length:
        raise FrameError(f"payload of {len(payload)} bytes, header says {length}")
    message_type = mtype.decode("ascii", "replace").strip(" \x00")
    if message_type in (START_PUBLICATION, PAUSE_PUBLICATION):
        check_digest = False
    elif created == 0:
        raise FrameError("CreatedDate is missing")
    if check_digest and length and hashlib.sha256(payload).digest() != digest:
        raise FrameError("payload digest mismatch")
    message_id = uuid.UUID(bytes=raw_id[8:] + raw_id[:8])
    return Message(message_type, seq, flags, message_id, ptype, payload, created)


def data_message(seq: int, payload_type: int, payload: bytes) -> Message:
    return Message(OUTPUT, seq, FLAG_SYN if seq == 0 else 0, uuid.uuid4(), payload_type, payload)


def ack_for(msg: Message) -> Message:
    body = {
        "AcknowledgedMessageType": msg.message_type,
        "AcknowledgedMessageId": str(msg.message_id),
        "AcknowledgedMessageSequenceNumber": msg.sequence,
        "IsSequentialMessage": True,
    }
    return Message(ACK, 0, FLAG_SYN | FLAG_FIN, uuid.uuid4(), 0, json.dumps(body).encode())


def channel_closed(session_id: str, output: str = "") -> Message:
    message_id = uuid.uuid4()
    body = {
        "MessageId": str(message_id),
        "CreatedDate": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
        "DestinationId": session_id,
        "SessionId": session_id,
        "MessageType": CHANNEL_CLOSED,
        "SchemaVersion": 1,
        "Output": output,
    }
    return Message(CHANNEL_CLOSED, 0, 0, message_id, 0, json.dumps(body).encode())
