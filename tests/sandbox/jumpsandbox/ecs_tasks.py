"""ECS tasks, answered by the sandbox instead of moto.

moto's task model runs backwards (RUNNING, then towards STOPPED on every
describe), drops enableExecuteCommand and tags propagation, has no runtime
ids, managed agents, timestamps or exit codes, and 500s on valid Fargate task
definitions. Rather than patch each of those, the sandbox owns the task
actions (RunTask, DescribeTasks, ListTasks, StopTask and tagging of task
ARNs) and keeps reading clusters, task definitions, subnets and security
groups from moto's backends, so everything else stays moto's. Services start
their tasks through the same model (ecs_services.py).

Each task has one lifecycle thread that walks it through the states ECS
reports, with configurable delays, and that starts and ends the task's real
host in the data plane. On the way it fails the task where ECS would: a role
ECS cannot assume (unknown, not trusting ecs-tasks.amazonaws.com, or created
too recently for IAM to have propagated it), an image its subnet gives it no
way to pull (see routes.py), an image no registry has (see images.py), a
container Docker cannot start. A task whose subnet reaches no `ssmmessages`
endpoint runs, but its exec agent never connects (``ssm_reachable``).
"""

import base64
import datetime
import ipaddress
import json
import random
import re
import secrets
import shutil
import threading
import time
import uuid
from dataclasses import dataclass, field

from moto.core import DEFAULT_ACCOUNT_ID
from moto.ec2.models import ec2_backends
from moto.ecs.models import ecs_backends
from moto.iam.models import iam_backends

from .awsproto import AwsError
from .containers import CannotStart, cannot_start
from .dataplane import ForgedHostKey, LogSink, MainProcess, task_environment
from .images import Catalogue, Image, container_argv, parse, pull_error
from .network import NetworkError
from .registry_auth import pull_denial
from .routes import pull_failure, reach
from .taskdefs import FARGATE_SIZES, no_fargate_size
from .validation import exec_role_error

ACCOUNT = DEFAULT_ACCOUNT_ID
STOPPED = "STOPPED"
# Linux Fargate platform versions a task may ask for, and what each runs as.
PLATFORM_VERSIONS = {"LATEST": "1.4.0", "1.4.0": "1.4.0", "1.3.0": "1.3.0"}
TASK_FAULT_KINDS = ("pull-error", "crash", "logger-error", *ForgedHostKey.KINDS)
# RunTask `failures` reasons (ECS developer guide, "API failure reasons"; the capacity text as
# ECS returns it for Fargate, where the failure carries no ARN).
RUN_FAILURES = {
    "capacity": "Capacity is unavailable at this time. Please try again later or in a different availability zone",
    "eni": "RESOURCE:ENI",
}
# awsvpcConfiguration limits (ECS API reference, AwsVpcConfiguration).
MAX_SUBNETS = 16
MAX_SECURITY_GROUPS = 5
STARTED_BY = re.compile(r"^[A-Za-z0-9_/-]{1,128}$")
# ListTasks filters that startedBy excludes: "it must be the only filter that you use".
LIST_FILTERS = ("family", "desiredStatus", "serviceName", "containerInstance", "launchType")
ECS_TASKS_PRINCIPAL = "ecs-tasks.amazonaws.com"


def invalid(message: str) -> AwsError:
    return AwsError("InvalidParameterException", message)


def check_tags(tags: list) -> None:
    """ECS's tag rules (API reference, Tag): 50 at most, key 1-128 and value 0-256 characters, no aws: keys."""
    if len(tags) > 50:
        raise invalid("Tags can have at most 50 items.")
    for tag in tags:
        key, value = tag.get("key") or "", tag.get("value") or ""
        if not 1 <= len(key) <= 128 or len(value) > 256:
            raise invalid(f"Tag {key[:128]!r} is invalid: keys have 1 to 128 characters, values at most 256.")
        if key.lower().startswith("aws:"):
            raise invalid("Tag keys may not begin with the reserved prefix aws:.")


def unassumable_role(arn: str, propagation: float) -> bool:
    """True if ECS could not assume this role now: unknown, not trusting ECS tasks, or too new.

    IAM is eventually consistent: a role is assumable only some seconds after CreateRole.
    """
    try:
        role = iam_backends[ACCOUNT]["global"].get_role_by_arn(arn)
    except Exception:
        return True
    age = (datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None) - role.create_date).total_seconds()
    return age < propagation or not trusts(role.assume_role_policy_document, ECS_TASKS_PRINCIPAL)


def trusts(document, service: str) -> bool:
    """Whether a trust policy lets SERVICE (e.g. ecs-tasks.amazonaws.com) call sts:AssumeRole
    (conditions are not evaluated)."""
    try:
        policy = json.loads(document) if isinstance(document, str) else document
    except ValueError:
        return False
    statements = policy.get("Statement") or []
    if isinstance(statements, dict):
        statements = [statements]

    def matches(statement) -> bool:
        actions = statement.get("Action") or []
        actions = [actions] if isinstance(actions, str) else actions
        if not any(a in ("sts:AssumeRole", "sts:*", "*") for a in actions):
            return False
        principal = statement.get("Principal") or {}
        if principal == "*":
            return True
        services = principal.get("Service") or [] if isinstance(principal, dict) else []
        services = [services] if isinstance(services, str) else services
        return service in services

    effects = [s.get("Effect") for s in statements if isinstance(s, dict) and matches(s)]
    return "Allow" in effects and "Deny" not in effects


