"""Faults on demand: AWS-shaped API errors, tasks that fail, IAM denials."""

import json
import os
import subprocess
import sys
from pathlib import Path

import botocore.config
import botocore.exceptions
import pytest
from conftest import ctl

SANDBOX = Path(__file__).resolve().parents[1]


def no_retry(aws, name):
    import boto3

    session = boto3.session.Session(aws_access_key_id="t", aws_secret_access_key="t", region_name="us-east-1")
    return session.client(name, endpoint_url=aws.env["AWS_ENDPOINT_URL"],
                          config=botocore.config.Config(retries={"total_max_attempts": 1, "mode": "standard"}))


@pytest.fixture(autouse=True)
def clean_faults(sandbox):
    yield
    ctl(sandbox, "clear")


@pytest.mark.parametrize(
    "service, action, kind, code, status",
    [
        ("ecs", "DescribeTasks", "throttle", "ThrottlingException", 400),
        ("ecs", "RunTask", "access-denied", "AccessDeniedException", 400),
        ("ecs", "StopTask", "server-error", "ServerException", 500),
        ("logs", "GetLogEvents", "throttle", "ThrottlingException", 400),
        ("ec2", "DescribeNetworkInterfaces", "throttle", "RequestLimitExceeded", 503),
        ("sts", "GetCallerIdentity", "access-denied", "AccessDenied", 403),
    ],
)
def test_injected_errors_have_the_service_shape(sandbox, aws, service, action, kind, code, status):
    ctl(sandbox, "fault", action, "--service", service, "--kind", kind, "--count", "1")
    client = no_retry(aws, service)
    call = {
        "DescribeTasks": lambda: client.describe_tasks(cluster=aws.cluster, tasks=["0" * 32]),
        "RunTask": lambda: client.run_task(cluster=aws.cluster, taskDefinition="jumphost"),
        "StopTask": lambda: client.stop_task(cluster=aws.cluster, task="0" * 32),
        "GetLogEvents": lambda: client.get_log_events(logGroupName="x", logStreamName="y"),
        "DescribeNetworkInterfaces": lambda: client.describe_network_interfaces(),
        "GetCallerIdentity": lambda: client.get_caller_identity(),
    }[action]
    with pytest.raises(botocore.exceptions.ClientError) as info:
        call()
    assert info.value.response["Error"]["Code"] == code
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    # The fault was for one call only: the next one gets the ordinary answer.
    try:
        call()
    except botocore.exceptions.ClientError as err:
        assert err.response["Error"]["Code"] != code


def test_standard_retries_absorb_throttling(sandbox, aws):
    ctl(sandbox, "fault", "DescribeTasks", "--service", "ecs", "--count", "2")
    out = aws.ecs.describe_tasks(cluster=aws.cluster, tasks=["0" * 32])
    assert out["ResponseMetadata"]["RetryAttempts"] == 2


