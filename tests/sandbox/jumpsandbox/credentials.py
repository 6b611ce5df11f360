"""Temporary credentials that expire, as STS's do.

moto answers AssumeRole and its siblings with an Expiration and then accepts the
credentials forever. AWS refuses every call signed with temporary credentials past
their expiry ("The security token included in the request is expired":
``ExpiredTokenException`` from JSON-protocol services, ``ExpiredToken`` from query
ones), so a client that holds on to its first credentials works against moto and
fails an hour into its first long session in AWS. The sandbox reads each temporary
key's expiry from STS's answer and refuses calls signed with that key afterwards.

STS issues nothing shorter than 900 seconds (AssumeRole's DurationSeconds is 900 to
43200, STS API reference), which no test can wait out. ``ctl credentials --lifetime S``
compresses time instead: credentials issued afterwards expire S seconds after issue,
and the answer's Expiration says so, so SDKs refresh on the schedule they would keep
before a real expiry. The range check on DurationSeconds stays AWS's.
"""

import re
import threading
import time
from datetime import datetime, timezone

from .awsproto import JSON_SERVICES, AwsError

# The STS actions that hand out temporary credentials.
ISSUING = {"AssumeRole", "AssumeRoleWithWebIdentity", "AssumeRoleWithSAML", "GetSessionToken",
           "GetFederationToken"}
# DurationSeconds ranges (STS API reference): role sessions, then user sessions.
ROLE_DURATION = (900, 43200)
USER_DURATION = (900, 129600)
EXPIRED = "The security token included in the request is expired"

_KEY = re.compile(r"Credential=([^/,\s]+)/")
_ISSUED_KEY = re.compile(rb"<AccessKeyId>([^<]+)</AccessKeyId>")
_EXPIRATION = re.compile(rb"<Expiration>([^<]+)</Expiration>")


class Credentials:
    def __init__(self):
        self.lock = threading.Lock()
        self.lifetime: float | None = None  # seconds; None: what the caller asked STS for
        self.expiry: dict[str, float] = {}  # access key id -> epoch seconds

    def check(self, environ, service: str) -> None:
        """Refuses a request signed with a temporary key that has expired, in SERVICE's words."""
        match = _KEY.search(environ.get("HTTP_AUTHORIZATION", ""))
        if not match:
            return
        with self.lock:
            expiry = self.expiry.get(match.group(1))
        if expiry is not None and time.time() >= expiry:
            if service in JSON_SERVICES:
                raise AwsError("ExpiredTokenException", EXPIRED, 400)
            raise AwsError("ExpiredToken", EXPIRED, 403)

    @staticmethod
    def check_duration(action: str, params: dict) -> None:
        """AWS's bounds on DurationSeconds, which moto does not check."""
        if action not in ISSUING or "DurationSeconds" not in params:
            return
        low, high = USER_DURATION if action in ("GetSessionToken", "GetFederationToken") else ROLE_DURATION
        value = int(params["DurationSeconds"])
        if value < low:
            bound = f"greater than or equal to {low}"
        elif value > high:
            bound = f"less than or equal to {high}"
        else:
            return
        raise AwsError(
            "ValidationError",
            f"1 validation error detected: Value '{value}' at 'durationSeconds' failed to satisfy constraint: "
            f"Member must have value {bound}",
        )

    def register(self, key: str, seconds: float) -> float:
        """Records a key the sandbox issued itself (a task role's), lasting SECONDS unless
        time is compressed; returns when it expires."""
        with self.lock:
            expiry = time.time() + (self.lifetime if self.lifetime is not None else seconds)
            self.expiry[key] = expiry
        return expiry

    def issued(self, body: bytes) -> bytes:
        """Records the key STS just issued, with its expiry (compressed if asked); returns the answer."""
        key, expiration = _ISSUED_KEY.search(body), _EXPIRATION.search(body)
        if not key or not expiration:
            return body
        with self.lock:
            lifetime = self.lifetime
            if lifetime is None:
                stamp = expiration.group(1).decode().replace("Z", "+00:00")
                expiry = datetime.fromisoformat(stamp).timestamp()
            else:
                expiry = time.time() + lifetime
                when = datetime.fromtimestamp(expiry, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
                body = body[: expiration.start(1)] + when.encode() + body[expiration.end(1) :]
            self.expiry[key.group(1).decode()] = expiry
        return body
