"""A stand-in for AWS's session-manager-plugin, to test jump's ``--ssm-plugin``.

jump can hand a session to the official plugin, invoked as the AWS CLI does:

    PLUGIN SESSION_JSON REGION StartSession PROFILE REQUEST_JSON ENDPOINT

SESSION_JSON may instead name an environment variable starting
``AWS_SSM_START_SESSION_RESPONSE`` that holds it (AWS CLI ``ssm start-session``
does that with plugins newer than 1.2.497.0, to keep the token out of argv);
with no arguments at all the plugin only says it is installed (AWS CLI
``ecs execute-command`` runs it so before calling ExecuteCommand).

As in the official plugin, the agent decides what the session is: a
HandshakeRequest whose SessionType is ``Port`` makes it a port forwarding
session listening on the ``localPortNumber`` the handshake's properties carry
(any free port when absent or 0), whatever the request JSON says; output
without a handshake makes it a shell.

No official plugin can be installed where jump is built, so this client of the
data channel plays it, written from shared/ssm-protocol.md and independent of
the gateway (the agent side) and of jump. It checks its arguments as strictly
as jump's tests need, and behaves where jump can see it as the official
plugin does: the same lines on stdout, shell output on stdout and stdin
forwarded, local port forwarding over smux v1, and exit status 0 whenever the
agent closes the channel, whatever the remote command's status was (the
official plugin's known flaw, which jump's fallback documents).

Where it differs: refused arguments are a message on stderr and exit status 1
(the official plugin mostly prints them on stdout and exits 0); it offers no
KMS encryption (the handshake answers every action but SessionType as
unsupported), no port forwarding without smux, no standard-stream port
sessions (AWS-StartSSHSession), no reconnection; and a connection lost
without channel_closed, or a session it cannot play, is exit status 1.

``JUMP_PLUGIN_STANDIN_LOG``, if set, names a file that gets one JSON line per
invocation, ``{"argv": [...]}``, so tests can check what jump passed.
"""

import asyncio
import json
import os
import signal
import struct
import sys
import termios
import threading
import time
import tty
import uuid
from contextlib import contextmanager
from dataclasses import dataclass

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from . import ssmframe as f

VERSION = "1.2.694.0"  # what the handshake reports; >= 1.1.70, so the agent multiplexes port sessions
PORT_DOCUMENTS = ("AWS-StartPortForwardingSession", "AWS-StartPortForwardingSessionToRemoteHost")
ACTION_SUCCESS, ACTION_FAILED, ACTION_UNSUPPORTED = 1, 2, 3
RESPONSE_ENV = "AWS_SSM_START_SESSION_RESPONSE"
INSTALLED = "\nThe Session Manager plugin was installed successfully. Use the AWS CLI to start a session.\n\n"
SHELL_TYPES = ("Standard_Stream", "InteractiveCommands", "NonInteractiveCommands")
PORT_TYPE = "Port"
CHUNK = 1024  # the official plugin's largest payload per message
RTO = 0.2  # seconds before the oldest unacknowledged message is sent again
TERMINATE_WAIT = 2.0  # seconds to let the agent take the TerminateSession flag
CONTROL_BYTES = {signal.SIGINT: b"\x03", signal.SIGQUIT: b"\x1c", signal.SIGTSTP: b"\x1a"}
SMUX_SYN, SMUX_FIN, SMUX_PSH = 0, 1, 2
SMUX_MAX = 32 * 1024


class Refused(Exception):
    """Arguments the official plugin would not start a session from."""


class ChannelLost(Exception):
    """The connection ended without the agent closing the channel."""


class Unsupported(Exception):
    """A session the agent started that the stand-in cannot play."""


@dataclass
class Invocation:
    """What a session needs of the arguments; the region, profile and endpoint are only checked."""

    session_id: str
    stream_url: str
    token: str


