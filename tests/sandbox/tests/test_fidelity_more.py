"""IAM, CloudWatch Logs, ECS clusters, ECS Exec and RDS refuse here what AWS refuses.

Each story sends what a careless client might send, sees the service's own error, and
sends the valid form next to it. The raw clients skip botocore's own checks, as the
Rust SDK and other clients do: AWS enforces its constraints on its side.
"""

import json
import time
import uuid
from types import SimpleNamespace

import boto3
import botocore.config
import botocore.exceptions
import pytest
from conftest import ECS_TASKS_TRUST

RAW = botocore.config.Config(parameter_validation=False)
RETENTION = ("[1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, "
             "3288, 3653]")
DB_RULE = ("Identifiers must begin with a letter; must contain only ASCII letters, digits, and hyphens; and must "
           "not end with a hyphen or contain two consecutive hyphens.")


@pytest.fixture(scope="module")
def raw(aws):
    """Clients that send whatever they are given."""
    session = boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test",
                                    region_name=aws.env["AWS_REGION"])
    return SimpleNamespace(**{name: session.client(name, endpoint_url=aws.env["AWS_ENDPOINT_URL"], config=RAW)
                              for name in ("iam", "logs", "ecs", "rds")})


def error_of(call, **kwargs) -> dict:
    with pytest.raises(botocore.exceptions.ClientError) as info:
        call(**kwargs)
    return {key: info.value.response["Error"][key] for key in ("Code", "Message")}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def trust(**statement) -> str:
    base = {"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "sts:AssumeRole"}
    return json.dumps({"Version": "2012-10-17", "Statement": [{k: v for k, v in (base | statement).items()
                                                               if v is not None}]})


def allow(size: int = 0, indent: int | None = None, **statement) -> str:
    """An identity policy; with SIZE, padded to that many characters once white space is left out."""
    body = {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b"} | statement
    document = {"Version": "2012-10-17", "Statement": [body]}
    if size:
        compact = len(json.dumps(document, separators=(",", ":")))
        body["Resource"] += "x" * (size - compact)
    text = json.dumps(document, indent=indent, separators=(",", ":") if indent is None else None)
    assert not size or len("".join(text.split())) == size
    return text


# ---- IAM: roles -----------------------------------------------------------------------------


@pytest.mark.parametrize("change, message", [
    ({"RoleName": "r" * 65}, "Value '{RoleName}' at 'roleName' failed to satisfy constraint: Member must have "
                             "length less than or equal to 64"),
    ({"RoleName": "jump task"}, "Value 'jump task' at 'roleName' failed to satisfy constraint: Member must satisfy "
                                "regular expression pattern: [\\w+=,.@-]+"),
    ({"Path": "jump"}, "Value 'jump' at 'path' failed to satisfy constraint: Member must satisfy regular expression "
                       "pattern: (\\u002F)|(\\u002F[\\u0021-\\u007E]+\\u002F)"),
    ({"Description": "d" * 1001}, "Value '{Description}' at 'description' failed to satisfy constraint: Member "
                                  "must have length less than or equal to 1000"),
    ({"MaxSessionDuration": 600}, "Value '600' at 'maxSessionDuration' failed to satisfy constraint: Member must "
                                  "have value greater than or equal to 3600"),
    ({"MaxSessionDuration": 43201}, "Value '43201' at 'maxSessionDuration' failed to satisfy constraint: Member "
                                    "must have value less than or equal to 43200"),
])
def test_create_role_refuses_names_paths_descriptions_and_durations_out_of_bounds(aws, raw, change, message):
    request = {"RoleName": unique("bounds"), "AssumeRolePolicyDocument": trust()} | change
    err = error_of(raw.iam.create_role, **request)
    assert err == {"Code": "ValidationError",
                   "Message": "1 validation error detected: " + message.format(**request)}
    roles = aws.iam.get_paginator("list_roles").paginate().build_full_result()["Roles"]
    assert request["RoleName"] not in [r["RoleName"] for r in roles]


def test_a_role_at_the_limits_is_created(aws):
    name = ("jump.task+ci@team=x,y_" + uuid.uuid4().hex)[:64].ljust(64, "z")
    role = aws.iam.create_role(RoleName=name, Path="/jump/ci/", Description="d" * 1000, MaxSessionDuration=43200,
                               AssumeRolePolicyDocument=trust())["Role"]
    assert (role["RoleName"], role["Path"], role["MaxSessionDuration"]) == (name, "/jump/ci/", 43200)


def test_role_names_are_unique_whatever_their_case(aws):
    name = unique("Jump-Task")
    aws.iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust())
    err = error_of(aws.iam.create_role, RoleName=name.upper(), AssumeRolePolicyDocument=trust())
    assert err == {"Code": "EntityAlreadyExists", "Message": f"Role with name {name.upper()} already exists."}


@pytest.mark.parametrize("document, message", [
    ('{"Version": "2012-10-17", "Statement": [', "This policy contains invalid Json"),
    (trust(Principal=None), "Invalid principal in policy: com.amazon.balsa.error.InvalidPolicyException: "
                            "The passed in policy has a statement with no principals!"),
    (trust(Resource="*"), "Has prohibited field Resource"),
    (trust(Action="s3:GetObject"), "AssumeRole policy may only specify STS AssumeRole actions."),
])
def test_a_trust_policy_names_who_may_assume_the_role_and_nothing_else(aws, document, message):
    name = unique("trust")
    err = error_of(aws.iam.create_role, RoleName=name, AssumeRolePolicyDocument=document)
    assert err == {"Code": "MalformedPolicyDocument", "Message": message}
    aws.iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust())
    err = error_of(aws.iam.update_assume_role_policy, RoleName=name, PolicyDocument=document)
    assert err == {"Code": "MalformedPolicyDocument", "Message": message}
    tagging = trust(Action=["sts:AssumeRole", "sts:TagSession"])
    aws.iam.update_assume_role_policy(RoleName=name, PolicyDocument=tagging)
    assert aws.iam.get_role(RoleName=name)["Role"]["AssumeRolePolicyDocument"]["Statement"][0]["Action"] == [
        "sts:AssumeRole", "sts:TagSession"]


