"""The message gateway: the agent side of Session Manager sessions.

ECS ExecuteCommand and SSM StartSession return a ``ws://`` stream URL served
here. Each WebSocket plays the SSM agent inside the task: shells and commands
run on a pty inside the task's namespaces (as an ``ssm-session-worker``
process, which is how the jumphost entrypoint counts sessions); port
forwarding dials from inside the task's network namespace, with the names the
task would resolve (so an RDS endpoint reaches the sandbox's PostgreSQL), and
multiplexes connections with smux v1 as agents newer than 3.0.196.0 do.

The reliability layer is the agent's: numbered data messages, an ack for every
message received, re-acks for duplicates, a buffer for early arrivals, and
retransmission of its own unacknowledged messages. Its send window is bounded:
a client that withholds acks stops the agent from reading more output, which
is how backpressure reaches the remote process.

Faults for tests (set per new session through the control API): delay (hold
some messages back so later ones overtake them), duplicate, drop (resent by
retransmission), and kill (abort the TCP connection after N seconds).
"""

import asyncio
import ctypes
import fcntl
import json
import os
import pty
import random
import secrets
import shlex
import signal
import socket
import struct
import termios
import threading
import time
from dataclasses import dataclass, field

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

from . import ssmframe as f

AGENT_VERSION = "3.3.1142.0"
MUX_MIN_CLIENT = (1, 1, 70)
CLONE_NEWNET = 0x40000000
SMUX_SYN, SMUX_FIN, SMUX_PSH, SMUX_NOP = 0, 1, 2, 3
SMUX_MAX = 32 * 1024
OUT_CHUNK = 16 * 1024  # larger than the official 1024: clients must accept any size
_libc = ctypes.CDLL("libc.so.6", use_errno=True)


@dataclass
class GatewayFaults:
    delay: float = 0.0  # probability that a message is held back
    delay_ms: int = 50
    duplicate: float = 0.0
    drop: float = 0.0
    kill_after: float | None = None  # seconds after the session opens
    seed: int = 1


@dataclass
class SessionSpec:
    session_id: str
    token: str
    kind: str  # "command" | "port"
    task_pid: int  # the task's main process: the namespaces to enter
    namespace: str
    hosts_file: str
    command: str = ""
    host: str = ""
    port: int = 0
    target: str = ""  # ecs:<cluster>_<task-id>_<runtime-id>, as SSM names it
    created: float = field(default_factory=time.time)
    status: str = "Connected"


def _client_version(text: str) -> tuple:
    parts = []
    for piece in text.split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


class Gateway:
    """Runs the WebSocket server on its own event loop thread."""

    def __init__(self):
        self.sessions: dict[str, SessionSpec] = {}
        self.faults = GatewayFaults()
        self.lock = threading.Lock()
        self.loop = asyncio.new_event_loop()
        self.active: dict[str, "AgentSession"] = {}
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), name="gateway", daemon=True)
        self.thread.start()
        ready.wait()

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)

        async def main():
            self.server = await serve(self._handle, "127.0.0.1", 0, max_size=None, ping_interval=54, compression=None)
            self.port = self.server.sockets[0].getsockname()[1]
            ready.set()
            await self.server.serve_forever()

        try:
            self.loop.run_until_complete(main())
        except asyncio.CancelledError:
            pass

    def stream_url(self, region: str, session_id: str) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/data-channel/{session_id}?role=publish_subscribe&region={region}"

    def register(self, spec: SessionSpec) -> None:
        with self.lock:
            self.sessions[spec.session_id] = spec

    def terminate(self, session_id: str) -> bool:
        with self.lock:
            spec = self.sessions.get(session_id)
            if spec is None:
                return False
            spec.status = "Terminated"
            agent = self.active.get(session_id)
        if agent is not None:
            asyncio.run_coroutine_threadsafe(agent.shutdown("session terminated"), self.loop)
        return True

    def end_for_task(self, pid: int) -> None:
        """A stopping task takes its sessions with it, as on ECS."""
        with self.lock:
            ids = [s.session_id for s in self.sessions.values() if s.task_pid == pid and s.status == "Connected"]
        for session_id in ids:
            self.terminate(session_id)

    def stop(self) -> None:
        for session_id in list(self.sessions):
            self.terminate(session_id)
        self.loop.call_soon_threadsafe(self.server.close)
        self.thread.join(timeout=5)

    async def _handle(self, ws) -> None:
        session_id = ws.request.path.split("?")[0].rstrip("/").split("/")[-1]
        with self.lock:
            spec = self.sessions.get(session_id)
            faults = GatewayFaults(**vars(self.faults))
        if spec is None or spec.status != "Connected":
            await ws.close(4004, "unknown or ended session")
            return
        agent = AgentSession(ws, spec, faults)
        with self.lock:
            self.active[session_id] = agent
        try:
            await agent.run()
        finally:
            with self.lock:
                self.active.pop(session_id, None)
                spec.status = "Terminated"


