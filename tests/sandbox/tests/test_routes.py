"""Routes matter: a Fargate task reaches what its subnet's route table and its VPC's
endpoints let it reach, and nothing else.

It pulls its image over its subnet, so without a NAT gateway route, or with an
internet gateway route but no public IP, a public image never arrives and the
task stops before RUNNING. An ECR image can come through VPC endpoints alone
(ecr.api, ecr.dkr, and the S3 gateway for the layers). Its exec agent, too,
needs a way to ssmmessages: without one the task runs, but ECS Exec never
connects. The accounts the sandbox models route the way real ones do: default-VPC
subnets through an internet gateway only, the sandbox's own subnets through a
NAT gateway.
"""

import ipaddress
import itertools
import re
import time
from contextlib import contextmanager

import botocore.exceptions
import pytest

ACCOUNT = "123456789012"
ECR_IMAGE = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/jump/jumphost:1"
INTERNAL_ERROR = "The execute command failed due to an internal error. Try again later."
TIMEOUT = r"dial tcp \d+\.\d+\.\d+\.\d+:443: i/o timeout"
HUB_TIMEOUT = re.compile(
    r'CannotPullContainerError: pull image manifest has been retried 5 time\(s\): failed to resolve ref '
    r'docker\.io/jump/jumphost:latest: failed to do request: Head '
    rf'"https://registry-1\.docker\.io/v2/jump/jumphost/manifests/latest": {TIMEOUT}'
)
_next_block = itertools.count(160)  # /24s of the sandbox's VPC that no one else uses


def error_of(call, **kwargs) -> dict:
    with pytest.raises(botocore.exceptions.ClientError) as info:
        call(**kwargs)
    return info.value.response["Error"]


@pytest.fixture(scope="module")
def vpc(aws) -> str:
    """The sandbox's own VPC: its range is on the data plane's bridge, so tasks in it really run."""
    return aws.ec2.describe_subnets(SubnetIds=aws.subnets[:1])["Subnets"][0]["VpcId"]


@pytest.fixture(scope="module")
def ecr_family(aws) -> str:
    aws.register(family="routes-ecr", image=ECR_IMAGE)
    return "routes-ecr"


def new_subnet(aws, vpc: str, route: dict | None = None) -> tuple[str, str]:
    """A subnet of VPC with a route table of its own: local only, or with ROUTE for 0.0.0.0/0."""
    cidr = ipaddress.ip_network(aws.ec2.describe_vpcs(VpcIds=[vpc])["Vpcs"][0]["CidrBlock"])
    block = list(cidr.subnets(new_prefix=24))[next(_next_block)]
    subnet = aws.ec2.create_subnet(VpcId=vpc, CidrBlock=str(block))["Subnet"]["SubnetId"]
    table = aws.ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    aws.ec2.associate_route_table(RouteTableId=table, SubnetId=subnet)
    if route:
        aws.ec2.create_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", **route)
    return subnet, table


def run_in(aws, subnet: str, public=False, family="jumphost", **extra) -> str:
    task = aws.ecs.run_task(
        cluster=aws.cluster, taskDefinition=family, launchType="FARGATE",
        networkConfiguration={"awsvpcConfiguration": {
            "subnets": [subnet], "assignPublicIp": "ENABLED" if public else "DISABLED"}},
        **extra,
    )["tasks"][0]
    return task["taskArn"]


def fails_to_pull(aws, arn: str) -> str:
    """The stoppedReason of a task that stopped at the pull step, never having run."""
    stopped, seen = aws.wait_for(arn, "STOPPED")
    assert "PENDING" in seen and "ACTIVATING" not in seen and "RUNNING" not in seen, seen
    assert stopped["stopCode"] == "TaskFailedToStart"
    assert "pullStartedAt" in stopped and "startedAt" not in stopped
    return stopped["stoppedReason"]


def runs(aws, arn: str) -> dict:
    running, _ = aws.wait_for(arn, "RUNNING")
    return running


