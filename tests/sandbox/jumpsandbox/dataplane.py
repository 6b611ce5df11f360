"""Processes that make sandbox hosts real.

A task's container becomes a process tree inside the task's namespace: a real
container for jump's jumphost image once it is built (containers.py), else a
process from the host's filesystem with its own UTS namespace (so ``hostname``
answers like a Fargate task) and the namespace's /etc/hosts. Its stdout and stderr are read line by line and
written to the task's CloudWatch Logs stream in moto, the way the awslogs
driver would, so that clients read them through the ordinary Logs API.
"""

import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

from moto.core import DEFAULT_ACCOUNT_ID
from moto.logs.models import logs_backends

from .network import kill_namespace_processes

REPO_ROOT = Path(__file__).resolve().parents[3]
ENTRYPOINT = REPO_ROOT / "dockerfiles" / "jumphost" / "entrypoint.sh"
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

_logs_lock = threading.Lock()


class LogSink:
    """One awslogs stream: ``<prefix>/<container>/<task-id>`` in a log group."""

    def __init__(self, region: str, group: str, stream: str, create_group: bool):
        self.backend = logs_backends[DEFAULT_ACCOUNT_ID][region]
        self.group = group
        self.stream = stream
        with _logs_lock:
            if group not in self.backend.groups:
                if not create_group:
                    raise LookupError(group)
                self.backend.create_log_group(group, {})
            if stream not in self.backend.groups[group].streams:
                self.backend.create_log_stream(group, stream)

    def write(self, line: str, timestamp: float | None = None) -> None:
        """One event; TIMESTAMP (seconds) is what a PutLogEvents caller may claim, else now."""
        event = {"timestamp": int((time.time() if timestamp is None else timestamp) * 1000), "message": line}
        with _logs_lock:
            self.backend.put_log_events(self.group, self.stream, [event])


class ForgedHostKey:
    """A log stream with a host-key line someone other than the host wrote.

    What a co-worker allowed logs:PutLogEvents on the stream can do, for tests of the
    client's pinning: `wrong-host-key` replaces the host's line with a key the host does
    not have (an SSH connection must then fail verification), `extra-host-key` adds that
    line after the host's, and `backdated-host-key` logs the host's own line with a
    timestamp from before the task existed.
    """

    KINDS = ("wrong-host-key", "extra-host-key", "backdated-host-key")

    def __init__(self, sink, scratch: Path, kind: str, created_at: float):
        self.sink = sink
        self.kind = kind
        self.created_at = created_at
        key = scratch / "forged_host_key"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(key)], check=True)
        self.line = "jump-host-key: " + " ".join(key.with_suffix(".pub").read_text().split()[:2])

    def write(self, line: str) -> None:
        if not line.startswith("jump-host-key: "):
            self.sink.write(line)
        elif self.kind == "wrong-host-key":
            self.sink.write(self.line)
        elif self.kind == "extra-host-key":
            self.sink.write(line)
            self.sink.write(self.line)
        else:
            self.sink.write(line, timestamp=self.created_at - 3600)


class MainProcess:
    """The main process of a host: started in its namespace, watched, ended.

    Its output is pumped line by line to the log sink. A container's output is held back
    until the container has started, because until then what arrives on podman's stderr
    is podman's own report of a container that could not start, which ECS never writes
    to the task's log stream.
    """

    def __init__(self, ns: str, launcher: list[str], env: dict, sink, transcript: Path, hold: bool = False):
        self.ns = ns
        self.sink = sink
        self._lock = threading.Lock()
        self._held: list[tuple[int, str]] | None = [] if hold else None
        self.proc = subprocess.Popen(
            launcher,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self.pid = self.proc.pid  # the process exec sessions enter; a container's once it has started
        self._pumps = [
            threading.Thread(target=self._pump, args=(fd, stream, transcript), daemon=True)
            for fd, stream in ((1, self.proc.stdout), (2, self.proc.stderr))
        ]
        for pump in self._pumps:
            pump.start()

    @classmethod
    def on_host(cls, ns: str, hostname: str, argv: list[str], env: dict, sink, transcript: Path):
        """ARGV run from the sandbox host's filesystem, with a UTS namespace of its own."""
        # The sandbox's own tools by absolute path: ENV's PATH is the task's, for ARGV alone.
        ip, unshare, sh, set_hostname = (_tool(name) for name in ("ip", "unshare", "sh", "hostname"))
        wrapper = [unshare, "--uts", "--", sh, "-c", f'{set_hostname} "$0" && exec "$@"', hostname]
        return cls(ns, [ip, "netns", "exec", ns, *wrapper, *argv], env, sink, transcript)

    def _pump(self, fd: int, stream, transcript: Path) -> None:
        with open(transcript, "ab") as copy:
            for raw in iter(stream.readline, b""):
                copy.write(raw)
                copy.flush()
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                with self._lock:
                    if self._held is not None:
                        self._held.append((fd, line))
                    elif self.sink is not None:
                        self.sink.write(line)

    def wait_started(self, pidfile: Path, timeout: float = 60) -> str:
        """Waits until the container runs (then its output flows) or podman gives up.

        Returns "" once started, else what podman wrote to stderr.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.pid = int(pidfile.read_text())
            except (OSError, ValueError):
                if self.proc.poll() is None:
                    time.sleep(0.01)
                    continue
                for pump in self._pumps:
                    pump.join(timeout=2)
                with self._lock:
                    stderr = "\n".join(line for fd, line in self._held or [] if fd == 2)
                if self.proc.returncode in (125, 126, 127) and "\nError: " in f"\n{stderr}":
                    return stderr
            self._release()
            return ""
        return f"Error: the container did not start within {timeout:.0f}s"

    def _release(self) -> None:
        with self._lock:
            held, self._held = self._held or [], None
            for _, line in held:
                if self.sink is not None:
                    self.sink.write(line)

    def poll(self) -> int | None:
        return self.proc.poll()

    def wait(self, timeout: float | None = None) -> int:
        code = self.proc.wait(timeout)
        for pump in self._pumps:
            pump.join(timeout=2)
        return docker_exit_code(code)

    def terminate(self, grace: float) -> int:
        """SIGTERM, then SIGKILL to everything in the namespace after the grace period.

        podman passes the SIGTERM on to the container's process 1, as Docker does.
        """
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        try:
            return self.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            kill_namespace_processes(self.ns)
            return self.wait()


def docker_exit_code(code: int) -> int:
    """Popen reports death by signal N as -N; Docker (and so ECS) reports 128+N."""
    return 128 - code if code < 0 else code


def task_environment(region: str, container_env: dict, on_host: bool) -> dict:
    """What ECS puts in a container's environment; on the host also what an image would."""
    env = {"PATH": BASE_PATH, "HOME": "/root"} if on_host else {}
    env.update({
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_EXECUTION_ENV": "AWS_ECS_FARGATE",
    })
    env.update(container_env)
    return env


def _tool(name: str) -> str:
    """Where the sandbox host keeps a tool it runs a task with."""
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"the sandbox host has no {name}")
    return path
