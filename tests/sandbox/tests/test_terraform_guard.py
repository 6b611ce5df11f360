"""The Terraform example's network guard (examples/terraform/guard/index.py), run against
the sandbox as EventBridge would run it for a CloudTrail RunTask record."""

import importlib.util
import json
from pathlib import Path

import pytest

GUARD = Path(__file__).resolve().parents[3] / "examples" / "terraform" / "guard" / "index.py"


@pytest.fixture
def guard(aws, monkeypatch):
    session = aws.ecs.meta
    monkeypatch.setenv("AWS_ENDPOINT_URL", session.endpoint_url)
    monkeypatch.setenv("AWS_DEFAULT_REGION", session.region_name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("CLUSTER", aws.cluster)
    sns = aws.client("sns")
    sqs = aws.client("sqs")
    topic = sns.create_topic(Name="jump-guard-alerts")["TopicArn"]
    queue = sqs.create_queue(QueueName="jump-guard-inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"})
    monkeypatch.setenv("TOPIC_ARN", topic)
    spec = importlib.util.spec_from_file_location("jump_network_guard", GUARD)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module, sqs, queue
    sqs.delete_queue(QueueUrl=queue)
    sns.delete_topic(TopicArn=topic)


def test_a_jumphost_off_the_allowlist_is_stopped_and_reported(aws, guard):
    module, sqs, queue = guard
    task = aws.run(command=["sleep", "600"])
    network = {"awsvpcConfiguration": {"subnets": aws.subnets, "securityGroups": ["sg-0000000000attacker"]}}
    event = {
        "source": "aws.ecs",
        "detail-type": "AWS API Call via CloudTrail",
        "detail": {
            "eventName": "RunTask",
            "userIdentity": {"arn": "arn:aws:sts::123456789012:assumed-role/dev/mallory"},
            "requestParameters": {"cluster": aws.cluster, "networkConfiguration": network},
            "responseElements": {"tasks": [{"taskArn": task["taskArn"]}]},
        },
    }
    report = module.handler(event, None)

    stopped, _ = aws.wait_for(task["taskArn"], "STOPPED")
    assert stopped["stoppedReason"].startswith("jump network guard:")
    assert report["stopped"] == [task["taskArn"]] and report["not_stopped"] == {}
    messages = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=5)["Messages"]
    published = json.loads(messages[0]["Body"])
    assert published["caller"].endswith("/mallory")
    assert published["network"] == network


def test_a_run_task_that_started_nothing_is_still_reported(aws, guard):
    module, sqs, queue = guard
    event = {"detail": {"eventName": "RunTask", "errorCode": "AccessDenied",
                        "requestParameters": {"cluster": aws.cluster}}}
    report = module.handler(event, None)
    assert report["stopped"] == []
    messages = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=5)["Messages"]
    assert json.loads(messages[0]["Body"])["cluster"] == aws.cluster
