"""Verify an OIDC ID token: signature against the IdP's JWKS with an explicit algorithm allow-list, then
every claim pinned from configuration. Nothing is left to a library default we did not configure."""

from __future__ import annotations

import base64
import hmac
import json
import re
import time
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from joserfc import jwt
from joserfc.errors import ExpiredTokenError, JoseError

from broker.connectors.jwks import JwksCache
from broker.errors import TokenInvalid

_KID = re.compile(r"^[A-Za-z0-9_.:=+/-]{1,128}$")
# Header members that would let the token choose its own verification key.
_KEY_HEADERS = ("jku", "jwk", "x5u", "x5c")


@dataclass(frozen=True, slots=True)
class Expectations:
    issuers: Collection[str]
    audiences: Collection[str]  # our client ids: aud must contain one
    algorithms: Collection[str]
    leeway: int
    max_bytes: int
    nonce: str | None = None  # required and compared when set
    # `azp` allow-list (e.g. a mobile app's client ids). None: `azp`, when present, must be an audience.
    # When set, `azp` is required and must be one of these.
    authorized_parties: Collection[str] | None = None


def _refuse(reason: str, detail: str) -> TokenInvalid:
    return TokenInvalid(detail, reason=reason)


def _header(raw: str, expect: Expectations) -> dict[str, Any]:
    if len(raw) > expect.max_bytes:
        raise _refuse("token_too_large", f"ID token of {len(raw)} bytes exceeds {expect.max_bytes}")
    header = _decode_header(raw)
    alg = header.get("alg")
    if alg not in expect.algorithms:
        raise _refuse("alg_not_allowed", f"ID token alg {str(alg)[:20]!r} is not allowed")
    if any(h in header for h in _KEY_HEADERS):
        raise _refuse("key_in_header", "ID token header carries its own key reference")
    if "crit" in header:  # RFC 7515 4.1.11: no extension is understood here (joserfc raises TypeError on some)
        raise _refuse("crit_not_supported", "ID token header names critical extensions")
    kid = header.get("kid")
    if kid is not None and (not isinstance(kid, str) or not _KID.match(kid)):
        raise _refuse("kid_invalid", "ID token kid is not a plain identifier")
    return header


def _decode_header(raw: str) -> dict[str, Any]:
    # Read the header ourselves so the refusal names the real reason (joserfc rejects some headers early).
    parts = raw.split(".")
    try:
        if len(parts) != 3:
            raise ValueError("not three segments")
        header = json.loads(base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4)))
    except (ValueError, UnicodeDecodeError):
        raise _refuse("token_malformed", "ID token is not a compact JWS") from None
    if not isinstance(header, dict):
        raise _refuse("token_malformed", "ID token header is not a JSON object")
    return header


async def verify_id_token(raw: str, jwks: JwksCache, expect: Expectations) -> dict[str, Any]:
    header = _header(raw, expect)
    keys = await jwks.key_set(header.get("kid"))
    try:
        token = jwt.decode(raw, keys, algorithms=list(expect.algorithms))
    except (JoseError, TypeError, ValueError) as exc:  # joserfc raises TypeError on some malformed headers
        raise _refuse("signature_invalid", f"ID token signature: {type(exc).__name__}") from None
    claims = dict(token.claims)
    check_claims(claims, expect, now=int(time.time()))
    return claims


def check_claims(claims: dict[str, Any], expect: Expectations, *, now: int) -> None:
    registry = jwt.JWTClaimsRegistry(
        now=now, leeway=expect.leeway,
        iss={"essential": True, "values": list(expect.issuers)},
        sub={"essential": True}, exp={"essential": True}, iat={"essential": True},
    )
    try:
        registry.validate(claims)
    except ExpiredTokenError:
        raise _refuse("token_expired", "ID token expired") from None
    except JoseError as exc:
        raise _refuse("claims_invalid", f"ID token claims: {exc.description}") from None
    _check_audience(claims, expect)
    _check_nonce(claims, expect)


def _check_audience(claims: dict[str, Any], expect: Expectations) -> None:
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    if not any(a in expect.audiences for a in audiences if isinstance(a, str)):
        raise _refuse("audience_invalid", "ID token aud does not name this client")
    # OIDC Core 3.1.3.7: with several audiences (or an azp at all) the azp must be our client.
    azp = claims.get("azp")
    parties = expect.audiences if expect.authorized_parties is None else expect.authorized_parties
    required = len(audiences) > 1 or azp is not None or expect.authorized_parties is not None
    if required and (not isinstance(azp, str) or azp not in parties):
        raise _refuse("azp_invalid", "ID token azp does not name this client")


def _check_nonce(claims: dict[str, Any], expect: Expectations) -> None:
    if expect.nonce is None:
        return
    nonce = claims.get("nonce")
    if not isinstance(nonce, str) or not hmac.compare_digest(nonce.encode(), expect.nonce.encode()):
        raise _refuse("nonce_invalid", "ID token nonce does not match this login")
