"""SimulatePrincipalPolicy evaluates the policies IAM holds, as AWS's simulator does.

jump doctor trusts this answer, and jump's templates are the policies that should
make it "allowed"; so these tests give principals real documents (inline, managed,
group, boundary; the templates with their placeholders filled) and check the
decision, the statements behind it and the context keys that were missing.
"""

import json
import re
import uuid
from pathlib import Path

import botocore.exceptions
import pytest
from conftest import ctl

TEMPLATES = Path(__file__).resolve().parents[3] / "templates"
ACCOUNT = "123456789012"
TRUST = json.dumps({"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
CHANNELS = ["ssmmessages:CreateControlChannel", "ssmmessages:CreateDataChannel",
            "ssmmessages:OpenControlChannel", "ssmmessages:OpenDataChannel"]


def document(*statements) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def make_role(aws, inline: dict | None = None, managed: list[str] = (), **create) -> str:
    name = unique("sim-role")
    arn = aws.iam.create_role(RoleName=name, AssumeRolePolicyDocument=TRUST, **create)["Role"]["Arn"]
    for policy_name, text in (inline or {}).items():
        aws.iam.put_role_policy(RoleName=name, PolicyName=policy_name, PolicyDocument=text)
    for policy_arn in managed:
        aws.iam.attach_role_policy(RoleName=name, PolicyArn=policy_arn)
    return arn


def make_policy(aws, text: str) -> str:
    return aws.iam.create_policy(PolicyName=unique("sim-policy"), PolicyDocument=text)["Policy"]["Arn"]


def simulate(aws, principal, actions, resources=None, context=None, **extra) -> list[dict]:
    params = dict(PolicySourceArn=principal, ActionNames=list(actions), **extra)
    if resources is not None:
        params["ResourceArns"] = list(resources)
    if context:
        params["ContextEntries"] = [
            {"ContextKeyName": key, "ContextKeyValues": value if isinstance(value, list) else [value],
             "ContextKeyType": "stringList" if isinstance(value, list) else "string"}
            for key, value in context.items()
        ]
    return aws.iam.simulate_principal_policy(**params)["EvaluationResults"]


def decisions(aws, principal, actions, resources=None, context=None) -> dict[str, str]:
    return {r["EvalActionName"]: r["EvalDecision"] for r in simulate(aws, principal, actions, resources, context)}


def decision(aws, principal, action, resource=None, context=None) -> str:
    return decisions(aws, principal, [action], None if resource is None else [resource], context)[action]


def error_of(call) -> dict:
    with pytest.raises(botocore.exceptions.ClientError) as info:
        call()
    return info.value.response["Error"]


@pytest.fixture(autouse=True)
def no_denials(sandbox):
    yield
    ctl(sandbox, "clear")


# --- the evaluation ---------------------------------------------------------------------------


def test_an_inline_policy_allowing_ssmmessages_star_allows_each_channel_action(aws):
    text = document({"Effect": "Allow", "Action": "ssmmessages:*", "Resource": "*"})
    role = make_role(aws, inline={"channels": text})
    results = simulate(aws, role, CHANNELS)
    assert [r["EvalDecision"] for r in results] == ["allowed"] * 4
    assert {r["EvalResourceName"] for r in results} == {"*"}
    statement = results[0]["MatchedStatements"][0]
    assert (statement["SourcePolicyId"], statement["SourcePolicyType"]) == ("channels", "role")
    # Where the statement sits in the document, 1-based, as AWS reports it for this layout.
    assert statement["StartPosition"] == {"Line": 1, "Column": 41}
    assert statement["EndPosition"] == {"Line": 1, "Column": len(text) - 1}  # just past its "}"
    assert "ResourceSpecificResults" not in results[0]


def test_an_explicit_deny_beats_an_allow_and_is_the_only_statement_reported(aws):
    role = make_role(aws, inline={
        "all": document({"Effect": "Allow", "Action": "*", "Resource": "*"}),
        "no-data": document({"Sid": "NoData", "Effect": "Deny", "Action": "ssmmessages:OpenDataChannel",
                             "Resource": "*"}),
    })
    result = simulate(aws, role, ["ssmmessages:OpenDataChannel", "ssmmessages:OpenControlChannel"])
    assert [r["EvalDecision"] for r in result] == ["explicitDeny", "allowed"]
    assert [s["SourcePolicyId"] for s in result[0]["MatchedStatements"]] == ["no-data"]


def test_a_role_without_policies_is_implicitly_denied(aws):
    role = make_role(aws)
    results = simulate(aws, role, CHANNELS)
    assert [r["EvalDecision"] for r in results] == ["implicitDeny"] * 4
    assert all(r["MatchedStatements"] == [] for r in results)


def test_a_statement_scoped_to_a_log_group_does_not_match_the_star_simulated_without_resources(aws):
    group = f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:/jump/sessions"
    role = make_role(aws, inline={"logs": document(
        {"Effect": "Allow", "Action": "logs:PutLogEvents", "Resource": [group, f"{group}:*"]})})
    assert decision(aws, role, "logs:PutLogEvents") == "implicitDeny"

    stream = f"{group}:log-stream:jump/jumphost/0123"
    other = f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:/other:log-stream:x"
    [result] = simulate(aws, role, ["logs:PutLogEvents"], [stream, other])
    assert result["EvalDecision"] == "implicitDeny"  # the most restrictive over both resources
    assert result["EvalResourceName"] == (
        "arn:${Partition}:logs:${Region}:${Account}:log-group:${LogGroupName}:log-stream:${LogStreamName}")
    assert result["EvalDecisionDetails"] == {}
    assert [(r["EvalResourceName"], r["EvalResourceDecision"]) for r in result["ResourceSpecificResults"]] == [
        (stream, "allowed"), (other, "implicitDeny")]
    assert decision(aws, role, "logs:PutLogEvents", stream) == "allowed"
    # The group's name is matched whole: /jump/sessions2 is another group.
    assert decision(aws, role, "logs:PutLogEvents", f"{group}2:log-stream:x") == "implicitDeny"


def test_run_task_tagged_with_the_callers_own_user_id(aws):
    role = make_role(aws, inline={"own": document({
        "Effect": "Allow", "Action": "ecs:RunTask", "Resource": "*",
        "Condition": {"StringEquals": {"aws:RequestTag/jump:owner-id": "${aws:userid}"}}})})
    me = "AIDAEXAMPLEUSER12345"
    mine = {"aws:RequestTag/jump:owner-id": me, "aws:userid": me}
    assert decision(aws, role, "ecs:RunTask", context=mine) == "allowed"
    # Condition key names are not case-sensitive.
    shouted = {"AWS:REQUESTTAG/JUMP:OWNER-ID": me, "aws:UserId": me}
    assert decision(aws, role, "ecs:RunTask", context=shouted) == "allowed"
    assert decision(aws, role, "ecs:RunTask", context={**mine, "aws:RequestTag/jump:owner-id": "AIDAOTHER"}) == (
        "implicitDeny")

    [missing] = simulate(aws, role, ["ecs:RunTask"])
    assert missing["EvalDecision"] == "implicitDeny"
    assert missing["MissingContextValues"] == ["aws:RequestTag/jump:owner-id", "aws:userid"]
    [no_variable] = simulate(aws, role, ["ecs:RunTask"], context={"aws:RequestTag/jump:owner-id": me})
    assert no_variable["EvalDecision"] == "implicitDeny"  # ${aws:userid} has no value: nothing equals it
    assert no_variable["MissingContextValues"] == ["aws:userid"]
    task_definition = f"arn:aws:ecs:us-east-1:{ACCOUNT}:task-definition/jump:1"
    [scoped] = simulate(aws, role, ["ecs:RunTask"], [task_definition])
    assert scoped["ResourceSpecificResults"][0]["MissingContextValues"] == [
        "aws:RequestTag/jump:owner-id", "aws:userid"]


def test_list_tasks_only_in_the_cluster_named_by_arn(aws):
    cluster = f"arn:aws:ecs:us-east-1:{ACCOUNT}:cluster/jump-sandbox"
    role = make_role(aws, inline={"list": document({
        "Effect": "Allow", "Action": "ecs:ListTasks", "Resource": "*",
        "Condition": {"ArnEquals": {"ecs:cluster": cluster}}})})
    assert decision(aws, role, "ecs:ListTasks", context={"ecs:cluster": cluster}) == "allowed"
    assert decision(aws, role, "ecs:ListTasks", context={"ecs:cluster": cluster + "-prod"}) == "implicitDeny"
    assert decision(aws, role, "ecs:ListTasks") == "implicitDeny"


def test_a_deny_on_insecure_transport(aws):
    role = make_role(aws, inline={"tls": document(
        {"Effect": "Allow", "Action": "logs:*", "Resource": "*"},
        {"Effect": "Deny", "Action": "*", "Resource": "*", "Condition": {"Bool": {"aws:SecureTransport": False}}},
    )})
    assert decision(aws, role, "logs:GetLogEvents", context={"aws:SecureTransport": "true"}) == "allowed"
    assert decision(aws, role, "logs:GetLogEvents", context={"aws:SecureTransport": "FALSE"}) == "explicitDeny"
    assert decision(aws, role, "logs:GetLogEvents") == "allowed"  # Bool on a missing key is false

    strict = make_role(aws, inline={"tls": document(
        {"Effect": "Allow", "Action": "logs:*", "Resource": "*",
         "Condition": {"BoolIfExists": {"aws:SecureTransport": "true"}}})})
    assert decision(aws, strict, "logs:GetLogEvents") == "allowed"
    assert decision(aws, strict, "logs:GetLogEvents", context={"aws:SecureTransport": "false"}) == "implicitDeny"


def test_attached_managed_policies_count_with_their_default_version(aws):
    managed = make_policy(aws, document({"Effect": "Allow", "Action": "ecs:Describe*", "Resource": "*"}))
    role = make_role(aws, managed=[managed])
    [result] = simulate(aws, role, ["ecs:DescribeTasks"])
    assert result["EvalDecision"] == "allowed"
    assert result["MatchedStatements"][0]["SourcePolicyType"] == "user-managed"
    assert result["MatchedStatements"][0]["SourcePolicyId"] == managed.rsplit("/", 1)[1]

    aws.iam.create_policy_version(PolicyArn=managed, SetAsDefault=True, PolicyDocument=document(
        {"Effect": "Allow", "Action": "ecs:ListTasks", "Resource": "*"}))
    assert decisions(aws, role, ["ecs:DescribeTasks", "ecs:ListTasks"]) == {
        "ecs:DescribeTasks": "implicitDeny", "ecs:ListTasks": "allowed"}

    admin = make_role(aws, managed=["arn:aws:iam::aws:policy/AdministratorAccess"])
    [result] = simulate(aws, admin, ["kms:Decrypt"], [f"arn:aws:kms:us-east-1:{ACCOUNT}:key/anything"])
    assert result["EvalDecision"] == "allowed"
    assert result["MatchedStatements"][0]["SourcePolicyType"] == "aws-managed"
    assert result["EvalResourceName"] == "arn:${Partition}:kms:${Region}:${Account}:key/${KeyId}"


def test_a_user_gets_its_own_and_its_groups_policies(aws):
    user = unique("sim-user")
    arn = aws.iam.create_user(UserName=user)["User"]["Arn"]
    aws.iam.put_user_policy(UserName=user, PolicyName="own", PolicyDocument=document(
        {"Effect": "Allow", "Action": "ecs:ListTasks", "Resource": "*"}))
    group = unique("sim-group")
    aws.iam.create_group(GroupName=group)
    aws.iam.add_user_to_group(GroupName=group, UserName=user)
    aws.iam.put_group_policy(GroupName=group, PolicyName="team", PolicyDocument=document(
        {"Effect": "Allow", "Action": "ecs:StopTask", "Resource": "*"}))
    aws.iam.attach_group_policy(GroupName=group, PolicyArn=make_policy(aws, document(
        {"Effect": "Deny", "Action": "ecs:ListTasks", "Resource": "*"})))
    results = simulate(aws, arn, ["ecs:StopTask", "ecs:ListTasks", "ecs:RunTask"])
    assert [r["EvalDecision"] for r in results] == ["allowed", "explicitDeny", "implicitDeny"]
    assert results[0]["MatchedStatements"][0]["SourcePolicyType"] == "group"
    group_arn = aws.iam.get_group(GroupName=group)["Group"]["Arn"]
    assert decision(aws, group_arn, "ecs:StopTask") == "allowed"


def test_the_callers_own_user_is_an_administrator_as_in_a_real_account(aws):
    """STS says the sandbox's caller is user/moto; in an account that user has AdministratorAccess."""
    caller = aws.sts.get_caller_identity()["Arn"].replace(":sts::", ":iam::")
    assert caller == f"arn:aws:iam::{ACCOUNT}:user/moto"
    try:
        aws.iam.get_user(UserName="moto")
    except aws.iam.exceptions.NoSuchEntityException:
        assert error_of(lambda: simulate(aws, caller, ["ecs:RunTask"]))["Code"] == "NoSuchEntity"
        aws.iam.create_user(UserName="moto")
        aws.iam.attach_user_policy(UserName="moto", PolicyArn="arn:aws:iam::aws:policy/AdministratorAccess")
    actions = ["ecs:RunTask", "ecs:StopTask", "ecs:DescribeTasks", "ecs:ExecuteCommand", "ssm:StartSession"]
    assert decisions(aws, caller, actions, ["*"]) == {a: "allowed" for a in actions}


def test_ctl_deny_overrides_a_policy_that_allows(sandbox, aws):
    role = make_role(aws, inline={"channels": document({"Effect": "Allow", "Action": "ssmmessages:*",
                                                        "Resource": "*"})})
    name = role.rsplit("/", 1)[1]
    ctl(sandbox, "deny", "ssmmessages:OpenDataChannel", "--principal", f"role/{name}")
    [denied, allowed] = simulate(aws, role, ["ssmmessages:OpenDataChannel", "ssmmessages:OpenControlChannel"])
    assert (denied["EvalDecision"], denied["MatchedStatements"]) == ("implicitDeny", [])
    assert allowed["EvalDecision"] == "allowed"
    ctl(sandbox, "clear")
    assert decision(aws, role, "ssmmessages:OpenDataChannel") == "allowed"


def test_not_action_not_resource_and_wildcards(aws):
    bucket = "arn:aws:s3:::jump-artifacts"
    role = make_role(aws, inline={"mixed": document(
        {"Effect": "Allow", "NotAction": ["iam:*", "organizations:*"], "Resource": "*"},
        {"Effect": "Deny", "Action": "s3:Delete?bject", "NotResource": f"{bucket}/scratch/*"},
        {"Effect": "Allow", "Action": "iam:Get*", "Resource": f"arn:aws:iam::{ACCOUNT}:role/jump-*"},
        {"Effect": "Allow", "Action": "iam:List*", "Resource": "arn:aws:iam::1*9:role/*"},
    )})
    assert decision(aws, role, "EC2:describeVpcs") == "allowed"  # action names ignore case
    assert decision(aws, role, "iam:CreateUser") == "implicitDeny"
    assert decision(aws, role, "s3:DeleteObject", f"{bucket}/keep/a") == "explicitDeny"
    assert decision(aws, role, "s3:DeleteObject", f"{bucket}/scratch/a") == "allowed"
    assert decision(aws, role, "iam:GetRole", f"arn:aws:iam::{ACCOUNT}:role/jump-task") == "allowed"
    assert decision(aws, role, "iam:GetRole", f"arn:aws:iam::{ACCOUNT}:role/JUMP-task") == "implicitDeny"
    # A * inside an ARN segment stays there; one that ends a segment may run past its colon.
    assert decision(aws, role, "iam:ListRoleTags", "arn:aws:iam::109876543219:role/x") == "allowed"
    assert decision(aws, role, "iam:ListRoleTags", "arn:aws:iam::1:9:role/x") == "implicitDeny"


def test_set_operators_null_numbers_and_negations(aws):
    allowed_tags = ["jump:owner-id", "jump:session"]
    role = make_role(aws, inline={"tags": document(
        {"Sid": "OnlyJumpTagKeys", "Effect": "Allow", "Action": "ecs:TagResource", "Resource": "*",
         "Condition": {"ForAllValues:StringEquals": {"aws:TagKeys": allowed_tags}}},
        {"Sid": "SomeTeam", "Effect": "Allow", "Action": "ecs:UntagResource", "Resource": "*",
         "Condition": {"ForAnyValue:StringLike": {"aws:PrincipalTag/teams": ["plat*", "sec"]}}},
        {"Sid": "NeedsMfaAge", "Effect": "Allow", "Action": "ecs:StopTask", "Resource": "*",
         "Condition": {"Null": {"aws:MultiFactorAuthAge": "false"},
                       "NumericLessThan": {"aws:MultiFactorAuthAge": "3600"}}},
        {"Sid": "NotProd", "Effect": "Allow", "Action": "ecs:ListTasks", "Resource": "*",
         "Condition": {"StringNotEquals": {"aws:ResourceTag/env": ["prod", "staging"]}}},
    )})
    assert decision(aws, role, "ecs:TagResource", context={"aws:TagKeys": ["jump:session"]}) == "allowed"
    assert decision(aws, role, "ecs:TagResource", context={"aws:TagKeys": ["jump:session", "owner"]}) == "implicitDeny"
    assert decision(aws, role, "ecs:TagResource") == "allowed"  # ForAllValues over no keys holds
    assert decision(aws, role, "ecs:UntagResource", context={"aws:PrincipalTag/teams": ["data", "platform"]}) == (
        "allowed")
    assert decision(aws, role, "ecs:UntagResource") == "implicitDeny"
    assert decision(aws, role, "ecs:StopTask", context={"aws:MultiFactorAuthAge": "120"}) == "allowed"
    assert decision(aws, role, "ecs:StopTask", context={"aws:MultiFactorAuthAge": "7200"}) == "implicitDeny"
    assert decision(aws, role, "ecs:StopTask") == "implicitDeny"
    assert decision(aws, role, "ecs:ListTasks", context={"aws:ResourceTag/env": "dev"}) == "allowed"
    assert decision(aws, role, "ecs:ListTasks", context={"aws:ResourceTag/env": "staging"}) == "implicitDeny"
    assert decision(aws, role, "ecs:ListTasks") == "allowed"  # a negated operator holds for a missing key


def test_policy_variables_defaults_and_escapes(aws):
    role = make_role(aws, inline={"vars": document(
        {"Effect": "Allow", "Action": "s3:GetObject",
         "Resource": "arn:aws:s3:::home/${aws:username}/${*}"},
        {"Effect": "Allow", "Action": "s3:PutObject",
         "Resource": "arn:aws:s3:::home/${aws:PrincipalTag/team, 'shared'}/*"},
    )})
    bob = {"aws:username": "bob"}
    assert decision(aws, role, "s3:GetObject", "arn:aws:s3:::home/bob/*", bob) == "allowed"
    assert decision(aws, role, "s3:GetObject", "arn:aws:s3:::home/bob/notes", bob) == "implicitDeny"
    # A substituted value is literal, never a wildcard.
    assert decision(aws, role, "s3:GetObject", "arn:aws:s3:::home/bob/*", {"aws:username": "*"}) == "implicitDeny"
    assert decision(aws, role, "s3:PutObject", "arn:aws:s3:::home/shared/x") == "allowed"
    assert decision(aws, role, "s3:PutObject", "arn:aws:s3:::home/ops/x", {"aws:PrincipalTag/team": "ops"}) == (
        "allowed")
    assert decision(aws, role, "s3:PutObject", "arn:aws:s3:::home/shared/x", {"aws:PrincipalTag/team": "ops"}) == (
        "implicitDeny")

    # Before the 2012-10-17 language version, ${...} is plain text. (moto refuses to store
    # such a document, so it comes with the request.)
    old = json.dumps({"Version": "2008-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::home/${aws:username}"}]})
    bare = make_role(aws)

    def as_2008(resource):
        [result] = simulate(aws, bare, ["s3:GetObject"], [resource], bob, PolicyInputList=[old])
        return result["EvalDecision"]

    assert as_2008("arn:aws:s3:::home/${aws:username}") == "allowed"
    assert as_2008("arn:aws:s3:::home/bob") == "implicitDeny"


