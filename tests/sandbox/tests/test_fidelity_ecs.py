"""ECS refuses what the sandbox used to let through: a client that works here works on AWS.

Each story shows the sandbox refusing (or failing a task) where ECS does, and
accepting the valid form next to it.
"""

import json
import os
import subprocess
import time
import uuid

import botocore.exceptions
import pytest
from conftest import ECS_TASKS_TRUST, ctl
from jumpsandbox.images import Catalogue, parse, pull_error

CAPACITY = "Capacity is unavailable at this time. Please try again later or in a different availability zone"


def error_of(call, **kwargs) -> dict:
    with pytest.raises(botocore.exceptions.ClientError) as info:
        call(**kwargs)
    return info.value.response["Error"]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def network(aws, **vpc) -> dict:
    return {"awsvpcConfiguration": {"subnets": aws.subnets, "securityGroups": aws.groups} | vpc}


def run(aws, family, **extra) -> dict:
    return aws.ecs.run_task(cluster=aws.cluster, taskDefinition=family, launchType="FARGATE",
                            networkConfiguration=network(aws), **extra)


def stopped_before_running(aws, arn) -> dict:
    task, seen = aws.wait_for(arn, "STOPPED")
    assert "RUNNING" not in seen, seen
    assert task["stopCode"] == "TaskFailedToStart"
    return task


# ---- ListTasks ----------------------------------------------------------


@pytest.mark.parametrize("other", [
    {"family": "jumphost"}, {"desiredStatus": "RUNNING"}, {"desiredStatus": "STOPPED"},
    {"serviceName": "web"}, {"containerInstance": "0" * 32}, {"launchType": "FARGATE"},
])
def test_started_by_is_the_only_filter_list_tasks_takes(aws, other):
    err = error_of(aws.ecs.list_tasks, cluster=aws.cluster, startedBy="jump", **other)
    assert err == {"Code": "InvalidParameterException", "Message": "cannot specify startedBy with other arguments"}


def test_started_by_alone_lists_running_tasks_and_pages(aws):
    mine = unique("lister")
    kept, stopped = (aws.run(startedBy=mine)["taskArn"] for _ in range(2))
    aws.ecs.stop_task(cluster=aws.cluster, task=stopped)
    first = aws.ecs.list_tasks(cluster=aws.cluster, startedBy=mine, maxResults=1)
    assert first["taskArns"] == [kept]  # the stopped one is not RUNNING, the default status
    assert "nextToken" not in first
    aws.ecs.stop_task(cluster=aws.cluster, task=kept)


def test_launch_type_and_container_instance_filters_fit_fargate(aws):
    arn = aws.run()["taskArn"]
    assert arn in aws.ecs.list_tasks(cluster=aws.cluster, launchType="FARGATE")["taskArns"]
    assert aws.ecs.list_tasks(cluster=aws.cluster, launchType="EC2")["taskArns"] == []
    assert aws.ecs.list_tasks(cluster=aws.cluster, containerInstance="0" * 32)["taskArns"] == []
    aws.ecs.stop_task(cluster=aws.cluster, task=arn)


# ---- RegisterTaskDefinition ----------------------------------------------

AWSLOGS = {"logDriver": "awslogs", "options": {"awslogs-group": "/jump/tests", "awslogs-region": "us-east-1",
                                               "awslogs-stream-prefix": "jump"}}


def task_definition(**change) -> dict:
    containers = change.pop("containers", [{"name": "app", "image": "jump/jumphost:latest"}])
    return {"family": unique("fidelity"), "requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc",
            "cpu": "256", "memory": "512", "containerDefinitions": containers} | change