def start_error(argv: list[str], path: str) -> str | None:
    """Docker's refusal to start a container with this argv, if it would refuse (wording as runc reports it)."""
    if not argv:
        return "CannotStartContainerError: Error response from daemon: No command specified"
    if shutil.which(argv[0], path=path) is not None:
        return None
    why = f"stat {argv[0]}: no such file or directory" if "/" in argv[0] else "executable file not found in $PATH"
    return cannot_start(f'runc create failed: unable to start container process: exec: "{argv[0]}": {why}')


# Where the exec agent writes; with a read-only root it crashes soon after launch unless all
# three are writable volumes (containers-roadmap#1359, amazon-ecs-exec-checker#21).
EXEC_AGENT_PATHS = ("/managed-agents", "/var/lib/amazon/ssm", "/var/log/amazon/ssm")


def task_volumes(task) -> tuple[list[tuple[str, str, bool]], str | None]:
    """The main container's (volume, containerPath, readOnly) mounts, or why the sandbox cannot make them.

    Fargate gives a task-definition volume with no other configuration an empty directory
    that lives as long as the task; EFS volumes need a file system the sandbox does not have.
    """
    volumes = {v.get("name"): v for v in task.volumes}
    mounts = []
    for point in task.containers[0].definition.get("mountPoints") or []:
        volume = volumes.get(point.get("sourceVolume"))
        if volume is None:
            return [], f"mount point names unknown volume {point.get('sourceVolume')!r}"
        if set(volume) - {"name", "host"} or (volume.get("host") or {}).get("sourcePath"):
            return [], f"volume {volume['name']!r}: the sandbox has only task-scoped bind-mount volumes"
        mounts.append((volume["name"], point.get("containerPath", ""), bool(point.get("readOnly"))))
    return mounts, None


def exec_agent_survives(task, mounts) -> bool:
    if not task.containers[0].definition.get("readonlyRootFilesystem"):
        return True
    writable = {path for _, path, ro in mounts if not ro}
    return all(path in writable for path in EXEC_AGENT_PATHS)


def assume_role_failure(arn: str) -> str:
    return (
        f"ECS was unable to assume the role '{arn}' that was provided for this task. Please verify that the role "
        "being passed has the proper trust relationship and permissions and that your IAM user has permissions to "
        "pass this role."
    )


@dataclass
class Timing:
    """How long each lifecycle step takes. Tests shrink these."""

    step: float = 1.0  # each of PROVISIONING, PENDING, ACTIVATING and each stop phase
    stop_grace: float = 3.0  # SIGTERM to SIGKILL, like the container stopTimeout
    # The exec agent reports RUNNING this long before sessions can reach it; meanwhile
    # ExecuteCommand and StartSession answer TargetNotConnectedException (containers-roadmap#187).
    agent_connect: float = 3.0
    # A role is assumable by ECS only this long after CreateRole (IAM is eventually consistent).
    iam_propagation: float = 5.0


@dataclass
class TaskFault:
    kind: str  # one of TASK_FAULT_KINDS
    count: int = 1
    image: str | None = None
    after: float = 1.0
    exit_code: int = 1


@dataclass
class RunFailure:
    """The next COUNT RunTask calls place no task and answer this reason in `failures`."""

    kind: str  # one of RUN_FAILURES
    count: int = 1
    image: str | None = None


@dataclass
class Launch:
    """A RunTask request that passed validation: what each of its tasks is made from."""

    cluster: object  # moto's cluster
    taskdef: object  # moto's task definition
    params: dict  # the request (startedBy, group, enableExecuteCommand, ...)
    count: int
    overrides: dict
    cpu: str
    memory: str
    subnets: list
    groups: list
    public: bool
    tags: list


@dataclass
class Container:
    name: str
    image: str
    definition: dict
    arn: str
    runtime_id: str
    last_status: str = "PENDING"
    exit_code: int | None = None
    reason: str | None = None