def test_a_permissions_boundary_caps_what_the_role_policies_allow(aws):
    boundary = make_policy(aws, document({"Effect": "Allow", "Action": ["ssmmessages:*", "logs:*"], "Resource": "*"}))
    role = make_role(aws, inline={"admin": document({"Effect": "Allow", "Action": "*", "Resource": "*"})},
                     PermissionsBoundary=boundary)
    inside, outside = simulate(aws, role, ["ssmmessages:OpenDataChannel", "ecs:RunTask"])
    assert inside["EvalDecision"] == "allowed"
    assert inside["PermissionsBoundaryDecisionDetail"] == {"AllowedByPermissionsBoundary": True}
    assert outside["EvalDecision"] == "implicitDeny"
    assert outside["PermissionsBoundaryDecisionDetail"] == {"AllowedByPermissionsBoundary": False}
    # A boundary given with the request replaces the role's.
    wider = document({"Effect": "Allow", "Action": "ecs:*", "Resource": "*"})
    [result] = simulate(aws, role, ["ecs:RunTask"], PermissionsBoundaryPolicyInputList=[wider])
    assert result["EvalDecision"] == "allowed"


def test_extra_policies_in_the_request_join_the_principals(aws):
    role = make_role(aws)
    extra = document({"Effect": "Allow", "Action": "ecs:ListTasks", "Resource": "*"})
    [result] = simulate(aws, role, ["ecs:ListTasks"], PolicyInputList=[extra])
    assert result["EvalDecision"] == "allowed"
    assert result["MatchedStatements"][0]["SourcePolicyId"] == "PolicyInputList.1"
    error = error_of(lambda: simulate(aws, role, ["ecs:ListTasks"], PolicyInputList=["{not json"]))
    assert error["Code"] == "InvalidInput"