@pytest.mark.parametrize("change, message", [
    ({"containers": [{"name": "app", "image": "jump/jumphost:latest", "logConfiguration": AWSLOGS}]},
     "Fargate requires task definition to have execution role ARN to support log driver awslogs."),
    ({"networkMode": "bridge"}, "Fargate only supports network mode \u2018awsvpc\u2019."),
    ({"cpu": None}, "Fargate requires that 'cpu' be defined at the task level."),
    ({"memory": None}, "Fargate requires that 'memory' be defined at the task level."),
    ({"cpu": "256", "memory": "4096"}, "No Fargate configuration exists for given values: 256 CPU, 4096 memory. "
     "See the Amazon ECS documentation for the valid values."),
    ({"cpu": "8192", "memory": "18432"}, "No Fargate configuration exists for given values: 8192 CPU, 18432 memory. "
     "See the Amazon ECS documentation for the valid values."),
    ({"cpu": "a lot"}, "Invalid 'cpu' setting for task."),
    ({"containers": [{"name": "app", "image": "jump/jumphost:latest", "essential": False}]},
     "A task definition must have at least one essential container."),
    ({"containers": [{"name": "app", "image": ""}]}, "Container.image should not be null or empty."),
    ({"containers": []}, "Container list cannot be empty."),
    ({"containers": [{"name": "app", "image": "jump/jumphost:latest",
                      "portMappings": [{"containerPort": 22, "hostPort": 2222}]}]},
     "When networkMode=awsvpc, the host ports and container ports in port mappings must match."),
])
def test_fargate_refuses_these_task_definitions(aws, change, message):
    definition = {k: v for k, v in task_definition(**change).items() if v is not None}
    err = error_of(aws.ecs.register_task_definition, **definition)
    assert err == {"Code": "ClientException", "Message": message}
    families = aws.ecs.list_task_definition_families(familyPrefix=definition["family"])["families"]
    assert families == []


@pytest.mark.parametrize("cpu, memory, stored", [
    ("256", "512", ("256", "512")),
    ("1 vCPU", "2 GB", ("1024", "2048")),
    ("8192", "16384", ("8192", "16384")),
    ("16 vCPU", "120 GB", ("16384", "122880")),
])
def test_valid_fargate_sizes_register_in_cpu_units_and_mib(aws, cpu, memory, stored):
    registered = aws.ecs.register_task_definition(**task_definition(cpu=cpu, memory=memory))["taskDefinition"]
    assert (registered["cpu"], registered["memory"]) == stored


def test_with_awsvpc_ecs_stores_each_host_port_as_its_container_port(aws):
    containers = [{"name": "app", "image": "jump/jumphost:latest",
                   "portMappings": [{"containerPort": 22, "protocol": "tcp"}, {"containerPort": 80, "hostPort": 80}]}]
    family = aws.ecs.register_task_definition(**task_definition(containers=containers))["taskDefinition"]["family"]
    described = aws.ecs.describe_task_definition(taskDefinition=family)["taskDefinition"]
    assert described["containerDefinitions"][0]["portMappings"] == [
        {"containerPort": 22, "hostPort": 22, "protocol": "tcp"}, {"containerPort": 80, "hostPort": 80}]


def test_awslogs_registers_with_an_execution_role(aws):
    role = aws.env["JUMP_EXECUTION_ROLE"]  # the sandbox's account has it, long propagated
    containers = [{"name": "app", "image": "jump/jumphost:latest", "logConfiguration": AWSLOGS}]
    registered = aws.ecs.register_task_definition(**task_definition(containers=containers, executionRoleArn=role))
    assert registered["taskDefinition"]["executionRoleArn"] == role


# ---- RunTask network configuration ---------------------------------------


