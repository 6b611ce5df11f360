"""ECS services run sandbox tasks: listed, described, reachable, scaled, replaced and deleted."""

import re
import time

import botocore.exceptions
import pytest
from conftest import Aws, ctl, namespaces
from jumpsandbox.harness import Sandbox
from test_gateway import Client, until_connected
from test_hygiene import objects_of


def create(aws, name, count, **extra) -> dict:
    params = dict(
        cluster=aws.cluster, serviceName=name, taskDefinition="jumphost", desiredCount=count, launchType="FARGATE",
        networkConfiguration={"awsvpcConfiguration": {"subnets": aws.subnets, "securityGroups": aws.groups}},
    )
    return aws.ecs.create_service(**(params | extra))["service"]


def arns(aws, name, status="RUNNING") -> list[str]:
    return aws.ecs.list_tasks(cluster=aws.cluster, serviceName=name, desiredStatus=status)["taskArns"]


def settled(aws, name, count, timeout=30) -> list[dict]:
    """The service's tasks once exactly COUNT of them are wanted and all are RUNNING."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        wanted = arns(aws, name)
        if len(wanted) == count:
            tasks = aws.ecs.describe_tasks(cluster=aws.cluster, tasks=wanted)["tasks"] if wanted else []
            if all(t["lastStatus"] == "RUNNING" for t in tasks):
                return tasks
        time.sleep(0.05)
    raise AssertionError(f"service {name} never settled at {count} running tasks: {arns(aws, name)}")


def stopped(aws, name) -> list[dict]:
    """The service's tasks that were asked to stop, once all of them have."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        gone = arns(aws, name, "STOPPED")
        tasks = aws.ecs.describe_tasks(cluster=aws.cluster, tasks=gone)["tasks"] if gone else []
        if all(t["lastStatus"] == "STOPPED" for t in tasks):
            return tasks
        time.sleep(0.05)
    raise AssertionError(f"service {name}'s tasks never stopped")


def describe(aws, name) -> dict:
    return aws.ecs.describe_services(cluster=aws.cluster, services=[name])["services"][0]


def host_namespace(task: dict) -> list[str]:
    return [n for n in namespaces() if n.endswith(task["taskArn"].split("/")[-1][:12])]


def test_a_service_runs_scales_replaces_and_deletes_its_tasks(sandbox, aws):
    create(aws, "web", 2, enableExecuteCommand=True)
    tasks = settled(aws, "web", 2)
    deployment = tasks[0]["startedBy"]
    assert re.fullmatch(r"ecs-svc/\d{19}", deployment)
    for task in tasks:
        assert (task["group"], task["startedBy"], task["launchType"]) == ("service:web", deployment, "FARGATE")
        assert task["containers"][0]["managedAgents"][0]["lastStatus"] == "RUNNING"
        assert len(host_namespace(task)) == 1
    assert sorted(aws.ecs.list_tasks(cluster=aws.cluster, startedBy=deployment)["taskArns"]) == sorted(arns(aws, "web"))
    service = describe(aws, "web")
    assert (service["desiredCount"], service["runningCount"], service["pendingCount"]) == (2, 2, 0)
    assert service["enableExecuteCommand"] is True
    assert service["deployments"][0]["id"] == deployment
    assert service["taskDefinition"] == tasks[0]["taskDefinitionArn"]

    session = until_connected(lambda: aws.ecs.execute_command(
        cluster=aws.cluster, task=tasks[0]["taskArn"], command="sh -c 'echo $((6*7)); hostname'", interactive=True,
    ))["session"]
    out = Client(session["streamUrl"], session["tokenValue"]).drain().decode()
    assert "42" in out and "ip-10-" in out

    aws.ecs.update_service(cluster=aws.cluster, service="web", desiredCount=1)
    [survivor] = settled(aws, "web", 1)
    [scaled_in] = stopped(aws, "web")
    assert scaled_in["stopCode"] == "ServiceSchedulerInitiated"
    assert scaled_in["stoppedReason"] == f"Scaling activity initiated by (deployment {deployment})"
    assert host_namespace(scaled_in) == []
    assert describe(aws, "web")["runningCount"] == 1

    # A task that stops by itself (here: crashes) is replaced while the service wants it.
    ctl(sandbox, "task-fault", "crash", "--after", "0.3", "--exit-code", "137")
    aws.ecs.update_service(cluster=aws.cluster, service="web", desiredCount=2)
    deadline = time.monotonic() + 30
    while not [t for t in stopped(aws, "web") if t.get("stopCode") == "EssentialContainerExited"]:
        assert time.monotonic() < deadline, "the faulty task never crashed"
        time.sleep(0.05)
    replaced = settled(aws, "web", 2)
    assert survivor["taskArn"] in {t["taskArn"] for t in replaced}
    assert {t["startedBy"] for t in replaced} == {deployment}

    aws.ecs.delete_service(cluster=aws.cluster, service="web", force=True)
    assert arns(aws, "web") == []
    every = stopped(aws, "web")
    assert len(every) == 4  # the first two, the crashed one and its replacement
    assert all(host_namespace(t) == [] for t in every)
    enis = [d["value"] for t in every for d in t["attachments"][0]["details"] if d["name"] == "networkInterfaceId"]
    assert aws.ec2.describe_network_interfaces(Filters=[{"Name": "network-interface-id", "Values": enis}])[
        "NetworkInterfaces"] == []
    assert describe(aws, "web")["status"] == "INACTIVE"


