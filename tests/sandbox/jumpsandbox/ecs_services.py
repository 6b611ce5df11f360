"""ECS services whose tasks are sandbox tasks.

moto keeps a service's record, but its task counts are arithmetic: no task of
a service ever exists where ListTasks, DescribeTasks or ExecuteCommand could
find it. So the sandbox lets moto keep the record (CreateService and the rest
still go to moto, and ListServices stays moto's alone) and runs the service's
tasks itself, through the same task model as RunTask. In moto's answers it
then corrects what only the sandbox knows: the counts, the deployment id that
started the tasks, enableExecuteCommand, and DRAINING while a deleted
service's tasks stop.

Scheduling follows one rule, as ECS's scheduler does: whenever a service
changes, and whenever one of its tasks starts stopping, start the missing
tasks and stop the surplus. Scaling, deletion and replacing a task that died
all come from that rule. Like ECS's, the scheduler backs off while tasks keep
failing to start (an image that cannot be pulled, a role ECS cannot assume
yet), instead of starting one every few steps.
"""

import secrets
import sys
import threading
from dataclasses import dataclass

from moto.core import DEFAULT_ACCOUNT_ID
from moto.ecs.models import ecs_backends

from .awsproto import AwsError
from .ecs_tasks import STOPPED, TaskService, check_tags, invalid

ACTIONS = ("CreateService", "UpdateService", "DeleteService", "DescribeServices")
STARTING = ("PROVISIONING", "PENDING", "ACTIVATING")
# CreateService fields that say how each task runs, named as RunTask names them.
UPDATABLE = ("taskDefinition", "networkConfiguration", "enableExecuteCommand", "capacityProviderStrategy")
LAUNCH_FIELDS = (*UPDATABLE, "launchType")
MAX_BACKOFF_STEPS = 32  # lifecycle steps between attempts, at most, after repeated start failures


@dataclass
class Service:
    region: str
    cluster: str
    name: str
    desired: int
    deployment: str  # ecs-svc/<19 digits>: the startedBy of each of its tasks
    launch: dict  # the RunTask request for one of its tasks
    active: bool = True

    def owns(self, task) -> bool:
        return (
            task.region == self.region
            and task.cluster_name == self.cluster
            and task.group == f"service:{self.name}"
            and task.started_by == self.deployment
        )