def test_principals_iam_does_not_know_or_cannot_simulate_are_refused(aws):
    missing = error_of(lambda: simulate(aws, f"arn:aws:iam::{ACCOUNT}:role/never-created", ["ecs:ListTasks"]))
    assert (missing["Code"], missing["Message"]) == (
        "NoSuchEntity", "The role with name never-created cannot be found.")
    assert error_of(lambda: simulate(aws, f"arn:aws:iam::{ACCOUNT}:user/nobody", ["ecs:ListTasks"]))["Code"] == (
        "NoSuchEntity")
    session = f"arn:aws:sts::{ACCOUNT}:assumed-role/jump-task/GitHubActions"
    refused = error_of(lambda: simulate(aws, session, ["ecs:ListTasks"]))
    assert refused["Code"] == "InvalidInput"
    assert refused["Message"] == f"Invalid Entity Arn: {session} does not clearly define entity type and name."
    role = make_role(aws)
    key_id = "14a050d4-021e-4efe-84bb-0871bf6d0fda"
    bad = error_of(lambda: simulate(aws, role, ["kms:Decrypt"], [key_id]))
    assert (bad["Code"], bad["Message"]) == ("InvalidInput", f"ResourceNames are not in a valid ARN format: {key_id}.")


def test_results_page_with_max_items_and_marker(aws):
    role = make_role(aws, inline={"channels": document({"Effect": "Allow", "Action": "ssmmessages:*",
                                                        "Resource": "*"})})
    first = aws.iam.simulate_principal_policy(PolicySourceArn=role, ActionNames=CHANNELS, MaxItems=3)
    assert first["IsTruncated"] is True
    assert [r["EvalActionName"] for r in first["EvaluationResults"]] == CHANNELS[:3]
    rest = aws.iam.simulate_principal_policy(PolicySourceArn=role, ActionNames=CHANNELS, Marker=first["Marker"])
    assert rest["IsTruncated"] is False
    assert [r["EvalActionName"] for r in rest["EvaluationResults"]] == CHANNELS[3:]