@dataclass
class Task:
    id: str
    arn: str
    region: str
    cluster_arn: str
    cluster_name: str
    taskdef_arn: str
    family: str
    cpu: str
    memory: str
    containers: list
    overrides: dict
    started_by: str | None
    group: str
    tags: list
    exec_enabled: bool
    subnet_id: str
    availability_zone: str
    private_ip: str
    public_ip: str | None
    eni_id: str
    attachment_id: str
    mac: str
    private_dns: str
    prefixlen: int
    vpc_gateway: str
    log_config: dict | None
    fault: TaskFault | None
    task_role: str | None
    execution_role: str | None
    volumes: list = field(default_factory=list)  # the task definition's
    created_at: float = field(default_factory=time.time)
    last_status: str = "PROVISIONING"
    desired_status: str = "RUNNING"
    version: int = 1
    attachment_status: str = "PRECREATED"
    pull_started_at: float | None = None
    pull_stopped_at: float | None = None
    started_at: float | None = None
    connectivity_at: float | None = None
    stopping_at: float | None = None
    stopped_at: float | None = None
    execution_stopped_at: float | None = None
    stop_code: str | None = None
    stopped_reason: str | None = None
    agent_status: str = "PENDING"
    agent_started_at: float | None = None
    # Whether the exec agent can reach ssmmessages from the task's subnet (routes.py); decided
    # at the pull step. Without it ExecuteCommand and StartSession never find the agent connected.
    ssm_reachable: bool = True
    main_override: dict = field(default_factory=dict)  # containerOverrides entry of the main container
    setup_error: str | None = None  # why the data plane cannot host this task, if it cannot
    stop_requested: threading.Event = field(default_factory=threading.Event)
    host_ns: str | None = None
    security_groups: list = field(default_factory=list)  # its ENI's, enforced by firewall.py
    host_pid: int | None = None  # the main container process: the namespaces exec sessions enter
    container_name: str | None = None  # podman's name for it, when it is a real container
    platform_version: str = "1.4.0"

    def set_status(self, status: str) -> None:
        self.last_status = status
        self.version += 1

    def to_json(self, include_tags: bool) -> dict:
        detail = [
            {"name": "subnetId", "value": self.subnet_id},
            {"name": "networkInterfaceId", "value": self.eni_id},
            {"name": "macAddress", "value": self.mac},
            {"name": "privateDnsName", "value": self.private_dns},
            {"name": "privateIPv4Address", "value": self.private_ip},
        ]
        body = {
            "taskArn": self.arn,
            "clusterArn": self.cluster_arn,
            "taskDefinitionArn": self.taskdef_arn,
            "lastStatus": self.last_status,
            "desiredStatus": self.desired_status,
            "launchType": "FARGATE",
            "platformVersion": self.platform_version,
            "platformFamily": "Linux",
            "cpu": self.cpu,
            "memory": self.memory,
            "group": self.group,
            "version": self.version,
            "createdAt": self.created_at,
            "availabilityZone": self.availability_zone,
            "enableExecuteCommand": self.exec_enabled,
            "healthStatus": "UNKNOWN",
            "ephemeralStorage": {"sizeInGiB": 20},
            "overrides": self.overrides,
            "attributes": [{"name": "ecs.cpu-architecture", "value": "x86_64"}],
            "attachments": [
                {
                    "id": self.attachment_id,
                    "type": "ElasticNetworkInterface",
                    "status": self.attachment_status,
                    "details": detail,
                }
            ],
            "containers": [self._container_json(c) for c in self.containers],
        }
        optional = {
            "startedBy": self.started_by,
            "pullStartedAt": self.pull_started_at,
            "pullStoppedAt": self.pull_stopped_at,
            "startedAt": self.started_at,
            "connectivity": "CONNECTED" if self.connectivity_at else None,
            "connectivityAt": self.connectivity_at,
            "stoppingAt": self.stopping_at,
            "stoppedAt": self.stopped_at,
            "executionStoppedAt": self.execution_stopped_at,
            "stopCode": self.stop_code,
            "stoppedReason": self.stopped_reason,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        if include_tags:
            body["tags"] = self.tags
        return body

    def _container_json(self, c: Container) -> dict:
        body = {
            "containerArn": c.arn,
            "taskArn": self.arn,
            "name": c.name,
            "image": c.image,
            "runtimeId": c.runtime_id,
            "lastStatus": c.last_status,
            "networkBindings": [],
            "networkInterfaces": [{"attachmentId": self.attachment_id, "privateIpv4Address": self.private_ip}],
            "healthStatus": "UNKNOWN",
            "cpu": str(c.definition.get("cpu", 0)),
        }
        if c.exit_code is not None:
            body["exitCode"] = c.exit_code
        if c.reason:
            body["reason"] = c.reason
        if self.exec_enabled:
            agent = {"name": "ExecuteCommandAgent", "lastStatus": self.agent_status}
            if self.agent_started_at:
                agent["lastStartedAt"] = self.agent_started_at
            body["managedAgents"] = [agent]
        return body


class TaskService:
    """The sandbox's ECS task API and the lifecycle of every task."""

    def __init__(self, network, firewall, state_dir, timing: Timing, simulator, containers=None):
        self.network = network
        self.firewall = firewall  # the security groups of every task's interface, on the data plane
        self.simulator = simulator  # judges what the execution role may pull
        self.state_dir = state_dir
        self.timing = timing
        self.containers = containers  # containers.Podman, when the jumphost image runs for real
        self.endpoints = None  # task_endpoint.TaskEndpoints: the task role's credentials and the API, from a task
        self.images = Catalogue(Image(containers.entrypoint, containers.cmd, True)) if containers else Catalogue()
        self.tasks: dict[str, Task] = {}
        self.order: list[str] = []
        self.faults: list[TaskFault] = []
        self.run_failures: list[RunFailure] = []
        self.lock = threading.RLock()
        self.threads: list[threading.Thread] = []
        self.stop_hooks: list = []  # called with a task as it starts stopping
        self._allocated: set[str] = set()
        self._cursor: dict[str, int] = {}  # per subnet: where the next address search starts

    # ---- API -----------------------------------------------------------

    def handle(self, action: str, region: str, params: dict) -> dict | None:
        handler = {
            "RunTask": self._run_task_call,
            "DescribeTasks": self.describe_tasks,
            "ListTasks": self.list_tasks,
            "StopTask": self.stop_task,
            "TagResource": self.tag_resource,
            "UntagResource": self.untag_resource,
            "ListTagsForResource": self.list_tags,
        }.get(action)
        if handler is None:
            return None
        if action in ("TagResource", "UntagResource", "ListTagsForResource") and ":task/" not in params.get(
            "resourceArn", ""
        ):
            return None
        return handler(region, params)

    def _cluster(self, region: str, name: str | None):
        backend = ecs_backends[ACCOUNT][region]
        cluster = backend.clusters.get((name or "default").split("/")[-1])
        if cluster is None:
            raise AwsError("ClusterNotFoundException", "Cluster not found.")
        return cluster

    def _run_task_call(self, region: str, p: dict) -> dict:
        """RunTask from a client: valid requests may still place nothing (injected run failures)."""
        launch = self.plan(region, p)
        failure = self._take_run_failure(launch.taskdef.container_definitions[0].get("image", ""))
        if failure is not None:
            return {"tasks": [], "failures": [{"reason": RUN_FAILURES[failure.kind]}]}
        return self._started(region, launch)

    def run_task(self, region: str, p: dict) -> dict:
        return self._started(region, self.plan(region, p))

    def _started(self, region: str, launch: Launch) -> dict:
        created = [self._create(region, launch) for _ in range(launch.count)]
        return {"tasks": [t.to_json(include_tags=True) for t in created], "failures": []}

    def _take_run_failure(self, image: str) -> RunFailure | None:
        with self.lock:
            for failure in self.run_failures:
                if failure.count > 0 and (failure.image is None or failure.image in image):
                    failure.count -= 1
                    self.run_failures = [f for f in self.run_failures if f.count > 0]
                    return failure
        return None

    def plan(self, region: str, p: dict, caller: str = "RunTask") -> Launch:
        """Validates a RunTask request as ECS does, before anything is created.

        Services call it too (CALLER names the action, for ECS's wording): CreateService
        must fail on what RunTask would refuse, rather than create a service whose tasks
        can never start.
        """
        cluster = self._cluster(region, p.get("cluster"))
        backend = ecs_backends[ACCOUNT][region]
        ec2 = ec2_backends[ACCOUNT][region]
        if not p.get("taskDefinition"):
            raise invalid("taskDefinition can not be blank.")
        try:
            taskdef = backend.describe_task_definition(p["taskDefinition"])
        except Exception:
            raise AwsError("ClientException", "Unable to describe task definition.") from None
        count = int(p.get("count", 1))
        if not 1 <= count <= 10:
            raise invalid("count must be between 1 and 10.")
        launch_type = p.get("launchType", "FARGATE")
        if launch_type != "FARGATE" and not p.get("capacityProviderStrategy"):
            raise invalid(f"The sandbox runs Fargate tasks only (launchType {launch_type}).")
        if "FARGATE" not in (taskdef.compatibilities or []):
            raise invalid("Task definition does not support launch_type FARGATE.")
        overrides = p.get("overrides") or {}
        cpu = str(overrides.get("cpu") or taskdef.cpu or "")
        memory = str(overrides.get("memory") or taskdef.memory or "")
        if not cpu or not memory:
            raise invalid("Fargate requires that 'cpu' and 'memory' be defined at the task level.")
        if not cpu.isdigit() or not memory.isdigit() or int(memory) not in FARGATE_SIZES.get(int(cpu), []):
            raise invalid(no_fargate_size(cpu, memory))
        vpc_config = (p.get("networkConfiguration") or {}).get("awsvpcConfiguration")
        if not vpc_config:
            raise invalid("Network Configuration must be provided when networkMode 'awsvpc' is specified.")
        subnet_ids = vpc_config.get("subnets") or []
        if not subnet_ids:
            raise invalid("subnets can not be empty.")
        if len(subnet_ids) > MAX_SUBNETS:
            raise invalid(f"subnets can have at most {MAX_SUBNETS} items.")
        if len(vpc_config.get("securityGroups") or []) > MAX_SECURITY_GROUPS:
            # Best guess at the wording, by analogy with the subnets message.
            raise invalid(f"securityGroups can have at most {MAX_SECURITY_GROUPS} items.")
        subnets = []
        for sid in subnet_ids:
            try:
                subnets.append(ec2.get_subnet(sid))
            except Exception:
                raise invalid(
                    f"Error retrieving subnet information for [{sid}]: The subnet ID '{sid}' does not exist "
                    "(ErrorCode: InvalidSubnetID.NotFound)"
                ) from None
        if len({s.vpc_id for s in subnets}) > 1:
            raise invalid("Subnets must all be in the same VPC.")
        groups = vpc_config.get("securityGroups") or []
        for gid in groups:
            group = ec2.get_security_group_from_id(gid)
            if group is None:
                raise invalid(
                    f"Error retrieving security group information for [{gid}]: The security group '{gid}' "
                    "does not exist (ErrorCode: InvalidGroup.NotFound)"
                )
            if group.vpc_id != subnets[0].vpc_id:  # the interface would sit in one VPC, its group in another
                raise invalid(f"Security group {gid} and subnet {subnets[0].id} belong to different networks.")
        if not groups:
            default = ec2.get_security_group_from_name("default", vpc_id=subnets[0].vpc_id)
            groups = [default.id] if default else []
        public = vpc_config.get("assignPublicIp", "DISABLED") == "ENABLED"
        tags = list(p.get("tags") or [])
        check_tags(tags)
        propagate = p.get("propagateTags")
        if propagate == "TASK_DEFINITION":
            tags = [t for t in taskdef.tags if t["key"] not in {x["key"] for x in tags}] + tags
        started_by = p.get("startedBy")
        if started_by is not None and not STARTED_BY.match(started_by):
            raise invalid(
                "startedBy may have up to 128 letters (uppercase and lowercase), numbers, hyphens (-), "
                "forward slashes (/) and underscores (_)."
            )
        if p.get("platformVersion", "LATEST") not in PLATFORM_VERSIONS:
            raise invalid(f"Platform version {p['platformVersion']} is not supported for Linux Fargate tasks.")
        self._check_overrides(taskdef, overrides)
        if p.get("enableExecuteCommand"):
            refusal = exec_role_error(caller, taskdef, overrides)
            if refusal is not None:
                raise refusal
        return Launch(cluster, taskdef, p, count, overrides, cpu, memory, subnets, groups, public, tags)

    @staticmethod
    def _check_overrides(taskdef, overrides: dict) -> None:
        names = {c["name"] for c in taskdef.container_definitions}
        for co in overrides.get("containerOverrides") or []:
            if co.get("name") not in names:
                raise invalid(f"Override for container named {co.get('name')} is not a container in the TaskDefinition.")

    def _create(self, region: str, launch: Launch) -> Task:
        cluster, taskdef, p, overrides = launch.cluster, launch.taskdef, launch.params, launch.overrides
        ec2 = ec2_backends[ACCOUNT][region]
        subnet = random.choice(launch.subnets)
        vpc = ec2.get_vpc(subnet.vpc_id)
        task_id = secrets.token_hex(16)
        arn = f"arn:aws:ecs:{region}:{ACCOUNT}:task/{cluster.name}/{task_id}"
        gateway = None
        try:
            gateway = self.network.ensure_vpc(vpc.cidr_block)
        except NetworkError as err:
            setup_error = str(err)
        else:
            setup_error = None
        private_ip = self._allocate_ip(ec2, subnet)
        description = f"arn:aws:ecs:{region}:{ACCOUNT}:attachment/{task_id}"
        eni = ec2.create_network_interface(subnet, private_ip, group_ids=launch.groups, description=description)
        public_ip = self.network.next_public_ip() if launch.public else None
        if public_ip:
            eni.public_ip = public_ip
        prefix = ipaddress.ip_network(vpc.cidr_block).prefixlen
        containers = []
        by_name = {co["name"]: co for co in overrides.get("containerOverrides") or []}
        for definition in taskdef.container_definitions:
            containers.append(
                Container(
                    name=definition["name"],
                    image=definition.get("image", ""),
                    definition=definition,
                    arn=f"arn:aws:ecs:{region}:{ACCOUNT}:container/{cluster.name}/{task_id}/{uuid.uuid4()}",
                    runtime_id=f"{task_id}-{random.randint(10**9, 10**10 - 1)}",
                )
            )
        main = containers[0]
        fault = self._take_fault(main.image)
        dns_suffix = "ec2.internal" if region == "us-east-1" else f"{region}.compute.internal"
        task = Task(
            id=task_id,
            arn=arn,
            region=region,
            cluster_arn=cluster.arn,
            cluster_name=cluster.name,
            taskdef_arn=taskdef.arn,
            family=taskdef.family,
            cpu=launch.cpu,
            memory=launch.memory,
            containers=containers,
            overrides={"containerOverrides": overrides.get("containerOverrides") or [], "inferenceAcceleratorOverrides": []}
            | {k: v for k, v in overrides.items() if k != "containerOverrides"},
            started_by=p.get("startedBy"),
            group=p.get("group") or f"family:{taskdef.family}",
            tags=list(launch.tags),
            exec_enabled=bool(p.get("enableExecuteCommand")),
            subnet_id=subnet.id,
            availability_zone=subnet.availability_zone,
            private_ip=private_ip,
            public_ip=public_ip,
            eni_id=eni.id,
            attachment_id=str(uuid.uuid4()),
            mac=eni.mac_address,
            private_dns=f"ip-{private_ip.replace('.', '-')}.{dns_suffix}",
            prefixlen=prefix,
            vpc_gateway=gateway or "",
            log_config=main.definition.get("logConfiguration"),
            fault=fault,
            task_role=overrides.get("taskRoleArn") or getattr(taskdef, "task_role_arn", None),
            execution_role=overrides.get("executionRoleArn") or getattr(taskdef, "execution_role_arn", None),
            volumes=list(getattr(taskdef, "volumes", None) or []),
            main_override=by_name.get(main.name, {}),
            setup_error=setup_error,
            security_groups=list(launch.groups),
            platform_version=PLATFORM_VERSIONS[p.get("platformVersion", "LATEST")],
        )
        with self.lock:
            self.tasks[task_id] = task
            self.order.append(task_id)
        thread = threading.Thread(target=self._lifecycle, args=(task,), name=f"task-{task_id[:8]}", daemon=True)
        self.threads.append(thread)
        thread.start()
        return task

    def _allocate_ip(self, ec2, subnet) -> str:
        net = ipaddress.ip_network(subnet.cidr_block)
        in_use = {eni.private_ip_address for eni in ec2.enis.values()}
        with self.lock:
            # AWS reserves the first four addresses and the last of every subnet. The
            # search goes round the subnet, so a just-freed address is the last reused.
            usable = range(4, net.num_addresses - 1)
            start = self._cursor.get(subnet.id, 0)
            for step in range(len(usable)):
                index = (start + step) % len(usable)
                candidate = str(net.network_address + usable[index])
                if candidate not in in_use and candidate not in self._allocated:
                    self._allocated.add(candidate)
                    self._cursor[subnet.id] = index + 1
                    return candidate
        raise invalid(f"Subnet {subnet.id} has no free addresses.")

    def _take_fault(self, image: str) -> TaskFault | None:
        with self.lock:
            for fault in self.faults:
                if fault.count > 0 and (fault.image is None or fault.image in image):
                    fault.count -= 1
                    taken = TaskFault(fault.kind, 1, fault.image, fault.after, fault.exit_code)
                    self.faults = [f for f in self.faults if f.count > 0]
                    return taken
        return None

    def _find(self, region: str, cluster_name: str | None, ref: str) -> Task | None:
        task_id = ref.split("/")[-1]
        task = self.tasks.get(task_id)
        if task is None or task.region != region:
            return None
        if cluster_name and cluster_name.split("/")[-1] != task.cluster_name:
            return None
        return task

    def describe_tasks(self, region: str, p: dict) -> dict:
        cluster = self._cluster(region, p.get("cluster"))
        refs = p.get("tasks") or []
        if not refs:
            raise invalid("Tasks cannot be empty.")
        if len(refs) > 100:
            raise invalid("Tasks can have at most 100 items.")
        include_tags = "TAGS" in (p.get("include") or [])
        found, failures = [], []
        with self.lock:
            for ref in refs:
                task = self._find(region, cluster.name, ref)
                if task is None:
                    arn = ref if ref.startswith("arn:") else f"arn:aws:ecs:{region}:{ACCOUNT}:task/{cluster.name}/{ref}"
                    failures.append({"arn": arn, "reason": "MISSING"})
                else:
                    found.append(task.to_json(include_tags))
        return {"tasks": found, "failures": failures}

    def age(self, arn: str, seconds: float) -> str:
        """Moves a task's ECS-set timestamps SECONDS into the past: a task started long ago,
        for tests of what judges tasks by createdAt (no caller can set it on AWS)."""
        if seconds < 0:
            raise ValueError("seconds must not be negative")
        with self.lock:
            task = next((t for t in self.tasks.values() if t.arn == arn), None)
            if task is None:
                raise ValueError(f"no task {arn}")
            for name in ("created_at", "pull_started_at", "pull_stopped_at", "started_at", "connectivity_at"):
                if getattr(task, name) is not None:
                    setattr(task, name, getattr(task, name) - seconds)
            task.version += 1
        return arn

    def list_tasks(self, region: str, p: dict) -> dict:
        cluster = self._cluster(region, p.get("cluster"))
        if p.get("startedBy") and any(p.get(name) for name in LIST_FILTERS):
            raise invalid("cannot specify startedBy with other arguments")
        desired = p.get("desiredStatus", "RUNNING")
        if desired not in ("RUNNING", "PENDING", STOPPED):
            raise invalid("desiredStatus must be RUNNING, PENDING or STOPPED.")
        max_results = int(p.get("maxResults", 100))
        if not 1 <= max_results <= 100:
            raise invalid("maxResults must be between 1 and 100.")
        service = p.get("serviceName")
        if service and f"{cluster.name}:{service}" not in ecs_backends[ACCOUNT][region].services:
            raise AwsError("ServiceNotFoundException", "Service not found.")
        with self.lock:
            matching = [
                t.arn
                for t in (self.tasks[i] for i in self.order)
                if t.region == region
                and t.cluster_name == cluster.name
                and (t.desired_status == desired or (desired == "PENDING" and t.last_status in ("PROVISIONING", "PENDING")))
                and (not p.get("family") or t.family == p["family"])
                and (not p.get("startedBy") or t.started_by == p["startedBy"])
                and (not service or t.group == f"service:{service}")
                and p.get("launchType", "FARGATE") == "FARGATE"
                and not p.get("containerInstance")  # Fargate tasks have none
            ]
        start = 0
        if p.get("nextToken"):
            try:
                start = json.loads(base64.b64decode(p["nextToken"]))["offset"]
            except (ValueError, KeyError):
                raise invalid("Invalid nextToken.") from None
        page = matching[start : start + max_results]
        body = {"taskArns": page}
        if start + max_results < len(matching):
            body["nextToken"] = base64.b64encode(json.dumps({"offset": start + max_results}).encode()).decode()
        return body

    def stop_task(self, region: str, p: dict) -> dict:
        cluster = self._cluster(region, p.get("cluster"))
        ref = p.get("task") or ""
        if len(p.get("reason") or "") > 255:
            # "Up to 255 characters are allowed in this message" (API reference); the wording is a guess.
            raise invalid("reason can have at most 255 characters.")
        with self.lock:
            task = self._find(region, cluster.name, ref)
            if task is None:
                raise invalid("The referenced task was not found.")
            self.request_stop(task, "UserInitiated", p.get("reason") or "Task stopped by user")
            return {"task": task.to_json(include_tags=False)}

    def request_stop(self, task: Task, code: str, reason: str) -> None:
        """Asks the task's lifecycle to stop it; a second request keeps the first reason, as on ECS."""
        with self.lock:
            if task.desired_status != STOPPED:
                task.desired_status = STOPPED
                task.stop_code = task.stop_code or code
                task.stopped_reason = task.stopped_reason or reason
                task.version += 1
                task.stop_requested.set()

    def _task_by_arn(self, region: str, arn: str) -> Task:
        task = self._find(region, None, arn)
        if task is None:
            raise invalid("The specified task is not found.")
        return task

    def tag_resource(self, region: str, p: dict) -> dict:
        check_tags(p.get("tags") or [])
        with self.lock:
            task = self._task_by_arn(region, p["resourceArn"])
            new = {t["key"]: t["value"] for t in p.get("tags") or []}
            task.tags = [t for t in task.tags if t["key"] not in new] + [{"key": k, "value": v} for k, v in new.items()]
        return {}

    def untag_resource(self, region: str, p: dict) -> dict:
        with self.lock:
            task = self._task_by_arn(region, p["resourceArn"])
            drop = set(p.get("tagKeys") or [])
            task.tags = [t for t in task.tags if t["key"] not in drop]
        return {}

    def list_tags(self, region: str, p: dict) -> dict:
        with self.lock:
            return {"tags": list(self._task_by_arn(region, p["resourceArn"]).tags)}

    # ---- lifecycle -----------------------------------------------------

    def _pause(self, task: Task) -> bool:
        """Waits one step; True if a stop was requested meanwhile."""
        return task.stop_requested.wait(self.timing.step)

    def _lifecycle(self, task: Task) -> None:
        host = None
        try:
            host = self._start(task)
            if host is not None:
                self._run(task, host)
        except Exception as err:  # the sandbox must never leave a task half-alive
            self._fail_start(task, "TaskFailedToStart", f"sandbox error: {err}")
        finally:
            self._stop(task, host)

    def _start(self, task: Task):
        if self._pause(task):
            return None
        for role in (task.execution_role, task.task_role):
            if role and unassumable_role(role, self.timing.iam_propagation):
                self._fail_start(task, "TaskFailedToStart", assume_role_failure(role))
                return None
        with self.lock:
            task.set_status("PENDING")
            task.attachment_status = "ATTACHED"
            task.pull_started_at = time.time()
        if self._pause(task):
            return None
        main = task.containers[0]
        if task.fault and task.fault.kind == "pull-error":
            self._fail_start(task, "TaskFailedToStart", pull_error(main.image))
            return None
        ec2 = ec2_backends[ACCOUNT][task.region]
        network = reach(ec2, ec2.get_subnet(task.subnet_id), task.public_ip is not None, task.region)
        task.ssm_reachable = network.reaches("ssmmessages")
        for container in task.containers:
            unreachable = pull_failure(network, container.image, task.region)
            if unreachable:
                # Registry auth fails for the whole task; a pull, for its container.
                blamed = container if unreachable.startswith("CannotPullContainerError") else None
                self._fail_start(task, "TaskFailedToStart", unreachable, blamed)
                return None
        for container in task.containers:
            denial = pull_denial(self.simulator, task.execution_role, parse(container.image), task.id)
            if denial:
                reason, blamed = denial
                self._fail_start(task, "TaskFailedToStart", reason, container if blamed else None)
                return None
        for container in task.containers:
            if self.images.resolve(container.image) is None:
                self._fail_start(task, "TaskFailedToStart", pull_error(container.image), container)
                return None
        image = self.images.resolve(main.image)
        argv = container_argv(image, main.definition, task.main_override.get("command"))
        env = self._environment(task, on_host=not image.container)
        # A real container's command is looked up in its image, by runc, when it starts.
        unstartable = None if image.container else start_error(argv, env["PATH"])
        if unstartable:
            self._fail_start(task, "TaskFailedToStart", unstartable, main)
            return None
        mounts, unmountable = task_volumes(task)
        # A host-run process can honour neither. For a test image standing in for a service that
        # is moot; jump's own image must never be kinder than AWS, so it needs the real container.
        on_host_jumphost = image is self.images.jumphost and not image.container
        if on_host_jumphost and (mounts or main.definition.get("readonlyRootFilesystem")):
            unmountable = "a read-only root and volumes need a real container: start the sandbox with --jumphost-image"
        if unmountable:
            self._fail_start(task, "TaskFailedToStart", f"ResourceInitializationError: {unmountable}")
            return None
        if task.setup_error:
            self._fail_start(task, "TaskFailedToStart", f"ResourceInitializationError: {task.setup_error}")
            return None
        sink = self._log_sink(task)
        if sink is None:
            return None
        if task.fault and task.fault.kind in ForgedHostKey.KINDS:
            sink = ForgedHostKey(sink, self._runtime_dir(task), task.fault.kind, task.created_at)
        with self.lock:
            task.pull_stopped_at = time.time()
            task.set_status("ACTIVATING")
        host = self._launch(task, sink, image, argv, env, mounts)
        if host is None or self._pause(task):
            return host
        with self.lock:
            now = time.time()
            task.set_status("RUNNING")
            task.started_at = task.connectivity_at = now
            for c in task.containers:
                c.last_status = "RUNNING"
            if task.exec_enabled and exec_agent_survives(task, mounts):
                task.agent_status = "RUNNING"
                task.agent_started_at = now
            elif task.exec_enabled:
                task.agent_status = STOPPED
        return host

    def _log_sink(self, task: Task):
        config = task.log_config or {}
        if config.get("logDriver") != "awslogs":
            return _NoSink()
        options = config.get("options") or {}
        group = options.get("awslogs-group")
        if not group:
            self._fail_start(task, "TaskFailedToStart", "ResourceInitializationError: awslogs-group is required")
            return None
        prefix = options.get("awslogs-stream-prefix")
        stream = f"{prefix}/{task.containers[0].name}/{task.id}" if prefix else task.id
        create = str(options.get("awslogs-create-group", "false")).lower() == "true"
        if task.fault and task.fault.kind == "logger-error":
            create = False
            group = group + "-does-not-exist"
        try:
            return LogSink(options.get("awslogs-region", task.region), group, stream, create)
        except LookupError:
            self._fail_start(
                task,
                "TaskFailedToStart",
                "ResourceInitializationError: failed to validate logger args: create stream has been retried 1 "
                "times: failed to create Cloudwatch log stream: ResourceNotFoundException: The specified log "
                "group does not exist. : exit status 1",
            )
            return None

    def _environment(self, task: Task, on_host: bool) -> dict:
        """The main container's environment: the task definition's, merged with the overrides."""
        main = task.containers[0]
        env = {e["name"]: e["value"] for e in main.definition.get("environment") or []}
        env.update({e["name"]: e["value"] for e in task.main_override.get("environment") or []})
        if on_host:  # tasks share the host's /run: each entrypoint gets a directory of its own
            env.setdefault("JUMP_RUNTIME_DIR", str(self._runtime_dir(task) / "run"))
        return task_environment(task.region, env, on_host)

    def _launch(self, task: Task, sink, image: Image, argv: list[str], env: dict, mounts) -> MainProcess | None:
        addresses = [(task.private_ip, task.prefixlen)]
        if task.public_ip:
            addresses.append((task.public_ip, self.network.public_net.prefixlen))
        hostname = task.private_dns.split(".")[0]
        task.host_ns = self.network.add_host(task.id[:12], addresses, task.vpc_gateway, hostname)
        self.firewall.admit(task.host_ns, task.region, [a for a, _ in addresses], task.security_groups)
        if self.endpoints is not None:
            env = {**env, **self.endpoints.open(task)}
        runtime = self._runtime_dir(task)
        if not image.container:
            host = MainProcess.on_host(task.host_ns, hostname, argv, env, sink, runtime / "output.log")
        else:
            task.container_name = self.containers.name_for(task.id)
            read_only = bool(task.containers[0].definition.get("readonlyRootFilesystem"))
            try:
                host = self.containers.start(task.container_name, task.host_ns, hostname, argv, env, sink, runtime,
                                             read_only, mounts)
            except CannotStart as refused:
                self._fail_start(task, "TaskFailedToStart", str(refused), task.containers[0])
                return None
        task.host_pid = host.pid
        return host

    def _runtime_dir(self, task: Task):
        runtime = self.state_dir / "tasks" / task.id
        runtime.mkdir(parents=True, exist_ok=True)
        runtime.chmod(0o755)
        return runtime

    def _run(self, task: Task, host: MainProcess) -> None:
        crash_at = None
        if task.fault and task.fault.kind == "crash":
            crash_at = time.monotonic() + task.fault.after
        while not task.stop_requested.wait(0.05):
            code = host.poll()
            if code is not None:
                self._container_exited(task, host.wait(), "Essential container in task exited")
                return
            if crash_at and time.monotonic() >= crash_at:
                host.terminate(0)
                self._container_exited(task, task.fault.exit_code, "Essential container in task exited")
                return

    def _container_exited(self, task: Task, code: int, reason: str) -> None:
        with self.lock:
            task.containers[0].exit_code = code
            task.containers[0].last_status = STOPPED
            if task.desired_status != STOPPED:
                task.desired_status = STOPPED
                task.stop_code = "EssentialContainerExited"
                task.stopped_reason = reason
                task.version += 1

    def _fail_start(self, task: Task, code: str, reason: str, container: Container | None = None) -> None:
        """The task stops before RUNNING; the reason goes on CONTAINER if one is to blame, else on all."""
        with self.lock:
            if task.desired_status == STOPPED and task.stop_code:
                return
            task.desired_status = STOPPED
            task.stop_code = code
            task.stopped_reason = reason
            for c in [container] if container else task.containers:
                c.reason = reason
            task.version += 1

    def _stop(self, task: Task, host) -> None:
        with self.lock:
            task.desired_status = STOPPED
            task.stopping_at = time.time()
            if task.last_status not in ("PROVISIONING", "PENDING"):
                task.set_status("DEACTIVATING")
        for hook in self.stop_hooks:
            hook(task)
        time.sleep(self.timing.step)
        with self.lock:
            task.set_status("STOPPING")
        if host is not None:
            code = host.terminate(self.timing.stop_grace)
            with self.lock:
                if task.containers[0].exit_code is None:
                    task.containers[0].exit_code = code
        if task.container_name:
            self.containers.remove(task.container_name)
        time.sleep(self.timing.step)
        with self.lock:
            task.execution_stopped_at = time.time()
            task.set_status("DEPROVISIONING")
            task.agent_status = STOPPED if task.exec_enabled else task.agent_status
            for c in task.containers:
                c.last_status = STOPPED
        if self.endpoints is not None:
            self.endpoints.close(task)
        if task.host_ns:
            self.firewall.forget(task.host_ns)
            self.network.remove_host(task.host_ns)
        time.sleep(self.timing.step)
        ec2 = ec2_backends[ACCOUNT][task.region]
        try:
            ec2.delete_network_interface(task.eni_id)
        except Exception:
            pass
        with self.lock:
            self._allocated.discard(task.private_ip)
            task.attachment_status = "DELETED"
            task.stopped_at = time.time()
            task.set_status(STOPPED)

    def stop_all(self) -> None:
        with self.lock:
            for task in self.tasks.values():
                if task.desired_status != STOPPED:
                    task.stop_code, task.stopped_reason = "ServiceSchedulerInitiated", "sandbox shutting down"
                task.stop_requested.set()
        saved = self.timing.step
        self.timing.step = 0
        for thread in self.threads:
            thread.join(timeout=10)
        self.timing.step = saved


class _NoSink:
    """A container without a log driver: output goes nowhere, as on ECS."""

    def write(self, line: str) -> None:
        pass
