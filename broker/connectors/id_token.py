"""Verify an OIDC ID token: signature against the IdP's JWKS with an explicit algorithm allow-list, then
every claim pinned from configuration. Nothing is left to a library default we did not configure."""

from __future__ import annotations

import hmac
import re
import time
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from joserfc import jwt
from joserfc.errors import ExpiredTokenError, JoseError
from joserfc.util import urlsafe_b64decode

from broker.connectors.jwks import JwksCache
from broker.errors import TokenInvalid
from broker.safe_json import JsonRefused, loads_object

_KID = re.compile(r"^[A-Za-z0-9_.:=+/-]{1,128}$")
# Header members that would let the token choose its own verification key.
_KEY_HEADERS = ("jku", "jwk", "x5u", "x5c")
# Header members that change how the token is read (RFC 7515 4.1.11 `crit`, RFC 7797 `b64`): the broker
# understands no extension, so a token that names one is refused rather than read the plain way.
_UNSUPPORTED_HEADERS = ("crit", "b64")


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
    header = json_segment(raw, 0, "header")
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in expect.algorithms:
        raise _refuse("alg_not_allowed", f"ID token alg {str(alg)[:20]!r} is not allowed")
    if any(h in header for h in _KEY_HEADERS):
        raise _refuse("key_in_header", "ID token header carries its own key reference")
    if any(h in header for h in _UNSUPPORTED_HEADERS):
        raise _refuse("header_unsupported", "ID token header names an extension (crit, b64) the broker does not "
                                            "implement")
    kid = header.get("kid")
    if kid is not None and (not isinstance(kid, str) or not _KID.fullmatch(kid)):
        raise _refuse("kid_invalid", "ID token kid is not a plain identifier")
    return header


def json_segment(raw: str, index: int, what: str) -> dict[str, Any]:
    """One JSON segment (0 header, 1 payload) of a compact JWS, read as the signature check will read it:
    the same strict base64url decoder as joserfc's, then JSON with bounded depth, no duplicate member
    names, no NaN (`safe_json`). Read here, before joserfc, so the refusal names the real reason and a
    hostile segment never reaches a parser without limits."""
    parts = raw.split(".")
    try:
        if len(parts) != 3:
            raise ValueError("not three segments")
        return loads_object(urlsafe_b64decode(parts[index].encode("ascii")))
    except JsonRefused as exc:
        raise _refuse("token_malformed", f"ID token {what}: {exc}") from None
    except (ValueError, UnicodeError):
        raise _refuse("token_malformed", f"ID token is not a compact JWS with a JSON {what}") from None


async def verify_id_token(raw: str, jwks: JwksCache, expect: Expectations) -> dict[str, Any]:
    header = _header(raw, expect)
    json_segment(raw, 1, "payload")  # refused here, before any JWKS fetch, if it is not a plain JSON object
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
