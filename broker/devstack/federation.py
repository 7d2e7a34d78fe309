"""The console federation endpoint (getSigninToken, then login) and the ledger of credentials it accepts.

moto checks no request signature, so asking moto "who is this?" cannot tell a real sessionKey from a made-up
one. The front therefore records every credential set moto issues through it (the ledger), and
getSigninToken accepts a Session only when all three values match a live ledger entry *and* moto still
resolves the access key to the same assumed role. Framework-free: handlers return a Reply.
"""

from __future__ import annotations

import hmac
import json
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from html import escape
from typing import Any
from urllib.parse import urlsplit
from xml.etree import ElementTree

STS_NS = "{https://sts.amazonaws.com/doc/2011-06-15/}"
SIGNIN_TOKEN_SECONDS = 900
DEFAULT_CONSOLE_SECONDS = 3600
CHAINED_CONSOLE_MAX = 3600  # role chaining caps the console session at one hour (IAM user guide)
MAX_CONSOLE_SECONDS = 43200
LOGINS_KEPT = 256  # the last logins, for tests to read back (what Destination the broker sent)
EXPIRED_MEMORY = 86400.0  # expired credentials are remembered a day, so a late caller hears ExpiredToken
ASSUMED_ROLE, FEDERATED_USER = "assumed-role", "federated-user"
Clock = Callable[[], float]


@dataclass(frozen=True)
class IssuedCredentials:
    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str = field(repr=False)
    expires_at: float
    arn: str
    chained: bool = False  # AssumeRole called with temporary credentials
    kind: str = ASSUMED_ROLE  # or FEDERATED_USER (GetFederationToken)
    role_arn: str | None = None  # the IAM role of an assumed-role session
    source_identity: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)  # session tags, inherited transitive ones included
    transitive: tuple[str, ...] = ()  # keys of `tags` that pass to the next session in a chain
    session_policy: str | None = field(default=None, repr=False)  # the inline Policy the session was issued with
    session_policy_arns: tuple[str, ...] = ()  # the managed session policies (PolicyArns) it was issued with

    @property
    def account(self) -> str:
        return self.arn.split(":")[4]

    def with_session(self, **changes: Any) -> IssuedCredentials:
        return replace(self, **changes)


def credentials_from_xml(body: bytes, *, chained: bool = False) -> IssuedCredentials | None:
    """Read Credentials and AssumedRoleUser/Arn from an STS Assume* response moto produced."""
    try:
        root = ElementTree.fromstring(body)  # noqa: S314  (moto's own output over loopback, not untrusted input)
    except ElementTree.ParseError:
        return None
    values = {name: root.findtext(f".//{STS_NS}{path}") for name, path in (
        ("id", f"Credentials/{STS_NS}AccessKeyId"), ("secret", f"Credentials/{STS_NS}SecretAccessKey"),
        ("token", f"Credentials/{STS_NS}SessionToken"), ("expiration", f"Credentials/{STS_NS}Expiration"),
        ("arn", f"AssumedRoleUser/{STS_NS}Arn"))}
    if not all(values.values()):
        return None
    expires = datetime.fromisoformat(str(values["expiration"])).timestamp()
    return IssuedCredentials(str(values["id"]), str(values["secret"]), str(values["token"]), expires,
                             str(values["arn"]), chained)