def test_at_most_16_subnets_and_5_security_groups(aws):
    vpc = aws.ec2.create_vpc(CidrBlock="10.197.0.0/16")["Vpc"]["VpcId"]
    subnets = [aws.ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.197.{i}.0/24")["Subnet"]["SubnetId"] for i in range(17)]
    groups = [aws.ec2.create_security_group(GroupName=unique("sg"), Description="limit", VpcId=vpc)["GroupId"]
              for _ in range(6)]
    base = dict(cluster=aws.cluster, taskDefinition="jumphost", launchType="FARGATE")

    def config(subnet_count, group_count):
        return {"awsvpcConfiguration": {"subnets": subnets[:subnet_count], "securityGroups": groups[:group_count]}}

    err = error_of(aws.ecs.run_task, **base, networkConfiguration=config(17, 1))
    assert err == {"Code": "InvalidParameterException", "Message": "subnets can have at most 16 items."}
    err = error_of(aws.ecs.run_task, **base, networkConfiguration=config(16, 6))
    assert err == {"Code": "InvalidParameterException", "Message": "securityGroups can have at most 5 items."}
    task = aws.ecs.run_task(**base, networkConfiguration=config(16, 5))["tasks"][0]
    aws.ecs.stop_task(cluster=aws.cluster, task=task["taskArn"])
    aws.wait_for(task["taskArn"], "STOPPED")


# ---- RunTask failures -----------------------------------------------------


def test_no_capacity_places_no_task_and_says_why(sandbox, aws):
    image = unique("capacity") + "/jumphost:latest"
    family = aws.register(family=unique("capacity"), image=image)
    ctl(sandbox, "run-failure", "capacity", "--image", image)
    try:
        out = run(aws, family)
        assert out["tasks"] == []
        assert out["failures"] == [{"reason": CAPACITY}]  # no ARN: nothing was placed
        retried = run(aws, family)["tasks"]  # a retry succeeds, as the advice says
        assert len(retried) == 1
        aws.ecs.stop_task(cluster=aws.cluster, task=retried[0]["taskArn"])
    finally:
        ctl(sandbox, "clear")


def test_eni_failures_for_a_number_of_calls_and_only_for_their_image(sandbox, aws):
    image = unique("eni") + "/jumphost:latest"
    family = aws.register(family=unique("eni"), image=image)
    ctl(sandbox, "run-failure", "eni", "--count", "2", "--image", image)
    try:
        other = run(aws, "jumphost")["tasks"]  # another image is not affected
        assert len(other) == 1
        for _ in range(2):
            out = run(aws, family)
            assert (out["tasks"], out["failures"]) == ([], [{"reason": "RESOURCE:ENI"}])
        placed = run(aws, family)["tasks"]
        assert len(placed) == 1
        for task in other + placed:
            aws.ecs.stop_task(cluster=aws.cluster, task=task["taskArn"])
    finally:
        ctl(sandbox, "clear")


def test_clear_drops_run_failures(sandbox, aws):
    image = unique("cleared") + "/jumphost:latest"
    family = aws.register(family=unique("cleared"), image=image)
    ctl(sandbox, "run-failure", "capacity", "--count", "5", "--image", image)
    ctl(sandbox, "clear")
    placed = run(aws, family)["tasks"]
    assert len(placed) == 1
    aws.ecs.stop_task(cluster=aws.cluster, task=placed[0]["taskArn"])


# ---- IAM roles ECS must assume -------------------------------------------


def roleless(aws, **roles) -> str:
    """A task definition without logs (so no execution role is needed unless given)."""
    family = unique("roles")
    aws.ecs.register_task_definition(**task_definition(family=family) | roles)
    return family


def test_a_role_too_new_to_assume_fails_the_task_until_iam_has_propagated(aws):
    name = unique("fresh-task-role")
    arn = aws.iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(ECS_TASKS_TRUST))["Role"]["Arn"]
    family = roleless(aws, taskRoleArn=arn)
    task = stopped_before_running(aws, run(aws, family)["tasks"][0]["taskArn"])
    message = (f"ECS was unable to assume the role '{arn}' that was provided for this task. Please verify that the "
               "role being passed has the proper trust relationship and permissions and that your IAM user has "
               "permissions to pass this role.")
    assert task["stoppedReason"] == message
    assert aws.role(name) == arn  # waits until IAM has propagated the role
    later = run(aws, family)["tasks"][0]["taskArn"]
    aws.wait_for(later, "RUNNING")
    aws.ecs.stop_task(cluster=aws.cluster, task=later)


