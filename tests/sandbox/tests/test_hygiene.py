"""Starting, stopping and killing sandboxes leaves nothing behind.

These tests start sandboxes of their own (besides the session one), so they
look only at objects carrying their own instance id.
"""

import os
import signal
import subprocess
import time
from pathlib import Path

from conftest import Aws, namespaces
from jumpsandbox.containers import LABEL, TEST_TAG, podman_env
from jumpsandbox.harness import Sandbox

SANDBOX = Path(__file__).resolve().parents[1]


def objects_of(instance: str) -> list[str]:
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    found = [n for n in namespaces() if n.startswith(f"jsb-{instance}-")]
    found += [line.split(":")[1].strip() for line in links.splitlines() if f"jsb{instance}" in line]
    if Path("/run/jump-sandbox", instance).exists():
        found.append(f"/run/jump-sandbox/{instance}")
    containers = subprocess.run(["podman", "ps", "--all", "--format", "{{.Names}}", "--filter",
                                 f"label={LABEL}={instance}"], capture_output=True, text=True, env=podman_env())
    found += [f"container {name}" for name in containers.stdout.split()]
    return found


def processes_under(path: str) -> list[str]:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if path in line and "ps -eo" not in line]


def busy_sandbox() -> tuple[Sandbox, Aws, str]:
    """A sandbox with a database and a jumphost task (a real container) running."""
    box = Sandbox(step=0.05, jumphost_image=TEST_TAG)
    aws = Aws(box.env)
    aws.register()
    aws.rds.create_db_instance(
        DBInstanceIdentifier="hygienedb", Engine="postgres", DBInstanceClass="db.t3.micro",
        MasterUsername="u", MasterUserPassword="p-secret", AllocatedStorage=20,
        VpcSecurityGroupIds=[aws.database_group("hygienedb")],
    )
    arn = aws.run(env={"JUMP_AUTHORIZED_KEYS": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeFakeFakeFakeFakeFakeFakeFakeFakeFake x"})["taskArn"]
    aws.wait_for(arn, "RUNNING")
    instance = box.env["JUMP_SANDBOX_INSTANCE"]
    assert len([n for n in namespaces() if n.startswith(f"jsb-{instance}-")]) == 2
    assert any(o.startswith("container ") for o in objects_of(instance))
    return box, aws, instance


def test_stop_removes_everything(jumphost_image):
    box, _, instance = busy_sandbox()
    assert box.stop() == 0
    assert objects_of(instance) == []
    assert processes_under(f"/run/jump-sandbox/{instance}") == []
    assert not os.path.exists(box.env_file)


def test_after_sigkill_the_next_start_cleans_up(jumphost_image):
    box, _, instance = busy_sandbox()
    box.proc.send_signal(signal.SIGKILL)
    box.proc.wait()
    assert objects_of(instance) != []
    follower = Sandbox(step=0.05)
    try:
        assert objects_of(instance) == []
        assert processes_under(f"/run/jump-sandbox/{instance}") == []
        assert f"cleaned leftover netns jsb-{instance}-" in follower.output()
    finally:
        assert follower.stop() == 0


def test_clean_command_removes_leftovers_but_not_live_sandboxes(jumphost_image):
    live = Sandbox(step=0.05)
    box, _, instance = busy_sandbox()
    box.proc.send_signal(signal.SIGKILL)
    box.proc.wait()
    try:
        out = subprocess.run([str(SANDBOX / "clean")], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        assert objects_of(instance) == []
        live_instance = live.env["JUMP_SANDBOX_INSTANCE"]
        assert f"jsb{live_instance}" in " ".join(objects_of(live_instance))
    finally:
        assert live.stop() == 0


def test_a_jumphost_image_that_is_not_built_stops_the_start_with_what_to_run():
    out = subprocess.run([str(SANDBOX / "start"), "--jumphost-image", "jumphost:never-built"],
                         capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert out.returncode != 0
    assert ("--jumphost-image: the jumphost image jumphost:never-built is not built: run "
            "dockerfiles/jumphost/build --offline --tag jumphost:never-built") in out.stderr, out.stderr


def test_sigint_stops_like_sigterm():
    box = Sandbox(step=0.05)
    instance = box.env["JUMP_SANDBOX_INSTANCE"]
    box.proc.send_signal(signal.SIGINT)
    assert box.proc.wait(30) == 0
    assert objects_of(instance) == []


def test_refuses_to_run_without_root():
    out = subprocess.run(
        ["runuser", "-u", "nobody", "--", str(SANDBOX / "start")],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode != 0
    assert "must run as root" in out.stderr


def test_start_prints_a_sourceable_environment(tmp_path):
    box = Sandbox(step=0.05)
    try:
        script = f"set -a; . {box.env_file}; set +a; env"
        env = subprocess.run(["sh", "-c", script], capture_output=True, text=True, env={"PATH": os.environ["PATH"]}).stdout
        for key in ("AWS_ENDPOINT_URL", "AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                    "JUMP_CLUSTER", "JUMP_SUBNETS", "JUMP_SECURITY_GROUPS"):
            assert f"{key}=" in env
        started = time.monotonic()
        assert box.stop() == 0
        assert time.monotonic() - started < 20
    finally:
        box.stop()


def test_stop_on_eof_ends_with_its_parent(tmp_path):
    env_file = tmp_path / "sandbox.env"
    proc = subprocess.Popen(
        [str(SANDBOX / "start"), "--env-file", str(env_file), "--step", "0.05", "--stop-on-eof"],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not env_file.exists():
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    instance = dict(line.split("=", 1) for line in env_file.read_text().splitlines())["JUMP_SANDBOX_INSTANCE"]
    assert objects_of(instance) != []
    proc.stdin.close()
    assert proc.wait(30) == 0
    assert objects_of(instance) == []