# --- the sandbox's own checks (exec channels, KMS) -------------------------------------------


def test_the_sandbox_checks_known_task_roles_against_their_policies():
    """What ExecuteCommand and the KMS handshake ask about the task role, evaluated in-process."""
    from jumpsandbox.iam import PolicySimulator
    from moto.iam.models import iam_backends

    account = "210987654321"  # a backend of this test process only
    backend = iam_backends[account]["aws"]
    bare = backend.create_role(unique("bare"), TRUST, "/", None, "", [], None)
    agent = backend.create_role(unique("agent"), TRUST, "/", None, "", [], None)
    backend.put_role_policy(agent.name, "channels", (TEMPLATES / "task-role-policy.json").read_text())
    key = f"arn:aws:kms:us-east-1:{account}:key/k1"
    backend.put_role_policy(agent.name, "kms", (TEMPLATES / "task-role-kms-policy.json").read_text()
                            .replace("{{kms_key_arn}}", key))
    simulator = PolicySimulator()
    assert simulator.decision(bare.arn, "ssmmessages:OpenDataChannel") == "implicitDeny"
    assert simulator.decision(agent.arn, "ssmmessages:OpenDataChannel") == "allowed"
    assert simulator.decision(agent.arn, "kms:Decrypt", key) == "allowed"
    assert simulator.decision(agent.arn, "kms:Decrypt") == "implicitDeny"  # the key's ARN is needed
    # A role IAM does not know is not checked (the sandbox runs such tasks; AWS would not).
    assert simulator.decision(f"arn:aws:iam::{account}:role/unknown", "kms:Decrypt") == "allowed"
    simulator.deny(["ssmmessages:OpenDataChannel"], "role/agent")
    assert simulator.decision(agent.arn, "ssmmessages:OpenDataChannel") == "implicitDeny"