def parse(args: list[str]) -> Invocation:
    if len(args) != 6:
        raise Refused(
            f"expected 6 arguments (SESSION_JSON REGION StartSession PROFILE REQUEST_JSON ENDPOINT), got {len(args)}"
        )
    session_json, region, operation, _profile, request_json, endpoint = args
    if operation != "StartSession":
        raise Refused(f"Invalid Operation {operation!r}: the only operation is StartSession")
    if session_json.startswith(RESPONSE_ENV):
        if session_json not in os.environ:
            raise Refused(f"argument 1 names the environment variable {session_json}, which is not set")
        session_json = os.environ.pop(session_json)  # the official plugin unsets it once read
    session = _json_object(session_json, "the session (argument 1)")
    fields = {key: session.get(key.lower()) for key in ("SessionId", "StreamUrl", "TokenValue")}
    for key, value in fields.items():
        if not isinstance(value, str) or not value:
            raise Refused(f"the session (argument 1) has no {key}")
    if not region or region.strip() != region:
        raise Refused(f"the region (argument 2) is {region!r}")
    request = _json_object(request_json, "the StartSession request (argument 5)")
    target = request.get("target")
    if not isinstance(target, str) or not target.startswith("ecs:") or target.count("_") < 2:
        raise Refused(f"the request's Target is {target!r}, not ecs:<cluster>_<task-id>_<runtime-id>")
    document = request.get("documentname") or ""
    if document and document not in PORT_DOCUMENTS:
        raise Refused(f"the stand-in plays shells and port forwarding only, not {document!r}")
    if not endpoint.startswith(("http://", "https://")):
        raise Refused(f"the endpoint (argument 6) is {endpoint!r}, not a URL")
    return Invocation(fields["SessionId"], fields["StreamUrl"], fields["TokenValue"])


def _json_object(text: str, what: str) -> dict:
    """A JSON object with its keys lower-cased: the official plugin's Go decoding ignores their case."""
    try:
        value = json.loads(text)
    except ValueError as err:
        raise Refused(f"{what} is not JSON: {err}") from None
    if not isinstance(value, dict):
        raise Refused(f"{what} is not a JSON object")
    return {key.lower(): item for key, item in value.items()}


def say(text: str) -> None:
    """The plugin's own lines go to stdout, between the session's bytes, as the official plugin's do."""
    sys.stdout.buffer.write(text.encode())
    sys.stdout.buffer.flush()


# ---- data channel ---------------------------------------------------------