def test_aws_cli_sees_the_throttling_error(sandbox, aws):
    ctl(sandbox, "fault", "ListTasks", "--service", "ecs", "--count", "10")
    env = {**os.environ, **sandbox.env, "AWS_MAX_ATTEMPTS": "2", "AWS_RETRY_MODE": "standard"}
    aws_cli = Path(sys.executable).parent / "aws"
    endpoint = ["--endpoint-url", sandbox.env["AWS_ENDPOINT_URL"]]  # never a real AWS endpoint
    out = subprocess.run([str(aws_cli), "ecs", "list-tasks", "--cluster", aws.cluster, *endpoint],
                         capture_output=True, text=True, env=env)
    assert out.returncode != 0
    assert "ThrottlingException" in out.stderr and "ListTasks" in out.stderr
    ctl(sandbox, "clear")
    endpoint = ["--endpoint-url", sandbox.env["AWS_ENDPOINT_URL"]]  # never a real AWS endpoint
    out = subprocess.run([str(aws_cli), "ecs", "list-tasks", "--cluster", aws.cluster, *endpoint],
                         capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert "taskArns" in json.loads(out.stdout)


def test_image_that_cannot_be_pulled(sandbox, aws):
    ctl(sandbox, "task-fault", "pull-error", "--image", "jumphost")
    arn = aws.run()["taskArn"]
    stopped, seen = aws.wait_for(arn, "STOPPED")
    assert "RUNNING" not in seen
    assert stopped["stopCode"] == "TaskFailedToStart"
    assert stopped["stoppedReason"].startswith("CannotPullContainerError:")
    assert "jump/jumphost:latest" in stopped["containers"][0]["reason"]
    assert stopped["desiredStatus"] == "STOPPED"
    # Only the next task was affected.
    healthy = aws.run()["taskArn"]
    aws.wait_for(healthy, "RUNNING")
    aws.ecs.stop_task(cluster=aws.cluster, task=healthy)


def test_missing_log_group_fails_the_start(sandbox, aws):
    ctl(sandbox, "task-fault", "logger-error")
    stopped, _ = aws.wait_for(aws.run()["taskArn"], "STOPPED")
    assert stopped["stopCode"] == "TaskFailedToStart"
    assert "ResourceInitializationError" in stopped["stoppedReason"]
    assert "log group does not exist" in stopped["stoppedReason"]


def test_crash_after_start(sandbox, aws):
    ctl(sandbox, "task-fault", "crash", "--after", "0.5", "--exit-code", "139")
    arn = aws.run()["taskArn"]
    stopped, seen = aws.wait_for(arn, "STOPPED")
    assert "RUNNING" in seen
    assert stopped["stopCode"] == "EssentialContainerExited"
    assert stopped["containers"][0]["exitCode"] == 139


def test_simulate_principal_policy_follows_the_role_policy_and_denies_on_request(sandbox, aws):
    role = aws.iam.create_role(RoleName="jump-task", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"},
                       "Action": "sts:AssumeRole"}],
    }))["Role"]["Arn"]
    actions = ["ssmmessages:CreateControlChannel", "ssmmessages:OpenDataChannel"]
    aws.iam.put_role_policy(RoleName="jump-task", PolicyName="exec", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}],
    }))

    def decisions():
        out = aws.iam.simulate_principal_policy(PolicySourceArn=role, ActionNames=actions)
        return {r["EvalActionName"]: r["EvalDecision"] for r in out["EvaluationResults"]}

    assert decisions() == {a: "allowed" for a in actions}
    ctl(sandbox, "deny", "ssmmessages:OpenDataChannel", "--principal", "role/jump-task")
    assert decisions() == {actions[0]: "allowed", actions[1]: "implicitDeny"}
    with pytest.raises(botocore.exceptions.ClientError) as info:
        aws.iam.simulate_principal_policy(PolicySourceArn=role + "-missing", ActionNames=actions)
    assert info.value.response["Error"]["Code"] == "NoSuchEntity"


def test_control_api_rejects_bad_requests(sandbox):
    out = subprocess.run([str(SANDBOX / "ctl"), "fault", "RunTask", "--kind", "meteor"],
                         capture_output=True, text=True, env={**os.environ, **sandbox.env})
    assert out.returncode == 2
    assert "invalid choice" in out.stderr


def test_task_age_moves_what_ecs_sets_into_the_past(sandbox, aws):
    """For tests of what judges a task by createdAt, which no caller can set on AWS."""
    task = aws.run()
    running, _ = aws.wait_for(task["taskArn"], "RUNNING")
    ctl(sandbox, "task-age", task["taskArn"], "90000")
    aged = aws.describe(task["taskArn"])
    assert (running["createdAt"] - aged["createdAt"]).total_seconds() == pytest.approx(90000, abs=1)
    assert (running["startedAt"] - aged["startedAt"]).total_seconds() == pytest.approx(90000, abs=1)
    assert aged["lastStatus"] == "RUNNING"
    out = subprocess.run([str(Path(__file__).resolve().parents[1] / "ctl"), "task-age", task["taskArn"], "-5"],
                         capture_output=True, text=True, env={**os.environ, **sandbox.env})
    assert out.returncode != 0 and "must not be negative" in out.stdout + out.stderr
    aws.ecs.stop_task(cluster=aws.cluster, task=task["taskArn"])
