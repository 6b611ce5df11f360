"""What IAM, CloudWatch Logs, ECS and RDS refuse before they act, for the calls jump makes.

moto 5.2.5 creates a role with a 65-character name, a trust policy that is not
JSON or names no principal, and a twelfth inline policy past IAM's size quota;
it keeps a retention of 2 days, a log group called "a b", a cluster whose exec
logging is "LOUD", and reports a missing log stream as a missing group. A
client tested against that learns of its mistakes on AWS. So the sandbox
checks these requests before moto sees them, and answers in the service's own
words: the length, pattern, range and required-member constraints of
botocore's service models (the ones AWS enforces on its side, whatever the SDK
does), then each service's own rules and quotas. Wordings not quoted from an
AWS answer are marked as best guesses where they are made.
"""

import json
import re
from functools import lru_cache

import botocore.loaders
from moto.core import DEFAULT_ACCOUNT_ID
from moto.iam.models import iam_backends
from moto.logs.models import logs_backends

from .awsproto import AwsError

ACCOUNT = DEFAULT_ACCOUNT_ID

# Operations whose input members are checked against the service model. IAM and Logs
# answer a violation with Coral's "N validation error(s) detected" message.
MODEL_CHECKED = {
    "iam": {
        "CreateRole", "GetRole", "DeleteRole", "UpdateAssumeRolePolicy", "PutRolePolicy", "GetRolePolicy",
        "DeleteRolePolicy", "ListRolePolicies", "CreatePolicy", "AttachRolePolicy", "AttachUserPolicy",
        "PutUserPolicy", "TagRole",
    },
    "logs": {
        "CreateLogGroup", "DeleteLogGroup", "PutRetentionPolicy", "GetLogEvents", "FilterLogEvents",
        "DescribeLogGroups", "CreateLogStream",
    },
    "events": {
        "PutRule", "DescribeRule", "DeleteRule", "PutTargets", "RemoveTargets", "ListTargetsByRule",
        "ListTagsForResource",
    },
}
VALIDATION_CODE = {"iam": "ValidationError", "logs": "InvalidParameterException", "events": "ValidationException"}
# EventBridge's content filters (Amazon EventBridge User Guide, "Content filtering in event patterns").
EVENT_FILTERS = {"prefix", "suffix", "anything-but", "numeric", "exists", "cidr", "equals-ignore-case", "wildcard"}
TARGET_ID = re.compile(r"[\.\-_A-Za-z0-9]+")

# IAM and STS quotas (IAM User Guide, "IAM and AWS STS quotas"): white space is not counted.
ROLE_INLINE_TOTAL, USER_INLINE_TOTAL, MANAGED_POLICY_SIZE, TRUST_POLICY_SIZE = 10240, 2048, 6144, 2048
ATTACHED_PER_ENTITY = 10
NO_PRINCIPAL = ("Invalid principal in policy: com.amazon.balsa.error.InvalidPolicyException: "
                "The passed in policy has a statement with no principals!")
# PutRetentionPolicy's accepted values (CloudWatch Logs API reference, PutRetentionPolicy).
RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
                  3288, 3653)
EXEC_LOGGING = ("NONE", "DEFAULT", "OVERRIDE")
CLUSTER_NAME = re.compile(r"^[a-zA-Z0-9\-_]{1,255}$")
# "Up to 255 letters (uppercase and lowercase), numbers, underscores, and hyphens" (API reference, CreateService).
SERVICE_NAME = re.compile(r"^[a-zA-Z0-9\-_]{1,255}$")
PROPAGATE_TAGS = ("TASK_DEFINITION", "SERVICE", "NONE")
# An RDS identifier: a letter first, letters, digits and hyphens, no "--", no trailing "-".
DB_IDENTIFIER = re.compile(r"^[A-Za-z](?!.*--)[A-Za-z0-9-]{0,62}(?<!-)$")
DB_IDENTIFIER_RULE = ("Identifiers must begin with a letter; must contain only ASCII letters, digits, and "
                      "hyphens; and must not end with a hyphen or contain two consecutive hyphens.")
# ECS's words for exec without a task role (boto/boto3#3173 for RunTask, aws/aws-cli#6242 for UpdateService;
# CreateService's is a best guess made by analogy).
NO_EXEC_ROLE = {
    "RunTask": ("The execute command failed because a valid task role is not being used. Specify a valid task "
                "role in your task definition or as a task override and try again."),
    "CreateService": ("The service couldn't be created because a valid taskRoleArn is not being used. Specify a "
                      "valid task role in your task definition and try again."),
    "UpdateService": ("The service couldn't be updated because a valid taskRoleArn is not being used. Specify a "
                      "valid task role in your task definition and try again."),
}