class DataChannel:
    """The client end: numbering, acks, reordering, retransmission and the handshake."""

    def __init__(self, ws):
        self.ws = ws
        self.pending: list[f.Message] = []  # agent messages that came before a session took them
        self.on_payload = self.pending.append  # each in-order agent message that is not handshake
        self.out_seq = 0
        self.unacked: dict[int, list] = {}  # seq -> [frame, last sent]
        self.expected = 0
        self.early: dict[int, f.Message] = {}
        self.outbox: asyncio.Queue = asyncio.Queue()
        self.started = asyncio.Event()  # the session type is known: handshake complete, or first output
        self.session_type = ""  # from the handshake's SessionType action; a shell if there is none
        self.properties: dict = {}  # the SessionType action's Properties
        self.closed_output: str | None = None

    @classmethod
    async def open(cls, url: str, token: str) -> "DataChannel":
        ws = await connect(url, max_size=None, compression=None)
        opening = {
            "MessageSchemaVersion": "1.0", "RequestId": str(uuid.uuid4()), "TokenValue": token,
            "ClientId": str(uuid.uuid4()), "ClientVersion": VERSION,
        }
        await ws.send(json.dumps(opening))
        return cls(ws)

    def attach(self, handler) -> None:
        """Hands the session its payloads: those that came early first, then each as it comes."""
        for msg in self.pending:
            handler(msg)
        self.pending.clear()
        self.on_payload = handler

    def send(self, payload_type: int, payload: bytes) -> None:
        """Queues numbered input messages; Output is cut into pieces as the official plugin cuts it."""
        pieces = [payload]
        if payload_type == f.P_OUTPUT:
            pieces = [payload[i : i + CHUNK] for i in range(0, len(payload), CHUNK)]
        for piece in pieces:
            frame = f.encode(f.Message(f.INPUT, self.out_seq, 0, uuid.uuid4(), payload_type, piece))
            self.unacked[self.out_seq] = [frame, time.monotonic()]
            self.out_seq += 1
            self.outbox.put_nowait(frame)

    async def run(self) -> str:
        """Serves the channel until the agent closes it; returns channel_closed's Output."""
        helpers = [asyncio.create_task(self._write()), asyncio.create_task(self._resend())]
        try:
            async for raw in self.ws:
                if isinstance(raw, bytes):
                    self._receive(raw)
                if self.closed_output is not None:
                    return self.closed_output
        except ConnectionClosed:
            pass
        finally:
            for helper in helpers:
                helper.cancel()
        reason = f"{self.ws.close_code} {self.ws.close_reason}".strip() if self.ws.close_code else "no close frame"
        raise ChannelLost(f"the data channel ended without channel_closed ({reason})")

    async def terminate(self, runner: asyncio.Task) -> None:
        """Sends TerminateSession and lets the agent close the channel; closes it anyway after a moment."""
        self.send(f.P_FLAG, struct.pack(">I", f.FLAG_TERMINATE_SESSION))
        await asyncio.wait([runner], timeout=TERMINATE_WAIT)
        await self.ws.close()
        await asyncio.gather(runner, return_exceptions=True)

    async def _write(self) -> None:
        while True:
            await self.ws.send(await self.outbox.get())

    async def _resend(self) -> None:
        while True:
            await asyncio.sleep(0.1)
            if self.unacked:
                oldest = self.unacked[min(self.unacked)]
                if time.monotonic() - oldest[1] > RTO:
                    oldest[1] = time.monotonic()
                    self.outbox.put_nowait(oldest[0])

    def _receive(self, raw: bytes) -> None:
        try:
            msg = f.decode(raw)
        except f.FrameError:
            return
        if msg.message_type == f.ACK:
            self.unacked.pop(json.loads(msg.payload).get("AcknowledgedMessageSequenceNumber"), None)
        elif msg.message_type == f.CHANNEL_CLOSED:
            self.closed_output = json.loads(msg.payload).get("Output") or ""
        elif msg.message_type == f.OUTPUT:
            self.outbox.put_nowait(f.encode(f.ack_for(msg)))
            if msg.sequence >= self.expected:
                self.early[msg.sequence] = msg
            while self.expected in self.early:
                self._deliver(self.early.pop(self.expected))
                self.expected += 1

    def _deliver(self, msg: f.Message) -> None:
        if msg.payload_type == f.P_HANDSHAKE_REQUEST:
            self._answer_handshake(json.loads(msg.payload))
        elif msg.payload_type == f.P_HANDSHAKE_COMPLETE:
            message = json.loads(msg.payload).get("CustomerMessage")
            if message:
                say(message + "\n")
            self.started.set()
        else:
            if msg.payload_type == f.P_OUTPUT and not self.session_type:
                self.session_type = SHELL_TYPES[0]  # an agent without handshake: a shell
                self.started.set()
            self.on_payload(msg)

    def _answer_handshake(self, request: dict) -> None:
        processed, errors = [], []
        for action in request.get("RequestedClientActions") or []:
            kind = action.get("ActionType")
            if kind == "SessionType":
                parameters = action.get("ActionParameters") or {}
                session_type = parameters.get("SessionType") or ""
                if session_type not in (*SHELL_TYPES, PORT_TYPE):
                    error = f"Unknown session type {session_type}"
                    processed.append({"ActionType": kind, "ActionStatus": ACTION_FAILED, "Error": error})
                    errors.append(error)
                    continue
                self.session_type = PORT_TYPE if session_type == PORT_TYPE else SHELL_TYPES[0]
                self.properties = parameters.get("Properties") or {}
                processed.append({"ActionType": kind, "ActionStatus": ACTION_SUCCESS})
            else:
                error = f"Unsupported action {kind}"
                processed.append({"ActionType": kind, "ActionStatus": ACTION_UNSUPPORTED, "Error": error})
                errors.append(error)
        response = {"ClientVersion": VERSION, "ProcessedClientActions": processed, "Errors": errors}
        self.send(f.P_HANDSHAKE_RESPONSE, json.dumps(response).encode())