def test_a_trust_policy_is_at_most_2048_characters_not_counting_white_space(aws):
    name = unique("big-trust")

    def with_external_id(length: int, indent=None) -> str:
        statement = json.loads(trust())["Statement"][0]
        statement["Condition"] = {"StringEquals": {"sts:ExternalId": ""}}
        compact = len(json.dumps({"Version": "2012-10-17", "Statement": [statement]}, separators=(",", ":")))
        statement["Condition"]["StringEquals"]["sts:ExternalId"] = "e" * (length - compact)
        return json.dumps({"Version": "2012-10-17", "Statement": [statement]}, indent=indent)

    err = error_of(aws.iam.create_role, RoleName=name, AssumeRolePolicyDocument=with_external_id(2049))
    assert err == {"Code": "LimitExceeded", "Message": "Cannot exceed quota for ACLSizePerRole: 2048"}
    aws.iam.create_role(RoleName=name, AssumeRolePolicyDocument=with_external_id(2048, indent=8))


def test_calls_on_a_role_that_does_not_exist_say_so_in_iams_words(aws):
    name = unique("never-created")
    message = f"The role with name {name} cannot be found."
    for call, extra in ((aws.iam.get_role, {}), (aws.iam.delete_role, {}),
                        (aws.iam.put_role_policy, {"PolicyName": "p", "PolicyDocument": allow()}),
                        (aws.iam.update_assume_role_policy, {"PolicyDocument": trust()}),
                        (aws.iam.list_role_policies, {})):
        assert error_of(call, RoleName=name, **extra) == {"Code": "NoSuchEntity", "Message": message}
    aws.iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust())
    for call in (aws.iam.get_role_policy, aws.iam.delete_role_policy):
        err = error_of(call, RoleName=name, PolicyName="absent")
        assert err == {"Code": "NoSuchEntity", "Message": "The role policy with name absent cannot be found."}


# ---- IAM: inline and managed policies -------------------------------------------------------


