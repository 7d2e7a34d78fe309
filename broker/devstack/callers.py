"""Who signed a request to the strict local AWS: only credentials it issued itself count.

Two kinds exist: IAM user access keys created through the front (CreateAccessKey answers pass through it, and it
keeps the secret moto handed out, since IAM never shows a secret again), and the temporary credentials the front's
STS issued (the CredentialLedger: role sessions and federated users). moto checks no signature, so without this
record anybody could claim any key id.
"""

from __future__ import annotations

import hmac
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from xml.etree import ElementTree

from broker.devstack.federation import ASSUMED_ROLE, FEDERATED_USER, CredentialLedger
from broker.devstack.sigv4_check import SignedCall, expired_token, invalid_client_token

IAM_NS = "{https://iam.amazonaws.com/doc/2010-05-08/}"
USER = "user"


@dataclass(frozen=True)
class UserKey:
    access_key_id: str
    secret_access_key: str = field(repr=False)
    user_name: str
    account: str


@dataclass(frozen=True)
class UserInfo:
    arn: str
    tags: Mapping[str, str]
    key_status: Mapping[str, str]  # access key id -> Active / Inactive


class IamUsers(Protocol):
    def user(self, account: str, name: str) -> UserInfo | None: ...

    def role_tags(self, account: str, name: str) -> Mapping[str, str]: ...


@dataclass(frozen=True)
class Caller:
    """The authenticated principal of one request."""

    kind: str  # USER, ASSUMED_ROLE or FEDERATED_USER
    access_key_id: str
    secret_access_key: str = field(repr=False)
    account: str
    arn: str  # user ARN, assumed-role session ARN, or federated-user ARN
    principal_arn: str  # aws:PrincipalArn: the user, the role (for a session), the federated user
    source_identity: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)  # aws:PrincipalTag/*
    transitive: tuple[str, ...] = ()
    session_policy: Mapping[str, Any] | None = field(default=None, repr=False)
    session_policy_arns: tuple[str, ...] = ()

    @property
    def policy_owner(self) -> tuple[str, str]:
        """("user" | "role", name): whose identity policies IAM evaluates for this caller."""
        return ("user" if self.kind == USER else "role"), self.principal_arn.rsplit("/", 1)[-1]


def _policy(text: str | None) -> Mapping[str, Any] | None:
    loaded = json.loads(text) if text else None  # checked as a JSON object when the session was issued
    return loaded if isinstance(loaded, dict) else None


def user_key_from_xml(body: bytes, account: str) -> UserKey | None:
    """The key in an IAM CreateAccessKey answer moto produced (over loopback, not untrusted input)."""
    try:
        root = ElementTree.fromstring(body)  # noqa: S314
    except ElementTree.ParseError:
        return None
    key = root.find(f".//{IAM_NS}AccessKey")
    values = [key.findtext(f"{IAM_NS}{name}") if key is not None else None
              for name in ("AccessKeyId", "SecretAccessKey", "UserName")]
    if not all(values):
        return None
    return UserKey(str(values[0]), str(values[1]), str(values[2]), account)


class UserKeyLedger:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: dict[str, UserKey] = {}

    def record(self, key: UserKey) -> None:
        with self._lock:
            self._keys[key.access_key_id] = key

    def get(self, access_key_id: str) -> UserKey | None:
        with self._lock:
            return self._keys.get(access_key_id)


class CallerDirectory:
    def __init__(self, sessions: CredentialLedger, user_keys: UserKeyLedger, iam: IamUsers) -> None:
        self._sessions, self._user_keys, self._iam = sessions, user_keys, iam

    def knows(self, access_key_id: str) -> bool:
        return self._sessions.knows(access_key_id) or self._user_keys.get(access_key_id) is not None

    def account_of(self, access_key_id: str) -> str | None:
        issued, key = self._sessions.get(access_key_id), self._user_keys.get(access_key_id)
        return issued.account if issued else key.account if key else None

    def resolve(self, call: SignedCall, now: float) -> Caller:
        """The caller the key id and session token name, before the signature is checked (AWS's order:
        an unknown or expired token is reported as such whatever the signature)."""
        issued = self._sessions.get(call.access_key_id)
        if issued is not None:
            token_ok = call.session_token is not None and hmac.compare_digest(
                call.session_token.encode(), issued.session_token.encode())
            if not token_ok:
                raise invalid_client_token()
            if issued.expires_at <= now:
                raise expired_token()
            principal = issued.role_arn if issued.kind == ASSUMED_ROLE and issued.role_arn else issued.arn
            return Caller(kind=issued.kind, access_key_id=issued.access_key_id,
                          secret_access_key=issued.secret_access_key, account=issued.account, arn=issued.arn,
                          principal_arn=principal, source_identity=issued.source_identity,
                          tags=self._principal_tags(issued.kind, principal, issued.tags), transitive=issued.transitive,
                          session_policy=_policy(issued.session_policy),
                          session_policy_arns=issued.session_policy_arns)
        return self._user(call)

    def _principal_tags(self, kind: str, role_arn: str, session_tags: Mapping[str, str]) -> dict[str, str]:
        """A role session's aws:PrincipalTag: its role's IAM tags, overridden by its session tags (any case)."""
        if kind != ASSUMED_ROLE:
            return dict(session_tags)
        lowered = {key.lower() for key in session_tags}
        role_tags = self._iam.role_tags(role_arn.split(":")[4], role_arn.rsplit("/", 1)[-1])
        return {**{k: v for k, v in role_tags.items() if k.lower() not in lowered}, **session_tags}

    def _user(self, call: SignedCall) -> Caller:
        key = self._user_keys.get(call.access_key_id)
        # A long-term key never comes with a session token; a deleted or deactivated key is invalid, as at AWS.
        info = self._iam.user(key.account, key.user_name) if key is not None else None
        if key is None or call.session_token is not None or info is None or \
                info.key_status.get(key.access_key_id) != "Active":
            raise invalid_client_token()
        return Caller(kind=USER, access_key_id=key.access_key_id, secret_access_key=key.secret_access_key,
                      account=key.account, arn=info.arn, principal_arn=info.arn, tags=info.tags)


__all__ = ["ASSUMED_ROLE", "FEDERATED_USER", "USER", "Caller", "CallerDirectory", "UserKey", "UserKeyLedger",
           "user_key_from_xml"]
