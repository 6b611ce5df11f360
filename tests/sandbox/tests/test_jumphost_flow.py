"""The issue's headline check, step by step, as a client would do it."""

import contextlib
import ipaddress
import os
import re
import socket
import subprocess
import time

from conftest import ctl, namespaces, private_ip, ssh


@contextlib.contextmanager
def ssh_forward(key, known_hosts, host: str, target: str, port: int):
    """`ssh -L` from a free local port to TARGET:PORT through the jumphost; yields the local port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        local = probe.getsockname()[1]
    proc = subprocess.Popen(
        ["ssh", "-i", str(key), "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=yes",
         "-o", f"UserKnownHostsFile={known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null",
         "-o", "BatchMode=yes", "-o", "ExitOnForwardFailure=yes", "-N",
         "-L", f"127.0.0.1:{local}:{target}:{port}", f"jump@{host}"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, proc.stderr.read()
            try:
                socket.create_connection(("127.0.0.1", local), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the forward never listened"
                time.sleep(0.05)
        yield local
    finally:
        proc.terminate()
        proc.wait(10)


def test_ssh_session_and_database_through_a_task(aws, keypair, tmp_path):
    key, public = keypair
    aws.rds.create_db_instance(
        DBInstanceIdentifier="flowdb", Engine="postgres", DBInstanceClass="db.t3.micro",
        MasterUsername="app", MasterUserPassword="flow-secret", DBName="orders", AllocatedStorage=20,
        VpcSecurityGroupIds=[aws.database_group("flowdb")],
    )
    endpoint = aws.rds.describe_db_instances(DBInstanceIdentifier="flowdb")["DBInstances"][0]["Endpoint"]

    task = aws.run(env={"JUMP_AUTHORIZED_KEYS": public, "JUMP_OWNER": "arn:aws:sts::123456789012:user/alice"})
    assert task["lastStatus"] == "PROVISIONING"
    running, seen = aws.wait_for(task["taskArn"], "RUNNING")
    assert seen[:1] == ["PROVISIONING"] and "PENDING" in seen and seen[-1] == "RUNNING", seen

    line = aws.wait_log(task["taskArn"], "jump-host-key: ")
    key_type, key_b64 = line.split()[1:3]
    assert key_type == "ssh-ed25519"
    host = private_ip(running)
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"{host} {key_type} {key_b64}\n")

    out = ssh(key, known_hosts, host, "hostname; id -un; exit 3")
    assert out.returncode == 3, out.stderr
    assert out.stdout.split() == [f"ip-{host.replace('.', '-')}", "jump"]

    # The image carries no database client: the database is reached through a forward, as jump does.
    with ssh_forward(key, known_hosts, host, endpoint["Address"], endpoint["Port"]) as port:
        out = subprocess.run(
            ["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "app", "-d", "orders", "-Atc",
             "select current_database(), 6*7"],
            capture_output=True, text=True, timeout=30, env={**os.environ, "PGPASSWORD": "flow-secret"},
        )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "orders|42"

    # The audit trail: the owner is in the task's log.
    assert any("owner arn:aws:sts::123456789012:user/alice" in line for line in aws.log_lines(task["taskArn"]))

    ns = [n for n in namespaces() if n.endswith(task["taskArn"].split("/")[-1][:12])]
    assert len(ns) == 1
    aws.ecs.stop_task(cluster=aws.cluster, task=task["taskArn"], reason="test done")
    stopped, seen = aws.wait_for(task["taskArn"], "STOPPED")
    assert "DEACTIVATING" in seen and "STOPPING" in seen and "DEPROVISIONING" in seen, seen
    assert stopped["stopCode"] == "UserInitiated"
    assert stopped["stoppedReason"] == "test done"
    assert stopped["stoppedAt"] >= stopped["startedAt"]
    assert stopped["containers"][0]["exitCode"] == 143  # the entrypoint's answer to SIGTERM
    assert ns[0] not in namespaces()
    aws.rds.delete_db_instance(DBInstanceIdentifier="flowdb", SkipFinalSnapshot=True)


def test_wrong_host_key_is_refused(aws, keypair, tmp_path):
    key, public = keypair
    known_hosts = tmp_path / "known_hosts"
    task, host = aws.ssh_task(public, known_hosts)
    other = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    known_hosts.write_text(f"{host} {' '.join(other.with_suffix('.pub').read_text().split()[:2])}\n")
    out = ssh(key, known_hosts, host, "true")
    assert out.returncode == 255
    assert "Host key verification failed" in out.stderr
    aws.ecs.stop_task(cluster=aws.cluster, task=task["taskArn"])


def test_forged_host_key_in_the_log_fails_verification(sandbox, aws, keypair, tmp_path):
    key, public = keypair
    ctl(sandbox, "task-fault", "wrong-host-key")
    known_hosts = tmp_path / "known_hosts"
    task, host = aws.ssh_task(public, known_hosts)
    out = ssh(key, known_hosts, host, "true")
    assert out.returncode == 255
    assert "Host key verification failed" in out.stderr
    aws.ecs.stop_task(cluster=aws.cluster, task=task["taskArn"])


def test_password_and_unknown_keys_are_refused(aws, keypair, tmp_path):
    key, _ = keypair
    known_hosts = tmp_path / "known_hosts"
    stranger = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeFakeFakeFakeFakeFakeFakeFakeFakeFake x"
    task, host = aws.ssh_task(stranger, known_hosts)
    out = ssh(key, known_hosts, host, "true")
    assert out.returncode == 255
    assert "Permission denied (publickey)" in out.stderr
    aws.ecs.stop_task(cluster=aws.cluster, task=task["taskArn"])


def test_ttl_ends_the_task_by_itself(aws, keypair):
    _, public = keypair
    task = aws.run(env={"JUMP_AUTHORIZED_KEYS": public, "JUMP_TTL_SECONDS": "3", "JUMP_WATCH_INTERVAL": "1"})
    started = time.monotonic()
    stopped, _ = aws.wait_for(task["taskArn"], "STOPPED", timeout=30)
    assert time.monotonic() - started < 15
    assert stopped["stopCode"] == "EssentialContainerExited"
    assert stopped["containers"][0]["exitCode"] == 0
    assert any("time to live of 3s reached" in line for line in aws.log_lines(task["taskArn"]))


def test_idle_timeout_ends_an_unused_task(aws):
    task = aws.run(env={"JUMP_IDLE_SECONDS": "2", "JUMP_WATCH_INTERVAL": "1"})
    stopped, _ = aws.wait_for(task["taskArn"], "STOPPED", timeout=30)
    lines = aws.log_lines(task["taskArn"])
    assert any("no authorized keys given: ECS Exec only" in line for line in lines)
    assert any("no session for 2s" in line for line in lines)
    assert not any(line.startswith("jump-host-key:") for line in lines)


def test_an_open_ssh_session_keeps_an_idle_task_alive(aws, keypair, tmp_path):
    key, public = keypair
    known_hosts = tmp_path / "known_hosts"
    # Idle 4 s: long enough to connect even on a loaded machine; the session outlasts it.
    task, host = aws.ssh_task(public, known_hosts, env={"JUMP_IDLE_SECONDS": "4", "JUMP_WATCH_INTERVAL": "1"})
    out = ssh(key, known_hosts, host, "sleep 8; echo still-here")
    assert out.stdout.strip() == "still-here", out.stderr
    stopped, _ = aws.wait_for(task["taskArn"], "STOPPED", timeout=30)
    assert any("no session for 4s" in line for line in aws.log_lines(task["taskArn"]))


def test_command_exit_status_becomes_the_container_exit_code(aws):
    task = aws.run(command=["sh", "-c", "echo from-the-command; exit 4"])
    stopped, _ = aws.wait_for(task["taskArn"], "STOPPED")
    assert stopped["containers"][0]["exitCode"] == 4
    assert stopped["stopCode"] == "EssentialContainerExited"
    assert stopped["stoppedReason"] == "Essential container in task exited"
    assert "from-the-command" in aws.log_lines(task["taskArn"])


def test_environment_is_task_definition_merged_with_overrides(aws):
    aws.register(
        family="envcheck",
        environment=[{"name": "APP_ENV", "value": "production"}, {"name": "KEEP", "value": "kept"}],
        command=["sh", "-c", "echo APP_ENV=$APP_ENV KEEP=$KEEP REGION=$AWS_REGION"],
    )
    task = aws.run(family="envcheck", env={"APP_ENV": "staging"})
    aws.wait_for(task["taskArn"], "STOPPED")
    assert "APP_ENV=staging KEEP=kept REGION=us-east-1" in aws.log_lines(task["taskArn"])


def test_private_ip_in_subnet_public_ip_when_asked_and_eni_deleted(aws, keypair):
    _, public = keypair
    task = aws.run(env={"JUMP_AUTHORIZED_KEYS": public}, public=True)
    running, _ = aws.wait_for(task["taskArn"], "RUNNING")
    details = {d["name"]: d["value"] for d in running["attachments"][0]["details"]}
    subnet = aws.ec2.describe_subnets(SubnetIds=[details["subnetId"]])["Subnets"][0]
    assert ipaddress.ip_address(details["privateIPv4Address"]) in ipaddress.ip_network(subnet["CidrBlock"])
    eni = aws.ec2.describe_network_interfaces(NetworkInterfaceIds=[details["networkInterfaceId"]])["NetworkInterfaces"][0]
    public_ip = eni["Association"]["PublicIp"]
    assert ipaddress.ip_address(public_ip) in ipaddress.ip_network("198.18.0.0/15")
    aws.wait_log(task["taskArn"], "jump-host-key: ")
    # sshd answers on the public address too. It starts a moment after the host key is
    # logged, so a refusal (the host is there, sshd not yet) is tried again.
    deadline = time.monotonic() + 5
    while True:
        probe = subprocess.run(["bash", "-c", f"exec 3<>/dev/tcp/{public_ip}/22 && head -c 7 <&3"],
                               capture_output=True, text=True, timeout=10)
        if probe.stdout or "refused" not in probe.stderr or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert probe.stdout == "SSH-2.0", probe.stderr
    aws.ecs.stop_task(cluster=aws.cluster, task=task["taskArn"])
    aws.wait_for(task["taskArn"], "STOPPED")
    enis = aws.ec2.describe_network_interfaces(
        Filters=[{"Name": "network-interface-id", "Values": [details["networkInterfaceId"]]}]
    )["NetworkInterfaces"]
    assert enis == []


def test_task_carries_the_fields_clients_rely_on(aws):
    task = aws.run(
        enableExecuteCommand=True, startedBy="jump", propagateTags="TASK_DEFINITION",
        tags=[{"key": "jump:owner", "value": "alice"}],
    )
    running, _ = aws.wait_for(task["taskArn"], "RUNNING")
    task_id = running["taskArn"].split("/")[-1]
    assert re.fullmatch(r"[0-9a-f]{32}", task_id)
    assert running["taskArn"].endswith(f":task/{aws.cluster}/{task_id}")
    assert running["cpu"] == "256" and running["memory"] == "512"
    assert running["connectivity"] == "CONNECTED"
    assert running["enableExecuteCommand"] is True
    assert running["startedBy"] == "jump"
    assert running["createdAt"] <= running["startedAt"]
    assert {"key": "jump:owner", "value": "alice"} in running["tags"]
    assert {"key": "team", "value": "platform"} in running["tags"]
    container = running["containers"][0]
    assert container["lastStatus"] == "RUNNING"
    assert container["runtimeId"].startswith(task_id + "-")
    assert container["managedAgents"][0]["name"] == "ExecuteCommandAgent"
    assert container["managedAgents"][0]["lastStatus"] == "RUNNING"
    aws.ecs.stop_task(cluster=aws.cluster, task=task["taskArn"])
    stopped, _ = aws.wait_for(task["taskArn"], "STOPPED")
    assert stopped["containers"][0]["managedAgents"][0]["lastStatus"] == "STOPPED"


def test_without_exec_there_is_no_managed_agent(aws):
    task = aws.run()
    running, _ = aws.wait_for(task["taskArn"], "RUNNING")
    assert running["enableExecuteCommand"] is False
    assert "managedAgents" not in running["containers"][0]
    aws.ecs.stop_task(cluster=aws.cluster, task=task["taskArn"])
