"""Jump's jumphost image run as a real container.

Why: the image (`dockerfiles/jumphost`) is what every ssh-mode user builds and
pushes, and its user, paths, packages, sshd configuration and entrypoint wiring
only prove anything when they run. So once the image is built, a sandbox task
whose image is jump's jumphost runs that image, as Fargate would: its
ENTRYPOINT and CMD (with the task definition's overrides), its filesystem, its
user, in the task's network namespace and in mount, UTS, IPC and PID
namespaces of its own, with Docker's default capabilities.

How: podman, through runc. This kind of machine mounts cgroups in hybrid mode,
which crun refuses, and podman's default rlimits exceed what root may set here,
hence the containers.conf below (``../shared/containers.md``). The container
joins the task's namespace with ``--network ns:``, sees the namespace's
/etc/hosts (rewritten in place as RDS endpoints appear), and carries a label
naming its sandbox instance so that a stopped or crashed sandbox leaves none
behind.

What Fargate does that this copies beyond that:
- ``readonlyRootFilesystem`` makes the root read-only with no tmpfs anywhere
  (podman would add some on /run and /tmp; Docker and Fargate add none).
- Task-definition volumes without a host path are empty, root-owned 0755
  directories that live as long as the task (ECS "bind mounts").
- A command that cannot be executed stops the task with
  CannotStartContainerError, in the wording ECS relays from runc.
"""

import functools
import json
import os
import shutil
import subprocess
from pathlib import Path

from .dataplane import MainProcess
from .network import STATE_ROOT

BUILD_SCRIPT = Path(__file__).resolve().parents[3] / "dockerfiles" / "jumphost" / "build"
TEST_TAG = "jumphost:sandbox"  # what the test suites build and start their sandboxes with
LABEL = "jump-sandbox"
CONTAINERS_CONF = """\
[containers]
default_ulimits = []
[engine]
cgroup_manager = "cgroupfs"
"""
BUILD_HINT = "dockerfiles/jumphost/build --offline --tag {tag}"


class ImageUnavailable(RuntimeError):
    """The configured jumphost image cannot be run here; the message says what to do."""


class CannotStart(RuntimeError):
    """runc could not start the container; the message is the task's stoppedReason."""


@functools.cache
def _containers_conf() -> Path:
    conf = STATE_ROOT / "containers.conf"
    if not conf.exists() or conf.read_text() != CONTAINERS_CONF:
        STATE_ROOT.mkdir(parents=True, exist_ok=True)
        tmp = conf.with_suffix(f".{os.getpid()}")
        tmp.write_text(CONTAINERS_CONF)
        tmp.rename(conf)
    return conf


def podman_env() -> dict:
    """The environment every podman call of the sandbox runs with."""
    return {**os.environ, "CONTAINERS_CONF": str(_containers_conf())}


