"""The least a client can do for one SSH jumphost session, timed.

Registers the task definition once, then per run: RunTask, poll DescribeTasks
every 20 ms until RUNNING, poll the log stream for the host key, run
`ssh ... true` with it pinned, StopTask. This is the yardstick `jump up -- true`
is measured against in benches/overhead.sh: whatever jump takes beyond it is
jump's own overhead.
"""

import os
import subprocess
import sys
import tempfile
import time

import boto3

env = os.environ
session = boto3.session.Session(region_name=env["AWS_REGION"])
ecs = session.client("ecs")
logs = session.client("logs")
cluster = env["JUMP_CLUSTER"]
ecs.register_task_definition(
    family="bench-baseline", requiresCompatibilities=["FARGATE"], networkMode="awsvpc", cpu="256", memory="512",
    containerDefinitions=[{
        "name": "jumphost", "image": "jump/jumphost:latest", "essential": True,
        "logConfiguration": {"logDriver": "awslogs", "options": {
            "awslogs-group": "/jump/bench", "awslogs-region": env["AWS_REGION"],
            "awslogs-stream-prefix": "jump", "awslogs-create-group": "true"}},
    }],
)


def one_session(workdir: str) -> float:
    key = os.path.join(workdir, "key")
    if os.path.exists(key):
        os.remove(key)
        os.remove(key + ".pub")
    started = time.monotonic()
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
    public = open(key + ".pub").read().strip()
    task = ecs.run_task(
        cluster=cluster, taskDefinition="bench-baseline", launchType="FARGATE",
        networkConfiguration={"awsvpcConfiguration": {
            "subnets": env["JUMP_SUBNETS"].split(","), "securityGroups": env["JUMP_SECURITY_GROUPS"].split(",")}},
        overrides={"containerOverrides": [{"name": "jumphost", "environment": [
            {"name": "JUMP_AUTHORIZED_KEYS", "value": public}]}]},
    )["tasks"][0]
    arn = task["taskArn"]
    while True:
        task = ecs.describe_tasks(cluster=cluster, tasks=[arn])["tasks"][0]
        if task["lastStatus"] == "RUNNING":
            break
        time.sleep(0.02)
    ip = task["containers"][0]["networkInterfaces"][0]["privateIpv4Address"]
    stream = f"jump/jumphost/{arn.split('/')[-1]}"
    line = None
    while line is None:
        try:
            events = logs.get_log_events(logGroupName="/jump/bench", logStreamName=stream)["events"]
        except logs.exceptions.ResourceNotFoundException:
            events = []
        line = next((e["message"] for e in events if e["message"].startswith("jump-host-key: ")), None)
        if line is None:
            time.sleep(0.02)
    known = os.path.join(workdir, "known_hosts")
    with open(known, "w") as handle:
        handle.write(f"{ip} {' '.join(line.split()[1:3])}\n")
    while subprocess.run(
        ["ssh", "-i", key, "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=yes",
         "-o", f"UserKnownHostsFile={known}", "-o", "BatchMode=yes", f"jump@{ip}", "true"],
        stdin=subprocess.DEVNULL, capture_output=True,
    ).returncode == 255:
        time.sleep(0.02)
    ecs.stop_task(cluster=cluster, task=arn)
    return time.monotonic() - started


with tempfile.TemporaryDirectory() as workdir:
    print(f"{one_session(workdir):.3f}")
    sys.stdout.flush()