@pytest.fixture
def role(aws) -> str:
    name = unique("inline")
    aws.iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(ECS_TASKS_TRUST))
    return name


def test_an_inline_policy_needs_a_valid_name_and_names_no_principal(aws, raw, role):
    err = error_of(raw.iam.put_role_policy, RoleName=role, PolicyName="exec channels", PolicyDocument=allow())
    assert err == {"Code": "ValidationError", "Message": (
        "1 validation error detected: Value 'exec channels' at 'policyName' failed to satisfy constraint: Member "
        "must satisfy regular expression pattern: [\\w+=,.@-]+")}
    err = error_of(raw.iam.put_role_policy, RoleName=role, PolicyName="p" * 129, PolicyDocument=allow())
    assert err["Message"].endswith("at 'policyName' failed to satisfy constraint: Member must have length less "
                                   "than or equal to 128")
    err = error_of(aws.iam.put_role_policy, RoleName=role, PolicyName="exec", PolicyDocument=allow(Principal="*"))
    assert err == {"Code": "MalformedPolicyDocument", "Message": "Policy document should not specify a principal."}
    err = error_of(aws.iam.put_role_policy, RoleName=role, PolicyName="exec", PolicyDocument="{not json")
    assert err == {"Code": "MalformedPolicyDocument", "Message": "This policy contains invalid Json"}
    aws.iam.put_role_policy(RoleName=role, PolicyName="exec.channels+v2@jump", PolicyDocument=allow())
    assert aws.iam.list_role_policies(RoleName=role)["PolicyNames"] == ["exec.channels+v2@jump"]


def test_a_roles_inline_policies_share_10240_characters_not_counting_white_space(aws, role):
    aws.iam.put_role_policy(RoleName=role, PolicyName="first", PolicyDocument=allow(6000, indent=4))
    err = error_of(aws.iam.put_role_policy, RoleName=role, PolicyName="second", PolicyDocument=allow(4241))
    assert err == {"Code": "LimitExceeded", "Message": f"Maximum policy size of 10240 bytes exceeded for role {role}"}
    aws.iam.put_role_policy(RoleName=role, PolicyName="second", PolicyDocument=allow(4240, indent=4))
    # Putting a policy again replaces it: its old size no longer counts.
    aws.iam.put_role_policy(RoleName=role, PolicyName="first", PolicyDocument=allow(6000))
    assert sorted(aws.iam.list_role_policies(RoleName=role)["PolicyNames"]) == ["first", "second"]


def test_a_users_inline_policies_share_2048_characters(aws):
    user = unique("operator")
    aws.iam.create_user(UserName=user)
    err = error_of(aws.iam.put_user_policy, UserName=user, PolicyName="own", PolicyDocument=allow(2049))
    assert err == {"Code": "LimitExceeded", "Message": f"Maximum policy size of 2048 bytes exceeded for user {user}"}
    aws.iam.put_user_policy(UserName=user, PolicyName="own", PolicyDocument=allow(2048, indent=2))


def test_a_managed_policy_is_at_most_6144_characters(aws):
    name = unique("managed")
    err = error_of(aws.iam.create_policy, PolicyName=name, PolicyDocument=allow(6145))
    assert err == {"Code": "LimitExceeded", "Message": "Cannot exceed quota for PolicySize: 6144"}
    err = error_of(aws.iam.create_policy, PolicyName=name, PolicyDocument=allow(Principal={"AWS": "*"}))
    assert err == {"Code": "MalformedPolicyDocument", "Message": "Policy document should not specify a principal."}
    assert aws.iam.create_policy(PolicyName=name, PolicyDocument=allow(6144, indent=4))["Policy"]["PolicyName"] == name