def _podman(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(["podman", "--runtime", "runc", *args], capture_output=True, text=True,
                          env=podman_env(), timeout=timeout)


def remove_orphans() -> list[str]:
    """Removes containers of sandbox instances that no longer exist (run after network.clean_stale)."""
    if shutil.which("podman") is None:
        return []
    listed = _podman("ps", "--all", "--filter", f"label={LABEL}", "--format", f'{{{{.ID}}}} {{{{index .Labels "{LABEL}"}}}}')
    orphans = [line.split()[0] for line in listed.stdout.splitlines()
               if len(line.split()) == 2 and not (STATE_ROOT / line.split()[1]).exists()]
    if orphans:
        _podman("rm", "--force", "--time", "0", *orphans)
    return [f"container {i}" for i in orphans]


class Podman:
    """Runs one image (jump's jumphost, as built locally) for the tasks that name it."""

    def __init__(self, tag: str, instance: str):
        for tool in ("podman", "runc"):
            if shutil.which(tool) is None:
                raise ImageUnavailable(f"{tool} is not installed (tests/sandbox/setup installs it)")
        out = _podman("image", "inspect", "--format", "json", tag)
        if out.returncode != 0:
            raise ImageUnavailable(f"the jumphost image {tag} is not built: run {BUILD_HINT.format(tag=tag)}")
        config = (json.loads(out.stdout)[0].get("Config") or {})
        self.tag = tag
        self.instance = instance
        self.entrypoint = tuple(config.get("Entrypoint") or ())
        self.cmd = tuple(config.get("Cmd") or ())

    def name_for(self, task_id: str) -> str:
        return f"jsb-{self.instance}-{task_id[:12]}"

    def start(self, name: str, namespace: str, hostname: str, argv: list[str], env: dict, sink, runtime: Path,
              read_only: bool, mounts: list[tuple[str, str, bool]]) -> MainProcess:
        """Runs ARGV as a task's container and returns once it runs; CannotStart if runc refused.

        MOUNTS are (volume, containerPath, readOnly): each volume is an empty root-owned 0755
        directory under RUNTIME, for the task's life.
        """
        volumes = []
        for volume, path, ro in mounts:
            directory = runtime / "volumes" / volume
            directory.mkdir(parents=True, exist_ok=True)
            directory.chmod(0o755)
            volumes.append((directory, path, ro))
        pidfile = runtime / "container.pid"
        launcher, launcher_env = self._run_argv(name, namespace, hostname, argv, env, pidfile, read_only, volumes)
        host = MainProcess(namespace, launcher, launcher_env, sink, runtime / "output.log", hold=True)
        podman_error = host.wait_started(pidfile)
        if podman_error:
            host.terminate(0)
            raise CannotStart(start_failure(podman_error)
                              or f"CannotStartContainerError: {podman_error.splitlines()[-1]}")
        return host

    def _run_argv(self, name: str, namespace: str, hostname: str, argv: list[str], env: dict, pidfile: Path,
                  read_only: bool, mounts: list[tuple[Path, str, bool]]) -> tuple[list[str], dict]:
        """The podman command (and its environment) that runs ARGV as the task's container.

        Values travel in podman's own environment (``--env NAME``), never on its command
        line: authorized keys span lines, and a command line is world-readable in /proc.
        """
        args = [
            "podman", "--runtime", "runc", "run", "--rm", "--name", name,
            "--label", f"{LABEL}={self.instance}",
            "--network", f"ns:/run/netns/{namespace}", "--hostname", hostname,
            "--volume", f"/etc/netns/{namespace}/hosts:/etc/hosts:ro",
            "--pidfile", str(pidfile),
        ]
        if read_only:
            args += ["--read-only", "--read-only-tmpfs=false"]
        for source, target, ro in mounts:
            args += ["--volume", f"{source}:{target}:{'ro' if ro else 'rw'}"]
        for key in env:
            args += ["--env", key]
        args += ["--entrypoint", json.dumps(argv[:1]), self.tag, *argv[1:]]
        return args, {**podman_env(), **env}

    def remove(self, name: str) -> None:
        """Removes the container if podman did not (it was killed before it could)."""
        _podman("rm", "--force", "--ignore", "--time", "0", name)


def start_failure(podman_stderr: str) -> str | None:
    """ECS's reason for a container runc could not start, from podman's report; None if it started.

    podman says `Error: runc: runc create failed: unable to start container process: exec:
    "x": executable file not found in $PATH: OCI runtime attempted to invoke a command that
    was not found`; ECS relays containerd's wording of the same runc error.
    """
    for line in podman_stderr.splitlines():
        marker = "runc create failed: "
        if line.startswith("Error: ") and marker in line:
            detail = line.split(marker, 1)[1].rsplit(": OCI ", 1)[0]
            return cannot_start(f"runc create failed: {detail}")
    return None


def cannot_start(detail: str) -> str:
    return (
        "CannotStartContainerError: Error response from daemon: failed to create task for container: failed to "
        f"create shim task: OCI runtime create failed: {detail}: unknown"
    )
