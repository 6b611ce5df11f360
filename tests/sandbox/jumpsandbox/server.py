"""Starting and stopping one sandbox instance.

Start-up order matters for hygiene: the instance directory (with our pid) is
written before any namespace or link exists, so that whatever a crash leaves
behind is always attributable and removed by the next start or by ``clean``.
"""

import os
import random
import secrets
import signal
import sys
import threading
from pathlib import Path

os.environ.setdefault("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")

import boto3  # noqa: E402
from moto.moto_server.werkzeug_app import (  # noqa: E402
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server  # noqa: E402

from .app import SandboxApp  # noqa: E402
from .ecs_services import ServiceScheduler  # noqa: E402
from .ecs_tasks import TaskService, Timing  # noqa: E402
from .exec_api import SessionApi  # noqa: E402
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

REGION = "us-east-1"


class QuietHandler(MotoRequestHandler):
    """Request lines would drown the sandbox's own messages; errors still print."""

    def log_request(self, code="-", size="-"):
        pass

CLUSTER = "jump-sandbox"


def require_root() -> None:
    if os.geteuid() != 0:
        sys.exit("jump sandbox: must run as root (it creates network namespaces, veths and a bridge)")


def _bootstrap(endpoint: str, vpc_net) -> dict:
    """Creates the VPC, subnets, security group and cluster that `jump up` uses by default."""
    session = boto3.session.Session(aws_access_key_id="sandbox", aws_secret_access_key="sandbox", region_name=REGION)
    ec2 = session.client("ec2", endpoint_url=endpoint)
    ecs = session.client("ecs", endpoint_url=endpoint)
    vpc = ec2.create_vpc(CidrBlock=str(vpc_net))["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
    subnets = []
    for index, zone in ((1, "a"), (2, "b")):
        cidr = str(list(vpc_net.subnets(new_prefix=24))[index])
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock=cidr, AvailabilityZone=f"{REGION}{zone}")
        subnets.append(subnet["Subnet"]["SubnetId"])
    group = ec2.create_security_group(GroupName="jump-sandbox", Description="jump sandbox jumphosts", VpcId=vpc)
    ecs.create_cluster(clusterName=CLUSTER)
    return {"vpc": vpc, "subnets": subnets, "security_group": group["GroupId"]}


def start(port: int, env_file: str | None, step: float, stop_on_eof: bool = False) -> None:
    require_root()
    instance = secrets.token_hex(2)
    state_dir = STATE_ROOT / instance
    with machine_lock():
        for line in clean_stale():
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

    tasks = TaskService(network, state_dir, Timing(step=step))
    services = ServiceScheduler(tasks)
    databases = Databases(network, state_dir, next_db_address)
    info = {"instance": instance, "vpc_cidr": str(vpc_net), "public_cidr": str(network.public_net)}
    simulator = PolicySimulator()
    gateway = Gateway()
    sessions = SessionApi(tasks, gateway, simulator)
    moto_app = DomainDispatcherApplication(create_backend_app)
    app = SandboxApp(moto_app, tasks, services, databases, simulator, sessions, info)
    server = make_server("127.0.0.1", port, app, threaded=True, request_handler=QuietHandler)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    endpoint = f"http://127.0.0.1:{server.server_port}"
    try:
        created = _bootstrap(endpoint, vpc_net)
        env = {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "sandbox",
            "AWS_SECRET_ACCESS_KEY": "sandbox",
            "JUMP_CLUSTER": CLUSTER,
            "JUMP_SUBNETS": ",".join(created["subnets"]),
            "JUMP_SECURITY_GROUPS": created["security_group"],
            "JUMP_SANDBOX_INSTANCE": instance,
        }
        lines = "".join(f"{key}={value}\n" for key, value in env.items())
        if env_file:
            tmp = Path(env_file + ".tmp")
            tmp.write_text(lines)
            tmp.rename(env_file)
        sys.stdout.write(lines)
        print(f"# jump sandbox {instance} ready: VPC {vpc_net}, public {network.public_net}; Ctrl-C stops it")
        sys.stdout.flush()
        stop.wait()
    finally:
        print("# jump sandbox stopping", file=sys.stderr)
        server.shutdown()
        gateway.stop()
        services.close()  # or stopping tasks would be replaced
        tasks.stop_all()
        databases.stop_all()
        network.destroy()
        if env_file and Path(env_file).exists():
            Path(env_file).unlink()


def clean() -> None:
    require_root()
    with machine_lock():
        removed = clean_stale()
    for line in removed:
        print(f"removed {line}")
    print(f"clean: {len(removed)} leftover object(s) removed")