def test_scaled_to_zero_then_deleted(aws):
    create(aws, "zero", 1, propagateTags="SERVICE", tags=[{"key": "team", "value": "web"}])
    [task] = settled(aws, "zero", 1)
    tagged = aws.ecs.describe_tasks(cluster=aws.cluster, tasks=[task["taskArn"]], include=["TAGS"])["tasks"][0]
    assert tagged["tags"] == [{"key": "team", "value": "web"}]
    assert "managedAgents" not in task["containers"][0]
    with pytest.raises(botocore.exceptions.ClientError) as info:
        aws.ecs.delete_service(cluster=aws.cluster, service="zero")
    assert info.value.response["Error"]["Code"] == "InvalidParameterException"  # still scaled above 0
    aws.ecs.update_service(cluster=aws.cluster, service="zero", desiredCount=0)
    settled(aws, "zero", 0)
    assert describe(aws, "zero")["runningCount"] == 0
    aws.ecs.delete_service(cluster=aws.cluster, service="zero")
    assert len(stopped(aws, "zero")) == 1


def test_service_errors_are_ecs_errors(aws):
    with pytest.raises(botocore.exceptions.ClientError) as info:
        aws.ecs.list_tasks(cluster=aws.cluster, serviceName="no-such-service")
    assert info.value.response["Error"]["Code"] == "ServiceNotFoundException"
    with pytest.raises(botocore.exceptions.ClientError) as info:
        create(aws, "bad", 1, launchType="EC2")
    assert info.value.response["Error"]["Code"] == "InvalidParameterException"
    assert aws.ecs.describe_services(cluster=aws.cluster, services=["bad"])["services"] == []
    create(aws, "twice", 0)
    with pytest.raises(botocore.exceptions.ClientError) as info:
        create(aws, "twice", 0)
    assert "not idempotent" in info.value.response["Error"]["Message"]
    aws.ecs.delete_service(cluster=aws.cluster, service="twice")


def test_stopping_the_sandbox_stops_service_tasks_without_replacing_them():
    box = Sandbox(step=0.05)
    aws = Aws(box.env)
    aws.register()
    create(aws, "doomed", 2)
    settled(aws, "doomed", 2)
    instance = box.env["JUMP_SANDBOX_INSTANCE"]
    assert box.stop() == 0
    assert objects_of(instance) == []


def test_what_ecs_refuses_in_a_service_request_is_refused(aws):
    for extra, needle in [
        (dict(serviceName="jump pool"), "Service name must match"),
        (dict(serviceName="x" * 256), "Service name must match"),
        (dict(desiredCount=-1), "desiredCount"),
        (dict(propagateTags="TASK"), "enum value set: [TASK_DEFINITION, SERVICE, NONE]"),
        (dict(capacityProviderStrategy=[{"capacityProvider": "FARGATE"}]), "both a launch type and capacity"),
        (dict(tags=[{"key": "aws:owner", "value": "x"}]), "aws:"),
    ]:
        params = {"serviceName": "refused"} | extra
        with pytest.raises(botocore.exceptions.ClientError) as info:
            create(aws, params.pop("serviceName"), params.pop("desiredCount", 1), **params)
        assert info.value.response["Error"]["Code"] == "InvalidParameterException", extra
        assert needle in info.value.response["Error"]["Message"], (extra, info.value.response["Error"]["Message"])
    assert not [arn for arn in aws.ecs.list_services(cluster=aws.cluster)["serviceArns"] if "refused" in arn]
    create(aws, "scaled", 0)
    with pytest.raises(botocore.exceptions.ClientError) as info:
        aws.ecs.update_service(cluster=aws.cluster, service="scaled", desiredCount=-2)
    assert info.value.response["Error"]["Code"] == "InvalidParameterException"
    aws.ecs.delete_service(cluster=aws.cluster, service="scaled")


def test_tasks_carry_the_service_s_tags_as_they_are_when_each_task_starts(aws):
    service = create(aws, "retagged", 1, propagateTags="SERVICE", tags=[{"key": "ttl", "value": "600"}])
    [first] = settled(aws, "retagged", 1)
    aws.ecs.tag_resource(resourceArn=service["serviceArn"], tags=[{"key": "ttl", "value": "1800"}])
    aws.ecs.stop_task(cluster=aws.cluster, task=first["taskArn"])
    deadline = time.monotonic() + 30
    while True:
        [second] = settled(aws, "retagged", 1)
        if second["taskArn"] != first["taskArn"]:
            break
        assert time.monotonic() < deadline, "the stopped task was never replaced"
        time.sleep(0.05)
    tags = lambda arn: aws.ecs.describe_tasks(cluster=aws.cluster, tasks=[arn], include=["TAGS"])["tasks"][0]["tags"]
    assert tags(first["taskArn"]) == [{"key": "ttl", "value": "600"}], "a running task's tags stay as they were"
    assert tags(second["taskArn"]) == [{"key": "ttl", "value": "1800"}]
    aws.ecs.update_service(cluster=aws.cluster, service="retagged", desiredCount=0)
    aws.ecs.delete_service(cluster=aws.cluster, service="retagged")
