"""ECS API behaviour the sandbox fixes in moto, and its validation."""

import botocore.exceptions
from conftest import private_ip
import pytest


def error_of(call, **kwargs):
    with pytest.raises(botocore.exceptions.ClientError) as info:
        call(**kwargs)
    return info.value.response["Error"]


def routed_vpc(aws, cidr: str) -> str:
    """A new VPC whose main route table leads to an internet gateway (tasks there need a public IP)."""
    vpc = aws.ec2.create_vpc(CidrBlock=cidr)["Vpc"]["VpcId"]
    igw = aws.ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    aws.ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
    main = aws.ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["RouteTables"][0]
    aws.ec2.create_route(RouteTableId=main["RouteTableId"], DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
    return vpc


def test_list_tasks_defaults_to_running_and_paginates(aws):
    arns = [aws.run(startedBy="paging")["taskArn"] for _ in range(3)]
    listed, token = [], None
    while True:
        extra = {"nextToken": token} if token else {}
        page = aws.ecs.list_tasks(cluster=aws.cluster, startedBy="paging", maxResults=2, **extra)
        assert len(page["taskArns"]) <= 2
        listed += page["taskArns"]
        token = page.get("nextToken")
        if not token:
            break
    assert listed == arns
    aws.ecs.stop_task(cluster=aws.cluster, task=arns[0])
    running = aws.ecs.list_tasks(cluster=aws.cluster, startedBy="paging")["taskArns"]
    assert running == arns[1:]
    # startedBy is a filter of its own: stopped tasks are listed by status, then picked out.
    pages = aws.ecs.get_paginator("list_tasks").paginate(cluster=aws.cluster, desiredStatus="STOPPED")
    stopped = [arn for page in pages for arn in page["taskArns"]]
    assert [arn for arn in stopped if arn in arns] == arns[:1]
    for arn in arns[1:]:
        aws.ecs.stop_task(cluster=aws.cluster, task=arn)


def test_list_tasks_filters_by_family(aws):
    aws.register(family="other-family")
    mine = aws.run(family="other-family", startedBy="family-filter")["taskArn"]
    aws.run(startedBy="family-filter")
    assert aws.ecs.list_tasks(cluster=aws.cluster, family="other-family")["taskArns"] == [mine]
    for arn in aws.ecs.list_tasks(cluster=aws.cluster, startedBy="family-filter")["taskArns"]:
        aws.ecs.stop_task(cluster=aws.cluster, task=arn)


def test_describe_unknown_task_reports_missing(aws):
    out = aws.ecs.describe_tasks(cluster=aws.cluster, tasks=["0" * 32])
    assert out["tasks"] == []
    assert out["failures"] == [
        {"arn": f"arn:aws:ecs:us-east-1:123456789012:task/{aws.cluster}/{'0' * 32}", "reason": "MISSING"}
    ]


def test_stop_unknown_task_is_a_client_error(aws):
    err = error_of(aws.ecs.stop_task, cluster=aws.cluster, task="0" * 32)
    assert err["Code"] == "InvalidParameterException"
    assert "not found" in err["Message"]


def test_stop_is_idempotent(aws):
    arn = aws.run()["taskArn"]
    first = aws.ecs.stop_task(cluster=aws.cluster, task=arn, reason="first")["task"]
    second = aws.ecs.stop_task(cluster=aws.cluster, task=arn, reason="second")["task"]
    assert first["desiredStatus"] == second["desiredStatus"] == "STOPPED"
    stopped, _ = aws.wait_for(arn, "STOPPED")
    assert stopped["stoppedReason"] == "first"


def test_stop_during_provisioning_never_starts_a_host(aws):
    arn = aws.run()["taskArn"]
    aws.ecs.stop_task(cluster=aws.cluster, task=arn)
    stopped, seen = aws.wait_for(arn, "STOPPED")
    assert "RUNNING" not in seen
    assert "startedAt" not in stopped


def test_tags_on_task_arns(aws):
    arn = aws.run(tags=[{"key": "a", "value": "1"}])["taskArn"]
    aws.ecs.tag_resource(resourceArn=arn, tags=[{"key": "b", "value": "2"}])
    aws.ecs.untag_resource(resourceArn=arn, tagKeys=["a"])
    assert aws.ecs.list_tags_for_resource(resourceArn=arn)["tags"] == [{"key": "b", "value": "2"}]
    aws.ecs.stop_task(cluster=aws.cluster, task=arn)


@pytest.mark.parametrize(
    "change, code, fragment",
    [
        ({"cluster": "nope"}, "ClusterNotFoundException", "Cluster not found"),
        ({"taskDefinition": "no-such-family"}, "ClientException", "Unable to describe task definition"),
        ({"networkConfiguration": {"awsvpcConfiguration": {"subnets": ["subnet-0000"]}}},
         "InvalidParameterException", "subnet-0000"),
        ({"networkConfiguration": {"awsvpcConfiguration": {"subnets": []}}},
         "InvalidParameterException", "subnets can not be empty"),
        ({"overrides": {"cpu": "256", "memory": "4096"}}, "InvalidParameterException", "No Fargate configuration"),
        ({"count": 11}, "InvalidParameterException", "count"),
        ({"overrides": {"containerOverrides": [{"name": "ghost"}]}}, "InvalidParameterException", "ghost"),
        ({"platformVersion": "1.2.0"}, "InvalidParameterException", "Platform version 1.2.0"),
    ],
)
def test_run_task_validation(aws, change, code, fragment):
    params = dict(
        cluster=aws.cluster, taskDefinition="jumphost", launchType="FARGATE",
        networkConfiguration={"awsvpcConfiguration": {"subnets": aws.subnets, "securityGroups": aws.groups}},
    )
    params.update(change)
    before = aws.ecs.list_tasks(cluster=aws.cluster)["taskArns"]
    err = error_of(aws.ecs.run_task, **params)
    assert err["Code"] == code
    assert fragment in err["Message"]
    assert aws.ecs.list_tasks(cluster=aws.cluster)["taskArns"] == before


def test_run_task_without_network_configuration(aws):
    err = error_of(aws.ecs.run_task, cluster=aws.cluster, taskDefinition="jumphost", launchType="FARGATE")
    assert err["Code"] == "InvalidParameterException"
    assert "Network Configuration must be provided" in err["Message"]


def test_runs_in_any_vpc_including_one_without_dns_hostnames(aws):
    vpc = routed_vpc(aws, "10.199.0.0/16")
    subnet = aws.ec2.create_subnet(VpcId=vpc, CidrBlock="10.199.7.0/24")["Subnet"]["SubnetId"]
    arn = aws.ecs.run_task(
        cluster=aws.cluster, taskDefinition="jumphost", launchType="FARGATE",
        networkConfiguration={"awsvpcConfiguration": {"subnets": [subnet], "assignPublicIp": "ENABLED"}},
    )["tasks"][0]["taskArn"]
    running, _ = aws.wait_for(arn, "RUNNING")
    details = {d["name"]: d["value"] for d in running["attachments"][0]["details"]}
    assert details["privateIPv4Address"].startswith("10.199.7.")
    aws.ecs.stop_task(cluster=aws.cluster, task=arn)
    aws.wait_for(arn, "STOPPED")


def test_a_reused_address_reaches_the_new_host_at_once(aws):
    """Addresses go round the subnet, and a stopped task's address, reused, reaches its new host."""
    import socket
    import time

    vpc = routed_vpc(aws, "10.198.0.0/16")
    subnet = aws.ec2.create_subnet(VpcId=vpc, CidrBlock="10.198.0.0/28")["Subnet"]["SubnetId"]  # 11 usable
    group = aws.ec2.create_security_group(GroupName="reuse", Description="ssh from the VPC", VpcId=vpc)["GroupId"]
    aws.ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "10.198.0.0/16"}]}])
    keys = {"name": "JUMP_AUTHORIZED_KEYS", "value": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeFakeFakeFakeFakeFakeFakeFakeFakeFake x"}

    def run(count):
        return aws.ecs.run_task(
            cluster=aws.cluster, taskDefinition="jumphost", launchType="FARGATE", count=count,
            networkConfiguration={"awsvpcConfiguration": {
                "subnets": [subnet], "securityGroups": [group], "assignPublicIp": "ENABLED"}},
            overrides={"containerOverrides": [{"name": "jumphost", "environment": [keys]}]},
        )["tasks"]

    def sshd_answers(address, timeout):
        # sshd starts a moment after the host key is logged: a refusal (the host is there)
        # is retried; a timeout (packets going nowhere) fails the test.
        deadline = time.monotonic() + 5
        while True:
            try:
                with socket.create_connection((address, 22), timeout=timeout) as conn:
                    conn.settimeout(timeout)
                    return conn.recv(7) == b"SSH-2.0"
            except ConnectionRefusedError:
                assert time.monotonic() < deadline
                time.sleep(0.05)

    first = run(1)[0]
    running, _ = aws.wait_for(first["taskArn"], "RUNNING")
    address = private_ip(running)
    aws.wait_log(first["taskArn"], "jump-host-key: ")
    assert sshd_answers(address, 5)  # the machine now has a neighbour entry for it
    aws.ecs.stop_task(cluster=aws.cluster, task=first["taskArn"])
    aws.wait_for(first["taskArn"], "STOPPED")

    others = run(10) + run(1)  # the eleventh goes round the subnet to the freed address
    reused = [t for t in others if private_ip(t) == address]
    assert len(reused) == 1, [private_ip(t) for t in others]
    aws.wait_for(reused[0]["taskArn"], "RUNNING")
    aws.wait_log(reused[0]["taskArn"], "jump-host-key: ")
    assert sshd_answers(address, 2)
    for task in others:
        aws.ecs.stop_task(cluster=aws.cluster, task=task["taskArn"])
    for task in others:
        aws.wait_for(task["taskArn"], "STOPPED")


def test_platform_version_is_what_the_task_asked_for(aws):
    """LATEST (or nothing) runs 1.4.0; an older version is reported as such, which checkers read."""
    network = {"awsvpcConfiguration": {"subnets": aws.subnets, "securityGroups": aws.groups}}
    versions = {}
    for asked in (None, "1.3.0"):
        extra = {"platformVersion": asked} if asked else {}
        task = aws.ecs.run_task(cluster=aws.cluster, taskDefinition="jumphost", launchType="FARGATE",
                                networkConfiguration=network, **extra)["tasks"][0]
        versions[asked] = task["platformVersion"]
        aws.ecs.stop_task(cluster=aws.cluster, task=task["taskArn"])
    assert versions == {None: "1.4.0", "1.3.0": "1.3.0"}
