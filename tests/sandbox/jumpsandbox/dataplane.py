"""Processes that make sandbox hosts real.

A task's container becomes a process tree inside the task's namespace, with
its own UTS namespace (so ``hostname`` answers like a Fargate task) and the
namespace's /etc/hosts. Its stdout and stderr are read line by line and
written to the task's CloudWatch Logs stream in moto, the way the awslogs
driver would, so that clients read them through the ordinary Logs API.
"""

import os
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

    def write(self, line: str) -> None:
        event = {"timestamp": int(time.time() * 1000), "message": line}
        with _logs_lock:
            self.backend.put_log_events(self.group, self.stream, [event])


class ForgedHostKey:
    """A log stream that announces a host key the host does not have.

    Lets tests show that a client pins the logged key for real: an SSH
    connection to the genuine host must then fail verification.
    """

    def __init__(self, sink, scratch: Path):
        self.sink = sink
        key = scratch / "forged_host_key"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(key)], check=True)
        self.line = "jump-host-key: " + " ".join(key.with_suffix(".pub").read_text().split()[:2])

    def write(self, line: str) -> None:
        self.sink.write(self.line if line.startswith("jump-host-key: ") else line)


class HostProcess:
    """The main process of a host: started in its namespace, watched, ended."""

    def __init__(self, ns: str, hostname: str, argv: list[str], env: dict, sink, transcript: Path):
        self.ns = ns
        wrapper = ["unshare", "--uts", "--", "sh", "-c", 'hostname "$0" && exec "$@"', hostname]
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, *wrapper, *argv],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self._pumps = [
            threading.Thread(target=self._pump, args=(stream, sink, transcript), daemon=True)
            for stream in (self.proc.stdout, self.proc.stderr)
        ]
        for pump in self._pumps:
            pump.start()

    @staticmethod
    def _pump(stream, sink, transcript: Path) -> None:
        with open(transcript, "ab") as copy:
            for raw in iter(stream.readline, b""):
                copy.write(raw)
                copy.flush()
                if sink is not None:
                    sink.write(raw.decode("utf-8", "replace").rstrip("\r\n"))

    def poll(self) -> int | None:
        return self.proc.poll()

    def wait(self, timeout: float | None = None) -> int:
        code = self.proc.wait(timeout)
        for pump in self._pumps:
            pump.join(timeout=2)
        return docker_exit_code(code)

    def terminate(self, grace: float) -> int:
        """SIGTERM, then SIGKILL to everything in the namespace after the grace period."""
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


def task_environment(region: str, container_env: dict) -> dict:
    env = {
        "PATH": BASE_PATH,
        "HOME": "/root",
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_EXECUTION_ENV": "AWS_ECS_FARGATE",
    }
    env.update(container_env)
    return env

