"""The checks AWS STS makes on an AssumeRoleWithWebIdentity call, written without the broker's code.

Signatures are verified with PyJWT (the broker uses joserfc), so a mistake shared by the broker's minting and its
own verification cannot slip through. Messages copy AWS's where AWS documents them. Pure: keys come from sts_front.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import jwt

ALLOWED_ALGS = frozenset({"RS256", "RS384", "RS512", "ES256", "ES384", "ES512"})
TAGS_CLAIM = "https://aws.amazon.com/tags"
SOURCE_IDENTITY_CLAIM = "https://aws.amazon.com/source_identity"
# Java's \w (what AWS's validators use) is ASCII-only, hence re.ASCII.
STS_NAME = re.compile(r"[\w+=,.@-]{2,64}", re.ASCII)
TAG_EXTRA_CHARS = frozenset("_.:/=+-@")
MAX_TAGS = 50
IAT_FUTURE_SKEW = 300
MAX_TOKEN_AGE = 86400
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost"})
KEY_ERROR = ("Couldn't retrieve verification key from your identity provider, please reference "
             "AssumeRoleWithWebIdentity documentation for requirements")


class StsError(Exception):
    """A refusal in AWS's shape: error code, message and HTTP status."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.status = code, message, status


def invalid_token(message: str) -> StsError:
    return StsError("InvalidIdentityToken", message)


def no_provider(issuer: str) -> StsError:
    return invalid_token(f"No OpenIDConnect provider found in your account for {issuer}")


def access_denied() -> StsError:
    return StsError("AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity", 403)


@dataclass(frozen=True)
class UnverifiedToken:
    raw: str = field(repr=False)
    alg: str
    kid: str
    claims: Mapping[str, Any] = field(repr=False)

    @property
    def issuer(self) -> str:
        iss = self.claims.get("iss")
        if not isinstance(iss, str) or not iss:
            raise invalid_token("Token is missing the iss claim")
        return iss


@dataclass(frozen=True)
class SessionTags:
    tags: Mapping[str, str] = field(default_factory=dict)
    transitive: tuple[str, ...] = ()


def _b64_json(segment: str) -> Any:
    padded = segment + "=" * (-len(segment) % 4)
    try:
        return json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, UnicodeError, binascii.Error):
        return None


def parse_token(raw: str) -> UnverifiedToken:
    """Split a compact JWS and read its header and claims; nothing here is trusted yet."""
    parts = raw.split(".")
    header = _b64_json(parts[0]) if len(parts) == 3 else None
    claims = _b64_json(parts[1]) if len(parts) == 3 else None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise invalid_token("The ID Token provided is not a valid JWT. "
                            "(You may see this error if you sent an Access Token)")
    alg = header.get("alg")
    if alg not in ALLOWED_ALGS:
        raise invalid_token(f"Unsupported signing algorithm: {alg}")
    if "crit" in header:
        # We understand no JWS extensions, and RFC 7515 says to refuse what we would have to understand.
        raise invalid_token("Unsupported critical header parameters")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise invalid_token(KEY_ERROR)
    return UnverifiedToken(raw=raw, alg=alg, kid=kid, claims=claims)


def is_allowed_url(url: str, *, allow_http_loopback: bool, allow_port: bool) -> bool:
    """https only; plain http (and any port) only for a loopback host when the dev relaxation is on."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    if parts.scheme not in ("https", "http") or not parts.hostname or "@" in parts.netloc or parts.fragment:
        return False
    loopback = allow_http_loopback and parts.hostname in LOOPBACK_HOSTS
    if parts.scheme == "http" and not loopback:
        return False
    return port is None or allow_port or loopback


def provider_url(issuer: str, *, allow_http_loopback: bool) -> str:
    """The IAM OIDC provider URL (host[:port]/path, no scheme) an `iss` must be registered as."""
    if "?" in issuer or not is_allowed_url(issuer, allow_http_loopback=allow_http_loopback, allow_port=False):
        raise no_provider(issuer)
    parts = urlsplit(issuer)
    return parts.netloc + parts.path


def verify_signature(token: UnverifiedToken, jwk: Mapping[str, Any]) -> None:
    """PyJWT checks the signature only; claims are judged below with AWS's own rules and messages."""
    if "alg" in jwk and jwk["alg"] != token.alg:
        raise invalid_token(KEY_ERROR)
    try:
        key = jwt.PyJWK(dict(jwk), algorithm=token.alg)
        jwt.PyJWS(algorithms=[token.alg]).decode(token.raw, key=key, algorithms=[token.alg])
    except jwt.exceptions.PyJWKError as exc:
        raise invalid_token(KEY_ERROR) from exc
    except jwt.exceptions.InvalidTokenError as exc:
        raise invalid_token("Signature validation failed for the web identity token") from exc


