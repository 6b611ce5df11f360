"""RegisterTaskDefinition as strict as ECS is about Fargate.

moto registers any task definition, so a client could register one that
Fargate refuses (bridge networking, no task-level size, awslogs without an
execution role) and find out only on AWS. The sandbox checks the request
before moto sees it, with ECS's ClientException wording, and stores what
ECS stores: sizes given as "1 vCPU" / "2 GB" in units, and with awsvpc each
port mapping's hostPort (ECS sets it to the containerPort).
"""

import re

from .awsproto import AwsError
from .images import ecr_repository, parse

# (cpu units, allowed memory MiB) for Fargate, as documented by AWS.
FARGATE_SIZES = {
    256: [512, 1024, 2048],
    512: list(range(1024, 4097, 1024)),
    1024: list(range(2048, 8193, 1024)),
    2048: list(range(4096, 16385, 1024)),
    4096: list(range(8192, 30721, 1024)),
    8192: list(range(16384, 61441, 4096)),
    16384: list(range(32768, 122881, 8192)),
}
_VCPU = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*vcpu\s*$", re.IGNORECASE)
_GB = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*gb\s*$", re.IGNORECASE)


def client_error(message: str) -> AwsError:
    return AwsError("ClientException", message)


def no_fargate_size(cpu, memory) -> str:
    return (
        f"No Fargate configuration exists for given values: {cpu} CPU, {memory} memory. "
        "See the Amazon ECS documentation for the valid values."
    )


def units(value, pattern: re.Pattern) -> str | None:
    """`"1 vCPU"` -> `"1024"`, `"2 GB"` -> `"2048"`, `"512"` -> `"512"`; None if neither."""
    text = str(value).strip()
    if text.isdigit():
        return text
    match = pattern.match(text)
    return str(int(float(match.group(1)) * 1024)) if match else None


def check_registration(p: dict) -> dict:
    """Refuses what ECS refuses; returns the request with sizes in units, for moto."""
    containers = p.get("containerDefinitions") or []
    if not containers:
        raise client_error("Container list cannot be empty.")
    for c in containers:
        if not c.get("name"):
            raise client_error("Container.name should not be null or empty.")
        if not c.get("image"):
            raise client_error("Container.image should not be null or empty.")
    if not any(c.get("essential", True) for c in containers):
        # Best guess at the wording: ECS documents the rule, not the message.
        raise client_error("A task definition must have at least one essential container.")
    p = dict(p)
    for key, pattern in (("cpu", _VCPU), ("memory", _GB)):
        if p.get(key) is not None:
            converted = units(p[key], pattern)
            if converted is None:
                raise client_error(f"Invalid '{key}' setting for task.")
            p[key] = converted
    if "FARGATE" in (p.get("requiresCompatibilities") or []):
        _check_fargate(p, containers)
    if p.get("networkMode") == "awsvpc":
        p["containerDefinitions"] = [_awsvpc_ports(c) for c in containers]
    return p


def _awsvpc_ports(container: dict) -> dict:
    """With awsvpc a mapping's host port is its container port: ECS fills it in, or refuses another."""
    mappings = []
    for mapping in container.get("portMappings") or []:
        port = mapping.get("containerPort")
        if mapping.get("hostPort") not in (None, port):
            raise client_error("When networkMode=awsvpc, the host ports and container ports in port mappings must match.")
        mappings.append({**mapping, "hostPort": port} if port is not None else mapping)
    return {**container, "portMappings": mappings} if "portMappings" in container else container


def _check_fargate(p: dict, containers: list) -> None:
    if p.get("networkMode") != "awsvpc":
        raise client_error("Fargate only supports network mode \u2018awsvpc\u2019.")
    for key in ("cpu", "memory"):
        if p.get(key) is None:
            raise client_error(f"Fargate requires that '{key}' be defined at the task level.")
    if int(p["memory"]) not in FARGATE_SIZES.get(int(p["cpu"]), []):
        raise client_error(no_fargate_size(p["cpu"], p["memory"]))
    if not p.get("executionRoleArn"):
        for c in containers:
            driver = (c.get("logConfiguration") or {}).get("logDriver")
            if driver == "awslogs":
                raise client_error("Fargate requires task definition to have execution role ARN to support log driver awslogs.")
            if ecr_repository(parse(c.get("image") or "")):
                raise client_error("Fargate requires task definition to have execution role ARN to support ECR images.")