# --- jump's templates -------------------------------------------------------------------------


def fill(name: str, values: dict) -> str:
    text = (TEMPLATES / name).read_text()
    filled = re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: values[m.group(1)], text)
    assert "{{" not in filled
    json.loads(filled)
    return filled


@pytest.fixture(scope="module")
def jump_account(aws):
    """The roles and the user `jump init` would set up, with the templates as their policies."""
    suffix = uuid.uuid4().hex[:6]
    region = aws.env["AWS_REGION"]
    values = {
        "partition": "aws", "region": region, "account": ACCOUNT, "cluster": aws.cluster,
        "family": "jump-jumphost", "log_group": "/jump/sessions", "exec_log_group": "/jump/exec",
        "task_role": f"arn:aws:iam::{ACCOUNT}:role/jump/jump-task-{suffix}",
        "execution_role": f"arn:aws:iam::{ACCOUNT}:role/jump-execution-{suffix}",
        "kms_key_arn": f"arn:aws:kms:{region}:{ACCOUNT}:key/{uuid.uuid4()}",
        "ecr_repository": f"arn:aws:ecr:{region}:{ACCOUNT}:repository/team/jumphost",
    }
    trust = fill("ecs-tasks-trust-policy.json", values)
    aws.iam.create_role(RoleName=f"jump-task-{suffix}", Path="/jump/", AssumeRolePolicyDocument=trust)
    for name in ("task-role-policy.json", "task-role-logging-policy.json", "task-role-kms-policy.json"):
        aws.iam.put_role_policy(RoleName=f"jump-task-{suffix}", PolicyName=name[:-5], PolicyDocument=fill(name, values))
    aws.iam.create_role(RoleName=f"jump-execution-{suffix}", AssumeRolePolicyDocument=trust)
    for name in ("execution-role-policy.json", "execution-role-ecr-policy.json"):
        aws.iam.put_role_policy(RoleName=f"jump-execution-{suffix}", PolicyName=name[:-5],
                                PolicyDocument=fill(name, values))
    user = aws.iam.create_user(UserName=f"jump-user-{suffix}")["User"]
    for name in ("user-policy.json", "user-kms-policy.json"):
        policy = aws.iam.create_policy(PolicyName=f"{name[:-5]}-{suffix}", PolicyDocument=fill(name, values))
        aws.iam.attach_user_policy(UserName=user["UserName"], PolicyArn=policy["Policy"]["Arn"])
    prefix = f"arn:aws:ecs:{region}:{ACCOUNT}"
    return {
        **values, "user": user["Arn"], "userid": user["UserId"],
        "cluster_arn": f"{prefix}:cluster/{aws.cluster}",
        "task": f"{prefix}:task/{aws.cluster}/0123456789abcdef0123456789abcdef",
        "taskdef": f"{prefix}:task-definition/jump-jumphost:7",
        "logs": f"arn:aws:logs:{region}:{ACCOUNT}:log-group:",
    }