def _int_claim(claims: Mapping[str, Any], name: str) -> int:
    value = claims.get(name)
    if type(value) is not int:  # bool is an int subclass and a float is not an integer: both refused
        raise invalid_token(f"The {name} claim must be present and an integer")
    return value


def check_times(claims: Mapping[str, Any], now: int) -> None:
    exp = _int_claim(claims, "exp")
    iat = _int_claim(claims, "iat")
    if now >= exp:
        raise StsError("ExpiredTokenException",
                       f"Token expired: current date/time {now} must be before the expiration date/time {exp}")
    if iat > now + IAT_FUTURE_SKEW:
        raise invalid_token("Token used before issued")
    if now - iat > MAX_TOKEN_AGE:
        raise invalid_token("Token too old")
    nbf = claims.get("nbf")
    if nbf is not None and (type(nbf) is not int or nbf > now + IAT_FUTURE_SKEW):
        raise invalid_token("Token not yet valid")


def check_subject(claims: Mapping[str, Any]) -> str:
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise invalid_token("Token is missing the sub claim")
    return sub


def match_audience(claims: Mapping[str, Any], client_ids: list[str]) -> str:
    """The first `aud` the provider lists as a client ID; it becomes the session's Audience."""
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    for value in audiences:
        if isinstance(value, str) and value in client_ids:
            return value
    raise invalid_token("Incorrect token audience")


def _tag_text_ok(text: str, max_len: int, min_len: int) -> bool:
    # AWS's pattern [\p{L}\p{Z}\p{N}_.:/=+\-@]: letters, separators and numbers by Unicode category.
    chars_ok = all(unicodedata.category(c)[0] in "LZN" or c in TAG_EXTRA_CHARS for c in text)
    return chars_ok and min_len <= len(text) <= max_len


def _tag(key: Any, value: Any) -> tuple[str, str]:
    if not isinstance(key, str) or not _tag_text_ok(key, 128, 1) or key.lower().startswith("aws:"):
        raise invalid_token(f"Invalid session tag key: {str(key)[:130]!r}")
    if not isinstance(value, list) or len(value) != 1 or not isinstance(value[0], str):
        raise invalid_token(f"Session tag {key} must have a single-element array value")
    if not _tag_text_ok(value[0], 256, 0):
        raise invalid_token(f"Invalid session tag value for {key}")
    return key, value[0]


def session_tags(claims: Mapping[str, Any]) -> SessionTags:
    raw = claims.get(TAGS_CLAIM)
    if raw is None:
        return SessionTags()
    principal = raw.get("principal_tags", {}) if isinstance(raw, dict) else None
    transitive = raw.get("transitive_tag_keys", []) if isinstance(raw, dict) else None
    if not isinstance(principal, dict) or not isinstance(transitive, list):
        raise invalid_token(f"Malformed {TAGS_CLAIM} claim")
    if len(principal) > MAX_TAGS:
        raise invalid_token(f"Session tags exceed the limit of {MAX_TAGS}")
    tags = dict(_tag(key, value) for key, value in principal.items())
    lowered = {key.lower() for key in tags}
    if len(lowered) != len(tags):
        raise invalid_token("Duplicate session tag keys (keys are case-insensitive)")
    if not all(isinstance(key, str) and key.lower() in lowered for key in transitive):
        raise invalid_token("Transitive tag keys must be a subset of the session tag keys")
    return SessionTags(tags=tags, transitive=tuple(transitive))