def stop(aws, *arns: str) -> None:
    for arn in arns:
        aws.ecs.stop_task(cluster=aws.cluster, task=arn)


def internet_gateway(aws, vpc: str) -> str:
    gateways = aws.ec2.describe_internet_gateways(Filters=[{"Name": "attachment.vpc-id", "Values": [vpc]}])
    return gateways["InternetGateways"][0]["InternetGatewayId"]


def nat_gateway(aws, vpc: str) -> str:
    gateways = aws.ec2.describe_nat_gateways(Filter=[{"Name": "vpc-id", "Values": [vpc]}])["NatGateways"]
    return next(g["NatGatewayId"] for g in gateways if g["State"] == "available")


@contextmanager
def endpoints(aws, vpc: str, subnet: str, table: str, *services: str):
    """VPC endpoints for SERVICES while the block runs: S3 as a gateway on TABLE, the rest interfaces."""
    made = []
    try:
        for service in services:
            name = f"com.amazonaws.us-east-1.{service}"
            if service == "s3":
                created = aws.ec2.create_vpc_endpoint(VpcId=vpc, ServiceName=name, VpcEndpointType="Gateway",
                                                      RouteTableIds=[table])
            else:
                created = aws.ec2.create_vpc_endpoint(VpcId=vpc, ServiceName=name, VpcEndpointType="Interface",
                                                      SubnetIds=[subnet], PrivateDnsEnabled=True)
            made.append(created["VpcEndpoint"]["VpcEndpointId"])
        yield
    finally:
        if made:
            aws.ec2.delete_vpc_endpoints(VpcEndpointIds=made)


def table_of(aws, subnet: str, vpc: str) -> dict:
    """The route table AWS routes SUBNET with: its own association, else the VPC's main table."""
    own = aws.ec2.describe_route_tables(Filters=[{"Name": "association.subnet-id", "Values": [subnet]}])
    if own["RouteTables"]:
        return own["RouteTables"][0]
    main = aws.ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc]},
                                                  {"Name": "association.main", "Values": ["true"]}])
    return main["RouteTables"][0]


def default_route(table: dict) -> dict | None:
    return next((r for r in table["Routes"] if r.get("DestinationCidrBlock") == "0.0.0.0/0"), None)


# ---- public images need the internet ------------------------------------------


def test_a_subnet_with_no_route_out_cannot_pull_a_public_image(aws):
    vpc = aws.ec2.create_vpc(CidrBlock="10.196.0.0/16")["Vpc"]["VpcId"]
    subnet = aws.ec2.create_subnet(VpcId=vpc, CidrBlock="10.196.3.0/24")["Subnet"]["SubnetId"]
    for public in (False, True):  # a public IP is no use without a route
        arn = run_in(aws, subnet, public=public)
        reason = fails_to_pull(aws, arn)
        assert HUB_TIMEOUT.fullmatch(reason), reason
        assert aws.describe(arn)["containers"][0]["reason"] == reason


def test_an_internet_gateway_route_needs_a_public_ip(aws, vpc):
    subnet, _ = new_subnet(aws, vpc, {"GatewayId": internet_gateway(aws, vpc)})
    assert HUB_TIMEOUT.fullmatch(fails_to_pull(aws, run_in(aws, subnet, public=False)))
    running = runs(aws, run_in(aws, subnet, public=True))
    stop(aws, running["taskArn"])


def test_a_nat_gateway_route_serves_private_addresses(aws, vpc):
    subnet, _ = new_subnet(aws, vpc, {"NatGatewayId": nat_gateway(aws, vpc)})
    running = runs(aws, run_in(aws, subnet))
    stop(aws, running["taskArn"])


def test_a_nat_gateway_in_a_subnet_without_an_internet_route_leads_nowhere(aws, vpc):
    isolated, _ = new_subnet(aws, vpc)
    address = aws.ec2.allocate_address(Domain="vpc")["AllocationId"]
    stranded = aws.ec2.create_nat_gateway(SubnetId=isolated, AllocationId=address)["NatGateway"]["NatGatewayId"]
    subnet, _ = new_subnet(aws, vpc, {"NatGatewayId": stranded})
    assert HUB_TIMEOUT.fullmatch(fails_to_pull(aws, run_in(aws, subnet)))


