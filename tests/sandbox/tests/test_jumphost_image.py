"""The jumphost image itself, built and run as a container.

Why: `dockerfiles/jumphost` is what every ssh-mode user builds and pushes. The sandbox runs
it for every jumphost task, but through ECS's interface; here its own promises are checked
directly: one host-key line, key-only logins, no sshd without keys, its TTL and idle rules.
The image is built once per session (conftest.py) with `dockerfiles/jumphost/build --offline`
(a local debootstrap of the FROM line's Debian release stands in for its pinned base: no image
registry is ever contacted)
and run with podman through runc, configured as the sandbox runs it (jumpsandbox/containers.py).
Containers run in network namespaces each test makes, holding only loopback, and are reached
with `ip netns exec NAME ssh ... 127.0.0.1`.
"""

import itertools
import os
import re
import select
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from jumpsandbox.containers import BUILD_SCRIPT as BUILD
from jumpsandbox.containers import TEST_TAG as TAG

HOST_KEY_LINE = re.compile(r"^jump-host-key: ssh-ed25519 [A-Za-z0-9+/]+=*$")
SSHD_UP = "Server listening on 0.0.0.0 port 22."
_names = itertools.count()


def unique(kind: str) -> str:
    return f"jumpimg-{os.getpid()}-{kind}-{next(_names)}"