def source_identity(claims: Mapping[str, Any]) -> str | None:
    value = claims.get(SOURCE_IDENTITY_CLAIM)
    if value is None:
        return None
    if not isinstance(value, str) or not STS_NAME.fullmatch(value) or value.lower().startswith("aws:"):
        raise invalid_token(f"Invalid {SOURCE_IDENTITY_CLAIM} claim")
    return value


@dataclass(frozen=True)
class WebIdentityRequest:
    role_arn: str
    session_name: str
    token: str = field(repr=False)
    duration: int


def _violation(name: str, value: str, constraint: str) -> str:
    return f"Value '{value}' at '{name}' failed to satisfy constraint: Member must {constraint}"


def _length_errors(name: str, value: str, low: int, high: int) -> list[str]:
    if len(value) < low:
        return [_violation(name, value, f"have length greater than or equal to {low}")]
    if len(value) > high:
        return [_violation(name, value, f"have length less than or equal to {high}")]
    return []


def duration_errors(raw: str | None, high: int = 43200) -> list[str]:
    """DurationSeconds as STS validates it, before any other check (900 up to `high`)."""
    if raw is None:
        return []
    if not re.fullmatch(r"-?[0-9]{1,9}", raw):
        return [_violation("durationSeconds", raw, "be an integer")]
    if int(raw) < 900:
        return [_violation("durationSeconds", raw, "have value greater than or equal to 900")]
    if int(raw) > high:
        return [_violation("durationSeconds", raw[:100], f"have value less than or equal to {high}")]
    return []


def _required_errors(params: Mapping[str, str]) -> list[str]:
    errors: list[str] = []
    for param, name, low, high in (("RoleArn", "roleArn", 20, 2048), ("RoleSessionName", "roleSessionName", 2, 64),
                                   ("WebIdentityToken", "webIdentityToken", 4, 20000)):
        value = params.get(param)
        if value is None:
            errors.append(f"Value null at '{name}' failed to satisfy constraint: Member must not be null")
            continue
        errors += _length_errors(name, value, low, high)
        if param == "RoleSessionName" and not re.fullmatch(r"[\w+=,.@-]*", value, re.ASCII):
            errors.append(_violation(name, value, r"satisfy regular expression pattern: [\w+=,.@-]*"))
    return errors


def _constraint_errors(params: Mapping[str, str]) -> list[str]:
    """Every model constraint AWS checks before it looks at anything, reported together as AWS does."""
    errors = _required_errors(params) + duration_errors(params.get("DurationSeconds"))
    if "Policy" in params:
        errors += _length_errors("policy", params["Policy"], 1, 2048)
    arns = [v for k, v in sorted(params.items()) if re.fullmatch(r"PolicyArns\.member\.\d+\.arn", k)]
    if len(arns) > 10:
        errors.append(_violation("policyArns", str(arns), "have length less than or equal to 10"))
    return errors


def refuse_invalid(errors: list[str], policy: str | None) -> None:
    """The model constraint errors AWS reports together, then the policy's JSON shape (both STS calls)."""
    if errors:
        plural = "s" if len(errors) > 1 else ""
        raise StsError("ValidationError", f"{len(errors)} validation error{plural} detected: " + "; ".join(errors))
    if policy is not None:
        _check_policy_json(policy)


def validate_request(params: Mapping[str, str]) -> WebIdentityRequest:
    refuse_invalid(_constraint_errors(params), None)
    if "ProviderId" in params:
        # ProviderId names an OAuth 2.0 provider (Amazon, Facebook); OIDC ID tokens must come without it.
        raise invalid_token("ProviderId must be omitted for OpenID Connect ID tokens")
    if "Policy" in params:
        _check_policy_json(params["Policy"])
    return WebIdentityRequest(role_arn=params["RoleArn"], session_name=params["RoleSessionName"],
                              token=params["WebIdentityToken"], duration=int(params.get("DurationSeconds", "3600")))


def _check_policy_json(policy: str) -> None:
    try:
        document = json.loads(policy)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise StsError("MalformedPolicyDocument", "The policy is not in the valid JSON format.")