# ---- shells ---------------------------------------------------------------


async def shell_session(inv: Invocation, channel: DataChannel, runner: asyncio.Task) -> str:
    """Output to stdout, stdin and the terminal's size and control keys to the agent."""
    channel.attach(_show)
    loop = asyncio.get_running_loop()
    for sig, byte in CONTROL_BYTES.items():
        loop.add_signal_handler(sig, channel.send, f.P_OUTPUT, byte)
    size = _terminal_size()
    channel.send(f.P_SIZE, json.dumps(size).encode())

    def resized():
        nonlocal size
        if _terminal_size() != size:
            size = _terminal_size()
            channel.send(f.P_SIZE, json.dumps(size).encode())

    loop.add_signal_handler(signal.SIGWINCH, resized)
    threading.Thread(target=_pump_stdin, args=(loop, channel), daemon=True).start()
    with _cbreak():
        return await runner


def _show(msg: f.Message) -> None:
    if msg.payload_type == f.P_OUTPUT:
        sys.stdout.buffer.write(msg.payload)
        sys.stdout.buffer.flush()


def _terminal_size() -> dict:
    try:
        cols, rows = os.get_terminal_size(sys.stdout.fileno())
    except OSError:
        cols, rows = 300, 100  # what the official plugin sends when stdout is no terminal
    return {"cols": cols, "rows": rows}


def _pump_stdin(loop, channel: DataChannel) -> None:
    """Blocking reads on a thread: stdin may be a file, which the event loop cannot watch.

    At end of input the official plugin just stops reading; the session goes on.
    """
    while True:
        try:
            data = os.read(0, CHUNK)
        except OSError:
            return
        if not data:
            return
        try:
            loop.call_soon_threadsafe(channel.send, f.P_OUTPUT, data)
        except RuntimeError:  # the session ended meanwhile
            return


@contextmanager
def _cbreak():
    """A terminal on stdin goes to cbreak without echo for the session, as the official plugin sets it."""
    if not os.isatty(0):
        yield
        return
    saved = termios.tcgetattr(0)
    tty.setcbreak(0)
    try:
        yield
    finally:
        termios.tcsetattr(0, termios.TCSADRAIN, saved)


# ---- port forwarding ------------------------------------------------------


class MuxClient:
    """The client end of smux v1 over the data channel: a stream per accepted connection."""

    def __init__(self, channel: DataChannel, session_id: str):
        self.channel = channel
        self.session_id = session_id
        self.last_id = 1  # smux clients open odd ids from 3
        self.streams: dict[int, asyncio.StreamWriter] = {}
        self.buffer = b""
        self.accepted = False

    def _frame(self, cmd: int, sid: int, data: bytes = b"") -> None:
        self.channel.send(f.P_OUTPUT, struct.pack("<BBHI", 1, cmd, len(data), sid) + data)

    async def accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Carries one local connection; either side's end closes it whole, as smux v1 streams do."""
        if not self.accepted:
            self.accepted = True
            say(f"\nConnection accepted for session [{self.session_id}]\n")
        self.last_id += 2
        sid = self.last_id
        self.streams[sid] = writer
        self._frame(SMUX_SYN, sid)
        try:
            while data := await reader.read(SMUX_MAX):
                self._frame(SMUX_PSH, sid, data)
        except ConnectionError:
            pass
        self.streams.pop(sid, None)
        self._frame(SMUX_FIN, sid)
        writer.close()

    def receive(self, msg: f.Message) -> None:
        if msg.payload_type == f.P_FLAG:
            if msg.payload[-1:] == bytes([f.FLAG_CONNECT_TO_PORT_ERROR]):
                say("\nConnection to destination port failed, check SSM Agent logs.\n")
            return
        if msg.payload_type != f.P_OUTPUT:
            return
        self.buffer += msg.payload
        while len(self.buffer) >= 8:
            _version, cmd, length, sid = struct.unpack("<BBHI", self.buffer[:8])
            if len(self.buffer) < 8 + length:
                return
            data, self.buffer = self.buffer[8 : 8 + length], self.buffer[8 + length :]
            writer = self.streams.get(sid)
            if writer is not None and cmd == SMUX_PSH:
                writer.write(data)
            elif writer is not None and cmd == SMUX_FIN:
                writer.close()  # accept() then sees the end and answers with FIN