def check_request(service: str, action: str, region: str, params: dict, query: dict) -> None:
    """Raises the AwsError the service would answer this request with, if any."""
    if service == "logs" and action == "CreateLogGroup" and len(params.get("logGroupName") or "") > 512:
        # CloudWatch Logs' own words here, not Coral's (recorded from AWS in localstack's logs snapshots).
        raise AwsError("InvalidParameterException",
                       "Invalid LogGroup or LogStream, both must have length less than or equal to 512.")
    if action in MODEL_CHECKED.get(service, ()):
        errors = constraint_errors(service, action, params)
        if errors:
            raise AwsError(VALIDATION_CODE[service], coral_message(errors))
    rules = {"iam": _iam, "logs": _logs, "ecs": _ecs, "rds": _rds, "events": _events}.get(service)
    if rules is not None:
        rules(action, region, params, query)


def exec_role_error(caller: str, taskdef, overrides: dict) -> AwsError | None:
    """ECS Exec needs a task role (the agent's credentials), from the task definition or an override."""
    if overrides.get("taskRoleArn") or getattr(taskdef, "task_role_arn", None):
        return None
    return AwsError("InvalidParameterException", NO_EXEC_ROLE[caller])


# ---- the service models' constraints ------------------------------------------------


@lru_cache(maxsize=None)
def _model(service: str) -> dict:
    return botocore.loaders.Loader().load_service_model(service, "service-2")


@lru_cache(maxsize=None)
def _pattern(text: str) -> re.Pattern | None:
    """A model pattern (Java syntax) in Python's; None for the few Python cannot read."""
    try:
        return re.compile(text, re.ASCII)
    except re.error:
        return None


def coral_message(errors: list[str]) -> str:
    """Coral's message for a request whose members broke these constraints."""
    return f"{len(errors)} validation error{'s' if len(errors) > 1 else ''} detected: " + "; ".join(errors)


def constraint_errors(service: str, action: str, params: dict) -> list[str]:
    """Coral's message for each top-level member that breaks its shape's constraints."""
    model = _model(service)
    shapes = model["shapes"]
    request = shapes[model["operations"][action]["input"]["shape"]]
    required = set(request.get("required", []))
    errors = []
    for member, ref in request.get("members", {}).items():
        at = member[0].lower() + member[1:]
        value = params.get(member)
        if value is None:
            if member in required:
                errors.append(f"Value null at '{at}' failed to satisfy constraint: Member must not be null")
            continue
        errors += [f"Value '{value}' at '{at}' failed to satisfy constraint: Member must {rule}"
                   for rule in _violations(shapes[ref["shape"]], value)]
    return errors


def _violations(shape: dict, value) -> list[str]:
    kind = shape.get("type")
    found = []
    if kind == "string" and isinstance(value, str):
        if "enum" in shape and value not in shape["enum"]:
            found.append(f"satisfy enum value set: [{', '.join(shape['enum'])}]")
        pattern = _pattern(shape["pattern"]) if "pattern" in shape else None
        if pattern is not None and not pattern.fullmatch(value):
            found.append(f"satisfy regular expression pattern: {shape['pattern']}")
        if "min" in shape and len(value) < shape["min"]:
            found.append(f"have length greater than or equal to {shape['min']}")
        if "max" in shape and len(value) > shape["max"]:
            found.append(f"have length less than or equal to {shape['max']}")
    elif kind in ("integer", "long"):
        try:
            number = int(value)
        except (TypeError, ValueError):
            return found
        if "min" in shape and number < shape["min"]:
            found.append(f"have value greater than or equal to {shape['min']}")
        if "max" in shape and number > shape["max"]:
            found.append(f"have value less than or equal to {shape['max']}")
    return found


# ---- IAM ------------------------------------------------------------------------------


