"""IAM SimulatePrincipalPolicy, which moto lacks, answered from the policies moto stores.

`jump doctor` asks IAM's simulator whether the caller and the task role may do
what jump needs, and jump's templates are the policies that should make the
answer yes. Answering "allowed" to everything proved neither, so the simulator
here evaluates what IAM would: the principal's inline and attached managed
policies (a user's groups' too), capped by its permissions boundary, against
each action, resource and the caller's ContextEntries (see policy_eval).

On top of that, tests can deny chosen actions (optionally for one principal):
a denial makes the answer implicitDeny whatever the policies say.

`decision()` is the same evaluation for the sandbox's own checks (the task
role opening exec channels, decrypting a session key). A principal IAM does
not know is not checked there: the sandbox runs tasks whose role does not
exist, where AWS would refuse to start them.
"""

import re
import threading
import uuid
from xml.sax.saxutils import escape

from moto.iam.models import iam_backends

from .awsproto import AwsError, members
from .policy_eval import (
    ALLOWED,
    EXPLICIT_DENY,
    IMPLICIT_DENY,
    Context,
    Outcome,
    Policy,
    PolicyError,
    context_keys,
    evaluate,
    parse_policy,
)

_ENTITY = re.compile(r"^arn:(aws[a-z-]*):iam::(\d{12}):(user|role|group)/(.+)$")
_CONTEXT_FIELD = re.compile(r"^ContextEntries\.member\.(\d+)\.(ContextKeyName|ContextKeyType)$")
_CONTEXT_VALUE = re.compile(r"^ContextEntries\.member\.(\d+)\.ContextKeyValues\.member\.(\d+)$")
_SEVERITY = {ALLOWED: 0, IMPLICIT_DENY: 1, EXPLICIT_DENY: 2}

# The Service Authorization Reference's ARN formats for the resources jump's policies name,
# keyed by (the action's service, the resource type in the ARN). EvaluationResult's
# EvalResourceName carries the format, not the caller's ARN; "*" for any other resource.
ARN_FORMATS = {
    ("ecs", "cluster"): "arn:${Partition}:ecs:${Region}:${Account}:cluster/${ClusterName}",
    ("ecs", "task"): "arn:${Partition}:ecs:${Region}:${Account}:task/${ClusterName}/${TaskId}",
    ("ecs", "task-definition"): "arn:${Partition}:ecs:${Region}:${Account}:task-definition/"
    "${TaskDefinitionFamilyName}:${TaskDefinitionRevisionNumber}",
    ("ecs", "service"): "arn:${Partition}:ecs:${Region}:${Account}:service/${ClusterName}/${ServiceName}",
    ("logs", "log-group"): "arn:${Partition}:logs:${Region}:${Account}:log-group:${LogGroupName}",
    ("logs", "log-stream"): "arn:${Partition}:logs:${Region}:${Account}:log-group:${LogGroupName}"
    ":log-stream:${LogStreamName}",
    ("kms", "key"): "arn:${Partition}:kms:${Region}:${Account}:key/${KeyId}",
    ("kms", "alias"): "arn:${Partition}:kms:${Region}:${Account}:alias/${Alias}",
    ("iam", "role"): "arn:${Partition}:iam::${Account}:role/${RoleNameWithPath}",
    ("iam", "user"): "arn:${Partition}:iam::${Account}:user/${UserNameWithPath}",
    ("iam", "policy"): "arn:${Partition}:iam::${Account}:policy/${PolicyNameWithPath}",
    ("ssm", "document"): "arn:${Partition}:ssm:${Region}:${Account}:document/${DocumentName}",
    ("ssm", "session"): "arn:${Partition}:ssm:${Region}:${Account}:session/${SessionId}",
    ("ssm", "task"): "arn:${Partition}:ecs:${Region}:${Account}:task/${TaskId}",
    ("rds", "db"): "arn:${Partition}:rds:${Region}:${Account}:db:${DbInstanceName}",
}


