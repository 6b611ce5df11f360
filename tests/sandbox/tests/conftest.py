"""Shared fixtures: one sandbox for the session, boto3 clients, task helpers."""

import datetime
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import boto3
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jumpsandbox.containers import BUILD_SCRIPT, TEST_TAG  # noqa: E402
from jumpsandbox.containers import podman_env as podman_environment  # noqa: E402
from jumpsandbox.harness import Sandbox  # noqa: E402

ECS_TASKS_TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}


@pytest.fixture(scope="session")
def podman_env():
    if shutil.which("podman") is None or shutil.which("runc") is None:
        pytest.fail("podman and runc are missing: run tests/sandbox/setup")
    return podman_environment()


@pytest.fixture(scope="session")
def jumphost_image(podman_env):
    """Jump's jumphost image as the build script makes it where no registry is reachable."""
    out = subprocess.run([str(BUILD_SCRIPT), "--offline", "--tag", TEST_TAG], capture_output=True, text=True,
                         env=podman_env, timeout=900)
    assert out.returncode == 0, out.stderr
    return out


@pytest.fixture(scope="session")
def sandbox(jumphost_image):
    """One sandbox for the session; its jumphost tasks run the real image."""
    box = Sandbox(step=0.1, jumphost_image=TEST_TAG)
    yield box
    assert box.stop() == 0, box.output()


