"""Starting and stopping one sandbox instance.

Start-up order matters for hygiene: the instance directory (with our pid) is
written before any namespace or link exists, so that whatever a crash leaves
behind is always attributable and removed by the next start or by ``clean``.
"""

import datetime
import json
import os
import random
import secrets
import signal
import sys
import threading
from pathlib import Path

os.environ.setdefault("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")

import boto3  # noqa: E402
from moto.iam.models import iam_backends  # noqa: E402
from moto.moto_server.werkzeug_app import (  # noqa: E402
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server  # noqa: E402

from . import containers  # noqa: E402
from .app import SandboxApp  # noqa: E402
from .ecs_services import ServiceScheduler  # noqa: E402
from .ecs_tasks import TaskService, Timing  # noqa: E402
from .exec_api import SessionApi  # noqa: E402
from .firewall import Firewall  # noqa: E402
from .gateway import Gateway  # noqa: E402
from .iam import PolicySimulator  # noqa: E402
from .network import (  # noqa: E402
    STATE_ROOT,
    VPC_CANDIDATES,
    Network,
    clean_stale,
    machine_lock,
    networks_in_use,
    pick_free,
)
from .rds import Databases  # noqa: E402
from .scheduler import Scheduler  # noqa: E402
from .task_endpoint import TaskEndpoints  # noqa: E402

REGION = "us-east-1"
TEMPLATES = Path(__file__).resolve().parents[3] / "templates"
ACCOUNT = "123456789012"
LOG_GROUP = "/jump/sessions"
ECR_REPOSITORY = "jump/jumphost"  # where the account keeps its jumphost image, if it uses ECR


class QuietHandler(MotoRequestHandler):
    """Request lines would drown the sandbox's own messages; errors still print."""

    def log_request(self, code="-", size="-"):
        pass

CLUSTER = "jump-sandbox"


def require_root() -> None:
    if os.geteuid() != 0:
        sys.exit("jump sandbox: must run as root (it creates network namespaces, veths and a bridge)")


def _bootstrap(endpoint: str, vpc_net, public_net) -> dict:
    """Creates the VPC, subnets, security group and cluster that `jump up` uses by default."""
    session = boto3.session.Session(aws_access_key_id="sandbox", aws_secret_access_key="sandbox", region_name=REGION)
    ec2 = session.client("ec2", endpoint_url=endpoint)
    ecs = session.client("ecs", endpoint_url=endpoint)
    vpc = ec2.create_vpc(CidrBlock=str(vpc_net))["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
    blocks = list(vpc_net.subnets(new_prefix=24))
    subnets = []
    for index, zone in ((1, "a"), (2, "b")):
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock=str(blocks[index]), AvailabilityZone=f"{REGION}{zone}")
        subnets.append(subnet["Subnet"]["SubnetId"])
    _bootstrap_routes(ec2, vpc, str(blocks[0]), subnets)
    _default_vpc_internet(ec2)
    group = ec2.create_security_group(GroupName="jump-sandbox", Description="jump sandbox jumphosts", VpcId=vpc)
    # What a team's jumphost group usually allows: ssh from inside the VPC (where the sandbox
    # host's bridge address is, as a VPN client's would be) and from the sandbox's stand-in
    # for the internet (an office's public range, for tasks with a public IP), and its
    # members to each other.
    ec2.authorize_security_group_ingress(
        GroupId=group["GroupId"],
        IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
             "IpRanges": [{"CidrIp": str(vpc_net)}, {"CidrIp": str(public_net)}]},
            {"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": group["GroupId"]}]},
        ],
    )
    ecs.create_cluster(clusterName=CLUSTER)
    roles = _bootstrap_roles(session.client("iam", endpoint_url=endpoint))
    return {"vpc": vpc, "subnets": subnets, "security_group": group["GroupId"], **roles}


def _named(kind: str, name: str) -> list:
    return [{"ResourceType": kind, "Tags": [{"Key": "Name", "Value": name}]}]