class PolicySimulator:
    def __init__(self):
        self.denials: list[dict] = []  # {"actions": set, "principal": str | None}
        self.lock = threading.Lock()

    def deny(self, actions: list[str], principal: str | None) -> None:
        with self.lock:
            self.denials.append({"actions": {a.lower() for a in actions}, "principal": principal})

    def clear(self) -> None:
        with self.lock:
            self.denials.clear()

    def _denied(self, principal: str, action: str) -> bool:
        with self.lock:
            return any(
                action.lower() in rule["actions"] and (not rule["principal"] or rule["principal"] in principal)
                for rule in self.denials
            )

    def decision(self, principal: str, action: str, resource: str = "*", context: Context | None = None) -> str:
        """May this principal call the action? For the sandbox's own checks; see the module docstring."""
        if self._denied(principal, action):
            return IMPLICIT_DENY
        try:
            policies, boundary = principal_policies(principal)
        except AwsError:
            return ALLOWED
        return evaluate(policies, action, resource, context or Context(), boundary).decision

    def simulate(self, query: dict) -> str:
        principal = (query.get("PolicySourceArn") or [""])[0]
        if not principal:
            raise AwsError("ValidationError", "PolicySourceArn is required")
        actions = members(query, "ActionNames")
        if not actions:
            raise AwsError("ValidationError", "ActionNames is required")
        resources = members(query, "ResourceArns")
        for resource in resources:
            parts = resource.split(":", 5)
            if resource != "*" and (len(parts) < 6 or parts[0] != "arn" or not parts[1] or not parts[2]):
                raise AwsError("InvalidInput", f"ResourceNames are not in a valid ARN format: {resource}.")
        policies, boundary = principal_policies(principal)
        policies = policies + _input_policies(query, "PolicyInputList", "IAM Policy")
        boundary_input = _input_policies(query, "PermissionsBoundaryPolicyInputList", "PermissionsBoundaryPolicy")
        if boundary_input:
            boundary = boundary_input
        context = Context(_context_entries(query))
        everything = policies + (boundary or [])
        missing = [key for key in context_keys(everything) if not context.has(key)]
        start, page = _page(query, len(actions))
        results = []
        for action in actions[start : start + page]:
            outcomes = []
            for resource in resources or ["*"]:
                outcome = evaluate(policies, action, resource, context, boundary)
                if self._denied(principal, action):
                    outcome = Outcome(IMPLICIT_DENY, [], outcome.boundary_allowed)
                outcomes.append((resource, outcome))
            results.append(_result(action, resources, outcomes, missing))
        end = start + page
        more = f"<Marker>{end}</Marker>" if end < len(actions) else ""
        return (
            '<SimulatePrincipalPolicyResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">'
            f"<SimulatePrincipalPolicyResult><IsTruncated>{'true' if more else 'false'}</IsTruncated>{more}"
            f"<EvaluationResults>{''.join(results)}</EvaluationResults>"
            "</SimulatePrincipalPolicyResult>"
            f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata>"
            "</SimulatePrincipalPolicyResponse>"
        )


def principal_policies(arn: str) -> tuple[list[Policy], list[Policy] | None]:
    """The identity policies of a user (with its groups'), group or role, and its permissions boundary."""
    match = _ENTITY.match(arn)
    if not match:
        # Message as IAM words it for an assumed-role session ARN.
        raise AwsError("InvalidInput", f"Invalid Entity Arn: {arn} does not clearly define entity type and name.")
    partition, account, kind, path_name = match.groups()
    backend = iam_backends[account][partition]
    name = path_name.rsplit("/", 1)[-1]
    if kind == "role":
        entity = next((r for r in list(backend.roles.values()) if r.arn == arn), None)
    elif kind == "user":
        entity = backend.users.get(name)
    else:
        entity = backend.groups.get(name)
    if entity is None or entity.arn != arn:
        # Wording as IAM's GetRole/GetUser/GetGroup (best guess for SimulatePrincipalPolicy).
        raise AwsError("NoSuchEntity", f"The {kind} with name {name} cannot be found.", 404)
    policies = _inline(entity, kind) + _attached(entity)
    if kind == "user":
        for group in backend.get_groups_for_user(name):
            policies += _inline(group, "group") + _attached(group)
    boundary = None
    boundary_arn = getattr(entity, "permissions_boundary_arn", None)
    if boundary_arn:
        policy = backend.managed_policies.get(boundary_arn)
        if policy is not None:
            boundary = [_managed(policy)]
    return policies, boundary


def _inline(entity, source_type: str) -> list[Policy]:
    return [_parse(document, name, source_type) for name, document in list(entity.policies.items())]


def _attached(entity) -> list[Policy]:
    return [_managed(policy) for policy in list(entity.managed_policies.values())]


def _managed(policy) -> Policy:
    document = next((v.document for v in policy.versions if v.is_default_version), "{}")
    kind = "aws-managed" if ":iam::aws:policy/" in policy.arn else "user-managed"
    return _parse(document, policy.name, kind)


def _parse(document, source_id: str, source_type: str) -> Policy:
    try:
        return parse_policy(document, source_id, source_type)
    except PolicyError:
        return Policy(source_id, source_type, "")  # moto stored something IAM would have refused


def _input_policies(query: dict, name: str, source_type: str) -> list[Policy]:
    found = []
    for index, document in enumerate(members(query, name), start=1):
        try:
            found.append(parse_policy(document, f"{name}.{index}", source_type))
        except PolicyError as err:
            raise AwsError("InvalidInput", str(err)) from None
    return found


