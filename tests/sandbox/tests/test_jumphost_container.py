"""Jumphost tasks run jump's real image as a container (jumpsandbox/containers.py).

On a user's first ssh-mode run ECS runs the image they built, not this repository's script,
so the sandbox does too. These tests show that what a task runs is the image (its files, its
process tree, its user), that the container settings of a task definition reach the container
as Fargate applies them, and that a container runc cannot start stops the task the way ECS
reports it, with nothing left behind.
"""

import subprocess

import botocore.exceptions
import pytest
from conftest import ssh
from jumpsandbox.containers import LABEL, podman_env
from test_gateway import Client, execute

REPO_MARKER = "dockerfiles/jumphost/entrypoint.sh"  # on the sandbox host, never in the image
AGENT_PATHS = ("/managed-agents", "/var/lib/amazon/ssm", "/var/log/amazon/ssm")


def stop(aws, task):
    aws.ecs.stop_task(cluster=aws.cluster, task=task["taskArn"])
    return aws.wait_for(task["taskArn"], "STOPPED")[0]


def test_an_ssh_session_lands_in_the_image_not_on_the_sandbox_host(aws, keypair, tmp_path):
    key, public = keypair
    task, host = aws.ssh_task(public, tmp_path / "known_hosts")
    out = ssh(key, tmp_path / "known_hosts", host,
              f"cat /etc/debian_version; ps -o args= -p 1; id -un; ls /work/main/{REPO_MARKER} 2>&1 || true")
    assert out.returncode == 0, out.stderr
    release, init, user, marker = out.stdout.splitlines()
    assert release.startswith("12."), out.stdout  # the image's bookworm base
    assert init == "/bin/sh /usr/local/bin/jump-entrypoint", out.stdout  # its ENTRYPOINT is process 1
    assert user == "jump"
    assert "No such file or directory" in marker, "the session sees the sandbox host's files"
    stop(aws, task)


def test_an_exec_session_runs_inside_the_container_with_its_environment(aws):
    task = aws.run(env={"GREETING": "from-the-task-definition"}, enableExecuteCommand=True)
    running, _ = aws.wait_for(task["taskArn"], "RUNNING")
    session = execute(aws, running, "sh -c 'cat /etc/debian_version; echo $GREETING $AWS_EXECUTION_ENV; tty; "
                                    "ps -o args= -p 1'")
    out = Client(session["streamUrl"], session["tokenValue"]).drain().decode().replace("\r", "").splitlines()
    assert out[0].startswith("12."), out
    assert out[1] == "from-the-task-definition AWS_ECS_FARGATE", out
    assert out[2].startswith("/dev/pts/"), out  # a terminal of the container's own devpts
    assert out[3] == "/bin/sh /usr/local/bin/jump-entrypoint", out
    stop(aws, running)


def test_a_read_only_root_is_read_only_and_a_volume_gives_the_entrypoint_its_runtime_dir(aws, keypair, tmp_path):
    key, public = keypair
    aws.register(family="jumphost-ro", volumes=["jump-run"], readonlyRootFilesystem=True,
                 mountPoints=[{"sourceVolume": "jump-run", "containerPath": "/run/jump"}])
    task, host = aws.ssh_task(public, tmp_path / "known_hosts", family="jumphost-ro")
    out = ssh(key, tmp_path / "known_hosts", host,
              "touch /home/jump/x 2>&1; touch /tmp/x 2>&1; ls -ld /run/jump | cut -d' ' -f1,3")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[:2] == ["touch: cannot touch '/home/jump/x': Read-only file system",
                         "touch: cannot touch '/tmp/x': Read-only file system"], out.stdout  # no tmpfs added
    assert lines[2] == "drwxr-xr-x root", out.stdout  # an ECS bind-mount volume: root-owned 0755
    stop(aws, task)


def test_without_the_volume_a_read_only_jumphost_stops_and_says_why(aws, keypair):
    _, public = keypair
    aws.register(family="jumphost-ro-bare", readonlyRootFilesystem=True)
    task = aws.run(env={"JUMP_AUTHORIZED_KEYS": public}, family="jumphost-ro-bare")
    stopped, _ = aws.wait_for(task["taskArn"], "STOPPED")
    assert stopped["stopCode"] == "EssentialContainerExited"
    assert stopped["containers"][0]["exitCode"] != 0
    assert any("Read-only file system" in line for line in aws.log_lines(task["taskArn"]))


@pytest.mark.parametrize("agent_volumes", [False, True], ids=["bare", "agent-paths-writable"])
def test_the_exec_agent_needs_a_writable_root_or_its_own_volumes(aws, agent_volumes):
    """The managed agent crashes on a read-only root unless its three paths are writable
    volumes (containers-roadmap#1359)."""
    names = [f"agent{i}" for i in range(len(AGENT_PATHS))] if agent_volumes else []
    family = f"jumphost-ro-exec-{len(names)}"
    aws.register(family=family, volumes=["jump-run", *names], readonlyRootFilesystem=True,
                 mountPoints=[{"sourceVolume": "jump-run", "containerPath": "/run/jump"}]
                 + [{"sourceVolume": n, "containerPath": p} for n, p in zip(names, AGENT_PATHS)])
    task = aws.run(family=family, enableExecuteCommand=True)
    running, _ = aws.wait_for(task["taskArn"], "RUNNING")
    agent = running["containers"][0]["managedAgents"][0]
    if agent_volumes:
        assert agent["lastStatus"] == "RUNNING"
        session = execute(aws, running, "echo reached")
        assert b"reached" in Client(session["streamUrl"], session["tokenValue"]).drain()
    else:
        assert agent["lastStatus"] == "STOPPED"
        with pytest.raises(botocore.exceptions.ClientError) as refused:
            aws.ecs.execute_command(cluster=aws.cluster, task=running["taskArn"], command="true", interactive=True)
        assert refused.value.response["Error"]["Code"] == "InvalidParameterException"
    stop(aws, running)


def test_a_command_the_image_lacks_stops_the_task_as_ecs_reports_it(aws):
    # /usr/bin/python3 is on the sandbox host (it runs the sandbox), not in the image.
    aws.register(family="jumphost-python", entryPoint=["/usr/bin/python3", "-c", "print(1)"])
    task = aws.run(family="jumphost-python")
    stopped, seen = aws.wait_for(task["taskArn"], "STOPPED")
    assert "RUNNING" not in seen, seen
    reason = ("CannotStartContainerError: Error response from daemon: failed to create task for container: failed "
              "to create shim task: OCI runtime create failed: runc create failed: unable to start container process: "
              'exec: "/usr/bin/python3": stat /usr/bin/python3: no such file or directory: unknown')
    assert (stopped["stopCode"], stopped["stoppedReason"]) == ("TaskFailedToStart", reason)
    assert stopped["containers"][0]["reason"] == reason
    assert aws.log_lines(task["taskArn"]) == []  # podman's own report is not the container's output


def test_no_container_outlives_its_task(aws, sandbox):
    task = aws.run()
    aws.wait_for(task["taskArn"], "RUNNING")
    stop(aws, task)
    instance = sandbox.env["JUMP_SANDBOX_INSTANCE"]
    listed = subprocess.run(["podman", "ps", "--all", "--format", "{{.Names}}", "--filter", f"label={LABEL}={instance}"],
                            capture_output=True, text=True, env=podman_env(), check=True).stdout
    assert task["taskArn"].split("/")[-1][:12] not in listed, listed