def test_a_role_or_user_takes_ten_managed_policies(aws, role):
    user = unique("ten")
    aws.iam.create_user(UserName=user)
    arns = [aws.iam.create_policy(PolicyName=unique(f"p{i}"), PolicyDocument=allow())["Policy"]["Arn"]
            for i in range(11)]
    for arn in arns[:10]:
        aws.iam.attach_role_policy(RoleName=role, PolicyArn=arn)
        aws.iam.attach_user_policy(UserName=user, PolicyArn=arn)
    err = error_of(aws.iam.attach_role_policy, RoleName=role, PolicyArn=arns[10])
    assert err == {"Code": "LimitExceeded", "Message": "Cannot exceed quota for PoliciesPerRole: 10"}
    err = error_of(aws.iam.attach_user_policy, UserName=user, PolicyArn=arns[10])
    assert err == {"Code": "LimitExceeded", "Message": "Cannot exceed quota for PoliciesPerUser: 10"}
    aws.iam.attach_role_policy(RoleName=role, PolicyArn=arns[0])  # already attached: nothing changes
    aws.iam.detach_role_policy(RoleName=role, PolicyArn=arns[0])
    aws.iam.attach_role_policy(RoleName=role, PolicyArn=arns[10])
    assert len(aws.iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]) == 10


# ---- CloudWatch Logs ------------------------------------------------------------------------


def test_log_group_names_are_letters_digits_and_the_punctuation_logs_allows(aws, raw):
    err = error_of(raw.logs.create_log_group, logGroupName="jump sessions")
    assert err == {"Code": "InvalidParameterException", "Message": (
        "1 validation error detected: Value 'jump sessions' at 'logGroupName' failed to satisfy constraint: Member "
        "must satisfy regular expression pattern: [\\.\\-_/#A-Za-z0-9]+")}
    err = error_of(raw.logs.create_log_group, logGroupName="/" + "g" * 512)
    assert err == {"Code": "InvalidParameterException",
                   "Message": "Invalid LogGroup or LogStream, both must have length less than or equal to 512."}
    name = f"/jump/{uuid.uuid4().hex[:8]}/a_b-c.d#1"
    aws.logs.create_log_group(logGroupName=name)
    assert aws.logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"][0]["logGroupName"] == name


def test_retention_takes_only_the_periods_logs_offers(aws):
    name = f"/jump/{uuid.uuid4().hex[:8]}"
    aws.logs.create_log_group(logGroupName=name)
    for days in (0, 2, 10, 4000):
        err = error_of(aws.logs.put_retention_policy, logGroupName=name, retentionInDays=days)
        assert err == {"Code": "InvalidParameterException", "Message": (
            f"1 validation error detected: Value '{days}' at 'retentionInDays' failed to satisfy constraint: Member "
            f"must satisfy enum value set: {RETENTION}")}
    aws.logs.put_retention_policy(logGroupName=name, retentionInDays=30)
    assert aws.logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"][0]["retentionInDays"] == 30


def test_describe_log_groups_takes_a_prefix_or_a_pattern_not_both(aws):
    err = error_of(aws.logs.describe_log_groups, logGroupNamePrefix="/jump", logGroupNamePattern="jump")
    assert err == {"Code": "InvalidParameterException",
                   "Message": "LogGroup name prefix and LogGroup name pattern are mutually exclusive parameters."}
    assert "logGroups" in aws.logs.describe_log_groups(logGroupNamePattern="jump")


@pytest.fixture(scope="module")
def stream(aws) -> tuple[str, str]:
    """A log stream holding five events, m0 to m4."""
    group, name = f"/jump/{uuid.uuid4().hex[:8]}", "jump/app/1"
    aws.logs.create_log_group(logGroupName=group)
    aws.logs.create_log_stream(logGroupName=group, logStreamName=name)
    now = int(time.time() * 1000)
    aws.logs.put_log_events(logGroupName=group, logStreamName=name,
                            logEvents=[{"timestamp": now + i, "message": f"m{i}"} for i in range(5)])
    return group, name


def test_get_log_events_names_what_is_missing(aws, stream):
    group, name = stream
    err = error_of(aws.logs.get_log_events, logGroupName=group + "-gone", logStreamName=name)
    assert err == {"Code": "ResourceNotFoundException", "Message": "The specified log group does not exist."}
    err = error_of(aws.logs.get_log_events, logGroupName=group, logStreamName="jump/app/2")
    assert err == {"Code": "ResourceNotFoundException", "Message": "The specified log stream does not exist."}
    err = error_of(aws.logs.get_log_events, logGroupName=group, logGroupIdentifier=group, logStreamName=name)
    assert err == {"Code": "ValidationException",
                   "Message": "LogGroup name and LogGroup ARN are mutually exclusive parameters."}


