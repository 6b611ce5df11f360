"""ECS ExecuteCommand and SSM Start/Terminate/DescribeSessions, which moto lacks.

Each call checks what the real services check (the task runs, exec was
enabled, the container exists, the task role may open the data channel) and
registers a session with the message gateway, whose ``ws://`` URL goes back to
the client exactly where AWS puts its ``wss://`` one.

The agent is not reachable the moment ECS reports it RUNNING: "It can take a
few seconds for the SSM Agent to be healthy and connected even after the
process has gone to RUNNING" (AWS, containers-roadmap#187). For
``timing.agent_connect`` seconds after that, ExecuteCommand answers
TargetNotConnectedException and StartSession TargetNotConnected, so clients
must retry as they must on AWS.

StartSession resolves its document as SSM does: the parameters take the
document's defaults, and the document's properties, filled in, are what the
agent receives and hands to the client in its handshake (the official plugin
reads its local port from there, not from the request it was given).

On a cluster whose executeCommandConfiguration names a KMS key, the session
carries that key and the task role, so that the gateway can run the agent's
side of KMS encryption: Decrypt of the client's data key, with moto's KMS
backend, only if the policy simulator lets the task role call kms:Decrypt.
The ExecuteCommand response is the same either way, as on AWS.
"""

import re
import time
from dataclasses import dataclass

from moto.core.exceptions import JsonRESTError
from moto.kms.models import kms_backends

from .awsproto import AwsError
from .ecs_tasks import ACCOUNT, invalid
from .gateway import KmsError, SessionSpec, new_session_id, new_token
from .iam import PolicySimulator
from .network import NETNS_ETC

DATA_CHANNEL_ACTIONS = [
    "ssmmessages:CreateControlChannel",
    "ssmmessages:CreateDataChannel",
    "ssmmessages:OpenControlChannel",
    "ssmmessages:OpenDataChannel",
]
INTERNAL_ERROR = "The execute command failed due to an internal error. Try again later."
NOT_ENABLED = (
    "The execute command failed because execute command was not enabled when the task was run "
    "or the execute command agent isn't running. Wait and try again or run a new task with "
    "execute command enabled and try again."
)
# The AWS-owned port forwarding documents: each parameter's default (None: required) and the
# properties the agent gets, with {{ name }} filled in from the parameters.
PORT_DOCUMENTS = {
    "AWS-StartPortForwardingSession": (
        {"portNumber": "80", "localPortNumber": "0"},
        {"portNumber": "{{ portNumber }}", "type": "LocalPortForwarding", "localPortNumber": "{{ localPortNumber }}"},
    ),
    "AWS-StartPortForwardingSessionToRemoteHost": (
        {"host": None, "portNumber": "80", "localPortNumber": "0"},
        {"portNumber": "{{ portNumber }}", "type": "LocalPortForwarding", "localPortNumber": "{{ localPortNumber }}",
         "host": "{{ host }}"},
    ),
}
SHELL_DOCUMENTS = ("", "SSM-SessionManagerRunShell")  # no DocumentName: the default shell
COMMAND_DOCUMENTS = {"AWS-StartInteractiveCommand": ({"command": None}, {})}  # what ECS Exec runs
# The documents' allowedPattern for each parameter: ports 1-65535 (0, "any free port", for the
# local one), and a host without shell metacharacters.
_MORE_DIGITS = r"|[1-9][0-9]{1,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])$"
PATTERNS = {
    "portNumber": r"^([1-9]" + _MORE_DIGITS,
    "localPortNumber": r"^([0-9]" + _MORE_DIGITS,
    "host": r"""^[^,$^&\(\)!;'"<>\`{}\[\]\|#=]{3,}$""",
}
DOCUMENT_NAME = re.compile(r"^[a-zA-Z0-9_\-.:/]{3,128}$")  # DocumentARN in the SSM API model
TARGET_MAX, SESSION_ID_MAX = 400, 96
TASK_ID_LENGTHS = (32, 36)  # new-style hex ids, old-style UUIDs


@dataclass
class TaskKms:
    """KMS as the agent in a task reaches it: the cluster's key, and the task role's permissions.

    Every exec task has a role: RunTask refuses exec without one, as ECS does.
    """

    key_id: str
    region: str
    role: str
    task_id: str
    simulator: PolicySimulator

    def key_arn(self) -> str:
        """IAM judges kms:Decrypt on the key's ARN, whatever name the cluster used for it."""
        try:
            return kms_backends[ACCOUNT][self.region].describe_key(self.key_id).arn
        except JsonRESTError:
            return self.key_id

    def decrypt(self, blob: bytes, context: dict[str, str]) -> bytes:
        if self.simulator.decision(self.role, "kms:Decrypt", self.key_arn()) != "allowed":
            caller = f"arn:aws:sts::{ACCOUNT}:assumed-role/{self.role.split('/')[-1]}/{self.task_id}"
            raise KmsError(
                f"AccessDeniedException: User: {caller} is not authorized to perform: kms:Decrypt on resource: "
                f"{self.key_id} because no identity-based policy allows the kms:Decrypt action"
            )
        try:
            plaintext, _key_arn = kms_backends[ACCOUNT][self.region].decrypt(blob, context)
        except JsonRESTError as err:
            raise KmsError(f"{err.error_type}: {err.message}" if err.message else err.error_type) from None
        return plaintext