class Container:
    def __init__(self, env: dict, name: str, netns: str | None):
        self.env, self.name, self.netns = env, name, netns

    def podman(self, *args, timeout=30) -> subprocess.CompletedProcess:
        return subprocess.run(["podman", "--runtime", "runc", *args], capture_output=True, text=True,
                              env=self.env, timeout=timeout)

    def logs(self) -> tuple[str, str]:
        """(stdout, stderr) so far: the entrypoint writes to stdout, sshd -e to stderr."""
        out = self.podman("logs", self.name)
        return out.stdout, out.stderr

    def wait_log(self, text: str, timeout=20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in stream for stream in self.logs()):
                return
            time.sleep(0.1)
        raise AssertionError(f"no {text!r} within {timeout}s: {self.logs()}")

    def wait_exit(self, timeout: float) -> int:
        try:
            out = self.podman("wait", self.name, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running after {timeout}s: {self.logs()}") from None
        assert out.returncode == 0, out.stderr
        return int(out.stdout.strip())

    def running(self) -> bool:
        return self.podman("inspect", "--format", "{{.State.Running}}", self.name).stdout.strip() == "true"

    def host_key_lines(self) -> list[str]:
        return [line for line in self.logs()[0].splitlines() if line.startswith("jump-host-key:")]

    def listening(self) -> list[str]:
        """Listening TCP sockets in the container's network namespace."""
        out = subprocess.run(["ip", "netns", "exec", self.netns, "ss", "-Hltn"], capture_output=True, text=True,
                             check=True)
        return [line.split()[3] for line in out.stdout.splitlines()]

    def ssh_argv(self, key: Path, known_hosts: Path, user: str, command: str, *options: str) -> list[str]:
        return ["ip", "netns", "exec", self.netns, "ssh", "-F", "/dev/null", "-i", str(key),
                "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=yes",
                "-o", f"UserKnownHostsFile={known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null",
                "-o", "HostKeyAlgorithms=ssh-ed25519", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5",
                *options, f"{user}@127.0.0.1", command]

    def ssh(self, *args, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(self.ssh_argv(*args, **kwargs), capture_output=True, text=True, timeout=30,
                              stdin=subprocess.DEVNULL)

    def session(self, key: Path, known_hosts: Path) -> subprocess.Popen:
        """An open ssh session as `jump` (a `cat` fed by our stdin), once it is in."""
        proc = subprocess.Popen(self.ssh_argv(key, known_hosts, "jump", "echo in; exec cat"), stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        ready, _, _ = select.select([proc.stdout], [], [], 20)
        if not ready or proc.stdout.readline() != "in\n":
            proc.kill()
            raise AssertionError(f"no session: {proc.communicate()}")
        return proc


@pytest.fixture
def start(jumphost_image, podman_env):
    """Starts containers of the image, each in a fresh loopback-only network namespace (or
    none), and removes every container and namespace afterwards, pass or fail."""
    containers, netns_made = [], []

    def run(env: dict, *podman_args: str, network=True) -> Container:
        netns = None
        if network:
            netns = unique("ns")
            subprocess.run(["ip", "netns", "add", netns], check=True)
            netns_made.append(netns)
            subprocess.run(["ip", "-n", netns, "link", "set", "lo", "up"], check=True)
        container = Container(podman_env, unique("ctr"), netns)
        containers.append(container)
        environment = [arg for name, value in env.items() for arg in ("-e", f"{name}={value}")]
        out = container.podman("run", "-d", "--name", container.name,
                               "--network", f"ns:/run/netns/{netns}" if netns else "none",
                               *environment, *podman_args, TAG)
        assert out.returncode == 0, out.stderr
        return container

    yield run
    for container in containers:
        container.podman("rm", "--force", "--time", "0", container.name)
    for netns in netns_made:
        subprocess.run(["ip", "netns", "delete", netns], check=False)


def pin(known_hosts: Path, line: str) -> Path:
    """A known_hosts file trusting exactly the key of a `jump-host-key:` line."""
    known_hosts.write_text("127.0.0.1 " + line.removeprefix("jump-host-key: ") + "\n")
    return known_hosts


def test_a_key_gets_one_fresh_host_key_and_a_login_as_jump(start, keypair, tmp_path):
    key, public = keypair
    host = start({"JUMP_AUTHORIZED_KEYS": public, "JUMP_TTL_SECONDS": "120"})
    host.wait_log(SSHD_UP)
    lines = host.host_key_lines()
    assert len(lines) == 1 and HOST_KEY_LINE.match(lines[0]), host.logs()
    assert host.listening() == ["0.0.0.0:22"]

    out = host.ssh(key, pin(tmp_path / "known_hosts", lines[0]), "jump",
                   "id -un; echo $HOME; ls /etc/ssh/ssh_host_* 2>/dev/null | wc -l")
    assert out.returncode == 0, out.stderr
    # Logged in as the image's user, and the image itself carries no host key every task would share.
    assert out.stdout.split() == ["jump", "/home/jump", "0"]

    stranger = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    wrong = pin(tmp_path / "wrong", " ".join(stranger.with_suffix(".pub").read_text().split()[:2]))
    out = host.ssh(key, wrong, "jump", "true")
    assert out.returncode == 255 and "Host key verification failed." in out.stderr, out.stderr

    another = start({"JUMP_AUTHORIZED_KEYS": public, "JUMP_TTL_SECONDS": "120"}, network=False)
    another.wait_log("jump-host-key: ")
    assert another.host_key_lines() != lines, "two containers of the image share a host key"


def test_password_and_root_logins_are_refused(start, keypair, tmp_path):
    key, public = keypair
    host = start({"JUMP_AUTHORIZED_KEYS": public, "JUMP_TTL_SECONDS": "120"})
    host.wait_log(SSHD_UP)
    known_hosts = pin(tmp_path / "known_hosts", host.host_key_lines()[0])

    # The server offers public keys and nothing else: no password, no keyboard-interactive.
    out = host.ssh(key, known_hosts, "jump", "true", "-o", "PubkeyAuthentication=no")
    assert out.returncode == 255 and "Permission denied (publickey)." in out.stderr, out.stderr

    # root shares the authorized_keys file, so only sshd's policy stands between it and a shell.
    out = host.ssh(key, known_hosts, "root", "true")
    assert out.returncode == 255 and "Permission denied (publickey)." in out.stderr, out.stderr
    host.wait_log("User root from 127.0.0.1 not allowed because not listed in AllowUsers")
    assert host.ssh(key, known_hosts, "jump", "true").returncode == 0


def test_a_session_key_may_forward_local_ports_and_nothing_else(start, keypair, tmp_path):
    """What a session needs (a shell, `ssh -L`/`-W` into the VPC) and nothing a key could
    be abused for on a host other people's sessions also reach: no remote forwards (a
    listener inside the VPC), no agent forwarding, no tunnels."""
    key, public = keypair
    host = start({"JUMP_AUTHORIZED_KEYS": public, "JUMP_TTL_SECONDS": "120"})
    host.wait_log(SSHD_UP)
    known_hosts = pin(tmp_path / "known_hosts", host.host_key_lines()[0])

    # -W is a direct-tcpip channel, what -L opens per connection: sshd's own banner comes back.
    out = subprocess.run(host.ssh_argv(key, known_hosts, "jump", "", "-W", "127.0.0.1:22")[:-1],
                         input="", capture_output=True, text=True, timeout=30)
    assert out.stdout.startswith("SSH-2.0-OpenSSH"), (out.stdout, out.stderr)

    out = host.ssh(key, known_hosts, "jump", "true", "-o", "ExitOnForwardFailure=yes",
                   "-R", "127.0.0.1:2222:127.0.0.1:22")
    assert out.returncode == 255 and "remote port forwarding failed" in out.stderr, out.stderr

    agent = subprocess.run(["ssh-agent", "-a", str(tmp_path / "agent.sock"), "-s"], capture_output=True, text=True,
                           check=True)
    pid = int(re.search(r"SSH_AGENT_PID=(\d+)", agent.stdout).group(1))
    try:
        argv = host.ssh_argv(key, known_hosts, "jump", 'echo "agent=${SSH_AUTH_SOCK:-none}"', "-A")
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
                             env={**os.environ, "SSH_AUTH_SOCK": str(tmp_path / "agent.sock")})
        assert out.returncode == 0 and out.stdout.strip() == "agent=none", (out.stdout, out.stderr)
    finally:
        os.kill(pid, 15)


def test_it_stops_itself_at_its_ttl_even_with_a_session_open(start, keypair, tmp_path):
    key, public = keypair
    started = time.monotonic()
    host = start({"JUMP_AUTHORIZED_KEYS": public, "JUMP_TTL_SECONDS": "4", "JUMP_IDLE_SECONDS": "0",
                  "JUMP_WATCH_INTERVAL": "1"})
    host.wait_log(SSHD_UP)
    session = host.session(key, pin(tmp_path / "known_hosts", host.host_key_lines()[0]))
    try:
        assert host.wait_exit(timeout=20) == 0
        assert time.monotonic() - started >= 4 - 1  # the entrypoint's clock is `date +%s`, whole seconds
        assert session.wait(timeout=10) == 255  # the connection went with the container
    finally:
        session.kill()
        session.communicate()
    out, _ = host.logs()
    assert "jump: time to live of 4s reached" in out and out.rstrip().endswith("jump: stopped (exit 0)"), out


def test_it_stops_itself_when_nobody_connects(start, keypair):
    _, public = keypair
    host = start({"JUMP_AUTHORIZED_KEYS": public, "JUMP_TTL_SECONDS": "120", "JUMP_IDLE_SECONDS": "2",
                  "JUMP_WATCH_INTERVAL": "1"})
    assert host.wait_exit(timeout=20) == 0
    out, _ = host.logs()
    assert "jump: no session for 2s" in out and "time to live" not in out, out


def test_an_open_session_holds_off_the_idle_timeout_until_it_ends(start, keypair, tmp_path):
    key, public = keypair
    host = start({"JUMP_AUTHORIZED_KEYS": public, "JUMP_TTL_SECONDS": "120", "JUMP_IDLE_SECONDS": "3",
                  "JUMP_WATCH_INTERVAL": "1"})
    host.wait_log(SSHD_UP)
    session = host.session(key, pin(tmp_path / "known_hosts", host.host_key_lines()[0]))
    try:
        # Twice the idle timeout plus a check interval with the session open: it must stay up.
        until = time.monotonic() + 7
        while time.monotonic() < until:
            assert host.running(), host.logs()
            time.sleep(0.2)
    finally:
        session.stdin.close()
        session.wait(timeout=10)
    assert host.wait_exit(timeout=20) == 0
    assert "jump: no session for 3s" in host.logs()[0]


def test_without_authorized_keys_no_sshd_runs(start):
    host = start({"JUMP_TTL_SECONDS": "120"})
    host.wait_log("jump: no authorized keys given: ECS Exec only")
    assert host.host_key_lines() == []
    assert host.listening() == []
    assert host.podman("exec", host.name, "pgrep", "-x", "sshd").returncode == 1
    assert host.running()


def test_a_pool_jumphost_runs_sshd_that_lets_nobody_in_until_a_key_is_authorized(start, keypair, tmp_path):
    """A warm pool's ssh-mode jumphost waits with sshd up and no key; a claim installs its
    session's key with jump-authorize (through ECS Exec, as root) and reads the host key
    from its answer. Whoever authorizes last is the only one let in."""
    key, public = keypair
    host = start({"JUMP_SSHD": "1", "JUMP_TTL_SECONDS": "120"})
    host.wait_log(SSHD_UP)
    [logged] = host.host_key_lines()
    known_hosts = pin(tmp_path / "known_hosts", logged)
    out = host.ssh(key, known_hosts, "jump", "true")
    assert out.returncode == 255 and "Permission denied (publickey)." in out.stderr, out.stderr

    claimed = host.podman("exec", host.name, "jump-authorize", public)
    assert claimed.returncode == 0, claimed.stderr
    assert claimed.stdout.splitlines() == [logged], "the claim reads the host key sshd serves"
    out = host.ssh(key, known_hosts, "jump", "id -un")
    assert (out.returncode, out.stdout) == (0, "jump\n"), out.stderr

    other = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    again = host.podman("exec", host.name, "jump-authorize", other.with_suffix(".pub").read_text().strip())
    assert again.returncode == 0, again.stderr
    out = host.ssh(key, known_hosts, "jump", "true")
    assert out.returncode == 255 and "Permission denied (publickey)." in out.stderr, out.stderr
    assert host.ssh(other, known_hosts, "jump", "true").returncode == 0
    assert host.host_key_lines() == [logged], "authorizing prints to its caller, not the log"


def test_jump_sshd_takes_0_or_1(start):
    host = start({"JUMP_SSHD": "yes", "JUMP_TTL_SECONDS": "120"})
    assert host.wait_exit(20) == 78
    assert "JUMP_SSHD must be 0 or 1, got 'yes'" in host.logs()[1]


def test_a_read_only_root_filesystem_needs_a_writable_runtime_dir(start, keypair, tmp_path):
    """ECS `readonlyRootFilesystem: true` makes the whole root read-only and, unlike
    `podman --read-only`, adds no tmpfs anywhere (Fargate refuses `linuxParameters.tmpfs`).
    The entrypoint writes its host key, authorized_keys and sshd_config under /run/jump, so
    it needs a writable volume there: on Fargate a task-definition bind mount, `volumes:
    [{"name": "jump-run"}]` with `mountPoints: [{"sourceVolume": "jump-run", "containerPath":
    "/run/jump"}]` (an empty root-owned 0755 directory on the task's ephemeral storage)."""
    key, public = keypair
    env = {"JUMP_AUTHORIZED_KEYS": public, "JUMP_TTL_SECONDS": "120"}
    bare = start(env, "--read-only", "--read-only-tmpfs=false", network=False)
    assert bare.wait_exit(timeout=20) != 0
    _, err = bare.logs()
    assert "'/run/jump': Read-only file system" in err, bare.logs()
    assert bare.host_key_lines() == []

    host = start(env, "--read-only", "--read-only-tmpfs=false", "--mount", "type=tmpfs,destination=/run/jump")
    host.wait_log(SSHD_UP)
    out = host.ssh(key, pin(tmp_path / "known_hosts", host.host_key_lines()[0]), "jump", "id -un")
    assert out.returncode == 0 and out.stdout == "jump\n", out.stderr


def test_the_build_is_small_and_a_rebuild_with_nothing_changed_reuses_everything(jumphost_image, podman_env):
    size = int(subprocess.run(["podman", "image", "inspect", "--format", "{{.Size}}", TAG], capture_output=True,
                              text=True, env=podman_env, check=True).stdout)
    # Pulled on every cold start, and Fargate start time grows with image size.
    assert size < 120_000_000, f"the jumphost image grew to {size} bytes"
    first = re.search(r"^image \S+ id (\w+) size (\d+) bytes", jumphost_image.stdout, re.M)
    assert first and int(first.group(2)) == size, jumphost_image.stdout

    again = subprocess.run([str(BUILD), "--offline", "--tag", TAG], capture_output=True, text=True,
                           env=podman_env, timeout=300)
    assert again.returncode == 0, again.stderr
    assert f"id {first.group(1)} " in again.stdout, (jumphost_image.stdout, again.stdout)
    assert "bootstrapping" not in again.stderr and "made locally" not in again.stderr, again.stderr


def test_the_build_script_says_what_to_install_without_podman(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "dirname").symlink_to(shutil.which("dirname"))
    out = subprocess.run(["/bin/bash", str(BUILD)], capture_output=True, text=True,
                         env={"PATH": str(bin_dir)}, timeout=30)
    assert out.returncode == 1
    assert "error: podman is not installed" in out.stderr and "apt-get install podman runc" in out.stderr, out.stderr
    assert "docker build -t jumphost:latest" in out.stderr, out.stderr

    out = subprocess.run([str(BUILD), "--tga", "x"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 1 and "unknown argument '--tga'" in out.stderr and "Usage:" in out.stderr