class Aws:
    def __init__(self, env: dict):
        self.env = env
        session = boto3.session.Session(
            aws_access_key_id="test", aws_secret_access_key="test", region_name=env["AWS_REGION"]
        )
        self._session = session
        for name in ("ecs", "ec2", "logs", "iam", "rds", "sts", "ssm"):
            setattr(self, name, self.client(name))
        self.cluster = env["JUMP_CLUSTER"]
        self.subnets = env["JUMP_SUBNETS"].split(",")
        self.groups = env["JUMP_SECURITY_GROUPS"].split(",")

    def client(self, service: str):
        """A boto3 client of SERVICE that talks to the sandbox."""
        return self._session.client(service, endpoint_url=self.env["AWS_ENDPOINT_URL"])

    def timing(self) -> dict:
        """The sandbox's lifecycle delays (POST /_sandbox/timing with no change answers them)."""
        request = urllib.request.Request(f"{self.env['AWS_ENDPOINT_URL']}/_sandbox/timing", data=b"{}", method="POST")
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def role(self, name: str, trust: dict = ECS_TASKS_TRUST) -> str:
        """A role ECS can assume: created if missing, then waited for as IAM propagates it."""
        try:
            role = self.iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]
        except self.iam.exceptions.EntityAlreadyExistsException:
            role = self.iam.get_role(RoleName=name)["Role"]
        ready = role["CreateDate"] + datetime.timedelta(seconds=self.timing()["iam_propagation"])
        remaining = (ready - datetime.datetime.now(datetime.timezone.utc)).total_seconds()
        if remaining > 0:
            time.sleep(remaining + 0.05)  # a known deadline: nothing to poll for
        return role["Arn"]

    def database_group(self, name: str, port: int = 5432) -> str:
        """A database's security group, as a team makes one: PORT open to the jumphosts' group only."""
        vpc = self.ec2.describe_security_groups(GroupIds=self.groups[:1])["SecurityGroups"][0]["VpcId"]
        group = self.ec2.create_security_group(GroupName=name, Description=f"{name} database", VpcId=vpc)["GroupId"]
        self.ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=[{
            "IpProtocol": "tcp", "FromPort": port, "ToPort": port, "UserIdGroupPairs": [{"GroupId": self.groups[0]}],
        }])
        return group

    def register(self, family="jumphost", volumes=(), **container) -> str:
        """A Fargate task definition with the account's task role, which ECS Exec needs."""
        definition = {
            "name": "jumphost",
            "image": "jump/jumphost:latest",
            "essential": True,
            "logConfiguration": {
                "logDriver": "awslogs",
                "options": {
                    "awslogs-group": "/jump/tests",
                    "awslogs-region": self.env["AWS_REGION"],
                    "awslogs-stream-prefix": "jump",
                    "awslogs-create-group": "true",
                },
            },
        }
        definition.update(container)
        out = self.ecs.register_task_definition(
            family=family, requiresCompatibilities=["FARGATE"], networkMode="awsvpc",
            cpu="256", memory="512", containerDefinitions=[definition],
            executionRoleArn=self.env["JUMP_EXECUTION_ROLE"],  # awslogs on Fargate needs one
            taskRoleArn=self.env["JUMP_TASK_ROLE"],
            volumes=[{"name": name} for name in volumes],
            tags=[{"key": "team", "value": "platform"}],
        )
        return out["taskDefinition"]["taskDefinitionArn"]

    def run(self, env=None, command=None, public=False, family="jumphost", **extra) -> dict:
        override = {"name": "jumphost", "environment": [{"name": k, "value": v} for k, v in (env or {}).items()]}
        if command is not None:
            override["command"] = command
        params = dict(
            cluster=self.cluster, taskDefinition=family, launchType="FARGATE",
            networkConfiguration={"awsvpcConfiguration": {
                "subnets": self.subnets, "securityGroups": self.groups,
                "assignPublicIp": "ENABLED" if public else "DISABLED",
            }},
            overrides={"containerOverrides": [override]},
        )
        params.update(extra)
        return self.ecs.run_task(**params)["tasks"][0]

    def describe(self, arn: str) -> dict:
        return self.ecs.describe_tasks(cluster=self.cluster, tasks=[arn], include=["TAGS"])["tasks"][0]

    def wait_for(self, arn: str, status: str, timeout: float = 30) -> tuple[dict, list]:
        seen = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            task = self.describe(arn)
            if not seen or seen[-1] != task["lastStatus"]:
                seen.append(task["lastStatus"])
            if task["lastStatus"] == status:
                return task, seen
            time.sleep(0.02)
        raise AssertionError(f"task never reached {status}; saw {seen}")

    def ssh_task(self, authorized_keys: str, known_hosts: Path, env=None, **run) -> tuple[dict, str]:
        """Runs a jumphost with these keys, waits for it and pins its logged host key."""
        task = self.run(env={"JUMP_AUTHORIZED_KEYS": authorized_keys, **(env or {})}, **run)
        running, _ = self.wait_for(task["taskArn"], "RUNNING")
        line = self.wait_log(task["taskArn"], "jump-host-key: ")
        host = private_ip(running)
        known_hosts.write_text(f"{host} {' '.join(line.split()[1:3])}\n")
        return running, host

    def log_lines(self, arn: str, group="/jump/tests", container="jumphost") -> list[str]:
        stream = f"jump/{container}/{arn.split('/')[-1]}"
        try:
            events = self.logs.get_log_events(logGroupName=group, logStreamName=stream)["events"]
        except self.logs.exceptions.ResourceNotFoundException:
            return []
        return [e["message"] for e in events]

    def wait_log(self, arn: str, prefix: str, timeout: float = 15) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.log_lines(arn):
                if line.startswith(prefix):
                    return line
            time.sleep(0.05)
        raise AssertionError(f"no log line starting {prefix!r}: {self.log_lines(arn)}")


@pytest.fixture(scope="session")
def aws(sandbox):
    client = Aws(sandbox.env)
    client.register()
    return client


@pytest.fixture
def keypair(tmp_path):
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return key, (tmp_path / "id_ed25519.pub").read_text().strip()


def private_ip(task: dict) -> str:
    details = {d["name"]: d["value"] for d in task["attachments"][0]["details"]}
    return details["privateIPv4Address"]


def ssh(key: Path, known_hosts: Path, host: str, command: str, timeout=30) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["ssh", "-i", str(key), "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=yes",
         "-o", f"UserKnownHostsFile={known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null",
         "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", f"jump@{host}", command],
        capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
    )


def ctl(sandbox, *args) -> str:
    """Runs tests/sandbox/ctl against this sandbox."""
    out = subprocess.run([str(Path(__file__).resolve().parents[1] / "ctl"), *args], capture_output=True, text=True,
                         env={**os.environ, **sandbox.env})
    assert out.returncode == 0, out.stderr
    return out.stdout


def namespaces() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]