class SessionApi:
    def __init__(self, tasks, gateway, simulator):
        self.tasks = tasks
        self.gateway = gateway
        self.simulator = simulator
        tasks.stop_hooks.append(lambda task: task.host_pid and gateway.end_for_task(task.host_pid))

    def handle_ecs(self, action: str, region: str, p: dict) -> dict | None:
        if action != "ExecuteCommand":
            return None
        if not p.get("interactive"):
            raise invalid("Interactive is the only mode supported currently.")
        cluster = self.tasks._cluster(region, p.get("cluster"))
        ref = p.get("task") or ""
        if len(ref.split("/")[-1]) not in TASK_ID_LENGTHS:
            # ECS's words for a task id that is neither kind (aws-samples ecsher#56).
            raise invalid("task length should be one of [32,36]")
        task = self.tasks._find(region, cluster.name, ref)
        if task is None:
            raise invalid("The specified task was not found.")
        container = self._container(task, p.get("container"))
        self._check_reachable(task)
        spec = self._spec(task, container, "ecs", kind="command", command=p.get("command") or "",
                          kms=self._kms(cluster, task))
        return {
            "clusterArn": task.cluster_arn,
            "containerArn": container.arn,
            "containerName": container.name,
            "interactive": True,
            "taskArn": task.arn,
            "session": {
                "sessionId": spec.session_id,
                "streamUrl": self.gateway.stream_url(region, spec.session_id),
                "tokenValue": spec.token,
            },
        }

    def handle_ssm(self, action: str, region: str, p: dict) -> dict | None:
        if action == "StartSession":
            return self._start_session(region, p)
        if action == "TerminateSession":
            session_id = p.get("SessionId") or ""
            _check_length("sessionId", session_id, SESSION_ID_MAX)
            self.gateway.terminate(session_id)
            return {"SessionId": session_id}
        if action == "ResumeSession":
            session_id = p.get("SessionId") or ""
            _check_length("sessionId", session_id, SESSION_ID_MAX)
            token = self.gateway.resume(session_id)
            if token is None:  # unknown, or terminated: "Connections can be resumed for disconnected sessions, but not terminated sessions."
                raise AwsError("DoesNotExistException", f"Session {session_id} does not exist or has been terminated.")
            return {"SessionId": session_id, "TokenValue": token,
                    "StreamUrl": self.gateway.stream_url(region, session_id)}
        if action == "DescribeSessions":
            state = p.get("State")
            if state not in ("Active", "History"):
                raise AwsError("ValidationException", "State must be Active or History")
            wanted = ("Connected", "Disconnected") if state == "Active" else ("Terminated",)
            return {"Sessions": [
                {"SessionId": s.session_id, "Target": s.target, "Status": s.status, "StartDate": s.created,
                 "Owner": f"arn:aws:sts::{ACCOUNT}:user/moto"}
                for s in list(self.gateway.sessions.values()) if s.status in wanted
            ]}
        return None

    def _start_session(self, region: str, p: dict) -> dict:
        target = p.get("Target") or ""
        _check_length("target", target, TARGET_MAX)
        document = p.get("DocumentName") or ""
        if document and not DOCUMENT_NAME.match(document):
            raise AwsError(
                "ValidationException",
                f"1 validation error detected: Value '{document}' at 'documentName' failed to satisfy constraint: "
                f"Member must satisfy regular expression pattern: {DOCUMENT_NAME.pattern}",
            )
        params = {key: values[0] if isinstance(values, list) and values else values
                  for key, values in (p.get("Parameters") or {}).items()}
        if document in PORT_DOCUMENTS:
            _, properties = _resolve(document, *PORT_DOCUMENTS[document], params)
            # Without a host the agent dials the port on the target itself.
            kind = dict(kind="port", host=properties.get("host", "127.0.0.1"), port=int(properties["portNumber"]),
                        properties=properties)
        elif document in SHELL_DOCUMENTS:
            kind = dict(kind="command", command="")
        elif document in COMMAND_DOCUMENTS:
            values, _ = _resolve(document, *COMMAND_DOCUMENTS[document], params)
            kind = dict(kind="command", command=values["command"])
        elif document.startswith(("AWS-", "SSM-")):
            raise AwsError("ValidationException", f"The sandbox does not emulate the document {document}")
        else:
            raise AwsError("InvalidDocument", f"Document with name {document} does not exist.")
        task, container = self._task_for_target(region, target)
        spec = self._spec(task, container, "ssm", **kind)
        return {
            "SessionId": spec.session_id,
            "TokenValue": spec.token,
            "StreamUrl": self.gateway.stream_url(region, spec.session_id),
        }

    def _task_for_target(self, region: str, target: str):
        """SSM names no reason: an unknown, malformed or unreachable target is "not connected"."""
        not_connected = AwsError("TargetNotConnected", f"{target} is not connected.")
        if not target.startswith("ecs:") or target.count("_") < 2:
            raise not_connected
        cluster, task_id, runtime_id = target[4:].rsplit("_", 2)
        task = self.tasks._find(region, cluster, task_id)
        container = next((c for c in task.containers if c.runtime_id == runtime_id), None) if task else None
        if container is None:
            raise not_connected
        try:
            self._check_reachable(task)
        except AwsError:
            raise not_connected from None
        return task, container

    @staticmethod
    def _container(task, name: str | None):
        if name is None:
            if len(task.containers) > 1:
                raise invalid("The container name must be specified when the task has more than one container.")
            return task.containers[0]
        for container in task.containers:
            if container.name == name:
                return container
        raise invalid(f"The container {name} was not found in the task.")

    def _check_reachable(self, task) -> None:
        if not task.exec_enabled or task.agent_status != "RUNNING" or task.last_status != "RUNNING" or not task.host_pid:
            raise invalid(NOT_ENABLED)
        if time.time() < (task.agent_started_at or 0) + self.tasks.timing.agent_connect:
            raise AwsError("TargetNotConnectedException", INTERNAL_ERROR)  # the agent is still registering
        if not task.ssm_reachable:  # no route or endpoint to ssmmessages from its subnet (routes.py)
            raise AwsError("TargetNotConnectedException", INTERNAL_ERROR)
        role = _task_role(task)
        if any(self.simulator.decision(role, action) != "allowed" for action in DATA_CHANNEL_ACTIONS):
            raise AwsError("TargetNotConnectedException", INTERNAL_ERROR)

    def _kms(self, cluster, task) -> TaskKms | None:
        """The key in the cluster's executeCommandConfiguration encrypts every exec session on its tasks."""
        settings = (cluster.configuration or {}).get("executeCommandConfiguration") or {}
        if not settings.get("kmsKeyId"):
            return None
        return TaskKms(settings["kmsKeyId"], task.region, _task_role(task), task.id, self.simulator)

    def _spec(self, task, container, prefix: str, **kind) -> SessionSpec:
        main = task.containers[0]
        container_env = None
        if container is not main:
            def variables(entries):
                return {e["name"]: e["value"] for e in entries or []}
            mains = {**variables(main.definition.get("environment")),
                     **variables(task.main_override.get("environment"))}
            container_env = (list(mains), variables(container.definition.get("environment")))
        spec = SessionSpec(
            container_env=container_env,
            session_id=new_session_id(prefix),
            token=new_token(),
            task_pid=task.host_pid,
            namespace=task.host_ns,
            hosts_file=str(NETNS_ETC / task.host_ns / "hosts"),
            target=f"ecs:{task.cluster_name}_{task.id}_{container.runtime_id}",
            created=time.time(),
            **kind,
        )
        self.gateway.register(spec)
        return spec