async def port_session(inv: Invocation, channel: DataChannel, runner: asyncio.Task) -> str:
    """Listens where the handshake says; SIGINT or SIGTERM terminates the session.

    The port is the handshake's ``localPortNumber`` (0 or none: any free port), on
    ``$SSM_PLUGIN_LOCAL_HOST`` or else 127.0.0.1, where the official plugin's
    ``localhost`` listener lands.
    """
    if channel.properties.get("type") != "LocalPortForwarding":
        raise Unsupported(f"the stand-in forwards local ports only, not a {channel.properties.get('type')!r} session")
    mux = MuxClient(channel, inv.session_id)
    channel.attach(mux.receive)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    port = int(channel.properties.get("localPortNumber") or 0)
    server = await asyncio.start_server(mux.accept, os.environ.get("SSM_PLUGIN_LOCAL_HOST") or "127.0.0.1", port)
    say(f"Port {server.sockets[0].getsockname()[1]} opened for sessionId {inv.session_id}.\n")
    say("Waiting for connections...\n")
    await _first_done(runner, stop)
    server.close()
    if runner.done():
        return runner.result()
    say("Terminate signal received, exiting.\n")
    await channel.terminate(runner)
    return ""


async def _first_done(runner: asyncio.Task, *events: asyncio.Event) -> None:
    """Waits until the channel ends or one of the events is set; the channel goes on either way."""
    waiters = [asyncio.create_task(event.wait()) for event in events]
    await asyncio.wait([runner, *waiters], return_when=asyncio.FIRST_COMPLETED)
    for waiter in waiters:
        waiter.cancel()


# ---- entry ----------------------------------------------------------------


async def start(inv: Invocation) -> int:
    say(f"\nStarting session with SessionId: {inv.session_id}\n")
    try:
        channel = await DataChannel.open(inv.stream_url, inv.token)
    except (OSError, InvalidHandshake, InvalidURI) as err:
        print(f"session-manager-plugin: cannot open the data channel: {err}", file=sys.stderr)
        return 1
    runner = asyncio.create_task(channel.run())
    try:
        await _first_done(runner, channel.started)
        if runner.done():
            output = runner.result()
        else:
            session = port_session if channel.session_type == PORT_TYPE else shell_session
            output = await session(inv, channel, runner)
    except ChannelLost as err:
        print(f"session-manager-plugin: {err}", file=sys.stderr)
        return 1
    except Unsupported as err:
        print(f"session-manager-plugin: {err}", file=sys.stderr)
        await channel.terminate(runner)
        return 1
    if output:
        say(f"\n\nSessionId: {inv.session_id} : {output}\n\n")
    else:
        say(f"\n\nExiting session with sessionId: {inv.session_id}.\n\n")
    return 0


def _log(args: list[str]) -> None:
    path = os.environ.get("JUMP_PLUGIN_STANDIN_LOG")
    if path:
        with open(path, "a") as handle:
            handle.write(json.dumps({"argv": args}) + "\n")


def main() -> int:
    args = sys.argv[1:]
    _log(args)
    if not args:
        say(INSTALLED)
        return 0
    if args == ["--version"]:
        print(VERSION)
        return 0
    try:
        inv = parse(args)
    except Refused as err:
        print(f"session-manager-plugin: {err}", file=sys.stderr)
        return 1
    return asyncio.run(start(inv))


if __name__ == "__main__":
    sys.exit(main())