@pytest.mark.parametrize("limit, rule", [
    (0, "have value greater than or equal to 1"), (10001, "have value less than or equal to 10000")])
def test_log_reads_take_1_to_10000_events(raw, stream, limit, rule):
    group, name = stream
    message = (f"1 validation error detected: Value '{limit}' at 'limit' failed to satisfy constraint: Member "
               f"must {rule}")
    for call, extra in ((raw.logs.get_log_events, {"logStreamName": name}), (raw.logs.filter_log_events, {})):
        assert error_of(call, logGroupName=group, limit=limit, **extra) == {
            "Code": "InvalidParameterException", "Message": message}


def test_reading_from_the_head_ends_where_the_forward_token_comes_back_unchanged(aws, stream):
    group, name = stream
    page = aws.logs.get_log_events(logGroupName=group, logStreamName=name, startFromHead=True, limit=3)
    assert [e["message"] for e in page["events"]] == ["m0", "m1", "m2"]
    page = aws.logs.get_log_events(logGroupName=group, logStreamName=name, nextToken=page["nextForwardToken"])
    assert [e["message"] for e in page["events"]] == ["m3", "m4"]
    last = aws.logs.get_log_events(logGroupName=group, logStreamName=name, nextToken=page["nextForwardToken"])
    assert last["events"] == [] and last["nextForwardToken"] == page["nextForwardToken"]
    tail = aws.logs.get_log_events(logGroupName=group, logStreamName=name, limit=2)  # startFromHead=false
    assert [e["message"] for e in tail["events"]] == ["m3", "m4"]


def test_filter_log_events_takes_stream_names_or_a_prefix_not_both(aws, stream):
    group, name = stream
    err = error_of(aws.logs.filter_log_events, logGroupName=group, logStreamNames=[name], logStreamNamePrefix="jump")
    assert err == {"Code": "InvalidParameterException",
                   "Message": "logStreamNames and logStreamNamePrefix are mutually exclusive parameters."}
    found = aws.logs.filter_log_events(logGroupName=group, logStreamNamePrefix="jump/app")["events"]
    assert [e["message"] for e in found] == ["m0", "m1", "m2", "m3", "m4"]


# ---- ECS clusters ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["jump sandbox", "jump/sandbox", "c" * 256])
def test_cluster_names_are_up_to_255_letters_digits_hyphens_and_underscores(aws, name):
    err = error_of(aws.ecs.create_cluster, clusterName=name)
    assert err == {"Code": "InvalidParameterException",
                   "Message": f"Cluster must match ^[a-zA-Z0-9\\-_]{{1,255}}$, but was {name}"}
    assert aws.ecs.describe_clusters(clusters=[name])["clusters"] == []


def test_a_clusters_configuration_and_settings_come_back_only_when_included(aws):
    name = "jump_" + uuid.uuid4().hex
    aws.ecs.create_cluster(
        clusterName=name,
        configuration={"executeCommandConfiguration": {"kmsKeyId": "alias/exec", "logging": "DEFAULT"}},
        settings=[{"name": "containerInsights", "value": "enabled"}],
    )
    plain = aws.ecs.describe_clusters(clusters=[name])["clusters"][0]
    assert "configuration" not in plain and "settings" not in plain
    full = aws.ecs.describe_clusters(clusters=[name], include=["CONFIGURATIONS", "SETTINGS"])["clusters"][0]
    assert full["configuration"]["executeCommandConfiguration"]["kmsKeyId"] == "alias/exec"
    assert full["settings"] == [{"name": "containerInsights", "value": "enabled"}]
    aws.ecs.delete_cluster(cluster=name)


def test_a_cluster_name_at_the_limit_is_created(aws):
    name = ("jump_" + uuid.uuid4().hex).ljust(255, "-")
    assert aws.ecs.create_cluster(clusterName=name)["cluster"]["clusterName"] == name
    aws.ecs.delete_cluster(cluster=name)


