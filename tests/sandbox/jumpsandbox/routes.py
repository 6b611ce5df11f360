"""What a task's subnet lets it reach, read from moto's EC2 state the way AWS routes.

A Fargate task pulls its image, and its exec agent dials Session Manager's
`ssmmessages` endpoint, through its own network interface, so both depend on
the subnet it lands in. A sandbox that let every task pull and connect hid the
commonest Fargate failure there is: a jumphost put in a private subnet without
a NAT gateway, or in a public one without a public IP, never starts
(CannotPullContainerError ... i/o timeout), and one that starts from ECR
through VPC endpoints runs but can never be reached by ECS Exec.

The reading is AWS's: the subnet's explicitly associated route table, else the
VPC's main one; its 0.0.0.0/0 route leads out through a NAT gateway (for any
address, if the NAT gateway is public, available and itself in a subnet routed
to an attached internet gateway), or through an attached internet gateway
(only for a task with a public IP), or nowhere. Without a way out, only VPC
endpoints of the task's region in the task's VPC reach AWS: interface endpoints
with private DNS (`ssmmessages`, `ecr.api`, `ecr.dkr`), and the S3 gateway
endpoint if it is associated with the subnet's route table. Network ACLs and
endpoint policies are not evaluated, and security groups act on the data plane
only (firewall.py): an egress rule that shuts out 443 does not fail a pull here.

This is control-plane modelling only: the data plane (network.py) routes
nothing beyond the sandbox's own bridge, and nothing here dials anything; the
addresses in the messages are text.
"""

import hashlib
from dataclasses import dataclass

from .images import DOCKER_HUB, ecr_repository, parse

NAT, INTERNET_GATEWAY, NONE = "nat", "igw", "none"
# Docker Hub's references name docker.io; its registry API lives elsewhere.
REGISTRY_HOSTS = {DOCKER_HUB: "registry-1.docker.io"}


@dataclass(frozen=True)
class Reach:
    """How a task in one subnet gets to the internet and to AWS services."""

    way_out: str  # NAT, INTERNET_GATEWAY or NONE
    public_ip: bool
    interface_endpoints: frozenset[str]  # short service names, e.g. "ssmmessages", "ecr.dkr"
    gateway_endpoints: frozenset[str]  # e.g. "s3", associated with the subnet's route table

    @property
    def internet(self) -> bool:
        return self.way_out == NAT or (self.way_out == INTERNET_GATEWAY and self.public_ip)

    def reaches(self, service: str) -> bool:
        """Whether the task reaches `com.amazonaws.<its region>.<service>`."""
        if self.internet:
            return True
        if service == "s3":  # ECR's layers come from S3 through the gateway endpoint
            return service in self.gateway_endpoints
        return service in self.interface_endpoints


def route_table(ec2, subnet):
    """The table that routes SUBNET: its explicit association, else its VPC's main table."""
    for filters in ({"association.subnet-id": [subnet.id]},
                    {"vpc-id": [subnet.vpc_id], "association.main": ["true"]}):
        tables = ec2.describe_route_tables(filters=filters)
        if tables:
            return tables[0]
    return None


def way_out(ec2, table, vpc_id: str) -> str:
    """Where TABLE sends traffic for the internet: NAT, INTERNET_GATEWAY or NONE."""
    way = NONE
    for route in table.routes if table is not None else []:
        if route.destination_cidr_block != "0.0.0.0/0":
            continue
        if route.nat_gateway is not None and _nat_reaches_internet(ec2, route.nat_gateway):
            return NAT
        if _attached_internet_gateway(route.gateway, vpc_id):
            way = INTERNET_GATEWAY
    return way


def _attached_internet_gateway(gateway, vpc_id: str) -> bool:
    """A route to a detached internet gateway is a blackhole."""
    vpc = getattr(gateway, "vpc", None)
    return gateway is not None and gateway.id.startswith("igw-") and vpc is not None and vpc.id == vpc_id