def test_task_role_templates_open_channels_write_transcripts_and_decrypt(aws, jump_account):
    role, logs, key = jump_account["task_role"], jump_account["logs"], jump_account["kms_key_arn"]
    assert decisions(aws, role, CHANNELS) == {a: "allowed" for a in CHANNELS}
    assert decision(aws, role, "logs:DescribeLogGroups") == "allowed"
    transcripts = f"{logs}/jump/exec:log-stream:ecs-execute-command-0123"
    assert decisions(aws, role, ["logs:CreateLogStream", "logs:PutLogEvents"], [transcripts]) == {
        "logs:CreateLogStream": "allowed", "logs:PutLogEvents": "allowed"}
    assert decision(aws, role, "logs:PutLogEvents", f"{logs}/jump/sessions:log-stream:x") == "implicitDeny"
    assert decision(aws, role, "kms:Decrypt", key) == "allowed"
    assert decision(aws, role, "kms:Decrypt", key.rsplit("/", 1)[0] + "/another-key") == "implicitDeny"
    # Asked without the resource, as jump doctor's task-role checks ask today: not allowed.
    assert decisions(aws, role, ["logs:CreateLogStream", "kms:Decrypt"]) == {
        "logs:CreateLogStream": "implicitDeny", "kms:Decrypt": "implicitDeny"}
    assert decision(aws, role, "ecs:RunTask") == "implicitDeny"


def test_execution_role_templates_pull_only_the_jumphost_image_and_write_only_the_session_log_group(aws, jump_account):
    role, logs, repository = jump_account["execution_role"], jump_account["logs"], jump_account["ecr_repository"]
    assert decision(aws, role, "ecr:GetAuthorizationToken") == "allowed"
    pulls = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
    assert decisions(aws, role, pulls, [repository]) == {a: "allowed" for a in pulls}
    elsewhere = repository.replace("team/jumphost", "team/payments")
    assert decisions(aws, role, pulls, [elsewhere]) == {a: "implicitDeny" for a in pulls}
    assert decision(aws, role, "ecr:BatchCheckLayerAvailability", repository) == "implicitDeny"
    assert decision(aws, role, "logs:CreateLogGroup", f"{logs}/jump/sessions") == "allowed"
    stream = f"{logs}/jump/sessions:log-stream:jump/jumphost/0123"
    assert decisions(aws, role, ["logs:CreateLogStream", "logs:PutLogEvents"], [stream]) == {
        "logs:CreateLogStream": "allowed", "logs:PutLogEvents": "allowed"}
    assert decision(aws, role, "logs:PutLogEvents", f"{logs}/jump/exec:log-stream:x") == "implicitDeny"
    assert decision(aws, role, "ssmmessages:OpenDataChannel") == "implicitDeny"


def test_user_template_runs_only_jumphosts_tagged_as_the_callers(aws, jump_account):
    a = jump_account
    mine = {"ecs:cluster": a["cluster_arn"], "aws:RequestTag/jump:owner-id": a["userid"], "aws:userid": a["userid"]}
    assert decision(aws, a["user"], "ecs:RunTask", a["taskdef"], mine) == "allowed"
    theirs = {**mine, "aws:RequestTag/jump:owner-id": "AIDAOTHER"}
    assert decision(aws, a["user"], "ecs:RunTask", a["taskdef"], theirs) == "implicitDeny"
    assert decision(aws, a["user"], "ecs:RunTask", a["taskdef"], {**mine, "ecs:cluster": a["cluster_arn"] + "x"}) == (
        "implicitDeny")
    assert decision(aws, a["user"], "ecs:RunTask", a["taskdef"].replace("jump-jumphost", "web-api"), mine) == (
        "implicitDeny")
    assert decision(aws, a["user"], "ecs:RegisterTaskDefinition", a["taskdef"]) == "allowed"
    assert decision(aws, a["user"], "ecs:RegisterTaskDefinition", a["taskdef"].replace("jump-jumphost", "web")) == (
        "implicitDeny")
    tagging = {"ecs:CreateAction": "RunTask"}
    assert decision(aws, a["user"], "ecs:TagResource", a["task"], tagging) == "allowed"
    assert decision(aws, a["user"], "ecs:TagResource", a["task"]) == "implicitDeny"
    assert decision(aws, a["user"], "ecs:UntagResource", a["task"], tagging) == "implicitDeny"
    passing = {"iam:PassedToService": "ecs-tasks.amazonaws.com"}
    assert decisions(aws, a["user"], ["iam:PassRole"], [a["task_role"], a["execution_role"]], passing) == {
        "iam:PassRole": "allowed"}
    to_lambda = {"iam:PassedToService": "lambda.amazonaws.com"}
    assert decision(aws, a["user"], "iam:PassRole", a["task_role"], to_lambda) == "implicitDeny"
    assert decision(aws, a["user"], "iam:PassRole", f"arn:aws:iam::{ACCOUNT}:role/admin", passing) == "implicitDeny"


