"""IAM SimulatePrincipalPolicy, which moto lacks.

A prerequisite checker asks "may this role open an ECS Exec data channel?".
The sandbox allows everything by default and lets tests deny chosen actions
(optionally for one principal only), so a checker can be tested both ways.
"""

import threading
import uuid
from xml.sax.saxutils import escape

from moto.core import DEFAULT_ACCOUNT_ID
from moto.iam.models import iam_backends

from .awsproto import AwsError, members


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

    def decision(self, principal: str, action: str) -> str:
        with self.lock:
            for rule in self.denials:
                if action.lower() in rule["actions"] and (not rule["principal"] or rule["principal"] in principal):
                    return "implicitDeny"
        return "allowed"

    def simulate(self, query: dict) -> str:
        principal = (query.get("PolicySourceArn") or [""])[0]
        if not principal:
            raise AwsError("ValidationError", "PolicySourceArn is required")
        if ":role/" in principal:
            backend = iam_backends[DEFAULT_ACCOUNT_ID]["global"]
            try:
                backend.get_role_by_arn(principal)
            except Exception:
                raise AwsError("NoSuchEntity", f"The role with ARN {principal} cannot be found.", 404) from None
        actions = members(query, "ActionNames")
        if not actions:
            raise AwsError("ValidationError", "ActionNames is required")
        resources = members(query, "ResourceArns") or ["*"]
        results = []
        for action in actions:
            for resource in resources:
                results.append(
                    "<member>"
                    f"<EvalActionName>{escape(action)}</EvalActionName>"
                    f"<EvalResourceName>{escape(resource)}</EvalResourceName>"
                    f"<EvalDecision>{self.decision(principal, action)}</EvalDecision>"
                    "<MatchedStatements/><MissingContextValues/>"
                    "</member>"
                )
        return (
            '<SimulatePrincipalPolicyResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">'
            "<SimulatePrincipalPolicyResult><IsTruncated>false</IsTruncated>"
            f"<EvaluationResults>{''.join(results)}</EvaluationResults>"
            "</SimulatePrincipalPolicyResult>"
            f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata>"
            "</SimulatePrincipalPolicyResponse>"
        )