def _context_entries(query: dict) -> list[tuple[str, list[str], str]]:
    entries: dict[int, dict] = {}
    for key, values in query.items():
        if match := _CONTEXT_FIELD.match(key):
            entries.setdefault(int(match.group(1)), {"values": []})[match.group(2)] = values[0]
        elif match := _CONTEXT_VALUE.match(key):
            entries.setdefault(int(match.group(1)), {"values": []})["values"].append((int(match.group(2)), values[0]))
    return [
        (entry["ContextKeyName"], [v for _, v in sorted(entry["values"])], entry.get("ContextKeyType", "string"))
        for _, entry in sorted(entries.items())
        if entry.get("ContextKeyName")
    ]


def _page(query: dict, total: int) -> tuple[int, int]:
    try:
        start = int((query.get("Marker") or ["0"])[0])
        page = int((query.get("MaxItems") or ["100"])[0])
    except ValueError:
        raise AwsError("InvalidInput", "Marker and MaxItems must be numbers") from None
    if not 1 <= page <= 1000 or not 0 <= start <= total:
        raise AwsError("InvalidInput", "MaxItems must be 1 to 1000, and Marker one this API returned")
    return start, page


def _arn_format(action: str, resource: str) -> str:
    parts = resource.split(":", 5)
    if len(parts) < 6:
        return "*"
    kind = "log-stream" if ":log-stream:" in parts[5] else re.split(r"[/:]", parts[5], maxsplit=1)[0]
    return ARN_FORMATS.get((action.split(":", 1)[0].lower(), kind), "*")


def _result(action: str, resources: list[str], outcomes: list[tuple[str, Outcome]], missing: list[str]) -> str:
    """One EvaluationResult per action: the most restrictive decision over the resources, the
    statements behind it, and (when ARNs were given) one ResourceSpecificResult per resource."""
    decision = max((o.decision for _, o in outcomes), key=_SEVERITY.__getitem__)
    matched = []
    for _, outcome in outcomes:
        if outcome.decision == decision:
            matched += [s for s in outcome.matched if not any(s is m for m in matched)]
    given = [r for r in resources if r != "*"]
    boundaries = [o.boundary_allowed for _, o in outcomes if o.boundary_allowed is not None]
    body = (
        f"<EvalActionName>{escape(action)}</EvalActionName>"
        f"<EvalResourceName>{escape(_arn_format(action, given[0]) if given else '*')}</EvalResourceName>"
        f"<EvalDecision>{decision}</EvalDecision>"
        f"{_statements(matched)}{_missing(missing)}"
    )
    if boundaries:
        body += _boundary_detail(all(boundaries))
    if given:
        specific = "".join(
            "<member>"
            f"<EvalResourceName>{escape(resource)}</EvalResourceName>"
            f"<EvalResourceDecision>{outcome.decision}</EvalResourceDecision>"
            f"{_statements(outcome.matched)}{_missing(missing)}"
            f"{_boundary_detail(outcome.boundary_allowed) if outcome.boundary_allowed is not None else ''}"
            "</member>"
            for resource, outcome in outcomes
        )
        body += f"<EvalDecisionDetails/><ResourceSpecificResults>{specific}</ResourceSpecificResults>"
    return f"<member>{body}</member>"


def _statements(statements) -> str:
    members_xml = []
    for statement in statements:
        xml = (
            f"<SourcePolicyId>{escape(statement.policy.source_id)}</SourcePolicyId>"
            f"<SourcePolicyType>{escape(statement.policy.source_type)}</SourcePolicyType>"
        )
        if statement.start:
            # Columns: 1-based, the start at the statement's "{" and the end just past its "}"
            # (AWS's own figures for the end column are not documented; best guess).
            for tag, (line, column) in (("StartPosition", statement.start), ("EndPosition", statement.end)):
                xml += f"<{tag}><Line>{line}</Line><Column>{column}</Column></{tag}>"
        members_xml.append(f"<member>{xml}</member>")
    return f"<MatchedStatements>{''.join(members_xml)}</MatchedStatements>"


def _missing(keys: list[str]) -> str:
    return f"<MissingContextValues>{''.join(f'<member>{escape(k)}</member>' for k in keys)}</MissingContextValues>"


def _boundary_detail(allowed: bool) -> str:
    return (
        "<PermissionsBoundaryDecisionDetail><AllowedByPermissionsBoundary>"
        f"{'true' if allowed else 'false'}</AllowedByPermissionsBoundary></PermissionsBoundaryDecisionDetail>"
    )