def test_user_template_stops_execs_and_forwards_only_through_own_tasks(aws, jump_account):
    a = jump_account
    own = {"ecs:ResourceTag/jump:owner-id": a["userid"], "aws:userid": a["userid"]}
    theirs = {**own, "ecs:ResourceTag/jump:owner-id": "AIDAOTHER"}
    assert decisions(aws, a["user"], ["ecs:StopTask", "ecs:ExecuteCommand"], [a["task"]], own) == {
        "ecs:StopTask": "allowed", "ecs:ExecuteCommand": "allowed"}
    assert decisions(aws, a["user"], ["ecs:StopTask", "ecs:ExecuteCommand"], [a["task"]], theirs) == {
        "ecs:StopTask": "implicitDeny", "ecs:ExecuteCommand": "implicitDeny"}
    assert decision(aws, a["user"], "ecs:ExecuteCommand", a["cluster_arn"]) == "allowed"
    assert decision(aws, a["user"], "ecs:DescribeTasks", a["task"]) == "allowed"  # read-only: anyone's

    check = {"ssm:SessionDocumentAccessCheck": "true"}
    document_arn = f"arn:aws:ssm:{a['region']}::document/AWS-StartPortForwardingSessionToRemoteHost"
    forward = {**check, "aws:ResourceTag/jump:owner-id": a["userid"], "aws:userid": a["userid"]}
    assert decisions(aws, a["user"], ["ssm:StartSession"], [document_arn, a["task"]], forward) == {
        "ssm:StartSession": "allowed"}
    shell = document_arn.replace("AWS-StartPortForwardingSessionToRemoteHost", "SSM-SessionManagerRunShell")
    assert decision(aws, a["user"], "ssm:StartSession", shell, check) == "implicitDeny"
    through_theirs = {**forward, "aws:ResourceTag/jump:owner-id": "AIDAOTHER"}
    assert decision(aws, a["user"], "ssm:StartSession", a["task"], through_theirs) == "implicitDeny"
    session = f"arn:aws:ssm:{a['region']}:{ACCOUNT}:session/{a['userid']}-0a1b2c3d"
    ended = {"ssm:resourceTag/aws:ssmmessages:session-id": a["userid"], "aws:userid": a["userid"]}
    assert decision(aws, a["user"], "ssm:TerminateSession", session, ended) == "allowed"
    assert decision(aws, a["user"], "ssm:TerminateSession", session, {**ended, "aws:userid": "AIDAOTHER"}) == (
        "implicitDeny")
    assert decision(aws, a["user"], "ssm:ResumeSession", session, ended) == "allowed"
    assert decision(aws, a["user"], "ssm:ResumeSession", session, {**ended, "aws:userid": "AIDAOTHER"}) == (
        "implicitDeny")


def test_user_template_claims_only_untagged_pool_tasks_and_only_as_the_caller(aws, jump_account):
    a = jump_account
    keys = ["jump:owner", "jump:owner-id", "jump:session", "jump:expires"]
    claim = {"aws:RequestTag/jump:owner-id": a["userid"], "aws:userid": a["userid"],
             "ecs:ResourceTag/jump:pool": "dev", "aws:TagKeys": keys}
    assert decision(aws, a["user"], "ecs:TagResource", a["task"], claim) == "allowed"
    as_someone_else = {**claim, "aws:RequestTag/jump:owner-id": "AIDAOTHER"}
    assert decision(aws, a["user"], "ecs:TagResource", a["task"], as_someone_else) == "implicitDeny"
    # A pool task someone claimed is theirs; one's own claim may be tagged again.
    claimed = {**claim, "ecs:ResourceTag/jump:owner-id": "AIDAOTHER"}
    assert decision(aws, a["user"], "ecs:TagResource", a["task"], claimed) == "implicitDeny"
    own = {**claim, "ecs:ResourceTag/jump:owner-id": a["userid"]}
    assert decision(aws, a["user"], "ecs:TagResource", a["task"], own) == "allowed"
    # Not a pool task (a colleague's session), or tags beyond a session's (moving a task
    # into a pool, say): refused.
    not_pooled = {k: v for k, v in claim.items() if k != "ecs:ResourceTag/jump:pool"}
    assert decision(aws, a["user"], "ecs:TagResource", a["task"], not_pooled) == "implicitDeny"
    more_keys = {**claim, "aws:TagKeys": [*keys, "jump:pool"]}
    assert decision(aws, a["user"], "ecs:TagResource", a["task"], more_keys) == "implicitDeny"
    # Exec into a pool task only once it is one's own claim: nobody reaches a warm task first.
    unclaimed = {"ecs:ResourceTag/jump:pool": "dev", "aws:userid": a["userid"]}
    assert decision(aws, a["user"], "ecs:ExecuteCommand", a["task"], unclaimed) == "implicitDeny"
    assert decision(aws, a["user"], "ecs:ListServices", "*", {"ecs:cluster": a["cluster_arn"]}) == "allowed"
    assert decision(aws, a["user"], "ecs:ListServices", "*", {"ecs:cluster": a["cluster_arn"] + "x"}) == (
        "implicitDeny")


def test_user_template_grants_nothing_jump_never_calls(aws, jump_account):
    a = jump_account
    unused = {
        "ecs:ListTaskDefinitions": "*",
        "ssm:DescribeSessions": "*",
        "ec2:DescribeVpcs": "*",
        "logs:DescribeLogStreams": f"{a['logs']}/jump/sessions",
        "logs:FilterLogEvents": f"{a['logs']}/jump/sessions",
    }
    for action, resource in unused.items():
        assert decision(aws, a["user"], action, resource) == "implicitDeny", action


