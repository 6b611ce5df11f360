"""Just enough of the AWS wire protocols to sit in front of moto.

The sandbox answers some actions itself (ECS tasks, IAM policy simulation) and
injects faults into others, so it must know which service and action a request
is, and how that service spells an error. Two protocol families matter here:
JSON (ECS, CloudWatch Logs, SSM: action in ``X-Amz-Target``) and query (EC2,
IAM, STS, RDS: action in the form body). The service always comes from the
SigV4 credential scope, exactly as moto's own dispatcher finds it.
"""

import io
import json
import re
import uuid
from dataclasses import dataclass
from urllib.parse import parse_qs

# Services whose errors are JSON (scheduler is REST-JSON: its action is its method and path).
JSON_SERVICES = {"ecs", "logs", "ssm", "kms", "secretsmanager", "events", "scheduler"}
_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/([^/]+)/([^/]+)/aws4_request")


@dataclass
class Request:
    service: str
    region: str
    action: str
    params: dict  # JSON body, or query parameters flattened to first values
    raw_query: dict  # query parameters with every value (for member lists)


def read_request(environ) -> Request | None:
    """Identifies an AWS API request and keeps its body readable for moto."""
    match = _SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
    if not match:
        return None
    region, service = match.group(1), match.group(2)
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if target:
        try:
            params = json.loads(body or b"{}")
        except ValueError:
            params = {}
        return Request(service, region, target.rsplit(".", 1)[-1], params, {})
    query = parse_qs(body.decode("utf-8", "replace")) if body else {}
    query.update(parse_qs(environ.get("QUERY_STRING", "")))
    flat = {k: v[0] for k, v in query.items()}
    return Request(service, region, flat.get("Action", ""), flat, query)


def members(query: dict, prefix: str) -> list[str]:
    """Values of a query-protocol list such as ``ActionNames.member.N``."""
    found = []
    for key, values in query.items():
        if key.startswith(prefix + ".member."):
            index = key[len(prefix) + len(".member.") :]
            if index.isdigit():
                found.append((int(index), values[0]))
    return [v for _, v in sorted(found)]


def json_response(start_response, body: dict, status: int = 200):
    data = json.dumps(body, default=str).encode()
    start_response(
        f"{status} {'OK' if status == 200 else 'Error'}",
        [
            ("Content-Type", "application/x-amz-json-1.1"),
            ("x-amzn-RequestId", str(uuid.uuid4())),
            ("Content-Length", str(len(data))),
        ],
    )
    return [data]


def xml_response(start_response, body: str, status: int = 200):
    data = body.encode()
    start_response(
        f"{status} {'OK' if status == 200 else 'Error'}",
        [("Content-Type", "text/xml"), ("Content-Length", str(len(data)))],
    )
    return [data]


class AwsError(Exception):
    """An error to return in the service's own shape."""

    def __init__(self, code: str, message: str, status: int = 400):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def error_response(start_response, service: str, err: AwsError):
    if service in JSON_SERVICES:
        data = json.dumps({"__type": err.code, "message": err.message}).encode()
        start_response(
            f"{err.status} Error",
            [
                ("Content-Type", "application/x-amz-json-1.1"),
                ("x-amzn-RequestId", str(uuid.uuid4())),
                ("x-amzn-ErrorType", err.code),
                ("Content-Length", str(len(data))),
            ],
        )
        return [data]
    request_id = str(uuid.uuid4())
    if service == "ec2":
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>'
            f"<Response><Errors><Error><Code>{err.code}</Code>"
            f"<Message>{_escape(err.message)}</Message></Error></Errors>"
            f"<RequestID>{request_id}</RequestID></Response>"
        )
    else:
        kind = "Receiver" if err.status >= 500 else "Sender"
        body = (
            "<ErrorResponse><Error>"
            f"<Type>{kind}</Type><Code>{err.code}</Code>"
            f"<Message>{_escape(err.message)}</Message></Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>"
        )
    return xml_response(start_response, body, err.status)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# How each protocol family spells the three kinds of fault tests ask for.
_PRESETS = {
    "json": {
        "throttle": ("ThrottlingException", "Rate exceeded", 400),
        "access-denied": ("AccessDeniedException", "User is not authorized to perform this action", 400),
        "server-error": ("ServerException", "Service unavailable, please retry", 500),
    },
    "ec2": {
        "throttle": ("RequestLimitExceeded", "Request limit exceeded.", 503),
        "access-denied": ("UnauthorizedOperation", "You are not authorized to perform this operation.", 403),
        "server-error": ("InternalError", "An internal error has occurred", 500),
    },
    "query": {
        "throttle": ("Throttling", "Rate exceeded", 400),
        "access-denied": ("AccessDenied", "User is not authorized to perform this action", 403),
        "server-error": ("ServiceUnavailable", "Service is unavailable", 503),
    },
}


def preset_error(service: str, kind: str) -> AwsError:
    family = "json" if service in JSON_SERVICES else ("ec2" if service == "ec2" else "query")
    try:
        code, message, status = _PRESETS[family][kind]
    except KeyError:
        raise ValueError(f"unknown fault kind {kind!r}; use one of {sorted(_PRESETS['json'])}") from None
    return AwsError(code, message, status)
