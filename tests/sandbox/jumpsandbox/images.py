"""What an image runs, since the sandbox has no registry to pull it from.

On ECS a container runs its image's ENTRYPOINT and CMD unless the task
definition says otherwise, and an image that is not in its registry stops the
task before it starts. A sandbox that ran jump's entrypoint for every image
hid both: a task definition naming `amazonlinux:2023` with no command kept
running, where on Fargate its `/bin/bash` reads an empty stdin, exits 0 and
stops the task. So the sandbox keeps a small catalogue of images it knows:
jump's jumphost image (any repository whose name ends in `jumphost`), a few
public base images with their real CMD, and whatever a test registers with
`ctl image`. Anything else cannot be pulled.

Jump's jumphost image runs as a real container once it is built and the
sandbox is started with it (containers.py). Every other image's processes run
on the sandbox host's own filesystem, so `/bin/bash` is the host's; what
matters is that the same argv runs that Docker would run.
"""

import re
import threading
from dataclasses import dataclass

from .dataplane import ENTRYPOINT

DOCKER_HUB = "docker.io"
ECR_REGISTRY = re.compile(r"^(\d{12})\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com$")
_HUB_ALIASES = {"docker.io", "index.docker.io", "registry-1.docker.io"}


@dataclass(frozen=True)
class Image:
    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...]
    container: bool = False  # run as a real container (containers.py), not on the host


@dataclass(frozen=True)
class Reference:
    """An image reference split as containerd splits it (`docker.io/library/...` for Hub names)."""

    repository: str  # registry/path, without tag or digest
    tag: str | None
    digest: str | None

    @property
    def name(self) -> str:
        """The last path component: `jumphost` in `123.dkr.ecr.us-east-1.amazonaws.com/team/jumphost:1`."""
        return self.repository.rsplit("/", 1)[-1]

    def canonical(self) -> str:
        """The fully qualified form containerd reports in pull errors."""
        if self.digest:
            return f"{self.repository}:{self.tag}@{self.digest}" if self.tag else f"{self.repository}@{self.digest}"
        return f"{self.repository}:{self.tag or 'latest'}"


@dataclass(frozen=True)
class EcrRepository:
    """The private ECR repository of an image reference."""

    account: str
    region: str
    name: str

    @property
    def host(self) -> str:
        return f"{self.account}.dkr.ecr.{self.region}.amazonaws.com"

    @property
    def arn(self) -> str:
        return f"arn:aws:ecr:{self.region}:{self.account}:repository/{self.name}"


def ecr_repository(ref: Reference) -> EcrRepository | None:
    host, _, path = ref.repository.partition("/")
    match = ECR_REGISTRY.match(host)
    return EcrRepository(match.group(1), match.group(2), path) if match else None


def parse(ref: str) -> Reference:
    rest, _, digest = ref.partition("@")
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    tag = None
    if colon > slash:
        rest, tag = rest[:colon], rest[colon + 1 :]
    first, _, remainder = rest.partition("/")
    # A first component with a dot or a port, or `localhost`, names a registry (Docker's rule).
    if remainder and ("." in first or ":" in first or first == "localhost"):
        registry, path = first, remainder
    else:
        registry, path = DOCKER_HUB, rest
    if registry in _HUB_ALIASES:
        registry = DOCKER_HUB
        if "/" not in path:
            path = f"library/{path}"
    return Reference(f"{registry}/{path}", tag, digest or None)


def pull_error(ref: str) -> str:
    """The stoppedReason (and container reason) of a task whose image is not in its registry."""
    name = parse(ref).canonical()
    return f"CannotPullContainerError: pull image manifest has been retried 5 time(s): failed to resolve ref {name}: {name}: not found"


JUMPHOST = Image(("/bin/sh", str(ENTRYPOINT)), ())  # until the real image is built
# Public base images and the CMD their Dockerfiles set (none sets an ENTRYPOINT). Each is
# reachable under its Docker Hub name and its public ECR mirror.
_BASE = {
    "amazonlinux": ("/bin/bash",),
    "debian": ("bash",),
    "ubuntu": ("/bin/bash",),
    "alpine": ("/bin/sh",),
    "busybox": ("sh",),
}
BUILT_IN = {
    repository: Image((), cmd)
    for name, cmd in _BASE.items()
    for repository in (f"{DOCKER_HUB}/library/{name}", f"public.ecr.aws/docker/library/{name}")
} | {
    "public.ecr.aws/amazonlinux/amazonlinux": Image((), _BASE["amazonlinux"]),
    "public.ecr.aws/ubuntu/ubuntu": Image((), _BASE["ubuntu"]),
}


class Catalogue:
    """The images the sandbox can "pull": built in, plus those tests register."""

    def __init__(self, jumphost: Image = JUMPHOST):
        self.jumphost = jumphost
        self.registered: dict[str, Image] = {}  # a reference as registered -> what it runs
        self.lock = threading.Lock()

    def register(self, name: str, entrypoint: list[str], cmd: list[str]) -> dict:
        lists = (entrypoint, cmd)
        if not name or not all(isinstance(v, list) and all(isinstance(a, str) for a in v) for v in lists):
            raise ValueError("an image needs a name, and entrypoint and cmd must be lists of strings")
        with self.lock:
            self.registered[name] = Image(tuple(entrypoint), tuple(cmd))
        return {"name": name, "entrypoint": entrypoint, "cmd": cmd}

    def listing(self) -> list[dict]:
        with self.lock:
            return [{"name": n, "entrypoint": list(i.entrypoint), "cmd": list(i.cmd)} for n, i in self.registered.items()]

    def resolve(self, ref: str) -> Image | None:
        """What REF runs, or None if no registry has it.

        A registered name with a tag or digest matches only that tag or digest; without,
        any tag of the repository.
        """
        wanted = parse(ref)
        with self.lock:
            for name, image in self.registered.items():
                known = parse(name)
                if known.tag is None and known.digest is None:
                    if known.repository == wanted.repository:
                        return image
                elif known.canonical() == wanted.canonical():
                    return image
        if wanted.name.endswith("jumphost"):
            return self.jumphost
        return BUILT_IN.get(wanted.repository)


def container_argv(image: Image, definition: dict, command: list[str] | None) -> list[str]:
    """What Docker runs for this container, given what ECS passes it.

    ECS hands the task definition's entryPoint and command (or the RunTask command
    override, which replaces command) to Docker's create call. Docker keeps the
    image's ENTRYPOINT when none is given and the image's CMD only when neither an
    entrypoint nor a command is given: setting an entrypoint drops the image's CMD.
    """
    entry = definition.get("entryPoint")
    cmd = command if command is not None else definition.get("command")
    if entry:
        return [*entry, *(cmd or [])]
    return [*image.entrypoint, *(cmd if cmd else image.cmd)]
