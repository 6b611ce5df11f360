"""EventBridge Scheduler in the sandbox: what it refuses, and an ECS target it invokes with the
schedule's role; the task it starts calls AWS with its task role's credentials, as on Fargate."""

import json
import sys

import botocore.exceptions
import pytest
from conftest import ctl

SCHEDULER_TRUST = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "scheduler.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
PROBE = "scheduler-probe:1"
# What the probe task prints: who it is, from its task role's credentials, through the API.
WHOAMI = "import boto3; print('whoami', boto3.client('sts').get_caller_identity()['Arn'])"


def may_run_tasks(aws, name: str, allowed: bool) -> str:
    arn = aws.role(name, SCHEDULER_TRUST)
    statements = [{"Effect": "Allow", "Action": "iam:PassRole", "Resource": "*"}]
    if allowed:
        statements.append({"Effect": "Allow", "Action": "ecs:RunTask", "Resource": "*"})
    aws.iam.put_role_policy(RoleName=name, PolicyName="run", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": statements}))
    return arn


def schedule(aws, name: str, role: str, definition: str, **extra) -> dict:
    cluster = aws.ecs.describe_clusters(clusters=[aws.cluster])["clusters"][0]["clusterArn"]
    params = dict(
        Name=name, ScheduleExpression="rate(15 minutes)", FlexibleTimeWindow={"Mode": "OFF"},
        Target={"Arn": cluster, "RoleArn": role, "EcsParameters": {
            "TaskDefinitionArn": definition, "LaunchType": "FARGATE", "TaskCount": 1,
            "NetworkConfiguration": {"awsvpcConfiguration": {"Subnets": aws.subnets, "SecurityGroups": aws.groups}},
        }},
    )
    params.update(extra)
    return aws.client("scheduler").create_schedule(**params)


def fire(sandbox, name: str) -> dict:
    return json.loads(ctl(sandbox, "schedule-fire", name))


def test_what_scheduler_refuses_is_refused(aws):
    role = may_run_tasks(aws, "sched-refusals", True)
    for extra, needle in [
        (dict(Name="has space"), "regular expression pattern"),
        (dict(ScheduleExpression="rate(0 minutes)"), "Invalid Schedule Expression"),
        (dict(ScheduleExpression="rate(1 minutes)"), "Invalid Schedule Expression"),
        (dict(ScheduleExpression="every 15 minutes"), "Invalid Schedule Expression"),
        (dict(FlexibleTimeWindow={"Mode": "FLEXIBLE"}), "MaximumWindowInMinutes"),
    ]:
        name = extra.pop("Name", "refused")
        with pytest.raises(botocore.exceptions.ClientError) as info:
            schedule(aws, name, role, "jumphost", **extra)
        assert info.value.response["Error"]["Code"] == "ValidationException", extra
        assert needle in info.value.response["Error"]["Message"], (extra, info.value.response["Error"]["Message"])
    with pytest.raises(botocore.exceptions.ClientError) as info:
        aws.client("scheduler").get_schedule(Name="refused")
    assert info.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_a_schedule_starts_its_task_whose_code_calls_aws_as_the_task_role(sandbox, aws):
    ctl(sandbox, "image", PROBE, "--entrypoint", json.dumps([sys.executable, "-c"]), "--cmd", json.dumps([WHOAMI]))
    definition = aws.register(family="sched-probe", image=PROBE)
    role = may_run_tasks(aws, "sched-runner", True)
    schedule(aws, "probe", role, definition)
    assert aws.client("scheduler").get_schedule(Name="probe")["State"] == "ENABLED"

    invocation = fire(sandbox, "probe")
    assert invocation["error"] is None, invocation
    task = invocation["task"]
    stopped, _ = aws.wait_for(task, "STOPPED")
    assert stopped["containers"][0]["exitCode"] == 0, aws.log_lines(task)
    task_role = aws.env["JUMP_TASK_ROLE"].split("/")[-1]
    assert any(line.startswith("whoami arn:aws:sts::") and f"assumed-role/{task_role}/" in line
               for line in aws.log_lines(task)), aws.log_lines(task)
    aws.client("scheduler").delete_schedule(Name="probe")


def test_an_invocation_the_role_does_not_allow_runs_nothing_and_is_recorded(sandbox, aws):
    definition = aws.register(family="sched-denied")
    before = set(aws.ecs.list_tasks(cluster=aws.cluster)["taskArns"])
    weak = may_run_tasks(aws, "sched-weak", False)
    schedule(aws, "weak", weak, definition)
    invocation = fire(sandbox, "weak")
    assert invocation["task"] is None and "may not call ecs:RunTask" in invocation["error"], invocation
    untrusting = aws.role("sched-untrusting")  # trusts ECS tasks, not Scheduler
    schedule(aws, "untrusting", untrusting, definition)
    invocation = fire(sandbox, "untrusting")
    assert "does not trust scheduler.amazonaws.com" in invocation["error"], invocation
    assert set(aws.ecs.list_tasks(cluster=aws.cluster)["taskArns"]) == before
    recorded = json.loads(ctl(sandbox, "schedules"))["invocations"]
    assert {i["schedule"] for i in recorded if i["error"]} >= {"default/weak", "default/untrusting"}
    for name in ("weak", "untrusting"):
        aws.client("scheduler").delete_schedule(Name=name)


def test_a_task_cannot_reach_the_sandbox_s_control_api(sandbox, aws):
    probe = "import urllib.request, os; \
        print('control', urllib.request.urlopen(os.environ['AWS_ENDPOINT_URL'] + '/_sandbox/health').status)"
    ctl(sandbox, "image", "control-probe:1", "--entrypoint", json.dumps([sys.executable, "-c"]),
        "--cmd", json.dumps([probe]))
    aws.register(family="control-probe", image="control-probe:1")
    task = aws.run(family="control-probe")["taskArn"]
    stopped, _ = aws.wait_for(task, "STOPPED")
    assert stopped["containers"][0]["exitCode"] != 0
    assert not any(line.startswith("control 200") for line in aws.log_lines(task)), aws.log_lines(task)
    assert any("403" in line for line in aws.log_lines(task)), aws.log_lines(task)