@pytest.mark.parametrize("settings, message", [
    ({"logging": "LOUD"}, "1 validation error detected: Value 'LOUD' at "
                          "'configuration.executeCommandConfiguration.logging' failed to satisfy constraint: Member "
                          "must satisfy enum value set: [NONE, DEFAULT, OVERRIDE]"),
    ({"logging": "DEFAULT", "logConfiguration": {"cloudWatchLogGroupName": "/jump/exec"}},
     "You must set logging to 'OVERRIDE' when you supply a log configuration"),
    ({"logging": "NONE", "logConfiguration": {}}, "You must set logging to 'OVERRIDE' when you supply a log "
                                                  "configuration"),
    ({"logging": "OVERRIDE"}, "You must supply a log configuration when you set logging to 'OVERRIDE'"),
])
def test_exec_logging_goes_to_a_log_configuration_only_when_overridden(aws, raw, settings, message):
    name = unique("exec-logging")
    err = error_of(raw.ecs.create_cluster, clusterName=name,
                   configuration={"executeCommandConfiguration": settings})
    assert err == {"Code": "InvalidParameterException", "Message": message}
    aws.ecs.create_cluster(clusterName=name)
    err = error_of(raw.ecs.update_cluster, cluster=name, configuration={"executeCommandConfiguration": settings})
    assert err == {"Code": "InvalidParameterException", "Message": message}
    overridden = {"logging": "OVERRIDE", "logConfiguration": {"cloudWatchLogGroupName": "/jump/exec",
                                                              "cloudWatchEncryptionEnabled": False}}
    cluster = aws.ecs.update_cluster(cluster=name, configuration={"executeCommandConfiguration": overridden})
    assert cluster["cluster"]["configuration"]["executeCommandConfiguration"] == overridden
    aws.ecs.update_cluster(cluster=name, configuration={"executeCommandConfiguration": {"logging": "DEFAULT"}})
    aws.ecs.delete_cluster(cluster=name)


# ---- ECS Exec needs a task role -------------------------------------------------------------


@pytest.fixture(scope="module")
def roleless(aws) -> str:
    """A Fargate task definition without a task role (and without logs, so without an execution role)."""
    family = unique("no-task-role")
    aws.ecs.register_task_definition(
        family=family, requiresCompatibilities=["FARGATE"], networkMode="awsvpc", cpu="256", memory="512",
        containerDefinitions=[{"name": "jumphost", "image": "jump/jumphost:latest"}],
    )
    return family


def network(aws) -> dict:
    return {"awsvpcConfiguration": {"subnets": aws.subnets, "securityGroups": aws.groups}}


def test_run_task_refuses_exec_without_a_task_role_in_the_definition_or_an_override(aws, roleless):
    message = ("The execute command failed because a valid task role is not being used. Specify a valid task role "
               "in your task definition or as a task override and try again.")
    for overrides in ({}, {"taskRoleArn": ""}):
        err = error_of(aws.ecs.run_task, cluster=aws.cluster, taskDefinition=roleless, launchType="FARGATE",
                       networkConfiguration=network(aws), enableExecuteCommand=True, overrides=overrides)
        assert err == {"Code": "InvalidParameterException", "Message": message}
    assert aws.ecs.list_tasks(cluster=aws.cluster, family=roleless)["taskArns"] == []
    task = aws.ecs.run_task(cluster=aws.cluster, taskDefinition=roleless, launchType="FARGATE",
                            networkConfiguration=network(aws), enableExecuteCommand=True,
                            overrides={"taskRoleArn": aws.env["JUMP_TASK_ROLE"]})["tasks"][0]
    running, _ = aws.wait_for(task["taskArn"], "RUNNING")
    assert running["enableExecuteCommand"] is True
    assert running["overrides"]["taskRoleArn"] == aws.env["JUMP_TASK_ROLE"]
    aws.ecs.stop_task(cluster=aws.cluster, task=task["taskArn"])