def test_public_ecr_images_need_the_internet_too(aws, vpc):
    aws.register(family="routes-public-ecr", image="public.ecr.aws/docker/library/alpine:3.20")
    subnet, table = new_subnet(aws, vpc)
    with endpoints(aws, vpc, subnet, table, "ecr.api", "ecr.dkr", "s3"):
        reason = fails_to_pull(aws, run_in(aws, subnet, family="routes-public-ecr"))
    assert re.fullmatch(
        r"CannotPullContainerError: pull image manifest has been retried 5 time\(s\): failed to resolve ref "
        r"public\.ecr\.aws/docker/library/alpine:3\.20: failed to do request: Head "
        rf'"https://public\.ecr\.aws/v2/docker/library/alpine/manifests/3\.20": {TIMEOUT}', reason), reason


# ---- ECR images can come through endpoints alone -------------------------------


def test_an_ecr_image_pulls_through_ecr_and_s3_endpoints_without_a_route(aws, vpc, ecr_family):
    subnet, table = new_subnet(aws, vpc)
    reason = fails_to_pull(aws, run_in(aws, subnet, family=ecr_family))
    assert re.fullmatch(
        r"ResourceInitializationError: unable to pull secrets or registry auth: execution resource retrieval "
        r"failed: unable to retrieve ecr registry auth: service call has been retried 3 time\(s\): RequestError: "
        rf'send request failed caused by: Post "https://api\.ecr\.us-east-1\.amazonaws\.com/": {TIMEOUT}', reason)
    with endpoints(aws, vpc, subnet, table, "ecr.api"):
        reason = fails_to_pull(aws, run_in(aws, subnet, family=ecr_family))
        assert re.fullmatch(
            r"CannotPullContainerError: pull image manifest has been retried 5 time\(s\): failed to resolve ref "
            rf"{re.escape(ECR_IMAGE)}: failed to do request: Head "
            rf'"https://{ACCOUNT}\.dkr\.ecr\.us-east-1\.amazonaws\.com/v2/jump/jumphost/manifests/1": {TIMEOUT}',
            reason), reason
        with endpoints(aws, vpc, subnet, table, "ecr.dkr"):
            reason = fails_to_pull(aws, run_in(aws, subnet, family=ecr_family))
            assert re.fullmatch(
                r"CannotPullContainerError: ref pull has been retried 1 time\(s\): failed to copy: httpReadSeeker: "
                r'failed open: failed to do request: Get "https://prod-us-east-1-starport-layer-bucket\.s3\.'
                rf'us-east-1\.amazonaws\.com/[0-9a-f/-]+": {TIMEOUT}', reason), reason
            _, other_table = new_subnet(aws, vpc)
            with endpoints(aws, vpc, subnet, other_table, "s3"):  # a gateway serves only its route tables
                assert "starport-layer-bucket" in fails_to_pull(aws, run_in(aws, subnet, family=ecr_family))
            with endpoints(aws, vpc, subnet, table, "s3"):
                running = runs(aws, run_in(aws, subnet, family=ecr_family))
                stop(aws, running["taskArn"])


def test_endpoints_serve_only_their_own_region(aws, vpc):
    image = f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com/jump/jumphost:1"
    aws.register(family="routes-ecr-elsewhere", image=image)
    subnet, table = new_subnet(aws, vpc)
    with endpoints(aws, vpc, subnet, table, "ecr.api", "ecr.dkr", "s3"):
        reason = fails_to_pull(aws, run_in(aws, subnet, family="routes-ecr-elsewhere"))
    assert reason.startswith("ResourceInitializationError: unable to pull secrets or registry auth")
    assert 'Post "https://api.ecr.eu-west-1.amazonaws.com/"' in reason


