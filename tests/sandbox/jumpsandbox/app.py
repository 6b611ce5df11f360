"""The sandbox's HTTP front: AWS API requests and the test control API.

Every request passes here before moto. In order: the control API
(``/_sandbox/...``), injected faults, the actions the sandbox answers itself
(ECS tasks, IAM policy simulation), calls signed with expired temporary
credentials (credentials.py), what AWS refuses before acting
(validation.py: IAM, CloudWatch Logs, ECS clusters, RDS) and
RegisterTaskDefinition's Fargate checks (taskdefs.py), then moto, with hooks after RDS instance
creation and deletion and after security group changes so the data plane
follows, and around ECS service actions so that services run sandbox tasks.

Control API (JSON over HTTP on the same port; ``tests/sandbox/ctl`` wraps it):
  GET    /_sandbox/health                      -> {"ok": true, "instance": ...}
  POST   /_sandbox/faults       {"action", "service"?, "count"?, "kind"? | "code"+"status"+"message"?}
  GET    /_sandbox/faults                      -> the faults not yet hit
  DELETE /_sandbox/faults
  POST   /_sandbox/task-faults  {"kind": "pull-error"|"crash"|"logger-error"|"wrong-host-key"|"extra-host-key"|"backdated-host-key", "count"?, "image"?, "after"?, "exit_code"?}
  DELETE /_sandbox/task-faults
  POST   /_sandbox/run-failures {"kind": "capacity"|"eni", "count"?, "image"?}
  DELETE /_sandbox/run-failures
  POST   /_sandbox/task-age     {"task", "seconds"}   -> the task as if created that long ago
  POST   /_sandbox/images       {"name", "entrypoint"?, "cmd"?}   -> an image tasks can run
  GET    /_sandbox/images                      -> the images tests registered
  POST   /_sandbox/gateway-faults {"drop"?, "duplicate"?, "delay"?, "delay_ms"?, "kill_after"?,
                                 "recycle_every"?, "break_every"?, "stall_every"?, "idle_close"?, "seed"?}
  DELETE /_sandbox/gateway-faults
  POST   /_sandbox/timing       {"step"?, "stop_grace"?, "agent_connect"?, "iam_propagation"?}
  POST   /_sandbox/iam/deny     {"actions": [...], "principal"?}
  DELETE /_sandbox/iam/deny
  GET    /_sandbox/hosts                       -> the data plane's tasks and namespaces
  GET    /_sandbox/sessions                    -> every session: status, connections it has had
  POST   /_sandbox/credentials  {"lifetime": SECONDS | null}   -> STS credentials issued afterwards expire so soon
  DELETE /_sandbox/credentials                 -> they last what the caller asked for again
  POST   /_sandbox/schedules/fire {"name", "group"?, "region"?} -> the schedule's target invoked now
  GET    /_sandbox/schedules                   -> every invocation of a schedule: its task, or why none ran
"""

import io
import json
import sys
import threading
import time
from dataclasses import asdict, dataclass

from .awsproto import AwsError, error_response, json_response, preset_error, read_request, xml_response
from .credentials import ISSUING, Credentials
from .ecs_services import ACTIONS as SERVICE_ACTIONS
from .ecs_tasks import RUN_FAILURES, TASK_FAULT_KINDS, RunFailure, TaskFault
from .firewall import CHANGING_ACTIONS
from .gateway import GatewayFaults
from .taskdefs import check_registration
from .validation import check_request


HANG = "hang"  # a fault kind: no answer for a while, as from an endpoint that stopped responding


@dataclass
class Fault:
    action: str
    service: str | None
    count: int
    kind: str | None  # a preset, spelled the way the called service spells it
    code: str | None = None  # or an explicit error
    status: int = 400
    message: str | None = None
    seconds: float = 0.0  # hang: how long the call goes unanswered

    def error(self, service: str) -> AwsError:
        if self.kind == HANG:
            return preset_error(service, "server-error")
        if self.code:
            return AwsError(self.code, self.message or self.code, self.status)
        err = preset_error(service, self.kind)
        return AwsError(err.code, self.message or err.message, err.status)


