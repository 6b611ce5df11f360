"""EventBridge Scheduler: schedules whose target is an ECS task, and their invocations.

moto keeps a schedule's record and never invokes its target, and takes a schedule
Scheduler refuses (a name with a space, `rate(0 minutes)`, no flexible time window, a
task count of 50). The sandbox refuses those first, in Scheduler's words where known
(botocore's model for lengths and patterns, the API reference for the rest), and then
invokes ECS targets: a `rate(...)` schedule at its rate, and any schedule whenever
``ctl schedule-fire NAME`` asks (a test cannot wait out 15 minutes; the invocation is
the one the schedule would make).

An invocation is Scheduler's RunTask, made with the schedule's role: it runs only if
the role exists, trusts scheduler.amazonaws.com, and may call ecs:RunTask on the task
definition and pass the task's roles (the sandbox's policy evaluator judges both, as
IAM would). Otherwise nothing runs and the invocation is recorded as failed, as
Scheduler counts it (``ctl schedules`` shows each one).
"""

import io
import json
import re
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote

from moto.core import DEFAULT_ACCOUNT_ID
from moto.iam.models import iam_backends
from moto.scheduler.models import scheduler_backends

from .awsproto import AwsError
from .ecs_tasks import TaskService, trusts
from .policy_eval import ALLOWED, Context
from .validation import constraint_errors, coral_message

PRINCIPAL = "scheduler.amazonaws.com"
# rate(value unit), with a singular unit for 1 and a plural one otherwise (API reference, schedule types).
RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
CRON = re.compile(r"^cron\(\S+ \S+ \S+ \S+ \S+ \S+\)$")
AT = re.compile(r"^at\(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\)$")
UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}
CLUSTER_ARN = re.compile(r"^arn:aws:ecs:([a-z0-9-]+):(\d{12}):cluster/([A-Za-z0-9_-]+)$")


def _invalid(message: str) -> AwsError:
    return AwsError("ValidationException", message)


def check_schedule(body: dict, action: str) -> None:
    """What Scheduler refuses in a CreateSchedule or UpdateSchedule request."""
    errors = constraint_errors("scheduler", action, body)
    if errors:
        raise _invalid(coral_message(errors))
    expression = body.get("ScheduleExpression") or ""
    rate = RATE.match(expression)
    if rate:
        value, unit = int(rate.group(1)), rate.group(2)
        if value < 1 or (value == 1) != (not unit.endswith("s")):
            raise _invalid(f"Invalid Schedule Expression {expression}.")
    elif not (CRON.match(expression) or AT.match(expression)):
        raise _invalid(f"Invalid Schedule Expression {expression}.")
    window = body.get("FlexibleTimeWindow") or {}
    if window.get("Mode") == "FLEXIBLE" and not window.get("MaximumWindowInMinutes"):
        raise _invalid("MaximumWindowInMinutes must be specified when Mode is FLEXIBLE.")
    if window.get("Mode") == "OFF" and window.get("MaximumWindowInMinutes"):
        raise _invalid("MaximumWindowInMinutes must not be specified when Mode is OFF.")
    ecs = (body.get("Target") or {}).get("EcsParameters")
    if ecs is not None:
        if not ecs.get("TaskDefinitionArn"):
            raise _invalid("TaskDefinitionArn is required in EcsParameters.")
        count = ecs.get("TaskCount", 1)
        if not 1 <= int(count) <= 10:
            raise _invalid(coral_message([f"Value '{count}' at 'target.ecsParameters.taskCount' failed to satisfy "
                                          "constraint: Member must have value between 1 and 10"]))


@dataclass
class Invocation:
    at: float
    schedule: str
    task: str | None = None
    error: str | None = None


@dataclass
class _Armed:
    timer: threading.Timer | None = None
    generation: int = 0


