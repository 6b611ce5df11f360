"""A private ECR image is pulled with the execution role, and only what that role may read
arrives: a role scoped to one repository cannot start a task from another, as on AWS.

The sandbox's own execution role carries jump's templates for an account whose jumphost
image lives in `jump/jumphost`; the other tests give one role the pieces of a pull grant
one at a time.
"""

import json

import botocore.exceptions
import pytest

ACCOUNT = "123456789012"


def image(aws, repository: str) -> str:
    return f"{ACCOUNT}.dkr.ecr.{aws.env['AWS_REGION']}.amazonaws.com/{repository}:1"


def repository_arn(aws, repository: str) -> str:
    return f"arn:aws:ecr:{aws.env['AWS_REGION']}:{ACCOUNT}:repository/{repository}"


@pytest.fixture(scope="module")
def puller(aws) -> str:
    """An execution role whose policy each test sets; it may always write the tests' logs."""
    return aws.role("registry-auth-puller")


def grant(aws, role: str, statements: list[dict]) -> None:
    logs = {"Effect": "Allow", "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": "*"}
    document = {"Version": "2012-10-17", "Statement": [logs, *statements]}
    aws.iam.put_role_policy(RoleName=role.rsplit("/", 1)[-1], PolicyName="pull", PolicyDocument=json.dumps(document))


def start(aws, repository: str, role: str | None = None) -> dict:
    family = "registry-" + repository.replace("/", "-")
    aws.register(family=family, image=image(aws, repository))
    extra = {"overrides": {"executionRoleArn": role}} if role else {}
    return aws.run(family=family, **extra)


def refused(aws, task: dict) -> dict:
    stopped, seen = aws.wait_for(task["taskArn"], "STOPPED")
    assert "RUNNING" not in seen, seen
    assert stopped["stopCode"] == "TaskFailedToStart"
    return stopped


def test_the_jumphost_repository_pulls_and_any_other_is_forbidden(aws):
    task = start(aws, "jump/jumphost")
    aws.wait_for(task["taskArn"], "RUNNING")
    aws.ecs.stop_task(cluster=aws.cluster, task=task["taskArn"])

    stopped = refused(aws, start(aws, "payments/jumphost"))
    ref = image(aws, "payments/jumphost")
    host = ref.split("/", 1)[0]
    assert stopped["stoppedReason"] == (
        f"CannotPullContainerError: pull image manifest has been retried 5 time(s): failed to resolve ref {ref}: "
        f"pulling from host {host} failed with status code [manifests 1]: 403 Forbidden"
    )
    assert stopped["containers"][0]["reason"] == stopped["stoppedReason"]


def test_a_role_without_the_registry_token_fails_the_whole_task_naming_its_session(aws, puller):
    manifests = {"Effect": "Allow", "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
                 "Resource": repository_arn(aws, "team/jumphost")}
    grant(aws, puller, [manifests])
    stopped = refused(aws, start(aws, "team/jumphost", puller))
    task_id = stopped["taskArn"].rsplit("/", 1)[-1]
    reason = stopped["stoppedReason"]
    assert reason.startswith("ResourceInitializationError: unable to pull secrets or registry auth: "), reason
    assert (f"User: arn:aws:sts::{ACCOUNT}:assumed-role/registry-auth-puller/{task_id} is not authorized to perform: "
            "ecr:GetAuthorizationToken on resource: *") in reason


def test_a_role_that_reads_manifests_but_not_layers_gets_a_403_on_a_layer(aws, puller):
    token = {"Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"}
    manifests = {"Effect": "Allow", "Action": "ecr:BatchGetImage", "Resource": repository_arn(aws, "team/jumphost")}
    grant(aws, puller, [token, manifests])
    reason = refused(aws, start(aws, "team/jumphost", puller))["stoppedReason"]
    assert reason.startswith("CannotPullContainerError: ref pull has been retried 1 time(s): failed to copy"), reason
    assert "/v2/team/jumphost/blobs/sha256:" in reason and reason.endswith(": 403 Forbidden"), reason

    layers = {**manifests, "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]}
    grant(aws, puller, [token, layers])
    task = start(aws, "team/jumphost", puller)
    aws.wait_for(task["taskArn"], "RUNNING")
    aws.ecs.stop_task(cluster=aws.cluster, task=task["taskArn"])


def test_fargate_refuses_an_ecr_image_without_an_execution_role(aws):
    container = {"name": "c", "image": image(aws, "jump/jumphost"), "essential": True}
    params = dict(family="registry-no-role", requiresCompatibilities=["FARGATE"], networkMode="awsvpc",
                  cpu="256", memory="512")
    with pytest.raises(botocore.exceptions.ClientError) as info:
        aws.ecs.register_task_definition(containerDefinitions=[container], **params)
    assert info.value.response["Error"]["Code"] == "ClientException"
    assert info.value.response["Error"]["Message"] == (
        "Fargate requires task definition to have execution role ARN to support ECR images.")
    public = {**container, "image": "public.ecr.aws/amazonlinux/amazonlinux:2023"}
    assert aws.ecs.register_task_definition(containerDefinitions=[public], **params)["taskDefinition"]["revision"]
