"""Pulling a private ECR image with the task's execution role.

Fargate pulls a private ECR image as the execution role: the registry token
needs ecr:GetAuthorizationToken (an action without resources, so `*`), the
manifest ecr:BatchGetImage and the layers ecr:GetDownloadUrlForLayer, both on
the repository's ARN. A sandbox that pulled every image whatever the role may
do hid an execution role scoped to the wrong repository (or to none): on AWS
that task never starts. RegisterTaskDefinition already refuses an ECR image on
Fargate without an execution role (taskdefs.py).

Only the identity side is judged, by the sandbox's IAM evaluation; a
repository's own policy (which a cross-account pull also needs) is not
modelled. The wordings follow the messages public reports quote: a denied
token is a ResourceInitializationError naming the assumed-role session, a
denied manifest or layer is the registry's 403.
"""

import hashlib

from .images import Reference, ecr_repository
from .policy_eval import ALLOWED

TOKEN, MANIFEST, LAYER = "ecr:GetAuthorizationToken", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"


def pull_denial(simulator, role: str | None, ref: Reference, task_id: str) -> tuple[str, bool] | None:
    """Why ROLE cannot pull REF (the stoppedReason, and whether only its container is to
    blame), or None when it can or the image needs no ECR permission."""
    repository = ecr_repository(ref)
    if repository is None or not role:
        return None
    if simulator.decision(role, TOKEN) != ALLOWED:
        session = f"arn:aws:sts::{role.split(':')[4]}:assumed-role/{role.rsplit('/', 1)[-1]}/{task_id}"
        return (
            "ResourceInitializationError: unable to pull secrets or registry auth: execution resource retrieval "
            "failed: unable to retrieve ecr registry auth: service call has been retried 3 time(s): "
            f"AccessDeniedException: User: {session} is not authorized to perform: {TOKEN} on resource: * "
            f"because no identity-based policy allows the {TOKEN} action",
            False,
        )
    if simulator.decision(role, MANIFEST, repository.arn) != ALLOWED:
        reference = ref.digest or ref.tag or "latest"
        return (
            f"CannotPullContainerError: pull image manifest has been retried 5 time(s): failed to resolve ref "
            f"{ref.canonical()}: pulling from host {repository.host} failed with status code "
            f"[manifests {reference}]: 403 Forbidden",
            True,
        )
    if simulator.decision(role, LAYER, repository.arn) != ALLOWED:
        layer = hashlib.sha256(ref.canonical().encode()).hexdigest()
        return (
            "CannotPullContainerError: ref pull has been retried 1 time(s): failed to copy: httpReadSeeker: "
            f"failed open: unexpected status code https://{repository.host}/v2/{repository.name}/blobs/"
            f"sha256:{layer}: 403 Forbidden",
            True,
        )
    return None
