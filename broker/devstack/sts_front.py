"""The strict front: a WSGI app on loopback that judges AssumeRoleWithWebIdentity and AssumeRoleWithSAML as AWS
documents them (saml_checks, saml_signature for the latter), serves
the console federation endpoint, and forwards every other request to moto byte for byte.

moto issues credentials but checks nothing, so nothing reaches moto's AssumeRoleWithWebIdentity until every
check here has passed; what moto then issues is recorded so the federation endpoint can tell real
credentials from invented ones.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode
from xml.sax.saxutils import escape

import httpx
from werkzeug.wrappers import Request, Response

from broker.devstack import saml_checks, saml_signature, strict_kms
from broker.devstack import trust_policy as trust
from broker.devstack import web_identity_checks as checks
from broker.devstack.federation import ConsoleLogin, CredentialLedger, FederationEndpoint, credentials_from_xml
from broker.devstack.signed_sts import SignedSts, error_body
from broker.devstack.web_identity_checks import StsError

STS_NS = "https://sts.amazonaws.com/doc/2011-06-15/"
ROLE_ARN = re.compile(r"arn:(aws|aws-cn|aws-us-gov):iam::(\d{12}):role/(?:[\w+=,.@/-]*/)?([\w+=,.@-]{1,64})",
                      re.ASCII)
# Hop-by-hop headers belong to one connection, not the request; length is recomputed for the new body.
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
                        "trailer", "transfer-encoding", "upgrade", "content-length", "expect"})
MAX_DISCOVERY_BYTES = 64 * 1024
SAML_PROVIDER_ARN = re.compile(r"arn:(aws|aws-cn|aws-us-gov):iam::\d{12}:saml-provider/[\w.-]{1,128}", re.ASCII)
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RoleInfo:
    arn: str
    max_session_duration: int
    trust_policy: Mapping[str, Any]


class IamLookups(Protocol):
    """Read-only IAM questions the front asks moto (implemented in local_aws)."""

    def role(self, name: str) -> RoleInfo | None: ...

    def client_ids(self, provider_arn: str) -> list[str] | None: ...

    def saml_metadata(self, provider_arn: str) -> str | None: ...


@dataclass(frozen=True)
class Verified:
    issuer: str
    subject: str
    audience: str
    source_identity: str | None
    tags: Mapping[str, str] = field(default_factory=dict)
    transitive: tuple[str, ...] = ()


class JwksCache:
    """Issuer keys found through discovery, kept `ttl` seconds. An unknown kid forces a refetch, but at most
    once per `refetch_gap`, so a rotated key is picked up without a stream of bad kids hammering the issuer."""

    def __init__(self, *, allow_http_loopback: bool, ttl: float = 60.0, refetch_gap: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._allow_http_loopback, self._ttl, self._gap, self._clock = allow_http_loopback, ttl, refetch_gap, clock
        self._http = httpx.Client(timeout=3.0, trust_env=False, follow_redirects=False)
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, dict[str, dict[str, Any]]]] = {}

    def close(self) -> None:
        self._http.close()

    def key_for(self, issuer: str, kid: str) -> Mapping[str, Any]:
        now = self._clock()
        with self._lock:
            fetched_at, keys = self._entries.get(issuer, (float("-inf"), {}))
        if now - fetched_at > self._ttl or (kid not in keys and now - fetched_at >= self._gap):
            keys = self._refresh(issuer, now)
        if kid not in keys:
            raise checks.invalid_token(checks.KEY_ERROR)
        return keys[kid]

    def _refresh(self, issuer: str, now: float) -> dict[str, dict[str, Any]]:
        try:
            keys = self._fetch_keys(issuer)
        except (httpx.HTTPError, ValueError) as exc:
            raise checks.invalid_token(checks.KEY_ERROR) from exc
        with self._lock:
            self._entries[issuer] = (now, keys)
        return keys

    def _fetch_keys(self, issuer: str) -> dict[str, dict[str, Any]]:
        discovery = self._get_json(issuer.rstrip("/") + "/.well-known/openid-configuration")
        jwks_uri = discovery.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not checks.is_allowed_url(
                jwks_uri, allow_http_loopback=self._allow_http_loopback, allow_port=True):
            raise ValueError("discovery has no acceptable jwks_uri")
        keys = self._get_json(jwks_uri).get("keys")
        if not isinstance(keys, list):
            raise ValueError("JWKS has no keys array")
        return {k["kid"]: k for k in reversed(keys) if isinstance(k, dict) and isinstance(k.get("kid"), str)}

    def _get_json(self, url: str) -> dict[str, Any]:
        data = bytearray()
        with self._http.stream("GET", url, headers={"Accept": "application/json"}) as response:
            if response.status_code != 200:
                raise ValueError(f"{url} answered {response.status_code}")
            for chunk in response.iter_bytes():
                data += chunk
                if len(data) > MAX_DISCOVERY_BYTES:
                    raise ValueError(f"{url} is larger than {MAX_DISCOVERY_BYTES} bytes")
        document = json.loads(bytes(data))
        if not isinstance(document, dict):
            raise ValueError(f"{url} is not a JSON object")
        return document


def error_response(error: StsError) -> Response:
    return Response(error_body(error), status=error.status, content_type="text/xml")


def query_params(request: Request, body: bytes) -> dict[str, str]:
    """AWS query-protocol parameters, from the query string and (for form posts) the body."""
    params = dict(parse_qsl(request.query_string.decode("latin-1"), keep_blank_values=True))
    if request.mimetype == "application/x-www-form-urlencoded":
        params.update(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True))
    return params


def _with_web_identity_fields(body: bytes, verified: Verified) -> bytes:
    """moto leaves out the fields AWS adds for web identity; add those it lacks."""
    text = body.decode("utf-8")
    fields = (("SubjectFromWebIdentityToken", verified.subject), ("Audience", verified.audience),
              ("Provider", verified.issuer), ("SourceIdentity", verified.source_identity))
    extra = "".join(f"<{name}>{escape(value)}</{name}>" for name, value in fields if value and f"<{name}>" not in text)
    closing = "</AssumeRoleWithWebIdentityResult>"
    return text.replace(closing, extra + closing, 1).encode("utf-8")


class StsFront:
    def __init__(self, *, moto_url: str, account_id: str, iam: IamLookups, jwks: JwksCache,
                 ledger: CredentialLedger, federation: FederationEndpoint, allow_http_loopback: bool,
                 signed: Callable[[StsFront], SignedSts] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._moto_url, self._account_id, self._iam, self._jwks = moto_url, account_id, iam, jwks
        self._ledger, self._federation, self._allow_http_loopback = ledger, federation, allow_http_loopback
        self._clock = clock
        self._signed = signed(self) if signed is not None else None  # the signed STS calls (AssumeRole ...)
        self._http = httpx.Client(timeout=30.0, trust_env=False, follow_redirects=False)
        # SHA-256 of each SAMLAssertion that passed every check (the last 256): tests see what reached "AWS".
        self._saml_accepted: deque[str] = deque(maxlen=256)

    def saml_accepted(self) -> tuple[str, ...]:
        return tuple(self._saml_accepted)

    def federation_logins(self) -> tuple[ConsoleLogin, ...]:
        return self._federation.logins()

    def close(self) -> None:
        self._http.close()
        self._jwks.close()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        try:
            response = self.dispatch(Request(environ))
        except Exception:
            # An AWS-shaped 500 (botocore retries those) rather than werkzeug's HTML traceback page.
            log.exception("strict local AWS front failed")
            response = error_response(StsError("InternalFailure", "The local AWS front failed", 500))
        result: Iterable[bytes] = response(environ, start_response)
        return result

    def dispatch(self, request: Request) -> Response:
        body = request.get_data(cache=True)
        params = query_params(request, body)
        if request.path == "/federation":
            reply = self._federation.handle(params)
            return Response(reply.body, status=reply.status, content_type=reply.content_type)
        if params.get("Action") == "AssumeRoleWithWebIdentity":
            return self._assume_role_with_web_identity(params)
        if params.get("Action") == "AssumeRoleWithSAML":
            return self._assume_role_with_saml(params)
        if request.headers.get("X-Amz-Target") == strict_kms.SIGN_TARGET:
            answer_kms = self._kms_sign(request, body)
            if answer_kms is not None:
                return answer_kms
        answer = self._signed.intercept(request, body, params) if self._signed else None
        if answer is not None:
            return Response(answer.body, status=answer.status, headers=answer.headers)
        response = self._forward(request, body)
        if self._signed is not None:
            self._signed.observe(request, params, response.status_code, response.get_data())
        return response

    def _kms_sign(self, request: Request, body: bytes) -> Response | None:
        """KMS Sign with MessageType=DIGEST as AWS does it (moto signs the digest as a message)."""
        scope = re.search(r"Credential=[^/]+/[0-9]{8}/([a-z0-9-]+)/kms/", request.headers.get("Authorization", ""))
        account = request.headers.get("x-moto-account-id", self._account_id)
        answer = strict_kms.sign_digest(body, account, scope.group(1) if scope else "us-east-1")
        if answer is None:
            return None
        return Response(answer[1], status=answer[0], content_type="application/x-amz-json-1.1")

    def send_form(self, form: Mapping[str, str], account: str, signer: str | None) -> tuple[
            int, list[tuple[str, str]], bytes]:
        """A query-protocol POST to moto, filed under `account`; `signer` names the caller's key (moto reads only
        the key id from Authorization, to tell whose session a GetCallerIdentity is about)."""
        headers = [("Content-Type", "application/x-www-form-urlencoded; charset=utf-8"),
                   ("x-moto-account-id", account)]
        # moto routes by the credential scope (an unsigned POST lands in S3) and checks no signature.
        headers.append(("Authorization", f"AWS4-HMAC-SHA256 Credential={signer or 'AKIALOCALFRONT000000'}/20000101/"
                                         f"us-east-1/sts/aws4_request, SignedHeaders=host, Signature={'0' * 64}"))
        return self._send("POST", self._moto_url + "/", headers, urlencode(form).encode())

    def _assume_role_with_web_identity(self, params: Mapping[str, str]) -> Response:
        try:
            verified = self._judge(params)
        except StsError as error:
            return error_response(error)
        # Re-sent as a form POST whatever the original form: moto routes unsigned query-string GETs to S3.
        form = urlencode(params).encode()
        status, headers, data = self._send("POST", self._moto_url + "/", [
            ("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")], form)
        if status == 200:
            data = _with_web_identity_fields(data, verified)
            self._record(data, params, verified.source_identity, verified.tags, verified.transitive)
        return _response(status, headers, data, "POST")

    def _assume_role_with_saml(self, params: Mapping[str, str]) -> Response:
        """Every check first (saml_checks); moto then gets a minimal assertion carrying only checked values."""
        try:
            request, claims, seconds = self._judge_saml(params)
        except StsError as error:
            return error_response(error)
        form = urlencode({"Action": "AssumeRoleWithSAML", "Version": params.get("Version", "2011-06-15"),
                          "RoleArn": request.role_arn, "PrincipalArn": request.principal_arn,
                          "SAMLAssertion": saml_checks.moto_response(request.role_arn, request.principal_arn,
                                                                     claims, seconds)}).encode()
        status, headers, data = self._send("POST", self._moto_url + "/", [
            ("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")], form)
        if status == 200:
            data = saml_checks.with_saml_fields(data, request.principal_arn, claims)
            self._record(data, params, claims.source_identity, claims.tags, claims.transitive)
            self._saml_accepted.append(hashlib.sha256(request.assertion.encode()).hexdigest())
        return _response(status, headers, data, "POST")

    def _judge_saml(self, params: Mapping[str, str]) -> tuple[saml_checks.SamlRequest, saml_checks.SamlClaims, int]:
        request = saml_checks.validate_request(params)
        role = self._role(request.role_arn, saml_checks.access_denied)
        if (request.duration or 3600) > role.max_session_duration:
            raise StsError("ValidationError",
                           "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.")
        document = self._iam.saml_metadata(request.principal_arn) \
            if SAML_PROVIDER_ARN.fullmatch(request.principal_arn) else None
        if document is None:
            raise saml_signature.invalid(f"SAML provider {request.principal_arn[:200]} does not exist")
        metadata = saml_signature.parse_metadata(document)
        response = saml_signature.decode_response(request.assertion)
        assertion = saml_signature.verified_assertion(response, metadata)
        now = datetime.fromtimestamp(self._clock(), UTC)
        claims = saml_checks.judge_assertion(assertion, request, metadata, now)
        if not trust.is_allowed(role.trust_policy, saml_checks.trust_request(request.principal_arn, claims)):
            raise saml_checks.access_denied()
        return request, claims, saml_checks.session_seconds(request, claims, now)

    def _judge(self, params: Mapping[str, str]) -> Verified:
        request = checks.validate_request(params)
        role = self._role(request.role_arn)
        if request.duration > role.max_session_duration:
            raise StsError("ValidationError",
                           "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.")
        token = checks.parse_token(request.token)
        provider = checks.provider_url(token.issuer, allow_http_loopback=self._allow_http_loopback)
        provider_arn = f"arn:aws:iam::{self._account_id}:oidc-provider/{provider}"
        client_ids = self._iam.client_ids(provider_arn)
        if client_ids is None:
            raise checks.no_provider(token.issuer)
        checks.verify_signature(token, self._jwks.key_for(token.issuer, token.kid))
        return self._judge_claims(token, request, role, provider, provider_arn, client_ids)

    def _judge_claims(self, token: checks.UnverifiedToken, request: checks.WebIdentityRequest, role: RoleInfo,
                      provider: str, provider_arn: str, client_ids: list[str]) -> Verified:
        claims = token.claims
        checks.check_times(claims, int(self._clock()))
        subject = checks.check_subject(claims)
        audience = checks.match_audience(claims, client_ids)
        tags, source = checks.session_tags(claims), checks.source_identity(claims)
        context = trust.web_identity_context(provider, audience=audience, claims=claims,
                                             session_name=request.session_name, tags=tags.tags,
                                             source_identity=source)
        actions = trust.required_actions(tagged=bool(tags.tags), source_identity=source is not None)
        if not trust.is_allowed(role.trust_policy, trust.TrustRequest(provider_arn, actions, context)):
            raise checks.access_denied()
        return Verified(issuer=token.issuer, subject=subject, audience=audience, source_identity=source,
                        tags=tags.tags, transitive=tags.transitive)

    def _role(self, role_arn: str, denied: Callable[[], StsError] = checks.access_denied) -> RoleInfo:
        match = ROLE_ARN.fullmatch(role_arn)
        if match is None:
            raise StsError("ValidationError", "Request ARN is invalid")
        # AWS does not say whether a role exists: an unknown role is refused like an untrusting one.
        role = self._iam.role(match.group(3)) if match.group(2) == self._account_id else None
        if role is None or role.arn != role_arn:
            raise denied()
        return role

    def _record(self, body: bytes, params: Mapping[str, str], source_identity: str | None, tags: Mapping[str, str],
                transitive: tuple[str, ...]) -> None:
        """Web identity and SAML sessions are never chained; what they carry is kept for a chain they start."""
        issued = credentials_from_xml(body)
        if issued is not None:
            self._ledger.record(issued.with_session(role_arn=params["RoleArn"], source_identity=source_identity,
                                                    tags=dict(tags), transitive=transitive,
                                                    session_policy=params.get("Policy"),
                                                    session_policy_arns=_policy_arns(params)))

    def _forward(self, request: Request, body: bytes) -> Response:
        raw_uri = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI") or ""
        target = raw_uri if raw_uri.startswith("/") else request.full_path
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP]
        account = self._signed.account_for(request) if self._signed else None
        if account is not None and not any(k.lower() == "x-moto-account-id" for k, _ in headers):
            headers.append(("x-moto-account-id", account))  # a key the front issued belongs to its account
        status, upstream_headers, data = self._send(request.method, self._moto_url + target, headers, body)
        return _response(status, upstream_headers, data, request.method)

    def _send(self, method: str, url: str, headers: list[tuple[str, str]],
              body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        if not any(k.lower() == "x-moto-account-id" for k, _ in headers):
            # moto files unknown (dummy) access keys under its default account; pin them to this one.
            headers = [*headers, ("x-moto-account-id", self._account_id)]
        upstream = self._http.send(self._http.build_request(method, url, headers=headers, content=body), stream=True)
        try:
            data = b"".join(upstream.iter_raw())  # raw: keep moto's bytes and Content-Encoding as they are
        finally:
            upstream.close()
        return upstream.status_code, list(upstream.headers.multi_items()), data


def _policy_arns(params: Mapping[str, str]) -> tuple[str, ...]:
    found = {int(k.split(".")[2]): v for k in params if re.fullmatch(r"PolicyArns\.member\.[0-9]{1,4}\.arn", k)
             for v in (params[k],)}
    return tuple(found[n] for n in sorted(found))


def _response(status: int, headers: list[tuple[str, str]], data: bytes, method: str) -> Response:
    kept = [(k, v) for k, v in headers if k.lower() not in HOP_BY_HOP]
    response = Response(data, status=status, headers=kept)
    length = next((v for k, v in headers if k.lower() == "content-length"), None)
    if method == "HEAD" and length is not None:
        response.headers["Content-Length"] = length  # a HEAD reply describes a body it does not carry
    return response
