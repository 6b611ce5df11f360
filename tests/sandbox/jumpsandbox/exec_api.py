"""ECS ExecuteCommand and SSM Start/Terminate/DescribeSessions, which moto lacks.

Each call checks what the real services check (the task runs, exec was
enabled, the container exists, the task role may open the data channel) and
registers a session with the message gateway, whose ``ws://`` URL goes back to
the client exactly where AWS puts its ``wss://`` one.

On a cluster whose executeCommandConfiguration names a KMS key, the session
carries that key and the task role, so that the gateway can run the agent's
side of KMS encryption: Decrypt of the client's data key, with moto's KMS
backend, only if the policy simulator lets the task role call kms:Decrypt.
The ExecuteCommand response is the same either way, as on AWS.
"""

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
PORT_DOCUMENTS = ("AWS-StartPortForwardingSessionToRemoteHost", "AWS-StartPortForwardingSession")


@dataclass
class TaskKms:
    """KMS as the agent in a task reaches it: the cluster's key, and the task role's permissions.

    A task without a role is not checked, as for the ssmmessages actions.
    """

    key_id: str
    region: str
    role: str
    task_id: str
    simulator: PolicySimulator

    def decrypt(self, blob: bytes, context: dict[str, str]) -> bytes:
        if self.role and self.simulator.decision(self.role, "kms:Decrypt") != "allowed":
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
        task = self.tasks._find(region, cluster.name, p.get("task") or "")
        if task is None:
            raise invalid("The specified task was not found.")
        container = self._container(task, p.get("container"))
        self._check_reachable(task)
        spec = self._spec(task, "ecs", kind="command", command=p.get("command") or "", kms=self._kms(cluster, task))
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
            self.gateway.terminate(p.get("SessionId", ""))
            return {"SessionId": p.get("SessionId", "")}
        if action == "DescribeSessions":
            state = p.get("State")
            if state not in ("Active", "History"):
                raise AwsError("ValidationException", "State must be Active or History")
            wanted = "Connected" if state == "Active" else "Terminated"
            return {"Sessions": [
                {"SessionId": s.session_id, "Target": s.target, "Status": s.status, "StartDate": s.created,
                 "Owner": f"arn:aws:sts::{ACCOUNT}:user/moto"}
                for s in list(self.gateway.sessions.values()) if s.status == wanted
            ]}
        return None

    def _start_session(self, region: str, p: dict) -> dict:
        target = p.get("Target", "")
        document = p.get("DocumentName", "")
        if document not in PORT_DOCUMENTS:
            raise AwsError("ValidationException", f"The sandbox supports port forwarding documents only, not {document!r}")
        task = self._task_for_target(region, target)
        params = p.get("Parameters") or {}
        try:
            port = int((params.get("portNumber") or [""])[0])
        except ValueError:
            raise AwsError("ValidationException", "portNumber must be a number") from None
        host = (params.get("host") or ["localhost"])[0] if document == PORT_DOCUMENTS[0] else "127.0.0.1"
        spec = self._spec(task, "ssm", kind="port", host=host, port=port)
        return {
            "SessionId": spec.session_id,
            "TokenValue": spec.token,
            "StreamUrl": self.gateway.stream_url(region, spec.session_id),
        }

    def _task_for_target(self, region: str, target: str):
        not_connected = AwsError("TargetNotConnected", f"{target} is not connected.")
        if not target.startswith("ecs:") or target.count("_") < 2:
            raise AwsError("ValidationException", f"Target {target!r} is not of the form ecs:<cluster>_<task-id>_<runtime-id>")
        cluster, task_id, runtime_id = target[4:].rsplit("_", 2)
        task = self.tasks._find(region, cluster, task_id)
        if task is None or not any(c.runtime_id == runtime_id for c in task.containers):
            raise not_connected
        try:
            self._check_reachable(task)
        except AwsError:
            raise not_connected from None
        return task

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
            raise invalid(
                "The execute command failed because execute command was not enabled when the task was run "
                "or the execute command agent isn't running. Wait and try again or run a new task with "
                "execute command enabled and try again."
            )
        role = _task_role(task)
        if role and any(self.simulator.decision(role, action) != "allowed" for action in DATA_CHANNEL_ACTIONS):
            raise AwsError(
                "TargetNotConnectedException",
                "The execute command failed due to an internal error. Try again later.",
            )

    def _kms(self, cluster, task) -> TaskKms | None:
        """The key in the cluster's executeCommandConfiguration encrypts every exec session on its tasks."""
        settings = (cluster.configuration or {}).get("executeCommandConfiguration") or {}
        if not settings.get("kmsKeyId"):
            return None
        return TaskKms(settings["kmsKeyId"], task.region, _task_role(task), task.id, self.simulator)

    def _spec(self, task, prefix: str, **kind) -> SessionSpec:
        spec = SessionSpec(
            session_id=new_session_id(prefix),
            token=new_token(),
            task_pid=task.host_pid,
            namespace=task.host_ns,
            hosts_file=str(NETNS_ETC / task.host_ns / "hosts"),
            target=f"ecs:{task.cluster_name}_{task.id}_{task.containers[0].runtime_id}",
            created=time.time(),
            **kind,
        )
        self.gateway.register(spec)
        return spec


def _task_role(task) -> str:
    return task.overrides.get("taskRoleArn") or task.task_role or ""
