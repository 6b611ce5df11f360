"""What a task's own processes see of AWS: the task role's credentials, and the API.

On Fargate every container of a task with a task role finds
``AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`` in its environment, and the SDKs fetch that
path from ``http://169.254.170.2`` for the role's temporary credentials. A task that
calls AWS itself (a scheduled reaper running ``jump gc``) needs both those and a way
to the service's endpoint, which its subnet either has (a NAT gateway, an internet
gateway with a public IP, an interface endpoint) or does not.

The sandbox gives each such task 169.254.170.2 on its namespace's loopback, with a
listener the sandbox process opens inside that namespace (no address on the machine's
own interfaces, nothing a process outside the namespace can reach). It answers the
credentials path with credentials for the task role, issued by moto's STS and expiring
as the sandbox's STS credentials do (credentials.py). It also stands in for AWS's
public endpoints, which cannot be resolved here: ``AWS_ENDPOINT_URL`` points the task's
SDK at the same listener, which hands each request to the sandbox's own API, but only
for a service the task's subnet reaches (routes.py); for any other the request fails
as a connection that nothing answers would, after a pause, and the client's error
names the host it could not reach. ``/_sandbox/`` is never reachable from a task.
"""

import ctypes
import json
import secrets
import socket
import subprocess
import threading
import time
from datetime import datetime, timezone

from moto.core import DEFAULT_ACCOUNT_ID
from moto.ec2.models import ec2_backends
from moto.sts.models import sts_backends
from werkzeug.serving import make_server

from .awsproto import read_request
from .routes import reach

ADDRESS = "169.254.170.2"
CLONE_NEWNET = 0x40000000
UNREACHABLE_PAUSE = 3.0  # seconds an unreachable service keeps its caller waiting

_libc = ctypes.CDLL("libc.so.6", use_errno=True)


def _listen_in(namespace: str) -> socket.socket:
    """A socket listening on ADDRESS:80 inside NAMESPACE, made from a thread that enters it
    (setns changes the network namespace of the calling thread only)."""
    made = {}

    def enter():
        try:
            with open(f"/run/netns/{namespace}") as handle:
                if _libc.setns(handle.fileno(), CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns")
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((ADDRESS, 80))
            sock.listen(64)
            made["socket"] = sock
        except Exception as err:  # reported by the caller
            made["error"] = err

    thread = threading.Thread(target=enter)
    thread.start()
    thread.join()
    if "error" in made:
        raise made["error"]
    return made["socket"]


class _Endpoint:
    def __init__(self, server, thread):
        self.server, self.thread = server, thread


class TaskEndpoints:
    def __init__(self, credentials):
        self.credentials = credentials
        self.api = None  # the sandbox's WSGI app, set once it exists
        self.lock = threading.Lock()
        self.open_endpoints: dict[str, _Endpoint] = {}

    def open(self, task) -> dict:
        """Starts the task's endpoint; returns what ECS (and the sandbox) put in its environment."""
        if not task.task_role or not task.host_ns:
            return {}
        subprocess.run(["ip", "-n", task.host_ns, "addr", "add", f"{ADDRESS}/32", "dev", "lo"], check=True,
                       capture_output=True)
        token = secrets.token_hex(16)
        sock = _listen_in(task.host_ns)
        app = self._app(task, token)
        server = make_server(ADDRESS, 80, app, threaded=True, fd=sock.fileno())
        sock.close()  # the server holds its own duplicate
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        with self.lock:
            self.open_endpoints[task.id] = _Endpoint(server, thread)
        return {
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": f"/v2/credentials/{token}",
            "AWS_ENDPOINT_URL": f"http://{ADDRESS}",
        }

    def close(self, task) -> None:
        with self.lock:
            endpoint = self.open_endpoints.pop(task.id, None)
        if endpoint is not None:
            endpoint.server.shutdown()
            endpoint.server.server_close()

    def _app(self, task, token: str):
        def app(environ, start_response):
            path = environ.get("PATH_INFO", "")
            if path == f"/v2/credentials/{token}":
                return _json(start_response, "200 OK", self._credentials(task))
            if path.startswith("/v2/credentials/"):
                return _json(start_response, "400 Bad Request",
                             {"code": "InvalidIdentityToken", "message": "Unable to get credentials"})
            if path.startswith("/_sandbox/"):
                return _json(start_response, "403 Forbidden", {"message": "not from a task"})
            request = read_request(environ)
            service = request.service if request else "unknown"
            if not self._reaches(task, service):
                time.sleep(UNREACHABLE_PAUSE)
                host = f"{service}.{task.region}.amazonaws.com"
                return _json(start_response, "504 Gateway Timeout", {
                    "message": f"dial tcp {host}:443: i/o timeout (the task's subnet has no way to {host}: no NAT "
                               f"gateway, no internet gateway with a public IP, no interface endpoint)"})
            return self.api(environ, start_response)

        return app

    def _reaches(self, task, service: str) -> bool:
        ec2 = ec2_backends[DEFAULT_ACCOUNT_ID][task.region]
        return reach(ec2, ec2.get_subnet(task.subnet_id), task.public_ip is not None, task.region).reaches(service)

    def _credentials(self, task) -> dict:
        sts = sts_backends[DEFAULT_ACCOUNT_ID]["aws"]
        role = sts.assume_role(region_name=task.region, role_session_name=task.id, role_arn=task.task_role,
                               policy=None, duration=3600, external_id=None)
        expiry = self.credentials.register(role.access_key_id, 3600)
        return {
            "AccessKeyId": role.access_key_id,
            "SecretAccessKey": role.secret_access_key,
            "Token": role.session_token,
            "Expiration": datetime.fromtimestamp(expiry, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "RoleArn": task.task_role,
        }


def _json(start_response, status: str, body: dict):
    data = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]