class CredentialLedger:
    def __init__(self, clock: Clock = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._issued: dict[str, IssuedCredentials] = {}

    def record(self, credentials: IssuedCredentials) -> None:
        now = self._clock()
        with self._lock:
            # Drop long-expired entries as we go, so the ledger never grows without bound.
            self._issued = {k: v for k, v in self._issued.items() if v.expires_at > now - EXPIRED_MEMORY}
            self._issued[credentials.access_key_id] = credentials

    def knows(self, access_key_id: str) -> bool:
        with self._lock:
            return access_key_id in self._issued

    def get(self, access_key_id: str) -> IssuedCredentials | None:
        """The entry even when expired (the caller decides: ExpiredToken), None when never issued."""
        with self._lock:
            return self._issued.get(access_key_id)

    def match(self, access_key_id: str, secret: str, token: str) -> IssuedCredentials | None:
        with self._lock:
            issued = self._issued.get(access_key_id)
        if issued is None or issued.expires_at <= self._clock():
            return None
        secret_ok = hmac.compare_digest(secret.encode(), issued.secret_access_key.encode())
        token_ok = hmac.compare_digest(token.encode(), issued.session_token.encode())
        return issued if secret_ok and token_ok else None


@dataclass(frozen=True)
class Reply:
    status: int
    content_type: str
    body: str


def bad_request(message: str) -> Reply:
    # AWS answers bad federation input with HTTP 400 and a human-readable page; a short text will do.
    return Reply(400, "text/plain; charset=utf-8", message + "\n")


@dataclass(frozen=True)
class ConsoleSession:
    arn: str
    token_expires_at: float
    session_seconds: int


@dataclass(frozen=True)
class ConsoleLogin:
    """A login the endpoint accepted: whose session, and the Destination and Issuer exactly as received."""

    arn: str
    destination: str
    issuer: str


class FederationError(Exception):
    pass


def _session_credentials(raw: str | None) -> tuple[str, str, str]:
    try:
        session: Any = json.loads(raw) if raw else None
    except ValueError:
        session = None
    values = [session.get(k) for k in ("sessionId", "sessionKey", "sessionToken")] if isinstance(session, dict) \
        else []
    strings = [v for v in values if isinstance(v, str) and v]
    if len(strings) != 3:
        raise FederationError("Session must be JSON with sessionId, sessionKey and sessionToken")
    return strings[0], strings[1], strings[2]


def _session_duration(raw: str | None, issued: IssuedCredentials, now: float) -> int:
    if issued.kind == FEDERATED_USER:
        # AWS fails the call when SessionDuration comes with GetFederationToken credentials; the console session
        # then lasts as long as the credentials do.
        if raw is not None:
            raise FederationError("SessionDuration cannot be used with GetFederationToken credentials")
        return max(1, min(MAX_CONSOLE_SECONDS, int(issued.expires_at - now)))
    if raw is None:
        return DEFAULT_CONSOLE_SECONDS  # local choice; it is also within the role-chaining cap
    if not raw.isdigit() or not 900 <= int(raw) <= 43200:
        raise FederationError("SessionDuration must be an integer from 900 to 43200")
    if issued.chained and int(raw) > CHAINED_CONSOLE_MAX:
        raise FederationError("SessionDuration cannot exceed 3600 for credentials from role chaining")
    return int(raw)


def _absolute_url(value: str | None) -> bool:
    parts = urlsplit(value or "")
    return parts.scheme in ("http", "https") and bool(parts.netloc)


# The console's hosts per partition: the global one and the regional ones (us-west-2.console.aws.amazon.com).
CONSOLE_DOMAINS = {"aws": "console.aws.amazon.com", "aws-us-gov": "console.amazonaws-us-gov.com",
                   "aws-cn": "console.amazonaws.cn"}
REGION_LABEL = re.compile(r"[a-z]{2}(-[a-z]+)+-[0-9]")


def console_url_of(destination: str, partition: str) -> bool:
    """An https URL of the partition's console: no port, no userinfo, no backslash or control character."""
    domain = CONSOLE_DOMAINS.get(partition)
    if domain is None or any(c in destination for c in "\\\r\n\t") or not destination.isprintable():
        return False
    parts = urlsplit(destination)
    netloc = parts.netloc
    if parts.scheme != "https" or netloc != parts.hostname:  # a port, userinfo or upper case
        return False
    region, _, rest = netloc.partition(".")
    return netloc == domain or (rest == domain and REGION_LABEL.fullmatch(region) is not None)


class FederationEndpoint:
    """`caller_arn` asks moto which principal the credentials belong to (None if it cannot say)."""

    def __init__(self, ledger: CredentialLedger, caller_arn: Callable[[IssuedCredentials], str | None],
                 clock: Clock = time.time) -> None:
        self._ledger, self._caller_arn, self._clock = ledger, caller_arn, clock
        self._lock = threading.Lock()
        self._sessions: dict[str, ConsoleSession] = {}
        self._logins: deque[ConsoleLogin] = deque(maxlen=LOGINS_KEPT)

    def logins(self) -> tuple[ConsoleLogin, ...]:
        """The logins accepted, oldest first (the last LOGINS_KEPT)."""
        with self._lock:
            return tuple(self._logins)

    def handle(self, params: Mapping[str, str]) -> Reply:
        action = params.get("Action")
        try:
            if action == "getSigninToken":
                return self._signin_token(params)
            if action == "login":
                return self._login(params)
        except FederationError as exc:
            return bad_request(str(exc))
        return bad_request("Action must be getSigninToken or login")

    def _signin_token(self, params: Mapping[str, str]) -> Reply:
        key_id, secret, token = _session_credentials(params.get("Session"))
        issued = self._ledger.match(key_id, secret, token)
        # moto knows nothing of federated users (the front issues those itself); ask it about role sessions only.
        if issued is None or (issued.kind != FEDERATED_USER and self._caller_arn(issued) != issued.arn):
            raise FederationError("The credentials in Session are not valid temporary credentials")
        now = self._clock()
        duration = _session_duration(params.get("SessionDuration"), issued, now)
        signin_token = secrets.token_urlsafe(96)
        with self._lock:
            self._sessions = {k: v for k, v in self._sessions.items() if v.token_expires_at > now}
            self._sessions[signin_token] = ConsoleSession(issued.arn, now + SIGNIN_TOKEN_SECONDS, duration)
        return Reply(200, "application/json", json.dumps({"SigninToken": signin_token}))

    def _login(self, params: Mapping[str, str]) -> Reply:
        with self._lock:
            session = self._sessions.get(params.get("SigninToken", ""))
        if session is None or session.token_expires_at <= self._clock():
            raise FederationError("The sign-in token is invalid or has expired")
        destination, issuer = params.get("Destination"), params.get("Issuer")
        partition = session.arn.split(":")[1]
        if not destination or not console_url_of(destination, partition):
            raise FederationError(f"Destination must be an https URL of the {partition} console")
        if issuer is not None and not _absolute_url(issuer):
            raise FederationError("Issuer must be an absolute http or https URL")
        with self._lock:
            self._logins.append(ConsoleLogin(session.arn, destination, issuer or ""))
        return Reply(200, "text/html; charset=utf-8", _login_page(session, str(destination), issuer or ""))


def _login_page(session: ConsoleSession, destination: str, issuer: str) -> str:
    return (
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>AWS console (local)</title></head><body>"
        f"<h1>Signed in to the AWS console (local) as {escape(session.arn)}</h1>"
        f"<p>Destination: <a href=\"{escape(destination)}\">{escape(destination)}</a></p>"
        f"<p>Issuer: {escape(issuer)}</p>"
        f"<p>Console session: {session.session_seconds} seconds</p></body></html>"
    )