def _iam(action: str, _region: str, p: dict, _query: dict) -> None:
    backend = iam_backends[ACCOUNT]["global"]
    if action == "CreateRole":
        name = p.get("RoleName", "")
        if any(role.name.lower() == name.lower() for role in backend.roles.values()):
            # "Names are not distinguished by case" (IAM API reference, CreateRole).
            raise AwsError("EntityAlreadyExists", f"Role with name {name} already exists.", 409)
        _trust_policy(p.get("AssumeRolePolicyDocument"))
    elif action == "UpdateAssumeRolePolicy":
        _role(backend, p.get("RoleName", ""))
        _trust_policy(p.get("PolicyDocument"))
    elif action == "PutRolePolicy":
        role = _role(backend, p.get("RoleName", ""))
        _identity_policy(p.get("PolicyDocument"))
        _inline_total(role.policies, p, ROLE_INLINE_TOTAL, f"role {role.name}")
    elif action == "PutUserPolicy":
        user = backend.users.get(p.get("UserName", ""))
        _identity_policy(p.get("PolicyDocument"))
        if user is not None:
            _inline_total(user.policies, p, USER_INLINE_TOTAL, f"user {user.name}")
    elif action == "CreatePolicy":
        _identity_policy(p.get("PolicyDocument"))
        if _size(p.get("PolicyDocument") or "") > MANAGED_POLICY_SIZE:
            raise AwsError("LimitExceeded", f"Cannot exceed quota for PolicySize: {MANAGED_POLICY_SIZE}", 409)
    elif action == "AttachRolePolicy":
        _attach_limit(_role(backend, p.get("RoleName", "")), p.get("PolicyArn"), "PoliciesPerRole")
    elif action == "AttachUserPolicy":
        user = backend.users.get(p.get("UserName", ""))
        if user is not None:
            _attach_limit(user, p.get("PolicyArn"), "PoliciesPerUser")
    elif action in ("GetRole", "DeleteRole", "ListRolePolicies", "TagRole"):
        _role(backend, p.get("RoleName", ""))
    elif action in ("GetRolePolicy", "DeleteRolePolicy"):
        role = _role(backend, p.get("RoleName", ""))
        if p.get("PolicyName") not in role.policies:
            raise AwsError("NoSuchEntity", f"The role policy with name {p.get('PolicyName')} cannot be found.", 404)


def _role(backend, name: str):
    """The role, or IAM's NoSuchEntity in IAM's words (moto says "Role X not found")."""
    for role in backend.roles.values():
        if role.name == name:
            return role
    raise AwsError("NoSuchEntity", f"The role with name {name} cannot be found.", 404)


def _size(document: str) -> int:
    return len(re.sub(r"\s", "", document))


def _document(text) -> dict:
    try:
        document = json.loads(text or "")
    except ValueError:
        raise AwsError("MalformedPolicyDocument", "This policy contains invalid Json") from None
    if not isinstance(document, dict):
        raise AwsError("MalformedPolicyDocument", "Syntax errors in policy.")
    return document


def _statements(document: dict) -> list[dict]:
    statements = document.get("Statement")
    statements = statements if isinstance(statements, list) else [statements]
    if not all(isinstance(s, dict) for s in statements):
        raise AwsError("MalformedPolicyDocument", "Syntax errors in policy.")
    return statements


def _trust_policy(text) -> None:
    """A role's trust policy: who may assume it, so a principal and STS actions, and no resource."""
    statements = _statements(_document(text))
    if _size(text) > TRUST_POLICY_SIZE:
        raise AwsError("LimitExceeded", f"Cannot exceed quota for ACLSizePerRole: {TRUST_POLICY_SIZE}", 409)
    for statement in statements:
        for field in ("Resource", "NotResource"):
            if field in statement:
                raise AwsError("MalformedPolicyDocument", f"Has prohibited field {field}")
        if "Principal" not in statement and "NotPrincipal" not in statement:
            raise AwsError("MalformedPolicyDocument", NO_PRINCIPAL)
        actions = statement.get("Action", [])
        for action in actions if isinstance(actions, list) else [actions]:
            if not (isinstance(action, str) and (action == "*" or action.lower().startswith("sts:"))):
                raise AwsError("MalformedPolicyDocument", "AssumeRole policy may only specify STS AssumeRole actions.")


def _identity_policy(text) -> None:
    """A policy attached to an identity grants that identity: it names no principal."""
    for statement in _statements(_document(text)):
        if "Principal" in statement or "NotPrincipal" in statement:
            raise AwsError("MalformedPolicyDocument", "Policy document should not specify a principal.")


def _inline_total(policies: dict, p: dict, quota: int, entity: str) -> None:
    """An entity's inline policies share one quota; a policy put again replaces its old size."""
    others = sum(_size(str(doc)) for name, doc in policies.items() if name != p.get("PolicyName"))
    if others + _size(p.get("PolicyDocument") or "") > quota:
        raise AwsError("LimitExceeded", f"Maximum policy size of {quota} bytes exceeded for {entity}", 409)