def test_user_template_reads_what_jump_and_its_doctor_read(aws, jump_account):
    a = jump_account
    assert decision(aws, a["user"], "ecs:DescribeClusters", a["cluster_arn"]) == "allowed"
    assert decision(aws, a["user"], "ecs:ListTasks", "*", {"ecs:cluster": a["cluster_arn"]}) == "allowed"
    service = a["cluster_arn"].replace(":cluster/", ":service/") + "/web"
    assert decision(aws, a["user"], "ecs:DescribeServices", service) == "allowed"
    stream = f"{a['logs']}/jump/sessions:log-stream:jump/jumphost/1"
    assert decision(aws, a["user"], "logs:GetLogEvents", stream) == "allowed"
    assert decision(aws, a["user"], "logs:GetLogEvents", f"{a['logs']}/jump/exec:log-stream:x") == "implicitDeny"
    network = ["ec2:DescribeNetworkInterfaces", "ec2:DescribeRouteTables", "ec2:DescribeSecurityGroups",
               "ec2:DescribeSubnets", "ec2:DescribeVpcEndpoints"]
    assert decisions(aws, a["user"], network) == {n: "allowed" for n in network}
    assert decision(aws, a["user"], "rds:DescribeDBInstances", f"arn:aws:rds:{a['region']}:{ACCOUNT}:db:orders") == (
        "allowed")
    assert decisions(aws, a["user"], ["iam:SimulatePrincipalPolicy"], [a["task_role"], a["execution_role"]]) == {
        "iam:SimulatePrincipalPolicy": "allowed"}
    assert decision(aws, a["user"], "iam:SimulatePrincipalPolicy", f"arn:aws:iam::{ACCOUNT}:role/admin") == (
        "implicitDeny")
    assert decision(aws, a["user"], "ssmmessages:OpenDataChannel", "*") == "allowed"
    assert decision(aws, a["user"], "kms:GenerateDataKey", a["kms_key_arn"]) == "allowed"
    another_key = a["kms_key_arn"].rsplit("/", 1)[0] + "/another-key"
    assert decision(aws, a["user"], "kms:GenerateDataKey", another_key) == "implicitDeny"


def test_doctors_caller_question_without_resources_or_context_denies_a_jump_user(aws, jump_account):
    """jump doctor asks about the caller with ResourceArns ["*"] and no context: against the
    least-privilege template every scoped action is then denied, as IAM would answer."""
    actions = ["ecs:RunTask", "ecs:StopTask", "ecs:DescribeTasks", "ecs:ExecuteCommand", "ssm:StartSession"]
    results = simulate(aws, jump_account["user"], actions, ["*"])
    assert {r["EvalActionName"]: r["EvalDecision"] for r in results} == {a: "implicitDeny" for a in actions}
    assert "aws:RequestTag/jump:owner-id" in results[0]["MissingContextValues"]


def test_reaper_templates_reap_the_cluster_and_start_only_the_reaper(aws, jump_account):
    """`jump init --reaper`: the reaper task's role lists, describes and stops the cluster's
    tasks and nothing else; the schedule's role starts only the reaper's family in that
    cluster and passes it only its two roles."""
    a = jump_account
    suffix = uuid.uuid4().hex[:6]
    reaper = f"jump-reaper-{suffix}"
    values = {**{k: a[k] for k in ("partition", "region", "account", "cluster", "execution_role")},
              "reaper_family": "jump-reaper", "reaper_role": f"arn:aws:iam::{ACCOUNT}:role/{reaper}"}
    aws.iam.create_role(RoleName=reaper, AssumeRolePolicyDocument=fill("ecs-tasks-trust-policy.json", a))
    aws.iam.put_role_policy(RoleName=reaper, PolicyName="jump-reaper",
                            PolicyDocument=fill("reaper-task-role-policy.json", values))
    runs = aws.iam.create_role(RoleName=f"jump-reaper-runs-{suffix}",
                               AssumeRolePolicyDocument=fill("scheduler-trust-policy.json", values))["Role"]["Arn"]
    aws.iam.put_role_policy(RoleName=f"jump-reaper-runs-{suffix}", PolicyName="jump-reaper-run",
                            PolicyDocument=fill("reaper-scheduler-policy.json", values))
    role = values["reaper_role"]
    in_cluster = {"ecs:cluster": a["cluster_arn"]}
    other_cluster = a["task"].replace(f"task/{aws.cluster}/", "task/payments/")
    assert decision(aws, role, "ecs:ListTasks", "*", in_cluster) == "allowed"
    assert decision(aws, role, "ecs:ListServices", "*", in_cluster) == "allowed"
    assert decision(aws, role, "ecs:ListTasks", "*", {"ecs:cluster": a["cluster_arn"] + "x"}) == "implicitDeny"
    for action in ("ecs:DescribeTasks", "ecs:StopTask"):
        assert decision(aws, role, action, a["task"]) == "allowed"
        assert decision(aws, role, action, other_cluster) == "implicitDeny"
    assert decision(aws, role, "ecs:DescribeClusters", a["cluster_arn"]) == "allowed"
    for action in ("ecs:RunTask", "ecs:ExecuteCommand", "ecs:TagResource", "iam:PassRole"):
        assert decision(aws, role, action, "*") == "implicitDeny", action

    prefix = f"arn:aws:ecs:{a['region']}:{ACCOUNT}:task-definition"
    for definition in (f"{prefix}/jump-reaper", f"{prefix}/jump-reaper:3"):
        assert decision(aws, runs, "ecs:RunTask", definition, in_cluster) == "allowed", definition
    assert decision(aws, runs, "ecs:RunTask", f"{prefix}/jump-jumphost:7", in_cluster) == "implicitDeny"
    assert decision(aws, runs, "ecs:RunTask", f"{prefix}/jump-reaper:3",
                    {"ecs:cluster": a["cluster_arn"] + "x"}) == "implicitDeny"
    to_ecs = {"iam:PassedToService": "ecs-tasks.amazonaws.com"}
    assert decision(aws, runs, "iam:PassRole", role, to_ecs) == "allowed"
    assert decision(aws, runs, "iam:PassRole", a["execution_role"], to_ecs) == "allowed"
    assert decision(aws, runs, "iam:PassRole", a["task_role"], to_ecs) == "implicitDeny"
    assert decision(aws, runs, "iam:PassRole", role, {"iam:PassedToService": "lambda.amazonaws.com"}) == (
        "implicitDeny")
