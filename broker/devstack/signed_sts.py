"""The signed STS calls of the strict local AWS: AssumeRole, GetFederationToken and GetCallerIdentity.

Each is authenticated first (callers + sigv4_check: a key the local AWS issued, its session token, its expiry, and
the SigV4 signature recomputed with the secret it issued), then judged (assume_role_checks, chaining, the target
role's trust policy). Only then is moto asked for a role session; federated users are issued here, since moto
hands every GetFederationToken caller the same fixed example key. Framework-free apart from werkzeug's Request.
"""

from __future__ import annotations

import base64
import dataclasses
import secrets
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol
from xml.sax.saxutils import escape

from lxml import etree  # type: ignore[import-untyped]
from werkzeug.wrappers import Request

from broker.devstack import chaining
from broker.devstack import identity_policy as identity
from broker.devstack import trust_policy as trust
from broker.devstack.assume_role_checks import (
    AssumeRoleRequest,
    check_packed_size,
    validate_assume_role,
    validate_federation,
)
from broker.devstack.callers import FEDERATED_USER, USER, Caller, CallerDirectory, UserKeyLedger, user_key_from_xml
from broker.devstack.federation import CredentialLedger, IssuedCredentials, credentials_from_xml
from broker.devstack.sigv4_check import AUTHORIZATION, ReceivedRequest, parse_authorization, verify
from broker.devstack.web_identity_checks import StsError

STS_NS = "https://sts.amazonaws.com/doc/2011-06-15/"
KEY_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
SIGNED_ACTIONS = frozenset({"AssumeRole", "GetFederationToken", "GetCallerIdentity"})
MotoReply = tuple[int, list[tuple[str, str]], bytes]
# (form, account, signer key id or None) -> status, headers, body
SendToMoto = Callable[[Mapping[str, str], str, str | None], MotoReply]


class RoleLookup(Protocol):
    def role_in(self, account: str, name: str) -> tuple[str, int, Mapping[str, Any]] | None:
        """(ARN, MaxSessionDuration, trust policy) of a role in any account moto holds."""
        ...

    def identity_policies(self, account: str, kind: str, name: str) -> list[Mapping[str, Any]]: ...

    def managed_policy(self, account: str, arn: str) -> Mapping[str, Any] | None: ...


class Answer:
    """An STS answer the front sends as it is."""

    def __init__(self, status: int, body: bytes, headers: list[tuple[str, str]] | None = None) -> None:
        self.status, self.body = status, body
        self.headers = headers if headers is not None else [("Content-Type", "text/xml")]


def received(request: Request, body: bytes) -> ReceivedRequest:
    raw_uri = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI") or request.full_path
    host = request.headers.get("Host", "")
    return ReceivedRequest(method=request.method, url=f"http://{host}{raw_uri}", headers=dict(request.headers),
                           body=body)


def _new_credentials(seconds: int, now: float) -> tuple[str, str, str, float]:
    key_id = "ASIA" + "".join(secrets.choice(KEY_ALPHABET) for _ in range(16))
    token = base64.b64encode(secrets.token_bytes(240)).decode()
    return key_id, secrets.token_urlsafe(30)[:40], token, float(int(now) + seconds)


def _iso(stamp: float) -> str:
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _result(action: str, inner: str) -> bytes:
    return (f'<{action}Response xmlns="{STS_NS}"><{action}Result>{inner}</{action}Result><ResponseMetadata>'
            f"<RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata></{action}Response>").encode()


def _with_session_fields(body: bytes, packed: int, source_identity: str | None) -> bytes:
    """moto answers PackedPolicySize 6 and no SourceIdentity; put in what AWS returns."""
    root = etree.fromstring(body, etree.XMLParser(resolve_entities=False, no_network=True))
    result = root.find(f"{{{STS_NS}}}AssumeRoleResult")
    if result is None:
        return body
    for name, value in (("PackedPolicySize", str(packed)), ("SourceIdentity", source_identity)):
        element = result.find(f"{{{STS_NS}}}{name}")
        if value is None:
            continue
        if element is None:
            element = etree.SubElement(result, f"{{{STS_NS}}}{name}")
        element.text = value
    data: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return data


def _signer(request: Request) -> tuple[str, str] | None:
    """(access key id, service) the Authorization header names, unverified."""
    match = AUTHORIZATION.match(request.headers.get("Authorization", "").strip())
    return (match["key"], match["service"]) if match else None