def _attach_limit(entity, arn: str | None, quota: str) -> None:
    attached = entity.managed_policies
    if arn not in attached and len(attached) >= ATTACHED_PER_ENTITY:
        raise AwsError("LimitExceeded", f"Cannot exceed quota for {quota}: {ATTACHED_PER_ENTITY}", 409)


# ---- CloudWatch Logs ------------------------------------------------------------------


def _logs(action: str, region: str, p: dict, _query: dict) -> None:
    backend = logs_backends[ACCOUNT][region]
    if action == "PutRetentionPolicy" and p.get("retentionInDays") not in RETENTION_DAYS:
        raise AwsError(
            "InvalidParameterException",
            f"1 validation error detected: Value '{p.get('retentionInDays')}' at 'retentionInDays' failed to satisfy "
            f"constraint: Member must satisfy enum value set: [{', '.join(map(str, RETENTION_DAYS))}]",
        )
    if action == "DescribeLogGroups" and p.get("logGroupNamePrefix") and p.get("logGroupNamePattern"):
        raise AwsError("InvalidParameterException",
                       "LogGroup name prefix and LogGroup name pattern are mutually exclusive parameters.")
    if action in ("GetLogEvents", "FilterLogEvents") and p.get("logGroupName") and p.get("logGroupIdentifier"):
        # DescribeLogStreams' answer as recorded from AWS; the same rule here is a best guess at its wording.
        raise AwsError("ValidationException", "LogGroup name and LogGroup ARN are mutually exclusive parameters.")
    if action == "FilterLogEvents" and p.get("logStreamNames") and p.get("logStreamNamePrefix"):
        # The API reference names the error, not its message: the wording is a best guess.
        raise AwsError("InvalidParameterException",
                       "logStreamNames and logStreamNamePrefix are mutually exclusive parameters.")
    if action == "GetLogEvents" and p.get("logGroupName"):
        group = backend.groups.get(p["logGroupName"])
        if group is None:
            raise AwsError("ResourceNotFoundException", "The specified log group does not exist.")
        if p.get("logStreamName") not in group.streams:
            raise AwsError("ResourceNotFoundException", "The specified log stream does not exist.")


# ---- EventBridge ----------------------------------------------------------------------


def _events(action: str, _region: str, p: dict, _query: dict) -> None:
    if action == "PutTargets":
        # Nested members, which the model check above does not reach: each target's id.
        errors = [
            f"Value '{t.get('Id')}' at 'targets.{n}.member.id' failed to satisfy constraint: "
            f"Member must satisfy regular expression pattern: [\\.\\-_A-Za-z0-9]+"
            for n, t in enumerate(p.get("Targets") or [], 1)
            if not (isinstance(t.get("Id"), str) and 0 < len(t["Id"]) <= 64 and TARGET_ID.fullmatch(t["Id"]))
        ]
        if errors:
            raise AwsError("ValidationException", coral_message(errors))
    if action == "PutRule" and isinstance(p.get("EventPattern"), str):
        try:
            pattern = json.loads(p["EventPattern"])
        except ValueError:
            return  # moto says so in EventBridge's words
        unknown = _unknown_filter(pattern)
        if unknown:
            raise AwsError("InvalidEventPatternException",
                           f"Event pattern is not valid. Reason: Unrecognized match type {unknown}")


def _unknown_filter(pattern) -> str | None:
    """The first content filter EventBridge does not know, anywhere in a pattern: a field's
    value is a list of exact values and filters, `$or` a list of patterns."""
    if not isinstance(pattern, dict):
        return None
    for key, value in pattern.items():
        if key == "$or" and isinstance(value, list):
            found = next(filter(None, map(_unknown_filter, value)), None)
        elif isinstance(value, list):
            names = (name for item in value if isinstance(item, dict) for name in item)
            found = next((name for name in names if name not in EVENT_FILTERS), None)
        else:
            found = _unknown_filter(value)
        if found:
            return found
    return None


# ---- ECS ------------------------------------------------------------------------------


def _ecs(action: str, _region: str, p: dict, _query: dict) -> None:
    if action == "CreateCluster" and p.get("clusterName") is not None and not CLUSTER_NAME.match(p["clusterName"]):
        # ECS's words for a bad cluster parameter (aws-samples/amazon-ecs-nodejs-microservices#18); that
        # CreateCluster says the same of clusterName is a best guess.
        raise AwsError("InvalidParameterException",
                       f"Cluster must match ^[a-zA-Z0-9\\-_]{{1,255}}$, but was {p['clusterName']}")
    if action in ("CreateCluster", "UpdateCluster"):
        settings = (p.get("configuration") or {}).get("executeCommandConfiguration")
        if settings is not None:
            _exec_configuration(settings)
    if action in ("CreateService", "UpdateService"):
        _service(action, p)