def test_roles_that_do_not_exist_or_do_not_trust_ecs_tasks_never_work(aws):
    ec2_only = aws.role(unique("ec2-trust"), trust={"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
    missing = "arn:aws:iam::123456789012:role/" + unique("no-such-role")
    for roles in ({"taskRoleArn": ec2_only}, {"executionRoleArn": missing}):
        task = stopped_before_running(aws, run(aws, roleless(aws, **roles))["tasks"][0]["taskArn"])
        assert task["stoppedReason"].startswith(f"ECS was unable to assume the role '{next(iter(roles.values()))}'")
    # An override names the role ECS assumes instead of the task definition's.
    overridden = run(aws, roleless(aws), overrides={"taskRoleArn": missing})["tasks"][0]["taskArn"]
    assert missing in stopped_before_running(aws, overridden)["stoppedReason"]


# ---- Images run their own ENTRYPOINT and CMD -------------------------------


@pytest.mark.parametrize("image", ["public.ecr.aws/amazonlinux/amazonlinux:2023", "amazonlinux:2023", "debian"])
def test_a_base_image_runs_its_shell_which_exits_at_once_and_stops_the_task(aws, image):
    family = aws.register(family=unique("base"), image=image)
    task, _ = aws.wait_for(run(aws, family)["tasks"][0]["taskArn"], "STOPPED")
    assert task["stopCode"] == "EssentialContainerExited"
    assert task["stoppedReason"] == "Essential container in task exited"
    assert task["containers"][0]["exitCode"] == 0


def test_a_command_override_replaces_the_image_cmd(aws):
    family = aws.register(family=unique("base-cmd"), image="amazonlinux:2023")
    override = {"containerOverrides": [{"name": "jumphost", "command": ["sh", "-c", "echo overridden; exit 3"]}]}
    arn = run(aws, family, overrides=override)["tasks"][0]["taskArn"]
    task, _ = aws.wait_for(arn, "STOPPED")
    assert task["containers"][0]["exitCode"] == 3
    assert aws.log_lines(arn) == ["overridden"]


def test_an_image_no_registry_has_fails_the_pull(aws):
    family = aws.register(family=unique("missing-image"), image="ghcr.io/nobody/nothing:1")
    arn = run(aws, family)["tasks"][0]["taskArn"]
    task = stopped_before_running(aws, arn)
    reason = ("CannotPullContainerError: pull image manifest has been retried 5 time(s): failed to resolve ref "
              "ghcr.io/nobody/nothing:1: ghcr.io/nobody/nothing:1: not found")
    assert task["stoppedReason"] == task["containers"][0]["reason"] == reason
    assert "exitCode" not in task["containers"][0]


def test_a_registered_image_runs_its_entrypoint_with_cmd_or_the_override(sandbox, aws):
    image = unique("sandbox.local/echoer")
    ctl(sandbox, "image", image, "--entrypoint", '["/bin/sh", "-c"]', "--cmd", '["echo from-image-cmd"]')
    listed = json.loads(ctl(sandbox, "images"))["images"]
    assert {"name": image, "entrypoint": ["/bin/sh", "-c"], "cmd": ["echo from-image-cmd"]} in listed
    family = aws.register(family=unique("echoer"), image=f"{image}:v1")
    plain = run(aws, family)["tasks"][0]["taskArn"]
    override = {"containerOverrides": [{"name": "jumphost", "command": ["echo from-override"]}]}
    changed = run(aws, family, overrides=override)["tasks"][0]["taskArn"]
    for arn in (plain, changed):
        aws.wait_for(arn, "STOPPED")
    assert aws.log_lines(plain) == ["from-image-cmd"]
    assert aws.log_lines(changed) == ["from-override"]  # the entrypoint stays; only CMD is replaced


def test_a_task_definition_entry_point_drops_the_image_cmd(sandbox, aws):
    image = unique("sandbox.local/cmd-only")
    ctl(sandbox, "image", image, "--cmd", '["echo", "image-cmd"]')
    family = aws.register(family=unique("entry"), image=image, entryPoint=["echo", "td-entry"])
    arn = run(aws, family)["tasks"][0]["taskArn"]
    aws.wait_for(arn, "STOPPED")
    assert aws.log_lines(arn) == ["td-entry"]


@pytest.mark.parametrize("cmd, reason", [
    ("[]", "CannotStartContainerError: Error response from daemon: No command specified"),
    ('["no-such-binary-anywhere"]', 'exec: "no-such-binary-anywhere": executable file not found in $PATH'),
])
def test_a_container_docker_cannot_start(sandbox, aws, cmd, reason):
    image = unique("sandbox.local/broken")
    ctl(sandbox, "image", image, "--cmd", cmd)
    family = aws.register(family=unique("broken"), image=image)
    task = stopped_before_running(aws, run(aws, family)["tasks"][0]["taskArn"])
    assert reason in task["stoppedReason"]
    assert task["stoppedReason"].startswith("CannotStartContainerError: ")


def test_ctl_image_wants_json_lists(sandbox):
    out = subprocess.run([str(os.path.join(os.path.dirname(__file__), "..", "ctl")), "image", "x", "--cmd", "echo hi"],
                         capture_output=True, text=True, env={**os.environ, **sandbox.env})
    assert out.returncode == 2
    assert "JSON lists" in out.stderr


@pytest.mark.parametrize("ref, runs_jumphost", [
    ("jumphost:latest", True),
    ("jump/jumphost:latest", True),
    ("123456789012.dkr.ecr.us-east-1.amazonaws.com/jumphost:1", True),
    ("jump-e2e-abc/jumphost:latest", True),
    ("registry.example:5000/team/jumphost@sha256:" + "a" * 64, True),
    ("jump/jumphost-cluster:latest", False),  # the repository is jumphost-cluster
    ("jumphost/other:latest", False),
])
def test_which_references_are_the_jumphost_image(ref, runs_jumphost):
    image = Catalogue().resolve(ref)
    assert (image is not None and image.entrypoint[-1].endswith("dockerfiles/jumphost/entrypoint.sh")) == runs_jumphost


@pytest.mark.parametrize("ref, canonical", [
    ("amazonlinux", "docker.io/library/amazonlinux:latest"),
    ("jump/jumphost:latest", "docker.io/jump/jumphost:latest"),
    ("localhost:5000/app", "localhost:5000/app:latest"),
    ("ghcr.io/a/b:1@sha256:ff", "ghcr.io/a/b:1@sha256:ff"),
])
def test_references_are_named_as_containerd_names_them(ref, canonical):
    assert parse(ref).canonical() == canonical
    assert pull_error(ref).endswith(f"failed to resolve ref {canonical}: {canonical}: not found")


def test_a_service_that_cannot_start_its_task_backs_off(aws):
    family = aws.register(family=unique("svc-missing"), image="ghcr.io/nobody/service:1")
    name = unique("backoff")
    aws.ecs.create_service(cluster=aws.cluster, serviceName=name, taskDefinition=family, desiredCount=1,
                           launchType="FARGATE", networkConfiguration=network(aws))
    deadline = time.monotonic() + 30
    while len(created := aws.ecs.list_tasks(cluster=aws.cluster, serviceName=name, desiredStatus="STOPPED")[
            "taskArns"]) < 4:
        assert time.monotonic() < deadline, created
        time.sleep(0.05)
    aws.ecs.update_service(cluster=aws.cluster, service=name, desiredCount=0)
    aws.ecs.delete_service(cluster=aws.cluster, service=name)
    tasks = sorted(aws.ecs.describe_tasks(cluster=aws.cluster, tasks=created)["tasks"], key=lambda t: t["createdAt"])
    assert all(t["stoppedReason"].startswith("CannotPullContainerError") for t in tasks)
    gaps = [(b["createdAt"] - a["createdAt"]).total_seconds() for a, b in zip(tasks, tasks[1:])]
    assert gaps[-1] > 2 * gaps[0], gaps


# ---- small limits ------------------------------------------------------------


def test_stop_reason_started_by_and_tag_limits(aws):
    arn = aws.run()["taskArn"]
    err = error_of(aws.ecs.stop_task, cluster=aws.cluster, task=arn, reason="x" * 256)
    assert err["Code"] == "InvalidParameterException"
    err = error_of(aws.ecs.tag_resource, resourceArn=arn, tags=[{"key": "k" * 129, "value": "v"}])
    assert err["Code"] == "InvalidParameterException"
    aws.ecs.tag_resource(resourceArn=arn, tags=[{"key": "k" * 128, "value": "v" * 256}])
    aws.ecs.stop_task(cluster=aws.cluster, task=arn, reason="x" * 255)
    assert aws.describe(arn)["stoppedReason"] == "x" * 255
    for bad in ({"startedBy": "jump session"}, {"startedBy": "j" * 129},
                {"tags": [{"key": "owner", "value": "v" * 257}]}, {"tags": [{"key": "aws:owner", "value": "x"}]}):
        err = error_of(aws.ecs.run_task, cluster=aws.cluster, taskDefinition="jumphost", launchType="FARGATE",
                       networkConfiguration=network(aws), **bad)
        assert err["Code"] == "InvalidParameterException", bad
    fine = aws.run(startedBy="ecs-svc/jump_session-1")["taskArn"]
    aws.ecs.stop_task(cluster=aws.cluster, task=fine)


def test_describe_tasks_takes_at_most_100_and_list_tasks_pages_at_most_100(aws):
    # jump's task picker lists every running task: it must page ListTasks and describe
    # them 100 at a time, as ECS allows no more.
    err = error_of(aws.ecs.describe_tasks, cluster=aws.cluster, tasks=["0" * 32] * 101)
    assert err == {"Code": "InvalidParameterException", "Message": "Tasks can have at most 100 items."}
    err = error_of(aws.ecs.list_tasks, cluster=aws.cluster, maxResults=101)
    assert err["Code"] == "InvalidParameterException"