def test_services_refuse_exec_without_a_task_role_too(aws, roleless):
    name = unique("svc-exec")
    err = error_of(aws.ecs.create_service, cluster=aws.cluster, serviceName=name, taskDefinition=roleless,
                   desiredCount=0, launchType="FARGATE", networkConfiguration=network(aws), enableExecuteCommand=True)
    assert err == {"Code": "InvalidParameterException", "Message": (
        "The service couldn't be created because a valid taskRoleArn is not being used. Specify a valid task role "
        "in your task definition and try again.")}
    aws.ecs.create_service(cluster=aws.cluster, serviceName=name, taskDefinition=roleless, desiredCount=0,
                           launchType="FARGATE", networkConfiguration=network(aws))
    err = error_of(aws.ecs.update_service, cluster=aws.cluster, service=name, enableExecuteCommand=True)
    assert err == {"Code": "InvalidParameterException", "Message": (
        "The service couldn't be updated because a valid taskRoleArn is not being used. Specify a valid task role "
        "in your task definition and try again.")}
    updated = aws.ecs.update_service(cluster=aws.cluster, service=name, taskDefinition="jumphost",
                                     enableExecuteCommand=True)["service"]
    assert updated["enableExecuteCommand"] is True
    aws.ecs.delete_service(cluster=aws.cluster, service=name)


# ---- RDS ------------------------------------------------------------------------------------


@pytest.mark.parametrize("identifier", ["jump_db", "1jump", "jump-", "jump--db", "d" * 64])
def test_describe_db_instances_refuses_what_cannot_be_an_identifier(aws, identifier):
    err = error_of(aws.rds.describe_db_instances, DBInstanceIdentifier=identifier)
    assert err == {"Code": "InvalidParameterValue",
                   "Message": f"The parameter DBInstanceIdentifier is not a valid identifier. {DB_RULE}"}


def test_an_unknown_but_valid_identifier_is_not_found(aws):
    err = error_of(aws.rds.describe_db_instances, DBInstanceIdentifier="jump-db-" + "x" * 55)
    assert err == {"Code": "DBInstanceNotFound", "Message": f"DBInstance jump-db-{'x' * 55} not found."}


def test_describe_db_instances_pages_of_20_to_100_and_checks_filter_identifiers(aws):
    for records in (5, 101):
        err = error_of(aws.rds.describe_db_instances, MaxRecords=records)
        assert err == {"Code": "InvalidParameterValue",
                       "Message": f"Invalid value {records} for MaxRecords. Must be between 20 and 100"}
    assert "DBInstances" in aws.rds.describe_db_instances(MaxRecords=20)
    err = error_of(aws.rds.describe_db_instances, Filters=[{"Name": "db-instance-id", "Values": ["jump_db"]}])
    assert err == {"Code": "InvalidParameterValue",
                   "Message": f"The parameter Filter: db-instance-id is not a valid identifier. {DB_RULE}"}
    found = aws.rds.describe_db_instances(Filters=[{"Name": "db-instance-id", "Values": ["jump-db"]}])
    assert found["DBInstances"] == []


# ---- EventBridge (jump init --alerts) -----------------------------------------------------


def test_rule_names_and_target_ids_follow_eventbridges_pattern(aws):
    events = aws.client("events")
    err = error_of(events.put_rule, Name="jump exec alert", EventPattern=json.dumps({"source": ["aws.ecs"]}))
    assert err["Code"] == "ValidationException"
    assert "at 'name' failed to satisfy constraint: Member must satisfy regular expression pattern" in err["Message"]
    name = "jump-" + uuid.uuid4().hex
    events.put_rule(Name=name, EventPattern=json.dumps({"source": ["aws.ecs"]}))
    err = error_of(events.put_targets, Rule=name, Targets=[{"Id": "jump alerts", "Arn": "arn:aws:sns:us-east-1:123456789012:t"}])
    assert err == {"Code": "ValidationException", "Message": (
        "1 validation error detected: Value 'jump alerts' at 'targets.1.member.id' failed to satisfy constraint: "
        "Member must satisfy regular expression pattern: [\\.\\-_A-Za-z0-9]+")}
    events.delete_rule(Name=name)