class AgentSession:
    def __init__(self, ws, spec: SessionSpec, faults: GatewayFaults):
        self.ws = ws
        self.spec = spec
        self.faults = faults
        self.rng = random.Random(faults.seed)
        self.out_seq = 0
        self.unacked: dict[int, tuple[bytes, float]] = {}
        self.window = asyncio.Semaphore(256)
        self.in_expected = 0
        self.early: dict[int, f.Message] = {}
        self.inbox: asyncio.Queue = asyncio.Queue()
        self.closing = asyncio.Event()
        self.client_version = ""
        self.handshake_done = asyncio.Event()
        self.tasks: list[asyncio.Task] = []

    # ---- transport ------------------------------------------------------

    async def _send_raw(self, data: bytes, fresh: bool) -> None:
        if fresh and self.faults.drop and self.rng.random() < self.faults.drop:
            return  # lost in transit; retransmission recovers it
        if fresh and self.faults.delay and self.rng.random() < self.faults.delay:
            asyncio.get_running_loop().call_later(
                self.faults.delay_ms / 1000, lambda: asyncio.ensure_future(self._send_quietly(data))
            )
            return
        await self.ws.send(data)
        if fresh and self.faults.duplicate and self.rng.random() < self.faults.duplicate:
            await self.ws.send(data)

    async def _send_quietly(self, data: bytes) -> None:
        try:
            await self.ws.send(data)
        except ConnectionClosed:
            pass

    async def send_data(self, payload_type: int, payload: bytes) -> None:
        """One numbered output message; waits while the client's acks are outstanding."""
        await self.window.acquire()
        seq = self.out_seq
        self.out_seq += 1
        data = f.encode(f.data_message(seq, payload_type, payload))
        self.unacked[seq] = (data, time.monotonic())
        await self._send_raw(data, fresh=True)

    async def send_output(self, data: bytes) -> None:
        for start in range(0, len(data), OUT_CHUNK):
            await self.send_data(f.P_OUTPUT, data[start : start + OUT_CHUNK])

    async def _retransmit(self) -> None:
        while not self.closing.is_set():
            await asyncio.sleep(0.1)
            now = time.monotonic()
            for seq in sorted(self.unacked)[:32]:
                data, sent = self.unacked.get(seq, (None, now))
                if data is not None and now - sent > 0.2:
                    self.unacked[seq] = (data, now)
                    await self._send_raw(data, fresh=False)

    async def _reader(self) -> None:
        async for raw in self.ws:
            if isinstance(raw, str):
                continue
            try:
                msg = f.decode(raw)
            except f.FrameError:
                continue
            if msg.message_type == f.ACK:
                seq = json.loads(msg.payload).get("AcknowledgedMessageSequenceNumber")
                if self.unacked.pop(seq, None) is not None:
                    self.window.release()
            elif msg.message_type == f.INPUT:
                await self._send_raw(f.encode(f.ack_for(msg)), fresh=False)
                if msg.sequence < self.in_expected:
                    continue  # a duplicate: acknowledged again, not delivered again
                self.early[msg.sequence] = msg
                while self.in_expected in self.early:
                    await self.inbox.put(self.early.pop(self.in_expected))
                    self.in_expected += 1

    async def _kill_later(self) -> None:
        await asyncio.sleep(self.faults.kill_after)
        self.ws.transport.abort()

    async def shutdown(self, reason: str) -> None:
        self.closing.set()
        await self.inbox.put(None)
        try:
            await self.ws.close(1000, reason)
        except ConnectionClosed:
            pass

    async def _drain_then_close(self, output: str = "") -> None:
        deadline = time.monotonic() + 5
        while self.unacked and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        try:
            await self.ws.send(f.encode(f.channel_closed(self.spec.session_id, output)))
            await self.ws.close(1000, "session ended")
        except ConnectionClosed:
            pass

    # ---- session --------------------------------------------------------

    async def run(self) -> None:
        try:
            opening = json.loads(await asyncio.wait_for(self.ws.recv(), 10))
        except (asyncio.TimeoutError, ValueError, ConnectionClosed):
            await self.ws.close(4001, "expected the open-data-channel message")
            return
        if opening.get("TokenValue") != self.spec.token:
            await self.ws.close(4003, "invalid token")
            return
        self.client_version = str(opening.get("ClientVersion", ""))
        self.tasks = [asyncio.create_task(self._retransmit())]
        if self.faults.kill_after is not None:
            self.tasks.append(asyncio.create_task(self._kill_later()))
        worker = self._command() if self.spec.kind == "command" else self._port()
        reader = asyncio.create_task(self._reader())
        work = asyncio.create_task(worker)
        try:
            await asyncio.wait({reader, work}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.closing.set()
            await self.inbox.put(None)
            for task in (reader, work, *self.tasks):
                task.cancel()
            await asyncio.gather(reader, work, *self.tasks, return_exceptions=True)

    async def _inputs(self):
        while True:
            msg = await self.inbox.get()
            if msg is None:
                return
            yield msg

    # ---- shells and commands -------------------------------------------

    async def _command(self) -> None:
        argv = shlex.split(self.spec.command) or ["/bin/sh"]
        env = _task_environment(self.spec.task_pid)
        master, slave = pty.openpty()
        worker = [
            "nsenter", "-t", str(self.spec.task_pid), "-n", "-u", "-m", "--",
            "/bin/sh", "-c", '"$@"; exit $?', "ssm-session-worker", *argv,
        ]

        def become_session_leader():
            os.setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        proc = await asyncio.create_subprocess_exec(
            *worker, stdin=slave, stdout=slave, stderr=slave, env=env, cwd="/",
            preexec_fn=become_session_leader,
        )
        os.close(slave)
        # Never block the gateway's event loop on a read: readiness can be spurious.
        os.set_blocking(master, False)
        loop = asyncio.get_running_loop()
        output_done = loop.create_future()
        readable = asyncio.Event()
        loop.add_reader(master, readable.set)

        async def pump_output():
            while True:
                await readable.wait()
                readable.clear()
                try:
                    data = os.read(master, 65536)
                except BlockingIOError:
                    continue  # a wake-up with nothing to read
                except OSError:
                    data = b""  # EIO: every slave end is closed
                if not data:
                    loop.remove_reader(master)
                    output_done.set_result(None)
                    return
                # Waiting here (window full) stops reading the pty: backpressure.
                await self.send_output(data)

        async def pump_input():
            async for msg in self._inputs():
                if msg.payload_type == f.P_OUTPUT:
                    os.write(master, msg.payload)
                elif msg.payload_type == f.P_SIZE:
                    size = json.loads(msg.payload)
                    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", size["rows"], size["cols"], 0, 0))
                elif msg.payload_type == f.P_FLAG and msg.payload[-1:] == bytes([f.FLAG_TERMINATE_SESSION]):
                    _kill_group(proc.pid)
                    return

        outputs = asyncio.create_task(pump_output())
        inputs = asyncio.create_task(pump_input())
        try:
            await proc.wait()
            try:
                await asyncio.wait_for(output_done, 2)
            except asyncio.TimeoutError:
                pass
            await self._drain_then_close()
        finally:
            _kill_group(proc.pid)
            inputs.cancel()
            outputs.cancel()
            try:
                loop.remove_reader(master)
            except (ValueError, OSError):
                pass
            os.close(master)

    # ---- port forwarding -----------------------------------------------

    async def _port(self) -> None:
        request = {
            "AgentVersion": AGENT_VERSION,
            "RequestedClientActions": [{
                "ActionType": "SessionType",
                "ActionParameters": {
                    "SessionType": "Port",
                    "Properties": {
                        "portNumber": str(self.spec.port), "type": "LocalPortForwarding", "host": self.spec.host,
                    },
                },
            }],
        }
        await self.send_data(f.P_HANDSHAKE_REQUEST, json.dumps(request).encode())
        async for msg in self._inputs():
            if msg.payload_type == f.P_HANDSHAKE_RESPONSE:
                response = json.loads(msg.payload)
                self.client_version = response.get("ClientVersion", self.client_version)
                break
        else:
            return
        if _client_version(self.client_version) < MUX_MIN_CLIENT:
            await self._drain_then_close("the sandbox gateway supports multiplexed port sessions only")
            return
        await self.send_data(f.P_HANDSHAKE_COMPLETE, json.dumps(
            {"HandshakeTimeToComplete": 1_000_000, "CustomerMessage": ""}).encode())
        await Mux(self).serve()


class Mux:
    """The agent's end of smux v1: each client stream is a TCP connection dialled in the task."""

    def __init__(self, agent: AgentSession):
        self.agent = agent
        self.streams: dict[int, asyncio.StreamWriter | None] = {}
        self.buffer = b""
        self.send_lock = asyncio.Lock()
        self.early_data: dict[int, list[bytes]] = {}  # PSH that arrived while the dial was under way

    async def frame(self, cmd: int, sid: int, data: bytes = b"") -> None:
        async with self.send_lock:
            await self.agent.send_output(struct.pack("<BBHI", 1, cmd, len(data), sid) + data)

    async def serve(self) -> None:
        async for msg in self.agent._inputs():
            if msg.payload_type == f.P_FLAG and msg.payload[-1:] == bytes([f.FLAG_TERMINATE_SESSION]):
                break
            if msg.payload_type != f.P_OUTPUT:
                continue
            self.buffer += msg.payload
            while len(self.buffer) >= 8:
                _version, cmd, length, sid = struct.unpack("<BBHI", self.buffer[:8])
                if len(self.buffer) < 8 + length:
                    break
                data, self.buffer = self.buffer[8 : 8 + length], self.buffer[8 + length :]
                await self.on_frame(cmd, sid, data)
        for writer in self.streams.values():
            if writer is not None:
                writer.close()
        await self.agent._drain_then_close()

    async def on_frame(self, cmd: int, sid: int, data: bytes) -> None:
        if cmd == SMUX_SYN:
            self.streams[sid] = None
            asyncio.create_task(self.open(sid))
        elif cmd == SMUX_PSH:
            writer = self.streams.get(sid)
            if writer is not None:
                writer.write(data)
                await writer.drain()
            elif sid in self.streams:
                self.early_data.setdefault(sid, []).append(data)
        elif cmd == SMUX_FIN:
            writer = self.streams.get(sid)
            if writer is not None and writer.can_write_eof():
                writer.write_eof()

    async def open(self, sid: int) -> None:
        spec = self.agent.spec
        try:
            sock = await asyncio.get_running_loop().run_in_executor(
                None, dial_in_namespace, spec.namespace, spec.hosts_file, spec.host, spec.port
            )
            reader, writer = await asyncio.open_connection(sock=sock)
        except OSError:
            self.streams.pop(sid, None)
            await self.frame(SMUX_FIN, sid)
            return
        self.streams[sid] = writer
        for data in self.early_data.pop(sid, []):
            writer.write(data)
        try:
            while True:
                data = await reader.read(SMUX_MAX)
                if not data:
                    break
                await self.frame(SMUX_PSH, sid, data)
        except (ConnectionError, OSError):
            pass
        finally:
            await self.frame(SMUX_FIN, sid)
            writer.close()
            self.streams.pop(sid, None)


def dial_in_namespace(namespace: str, hosts_file: str, host: str, port: int) -> socket.socket:
    """Connects from inside the task's network namespace; only this thread switches."""
    address = _resolve(hosts_file, host)
    fd = os.open(f"/run/netns/{namespace}", os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns failed")
        sock = socket.create_connection((address, port), timeout=5)
    finally:
        os.close(fd)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setblocking(False)
    return sock


def _resolve(hosts_file: str, host: str) -> str:
    """Names resolve as inside the task: its /etc/hosts (which lists RDS endpoints)."""
    try:
        socket.inet_aton(host)
        return host
    except OSError:
        pass
    with open(hosts_file) as handle:
        for line in handle:
            parts = line.split()
            if len(parts) >= 2 and host in parts[1:]:
                return parts[0]
    raise OSError(f"cannot resolve {host} inside the task")


def _task_environment(pid: int) -> dict:
    try:
        raw = open(f"/proc/{pid}/environ", "rb").read()
    except OSError:
        raw = b""
    env = dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)
    env.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    env["TERM"] = env.get("TERM", "xterm-256color")
    return env


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def new_session_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(8)}"


def new_token() -> str:
    return secrets.token_urlsafe(48)