def _nat_reaches_internet(ec2, nat) -> bool:
    """A public NAT gateway gets out only through the internet gateway route of its own subnet."""
    if nat.state != "available" or nat.connectivity_type == "private":
        return False
    subnet = ec2.get_subnet(nat.subnet_id)
    return way_out(ec2, route_table(ec2, subnet), subnet.vpc_id) == INTERNET_GATEWAY


def reach(ec2, subnet, public_ip: bool, region: str) -> Reach:
    """What a task in SUBNET (of REGION), with or without a public IP, can reach."""
    table = route_table(ec2, subnet)
    prefix = f"com.amazonaws.{region}."
    interface, gateway = set(), set()
    for endpoint in list(ec2.vpc_end_points.values()):
        if endpoint.vpc_id != subnet.vpc_id or endpoint.state != "available":
            continue
        if not endpoint.service_name.startswith(prefix):
            continue
        service = endpoint.service_name[len(prefix):]
        # CreateVpcEndpoint's VpcEndpointType defaults to Gateway.
        kind = (endpoint.vpc_endpoint_type or "Gateway").lower()
        if kind == "interface" and endpoint.private_dns_enabled is not False:
            interface.add(service)  # without private DNS, clients still resolve the public name
        elif kind == "gateway" and table is not None and table.id in (endpoint.route_table_ids or []):
            gateway.add(service)
    return Reach(way_out(ec2, table, subnet.vpc_id), public_ip, frozenset(interface), frozenset(gateway))


def pull_failure(reach_: Reach, image: str, region: str) -> str | None:
    """Why a task with this reach cannot pull IMAGE (its stoppedReason), or None if it can.

    An ECR image of the task's region needs ecr.api (registry auth, through the execution
    role), then ecr.dkr (the manifest), then S3 (the layers); anything else needs the
    internet. The ECR auth and layer wordings are best guesses at the tails of messages
    seen in public reports.
    """
    if reach_.internet:
        return None
    ref = parse(image)
    host, _, path = ref.repository.partition("/")
    ecr = ecr_repository(ref)
    through_endpoints = ecr is not None and ecr.region == region
    if ecr is not None and not (through_endpoints and reach_.reaches("ecr.api")):
        api = f"api.ecr.{ecr.region}.amazonaws.com"
        return (
            "ResourceInitializationError: unable to pull secrets or registry auth: execution resource retrieval "
            "failed: unable to retrieve ecr registry auth: service call has been retried 3 time(s): RequestError: "
            f'send request failed caused by: Post "https://{api}/": {_timeout(api)}'
        )
    if not (through_endpoints and reach_.reaches("ecr.dkr")):
        registry = REGISTRY_HOSTS.get(host, host)
        manifest = f"https://{registry}/v2/{path}/manifests/{ref.digest or ref.tag or 'latest'}"
        return (
            "CannotPullContainerError: pull image manifest has been retried 5 time(s): failed to resolve ref "
            f'{ref.canonical()}: failed to do request: Head "{manifest}": {_timeout(registry)}'
        )
    if not reach_.reaches("s3"):
        bucket = f"prod-{region}-starport-layer-bucket.s3.{region}.amazonaws.com"
        layer = hashlib.sha256(ref.canonical().encode()).hexdigest()
        return (
            "CannotPullContainerError: ref pull has been retried 1 time(s): failed to copy: httpReadSeeker: failed "
            f'open: failed to do request: Get "https://{bucket}/{layer[:4]}-{layer[4:40]}/{layer[40:]}": '
            f"{_timeout(bucket)}"
        )
    return None


def _timeout(host: str) -> str:
    """The dial error of a connection nothing answers; the address is made up, stable per host."""
    digest = hashlib.sha256(host.encode()).digest()
    return f"dial tcp 52.{digest[0]}.{digest[1]}.{1 + digest[2] % 254}:443: i/o timeout"