def _service(action: str, p: dict) -> None:
    """What ECS refuses in a service request before anything runs (API reference, CreateService and
    UpdateService). Only the launch type's wording is ECS's own; the others are best guesses."""
    name = p.get("serviceName")
    if action == "CreateService" and (name is None or not SERVICE_NAME.match(name)):
        raise AwsError("InvalidParameterException",
                       f"Service name must match ^[a-zA-Z0-9\\-_]{{1,255}}$, but was {name}")
    count = p.get("desiredCount")
    if count is not None and (not isinstance(count, int) or count < 0):
        raise AwsError("InvalidParameterException", "desiredCount must be greater than or equal to 0.")
    if action == "CreateService" and count is None and p.get("schedulingStrategy", "REPLICA") == "REPLICA":
        raise AwsError("InvalidParameterException", "desiredCount is required for a service using the REPLICA "
                       "scheduling strategy.")
    if p.get("launchType") and p.get("capacityProviderStrategy"):
        # ECS's words to CreateService (terraform-linters/tflint-ruleset-aws#349, pulumi/pulumi-awsx#599).
        raise AwsError("InvalidParameterException", "Specifying both a launch type and capacity provider strategy "
                       "is not supported. Remove one and try again.")
    propagate = p.get("propagateTags")
    if propagate is not None and propagate not in PROPAGATE_TAGS:
        raise AwsError("InvalidParameterException", coral_message([
            f"Value '{propagate}' at 'propagateTags' failed to satisfy constraint: Member must satisfy enum "
            f"value set: [{', '.join(PROPAGATE_TAGS)}]"]))


def _exec_configuration(settings: dict) -> None:
    logging = settings.get("logging")
    if logging is not None and logging not in EXEC_LOGGING:
        # Coral's enum wording; that ECS uses it for this member is a best guess.
        raise AwsError(
            "InvalidParameterException",
            f"1 validation error detected: Value '{logging}' at 'configuration.executeCommandConfiguration.logging' "
            f"failed to satisfy constraint: Member must satisfy enum value set: [{', '.join(EXEC_LOGGING)}]",
        )
    supplied = settings.get("logConfiguration") is not None
    if supplied and logging != "OVERRIDE":
        # terraform-aws-modules/terraform-aws-ecs#84: even an empty logConfiguration counts as supplied.
        raise AwsError("InvalidParameterException",
                       "You must set logging to 'OVERRIDE' when you supply a log configuration")
    if logging == "OVERRIDE" and not supplied:
        # "If the OVERRIDE logging option is specified, the logConfiguration is required" (API reference);
        # the wording is a best guess.
        raise AwsError("InvalidParameterException",
                       "You must supply a log configuration when you set logging to 'OVERRIDE'")


# ---- RDS ------------------------------------------------------------------------------


def _rds(action: str, _region: str, p: dict, query: dict) -> None:
    if action != "DescribeDBInstances":
        return
    identifier = p.get("DBInstanceIdentifier")
    if identifier and not identifier.startswith("arn:") and not DB_IDENTIFIER.match(identifier):
        raise AwsError("InvalidParameterValue",
                       f"The parameter DBInstanceIdentifier is not a valid identifier. {DB_IDENTIFIER_RULE}")
    if p.get("MaxRecords") is not None:
        records = p["MaxRecords"]
        if not (records.isdigit() and 20 <= int(records) <= 100):
            raise AwsError("InvalidParameterValue",
                           f"Invalid value {records} for MaxRecords. Must be between 20 and 100")
    for value in _filter_values(query, "db-instance-id"):
        if not value.startswith("arn:") and not DB_IDENTIFIER.match(value):
            raise AwsError("InvalidParameterValue",
                           f"The parameter Filter: db-instance-id is not a valid identifier. {DB_IDENTIFIER_RULE}")


def _filter_values(query: dict, name: str) -> list[str]:
    """The values of the query-protocol filters called NAME (``Filters.Filter.N.Values.Value.M``)."""
    found = []
    for key, values in query.items():
        match = re.fullmatch(r"Filters\.Filter\.(\d+)\.Values\.Value\.\d+", key)
        if match and query.get(f"Filters.Filter.{match.group(1)}.Name", [None])[0] == name:
            found.append(values[0])
    return found