class FaultBook:
    """The next N calls of an action fail with a chosen AWS-shaped error."""

    def __init__(self):
        self.rules: list[Fault] = []
        self.lock = threading.Lock()

    def add(self, spec: dict) -> Fault:
        kind = None if "code" in spec else spec.get("kind", "throttle")
        if kind and kind != HANG:
            preset_error("ecs", kind)  # rejects an unknown kind now, not at the call
        fault = Fault(
            spec["action"], spec.get("service"), int(spec.get("count", 1)), kind,
            spec.get("code"), int(spec.get("status", 400)), spec.get("message"),
            float(spec.get("seconds", 60)),
        )
        with self.lock:
            self.rules.append(fault)
        return fault

    def take(self, service: str, action: str) -> tuple[AwsError, float] | None:
        """The error this call gets, and how long it goes unanswered first; None for no fault."""
        with self.lock:
            for rule in self.rules:
                if rule.action == action and rule.service in (None, service) and rule.count > 0:
                    rule.count -= 1
                    self.rules = [r for r in self.rules if r.count > 0]
                    return rule.error(service), rule.seconds if rule.kind == HANG else 0.0
        return None

    def clear(self) -> None:
        with self.lock:
            self.rules.clear()


class MotoRefused(Exception):
    """moto answered with an error: it goes back to the client unchanged."""

    def __init__(self, status: str, headers: list, body: bytes):
        super().__init__(status)
        self.status, self.headers, self.body = status, headers, body