def _internet_gateway(ec2, vpc: str, name: str | None = None) -> str:
    igw = ec2.create_internet_gateway(TagSpecifications=_named("internet-gateway", name) if name else [])
    igw_id = igw["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw_id, VpcId=vpc)
    return igw_id


def _bootstrap_routes(ec2, vpc: str, public_cidr: str, private_subnets: list) -> None:
    """The usual layout of a VPC for private tasks: a public subnet routed to an internet
    gateway, holding a NAT gateway, and a route table sending the private subnets through it.

    The main table keeps only its local route, so a subnet added later is isolated until
    someone routes it (routes.py decides what that means for its tasks).
    """
    public = ec2.create_subnet(VpcId=vpc, CidrBlock=public_cidr, AvailabilityZone=f"{REGION}a",
                               TagSpecifications=_named("subnet", "jump-sandbox-public"))["Subnet"]["SubnetId"]
    igw = _internet_gateway(ec2, vpc, "jump-sandbox")
    public_table = ec2.create_route_table(VpcId=vpc, TagSpecifications=_named("route-table", "jump-sandbox-public"))
    public_table = public_table["RouteTable"]["RouteTableId"]
    ec2.create_route(RouteTableId=public_table, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
    ec2.associate_route_table(RouteTableId=public_table, SubnetId=public)
    address = ec2.allocate_address(Domain="vpc")["AllocationId"]
    nat = ec2.create_nat_gateway(SubnetId=public, AllocationId=address,
                                 TagSpecifications=_named("natgateway", "jump-sandbox"))["NatGateway"]["NatGatewayId"]
    private_table = ec2.create_route_table(VpcId=vpc, TagSpecifications=_named("route-table", "jump-sandbox-private"))
    private_table = private_table["RouteTable"]["RouteTableId"]
    ec2.create_route(RouteTableId=private_table, DestinationCidrBlock="0.0.0.0/0", NatGatewayId=nat)
    for subnet in private_subnets:
        ec2.associate_route_table(RouteTableId=private_table, SubnetId=subnet)


def _default_vpc_internet(ec2) -> None:
    """What a real account's default VPC has and moto's lacks: an internet gateway, and a
    0.0.0.0/0 route to it in the main route table, the only table its default subnets use."""
    default = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    igw = _internet_gateway(ec2, default)
    main = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [default]},
                                              {"Name": "association.main", "Values": ["true"]}])
    ec2.create_route(RouteTableId=main["RouteTables"][0]["RouteTableId"], DestinationCidrBlock="0.0.0.0/0",
                     GatewayId=igw)


def _template(name: str) -> str:
    """A policy from templates/, filled for the sandbox's account, as `jump init` fills it."""
    text = (TEMPLATES / name).read_text()
    values = {"partition": "aws", "region": REGION, "account": ACCOUNT, "log_group": LOG_GROUP,
              "ecr_repository": f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/{ECR_REPOSITORY}"}
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    json.loads(text)  # a template that no longer parses must fail the start, loudly
    return text


def _bootstrap_roles(iam) -> dict:
    """The task and execution roles an account prepared for jump has (what `jump init` makes).

    They model roles that existed long before the sandbox started, so IAM propagation
    (a role is unusable for a few seconds after CreateRole) does not apply to them.
    """
    trust = _template("ecs-tasks-trust-policy.json")
    arns = {}
    for key, name, policies in (
        ("task_role", "jump-sandbox-task", ["task-role-policy.json"]),
        ("execution_role", "jump-sandbox-task-execution",
         ["execution-role-policy.json", "execution-role-ecr-policy.json"]),
    ):
        arns[key] = iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust)["Role"]["Arn"]
        for policy in policies:
            iam.put_role_policy(RoleName=name, PolicyName=policy[:-5], PolicyDocument=_template(policy))
    backdate_roles(arns.values())
    # The caller (moto's default credentials are user/moto) is the account's administrator.
    iam.create_user(UserName="moto")
    iam.attach_user_policy(UserName="moto", PolicyArn="arn:aws:iam::aws:policy/AdministratorAccess")
    return arns


def backdate_roles(arns) -> None:
    """Marks roles as created an hour ago: long propagated, like those of a real account."""
    backend = iam_backends[ACCOUNT]["global"]
    for arn in arns:
        role = backend.get_role_by_arn(arn)
        role.create_date = role.create_date - datetime.timedelta(hours=1)