class ServiceScheduler:
    def __init__(self, tasks: TaskService):
        self.tasks = tasks
        self.services: dict[tuple[str, str, str], Service] = {}
        self.lock = threading.Lock()  # taken before tasks.lock, never after
        self.closed = False
        tasks.stop_hooks.append(self._task_stopping)

    def handle(self, action: str, region: str, p: dict, moto) -> dict:
        """Answers a service action; ``moto()`` forwards the request and returns moto's answer."""
        if action == "CreateService":
            return self._create(region, p, moto)
        if action == "UpdateService":
            return self._update(region, p, moto)
        if action == "DeleteService":
            return self._delete(region, p, moto)
        body = moto()
        body["services"] = [self._patch(region, record) for record in body.get("services", [])]
        return body

    def close(self) -> None:
        """From now on, starts nothing: the sandbox is stopping every task."""
        with self.lock:
            self.closed = True

    # ---- actions ---------------------------------------------------------

    def _create(self, region: str, p: dict, moto) -> dict:
        cluster = self.tasks._cluster(region, p.get("cluster")).name
        name = p.get("serviceName") or ""
        old = self._get(region, cluster, name)
        if old is not None and old.active:
            raise invalid("Creation of service was not idempotent.")
        deployment = f"ecs-svc/{10**18 + secrets.randbelow(9 * 10**18)}"
        launch = {key: p[key] for key in LAUNCH_FIELDS if key in p}
        launch.update(cluster=cluster, group=f"service:{name}", startedBy=deployment)
        if p.get("propagateTags") in ("TASK_DEFINITION", "SERVICE"):
            launch["propagateTags"] = p["propagateTags"]
        check_tags(p.get("tags") or [])
        launch = self._validated(region, launch, "CreateService")
        body = moto()
        service = Service(region, cluster, name, int(p.get("desiredCount") or 0), deployment, launch)
        with self.lock:
            self.services[(region, cluster, name)] = service
        self._reconcile(service)
        body["service"] = self._patch(region, body["service"])
        return body

    def _update(self, region: str, p: dict, moto) -> dict:
        """Scales, and changes how later tasks run (no rolling deployment of the running ones)."""
        cluster = self.tasks._cluster(region, p.get("cluster")).name
        service = self._get(region, cluster, (p.get("service") or "").split("/")[-1])
        if service is None:
            return moto()
        if not service.active:
            raise AwsError("ServiceNotActiveException", "Service was not ACTIVE.")
        changed = {key: p[key] for key in UPDATABLE if key in p}
        launch = self._validated(region, service.launch | changed, "UpdateService")
        body = moto()
        with self.lock:
            service.launch = launch
            if p.get("desiredCount") is not None:
                service.desired = int(p["desiredCount"])
        self._reconcile(service)
        body["service"] = self._patch(region, body["service"])
        return body

    def _delete(self, region: str, p: dict, moto) -> dict:
        cluster = self.tasks._cluster(region, p.get("cluster")).name
        service = self._get(region, cluster, (p.get("service") or "").split("/")[-1])
        body = moto()  # moto refuses a service still scaled above 0 unless forced, as ECS does
        if service is not None:
            with self.lock:
                service.active = False
                service.desired = 0
            self._reconcile(service)
            body["service"] = self._patch(region, body["service"])
        return body

    def _validated(self, region: str, launch: dict, action: str) -> dict:
        """Refuses what RunTask would refuse; pins the task definition to the revision it names now."""
        plan = self.tasks.plan(region, launch, action)
        return launch | {"taskDefinition": plan.taskdef.arn}

    # ---- scheduling ------------------------------------------------------

    def _reconcile(self, service: Service) -> None:
        with self.lock:
            if self.closed:
                return
            wanted = service.desired if service.active else 0
            live = [t for t in self._tasks_of(service) if t.desired_status != STOPPED]
            reason = f"Scaling activity initiated by (deployment {service.deployment})"
            for task in live[wanted:]:
                self.tasks.request_stop(task, "ServiceSchedulerInitiated", reason)
            missing = wanted - len(live)
            launch = dict(service.launch)
            if launch.get("propagateTags") == "SERVICE":
                # Tags are copied when a task is created, from what the service carries then.
                launch["tags"] = self._service_tags(service)
                del launch["propagateTags"]
            try:
                while missing > 0:
                    count = min(missing, 10)
                    self.tasks.run_task(service.region, launch | {"count": count})
                    missing -= count
            except Exception as err:  # ECS records an event; the caller (an answer, a stopping task) goes on
                print(f"# sandbox: service {service.name} could not start a task: {err}", file=sys.stderr)

    def _task_stopping(self, task) -> None:
        """A service's task that stops, for whatever reason, is replaced while the service wants it."""
        if not task.group.startswith("service:"):
            return
        service = self._get(task.region, task.cluster_name, task.group[len("service:") :])
        if service is None or not service.owns(task):
            return
        failures = self._start_failures(service)
        if failures:
            delay = min(2**failures, MAX_BACKOFF_STEPS) * self.tasks.timing.step
            timer = threading.Timer(delay, self._reconcile, args=(service,))
            timer.daemon = True
            timer.start()
        else:
            self._reconcile(service)

    def _start_failures(self, service: Service) -> int:
        """How many of the service's latest tasks in a row failed to start."""
        count = 0
        for task in sorted(self._tasks_of(service), key=lambda t: t.created_at, reverse=True):
            if task.stop_code != "TaskFailedToStart":
                break
            count += 1
        return count

    def _tasks_of(self, service: Service) -> list:
        with self.tasks.lock:
            return [t for t in self.tasks.tasks.values() if service.owns(t)]

    def _service_tags(self, service: Service) -> list:
        """The tags moto's record of the service carries now (TagResource and UntagResource change them)."""
        record = ecs_backends[DEFAULT_ACCOUNT_ID][service.region].services.get(f"{service.cluster}:{service.name}")
        return [dict(t) for t in (record.tags or [])] if record is not None else []

    def _get(self, region: str, cluster: str, name: str) -> Service | None:
        with self.lock:
            return self.services.get((region, cluster, name))

    # ---- answers ---------------------------------------------------------

    def _patch(self, region: str, record: dict) -> dict:
        """moto's service record, with what the sandbox's tasks say about it."""
        cluster = record.get("clusterArn", "").split("/")[-1]
        service = self._get(region, cluster, record.get("serviceName", ""))
        if service is None:
            return record
        tasks = self._tasks_of(service)
        running = sum(t.last_status == "RUNNING" and t.desired_status == "RUNNING" for t in tasks)
        pending = sum(t.last_status in STARTING and t.desired_status == "RUNNING" for t in tasks)
        counts = {"desiredCount": service.desired, "runningCount": running, "pendingCount": pending}
        record.update(counts, taskDefinition=service.launch["taskDefinition"])
        record["enableExecuteCommand"] = bool(service.launch.get("enableExecuteCommand"))
        if not service.active:
            record["status"] = "DRAINING" if any(t.last_status != STOPPED for t in tasks) else "INACTIVE"
        done = running == service.desired and pending == 0
        for deployment in record.get("deployments", [])[:1]:
            deployment.update(
                counts,
                id=service.deployment,
                taskDefinition=service.launch["taskDefinition"],
                rolloutState="COMPLETED" if done else "IN_PROGRESS",
                rolloutStateReason=f"ECS deployment {service.deployment} {'completed' if done else 'in progress'}.",
            )
        return record