class SandboxApp:
    def __init__(self, moto_app, tasks, services, databases, simulator, sessions, info: dict, firewall,
                 scheduler=None):
        self.moto_app = moto_app
        self.scheduler = scheduler
        self.firewall = firewall
        self.tasks = tasks
        self.services = services
        self.sessions = sessions
        self.databases = databases
        self.simulator = simulator
        self.faults = FaultBook()
        self.credentials = Credentials()
        self.info = info

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_sandbox/"):
            return self.control(environ, start_response, path[len("/_sandbox/") :])
        request = read_request(environ)
        if request is None:
            return self.moto_app(environ, start_response)
        try:
            self.credentials.check(environ, request.service)
        except AwsError as err:
            return error_response(start_response, request.service, err)
        fault = self.faults.take(request.service, request.action)
        if fault is not None:
            error, silence = fault
            time.sleep(silence)  # a hang: the client's own timeout should give up first
            return error_response(start_response, request.service, error)
        try:
            if request.service == "scheduler" and self.scheduler is not None:
                return self.scheduler.handle(environ, request.region, lambda: self.moto_app(environ, start_response))
            if request.service == "ecs" and request.action in SERVICE_ACTIONS:
                check_request(request.service, request.action, request.region, request.params, request.raw_query)
                return json_response(start_response, self._ecs_service(environ, request))
            if request.service == "ecs":
                body = self.tasks.handle(request.action, request.region, request.params)
                if body is None:
                    body = self.sessions.handle_ecs(request.action, request.region, request.params)
                if body is not None:
                    return json_response(start_response, body)
            if request.service == "ssm":
                body = self.sessions.handle_ssm(request.action, request.region, request.params)
                if body is not None:
                    return json_response(start_response, body)
            if request.service == "iam" and request.action == "SimulatePrincipalPolicy":
                return xml_response(start_response, self.simulator.simulate(request.raw_query))
            check_request(request.service, request.action, request.region, request.params, request.raw_query)
            if request.service == "sts":
                self.credentials.check_duration(request.action, request.params)
            if request.service == "ecs" and request.action == "RegisterTaskDefinition":
                _replace_body(environ, check_registration(request.params))
        except AwsError as err:
            return error_response(start_response, request.service, err)
        except MotoRefused as refusal:
            start_response(refusal.status, refusal.headers)
            return [refusal.body]
        if request.service == "rds" and request.action in ("CreateDBInstance", "DeleteDBInstance"):
            return self._rds(environ, start_response, request)
        if request.service == "ecs" and request.action == "DescribeClusters":
            return self._describe_clusters(environ, start_response, request.params)
        if request.service == "sts" and request.action in ISSUING:
            status, headers, body = self._moto(environ)
            if status.startswith("200"):
                body = self.credentials.issued(body)
                headers = [(k, str(len(body)) if k.lower() == "content-length" else v) for k, v in headers]
            start_response(status, headers)
            return [body]
        if request.service == "ec2" and request.action in CHANGING_ACTIONS:
            status, headers, body = self._moto(environ)
            if status.startswith("200"):
                self.firewall.refresh()  # live interfaces follow their groups at once, as in a VPC
            start_response(status, headers)
            return [body]
        return self.moto_app(environ, start_response)

    def _describe_clusters(self, environ, start_response, params: dict):
        """A cluster's configuration and settings only when `include` asks for them, as in AWS."""
        status, headers, body = self._moto(environ)
        if not status.startswith("200"):
            start_response(status, headers)
            return [body]
        answer = json.loads(body)
        include = params.get("include") or []
        for cluster in answer.get("clusters", []):
            for field, wanted in (("configuration", "CONFIGURATIONS"), ("settings", "SETTINGS")):
                if wanted not in include:
                    cluster.pop(field, None)
        return json_response(start_response, answer)

    def _moto(self, environ) -> tuple[str, list, bytes]:
        """moto's whole answer, for the sandbox to act on before the client sees it."""
        captured = {}

        def remember(status, headers, exc_info=None):
            captured["status"], captured["headers"] = status, headers
            return lambda _data: None

        body = b"".join(self.moto_app(environ, remember))
        return captured["status"], captured["headers"], body

    def _ecs_service(self, environ, request) -> dict:
        def moto() -> dict:
            status, headers, body = self._moto(environ)
            if not status.startswith("200"):
                raise MotoRefused(status, headers, body)
            return json.loads(body)

        return self.services.handle(request.action, request.region, request.params, moto)

    def _rds(self, environ, start_response, request):
        status, headers, body = self._moto(environ)
        if status.startswith("200"):
            identifier = request.params.get("DBInstanceIdentifier", "")
            try:
                if request.action == "CreateDBInstance":
                    self.databases.created(request.region, identifier)
                else:
                    self.databases.deleted(identifier)
            except Exception as err:
                print(f"# sandbox: database backing for {identifier} failed: {err!r}", file=sys.stderr)
                return error_response(
                    start_response, "rds", AwsError("InternalFailure", f"sandbox database backing failed: {err}", 500)
                )
        start_response(status, headers)
        return [body]

    def control(self, environ, start_response, route: str):
        method = environ["REQUEST_METHOD"]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        try:
            spec = json.loads(environ["wsgi.input"].read(length) or b"{}") if length else {}
            result = self._control(method, route, spec)
        except (KeyError, ValueError, TypeError) as err:
            return self._reply(start_response, 400, {"error": f"bad control request: {err}"})
        if result is None:
            return self._reply(start_response, 404, {"error": f"no control route {method} /_sandbox/{route}"})
        return self._reply(start_response, 200, result)

    def _control(self, method: str, route: str, spec: dict):
        if (method, route) == ("GET", "health"):
            return {"ok": True, **self.info}
        if route == "faults":
            if method == "GET":
                with self.faults.lock:
                    return {"faults": [asdict(rule) for rule in self.faults.rules]}
            if method == "POST":
                return {"added": asdict(self.faults.add(spec))}
            if method == "DELETE":
                self.faults.clear()
                return {"cleared": True}
        if route == "task-faults":
            if method == "POST":
                if spec["kind"] not in TASK_FAULT_KINDS:
                    raise ValueError(f"unknown task fault kind {spec['kind']!r}")
                fault = TaskFault(
                    spec["kind"], int(spec.get("count", 1)), spec.get("image"),
                    float(spec.get("after", 1.0)), int(spec.get("exit_code", 1)),
                )
                with self.tasks.lock:
                    self.tasks.faults.append(fault)
                return {"added": asdict(fault)}
            if method == "DELETE":
                with self.tasks.lock:
                    self.tasks.faults.clear()
                return {"cleared": True}
        if route == "run-failures":
            if method == "POST":
                if spec["kind"] not in RUN_FAILURES:
                    raise ValueError(f"unknown run failure kind {spec['kind']!r}")
                failure = RunFailure(spec["kind"], int(spec.get("count", 1)), spec.get("image"))
                with self.tasks.lock:
                    self.tasks.run_failures.append(failure)
                return {"added": asdict(failure)}
            if method == "DELETE":
                with self.tasks.lock:
                    self.tasks.run_failures.clear()
                return {"cleared": True}
        if route == "task-age" and method == "POST":
            return {"aged": self.tasks.age(spec["task"], float(spec["seconds"]))}
        if route == "images":
            if method == "POST":
                return {"added": self.tasks.images.register(spec["name"], spec.get("entrypoint", []), spec.get("cmd", []))}
            if method == "GET":
                return {"images": self.tasks.images.listing()}
        if route == "gateway-faults":
            gateway = self.sessions.gateway
            if method == "POST":
                gateway.faults = GatewayFaults(**spec)
            elif method == "DELETE":
                gateway.faults = GatewayFaults()
            return asdict(gateway.faults)
        if (method, route) == ("POST", "timing"):
            if "step" in spec:
                self.tasks.timing.step = float(spec["step"])
            for name in ("stop_grace", "agent_connect", "iam_propagation"):
                if name in spec:
                    setattr(self.tasks.timing, name, float(spec[name]))
            return asdict(self.tasks.timing)
        if route == "iam/deny":
            if method == "POST":
                self.simulator.deny(list(spec["actions"]), spec.get("principal"))
                return {"denied": spec["actions"]}
            if method == "DELETE":
                self.simulator.clear()
                return {"cleared": True}
        if route == "credentials" and method in ("POST", "DELETE"):
            lifetime = spec.get("lifetime") if method == "POST" else None
            with self.credentials.lock:
                self.credentials.lifetime = None if lifetime is None else float(lifetime)
            return {"lifetime": self.credentials.lifetime}
        if (method, route) == ("POST", "schedules/fire"):
            invocation = self.scheduler.fire(spec.get("region", "us-east-1"), spec.get("group") or "default",
                                             spec["name"])
            return asdict(invocation)
        if (method, route) == ("GET", "schedules"):
            with self.scheduler.lock:
                return {"invocations": [asdict(i) for i in self.scheduler.invocations]}
        if (method, route) == ("GET", "sessions"):
            gateway = self.sessions.gateway
            with gateway.lock:
                return {"sessions": [
                    {"id": s.session_id, "status": s.status, "connections": s.connections, "target": s.target}
                    for s in gateway.sessions.values()
                ]}
        if (method, route) == ("GET", "hosts"):
            with self.tasks.lock:
                return {
                    "tasks": [
                        {"id": t.id, "status": t.last_status, "namespace": t.host_ns, "ip": t.private_ip}
                        for t in self.tasks.tasks.values()
                    ]
                }
        return None

    @staticmethod
    def _reply(start_response, status: int, body: dict):
        data = json.dumps(body).encode()
        start_response(f"{status} {'OK' if status == 200 else 'Error'}", [("Content-Type", "application/json")])
        return [data]


def _replace_body(environ, params: dict) -> None:
    """Hands moto PARAMS instead of the JSON body the client sent."""
    body = json.dumps(params).encode()
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