def _task_role(task) -> str:
    return task.overrides.get("taskRoleArn") or task.task_role or ""


def _check_length(member: str, value: str, most: int) -> None:
    """The SSM API model's length limits, which AWS checks on its side whatever the SDK does."""
    if not 1 <= len(value) <= most:
        constraint = "greater than or equal to 1" if not value else f"less than or equal to {most}"
        raise AwsError(
            "ValidationException",
            f"1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: "
            f"Member must have length {constraint}",
        )


def _resolve(document: str, defaults: dict, template: dict, params: dict) -> tuple[dict, dict]:
    """The parameters with their defaults, and the document's properties filled in with them.

    A value that does not match its allowedPattern is refused in SSM's words; the wording
    for a missing or an undefined parameter is a best guess.
    """
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise AwsError("InvalidParameters", f"Parameter(s) {unknown} not defined in document {document}")
    values = {}
    for name, default in defaults.items():
        value = params.get(name, default)
        if value is None or value == "":
            raise AwsError("InvalidParameters", f"Parameter {name} is required by document {document}")
        if name in PATTERNS and not re.match(PATTERNS[name], str(value)):
            raise AwsError("InvalidParameters", f'Parameter "{name}" has value "{value}" not matching "{PATTERNS[name]}".')
        values[name] = str(value)
    properties = {key: re.sub(r"\{\{ *(\w+) *\}\}", lambda m: values[m.group(1)], text) for key, text in template.items()}
    return values, properties