def test_an_unknown_match_type_in_a_pattern_is_refused(aws):
    events = aws.client("events")
    pattern = {"detail": {"$or": [{"cluster": ["jump"]}, {"cluster": [{"suffx": "/jump"}]}]}}
    err = error_of(events.put_rule, Name="jump-" + uuid.uuid4().hex, EventPattern=json.dumps(pattern))
    assert err == {"Code": "InvalidEventPatternException",
                   "Message": "Event pattern is not valid. Reason: Unrecognized match type suffx"}
    good = {"detail": {"$or": [{"cluster": ["jump", {"suffix": ":cluster/jump"}]}, {"x": [{"exists": False}]}]}}
    name = "jump-" + uuid.uuid4().hex
    events.put_rule(Name=name, EventPattern=json.dumps(good))
    events.delete_rule(Name=name)


def test_a_rule_with_targets_cannot_be_deleted(aws):
    events = aws.client("events")
    name = "jump-" + uuid.uuid4().hex
    events.put_rule(Name=name, EventPattern=json.dumps({"source": ["aws.ecs"]}))
    events.put_targets(Rule=name, Targets=[{"Id": "jump-alerts", "Arn": "arn:aws:sns:us-east-1:123456789012:t"}])
    err = error_of(events.delete_rule, Name=name)
    assert err == {"Code": "ValidationException", "Message": "Rule can't be deleted since it has targets."}
    events.remove_targets(Rule=name, Ids=["jump-alerts"])
    events.delete_rule(Name=name)


# ---- STS: temporary credentials ---------------------------------------------------------


def test_temporary_credentials_stop_working_when_they_expire(sandbox, aws, raw):
    from conftest import ctl

    name = unique("jump-sso")
    account = aws.sts.get_caller_identity()["Account"]
    role = aws.iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust(
        Principal={"AWS": f"arn:aws:iam::{account}:root"}))["Role"]["Arn"]
    raw_sts = boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test",
                                    region_name=aws.env["AWS_REGION"]).client(
        "sts", endpoint_url=aws.env["AWS_ENDPOINT_URL"], config=RAW)
    err = error_of(raw_sts.assume_role, RoleArn=role, RoleSessionName="dev", DurationSeconds=899)
    assert err == {"Code": "ValidationError", "Message": "1 validation error detected: Value '899' at "
                   "'durationSeconds' failed to satisfy constraint: Member must have value greater than or "
                   "equal to 900"}

    ctl(sandbox, "credentials", "--lifetime", "2")
    try:
        issued = aws.sts.assume_role(RoleArn=role, RoleSessionName="dev", DurationSeconds=900)["Credentials"]
    finally:
        ctl(sandbox, "credentials")
    left = issued["Expiration"].timestamp() - time.time()
    assert 0 < left <= 2.5, issued["Expiration"]  # what the answer says is what holds
    session = boto3.session.Session(aws_access_key_id=issued["AccessKeyId"],
                                    aws_secret_access_key=issued["SecretAccessKey"],
                                    aws_session_token=issued["SessionToken"], region_name=aws.env["AWS_REGION"])
    ecs = session.client("ecs", endpoint_url=aws.env["AWS_ENDPOINT_URL"])
    sts = session.client("sts", endpoint_url=aws.env["AWS_ENDPOINT_URL"])
    assert sts.get_caller_identity()["Arn"].endswith(f"assumed-role/{name}/dev")
    ecs.list_clusters()
    time.sleep(left + 0.1)  # the credentials' own expiry is the event
    expired = "The security token included in the request is expired"
    assert error_of(ecs.list_clusters) == {"Code": "ExpiredTokenException", "Message": expired}
    assert error_of(sts.get_caller_identity) == {"Code": "ExpiredToken", "Message": expired}
    # Credentials issued without the compression last what was asked for.
    fresh = aws.sts.assume_role(RoleArn=role, RoleSessionName="dev", DurationSeconds=900)["Credentials"]
    assert 890 < fresh["Expiration"].timestamp() - time.time() <= 900