@dataclass
class Scheduler:
    tasks: TaskService
    simulator: object
    invocations: list = field(default_factory=list)
    armed: dict = field(default_factory=dict)  # (region, group, name) -> _Armed
    lock: threading.Lock = field(default_factory=threading.Lock)
    closed: bool = False

    # ---- the API, in front of moto -------------------------------------

    def handle(self, environ, region: str, moto):
        """Checks a Scheduler request, lets moto answer it, and arms or disarms the schedule."""
        method = environ.get("REQUEST_METHOD", "GET")
        path = unquote(environ.get("PATH_INFO", ""))
        match = re.fullmatch(r"/schedules/([^/]+)", path)
        if not match:
            return moto()
        name = match.group(1)
        query = parse_qs(environ.get("QUERY_STRING", ""))
        body = {}
        if method in ("POST", "PUT"):
            length = int(environ.get("CONTENT_LENGTH") or 0)
            raw = environ["wsgi.input"].read(length) if length else b""
            environ["wsgi.input"] = io.BytesIO(raw)
            body = json.loads(raw or b"{}")
            check_schedule(body | {"Name": name}, "CreateSchedule" if method == "POST" else "UpdateSchedule")
        group = body.get("GroupName") or (query.get("groupName") or ["default"])[0]
        answer = moto()
        if method in ("POST", "PUT"):
            self._arm(region, group, name, body.get("ScheduleExpression", ""), body.get("State", "ENABLED"))
        elif method == "DELETE":
            self._disarm(region, group, name)
        return answer

    def close(self) -> None:
        with self.lock:
            self.closed = True
            for armed in self.armed.values():
                if armed.timer:
                    armed.timer.cancel()

    # ---- invocations ---------------------------------------------------

    def fire(self, region: str, group: str, name: str) -> Invocation:
        """Invokes the schedule's target now, as Scheduler would when it is due."""
        invocation = Invocation(time.time(), f"{group}/{name}")
        try:
            schedule = scheduler_backends[DEFAULT_ACCOUNT_ID][region].get_schedule(group, name)
            invocation.task = self._run_target(region, schedule.target or {})
        except Exception as err:  # Scheduler records a failed invocation and carries on
            invocation.error = str(err)
        with self.lock:
            self.invocations.append(invocation)
        return invocation

    def _run_target(self, region: str, target: dict) -> str:
        cluster = CLUSTER_ARN.match(target.get("Arn") or "")
        ecs = target.get("EcsParameters")
        if not cluster or ecs is None:
            raise ValueError(f"the sandbox invokes ECS RunTask targets only, not {target.get('Arn')}")
        role_arn = target.get("RoleArn") or ""
        try:
            role = iam_backends[DEFAULT_ACCOUNT_ID]["global"].get_role_by_arn(role_arn)
        except Exception:
            raise ValueError(f"role {role_arn} does not exist") from None
        if not trusts(role.assume_role_policy_document, PRINCIPAL):
            raise ValueError(f"role {role_arn} does not trust {PRINCIPAL}")
        definition = ecs["TaskDefinitionArn"]
        on_cluster = Context([("ecs:cluster", [cluster.group(0)], "string")])
        if self.simulator.decision(role_arn, "ecs:RunTask", definition, on_cluster) != ALLOWED:
            raise ValueError(f"role {role_arn} may not call ecs:RunTask on {definition}")
        taskdef = self.tasks.plan(region, {"cluster": cluster.group(3), "taskDefinition": definition,
                                           "launchType": "FARGATE", "networkConfiguration": _network(ecs)}).taskdef
        for passed in filter(None, (taskdef.task_role_arn, taskdef.execution_role_arn)):
            to_ecs = Context([("iam:PassedToService", ["ecs-tasks.amazonaws.com"], "string")])
            if self.simulator.decision(role_arn, "iam:PassRole", passed, to_ecs) != ALLOWED:
                raise ValueError(f"role {role_arn} may not pass {passed} (iam:PassRole)")
        request = {
            "cluster": cluster.group(3),
            "taskDefinition": definition,
            "count": int(ecs.get("TaskCount", 1)),
            "launchType": ecs.get("LaunchType", "FARGATE"),
            "networkConfiguration": _network(ecs),
            "enableExecuteCommand": bool(ecs.get("EnableExecuteCommand")),
            "tags": [{"key": k, "value": v} for tag in ecs.get("Tags") or [] for k, v in tag.items()],
        }
        if ecs.get("Group"):
            request["group"] = ecs["Group"]
        started = self.tasks.run_task(region, request)
        return started["tasks"][0]["taskArn"]

    # ---- timers --------------------------------------------------------

    def _arm(self, region: str, group: str, name: str, expression: str, state: str) -> None:
        self._disarm(region, group, name)
        rate = RATE.match(expression)
        if not rate or state != "ENABLED":
            return
        period = int(rate.group(1)) * UNIT_SECONDS[rate.group(2).rstrip("s")]
        with self.lock:
            armed = self.armed.setdefault((region, group, name), _Armed())
            armed.generation += 1
            self._schedule(armed, armed.generation, period, (region, group, name))

    def _schedule(self, armed: _Armed, generation: int, period: float, key: tuple) -> None:
        def due():
            with self.lock:
                if self.closed or armed.generation != generation:
                    return
            self.fire(*key)
            with self.lock:
                if not self.closed and armed.generation == generation:
                    self._schedule(armed, generation, period, key)

        armed.timer = threading.Timer(period, due)
        armed.timer.daemon = True
        armed.timer.start()

    def _disarm(self, region: str, group: str, name: str) -> None:
        with self.lock:
            armed = self.armed.get((region, group, name))
            if armed is not None:
                armed.generation += 1
                if armed.timer:
                    armed.timer.cancel()


def _network(ecs: dict) -> dict:
    """Scheduler's NetworkConfiguration (capitalised) as RunTask spells it."""
    vpc = (ecs.get("NetworkConfiguration") or {}).get("awsvpcConfiguration") or {}
    return {"awsvpcConfiguration": {
        "subnets": vpc.get("Subnets") or [],
        "securityGroups": vpc.get("SecurityGroups") or [],
        "assignPublicIp": vpc.get("AssignPublicIp") or "DISABLED",
    }}
