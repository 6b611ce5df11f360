"""jump's network guard: stops a jumphost started with network settings off the allowlist.

EventBridge calls this for a CloudTrail `RunTask` record in jump's cluster whose subnets,
security groups or public IP are not the ones allowed (the rule's pattern decides; this
function does not judge again). It stops every task the call started and tells the SNS
topic who asked for what.
"""

import json
import os

import boto3

ecs = boto3.client("ecs")
sns = boto3.client("sns")


def handler(event, _context):
    detail = event.get("detail") or {}
    request = detail.get("requestParameters") or {}
    started = [t["taskArn"] for t in (detail.get("responseElements") or {}).get("tasks") or [] if "taskArn" in t]
    stopped, failed = [], {}
    for task in started:
        try:
            ecs.stop_task(cluster=os.environ["CLUSTER"], task=task,
                          reason="jump network guard: subnets or security groups outside the allowlist")
            stopped.append(task)
        except Exception as err:  # report every task, whatever happens to one
            failed[task] = str(err)
    report = {
        "caller": (detail.get("userIdentity") or {}).get("arn"),
        "source_ip": detail.get("sourceIPAddress"),
        "cluster": request.get("cluster"),
        "task_definition": request.get("taskDefinition"),
        "network": request.get("networkConfiguration"),
        "stopped": stopped,
        "not_stopped": failed,
        "event_time": detail.get("eventTime"),
    }
    sns.publish(
        TopicArn=os.environ["TOPIC_ARN"],
        Subject="jump: a jumphost on a network outside the allowlist",
        Message=json.dumps(report, indent=2, default=str),
    )
    return report