# ---- the exec agent needs a way to ssmmessages ---------------------------------


def test_exec_never_connects_without_a_way_to_ssmmessages_until_an_endpoint_serves_new_tasks(aws, vpc, ecr_family):
    subnet, table = new_subnet(aws, vpc)
    with endpoints(aws, vpc, subnet, table, "ecr.api", "ecr.dkr", "s3"):
        stranded = runs(aws, run_in(aws, subnet, family=ecr_family, enableExecuteCommand=True))
        agent = stranded["containers"][0]["managedAgents"][0]
        assert agent["lastStatus"] == "RUNNING"  # ECS shows nothing wrong
        connected_at = agent["lastStartedAt"].timestamp() + aws.timing()["agent_connect"]
        time.sleep(max(0.0, connected_at - time.time()) + 0.2)  # a known deadline: nothing to poll for
        target = target_of(aws, stranded)

        def refused(task: dict, target: str) -> None:
            err = error_of(aws.ecs.execute_command, cluster=aws.cluster, task=task["taskArn"], command="sh",
                           interactive=True)
            assert err == {"Code": "TargetNotConnectedException", "Message": INTERNAL_ERROR}
            err = error_of(aws.ssm.start_session, Target=target)
            assert err == {"Code": "TargetNotConnected", "Message": f"{target} is not connected."}

        refused(stranded, target)
        with endpoints(aws, vpc, subnet, table, "ssmmessages"):
            served = runs(aws, run_in(aws, subnet, family=ecr_family, enableExecuteCommand=True))
            session = until_connected(lambda: aws.ecs.execute_command(
                cluster=aws.cluster, task=served["taskArn"], command="true", interactive=True))
            assert session["session"]["streamUrl"].startswith("ws://127.0.0.1:")
            assert aws.ssm.start_session(Target=target_of(aws, served))["StreamUrl"]
            refused(stranded, target)  # its agent gave up long ago
        stop(aws, stranded["taskArn"], served["taskArn"])


def target_of(aws, task: dict) -> str:
    return f"ecs:{aws.cluster}_{task['taskArn'].split('/')[-1]}_{task['containers'][0]['runtimeId']}"


def until_connected(call, timeout: float = 20):
    """CALL's answer once the agent has registered (TargetNotConnectedException until then)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call()
        except botocore.exceptions.ClientError as err:
            if err.response["Error"]["Code"] != "TargetNotConnectedException" or time.monotonic() > deadline:
                raise
        time.sleep(0.2)


# ---- the accounts the sandbox models -------------------------------------------


def test_default_vpc_subnets_route_only_through_an_internet_gateway(aws):
    default = aws.ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]
    assert default["CidrBlock"] == "172.31.0.0/16"
    subnets = aws.ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [default["VpcId"]]}])["Subnets"]
    assert len(subnets) >= 2 and all(s["DefaultForAz"] for s in subnets)
    igw = internet_gateway(aws, default["VpcId"])
    for subnet in subnets:
        route = default_route(table_of(aws, subnet["SubnetId"], default["VpcId"]))
        assert route is not None and route.get("GatewayId") == igw and "NatGatewayId" not in route
    # So a jumphost there needs a public IP.
    assert HUB_TIMEOUT.fullmatch(fails_to_pull(aws, run_in(aws, subnets[0]["SubnetId"])))


def test_the_sandbox_subnets_route_through_a_nat_gateway_in_a_public_subnet(aws, vpc):
    nat = nat_gateway(aws, vpc)
    for subnet in aws.subnets:
        assert default_route(table_of(aws, subnet, vpc))["NatGatewayId"] == nat
    home = aws.ec2.describe_nat_gateways(NatGatewayIds=[nat])["NatGateways"][0]["SubnetId"]
    assert default_route(table_of(aws, home, vpc))["GatewayId"] == internet_gateway(aws, vpc)
    running = runs(aws, run_in(aws, aws.subnets[0]))  # a private address is enough
    stop(aws, running["taskArn"])