def start(port: int, env_file: str | None, step: float, stop_on_eof: bool = False,
          jumphost_image: str | None = None) -> None:
    require_root()
    instance = secrets.token_hex(2)
    state_dir = STATE_ROOT / instance
    podman = None
    if jumphost_image:
        try:
            podman = containers.Podman(jumphost_image, instance)
        except containers.ImageUnavailable as err:
            sys.exit(f"jump sandbox: --jumphost-image: {err}")
    with machine_lock():
        for line in clean_stale() + containers.remove_orphans():
            print(f"# cleaned leftover {line}", file=sys.stderr)
        state_dir.mkdir(parents=True)
        (state_dir / "pid").write_text(str(os.getpid()))
        candidates = VPC_CANDIDATES[:]
        random.shuffle(candidates)
        vpc_net = pick_free(candidates, networks_in_use())
        network = Network(instance)
        network.create(vpc_net)

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())
    if stop_on_eof:
        # A test process that dies, however it dies, closes this pipe.
        threading.Thread(target=lambda: (sys.stdin.buffer.read(), stop.set()), daemon=True).start()

    db_pool = iter(range(10, 250))
    db_net = list(vpc_net.subnets(new_prefix=24))[250]

    def next_db_address():
        return str(db_net.network_address + next(db_pool)), vpc_net.prefixlen, network.gateways[vpc_net]

    simulator = PolicySimulator()
    firewall = Firewall()
    tasks = TaskService(network, firewall, state_dir, Timing(step=step), simulator, podman)
    services = ServiceScheduler(tasks)
    databases = Databases(network, firewall, state_dir, next_db_address)
    info = {"instance": instance, "vpc_cidr": str(vpc_net), "public_cidr": str(network.public_net)}
    gateway = Gateway()
    sessions = SessionApi(tasks, gateway, simulator)
    moto_app = DomainDispatcherApplication(create_backend_app)
    scheduler = Scheduler(tasks, simulator)
    app = SandboxApp(moto_app, tasks, services, databases, simulator, sessions, info, firewall, scheduler)
    tasks.endpoints = TaskEndpoints(app.credentials)
    tasks.endpoints.api = app
    server = make_server("127.0.0.1", port, app, threaded=True, request_handler=QuietHandler)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    endpoint = f"http://127.0.0.1:{server.server_port}"
    try:
        created = _bootstrap(endpoint, vpc_net, network.public_net)
        env = {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "sandbox",
            "AWS_SECRET_ACCESS_KEY": "sandbox",
            "JUMP_CLUSTER": CLUSTER,
            "JUMP_SUBNETS": ",".join(created["subnets"]),
            "JUMP_SECURITY_GROUPS": created["security_group"],
            "JUMP_TASK_ROLE": created["task_role"],
            "JUMP_EXECUTION_ROLE": created["execution_role"],
            "JUMP_SANDBOX_INSTANCE": instance,
            # jump has no default image; this is the sandbox's stand-in for a team's own.
            "JUMP_IMAGE": "jump-sandbox/jumphost:latest",
        }
        lines = "".join(f"{key}={value}\n" for key, value in env.items())
        if env_file:
            tmp = Path(env_file + ".tmp")
            tmp.write_text(lines)
            tmp.rename(env_file)
        sys.stdout.write(lines)
        runs = f"the jumphost image {jumphost_image}" if podman else "jump's entrypoint on the host (no --jumphost-image)"
        print(f"# jump sandbox {instance} ready: VPC {vpc_net}, public {network.public_net}; jumphost tasks run "
              f"{runs}; Ctrl-C stops it")
        sys.stdout.flush()
        stop.wait()
    finally:
        print("# jump sandbox stopping", file=sys.stderr)
        server.shutdown()
        gateway.stop()
        services.close()  # or stopping tasks would be replaced
        scheduler.close()  # nor new ones started
        tasks.stop_all()
        databases.stop_all()
        network.destroy()
        if podman:  # any container a stuck task thread did not remove (its instance is gone now)
            containers.remove_orphans()
        if env_file and Path(env_file).exists():
            Path(env_file).unlink()


def clean() -> None:
    require_root()
    with machine_lock():
        removed = clean_stale() + containers.remove_orphans()
    for line in removed:
        print(f"removed {line}")
    print(f"clean: {len(removed)} leftover object(s) removed")