class SignedSts:
    def __init__(self, *, ledger: CredentialLedger, user_keys: UserKeyLedger, directory: CallerDirectory,
                 roles: RoleLookup, send: SendToMoto, default_account: str,
                 clock: Callable[[], float] = time.time) -> None:
        self._directory, self._ledger, self._user_keys, self._roles = directory, ledger, user_keys, roles
        self._send, self._default_account, self._clock = send, default_account, clock

    def intercept(self, request: Request, body: bytes, params: Mapping[str, str]) -> Answer | None:
        """The answer for a call judged here, or None to forward it to moto as it is."""
        action, signer = params.get("Action", ""), _signer(request)
        if action in ("AssumeRole", "GetFederationToken"):
            return self.handle(request, body, params)
        if signer is None or not self._directory.knows(signer[0]):
            return None  # unknown (dummy) keys keep reaching moto, as before: the dev stack's IAM setup uses them
        if action == "GetCallerIdentity":
            return self.handle(request, body, params)
        issued = self._ledger.get(signer[0])
        if issued is not None and issued.kind != FEDERATED_USER and action == "GetSessionToken":
            error = StsError("AccessDenied", "Cannot call GetSessionToken with session credentials", 403)
            return Answer(error.status, error_body(error))
        if issued is not None and issued.kind == FEDERATED_USER and signer[1] in ("iam", "sts"):
            error = StsError("AccessDenied", f"User: {issued.arn} is not authorized to perform {signer[1]}:"
                             f"{action or '*'}: federated users may call no IAM operation and no STS operation but "
                             "GetCallerIdentity", 403)
            return Answer(error.status, error_body(error))
        return None

    def account_for(self, request: Request) -> str | None:
        """The account a known signer belongs to, so moto files its calls there."""
        signer = _signer(request)
        return self._directory.account_of(signer[0]) if signer else None

    def observe(self, request: Request, params: Mapping[str, str], status: int, data: bytes) -> None:
        """Learns IAM user keys from the CreateAccessKey answers that pass through (IAM shows a secret once)."""
        if params.get("Action") == "CreateAccessKey" and status == 200:
            account = request.headers.get("x-moto-account-id") or self.account_for(request) \
                or self._default_account
            key = user_key_from_xml(data, account)
            if key is not None:
                self._user_keys.record(key)

    def authenticate(self, request: Request, body: bytes) -> Caller:
        call = parse_authorization(dict(request.headers))
        now = self._clock()
        caller = self._directory.resolve(call, now)
        verify(call, received(request, body), caller.secret_access_key, service="sts", now=now)
        return caller

    def handle(self, request: Request, body: bytes, params: Mapping[str, str]) -> Answer:
        try:
            caller = self.authenticate(request, body)
            action = params.get("Action", "")
            if action == "AssumeRole":
                return self._assume_role(caller, params)
            if action == "GetFederationToken":
                return self._federation_token(caller, params)
            return self._caller_identity(caller, params)
        except StsError as error:
            return Answer(error.status, error_body(error))

    def _assume_role(self, caller: Caller, params: Mapping[str, str]) -> Answer:
        if caller.kind == FEDERATED_USER:
            # GetFederationToken credentials may call no STS operation but GetCallerIdentity.
            raise chaining.not_authorized(caller, trust.ASSUME_ROLE, params.get("RoleArn", "*"))
        request = validate_assume_role(params)
        role_arn, max_session, policy = self._role(caller, request.role_arn)
        session = chaining.next_session(caller, request, role_arn, max_session)
        self._check_trust(caller, request, session, policy)
        packed = check_packed_size(request.session, {k: v for k, v in session.tags.items()
                                                     if k not in request.session.tags})
        form = {"Action": "AssumeRole", "Version": "2011-06-15", "RoleArn": role_arn,
                "RoleSessionName": request.session_name, "DurationSeconds": str(session.seconds)}
        form.update({k: v for k, v in (("Policy", request.session.policy),
                                       ("ExternalId", request.external_id)) if v is not None})
        status, headers, data = self._send(form, role_arn.split(":")[4], None)
        if status != 200:
            return Answer(status, data, headers)
        issued = credentials_from_xml(data, chained=session.chained)
        if issued is not None:
            self._ledger.record(issued.with_session(role_arn=role_arn, source_identity=session.source_identity,
                                                    tags=dict(session.tags), transitive=session.transitive,
                                                    session_policy=request.session.policy,
                                                    session_policy_arns=request.session.policy_arns))
        return Answer(200, _with_session_fields(data, packed, session.source_identity))

    def _role(self, caller: Caller, role_arn: str) -> tuple[str, int, Mapping[str, Any]]:
        parts = role_arn.split(":")
        found = None
        if len(parts) == 6 and parts[0] == "arn" and parts[2] == "iam" and parts[5].startswith("role/") \
                and parts[4].isdigit() and len(parts[4]) == 12:
            found = self._roles.role_in(parts[4], parts[5].rsplit("/", 1)[-1])
        # AWS does not say whether a role exists: an unknown role is refused like an untrusting one.
        if found is None or found[0] != role_arn:
            raise chaining.not_authorized(caller, trust.ASSUME_ROLE, role_arn)
        return found

    def _check_trust(self, caller: Caller, request: AssumeRoleRequest, session: chaining.NextSession,
                     policy: Mapping[str, Any]) -> None:
        """The trust policy, then (when IAM asks for them) the caller's identity policies and session policy."""
        denied = chaining.not_authorized(caller, trust.ASSUME_ROLE, request.role_arn)
        named = trust.is_allowed(policy, chaining.trust_request(caller, request, session, with_account=False))
        if not named and not trust.is_allowed(policy, chaining.trust_request(caller, request, session,
                                                                            with_account=True)):
            raise denied
        actions = (trust.ASSUME_ROLE,) + ((trust.TAG_SESSION,) if request.session.tags else ()) + \
            ((trust.SET_SOURCE_IDENTITY,) if request.source_identity else ())
        question = identity.Question(actions, request.role_arn, chaining.trust_context(caller, request, session))
        same_account = request.role_arn.split(":")[4] == caller.account
        # Trusting the account (not the principal) or another account's role: the caller's own policies decide too.
        if not (named and same_account) and not identity.allows(
                self._roles.identity_policies(caller.account, *caller.policy_owner), question):
            raise denied
        # A session policy limits the session, unless the trust policy names that very session (IAM user guide).
        by_session = dataclasses.replace(chaining.trust_request(caller, request, session, with_account=False),
                                         aws_principals=frozenset({caller.arn}))
        if not trust.is_allowed(policy, by_session) and not identity.session_policy_allows(
                self._session_policies(caller), question):
            raise denied

    def _session_policies(self, caller: Caller) -> list[Mapping[str, Any]]:
        managed = [self._roles.managed_policy(caller.account, arn) for arn in caller.session_policy_arns]
        # A managed policy deleted since the session began allows nothing; the list stays non-empty.
        inline = [caller.session_policy] if caller.session_policy is not None else []
        return inline + [m if m is not None else {"Statement": []} for m in managed]

    def _federation_token(self, caller: Caller, params: Mapping[str, str]) -> Answer:
        if caller.kind != USER:
            raise StsError("AccessDenied", "Cannot call GetFederationToken with session credentials", 403)
        request = validate_federation(params)
        packed = check_packed_size(request.session)
        arn = f"arn:{caller.arn.split(':')[1]}:sts::{caller.account}:federated-user/{request.name}"
        actions = ("sts:GetFederationToken",) + ((trust.TAG_SESSION,) if request.session.tags else ())
        question = identity.Question(actions, arn, {"aws:principalarn": (caller.arn,),
                                                    "aws:principalaccount": (caller.account,)})
        if not identity.allows(self._roles.identity_policies(caller.account, *caller.policy_owner), question):
            raise chaining.not_authorized(caller, "sts:GetFederationToken", arn)
        seconds = request.session.duration or 43200
        key_id, secret, token, expires = _new_credentials(seconds, self._clock())
        self._ledger.record(IssuedCredentials(key_id, secret, token, expires, arn, kind=FEDERATED_USER,
                                              tags=dict(request.session.tags), session_policy=request.session.policy))
        inner = (f"<Credentials><AccessKeyId>{key_id}</AccessKeyId><SecretAccessKey>{escape(secret)}"
                 f"</SecretAccessKey><SessionToken>{token}</SessionToken><Expiration>{_iso(expires)}</Expiration>"
                 f"</Credentials><FederatedUser><FederatedUserId>{caller.account}:{escape(request.name)}"
                 f"</FederatedUserId><Arn>{escape(arn)}</Arn></FederatedUser>"
                 f"<PackedPolicySize>{packed}</PackedPolicySize>")
        return Answer(200, _result("GetFederationToken", inner))

    def _caller_identity(self, caller: Caller, params: Mapping[str, str]) -> Answer:
        if caller.kind == FEDERATED_USER:
            name = caller.arn.rsplit("/", 1)[-1]
            inner = (f"<UserId>{caller.account}:{escape(name)}</UserId><Account>{caller.account}</Account>"
                     f"<Arn>{escape(caller.arn)}</Arn>")
            return Answer(200, _result("GetCallerIdentity", inner))
        status, headers, data = self._send({"Action": "GetCallerIdentity", "Version": "2011-06-15"},
                                           caller.account, caller.access_key_id)
        return Answer(status, data, headers)


def error_body(error: StsError) -> bytes:
    kind = "Sender" if error.status < 500 else "Receiver"
    return (f'<ErrorResponse xmlns="{STS_NS}"><Error><Type>{kind}</Type><Code>{escape(error.code)}</Code>'
            f"<Message>{escape(error.message)}</Message></Error><RequestId>{uuid.uuid4()}</RequestId>"
            "</ErrorResponse>").encode()
